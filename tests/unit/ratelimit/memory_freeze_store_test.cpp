// MemoryFreezeStore: a refreeze keeps the first freeze, expiry, unfreeze,
// ordering, what it refuses, and concurrent freezes of one source.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/freeze_store.hpp"

namespace floodgate::ratelimit {
namespace {

using std::chrono::milliseconds;

constexpr std::int64_t k_t0 = 1'700'000'000'000;

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

Freeze make_freeze(std::string digest, std::int64_t since_ms, std::int64_t until_ms,
                   std::string reason = "same_content_rcpts_per_client=101>100 (+20)") {
  return Freeze{.source = "client=10.1.2.3 " + digest,
                .source_digest = std::move(digest),
                .rule = "same_content_rcpts_per_client",
                .reason = std::move(reason),
                .action = policy::Action::Quarantine,
                .since = at_ms(since_ms),
                .until = at_ms(until_ms),
                .incident = "20261127-120000-0a1b2c3d"};
}

std::vector<std::string> digests(const std::vector<Freeze>& freezes) {
  std::vector<std::string> result;
  for (const Freeze& freeze : freezes) result.push_back(freeze.source_digest);
  return result;
}

TEST(MemoryFreezeStore, NewFreezeIsActive) {
  auto store = make_memory_freeze_store();
  const Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000);
  ASSERT_EQ(store->freeze(freeze, at_ms(k_t0)), true);
  const auto active = store->active(at_ms(k_t0 + 1));
  ASSERT_TRUE(active.has_value());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front(), freeze);
}

TEST(MemoryFreezeStore, RefreezeKeepsTheFirstFreeze) {
  auto store = make_memory_freeze_store();
  const Freeze first = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000, "first");
  const Freeze second = make_freeze("0123456789abcdef", k_t0 + 10, k_t0 + 90'000, "second");
  ASSERT_EQ(store->freeze(first, at_ms(k_t0)), true);
  EXPECT_EQ(store->freeze(second, at_ms(k_t0 + 10)), false);
  const auto active = store->active(at_ms(k_t0 + 20));
  ASSERT_TRUE(active.has_value());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front(), first) << "got reason " << active->front().reason << ", want first";
}

TEST(MemoryFreezeStore, ExpiredFreezeIsDroppedAndMayBeReplaced) {
  auto store = make_memory_freeze_store();
  const Freeze first = make_freeze("0123456789abcdef", k_t0, k_t0 + 1'000, "first");
  ASSERT_EQ(store->freeze(first, at_ms(k_t0)), true);
  EXPECT_EQ(store->active(at_ms(k_t0 + 999))->size(), 1u);
  EXPECT_TRUE(store->active(at_ms(k_t0 + 1'000))->empty()) << "until is exclusive";

  const Freeze again = make_freeze("0123456789abcdef", k_t0 + 2'000, k_t0 + 5'000, "again");
  EXPECT_EQ(store->freeze(again, at_ms(k_t0 + 2'000)), true);
  EXPECT_EQ(store->active(at_ms(k_t0 + 2'001))->front(), again);
}

TEST(MemoryFreezeStore, ExpiredButNotYetCleanedFreezeIsReplaced) {
  auto store = make_memory_freeze_store();
  ASSERT_EQ(store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 1'000), at_ms(k_t0)), true);
  const Freeze again = make_freeze("0123456789abcdef", k_t0 + 1'000, k_t0 + 5'000, "again");
  EXPECT_EQ(store->freeze(again, at_ms(k_t0 + 1'000)), true);
  EXPECT_EQ(store->active(at_ms(k_t0 + 1'001))->front(), again);
}

TEST(MemoryFreezeStore, UnfreezeRemovesOnlyWhatIsFrozen) {
  auto store = make_memory_freeze_store();
  ASSERT_EQ(store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
  EXPECT_EQ(store->unfreeze("fedcba9876543210"), false);
  EXPECT_EQ(store->unfreeze("0123456789abcdef"), true);
  EXPECT_EQ(store->unfreeze("0123456789abcdef"), false);
  EXPECT_TRUE(store->active(at_ms(k_t0))->empty());
}

TEST(MemoryFreezeStore, ActiveIsSortedBySince) {
  auto store = make_memory_freeze_store();
  ASSERT_TRUE(store->freeze(make_freeze("cccccccccccccccc", k_t0 + 30, k_t0 + 60'000), at_ms(k_t0)));
  ASSERT_TRUE(store->freeze(make_freeze("aaaaaaaaaaaaaaaa", k_t0 + 20, k_t0 + 60'000), at_ms(k_t0)));
  ASSERT_TRUE(store->freeze(make_freeze("bbbbbbbbbbbbbbbb", k_t0 + 10, k_t0 + 60'000), at_ms(k_t0)));
  ASSERT_TRUE(store->freeze(make_freeze("0000000000000000", k_t0 + 20, k_t0 + 60'000), at_ms(k_t0)));
  const auto active = store->active(at_ms(k_t0 + 100));
  ASSERT_TRUE(active.has_value());
  EXPECT_EQ(digests(*active), (std::vector<std::string>{"bbbbbbbbbbbbbbbb", "0000000000000000",
                                                        "aaaaaaaaaaaaaaaa", "cccccccccccccccc"}));
}

TEST(MemoryFreezeStore, RefusesWhatTheRedisStoreRefuses) {
  auto store = make_memory_freeze_store();
  for (const std::string bad : {"", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0",
                                "0123456789abcdeg", "client=10.1.2.3"}) {
    const auto frozen = store->freeze(make_freeze(bad, k_t0, k_t0 + 60'000), at_ms(k_t0));
    ASSERT_FALSE(frozen.has_value()) << "digest '" << bad << "' was accepted";
    EXPECT_EQ(frozen.error().kind, CounterFailure::Kind::Protocol);
    const auto unfrozen = store->unfreeze(bad);
    ASSERT_FALSE(unfrozen.has_value()) << "digest '" << bad << "' was accepted by unfreeze";
    EXPECT_EQ(unfrozen.error().kind, CounterFailure::Kind::Protocol);
  }
  for (const policy::Action action : {policy::Action::Accept, policy::Action::Tag}) {
    Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000);
    freeze.action = action;
    const auto frozen = store->freeze(freeze, at_ms(k_t0));
    ASSERT_FALSE(frozen.has_value());
    EXPECT_EQ(frozen.error().kind, CounterFailure::Kind::Protocol);
  }
  EXPECT_TRUE(store->active(at_ms(k_t0))->empty());
}

TEST(MemoryFreezeStore, ConcurrentFreezesOfOneSourceMakeExactlyOneNewFreeze) {
  auto store = make_memory_freeze_store();
  constexpr int k_threads = 16;
  std::atomic<int> created{0};
  std::atomic<int> failed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < k_threads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      const auto result = store->freeze(
          make_freeze("0123456789abcdef", k_t0 + i, k_t0 + 60'000, std::to_string(i)), at_ms(k_t0 + i));
      if (!result) {
        ++failed;
      } else if (*result) {
        ++created;
      }
    });
  }
  go = true;
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(created.load(), 1) << "got " << created.load() << " new freezes, want 1";
  EXPECT_EQ(store->active(at_ms(k_t0 + 100))->size(), 1u);
}

}  // namespace
}  // namespace floodgate::ratelimit
