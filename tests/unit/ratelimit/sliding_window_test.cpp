// The slot arithmetic shared by both stores (ratelimit/sliding_window.hpp).
#include "ratelimit/sliding_window.hpp"

#include <array>
#include <chrono>
#include <cstdint>

#include <gtest/gtest.h>

namespace floodgate::ratelimit {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

// A round number of seconds, so slot boundaries of second-multiple slots
// fall on it.
constexpr std::int64_t k_t0 = 1'700'000'000'000;

TEST(SlidingWindow, CutsWindowIntoTenSlotsRoundedUp) {
  struct Case {
    milliseconds window;
    std::int64_t want_slot_ms;
  };
  for (const Case& c : {Case{seconds{600}, 60'000}, Case{seconds{1}, 100},
                        Case{milliseconds{15}, 2}, Case{milliseconds{101}, 11}}) {
    const SlidingWindow window{c.window, at_ms(k_t0)};
    EXPECT_EQ(window.slot_length_ms(), c.want_slot_ms) << "window " << c.window.count() << " ms";
  }
}

TEST(SlidingWindow, TreatsWindowsShorterThanTenMsAsTenMs) {
  const SlidingWindow window{milliseconds{3}, at_ms(k_t0)};
  EXPECT_EQ(window.window_ms(), 10);
  EXPECT_EQ(window.slot_length_ms(), 1);
}

TEST(SlidingWindow, PlacesNowInSlotByIntegerDivision) {
  const SlidingWindow start{seconds{10}, at_ms(k_t0)};
  const SlidingWindow last_ms{seconds{10}, at_ms(k_t0 + 999)};
  const SlidingWindow next{seconds{10}, at_ms(k_t0 + 1000)};
  EXPECT_EQ(start.current_slot(), k_t0 / 1000);
  EXPECT_EQ(last_ms.current_slot(), k_t0 / 1000);
  EXPECT_EQ(next.current_slot(), k_t0 / 1000 + 1);
  EXPECT_EQ(next.oldest_slot(), k_t0 / 1000 + 1 - 10);
}

TEST(SlidingWindow, CallsOnlySlotsBeforeOldestStale) {
  const SlidingWindow window{seconds{10}, at_ms(k_t0)};
  EXPECT_FALSE(window.is_stale(window.oldest_slot()));
  EXPECT_TRUE(window.is_stale(window.oldest_slot() - 1));
  EXPECT_FALSE(window.is_stale(window.current_slot()));
}

TEST(SlidingWindow, WeightsOldestSlotByItsOverlapWithWindow) {
  struct Case {
    std::int64_t offset_ms;  // now % L, L = 1000
    std::uint64_t count;
    std::uint64_t want;
  };
  for (const Case& c : {Case{0, 1000, 1000},   // slot boundary: fully inside
                        Case{500, 1000, 500},  // half gone
                        Case{999, 1000, 1},    // 1 ms of it left
                        Case{999, 999, 0},     // floor, never rounds up
                        Case{250, 3, 2}}) {    // floor(3 * 750 / 1000)
    const SlidingWindow window{seconds{10}, at_ms(k_t0 + c.offset_ms)};
    EXPECT_EQ(window.weighted_oldest(c.count), c.want)
        << "offset " << c.offset_ms << " count " << c.count;
  }
}

TEST(SlidingWindow, SumsNewerSlotsFullyAndOldestWeighted) {
  const SlidingWindow window{seconds{10}, at_ms(k_t0 + 500)};
  const std::array<std::uint64_t, k_slots_read> counts{10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(window.sum(counts), 5u + 10u);
}

TEST(SlidingWindow, SumSaturatesInsteadOfWrapping) {
  const SlidingWindow window{seconds{10}, at_ms(k_t0)};
  std::array<std::uint64_t, k_slots_read> counts{};
  counts[9] = UINT64_MAX - 1;
  counts[10] = 5;
  EXPECT_EQ(window.sum(counts), UINT64_MAX);
}

TEST(SlidingWindow, WeightsHugeOldestCountWithoutOverflow) {
  // 1 ms into a slot of a one-day window: (L - 1) / L of the count remains.
  constexpr std::int64_t k_slot_ms = 8'640'000;
  const SlidingWindow window{seconds{86'400}, at_ms(k_slot_ms * 200'000 + 1)};
  const std::uint64_t weighted = window.weighted_oldest(UINT64_MAX);
  EXPECT_LT(weighted, UINT64_MAX);
  EXPECT_GT(weighted, UINT64_MAX - UINT64_MAX / 1000);
}

TEST(SlidingWindow, KeyTtlIsWindowPlusTwoSlots) {
  EXPECT_EQ(SlidingWindow(seconds{600}, at_ms(k_t0)).key_ttl(), milliseconds{720'000});
  EXPECT_EQ(SlidingWindow(milliseconds{15}, at_ms(k_t0)).key_ttl(), milliseconds{19});
}

TEST(SlidingWindow, KeyTtlOutlivesLastReadOfTheSlotWritten) {
  // Written at the very start of slot s, the slot is read until the end of
  // slot s+10, 11 L later.
  for (const milliseconds w : {milliseconds{1000}, milliseconds{60'000}, milliseconds{86'400'000}}) {
    const SlidingWindow window{w, at_ms(k_t0)};
    EXPECT_GE(window.key_ttl().count(), 11 * window.slot_length_ms()) << w.count();
  }
}

TEST(SlidingWindow, ClampsTimesBeforeEpochToZero) {
  const SlidingWindow window{seconds{10}, at_ms(-5)};
  EXPECT_EQ(window.now_ms(), 0);
  EXPECT_EQ(window.current_slot(), 0);
}

}  // namespace
}  // namespace floodgate::ratelimit
