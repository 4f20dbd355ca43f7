#include "ratelimit/memory_counter_store.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xxhash.h>

#include "ratelimit/sliding_window.hpp"

namespace floodgate::ratelimit {
namespace {

// XXH3-128 of the key string, seeded by the kind, so that a Sum and a
// Distinct under one key string are two counters.
struct CounterId {
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  friend bool operator==(const CounterId&, const CounterId&) = default;
};

struct CounterIdHash {
  // Already uniform; `high` picks the shard, `low` the bucket.
  std::size_t operator()(const CounterId& id) const noexcept { return id.low; }
};

CounterId counter_id(const policy::CounterRequest& request) {
  const XXH128_hash_t hash = XXH3_128bits_withSeed(
      request.key.data(), request.key.size(), request.kind == policy::CounterKind::Sum ? 0 : 1);
  return CounterId{.low = hash.low64, .high = hash.high64};
}

struct SumSlot {
  std::int64_t index = 0;
  std::uint64_t count = 0;
};

struct SetSlot {
  std::int64_t index = 0;
  std::vector<std::uint64_t> members;  // sorted XXH3 of each member
};

struct Counter;
using Node = std::pair<const CounterId, Counter>;

struct Counter {
  std::int64_t expires_ms = 0;
  // Neighbours in the shard's expiry queue for this counter's TTL, in write
  // order (which is expiry order: one TTL per queue).
  Node* earlier = nullptr;
  Node* later = nullptr;
  std::size_t queue = 0;
  std::vector<SumSlot> sums;  // Sum: at most k_slots_read + a few, any order
  std::vector<SetSlot> sets;  // Distinct: likewise
};

// What malloc takes for a request of `bytes` (glibc, 64-bit: an 8-byte
// header, 16-byte granularity, 32 bytes at least), so that the accounting
// follows the heap rather than sizeof.
constexpr std::size_t heap_block(std::size_t bytes) {
  return bytes == 0 ? 0 : std::max<std::size_t>(32, (bytes + 8 + 15) & ~std::size_t{15});
}

template <typename T>
std::size_t heap_bytes(const std::vector<T>& vector) {
  return heap_block(vector.capacity() * sizeof(T));
}

// libstdc++'s hash node: the next pointer, the value, and (for hashers it
// does not call "fast") the cached hash; counted as if cached, to be safe.
constexpr std::size_t k_node_bytes = heap_block(sizeof(void*) + sizeof(Node) + sizeof(std::size_t));

std::size_t counter_bytes(const Counter& counter) {
  std::size_t bytes = k_node_bytes + heap_bytes(counter.sums) + heap_bytes(counter.sets);
  for (const SetSlot& slot : counter.sets) bytes += heap_bytes(slot.members);
  return bytes;
}

bool in_window(std::int64_t index, const SlidingWindow& window) {
  // Slots after the current one exist only if the caller's clock went back;
  // the Redis script ignores them too.
  return index >= window.oldest_slot() && index <= window.current_slot();
}

}  // namespace

class MemoryCounterStore::Shard {
 public:
  Shard(std::size_t max_keys, std::size_t max_bytes, std::size_t max_members_per_slot)
      : m_max_keys{std::max<std::size_t>(max_keys, 1)},
        m_max_bytes{max_bytes},
        m_max_members_per_slot{max_members_per_slot} {}

  ~Shard() = default;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  std::uint64_t apply(const CounterId& id, const policy::CounterRequest& request,
                      const SlidingWindow& window, std::span<const std::uint64_t> member_hashes) {
    const std::lock_guard lock{m_mutex};
    sweep(window.now_ms());

    const std::int64_t ttl_ms = window.key_ttl().count();
    auto [it, inserted] = m_counters.try_emplace(id);
    Node& node = *it;
    Counter& counter = node.second;
    if (!inserted) {
      m_bytes -= counter_bytes(counter);
      unlink(node);
    }
    // Its window's queue; a caller could reuse a key string with another
    // window (the policy's keys name the window, so it does not).
    counter.queue = queue_for(ttl_ms);
    ExpiryQueue& queue = m_queues[counter.queue];
    // max(): a clock that stepped back must not shorten a counter's life
    // below what an earlier write promised, and the queue must stay in
    // expiry order (another thread's `now` may be a little behind ours).
    counter.expires_ms = std::max({counter.expires_ms, window.now_ms() + ttl_ms,
                                   queue.latest != nullptr ? queue.latest->second.expires_ms : 0});
    link_latest(node);

    std::uint64_t value = 0;
    if (request.kind == policy::CounterKind::Sum) {
      std::erase_if(counter.sums, [&](const SumSlot& slot) { return window.is_stale(slot.index); });
      SumSlot& current = current_slot(counter.sums, window.current_slot());
      current.count = saturating_add(current.count, request.amount);
      value = sum_of(counter, window);
    } else {
      std::erase_if(counter.sets, [&](const SetSlot& slot) { return window.is_stale(slot.index); });
      add_members(current_slot(counter.sets, window.current_slot()).members, member_hashes);
      value = distinct_of(counter, window);
    }
    m_bytes += counter_bytes(counter);
    // After the update, so that the value returned includes it even if this
    // very counter is the one to go (possible only when it alone exceeds the
    // shard's budget).
    while (m_counters.size() > m_max_keys || memory_bytes() > m_max_bytes) {
      if (!evict_least_recently_written()) break;  // nothing left to evict
    }
    return value;
  }

  std::size_t size() const {
    const std::lock_guard lock{m_mutex};
    return m_counters.size();
  }

  std::uint64_t evictions() const {
    const std::lock_guard lock{m_mutex};
    return m_evictions;
  }

  std::size_t bytes() const {
    const std::lock_guard lock{m_mutex};
    return memory_bytes();
  }

 private:
  // Counters with one TTL, earliest write (and expiry) first.
  struct ExpiryQueue {
    std::int64_t ttl_ms = 0;
    Node* earliest = nullptr;
    Node* latest = nullptr;
  };

  // The bucket array is one block; it does not shrink when counters go, so
  // it is counted at its current size.
  std::size_t memory_bytes() const {
    return m_bytes + heap_block(m_counters.bucket_count() * sizeof(void*)) +
           heap_bytes(m_queues);
  }

  // One queue per window length in the config: a handful, found by a scan.
  std::size_t queue_for(std::int64_t ttl_ms) {
    for (std::size_t i = 0; i < m_queues.size(); ++i) {
      if (m_queues[i].ttl_ms == ttl_ms) return i;
    }
    m_queues.push_back(ExpiryQueue{.ttl_ms = ttl_ms, .earliest = nullptr, .latest = nullptr});
    return m_queues.size() - 1;
  }

  void link_latest(Node& node) {
    ExpiryQueue& queue = m_queues[node.second.queue];
    node.second.earlier = queue.latest;
    node.second.later = nullptr;
    if (queue.latest != nullptr) {
      queue.latest->second.later = &node;
    } else {
      queue.earliest = &node;
    }
    queue.latest = &node;
  }

  void unlink(Node& node) {
    ExpiryQueue& queue = m_queues[node.second.queue];
    Counter& counter = node.second;
    (counter.earlier != nullptr ? counter.earlier->second.later : queue.earliest) = counter.later;
    (counter.later != nullptr ? counter.later->second.earlier : queue.latest) = counter.earlier;
    counter.earlier = counter.later = nullptr;
  }

  void erase(Node& node) {
    unlink(node);
    m_bytes -= counter_bytes(node.second);
    const CounterId id = node.first;  // a copy: erase() must not read the node it frees
    m_counters.erase(id);
  }

  template <typename Slot>
  static Slot& current_slot(std::vector<Slot>& slots, std::int64_t index) {
    const auto found =
        std::find_if(slots.begin(), slots.end(), [&](const Slot& slot) { return slot.index == index; });
    if (found != slots.end()) return *found;
    slots.emplace_back().index = index;
    return slots.back();
  }

  void add_members(std::vector<std::uint64_t>& members, std::span<const std::uint64_t> hashes) const {
    for (const std::uint64_t hash : hashes) {
      const auto at = std::lower_bound(members.begin(), members.end(), hash);
      if (at != members.end() && *at == hash) continue;
      if (members.size() >= m_max_members_per_slot) continue;  // see LIMITS in the header
      members.insert(at, hash);
    }
  }

  static std::uint64_t sum_of(const Counter& counter, const SlidingWindow& window) {
    std::array<std::uint64_t, k_slots_read> counts{};
    for (const SumSlot& slot : counter.sums) {
      if (!in_window(slot.index, window)) continue;
      counts[static_cast<std::size_t>(slot.index - window.oldest_slot())] += slot.count;
    }
    return window.sum(counts);
  }

  // Size of the union of the slots' sorted sets: a merge over at most
  // k_slots_read sequences, taking the smallest head each step.
  static std::uint64_t distinct_of(const Counter& counter, const SlidingWindow& window) {
    std::array<std::span<const std::uint64_t>, k_slots_read> sets;
    std::size_t set_count = 0;
    for (const SetSlot& slot : counter.sets) {
      if (in_window(slot.index, window) && !slot.members.empty()) sets[set_count++] = slot.members;
    }
    if (set_count == 0) return 0;
    if (set_count == 1) return sets[0].size();
    std::uint64_t distinct = 0;
    for (;;) {
      const std::uint64_t* smallest = nullptr;
      for (std::size_t i = 0; i < set_count; ++i) {
        if (!sets[i].empty() && (smallest == nullptr || sets[i].front() < *smallest)) smallest = &sets[i].front();
      }
      if (smallest == nullptr) return distinct;
      const std::uint64_t member = *smallest;
      ++distinct;
      for (std::size_t i = 0; i < set_count; ++i) {
        if (!sets[i].empty() && sets[i].front() == member) sets[i] = sets[i].subspan(1);
      }
    }
  }

  void sweep(std::int64_t now_ms) {
    for (ExpiryQueue& queue : m_queues) {
      while (queue.earliest != nullptr && queue.earliest->second.expires_ms <= now_ms) erase(*queue.earliest);
    }
  }

  // Each queue is in write order, so the least recently written counter is
  // the earliest of one of them: the one whose last write (expiry - TTL) is
  // oldest. Not simply the earliest expiry: that would keep a counter of a
  // 1-hour window written 50 minutes ago over one of a 10-minute window
  // written a minute ago.
  bool evict_least_recently_written() {
    Node* oldest = nullptr;
    std::int64_t oldest_write = 0;
    for (const ExpiryQueue& queue : m_queues) {
      if (queue.earliest == nullptr) continue;
      const std::int64_t written = queue.earliest->second.expires_ms - queue.ttl_ms;
      if (oldest == nullptr || written < oldest_write) {
        oldest = queue.earliest;
        oldest_write = written;
      }
    }
    if (oldest == nullptr) return false;
    erase(*oldest);
    ++m_evictions;
    return true;
  }

  const std::size_t m_max_keys;
  const std::size_t m_max_bytes;
  const std::size_t m_max_members_per_slot;
  mutable std::mutex m_mutex;
  std::unordered_map<CounterId, Counter, CounterIdHash> m_counters;
  std::vector<ExpiryQueue> m_queues;
  std::size_t m_bytes = 0;  // counter_bytes() of every counter held
  std::uint64_t m_evictions = 0;
};

MemoryCounterStore::MemoryCounterStore(MemoryCounterStoreOptions options) {
  const std::size_t shard_count = std::max<std::size_t>(options.shard_count, 1);
  const std::size_t keys_per_shard = (options.max_keys + shard_count - 1) / shard_count;
  const std::size_t bytes_per_shard = options.max_bytes / shard_count;
  m_shards.reserve(shard_count);
  for (std::size_t i = 0; i < shard_count; ++i) {
    m_shards.push_back(std::make_unique<Shard>(keys_per_shard, bytes_per_shard, options.max_members_per_slot));
  }
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
    const CounterId id = counter_id(request);
    Shard& shard = *m_shards[id.high % m_shards.size()];
    values.push_back(shard.apply(id, request, window, member_hashes));
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

std::size_t MemoryCounterStore::memory_bytes() const {
  std::size_t total = 0;
  for (const auto& shard : m_shards) total += shard->bytes();
  return total;
}

}  // namespace floodgate::ratelimit
