// SlidingWindow: the slot arithmetic every CounterStore shares.
//
// SUMMARY
// A window of W milliseconds is cut into k_window_slots (10) slots of
// L = ceil(W / 10) ms each. The slot an instant `now` falls into is
// s = floor(now_ms / L). Counters keep one count (Sum) or one member set
// (Distinct) per slot and read them like this:
//
//   Sum      = count(s-9) + ... + count(s)
//              + floor(count(s-10) * (L - now_ms % L) / L)
//   Distinct = | members(s-10) ∪ ... ∪ members(s) |
//
// The oldest slot, s-10, is only partly inside the window [now-W, now]; a
// Sum weights it by the fraction that still overlaps (L - now_ms % L) / L so
// the total decays smoothly instead of dropping a whole slot at a boundary.
// Sets cannot be weighted, so a Distinct counts the whole oldest slot: it
// may remember a member for up to L ms longer than W.
// Slots older than s-10 can never be read again and are dropped.
//
// TTL: a key written in slot s must outlive the read at the end of slot
// s+10, which is at most 11 L after the write. Keys therefore get a TTL of
// W + 2L (>= 12 L - 9 ms, i.e. always enough once L >= 9 ms, which every
// window of a second or more satisfies), refreshed on each write.
//
// This class is pure arithmetic: no clock, no I/O, no state beyond the two
// numbers it is built from. The Lua script in counter_script.hpp repeats
// the same formulas; tests/integration/redis compares the two.
//
// LIMITS
// - Windows shorter than k_window_slots ms are treated as k_window_slots ms
//   (L is at least 1 ms). Times before the epoch are clamped to 0.
// - The oldest-slot weighting is computed in 128 bits and the sum saturates
//   at UINT64_MAX instead of wrapping.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "ratelimit/counter_store.hpp"

namespace floodgate::ratelimit {

inline constexpr std::int64_t k_window_slots = 10;

// Slots a read looks at: s-10 (weighted for a Sum) through s.
inline constexpr std::size_t k_slots_read = k_window_slots + 1;

class SlidingWindow {
 public:
  SlidingWindow(std::chrono::milliseconds window, TimePoint now);

  std::int64_t window_ms() const { return m_window_ms; }
  std::int64_t slot_length_ms() const { return m_slot_ms; }
  std::int64_t now_ms() const { return m_now_ms; }

  // s: the slot `now` falls into, where this update is counted.
  std::int64_t current_slot() const { return m_now_ms / m_slot_ms; }

  // s-10: the oldest slot a read still looks at.
  std::int64_t oldest_slot() const { return current_slot() - k_window_slots; }

  // A slot older than oldest_slot() can be deleted.
  bool is_stale(std::int64_t slot) const { return slot < oldest_slot(); }

  // The part of the oldest slot's count that still lies inside the window:
  // floor(count * (L - now % L) / L).
  std::uint64_t weighted_oldest(std::uint64_t count) const;

  // Sum value from the counts of slots s-10..s (counts[0] is slot s-10).
  std::uint64_t sum(std::span<const std::uint64_t, k_slots_read> counts) const;

  // How long a key written now must live: W + 2L.
  std::chrono::milliseconds key_ttl() const {
    return std::chrono::milliseconds{m_window_ms + 2 * m_slot_ms};
  }

 private:
  std::int64_t m_window_ms;
  std::int64_t m_slot_ms;
  std::int64_t m_now_ms;
};

// Saturating addition, so that counters stick at their maximum.
inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t total = a + b;
  return total < a ? UINT64_MAX : total;
}

}  // namespace floodgate::ratelimit
