// make_counter_store: which stack each setting builds.
#include "ratelimit/counter_store_factory.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::ratelimit {
namespace {

using policy::CounterFailureMode;
using policy::CounterKind;
using policy::CounterRequest;

const std::vector<CounterRequest> k_message{
    CounterRequest{.key = "fg:{s}:msgs:60", .kind = CounterKind::Sum,
                   .window = std::chrono::seconds{60}, .amount = 1, .members = {}}};

const TimePoint k_now{std::chrono::milliseconds{1'700'000'000'000}};

// Port 1 on loopback: nothing listens, so connecting is refused at once.
policy::RedisSettings unreachable(CounterFailureMode mode) {
  policy::RedisSettings settings;
  settings.url = "redis://127.0.0.1:1";
  settings.on_failure = mode;
  return settings;
}

TEST(CounterStoreFromRedisSettings, BuildsLocalStoreWhenNoRedisUrl) {
  policy::RedisSettings settings;
  settings.url = "";
  auto store = make_counter_store(settings);
  ASSERT_TRUE(store.has_value()) << store.error();
  EXPECT_EQ((*store)->state_label(), "local");
  EXPECT_EQ((*store)->apply(k_message, k_now).value(), CounterValues{1});
}

TEST(CounterStoreFromRedisSettings, ReportsBadUrl) {
  policy::RedisSettings settings;
  settings.url = "redis://host:0";
  const auto store = make_counter_store(settings);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error(), "redis.url: redis URL 'redis://host:0': port must be 1-65535");
}

TEST(CounterStoreFromRedisSettings, FallsBackToLocalCountersWhenRedisRefusesInLocalMode) {
  auto store = make_counter_store(unreachable(CounterFailureMode::Local)).value();
  EXPECT_EQ(store->state_label(), "redis");
  EXPECT_EQ(store->apply(k_message, k_now).value(), CounterValues{1});
  EXPECT_EQ(store->state_label(), "local-fallback");
}

TEST(CounterStoreFromRedisSettings, ReturnsFailureWhenRedisRefusesInTempfailMode) {
  auto store = make_counter_store(unreachable(CounterFailureMode::Tempfail)).value();
  const auto result = store->apply(k_message, k_now);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_NE(result.error().detail.find("connect to 127.0.0.1:1"), std::string::npos)
      << result.error().detail;
  EXPECT_EQ(store->state_label(), "unavailable");
}

TEST(CounterStoreFromRedisSettings, SentinelFailureNamesEverySentinelAskedAndWhatHappened) {
  policy::RedisSettings settings = unreachable(CounterFailureMode::Tempfail);
  settings.url = "redis://:never-shown@ignored.invalid:6379";
  settings.sentinel.master_name = "mymaster";
  settings.sentinel.addresses = {"127.0.0.1:1", "127.0.0.1:2"};
  auto store = make_counter_store(settings).value();
  const auto result = store->apply(k_message, k_now);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_EQ(result.error().detail,
            "no master 'mymaster' from the sentinels: connect to sentinel 127.0.0.1:1: Connection refused; "
            "connect to sentinel 127.0.0.1:2: Connection refused");
}

// Sum counters with keys nobody used before, one message's worth each.
std::vector<CounterRequest> fresh_sums(std::size_t first, std::size_t count) {
  std::vector<CounterRequest> requests;
  for (std::size_t i = first; i < first + count; ++i) {
    requests.push_back(CounterRequest{.key = "fg:{fill}:" + std::to_string(i), .kind = CounterKind::Sum,
                                      .window = std::chrono::seconds{60}, .amount = 1, .members = {}});
  }
  return requests;
}

// Writes one counter, then about `bytes` of other counters, then that
// counter again: 2 if it was kept, 1 if the store evicted it to stay within
// its budget.
std::uint64_t first_counter_after_filling(CounterStore& store, std::size_t bytes) {
  // What a Sum counter costs the in-process store, measured on one.
  MemoryCounterStore probe{{.shard_count = 1}};
  EXPECT_TRUE(probe.apply(fresh_sums(0, 1000), k_now).has_value());
  const std::size_t counters = bytes / (probe.memory_bytes() / 1000);
  EXPECT_TRUE(store.apply(k_message, k_now).has_value());
  for (std::size_t first = 0; first < counters; first += 1000) {
    EXPECT_TRUE(store.apply(fresh_sums(first, 1000), k_now).has_value());
  }
  return store.apply(k_message, k_now).value().front();
}

TEST(CounterStoreFromRedisSettings, LocalStoreWithoutRedisKeepsSixteenMebibytesOfCounters) {
  policy::RedisSettings settings;
  settings.url = "";
  auto store = make_counter_store(settings).value();
  EXPECT_EQ(first_counter_after_filling(*store, std::size_t{12} << 20), 2u);
}

TEST(CounterStoreFromRedisSettings, FallbackStoreKeepsAtMostEightMebibytesOfCounters) {
  // Bounds the daemon's RSS when Redis is away or its pool busy; eviction
  // keeps what a burst keeps writing (memory_counter_store.hpp).
  auto store = make_counter_store(unreachable(CounterFailureMode::Local)).value();
  EXPECT_EQ(first_counter_after_filling(*store, std::size_t{12} << 20), 1u);
  EXPECT_EQ(store->state_label(), "local-fallback");
  auto again = make_counter_store(unreachable(CounterFailureMode::Local)).value();
  EXPECT_EQ(first_counter_after_filling(*again, std::size_t{6} << 20), 2u);
}

}  // namespace
}  // namespace floodgate::ratelimit
