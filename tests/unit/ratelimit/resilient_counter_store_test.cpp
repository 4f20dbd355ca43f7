// ResilientCounterStore: fallback, circuit breaker, one log line per state
// change, and the accept/tempfail modes, with a primary that fails on cue.
#include "ratelimit/resilient_counter_store.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::ratelimit {
namespace {

using policy::CounterFailureMode;
using policy::CounterKind;
using policy::CounterRequest;
using std::chrono::milliseconds;

// A primary store that answers like a real one (from its own memory store)
// until told to fail, and counts how often it was asked.
class FaultyCounterStore final : public CounterStore {
 public:
  CounterResult apply(std::span<const CounterRequest> requests, TimePoint now) override {
    ++m_calls;
    if (m_failing) {
      return tl::unexpected{m_failure_kind == CounterFailure::Kind::Busy
                                ? CounterFailure{CounterFailure::Kind::Busy, "all 8 redis connections busy for 200 ms"}
                                : CounterFailure{m_failure_kind, "injected timeout"}};
    }
    return m_backing.apply(requests, now);
  }
  std::string_view state_label() const override { return "redis"; }

  void set_failing(bool failing, CounterFailure::Kind kind = CounterFailure::Kind::Timeout) {
    m_failure_kind = kind;
    m_failing = failing;
  }
  int calls() const { return m_calls; }

 private:
  MemoryCounterStore m_backing;
  std::atomic<bool> m_failing{false};
  std::atomic<CounterFailure::Kind> m_failure_kind{CounterFailure::Kind::Timeout};
  std::atomic<int> m_calls{0};
};

// Captures what the store logs, through spdlog's default logger.
class LogCapture {
 public:
  LogCapture()
      : m_sink{std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100)},
        m_previous{spdlog::default_logger()} {
    auto logger = std::make_shared<spdlog::logger>("capture", m_sink);
    logger->set_level(spdlog::level::trace);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(m_previous); }

  std::vector<std::string> lines() const { return m_sink->last_formatted(); }

  std::size_t count(std::string_view prefix) const {
    std::size_t n = 0;
    for (const auto& line : lines()) n += line.starts_with(prefix) ? 1 : 0;
    return n;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> m_sink;
  std::shared_ptr<spdlog::logger> m_previous;
};

constexpr milliseconds k_retry{5000};
constexpr std::int64_t k_t0 = 1'700'000'000'000;

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

const std::vector<CounterRequest> k_one_message{
    CounterRequest{.key = "fg:{s}:msgs:600", .kind = CounterKind::Sum,
                   .window = std::chrono::seconds{600}, .amount = 1, .members = {}}};

struct Stack {
  FaultyCounterStore* primary;  // owned by `store`
  MemoryCounterStore* fallback;
  std::unique_ptr<ResilientCounterStore> store;
};

Stack make_stack(CounterFailureMode mode, MemoryCounterStoreOptions fallback_options = {}) {
  auto primary = std::make_unique<FaultyCounterStore>();
  auto fallback = std::make_unique<MemoryCounterStore>(fallback_options);
  Stack stack{primary.get(), fallback.get(), nullptr};
  stack.store = std::make_unique<ResilientCounterStore>(std::move(primary), std::move(fallback),
                                                        mode, k_retry);
  return stack;
}

TEST(ResilientCounterStore, UsesPrimaryWhileItAnswers) {
  auto stack = make_stack(CounterFailureMode::Local);
  EXPECT_EQ(stack.store->apply(k_one_message, at_ms(k_t0)).value(), CounterValues{1});
  EXPECT_EQ(stack.store->apply(k_one_message, at_ms(k_t0 + 1)).value(), CounterValues{2});
  EXPECT_EQ(stack.primary->calls(), 2);
  EXPECT_EQ(stack.fallback->key_count(), 0u);
  EXPECT_EQ(stack.store->state_label(), "redis");
  EXPECT_EQ(stack.store->transitions(), 0u);
}

TEST(ResilientCounterStore, AnswersFromFallbackWhenPrimaryFailsInLocalMode) {
  LogCapture log;
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true);
  const auto result = stack.store->apply(k_one_message, at_ms(k_t0));
  ASSERT_TRUE(result.has_value()) << result.error().detail;
  EXPECT_EQ(*result, CounterValues{1});
  EXPECT_EQ(stack.fallback->key_count(), 1u);
  EXPECT_EQ(stack.store->state_label(), "local-fallback");
  EXPECT_TRUE(stack.store->circuit_open());
  EXPECT_EQ(stack.store->transitions(), 1u);
  EXPECT_EQ(log.count("warning counter_store=local-fallback event=degraded"), 1u);
}

// Regression: with Redis killed, the local fallback grew with every new
// content (45 MB to 433 MB of RSS in the degradation benchmark).
TEST(ResilientCounterStore, FallbackStaysWithinItsByteBudgetThroughALongOutage) {
  constexpr std::size_t k_budget = 256 * 1024;
  auto stack = make_stack(CounterFailureMode::Local, {.shard_count = 4, .max_bytes = k_budget});
  stack.primary->set_failing(true);
  for (int i = 0; i < 200'000; ++i) {
    const std::string content = std::to_string(i);
    const std::vector<CounterRequest> message{
        CounterRequest{.key = "fg:{c" + content + "}:crcpts:600", .kind = CounterKind::Sum,
                       .window = std::chrono::seconds{600}, .amount = 3, .members = {}},
        CounterRequest{.key = "fg:{c" + content + "}:csrc:600", .kind = CounterKind::Distinct,
                       .window = std::chrono::seconds{600}, .amount = 0, .members = {"client" + content}}};
    ASSERT_TRUE(stack.store->apply(message, at_ms(k_t0 + i)).has_value());
  }
  EXPECT_EQ(stack.store->state_label(), "local-fallback");
  EXPECT_LE(stack.fallback->memory_bytes(), k_budget);
  EXPECT_GT(stack.fallback->evictions(), 390'000u);
}

TEST(ResilientCounterStore, LeavesPrimaryAloneUntilRetryInterval) {
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true);
  stack.store->apply(k_one_message, at_ms(k_t0));
  for (int i = 1; i < 100; ++i) {
    ASSERT_TRUE(stack.store->apply(k_one_message, at_ms(k_t0 + i * 50)).has_value());
  }
  EXPECT_EQ(stack.primary->calls(), 1);
  EXPECT_EQ(stack.fallback->apply(k_one_message, at_ms(k_t0 + 5000)).value(), CounterValues{101});
}

TEST(ResilientCounterStore, LogsAndCountsOneTransitionForManyFailedMessages) {
  LogCapture log;
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true);
  // Several retry intervals, each ending in a failed probe.
  for (int i = 0; i < 300; ++i) stack.store->apply(k_one_message, at_ms(k_t0 + i * 100));
  EXPECT_EQ(stack.store->transitions(), 1u);
  EXPECT_EQ(log.lines().size(), 1u);
  // The first failure, then a probe at +5 s, +10 s, ... +25 s.
  EXPECT_EQ(stack.primary->calls(), 6);
}

TEST(ResilientCounterStore, ProbesPrimaryOnceAfterRetryInterval) {
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true);
  stack.store->apply(k_one_message, at_ms(k_t0));
  stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count() - 1));
  EXPECT_EQ(stack.primary->calls(), 1);
  stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count()));
  EXPECT_EQ(stack.primary->calls(), 2);
  // The failed probe restarts the interval from its own time.
  stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count() + 1));
  EXPECT_EQ(stack.primary->calls(), 2);
  EXPECT_TRUE(stack.store->circuit_open());
}

TEST(ResilientCounterStore, ReturnsToPrimaryWhenProbeSucceeds) {
  LogCapture log;
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true);
  stack.store->apply(k_one_message, at_ms(k_t0));
  stack.primary->set_failing(false);
  // Recovered, but not asked before the interval is over.
  stack.store->apply(k_one_message, at_ms(k_t0 + 10));
  EXPECT_EQ(stack.store->state_label(), "local-fallback");

  const auto probe = stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count()));
  ASSERT_TRUE(probe.has_value());
  EXPECT_EQ(*probe, CounterValues{1});  // the primary's own count
  EXPECT_EQ(stack.store->state_label(), "redis");
  EXPECT_FALSE(stack.store->circuit_open());
  EXPECT_EQ(stack.store->transitions(), 2u);
  stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count() + 1));
  EXPECT_EQ(stack.primary->calls(), 3);
  EXPECT_EQ(log.count("warning "), 1u);
  EXPECT_EQ(log.count("info counter_store=redis event=recovered"), 1u);
}

TEST(ResilientCounterStore, CountsEveryStateChangeOverRepeatedOutages) {
  auto stack = make_stack(CounterFailureMode::Local);
  std::int64_t now = k_t0;
  for (int outage = 0; outage < 3; ++outage) {
    stack.primary->set_failing(true);
    stack.store->apply(k_one_message, at_ms(now));
    stack.primary->set_failing(false);
    now += k_retry.count();
    stack.store->apply(k_one_message, at_ms(now));
  }
  EXPECT_EQ(stack.store->transitions(), 6u);
}

class ResilientCounterStoreFailureMode : public testing::TestWithParam<CounterFailureMode> {};

TEST_P(ResilientCounterStoreFailureMode, ReturnsFailureForCallerToApplyMode) {
  auto stack = make_stack(GetParam());
  stack.primary->set_failing(true);
  const auto first = stack.store->apply(k_one_message, at_ms(k_t0));
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().kind, CounterFailure::Kind::Timeout);
  EXPECT_EQ(first.error().detail, "injected timeout");
  EXPECT_EQ(stack.store->state_label(), "unavailable");

  // While open, refused without asking the primary, and never from local.
  const auto refused = stack.store->apply(k_one_message, at_ms(k_t0 + 1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_EQ(refused.error().detail, "counter store circuit open after: injected timeout");
  EXPECT_EQ(stack.primary->calls(), 1);
  EXPECT_EQ(stack.fallback->key_count(), 0u);

  stack.primary->set_failing(false);
  EXPECT_TRUE(stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count())).has_value());
  EXPECT_EQ(stack.store->state_label(), "redis");
}

INSTANTIATE_TEST_SUITE_P(AcceptAndTempfail, ResilientCounterStoreFailureMode,
                         testing::Values(CounterFailureMode::Accept,
                                         CounterFailureMode::Tempfail));

// Congestion in this process (every pooled connection in use) is not a Redis
// failure: that message gets the fallback's answer, the next one goes to
// Redis again. Opening the circuit here put a third of the messages of a
// busy run on local counters, flapping degraded/recovered on every message.
TEST(ResilientCounterStore, BusyPoolAnswersThatMessageLocallyWithoutOpeningTheCircuit) {
  LogCapture log;
  auto stack = make_stack(CounterFailureMode::Local);
  ASSERT_TRUE(stack.store->apply(k_one_message, at_ms(k_t0)).has_value());
  stack.primary->set_failing(true, CounterFailure::Kind::Busy);
  const auto busy = stack.store->apply(k_one_message, at_ms(k_t0 + 1));
  ASSERT_TRUE(busy.has_value()) << busy.error().detail;
  EXPECT_EQ(*busy, CounterValues{1}) << "the fallback's own count";
  EXPECT_EQ(stack.store->answered_by(), "local-fallback") << "what the verdict line says it was scored with";
  EXPECT_FALSE(stack.store->circuit_open());
  EXPECT_EQ(stack.store->state_label(), "redis");
  EXPECT_EQ(stack.store->transitions(), 0u);

  stack.primary->set_failing(false);
  const int calls_before = stack.primary->calls();
  EXPECT_EQ(stack.store->apply(k_one_message, at_ms(k_t0 + 2)).value(), CounterValues{2}) << "Redis's count";
  EXPECT_EQ(stack.primary->calls(), calls_before + 1) << "the next message goes straight to Redis";
  EXPECT_EQ(stack.store->answered_by(), "redis");
  EXPECT_EQ(log.count("warning counter_store=local-fallback event=degraded"), 0u);
  EXPECT_EQ(log.count("info counter_store=redis event=recovered"), 0u);
}

TEST(ResilientCounterStore, BusyPoolIsLoggedOncePerRetryIntervalWithItsCount) {
  LogCapture log;
  auto stack = make_stack(CounterFailureMode::Local);
  stack.primary->set_failing(true, CounterFailure::Kind::Busy);
  for (int i = 0; i < 50; ++i) (void)stack.store->apply(k_one_message, at_ms(k_t0 + i));
  EXPECT_EQ(log.count("warning counter_store=redis event=busy"), 1u);
  for (int i = 0; i < 30; ++i) (void)stack.store->apply(k_one_message, at_ms(k_t0 + k_retry.count() + i));
  ASSERT_EQ(log.count("warning counter_store=redis event=busy"), 2u);
  EXPECT_NE(log.lines().back().find("messages=50"), std::string::npos)
      << "the second line counts the 49 after the first and the one that logged: " << log.lines().back();
  EXPECT_EQ(stack.store->transitions(), 0u);
}

TEST(ResilientCounterStore, BusyPoolInTempfailModeFailsThatMessageOnly) {
  auto stack = make_stack(CounterFailureMode::Tempfail);
  stack.primary->set_failing(true, CounterFailure::Kind::Busy);
  const auto busy = stack.store->apply(k_one_message, at_ms(k_t0));
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().kind, CounterFailure::Kind::Busy);
  EXPECT_FALSE(stack.store->circuit_open());
  stack.primary->set_failing(false);
  EXPECT_TRUE(stack.store->apply(k_one_message, at_ms(k_t0 + 1)).has_value());
}

TEST(ResilientCounterStore, RefusesLocalModeWithoutFallback) {
  EXPECT_THROW(ResilientCounterStore(std::make_unique<FaultyCounterStore>(), nullptr,
                                     CounterFailureMode::Local, k_retry),
               std::invalid_argument);
}

}  // namespace
}  // namespace floodgate::ratelimit
