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
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <tl/expected.hpp>

#include "policy/config.hpp"
#include "policy/message_facts.hpp"
#include "ratelimit/counter_store.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::containment {

enum class TopOrder { Messages, Recipients, UniqueRecipients };

// "messages", "recipients", "unique-recipients" (as `top --by` takes them).
std::string_view to_string(TopOrder order);
std::optional<TopOrder> parse_top_order(std::string_view text);

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
  // As top(), counting only the sources of the identity definition named
  // `identity` ("" : every source). This default asks top() for every
  // source and filters; the stores here do it before the limit themselves.
  virtual tl::expected<std::vector<TopEntry>, ratelimit::CounterFailure> top_for_identity(
      std::string_view identity, std::chrono::seconds window, TopOrder order, std::size_t limit,
      ratelimit::TimePoint now);
};

// ---- Shared by the stores ----------------------------------------------------

// The minute bucket B of `time`: floor(ms / 60000).
std::int64_t activity_minute(ratelimit::TimePoint time);
// How many minute buckets a `window` reads: the window rounded up to whole
// minutes, at least 1; the current (partial) minute is one of them, so a 10m
// window reads the current minute and the 9 before it.
std::int64_t window_minutes(std::chrono::seconds window);
// 16 lowercase hex digits, as SourceSpec::digest() writes; anything else is
// never put in a key name.
bool is_source_digest(std::string_view text);
// Sorts by `order`, largest first (ties: by source text, then digest), and
// keeps the first `limit`.
void rank_top_entries(std::vector<TopEntry>& entries, TopOrder order, std::size_t limit);

std::unique_ptr<ActivityStore> make_memory_activity_store();
std::unique_ptr<ActivityStore> make_redis_activity_store(ratelimit::RedisFreezeStoreOptions options,
                                                         std::chrono::seconds history);

// The per-instance aggregator the milter feeds. Thread-safe.
class ActivityRecorder {
 public:
  // Distinct recipient addresses kept per source per minute; beyond it a
  // source's further new addresses that minute are not counted as unique
  // (its messages and recipients still are). Bounds memory and the size of
  // one PFADD; a source past it is obvious in `top` anyway.
  static constexpr std::size_t k_max_unique_recipients = 10000;

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
  // How many (message, source) pairs add() has not recorded since the last
  // call, because max_sources_per_flush (minute, source) pairs were already
  // pending; resets it. The caller logs a non-zero count (once per flush).
  std::uint64_t take_dropped();

 private:
  std::mutex m_mutex;
  std::map<std::pair<std::int64_t, std::string>, ActivityStore::Delta> m_pending;  // (minute, digest)
  std::size_t m_max_sources;
  // The distinct recipients of each pending (minute, digest), moved into its
  // Delta at flush (a set here keeps add() cheap and the cap exact).
  std::map<std::pair<std::int64_t, std::string>, std::unordered_set<std::string>> m_pending_recipients;
  std::uint64_t m_dropped = 0;
};

}  // namespace floodgate::containment
