// Metrics: what record_decision/record_refusal, the counter-store decorator
// and the scrape-time gauges put in the Prometheus text a scrape returns.
// Expected counts come from the decisions the shipped config makes, not
// from numbers written here.
#include "milter/metrics.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "milter/milter_callbacks.hpp"
#include "policy/config_loader.hpp"
#include "ratelimit/memory_counter_store.hpp"
#include "ratelimit/resilient_counter_store.hpp"
#include "tests/support/scratch_directory.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using policy::Action;
using Labels = std::map<std::string, std::string>;

std::shared_ptr<const policy::Config> shipped_config() {
  static const auto config = policy::load_config_file(FLOODGATE_SOURCE_DIR "/conf/floodgate.yaml");
  return config;
}

ratelimit::TimePoint at(std::chrono::milliseconds since_start) {
  return ratelimit::TimePoint(std::chrono::milliseconds(1'800'000'000'000) + since_start);
}

// One sample line of the text format: name{a="b",...} value.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

std::vector<Sample> parse_samples(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    sample.name = line.substr(0, std::min(brace, space));
    if (brace != std::string::npos) {
      const auto close = line.rfind('}');
      std::string inner = line.substr(brace + 1, close - brace - 1);
      std::size_t at = 0;
      while (at < inner.size()) {
        const auto equals = inner.find('=', at);
        const auto value_end = inner.find('"', equals + 2);
        sample.labels[inner.substr(at, equals - at)] = inner.substr(equals + 2, value_end - equals - 2);
        at = value_end + 2;  // past '",'
      }
    }
    sample.value = std::stod(line.substr(space + 1));
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The value of the sample with exactly these labels; an `le` label is
// compared as a number (the serialiser decides how 5e-05 is written).
std::optional<double> value_of(const std::string& text, const std::string& name, const Labels& labels = {}) {
  for (const auto& sample : parse_samples(text)) {
    if (sample.name != name || sample.labels.size() != labels.size()) continue;
    bool same = true;
    for (const auto& [key, value] : labels) {
      const auto found = sample.labels.find(key);
      if (found == sample.labels.end()) {
        same = false;
      } else if (key == "le" && value != "+Inf" && found->second != "+Inf") {
        same = std::stod(found->second) == std::stod(value);
      } else {
        same = found->second == value;
      }
      if (!same) break;
    }
    if (same) return sample.value;
  }
  return std::nullopt;
}

std::string action_name(Action action) { return std::string(policy::to_string(action)); }

// A message through a real MessageSession with the shipped config.
Decision decide(ratelimit::CounterStore& counters, const std::string& client, std::size_t recipients,
                const std::string& body, ratelimit::TimePoint now) {
  ConnectionInfo connection;
  connection.client_address = client;
  connection.client_name = "unknown";
  MessageSession session(shipped_config(), connection);
  session.set_sender("<web@example.com>");
  for (std::size_t i = 0; i < recipients; ++i)
    session.add_recipient("<friend" + std::to_string(i) + "@example.net>", false);
  session.add_header("Subject", "Hello");
  session.add_body_chunk(body);
  return session.decide(counters, now);
}

// Fails every apply() with the kinds it is given, in turn; reports the
// state label it is told to.
class FailingCounterStore final : public ratelimit::CounterStore {
 public:
  explicit FailingCounterStore(std::vector<ratelimit::CounterFailure::Kind> kinds, std::string label = "redis")
      : m_kinds(std::move(kinds)), m_label(std::move(label)) {}
  ratelimit::CounterResult apply(std::span<const policy::CounterRequest>, ratelimit::TimePoint) override {
    const auto kind = m_kinds[m_calls++ % m_kinds.size()];
    return tl::unexpected(ratelimit::CounterFailure{kind, "fake failure"});
  }
  std::string_view state_label() const override { return m_label; }

 private:
  std::vector<ratelimit::CounterFailure::Kind> m_kinds;
  std::string m_label;
  std::size_t m_calls = 0;
};

policy::CounterRequest probe_request() {
  policy::CounterRequest request;
  request.key = "fg:{test}:probe";
  request.window = 60s;
  request.amount = 1;
  return request;
}

TEST(Metrics, CountsEachDecisionByActionAndEachFiredRuleByName) {
  ratelimit::MemoryCounterStore counters;
  Metrics metrics(*shipped_config(), {});
  std::map<std::string, int> by_action;
  std::map<std::string, int> by_rule;
  const auto record = [&](const Decision& decision) {
    metrics.record_decision(*shipped_config(), decision, 100us);
    ++by_action[action_name(decision.action)];
    for (const std::size_t rule : decision.verdict.fired_rules) ++by_rule[shipped_config()->rules[rule].name];
  };
  for (int i = 0; i < 3; ++i)
    record(decide(counters, "10.1.1." + std::to_string(i), 1, "note " + std::to_string(i) + "\r\n", at(0ms)));
  record(decide(counters, "10.2.2.2", 60, "a newsletter\r\n", at(1s)));
  record(decide(counters, "10.3.3.3", 200, "a burst\r\n", at(2s)));
  ASSERT_GE(by_action.size(), 2u) << "the shipped config should give these messages different actions";
  ASSERT_FALSE(by_rule.empty()) << "the 200-recipient message should fire a rule";

  const std::string text = metrics.serialize();
  for (const Action action : {Action::Accept, Action::Tag, Action::Quarantine, Action::Tempfail, Action::Reject}) {
    const std::string name = action_name(action);
    EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", name}}), by_action[name]) << name << "\n"
                                                                                              << text;
  }
  for (const auto& rule : shipped_config()->rules) {
    EXPECT_EQ(value_of(text, "floodgate_rule_hits_total", {{"rule", rule.name}}), by_rule[rule.name]) << rule.name;
  }
}

TEST(Metrics, MonitorModeCountsTheActionThePolicyWouldHaveGivenAndTheRulesThatFired) {
  auto monitoring = std::make_shared<policy::Config>(*shipped_config());
  monitoring->monitor.everything = true;
  ratelimit::MemoryCounterStore counters;
  Metrics metrics(*monitoring, {});
  ConnectionInfo connection;
  connection.client_address = "10.3.3.3";
  MessageSession session(monitoring, connection);
  session.set_sender("<web@example.com>");
  for (int i = 0; i < 200; ++i) session.add_recipient("<friend" + std::to_string(i) + "@example.net>", false);
  session.add_body_chunk("a burst\r\n");
  const Decision decision = session.decide(counters, at(0ms));
  ASSERT_EQ(decision.action, Action::Accept);
  ASSERT_TRUE(decision.verdict.monitor.has_value());
  ASSERT_EQ(decision.verdict.monitor->action, Action::Quarantine);
  metrics.record_decision(*monitoring, decision, 100us);

  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", "accept"}}), 1) << text;
  EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", "quarantine"}}), 0) << text;
  EXPECT_EQ(value_of(text, "floodgate_monitor_messages_total", {{"action", "quarantine"}}), 1) << text;
  EXPECT_EQ(value_of(text, "floodgate_monitor_messages_total", {{"action", "accept"}}), 0) << text;
  EXPECT_EQ(value_of(text, "floodgate_rule_hits_total", {{"rule", "rcpts_per_msg_high"}}), 1) << text;
}

TEST(Metrics, ScoreHistogramHasOneObservationPerOutboundMessageInTheRightBuckets) {
  ratelimit::MemoryCounterStore counters;
  Metrics metrics(*shipped_config(), {});
  std::vector<int> scores;
  int accepted = 0;
  for (const std::size_t recipients : {1u, 20u, 55u, 120u, 200u}) {
    const Decision decision =
        decide(counters, "10.4.4." + std::to_string(recipients), recipients, "hi\r\n", at(0ms));
    ASSERT_EQ(decision.scope, policy::Scope::Outbound);
    metrics.record_decision(*shipped_config(), decision, 100us);
    scores.push_back(decision.verdict.score);
    accepted += decision.action == Action::Accept ? 1 : 0;
  }
  // Inbound mail is not scored: no observation.
  Decision inbound;
  inbound.scope = policy::Scope::NotOutbound;
  metrics.record_decision(*shipped_config(), inbound, 100us);

  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_score_count"), scores.size());
  for (const double bound : {0.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0}) {
    const auto at_most = std::count_if(scores.begin(), scores.end(), [&](int s) { return s <= bound; });
    std::ostringstream le;
    le << bound;
    EXPECT_EQ(value_of(text, "floodgate_score_bucket", {{"le", le.str()}}), at_most) << "le=" << bound;
  }
  EXPECT_EQ(value_of(text, "floodgate_score_bucket", {{"le", "+Inf"}}), scores.size());
  EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", "accept"}}), accepted + 1)
      << "inbound counted as a decision too";
}

TEST(Metrics, DecisionLatencyBucketsSpanFiftyMicrosecondsToOneSecond) {
  Metrics metrics(*shipped_config(), {});
  Decision decision;
  for (const auto elapsed : {30us, 700us, 40'000us, 2'000'000us}) metrics.record_decision(*shipped_config(), decision, elapsed);
  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_bucket", {{"le", "0.00005"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_bucket", {{"le", "0.001"}}), 2);
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_bucket", {{"le", "0.05"}}), 3);
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_bucket", {{"le", "1"}}), 3);
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_bucket", {{"le", "+Inf"}}), 4);
  EXPECT_NEAR(*value_of(text, "floodgate_decision_duration_seconds_sum"), 0.00003 + 0.0007 + 0.04 + 2.0, 1e-9);
}

TEST(Metrics, RefusalOfAFrozenSourceCountsItsActionButNoScoreOrLatency) {
  Metrics metrics(*shipped_config(), {});
  Decision refused;
  refused.action = Action::Reject;
  refused.scope = policy::Scope::Outbound;
  metrics.record_refusal(refused);
  refused.action = Action::Tempfail;
  metrics.record_refusal(refused);
  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", "reject"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_messages_total", {{"action", "tempfail"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_score_count"), 0);
  EXPECT_EQ(value_of(text, "floodgate_decision_duration_seconds_count"), 0);
}

TEST(Metrics, RuleHitsFollowAReloadThatRenamesAndAddsRulesAndKeepOldCounts) {
  const auto& first = *shipped_config();
  ASSERT_FALSE(first.rules.empty());
  Metrics metrics(first, {});
  Decision decision;
  decision.verdict.fired_rules = {0};
  metrics.record_decision(first, decision, 1us);

  auto reloaded = std::make_shared<policy::Config>(first);
  reloaded->rules.insert(reloaded->rules.begin(), reloaded->rules.front());
  reloaded->rules.front().name = "added_by_reload";
  metrics.record_decision(*reloaded, decision, 1us);  // index 0 is the new rule now
  decision.verdict.fired_rules = {1};
  metrics.record_decision(*reloaded, decision, 1us);  // the old first rule
  // A message scored with the old snapshot after the reload.
  decision.verdict.fired_rules = {0};
  metrics.record_decision(first, decision, 1us);

  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_rule_hits_total", {{"rule", "added_by_reload"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_rule_hits_total", {{"rule", first.rules.front().name}}), 3);
}

TEST(Metrics, EveryRuleOfTheConfigIsExportedAtZeroBeforeItFires) {
  Metrics metrics(*shipped_config(), {});
  const std::string text = metrics.serialize();
  for (const auto& rule : shipped_config()->rules)
    EXPECT_EQ(value_of(text, "floodgate_rule_hits_total", {{"rule", rule.name}}), 0) << rule.name;
}

TEST(Metrics, DecoratorOverTheInProcessStoreCountsNoRedisRequestAndNoError) {
  ratelimit::MemoryCounterStore memory;
  Metrics metrics(*shipped_config(), {.counters = &memory});
  const auto request = probe_request();
  for (int i = 0; i < 3; ++i) {
    auto result = metrics.counter_store().apply(std::span(&request, 1), at(0ms));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->front(), static_cast<std::uint64_t>(i + 1)) << "the decorator forwards to the store";
  }
  EXPECT_EQ(metrics.counter_store().state_label(), "local");
  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_redis_request_duration_seconds_count"), 0);
  for (const char* kind : {"timeout", "unavailable", "protocol"})
    EXPECT_EQ(value_of(text, "floodgate_redis_errors_total", {{"kind", kind}}), 0) << kind;
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "local"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "redis"}}), 0);
}

TEST(Metrics, DecoratorTimesRedisCallsAndCountsFailuresByKind) {
  using Kind = ratelimit::CounterFailure::Kind;
  FailingCounterStore failing({Kind::Timeout, Kind::Timeout, Kind::Unavailable, Kind::Protocol});
  Metrics metrics(*shipped_config(), {.counters = &failing});
  const auto request = probe_request();
  for (int i = 0; i < 4; ++i) {
    auto result = metrics.counter_store().apply(std::span(&request, 1), at(0ms));
    ASSERT_FALSE(result) << "failures pass through unchanged";
  }
  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_redis_errors_total", {{"kind", "timeout"}}), 2);
  EXPECT_EQ(value_of(text, "floodgate_redis_errors_total", {{"kind", "unavailable"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_redis_errors_total", {{"kind", "protocol"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_redis_request_duration_seconds_count"), 4);
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "redis"}}), 1);
}

TEST(Metrics, ResilientStoreStateAndTransitionsAreReadAtScrape) {
  // Local mode: the fallback answers, so the message sees no failure; the
  // store itself reports the Redis call and its failure.
  auto store = std::make_unique<ratelimit::ResilientCounterStore>(
      std::make_unique<FailingCounterStore>(std::vector{ratelimit::CounterFailure::Kind::Timeout}),
      std::make_unique<ratelimit::MemoryCounterStore>(), policy::CounterFailureMode::Local, 1000ms);
  Metrics metrics(*shipped_config(), {.counters = store.get()});
  std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "redis"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_counter_store_transitions_total"), 0);

  const auto request = probe_request();
  ASSERT_TRUE(metrics.counter_store().apply(std::span(&request, 1), at(0ms)));
  ASSERT_TRUE(metrics.counter_store().apply(std::span(&request, 1), at(10ms)));  // circuit open: local
  text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "redis"}}), 0);
  EXPECT_EQ(value_of(text, "floodgate_counter_store_state", {{"state", "local-fallback"}}), 1);
  EXPECT_EQ(value_of(text, "floodgate_counter_store_transitions_total"), store->transitions());
  EXPECT_EQ(value_of(text, "floodgate_redis_request_duration_seconds_count"), 1)
      << "one call reached Redis; the second was answered locally with the circuit open";
  EXPECT_EQ(value_of(text, "floodgate_redis_errors_total", {{"kind", "timeout"}}), 1)
      << "the Redis failure is counted although the fallback answered the message";
  // A second scrape does not add the same transitions again.
  EXPECT_EQ(value_of(metrics.serialize(), "floodgate_counter_store_transitions_total"), store->transitions());
}

TEST(Metrics, FrozenSourcesAndOpenIncidentsCountTheFreezesInForce) {
  auto freeze_store = ratelimit::make_memory_freeze_store();
  FreezeCache freezes(*freeze_store);
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  int made = 0;
  for (const auto& [client, incident] : {std::pair{"10.5.5.1", "20261127-140532-8deffd01"},
                                         std::pair{"10.5.5.2", "20261127-140532-8deffd02"},
                                         std::pair{"10.5.5.3", ""}}) {
    std::string error;
    auto source = policy::parse_source_spec({std::string("client=") + client}, error);
    ASSERT_TRUE(source) << error;
    ratelimit::Freeze freeze{.source = source->canonical(), .source_digest = source->digest(), .rule = "manual",
                             .reason = "test", .action = Action::Quarantine, .since = now, .until = now + 1h,
                             .incident = incident};
    ASSERT_TRUE(freezes.freeze(freeze, *source, now, error)) << error;
    ++made;
  }
  Metrics metrics(*shipped_config(), {.freezes = &freezes});
  const std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_frozen_sources"), made);
  EXPECT_EQ(value_of(text, "floodgate_open_incidents"), made - 1) << "one freeze opened no incident";
}

class MetricsSpool : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = quarantine::SpoolStore::open_spool(m_directory.file("spool"));
    ASSERT_TRUE(opened) << opened.error().message;
    m_spool = std::move(*opened);
  }
  void store_entry(int n) {
    quarantine::MessageBuffer message(m_spool->temporary_directory(), 1 << 20, 1 << 20);
    message.append("Subject: entry " + std::to_string(n) + "\r\n\r\n" + std::string(100 * n, 'x') + "\r\n");
    quarantine::QuarantineEntry entry;
    entry.time = std::chrono::system_clock::now();
    entry.id = quarantine::make_entry_id(entry.time, 1000 + n);
    entry.sender = "web@example.com";
    entry.recipients = {"a@example.net"};
    auto stored = m_spool->store(entry, &message);
    ASSERT_TRUE(stored) << stored.error().message;
  }

  testing::ScratchDirectory m_directory{"floodgate-metrics"};
  std::unique_ptr<quarantine::SpoolStore> m_spool;
};

TEST_F(MetricsSpool, QuarantineGaugesMatchTheSpoolAndAreCachedForTheScanInterval) {
  store_entry(1);
  store_entry(2);
  Metrics metrics(*shipped_config(), {.spool = m_spool.get(), .spool_scan_interval = 1h});
  std::string text = metrics.serialize();
  const auto stats = m_spool->stats();
  EXPECT_EQ(value_of(text, "floodgate_quarantine_entries"), stats.entries);
  EXPECT_EQ(value_of(text, "floodgate_quarantine_bytes"), stats.bytes);
  store_entry(3);
  text = metrics.serialize();
  EXPECT_EQ(value_of(text, "floodgate_quarantine_entries"), stats.entries) << "read again before the interval";
}

TEST_F(MetricsSpool, QuarantineGaugesAreReadAgainOnceTheScanIntervalHasPassed) {
  store_entry(1);
  Metrics metrics(*shipped_config(), {.spool = m_spool.get(), .spool_scan_interval = 0ms});
  EXPECT_EQ(value_of(metrics.serialize(), "floodgate_quarantine_entries"), 1);
  store_entry(2);
  EXPECT_EQ(value_of(metrics.serialize(), "floodgate_quarantine_entries"), 2);
}

TEST(Metrics, MessagesInFlightAreReadFromTheRuntimeWhileItExists) {
  ratelimit::MemoryCounterStore counters;
  Metrics metrics(*shipped_config(), {.counters = &counters});
  {
    MilterRuntime runtime(shipped_config(), metrics.counter_store(), nullptr, nullptr, nullptr, &metrics);
    runtime.message_started();
    runtime.message_started();
    EXPECT_EQ(value_of(metrics.serialize(), "floodgate_messages_in_flight"), runtime.messages_in_flight());
    runtime.message_ended();
    EXPECT_EQ(value_of(metrics.serialize(), "floodgate_messages_in_flight"), runtime.messages_in_flight());
  }
  EXPECT_EQ(value_of(metrics.serialize(), "floodgate_messages_in_flight"), 0) << "runtime gone";
}

// A plain HTTP/1.0 GET on loopback; the whole reply.
std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) reply.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

// A loopback port nobody listens on now (bound, then released).
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

TEST(Metrics, EndpointServesTheTextFormatOnMetricsListen) {
  auto config = std::make_shared<policy::Config>(*shipped_config());
  const int port = unused_port();
  config->metrics.listen = "127.0.0.1:" + std::to_string(port);
  const auto metrics = start_metrics(*config, {});
  ASSERT_NE(metrics, nullptr);
  Decision decision;
  decision.action = Action::Quarantine;
  metrics->record_decision(*config, decision, 10us);
  const std::string reply = http_get(port, "/metrics");
  EXPECT_NE(reply.find("200 OK"), std::string::npos) << reply;
  const std::string body = reply.substr(reply.find("\r\n\r\n") + 4);
  EXPECT_EQ(value_of(body, "floodgate_messages_total", {{"action", "quarantine"}}), 1) << body;
}

TEST(Metrics, EmptyListenStartsNoEndpoint) {
  auto config = std::make_shared<policy::Config>(*shipped_config());
  config->metrics.listen.clear();
  EXPECT_EQ(start_metrics(*config, {}), nullptr);
}

TEST(Metrics, ListenAddressInUseIsAStartupErrorNamingTheAddress) {
  const int busy = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string listen = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  auto config = std::make_shared<policy::Config>(*shipped_config());
  config->metrics.listen = listen;
  config->source_file = "/etc/floodgate/floodgate.yaml";
  config->key_lines["metrics.listen"] = 42;
  try {
    (void)start_metrics(*config, {});
    ADD_FAILURE() << "listening on a busy port succeeded";
  } catch (const MetricsError& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("/etc/floodgate/floodgate.yaml:42: metrics.listen"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot listen on " + listen), std::string::npos) << what;
  }
  ::close(busy);
}

TEST(Metrics, LoopbackListenAddressesAreRecognised) {
  struct Case {
    const char* address;
    bool loopback;
  };
  for (const Case& c : {Case{"127.0.0.1:9890", true}, Case{"127.1.2.3:9890", true}, Case{"localhost:9890", true},
                        Case{"[::1]:9890", true}, Case{"0.0.0.0:9890", false}, Case{"10.0.0.1:9890", false},
                        Case{"[::]:9890", false}, Case{"metrics.example:9890", false}}) {
    EXPECT_EQ(is_loopback_listen_address(c.address), c.loopback) << c.address;
  }
}

}  // namespace
}  // namespace floodgate::milter
