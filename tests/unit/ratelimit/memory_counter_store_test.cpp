// MemoryCounterStore: window behaviour over injected time, isolation,
// expiry, the key bound and concurrent use.
#include "ratelimit/memory_counter_store.hpp"

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
