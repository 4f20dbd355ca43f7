// MemoryCounterStore: the in-process CounterStore.
//
// SUMMARY
// Same sliding-window semantics as the Redis store (sliding_window.hpp), kept
// in this process: the embedded default for a single node, the fallback
// while Redis is unreachable (resilient_counter_store.hpp), and the test
// double for the policy core. state_label() is "local".
//
// Distinct counters are exact: each slot keeps the set of 64-bit hashes
// (XXH3) of its members, never the member strings. Redis uses HyperLogLog,
// so for large sets the two stores differ by HLL's ~1% error.
//
// Keys of different kinds never collide: a Sum and a Distinct counter under
// the same key string are two counters (as in Redis, where a Distinct uses
// the "<key>:<slot>" keys).
//
// THREAD SAFETY
// Safe for concurrent use. Keys are spread over shards by hash, each with
// its own mutex; one apply() locks one shard at a time, so a message's
// requests are applied one by one, not as one atomic transaction (the Redis
// script is atomic; no policy decision depends on the difference).
//
// LIMITS
// - Every key expires W + 2L after its last write. Expired keys are swept on
//   every apply() from an expiry-ordered index of the shard touched, so the
//   cost is amortised O(log n) per key and memory follows live traffic.
// - At most max_keys keys (rounded up to a multiple of shard_count: each
//   shard holds ceil(max_keys / shard_count)). When a shard is full, the key
//   closest to expiry is evicted first. That key is the one written least
//   recently, so it is the least likely to matter; but a sender spraying
//   many fresh keys can push out real counters, which then restart from
//   zero (an undercount, i.e. a missed burst, never a false block). The
//   bound wins over exactness because an unbounded map is a way to crash
//   the milter; evictions() counts what was lost, for logs and metrics.
// - Reading a Distinct counter builds the union of up to 11 slot sets:
//   O(members in the window).
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

  // Keys currently held, expired ones not yet swept included.
  std::size_t key_count() const;

  // Keys dropped before their expiry because a shard was full.
  std::uint64_t evictions() const;

 private:
  class Shard;
  std::vector<std::unique_ptr<Shard>> m_shards;
};

}  // namespace floodgate::ratelimit
