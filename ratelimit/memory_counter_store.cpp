#include "ratelimit/memory_counter_store.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <xxhash.h>

#include "ratelimit/sliding_window.hpp"

namespace floodgate::ratelimit {
namespace {

struct Slot {
  std::int64_t index = 0;
  std::uint64_t count = 0;                  // Sum
  std::unordered_set<std::uint64_t> members;  // Distinct: XXH3 of each member
};

struct Entry {
  std::int64_t expires_ms = 0;
  std::vector<Slot> slots;  // at most k_slots_read + a few, in no particular order
};

// A Sum and a Distinct under the same key are different counters.
std::string map_key_for(const policy::CounterRequest& request) {
  std::string map_key;
  map_key.reserve(request.key.size() + 2);
  map_key += request.kind == policy::CounterKind::Sum ? 's' : 'd';
  map_key += ':';
  map_key += request.key;
  return map_key;
}

}  // namespace

class MemoryCounterStore::Shard {
 public:
  explicit Shard(std::size_t capacity) : m_capacity{std::max<std::size_t>(capacity, 1)} {}

  std::uint64_t apply(const std::string& map_key, const policy::CounterRequest& request,
                      const SlidingWindow& window,
                      const std::vector<std::uint64_t>& member_hashes) {
    const std::lock_guard lock{m_mutex};
    sweep(window.now_ms());

    auto it = m_entries.find(map_key);
    if (it == m_entries.end()) {
      if (m_entries.size() >= m_capacity) evict_closest_to_expiry();
      it = m_entries.emplace(map_key, Entry{}).first;
    } else {
      m_by_expiry.erase({it->second.expires_ms, &it->first});
    }
    Entry& entry = it->second;
    // max(): a clock that stepped back must not shorten a key's life below
    // what an earlier write promised.
    entry.expires_ms =
        std::max(entry.expires_ms, window.now_ms() + window.key_ttl().count());
    m_by_expiry.insert({entry.expires_ms, &it->first});

    std::erase_if(entry.slots, [&](const Slot& slot) { return window.is_stale(slot.index); });
    Slot& current = current_slot(entry, window.current_slot());
    if (request.kind == policy::CounterKind::Sum) {
      current.count = saturating_add(current.count, request.amount);
      return sum_of(entry, window);
    }
    current.members.insert(member_hashes.begin(), member_hashes.end());
    return distinct_of(entry, window);
  }

  std::size_t size() const {
    const std::lock_guard lock{m_mutex};
    return m_entries.size();
  }

  std::uint64_t evictions() const {
    const std::lock_guard lock{m_mutex};
    return m_evictions;
  }

 private:
  static Slot& current_slot(Entry& entry, std::int64_t index) {
    const auto found = std::find_if(entry.slots.begin(), entry.slots.end(),
                                    [&](const Slot& slot) { return slot.index == index; });
    if (found != entry.slots.end()) return *found;
    entry.slots.push_back(Slot{.index = index, .count = 0, .members = {}});
    return entry.slots.back();
  }

  static std::uint64_t sum_of(const Entry& entry, const SlidingWindow& window) {
    std::array<std::uint64_t, k_slots_read> counts{};
    for (const Slot& slot : entry.slots) {
      // Slots after the current one exist only if the caller's clock went
      // back; the Redis script ignores them too.
      if (slot.index < window.oldest_slot() || slot.index > window.current_slot()) continue;
      counts[static_cast<std::size_t>(slot.index - window.oldest_slot())] += slot.count;
    }
    return window.sum(counts);
  }

  static std::uint64_t distinct_of(const Entry& entry, const SlidingWindow& window) {
    std::vector<const Slot*> in_window;
    std::size_t upper_bound = 0;
    for (const Slot& slot : entry.slots) {
      if (slot.index < window.oldest_slot() || slot.index > window.current_slot()) continue;
      in_window.push_back(&slot);
      upper_bound += slot.members.size();
    }
    if (in_window.empty()) return 0;
    if (in_window.size() == 1) return in_window.front()->members.size();
    std::unordered_set<std::uint64_t> all;
    all.reserve(upper_bound);
    for (const Slot* slot : in_window) all.insert(slot->members.begin(), slot->members.end());
    return all.size();
  }

  void sweep(std::int64_t now_ms) {
    while (!m_by_expiry.empty() && m_by_expiry.begin()->first <= now_ms) erase_first_expiring();
  }

  void evict_closest_to_expiry() {
    if (m_by_expiry.empty()) return;
    erase_first_expiring();
    ++m_evictions;
  }

  void erase_first_expiring() {
    const auto first = m_by_expiry.begin();
    // Find before erasing: the index points at the map node's own key.
    const auto entry = m_entries.find(*first->second);
    m_by_expiry.erase(first);
    m_entries.erase(entry);
  }

  const std::size_t m_capacity;
  mutable std::mutex m_mutex;
  std::unordered_map<std::string, Entry> m_entries;
  // (expires_ms, key) ordered by expiry; the key pointer is the map node's
  // key, which stays put across rehashing.
  std::set<std::pair<std::int64_t, const std::string*>> m_by_expiry;
  std::uint64_t m_evictions = 0;
};

MemoryCounterStore::MemoryCounterStore(MemoryCounterStoreOptions options) {
  const std::size_t shard_count = std::max<std::size_t>(options.shard_count, 1);
  const std::size_t per_shard = (options.max_keys + shard_count - 1) / shard_count;
  m_shards.reserve(shard_count);
  for (std::size_t i = 0; i < shard_count; ++i) m_shards.push_back(std::make_unique<Shard>(per_shard));
}

MemoryCounterStore::~MemoryCounterStore() = default;

CounterResult MemoryCounterStore::apply(std::span<const policy::CounterRequest> requests,
                                        TimePoint now) {
  CounterValues values;
  values.reserve(requests.size());
  std::vector<std::uint64_t> member_hashes;
  for (const policy::CounterRequest& request : requests) {
    const SlidingWindow window{request.window, now};
    member_hashes.clear();
    for (const std::string& member : request.members) {
      member_hashes.push_back(XXH3_64bits(member.data(), member.size()));
    }
    const std::string map_key = map_key_for(request);
    Shard& shard = *m_shards[std::hash<std::string>{}(map_key) % m_shards.size()];
    values.push_back(shard.apply(map_key, request, window, member_hashes));
  }
  return values;
}

std::size_t MemoryCounterStore::key_count() const {
  std::size_t total = 0;
  for (const auto& shard : m_shards) total += shard->size();
  return total;
}

std::uint64_t MemoryCounterStore::evictions() const {
  std::uint64_t total = 0;
  for (const auto& shard : m_shards) total += shard->evictions();
  return total;
}

}  // namespace floodgate::ratelimit
