#include "ratelimit/sliding_window.hpp"

#include <algorithm>

namespace floodgate::ratelimit {

SlidingWindow::SlidingWindow(std::chrono::milliseconds window, TimePoint now)
    : m_window_ms{std::max<std::int64_t>(window.count(), k_window_slots)},
      // ceil(W / 10) without floating point.
      m_slot_ms{(m_window_ms + k_window_slots - 1) / k_window_slots},
      m_now_ms{std::max<std::int64_t>(now.time_since_epoch().count(), 0)} {}

std::uint64_t SlidingWindow::weighted_oldest(std::uint64_t count) const {
  const auto overlap = static_cast<unsigned __int128>(m_slot_ms - m_now_ms % m_slot_ms);
  const auto weighted =
      static_cast<unsigned __int128>(count) * overlap / static_cast<unsigned __int128>(m_slot_ms);
  // overlap <= L, so the result never exceeds `count`.
  return static_cast<std::uint64_t>(weighted);
}

std::uint64_t SlidingWindow::sum(std::span<const std::uint64_t, k_slots_read> counts) const {
  std::uint64_t total = weighted_oldest(counts[0]);
  for (std::size_t i = 1; i < counts.size(); ++i) total = saturating_add(total, counts[i]);
  return total;
}

}  // namespace floodgate::ratelimit
