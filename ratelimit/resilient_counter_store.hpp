// ResilientCounterStore: Redis with a circuit breaker and a local fallback.
//
// SUMMARY
// Wraps a primary store (Redis) and a fallback (in-process). While the
// primary answers, every apply() goes to it. When it fails, the circuit
// opens: for retry_interval no call goes to the primary at all (a dead Redis
// costs each message nothing), then ONE call probes it; success closes the
// circuit, failure keeps it open for another retry_interval. Time is the
// `now` handed to apply(), so tests drive it.
//
// While the circuit is open, what a message gets depends on the mode
// (policy::CounterFailureMode, the `on_failure` setting):
//   Local     the fallback store answers; state_label() "local-fallback"
//   Accept    the failure is returned and the caller accepts unscored;
//   Tempfail  ... or tempfails; state_label() "unavailable" in both
// The failure that opened the circuit is returned as it was; calls refused
// by the open circuit get Kind::Unavailable with the last failure's detail.
//
// A Busy failure (every connection in use for the whole wait: this process
// is congested, Redis is not failing) gets the same answer for that one
// message but leaves the circuit as it is. Opening it would move every
// message for retry_interval onto this node's local counters exactly when
// traffic peaks; a Redis that really hangs is caught by the calls holding
// the connections, which time out.
//
// DIAGNOSTICS
// One log line per state change, not per message: spdlog warn when leaving
// Redis, info when back. transitions() counts them. Busy failures: one warn
// line at the first, then at most one per retry_interval with their count.
//
// LIMITS
// Fallback counters are this node's alone and start empty; what happened
// during the outage is not written back to Redis. A burst that straddles an
// outage is therefore seen in two halves.
//
// THREAD SAFETY
// Safe for concurrent use if both stores are. Only one thread probes at a
// time; the others keep using the fallback meanwhile.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "policy/config.hpp"
#include "ratelimit/counter_store.hpp"

namespace floodgate::ratelimit {

class ResilientCounterStore final : public CounterStore {
 public:
  // `fallback` may be null unless mode is Local.
  ResilientCounterStore(std::unique_ptr<CounterStore> primary,
                        std::unique_ptr<CounterStore> fallback, policy::CounterFailureMode mode,
                        std::chrono::milliseconds retry_interval);

  CounterResult apply(std::span<const policy::CounterRequest> requests,
                      TimePoint now) override;

  // "redis" while the circuit is closed; "local-fallback" (mode Local) or
  // "unavailable" (Accept, Tempfail) while it is open.
  std::string_view state_label() const override;
  std::string_view answered_by() const override;

  // State changes so far (opening and closing each count one).
  std::uint64_t transitions() const { return m_transitions.load(); }

  bool circuit_open() const { return m_open.load(); }

  // Told of every call that went to the primary (Redis), probes included:
  // how long it took and its failure (null on success). For metrics, which
  // only see the fallback's answer from outside. Set it before the store is
  // shared between threads (or clear it after); it runs on the caller's
  // thread and must not throw.
  using PrimaryObserver = std::function<void(std::chrono::nanoseconds, const CounterFailure*)>;
  void observe_primary(PrimaryObserver observer) { m_primary_observer = std::move(observer); }

 private:
  // Whether this call may use the primary: circuit closed, or open and due
  // for a probe no other thread is running.
  bool may_call_primary(TimePoint now);
  void record_success();
  void record_failure(const CounterFailure& failure, TimePoint now);
  void record_busy(const CounterFailure& failure, TimePoint now);
  // The answer while the primary is not used: the fallback's, or
  // `primary_failure` if this call just failed, or a circuit-open failure.
  CounterResult degraded(std::span<const policy::CounterRequest> requests, TimePoint now,
                         std::optional<CounterFailure> primary_failure);

  const std::unique_ptr<CounterStore> m_primary;
  const std::unique_ptr<CounterStore> m_fallback;
  const policy::CounterFailureMode m_mode;
  const std::chrono::milliseconds m_retry_interval;
  PrimaryObserver m_primary_observer;

  std::mutex m_mutex;  // guards the fields below, and makes transitions atomic
  TimePoint m_retry_at{};
  bool m_probing = false;
  std::string m_last_failure;
  TimePoint m_busy_logged_at{};
  std::uint64_t m_busy_unlogged = 0;  // Busy failures since the last busy line

  std::atomic<bool> m_open{false};
  std::atomic<std::uint64_t> m_transitions{0};
};

}  // namespace floodgate::ratelimit
