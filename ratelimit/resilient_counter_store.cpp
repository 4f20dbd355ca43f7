#include "ratelimit/resilient_counter_store.hpp"

#include <stdexcept>
#include <utility>

#include <spdlog/spdlog.h>

namespace floodgate::ratelimit {

ResilientCounterStore::ResilientCounterStore(std::unique_ptr<CounterStore> primary,
                                             std::unique_ptr<CounterStore> fallback,
                                             policy::CounterFailureMode mode,
                                             std::chrono::milliseconds retry_interval)
    : m_primary{std::move(primary)},
      m_fallback{std::move(fallback)},
      m_mode{mode},
      m_retry_interval{retry_interval} {
  if (!m_primary) throw std::invalid_argument("ResilientCounterStore: no primary store");
  if (mode == policy::CounterFailureMode::Local && !m_fallback) {
    throw std::invalid_argument("ResilientCounterStore: mode local needs a fallback store");
  }
}

namespace {
// Per thread: apply() and the caller's answered_by() run on the same thread.
thread_local std::string_view t_answered_by;
}  // namespace

std::string_view ResilientCounterStore::answered_by() const {
  return t_answered_by.empty() ? state_label() : t_answered_by;
}

std::string_view ResilientCounterStore::state_label() const {
  if (!m_open.load()) return m_primary->state_label();
  return m_mode == policy::CounterFailureMode::Local ? "local-fallback" : "unavailable";
}

CounterResult ResilientCounterStore::apply(std::span<const policy::CounterRequest> requests,
                                           TimePoint now) {
  if (!may_call_primary(now)) return degraded(requests, now, std::nullopt);
  const auto started = std::chrono::steady_clock::now();
  CounterResult result = m_primary->apply(requests, now);
  if (m_primary_observer) m_primary_observer(std::chrono::steady_clock::now() - started, result ? nullptr : &result.error());
  if (result) {
    record_success();
    t_answered_by = m_primary->state_label();
    return result;
  }
  if (result.error().kind == CounterFailure::Kind::Busy) {
    record_busy(result.error(), now);
    return degraded(requests, now, std::move(result.error()));
  }
  record_failure(result.error(), now);
  return degraded(requests, now, std::move(result.error()));
}

bool ResilientCounterStore::may_call_primary(TimePoint now) {
  if (!m_open.load()) return true;
  const std::lock_guard lock{m_mutex};
  if (!m_open.load()) return true;  // closed meanwhile by another thread
  if (m_probing || now < m_retry_at) return false;
  m_probing = true;
  return true;
}

void ResilientCounterStore::record_success() {
  if (!m_open.load()) return;
  const std::lock_guard lock{m_mutex};
  m_probing = false;
  if (!m_open.exchange(false)) return;
  ++m_transitions;
  spdlog::info("counter_store=redis event=recovered previous_failure=\"{}\"", m_last_failure);
}

void ResilientCounterStore::record_failure(const CounterFailure& failure, TimePoint now) {
  const std::lock_guard lock{m_mutex};
  m_probing = false;
  m_retry_at = now + m_retry_interval;
  m_last_failure = failure.detail;
  if (m_open.exchange(true)) return;
  ++m_transitions;
  spdlog::warn("counter_store={} event=degraded reason=\"{}\" retry_in_ms={}",
               m_mode == policy::CounterFailureMode::Local ? "local-fallback" : "unavailable",
               failure.detail, m_retry_interval.count());
}

void ResilientCounterStore::record_busy(const CounterFailure& failure, TimePoint now) {
  const std::lock_guard lock{m_mutex};
  m_probing = false;  // a busy probe proved nothing: the next message probes again
  ++m_busy_unlogged;
  if (m_busy_logged_at != TimePoint{} && now < m_busy_logged_at + m_retry_interval) return;
  spdlog::warn("counter_store=redis event=busy reason=\"{}\" messages={} answer={}", failure.detail, m_busy_unlogged,
               m_mode == policy::CounterFailureMode::Local ? "local-counters" : "as-on-failure");
  m_busy_logged_at = now;
  m_busy_unlogged = 0;
}

CounterResult ResilientCounterStore::degraded(std::span<const policy::CounterRequest> requests,
                                              TimePoint now,
                                              std::optional<CounterFailure> primary_failure) {
  if (m_mode == policy::CounterFailureMode::Local) {
    t_answered_by = "local-fallback";
    return m_fallback->apply(requests, now);
  }
  t_answered_by = "unavailable";
  if (primary_failure) return tl::unexpected{std::move(*primary_failure)};
  std::string last;
  {
    const std::lock_guard lock{m_mutex};
    last = m_last_failure;
  }
  return tl::unexpected{CounterFailure{CounterFailure::Kind::Unavailable,
                                       "counter store circuit open after: " + last}};
}

}  // namespace floodgate::ratelimit
