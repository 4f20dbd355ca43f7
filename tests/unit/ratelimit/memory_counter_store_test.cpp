// MemoryCounterStore: window behaviour over injected time, isolation,
// expiry, the key and byte bounds, the member cap and concurrent use.
#include "ratelimit/memory_counter_store.hpp"

#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace floodgate::ratelimit {
namespace {

using policy::CounterKind;
using policy::CounterRequest;
using std::chrono::seconds;

TimePoint at_ms(std::int64_t ms) { return TimePoint{std::chrono::milliseconds{ms}}; }

constexpr std::int64_t k_t0 = 1'700'000'000'000;  // a multiple of every slot length used

CounterRequest sum(std::string key, std::uint64_t amount, seconds window = seconds{10}) {
  return CounterRequest{.key = std::move(key), .kind = CounterKind::Sum, .window = window,
                        .amount = amount, .members = {}};
}

CounterRequest distinct(std::string key, std::vector<std::string> members,
                        seconds window = seconds{10}) {
  return CounterRequest{.key = std::move(key), .kind = CounterKind::Distinct, .window = window,
                        .amount = 0, .members = std::move(members)};
}

std::uint64_t apply_one(MemoryCounterStore& store, const CounterRequest& request,
                        std::int64_t now_ms) {
  const auto result = store.apply({&request, 1}, at_ms(now_ms));
  EXPECT_TRUE(result.has_value());
  return result ? result->at(0) : 0;
}

TEST(MemoryCounterStore, SumsAmountsWithinWindow) {
  MemoryCounterStore store;
  EXPECT_EQ(apply_one(store, sum("k", 3), k_t0), 3u);
  EXPECT_EQ(apply_one(store, sum("k", 4), k_t0 + 2500), 7u);
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 9999), 7u);
}

TEST(MemoryCounterStore, ReturnsValuesInRequestOrderIncludingThisUpdate) {
  MemoryCounterStore store;
  const std::vector<CounterRequest> requests{sum("a", 1), distinct("b", {"x", "y"}), sum("c", 5)};
  EXPECT_EQ(store.apply(requests, at_ms(k_t0)).value(), (CounterValues{1, 2, 5}));
  EXPECT_EQ(store.apply(requests, at_ms(k_t0)).value(), (CounterValues{2, 2, 10}));
}

TEST(MemoryCounterStore, KeepsFullCountExactlyAtWindowEnd) {
  MemoryCounterStore store;
  apply_one(store, sum("k", 10), k_t0);
  // At now = t0 + W the event's slot is the oldest, and fully overlaps.
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 10'000), 10u);
}

TEST(MemoryCounterStore, WeightsEventsInPartlyExpiredOldestSlot) {
  MemoryCounterStore store;
  apply_one(store, sum("k", 10), k_t0);
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 10'300), 7u);
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 10'999), 0u);
}

TEST(MemoryCounterStore, ForgetsEventsOlderThanWindow) {
  MemoryCounterStore store;
  apply_one(store, sum("k", 10), k_t0);
  apply_one(store, sum("k", 1), k_t0 + 5000);
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 11'000), 1u);
  EXPECT_EQ(apply_one(store, sum("k", 0), k_t0 + 16'000), 0u);
}

TEST(MemoryCounterStore, StartsFromZeroAfterLongGap) {
  MemoryCounterStore store;
  apply_one(store, sum("k", 50), k_t0);
  apply_one(store, distinct("d", {"a", "b"}), k_t0);
  EXPECT_EQ(apply_one(store, sum("k", 2), k_t0 + 3'600'000), 2u);
  EXPECT_EQ(apply_one(store, distinct("d", {"c"}), k_t0 + 3'600'000), 1u);
}

TEST(MemoryCounterStore, CountsEachDistinctMemberOnceAcrossSlots) {
  MemoryCounterStore store;
  EXPECT_EQ(apply_one(store, distinct("d", {"a", "b", "a"}), k_t0), 2u);
  EXPECT_EQ(apply_one(store, distinct("d", {"b", "c"}), k_t0 + 3000), 3u);
  EXPECT_EQ(apply_one(store, distinct("d", {}), k_t0 + 9000), 3u);
}

TEST(MemoryCounterStore, KeepsWholeOldestSlotForDistinctUntilItIsStale) {
  MemoryCounterStore store;
  apply_one(store, distinct("d", {"a"}), k_t0);
  apply_one(store, distinct("d", {"b"}), k_t0 + 1000);
  // Sets cannot be weighted: "a"'s slot counts until its last millisecond.
  EXPECT_EQ(apply_one(store, distinct("d", {}), k_t0 + 10'999), 2u);
  EXPECT_EQ(apply_one(store, distinct("d", {}), k_t0 + 11'000), 1u);
  EXPECT_EQ(apply_one(store, distinct("d", {}), k_t0 + 12'000), 0u);
}

TEST(MemoryCounterStore, KeepsKeysAndKindsIsolated) {
  MemoryCounterStore store;
  apply_one(store, sum("one", 5), k_t0);
  EXPECT_EQ(apply_one(store, sum("two", 1), k_t0), 1u);
  // A Distinct under the same key string is another counter.
  EXPECT_EQ(apply_one(store, distinct("one", {"m"}), k_t0), 1u);
  EXPECT_EQ(apply_one(store, sum("one", 0), k_t0), 5u);
}

TEST(MemoryCounterStore, SweepsKeysOnceTheirTtlHasPassed) {
  MemoryCounterStore store{{.max_keys = 100, .shard_count = 1}};
  for (int i = 0; i < 10; ++i) apply_one(store, sum("k" + std::to_string(i), 1), k_t0);
  EXPECT_EQ(store.key_count(), 10u);
  // TTL = W + 2L = 12 s; just before it everything is kept.
  apply_one(store, sum("other", 1), k_t0 + 11'999);
  EXPECT_EQ(store.key_count(), 11u);
  apply_one(store, sum("other", 1), k_t0 + 12'000);
  EXPECT_EQ(store.key_count(), 1u);
  EXPECT_EQ(store.evictions(), 0u);
}

TEST(MemoryCounterStore, NeverHoldsMoreThanMaxKeys) {
  MemoryCounterStore store{{.max_keys = 50, .shard_count = 1}};
  for (int i = 0; i < 500; ++i) apply_one(store, sum("k" + std::to_string(i), 1), k_t0 + i);
  EXPECT_EQ(store.key_count(), 50u);
  EXPECT_EQ(store.evictions(), 450u);
}

TEST(MemoryCounterStore, BoundsKeysPerShardWhenSharded) {
  MemoryCounterStore store{{.max_keys = 64, .shard_count = 16}};
  for (int i = 0; i < 1000; ++i) apply_one(store, sum("k" + std::to_string(i), 1), k_t0);
  EXPECT_LE(store.key_count(), 64u);
}

TEST(MemoryCounterStore, EvictsKeyClosestToExpiryWhenFull) {
  MemoryCounterStore store{{.max_keys = 2, .shard_count = 1}};
  apply_one(store, sum("old", 1), k_t0);
  apply_one(store, sum("fresh", 1), k_t0 + 1000);
  apply_one(store, sum("old", 1), k_t0 + 2000);  // rewritten: now expires last
  apply_one(store, sum("new", 1), k_t0 + 3000);  // evicts "fresh"
  EXPECT_EQ(apply_one(store, sum("old", 0), k_t0 + 3000), 2u);
  EXPECT_EQ(store.evictions(), 1u);
  // "fresh" starts over: its count was lost with it.
  EXPECT_EQ(apply_one(store, sum("fresh", 0), k_t0 + 3000), 0u);
}

TEST(MemoryCounterStore, EvictsCounterWrittenLeastRecentlyWhateverItsWindow) {
  MemoryCounterStore store{{.max_keys = 2, .shard_count = 1}};
  apply_one(store, sum("hourly", 1, seconds{3600}), k_t0);  // expires after 72 minutes
  apply_one(store, sum("short", 1), k_t0 + 1000);           // expires after 12 s
  apply_one(store, sum("new", 1), k_t0 + 2000);
  // The closest to expiry is "short", but "hourly" was written longest ago.
  EXPECT_EQ(store.evictions(), 1u);
  EXPECT_EQ(apply_one(store, sum("short", 0), k_t0 + 2000), 1u);
  EXPECT_EQ(apply_one(store, sum("hourly", 0, seconds{3600}), k_t0 + 2000), 0u);
}

TEST(MemoryCounterStore, SweepsExpiredCountersOfEveryWindow) {
  MemoryCounterStore store{{.max_keys = 100, .shard_count = 1}};
  for (int i = 0; i < 5; ++i) apply_one(store, sum("short" + std::to_string(i), 1), k_t0);
  for (int i = 0; i < 5; ++i) apply_one(store, distinct("long" + std::to_string(i), {"m"}, seconds{100}), k_t0);
  apply_one(store, sum("other", 1, seconds{1000}), k_t0 + 12'000);  // short ones: TTL 12 s
  EXPECT_EQ(store.key_count(), 6u);
  apply_one(store, sum("other", 1, seconds{1000}), k_t0 + 120'000);  // long ones: TTL 120 s
  EXPECT_EQ(store.key_count(), 1u);
  EXPECT_EQ(store.evictions(), 0u);
}

TEST(MemoryCounterStore, ReleasesAccountedBytesWhenCountersExpire) {
  MemoryCounterStore store{{.max_keys = 1000, .shard_count = 1}};
  apply_one(store, sum("s", 1), k_t0);
  apply_one(store, distinct("d", {"a", "b", "c"}), k_t0);
  const std::size_t with_two = store.memory_bytes();
  apply_one(store, sum("late", 1), k_t0 + 60'000);  // sweeps both, then adds one
  EXPECT_EQ(store.key_count(), 1u);
  MemoryCounterStore one{{.max_keys = 1000, .shard_count = 1}};
  apply_one(one, sum("late", 1), k_t0 + 60'000);
  // What is left is one Sum counter, plus the buckets the map keeps once grown.
  EXPECT_LT(store.memory_bytes(), with_two);
  EXPECT_LE(store.memory_bytes(), one.memory_bytes() + 64);
}

// Regression: the fallback store grew to 433 MB in the degradation benchmark
// (Redis killed, every message new content): it was bounded by keys only.
TEST(MemoryCounterStore, StaysWithinByteBudgetUnderAMillionFreshKeys) {
  constexpr std::size_t k_budget = std::size_t{1} << 20;
  const std::size_t heap_before = ::mallinfo2().uordblks;
  MemoryCounterStore store{{.shard_count = 4, .max_bytes = k_budget}};
  constexpr int k_keys = 1'000'000;
  std::size_t peak_accounted = 0;
  std::size_t peak_heap = 0;
  for (int i = 0; i < k_keys; ++i) {
    // A 10-minute window, so that nothing expires: only the bound frees.
    const CounterRequest request = i % 4 == 0 ? distinct("d" + std::to_string(i), {"a", "b", "c"}, seconds{600})
                                              : sum("s" + std::to_string(i), 1, seconds{600});
    apply_one(store, request, k_t0 + i / 10);
    if (i % 10'000 == 0) {
      peak_accounted = std::max(peak_accounted, store.memory_bytes());
      peak_heap = std::max(peak_heap, ::mallinfo2().uordblks - std::min(heap_before, ::mallinfo2().uordblks));
    }
  }
  EXPECT_LE(peak_accounted, k_budget) << "got " << peak_accounted << " accounted bytes, want at most " << k_budget;
  EXPECT_LE(store.memory_bytes(), k_budget);
  // The accounting follows the real heap: what malloc hands out stays
  // within the budget plus the store's fixed parts.
  EXPECT_LE(peak_heap, k_budget + k_budget / 4) << "got " << peak_heap << " heap bytes in use";
  EXPECT_EQ(store.key_count() + store.evictions(), static_cast<std::uint64_t>(k_keys));
  EXPECT_GT(store.evictions(), 900'000u);
}

TEST(MemoryCounterStore, KeepsCountersThatAreRewrittenWhileFreshKeysAreEvicted) {
  MemoryCounterStore store{{.shard_count = 1, .max_bytes = 64 * 1024}};
  std::uint64_t hot = 0;
  for (int i = 0; i < 100'000; ++i) {
    apply_one(store, sum("fresh" + std::to_string(i), 1, seconds{3600}), k_t0 + i);
    if (i % 100 == 0) hot = apply_one(store, sum("hot", 1, seconds{600}), k_t0 + i);
  }
  EXPECT_EQ(hot, 1000u);  // never evicted: written more recently than the fresh keys it outlived
  EXPECT_GT(store.evictions(), 99'000u);
  EXPECT_LE(store.memory_bytes(), 64u * 1024);
}

TEST(MemoryCounterStore, KeyReusedWithALongerWindowDoesNotDelayOthersExpiry) {
  MemoryCounterStore store{{.max_keys = 100, .shard_count = 1}};
  apply_one(store, sum("k", 1), k_t0);
  apply_one(store, sum("k", 1, seconds{3600}), k_t0 + 1000);  // now lives 72 minutes
  apply_one(store, sum("short", 1), k_t0 + 2000);              // TTL 12 s, as ever
  apply_one(store, sum("other", 1, seconds{3600}), k_t0 + 15'000);
  EXPECT_EQ(store.key_count(), 2u);  // "k" and "other"; "short" swept
}

TEST(MemoryCounterStore, EvictsEvenTheCounterJustWrittenWhenItAloneExceedsTheBudget) {
  MemoryCounterStore store{{.shard_count = 1, .max_bytes = 1024}};
  std::vector<std::string> members;
  for (int i = 0; i < 1000; ++i) members.push_back(std::to_string(i));
  // Its value is returned once, then it is gone: the budget holds.
  EXPECT_EQ(apply_one(store, distinct("big", members), k_t0), 1000u);
  EXPECT_EQ(store.key_count(), 0u);
  EXPECT_EQ(store.evictions(), 1u);
  EXPECT_LE(store.memory_bytes(), 1024u);
}

TEST(MemoryCounterStore, CapsMembersKeptPerDistinctSlot) {
  MemoryCounterStore store{{.shard_count = 1, .max_members_per_slot = 100}};
  for (int i = 0; i < 99; ++i) apply_one(store, distinct("d", {"m" + std::to_string(i)}), k_t0);
  EXPECT_EQ(apply_one(store, distinct("d", {"m99"}), k_t0), 100u);  // exact up to the cap
  EXPECT_EQ(apply_one(store, distinct("d", {"m100", "m101"}), k_t0), 100u);
  EXPECT_EQ(apply_one(store, distinct("d", {"m5"}), k_t0), 100u);  // members kept still count once
  // The next slot has room again: the union is at least the cap, at most the truth.
  EXPECT_EQ(apply_one(store, distinct("d", {"m100", "m200"}), k_t0 + 1000), 102u);
}

TEST(MemoryCounterStore, BoundsOneDistinctCounterFedAMillionMembers) {
  MemoryCounterStore store{{.shard_count = 1}};
  std::vector<std::string> members;
  std::uint64_t value = 0;
  for (int i = 0; i < 1'000'000; i += 100) {
    members.clear();
    for (int j = i; j < i + 100; ++j) members.push_back(std::to_string(j));
    value = apply_one(store, distinct("d", members, seconds{600}), k_t0);
  }
  EXPECT_EQ(value, 4096u);
  // One slot of 4096 hashes, the counter's node and slot array.
  EXPECT_LE(store.memory_bytes(), 4096u * 8 + 1024);
}

TEST(MemoryCounterStore, ConcurrentAppliesGiveExactTotals) {
  MemoryCounterStore store;
  constexpr int k_threads = 8;
  constexpr int k_messages = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < k_messages; ++i) {
        const std::vector<CounterRequest> requests{
            sum("messages", 1), sum("recipients", 3),
            distinct("rcpt", {"t" + std::to_string(t) + "-" + std::to_string(i % 100)}),
            sum("per-thread-" + std::to_string(t), 1)};
        const auto result = store.apply(requests, at_ms(k_t0 + i));
        ASSERT_TRUE(result.has_value());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::vector<CounterRequest> reads{sum("messages", 0), sum("recipients", 0),
                                          distinct("rcpt", {}), sum("per-thread-3", 0)};
  EXPECT_EQ(store.apply(reads, at_ms(k_t0 + k_messages)).value(),
            (CounterValues{k_threads * k_messages, 3 * k_threads * k_messages, k_threads * 100,
                           k_messages}));
}

TEST(MemoryCounterStore, SaturatesSumInsteadOfWrapping) {
  MemoryCounterStore store;
  apply_one(store, sum("k", UINT64_MAX - 1), k_t0);
  EXPECT_EQ(apply_one(store, sum("k", 5), k_t0), UINT64_MAX);
}

TEST(MemoryCounterStore, LabelsItselfLocal) {
  EXPECT_EQ(MemoryCounterStore{}.state_label(), "local");
}

}  // namespace
}  // namespace floodgate::ratelimit
