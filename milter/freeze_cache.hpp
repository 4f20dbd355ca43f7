// FreezeCache: the frozen sources this instance enforces.
//
// Checking every message against Redis would cost a round trip at DATA;
// instead a refresher thread re-reads the FreezeStore every
// containment.refresh_interval, and freezes made by this instance apply at
// once. So a freeze made anywhere is enforced everywhere within one refresh
// interval. When the store cannot be read, the last list read stays in force
// (a freeze is never dropped because Redis is away) and the failure is
// logged once per state change.
//
// Thread-safe: lookups take an immutable snapshot; freeze() and refresh()
// replace it.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "policy/message_facts.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::milter {

struct ActiveFreeze {
  ratelimit::Freeze freeze;
  policy::SourceSpec source;
};

using FreezeList = std::vector<ActiveFreeze>;

class FreezeCache {
 public:
  explicit FreezeCache(ratelimit::FreezeStore& store);

  std::shared_ptr<const FreezeList> snapshot() const;

  // Records the freeze in the store and locally. Returns whether the source
  // was newly frozen (false when it already was); a store failure still
  // freezes locally and is reported through `store_error`.
  bool freeze(const ratelimit::Freeze& freeze, const policy::SourceSpec& source, ratelimit::TimePoint now,
              std::string& store_error);

  // Re-reads the store (the refresher calls this).
  void refresh(ratelimit::TimePoint now);

  // Runs refresh() every `interval` until `stop` is requested.
  void refresh_periodically(std::chrono::milliseconds interval, std::stop_token stop);

 private:
  void publish(ratelimit::TimePoint now);

  ratelimit::FreezeStore& m_store;
  mutable std::mutex m_mutex;
  // A freeze made here, kept until a read of the store that started after
  // the freeze was stored (from then on the store answers for it, so an
  // unfreeze by ops takes effect) or until it expires; one the store refused
  // is written again at each refresh.
  struct LocalFreeze {
    ActiveFreeze active;
    bool stored = false;
    std::chrono::steady_clock::time_point stored_at;
  };
  FreezeList m_remote;  // as last read from the store
  std::vector<LocalFreeze> m_local;
  std::shared_ptr<const FreezeList> m_snapshot;
  bool m_store_failing = false;
};

// The first freeze in force at `now` that `facts` come from.
std::optional<ActiveFreeze> find_freeze(const FreezeList& freezes, const policy::MessageFacts& facts,
                                        bool headers_known, ratelimit::TimePoint now);

}  // namespace floodgate::milter
