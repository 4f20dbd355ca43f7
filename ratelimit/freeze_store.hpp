// FreezeStore: the contained (frozen) sources, shared by every Floodgate
// instance that uses the same Redis.
//
// A Freeze names its source by canonical SourceSpec text (policy/
// source_spec.hpp) and carries what froze it and until when. Stores keep
// freezes keyed by the source's digest, never by its text. Freezing a source
// that is already frozen keeps the existing freeze (its `since` and reason)
// and reports `false`; unfreezing removes it whatever its origin.
//
// Contract as for CounterStore: failures are values, `now` is the caller's,
// implementations are safe for concurrent use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "policy/config.hpp"
#include "ratelimit/counter_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ratelimit {

struct Freeze {
  std::string source;        // canonical SourceSpec text (may hold any bytes)
  std::string source_digest; // 16 hex digits, SourceSpec::digest()
  std::string rule;          // the rule that fired, or "manual"
  std::string reason;        // "same_content_rcpts_per_client=101>100 (+20)" or ops' text
  policy::Action action = policy::Action::Quarantine;  // Quarantine, Tempfail or Reject
  TimePoint since;
  TimePoint until;
  // The incident this freeze opened (containment/incident.hpp); "" for a
  // freeze stored before incidents existed.
  std::string incident;
  friend bool operator==(const Freeze&, const Freeze&) = default;
};

class FreezeStore {
 public:
  virtual ~FreezeStore() = default;
  // true: a new freeze; false: the source was already frozen (left as it was).
  virtual tl::expected<bool, CounterFailure> freeze(const Freeze& freeze, TimePoint now) = 0;
  // true: it was frozen and is no longer.
  virtual tl::expected<bool, CounterFailure> unfreeze(std::string_view source_digest) = 0;
  // The freezes in force at `now` (expired ones are dropped, and cleaned up).
  virtual tl::expected<std::vector<Freeze>, CounterFailure> active(TimePoint now) = 0;
};

// The in-process store: the fallback, and the test double.
std::unique_ptr<FreezeStore> make_memory_freeze_store();

struct RedisFreezeStoreOptions {
  RedisEndpoint endpoint;
  std::optional<std::string> password;
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds command_timeout{200};
  std::string key_prefix = "fg";
};
std::unique_ptr<FreezeStore> make_redis_freeze_store(RedisFreezeStoreOptions options);

}  // namespace floodgate::ratelimit
