// ActivityRecorder, the in-process ActivityStore, and what the stores share
// (minute buckets, windows, ranking). The Redis store is in
// redis_activity_store.cpp.
//
// LIMITS
// - Recorder memory: one Delta per pending (minute, source) pair, at most
//   max_sources_per_flush of them; each keeps at most
//   k_max_unique_recipients addresses. Between two flushes that is bounded
//   in practice by the recipients the MTA accepted in one flush_interval,
//   times the number of identities.
// - Two identity definitions made of the same parts name the same source
//   (same canonical text, same digest): a message counts once for it, under
//   the first such identity of the config.
// - Counters saturate at 2^64 - 1 instead of wrapping.
// - The memory store keeps every minute it was given (it is for tests and
//   has no history to expire by).
#include "containment/activity.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "policy/ascii.hpp"
#include "policy/source_spec.hpp"

namespace floodgate::containment {
namespace {

using ratelimit::CounterFailure;
template <typename T>
using Result = tl::expected<T, CounterFailure>;

constexpr std::int64_t k_ms_per_minute = 60'000;

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return b > std::numeric_limits<std::uint64_t>::max() - a ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

std::uint64_t key_of(const TopEntry& entry, TopOrder order) {
  switch (order) {
    case TopOrder::Messages:
      return entry.messages;
    case TopOrder::Recipients:
      return entry.recipients;
    case TopOrder::UniqueRecipients:
      return entry.unique_recipients;
  }
  return 0;
}

// ---- The in-process store ------------------------------------------------

class MemoryActivityStore final : public ActivityStore {
 public:
  Result<void> add(const std::vector<Delta>& deltas) override {
    // All or nothing, as a caller of the Redis store would hope for.
    for (const auto& delta : deltas) {
      if (!is_source_digest(delta.source_digest)) {
        return tl::unexpected{CounterFailure{CounterFailure::Kind::Protocol,
                                             "activity: source digest is not 16 lowercase hex digits"}};
      }
    }
    std::lock_guard lock{m_mutex};
    for (const auto& delta : deltas) {
      Bucket& bucket = m_minutes[delta.minute][delta.source_digest];
      bucket.identity = delta.identity;
      bucket.source = delta.source;
      bucket.messages = saturating_add(bucket.messages, delta.messages);
      bucket.recipients = saturating_add(bucket.recipients, delta.recipients);
      bucket.addresses.insert(delta.recipient_addresses.begin(), delta.recipient_addresses.end());
    }
    return {};
  }

  Result<std::vector<TopEntry>> top(std::chrono::seconds window, TopOrder order, std::size_t limit,
                                    ratelimit::TimePoint now) override {
    return top_for_identity("", window, order, limit, now);
  }

  Result<std::vector<TopEntry>> top_for_identity(std::string_view identity, std::chrono::seconds window,
                                                 TopOrder order, std::size_t limit,
                                                 ratelimit::TimePoint now) override {
    const std::int64_t last = activity_minute(now);
    const std::int64_t first = last - window_minutes(window) + 1;
    std::map<std::string, std::pair<TopEntry, std::set<std::string>>> sums;  // by digest
    std::lock_guard lock{m_mutex};
    // Oldest first, so the newest minute's name for a digest wins.
    for (auto minute = m_minutes.lower_bound(first); minute != m_minutes.end() && minute->first <= last;
         ++minute) {
      for (const auto& [digest, bucket] : minute->second) {
        auto& [entry, addresses] = sums[digest];
        entry.identity = bucket.identity;
        entry.source = bucket.source;
        entry.source_digest = digest;
        entry.messages = saturating_add(entry.messages, bucket.messages);
        entry.recipients = saturating_add(entry.recipients, bucket.recipients);
        addresses.insert(bucket.addresses.begin(), bucket.addresses.end());
      }
    }
    std::vector<TopEntry> entries;
    for (auto& [digest, sum] : sums) {
      if (!identity.empty() && sum.first.identity != identity) continue;
      sum.first.unique_recipients = sum.second.size();
      entries.push_back(std::move(sum.first));
    }
    rank_top_entries(entries, order, limit);
    return entries;
  }

 private:
  struct Bucket {
    std::string identity;
    std::string source;
    std::uint64_t messages = 0;
    std::uint64_t recipients = 0;
    std::set<std::string> addresses;
  };
  std::mutex m_mutex;
  std::map<std::int64_t, std::map<std::string, Bucket>> m_minutes;  // minute -> digest -> bucket
};

}  // namespace

// ---- Shared ------------------------------------------------------------------

std::string_view to_string(TopOrder order) {
  switch (order) {
    case TopOrder::Messages:
      return "messages";
    case TopOrder::Recipients:
      return "recipients";
    case TopOrder::UniqueRecipients:
      return "unique-recipients";
  }
  return "unknown";
}

std::optional<TopOrder> parse_top_order(std::string_view text) {
  for (const TopOrder order : {TopOrder::Messages, TopOrder::Recipients, TopOrder::UniqueRecipients}) {
    if (text == to_string(order)) return order;
  }
  return std::nullopt;
}

std::int64_t activity_minute(ratelimit::TimePoint time) {
  const std::int64_t ms = time.time_since_epoch().count();
  // Floor, not truncation: a time before 1970 is in the minute before.
  return ms >= 0 ? ms / k_ms_per_minute : -((-ms + k_ms_per_minute - 1) / k_ms_per_minute);
}

std::int64_t window_minutes(std::chrono::seconds window) {
  const std::int64_t seconds = window.count();
  if (seconds <= 60) return 1;
  return (seconds + 59) / 60;
}

bool is_source_digest(std::string_view text) {
  return text.size() == 16 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void rank_top_entries(std::vector<TopEntry>& entries, TopOrder order, std::size_t limit) {
  std::sort(entries.begin(), entries.end(), [order](const TopEntry& a, const TopEntry& b) {
    const std::uint64_t key_a = key_of(a, order);
    const std::uint64_t key_b = key_of(b, order);
    if (key_a != key_b) return key_a > key_b;
    return std::tie(a.source, a.source_digest) < std::tie(b.source, b.source_digest);
  });
  if (entries.size() > limit) entries.resize(limit);
}

Result<std::vector<TopEntry>> ActivityStore::top_for_identity(std::string_view identity,
                                                              std::chrono::seconds window, TopOrder order,
                                                              std::size_t limit, ratelimit::TimePoint now) {
  auto all = top(window, order, std::numeric_limits<std::size_t>::max(), now);
  if (!all || identity.empty()) {
    if (all && all->size() > limit) all->resize(limit);
    return all;
  }
  std::erase_if(*all, [&](const TopEntry& entry) { return entry.identity != identity; });
  if (all->size() > limit) all->resize(limit);
  return all;
}

std::unique_ptr<ActivityStore> make_memory_activity_store() { return std::make_unique<MemoryActivityStore>(); }

// ---- The recorder ------------------------------------------------------------

ActivityRecorder::ActivityRecorder(std::size_t max_sources_per_flush) : m_max_sources{max_sources_per_flush} {}

void ActivityRecorder::add(const policy::Config& config, const policy::MessageFacts& facts,
                           std::uint64_t recipient_count, ratelimit::TimePoint now) {
  const std::int64_t minute = activity_minute(now);
  // The work that needs no lock first: sources and folded addresses.
  struct Named {
    const std::string* identity;
    std::string source;
    std::string digest;
  };
  std::vector<Named> sources;
  sources.reserve(config.identities.size());
  for (const auto& identity : config.identities) {
    // nullopt for a missing part (no SASL user...): not this identity's
    // message, whatever its when_missing says (source_of never names "-").
    auto spec = policy::source_of(identity, facts);
    if (!spec) continue;
    std::string digest = spec->digest();
    const bool seen = std::any_of(sources.begin(), sources.end(),
                                  [&](const Named& named) { return named.digest == digest; });
    if (!seen) sources.push_back(Named{&identity.name, spec->canonical(), std::move(digest)});
  }
  if (sources.empty()) return;
  std::vector<std::string> addresses;
  addresses.reserve(facts.recipients.size());
  for (const auto& recipient : facts.recipients) {
    if (!recipient.empty()) addresses.push_back(policy::lower_ascii(recipient));
  }

  std::lock_guard lock{m_mutex};
  for (auto& named : sources) {
    auto key = std::make_pair(minute, named.digest);
    auto found = m_pending.find(key);
    if (found == m_pending.end()) {
      if (m_pending.size() >= m_max_sources) {
        m_dropped = saturating_add(m_dropped, 1);
        continue;
      }
      ActivityStore::Delta delta;
      delta.minute = minute;
      delta.identity = *named.identity;
      delta.source = std::move(named.source);
      delta.source_digest = named.digest;
      found = m_pending.emplace(key, std::move(delta)).first;
    }
    ActivityStore::Delta& delta = found->second;
    delta.messages = saturating_add(delta.messages, 1);
    delta.recipients = saturating_add(delta.recipients, recipient_count);
    auto& distinct = m_pending_recipients[std::move(key)];
    for (const auto& address : addresses) {
      if (distinct.size() >= k_max_unique_recipients) break;
      distinct.insert(address);
    }
  }
}

tl::expected<void, ratelimit::CounterFailure> ActivityRecorder::flush(ActivityStore& store) {
  std::map<std::pair<std::int64_t, std::string>, ActivityStore::Delta> pending;
  std::map<std::pair<std::int64_t, std::string>, std::unordered_set<std::string>> recipients;
  {
    // Swapped out under the lock, written without it: the milter threads
    // never wait for Redis.
    std::lock_guard lock{m_mutex};
    pending.swap(m_pending);
    recipients.swap(m_pending_recipients);
  }
  if (pending.empty()) return {};
  std::vector<ActivityStore::Delta> deltas;
  deltas.reserve(pending.size());
  for (auto& [key, delta] : pending) {
    if (auto found = recipients.find(key); found != recipients.end()) {
      auto& addresses = delta.recipient_addresses;
      addresses.reserve(found->second.size());
      for (auto node = found->second.begin(); node != found->second.end();) {
        auto next = std::next(node);
        addresses.push_back(std::move(found->second.extract(node).value()));
        node = next;
      }
      std::sort(addresses.begin(), addresses.end());  // a stable PFADD, for tests and logs
    }
    deltas.push_back(std::move(delta));
  }
  return store.add(deltas);
}

std::uint64_t ActivityRecorder::take_dropped() {
  std::lock_guard lock{m_mutex};
  return std::exchange(m_dropped, 0);
}

}  // namespace floodgate::containment
