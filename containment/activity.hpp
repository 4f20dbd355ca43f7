// Activity: which sources are sending the most right now, for
// `floodgatectl top`.
//
// The counters that score messages are keyed by digests and cannot be
// listed, so each instance also aggregates, per minute and per source (one
// source per identity definition of the config, as source_of() names it),
// messages, recipients and the distinct recipient addresses, and writes its
// aggregate to Redis every top.flush_interval in one pipelined round trip --
// off the milter threads, so scoring pays only a map update per message.
//
// Redis layout, minute bucket B = floor(ms / 60000), all keys expiring
// top.history + 2 minutes after their minute:
//   <prefix>:{top}:<B>:messages     ZSET  source_digest -> messages
//   <prefix>:{top}:<B>:recipients   ZSET  source_digest -> recipients
//   <prefix>:{top}:<B>:names        HASH  source_digest -> JSON {identity, source_hex}
//   <prefix>:{top}:<B>:u:<digest>   HLL   recipient addresses (lower-cased)
// read_top() sums the buckets of the window client-side and counts unique
// recipients with one PFCOUNT over a source's buckets (a union).
//
// SECURITY: sources are attacker text: stored as hex in the names hash,
// never in a key (the digest is).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "policy/config.hpp"
#include "policy/message_facts.hpp"
#include "ratelimit/counter_store.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::containment {

enum class TopOrder { Messages, Recipients, UniqueRecipients };

struct TopEntry {
  std::string identity;  // the identity definition's name ("client", "php_script")
  std::string source;    // canonical SourceSpec text
  std::string source_digest;
  std::uint64_t messages = 0;
  std::uint64_t recipients = 0;
  std::uint64_t unique_recipients = 0;
};

// Where aggregates go and are read from.
class ActivityStore {
 public:
  virtual ~ActivityStore() = default;
  struct Delta {
    std::int64_t minute = 0;  // bucket B
    std::string identity;
    std::string source;
    std::string source_digest;
    std::uint64_t messages = 0;
    std::uint64_t recipients = 0;
    std::vector<std::string> recipient_addresses;  // lower-cased, for the HLL
  };
  virtual tl::expected<void, ratelimit::CounterFailure> add(const std::vector<Delta>& deltas) = 0;
  // Sources active in the `window` ending at `now`, sorted by `order`
  // (ties: by source text), at most `limit`.
  virtual tl::expected<std::vector<TopEntry>, ratelimit::CounterFailure> top(std::chrono::seconds window,
                                                                             TopOrder order, std::size_t limit,
                                                                             ratelimit::TimePoint now) = 0;
};

std::unique_ptr<ActivityStore> make_memory_activity_store();
std::unique_ptr<ActivityStore> make_redis_activity_store(ratelimit::RedisFreezeStoreOptions options,
                                                         std::chrono::seconds history);

// The per-instance aggregator the milter feeds. Thread-safe.
class ActivityRecorder {
 public:
  explicit ActivityRecorder(std::size_t max_sources_per_flush = 100000);
  // One outbound message: adds it to the current minute of each source its
  // facts name under the config's identities. `recipient_count` is the
  // full count (facts.recipients may have been capped).
  void add(const policy::Config& config, const policy::MessageFacts& facts, std::uint64_t recipient_count,
           ratelimit::TimePoint now);
  // Hands everything aggregated so far to `store` and forgets it. On a
  // store failure the aggregate is dropped (top is a live view; old
  // minutes are not worth retrying) and the failure returned.
  tl::expected<void, ratelimit::CounterFailure> flush(ActivityStore& store);

 private:
  std::mutex m_mutex;
  std::map<std::pair<std::int64_t, std::string>, ActivityStore::Delta> m_pending;  // (minute, digest)
  std::size_t m_max_sources;
};

}  // namespace floodgate::containment
