// CounterStore: applies a message's counter requests and returns the values.
//
// Contract:
// - apply() bumps every request and returns, in the same order, each
//   counter's windowed value *including* this update.
// - `now` is the caller's clock (milliseconds since the epoch); stores never
//   read a clock themselves, so tests can drive time.
// - A failure is a value (CounterFailure), never an exception: the caller
//   decides what a failed store means for the message (see
//   policy::CounterFailureMode).
// - Implementations are safe for concurrent use from many threads (libmilter
//   runs one thread per SMTP connection).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "policy/counter_request.hpp"

namespace floodgate::ratelimit {

using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

struct CounterFailure {
  // Busy: every connection to the store stayed in use for the whole wait.
  // That is congestion in this process (more sessions at end-of-message than
  // connections, or threads starved of CPU), not a failure of the store: the
  // calls holding the connections report the store's own failures.
  enum class Kind { Unavailable, Timeout, Protocol, Busy };
  Kind kind = Kind::Unavailable;
  std::string detail;  // human-readable, for logs
};

using CounterValues = std::vector<std::uint64_t>;
using CounterResult = tl::expected<CounterValues, CounterFailure>;

class CounterStore {
 public:
  virtual ~CounterStore() = default;

  virtual CounterResult apply(std::span<const policy::CounterRequest> requests,
                              TimePoint now) = 0;

  // Short label for logs and metrics ("redis", "local", "local-fallback").
  virtual std::string_view state_label() const = 0;

  // The label of the store that answered the calling thread's last apply():
  // state_label() for a plain store; a wrapper that can answer one message
  // from another store (ResilientCounterStore, for a busy pool) says which,
  // so a verdict names the counters it was really scored with.
  virtual std::string_view answered_by() const { return state_label(); }
};

}  // namespace floodgate::ratelimit
