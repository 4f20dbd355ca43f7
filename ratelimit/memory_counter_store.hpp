// MemoryCounterStore: the in-process CounterStore.
//
// SUMMARY
// Same sliding-window semantics as the Redis store (sliding_window.hpp), kept
// in this process: the embedded default for a single node, the fallback
// while Redis is unreachable (resilient_counter_store.hpp), and the test
// double for the policy core. state_label() is "local".
//
// Distinct counters are exact up to max_members_per_slot (see LIMITS): each
// slot keeps the sorted set of 64-bit hashes (XXH3) of its members, never
// the member strings. Redis uses HyperLogLog, so for large sets the two
// stores differ by HLL's ~1% error.
//
// A counter is found by the 128-bit XXH3 of its key string, seeded by its
// kind: a Sum and a Distinct under the same key string are two counters (as
// in Redis, where a Distinct uses the "<key>:<slot>" keys), and the key
// strings themselves are not kept.
//
// THREAD SAFETY
// Safe for concurrent use. Counters are spread over shards by hash, each
// with its own mutex; one apply() locks one shard at a time, so a message's
// requests are applied one by one, not as one atomic transaction (the Redis
// script is atomic; no policy decision depends on the difference).
//
// LIMITS
// - Every counter expires W + 2L after its last write. Expired counters are
//   swept on every apply() of the shard touched, oldest first, from one
//   queue per TTL in write order: O(1) per counter, and memory follows live
//   traffic.
// - Memory is bounded: each shard may hold max_bytes / shard_count bytes,
//   as accounted by memory_bytes() (the counter's hash node and bucket,
//   its slot arrays and member sets at their capacity, each heap block
//   rounded up as glibc's malloc does), and at most
//   ceil(max_keys / shard_count) counters. Past either bound the counter
//   written least recently is evicted, whatever its window. A busy counter
//   (a burst being counted) is rewritten by every message and stays; the
//   ones that go are those nobody wrote for longest. But a sender spraying
//   fresh keys (new contents, new recipients) can push out real counters,
//   which then restart from zero: an undercount, i.e. a missed burst, never
//   a false block. The bound wins over exactness because an unbounded map
//   is a way to crash the milter; evictions() counts what was lost, for
//   logs and metrics. The default 16 MiB holds ~90,000 counters of the
//   shipped policy (~170 bytes for a Sum, ~210 for a Distinct of a few
//   members; tests/bench/memory_store_bench.cpp): ~2,000 messages' worth
//   when every message brings new content and new recipients (45 new
//   counters each), far more for ordinary mail, whose counters are
//   mostly rewritten. The accounting is of live blocks: the process's
//   RSS also carries the free pieces malloc keeps between them, too small
//   for malloc_trim() to return (measured: RSS ~1.3x the budget fed from
//   one thread; ~1.7x and still creeping at 1M messages from 20 threads,
//   whose 16 glibc arenas each keep their own; ~1.4x with
//   MALLOC_ARENA_MAX=2; ratelimit/README.md).
// - A Distinct slot keeps at most max_members_per_slot members (4096); a
//   member arriving at a full slot is not stored. The value read is then
//   between min(true count, max_members_per_slot) and the true count: exact
//   below the cap, and at least the cap once one slot is full, so a rule
//   whose threshold is below the cap fires exactly when it would without
//   it (the shipped thresholds are at most 1000). This keeps one counter
//   at no more than 11 slots x 32 KiB.
// - A counter larger than its shard's whole budget (only with a budget set
//   below ~1 MiB per shard) is evicted by its own write: its value is
//   returned once, then it restarts.
// - Two key strings with the same 128-bit hash would share a counter; with
//   a million counters the odds are about 1 in 10^27.
// - Reading a Distinct counter merges up to 11 sorted slot sets:
//   O(members in the window), no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ratelimit/counter_store.hpp"

namespace floodgate::ratelimit {

struct MemoryCounterStoreOptions {
  std::size_t max_keys = 1'000'000;
  std::size_t shard_count = 16;
  // Bytes all shards together may hold, as memory_bytes() accounts them.
  // 16 MiB: with the free pieces glibc keeps between the live blocks (the
  // heap fragments under eviction churn), the store's RSS stays near 22 MB
  // fed from one thread, 28-30 MB from 20 (see LIMITS).
  std::size_t max_bytes = std::size_t{16} << 20;
  std::size_t max_members_per_slot = 4096;
};

class MemoryCounterStore final : public CounterStore {
 public:
  explicit MemoryCounterStore(MemoryCounterStoreOptions options = {});
  ~MemoryCounterStore() override;

  MemoryCounterStore(const MemoryCounterStore&) = delete;
  MemoryCounterStore& operator=(const MemoryCounterStore&) = delete;

  // Never fails.
  CounterResult apply(std::span<const policy::CounterRequest> requests,
                      TimePoint now) override;

  std::string_view state_label() const override { return "local"; }

  // Counters currently held, expired ones not yet swept included.
  std::size_t key_count() const;

  // Counters dropped before their expiry because a shard was full (keys or
  // bytes).
  std::uint64_t evictions() const;

  // Heap bytes the counters hold, as accounted against max_bytes: the
  // malloc blocks of every hash node, bucket array, slot array and member
  // set, not the store object itself.
  std::size_t memory_bytes() const;

 private:
  class Shard;
  std::vector<std::unique_ptr<Shard>> m_shards;
};

}  // namespace floodgate::ratelimit
