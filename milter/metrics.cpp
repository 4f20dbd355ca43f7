#include "milter/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <set>

#include "milter/milter_callbacks.hpp"
#include "ratelimit/resilient_counter_store.hpp"

namespace floodgate::milter {
namespace {

// Fit for the shipped scores: rules add 5 to 20 points each, the bands
// start at 5 (tag) and 20 (quarantine), a 200-recipient message scores 50;
// scores past 200 (many rules at once) land in +Inf.
const prometheus::Histogram::BucketBoundaries k_score_buckets = {0, 5, 10, 20, 30, 50, 75, 100, 150, 200};
// 50 µs (an in-process decision) to 1 s (past any sane Redis timeout).
const prometheus::Histogram::BucketBoundaries k_latency_buckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

// Every state a CounterStore reports (ratelimit/resilient_counter_store.hpp,
// memory_counter_store.hpp), so each series exists from the first scrape.
constexpr std::array<std::string_view, 4> k_store_states = {"redis", "local", "local-fallback", "unavailable"};

constexpr std::array<policy::Action, 5> k_actions = {policy::Action::Accept, policy::Action::Tag,
                                                     policy::Action::Quarantine, policy::Action::Tempfail,
                                                     policy::Action::Reject};

std::size_t action_index(policy::Action action) { return static_cast<std::size_t>(action); }

double seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

}  // namespace

// Times every apply() that went to Redis and counts every failure the store
// returns, by kind. "Went to Redis": the store said "redis" when the call
// began; with the circuit open the call is answered locally (or refused)
// and says nothing about Redis' latency.
class Metrics::TimedCounterStore final : public ratelimit::CounterStore {
 public:
  TimedCounterStore(ratelimit::CounterStore& inner, Metrics& metrics) : m_inner(inner), m_metrics(metrics) {}

  ratelimit::CounterResult apply(std::span<const policy::CounterRequest> requests,
                                 ratelimit::TimePoint now) override {
    // A ResilientCounterStore reports its Redis calls itself (observe_primary).
    if (m_metrics.m_observed_store != nullptr) return m_inner.apply(requests, now);
    const bool to_redis = m_inner.state_label() == "redis";
    const auto started = std::chrono::steady_clock::now();
    ratelimit::CounterResult result = m_inner.apply(requests, now);
    if (to_redis) m_metrics.m_redis_seconds.Observe(seconds(std::chrono::steady_clock::now() - started));
    if (!result) m_metrics.m_redis_errors_by_kind[static_cast<std::size_t>(result.error().kind)]->Increment();
    return result;
  }

  std::string_view state_label() const override { return m_inner.state_label(); }
  std::string_view answered_by() const override { return m_inner.answered_by(); }

 private:
  ratelimit::CounterStore& m_inner;
  Metrics& m_metrics;
};

// What the endpoint collects: the registry, with the scrape-time values
// refreshed first.
class Metrics::ScrapeView final : public prometheus::Collectable {
 public:
  explicit ScrapeView(const Metrics& metrics) : m_metrics(metrics) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return m_metrics.collect(); }

 private:
  const Metrics& m_metrics;
};

Metrics::Metrics(const policy::Config& config, MetricsSources sources)
    : m_sources(sources),
      m_registry(std::make_shared<prometheus::Registry>()),
      m_messages(prometheus::BuildCounter()
                     .Name("floodgate_messages_total")
                     .Help("Messages given a verdict, by the action applied (refusals of frozen sources "
                           "at MAIL FROM/DATA included)")
                     .Register(*m_registry)),
      m_monitor_messages(prometheus::BuildCounter()
                             .Name("floodgate_monitor_messages_total")
                             .Help("Messages scored with anything in monitor mode, by the action the policy would "
                                   "have given counting the monitored rules")
                             .Register(*m_registry)),
      m_rule_hits(prometheus::BuildCounter()
                      .Name("floodgate_rule_hits_total")
                      .Help("Decisions in which the rule fired, by rule name (monitored rules included)")
                      .Register(*m_registry)),
      m_score(prometheus::BuildHistogram()
                  .Name("floodgate_score")
                  .Help("Score of each outbound (scored) message")
                  .Register(*m_registry)
                  .Add({}, k_score_buckets)),
      m_decision_seconds(prometheus::BuildHistogram()
                             .Name("floodgate_decision_duration_seconds")
                             .Help("Time from end-of-message to the verdict (counting, scoring, containment, "
                                   "quarantine write)")
                             .Register(*m_registry)
                             .Add({}, k_latency_buckets)),
      m_redis_seconds(prometheus::BuildHistogram()
                          .Name("floodgate_redis_request_duration_seconds")
                          .Help("Duration of each counter-store call made to Redis (one per scored message)")
                          .Register(*m_registry)
                          .Add({}, k_latency_buckets)),
      m_redis_errors(prometheus::BuildCounter()
                         .Name("floodgate_redis_errors_total")
                         .Help("Counter-store calls that failed, by kind")
                         .Register(*m_registry)),
      m_store_state(prometheus::BuildGauge()
                        .Name("floodgate_counter_store_state")
                        .Help("1 for the state the counter store is in, 0 for the others")
                        .Register(*m_registry)),
      m_store_transitions(prometheus::BuildCounter()
                              .Name("floodgate_counter_store_transitions_total")
                              .Help("Changes between Redis and the failure mode (leaving and returning each count)")
                              .Register(*m_registry)
                              .Add({})),
      m_frozen_sources(prometheus::BuildGauge()
                           .Name("floodgate_frozen_sources")
                           .Help("Sources frozen (contained) now, as this instance enforces them")
                           .Register(*m_registry)
                           .Add({})),
      m_open_incidents(prometheus::BuildGauge()
                           .Name("floodgate_open_incidents")
                           .Help("Incidents open now (one per freeze in force that opened one)")
                           .Register(*m_registry)
                           .Add({})),
      m_quarantine_entries(prometheus::BuildGauge()
                               .Name("floodgate_quarantine_entries")
                               .Help("Entries in the quarantine spool (read at most every 10 s)")
                               .Register(*m_registry)
                               .Add({})),
      m_quarantine_bytes(prometheus::BuildGauge()
                             .Name("floodgate_quarantine_bytes")
                             .Help("Bytes of the quarantine spool's entry files (read at most every 10 s)")
                             .Register(*m_registry)
                             .Add({})),
      m_in_flight(prometheus::BuildGauge()
                      .Name("floodgate_messages_in_flight")
                      .Help("Messages past DATA still waiting for their verdict")
                      .Register(*m_registry)
                      .Add({})) {
  for (const policy::Action action : k_actions) {
    m_messages_by_action[action_index(action)] = &m_messages.Add({{"action", std::string(policy::to_string(action))}});
    m_monitor_messages_by_action[action_index(action)] =
        &m_monitor_messages.Add({{"action", std::string(policy::to_string(action))}});
  }
  m_redis_errors_by_kind[static_cast<std::size_t>(ratelimit::CounterFailure::Kind::Timeout)] =
      &m_redis_errors.Add({{"kind", "timeout"}});
  m_redis_errors_by_kind[static_cast<std::size_t>(ratelimit::CounterFailure::Kind::Unavailable)] =
      &m_redis_errors.Add({{"kind", "unavailable"}});
  m_redis_errors_by_kind[static_cast<std::size_t>(ratelimit::CounterFailure::Kind::Protocol)] =
      &m_redis_errors.Add({{"kind", "protocol"}});
  m_redis_errors_by_kind[static_cast<std::size_t>(ratelimit::CounterFailure::Kind::Busy)] =
      &m_redis_errors.Add({{"kind", "busy"}});
  for (const std::string_view state : k_store_states) m_store_state.Add({{"state", std::string(state)}});
  rule_table_for(config);
  if (m_sources.counters != nullptr) m_timed_store = std::make_unique<TimedCounterStore>(*m_sources.counters, *this);
  // The daemon's store answers from local counters while Redis fails (mode
  // local): only the store itself sees each Redis call and its failure.
  m_observed_store = dynamic_cast<ratelimit::ResilientCounterStore*>(m_sources.counters);
  if (m_observed_store != nullptr) {
    m_observed_store->observe_primary([this](std::chrono::nanoseconds took, const ratelimit::CounterFailure* failure) {
      m_redis_seconds.Observe(seconds(took));
      if (failure != nullptr) m_redis_errors_by_kind[static_cast<std::size_t>(failure->kind)]->Increment();
    });
  }
  m_view = std::make_shared<ScrapeView>(*this);
}

Metrics::~Metrics() {
  // Stop serving before anything a scrape reads goes away.
  m_exposer.reset();
  if (m_observed_store != nullptr) m_observed_store->observe_primary(nullptr);
}

void Metrics::record_decision(const policy::Config& config, const Decision& decision,
                              std::chrono::microseconds elapsed) {
  m_messages_by_action[action_index(decision.action)]->Increment();
  const auto& monitored = decision.verdict.monitor;
  if (monitored) m_monitor_messages_by_action[action_index(monitored->action)]->Increment();
  const RuleTable* table = m_rules.load(std::memory_order_acquire);
  // The monitored verdict's rules are the enforced ones and the monitored ones.
  for (const std::size_t rule : monitored ? monitored->fired_rules : decision.verdict.fired_rules) {
    if (rule >= config.rules.size()) continue;  // not from this config: a bug upstream, not worth a crash
    // The name check makes a table built for another config harmless: a
    // counter is only ever bumped under its own rule's name.
    if (rule >= table->names.size() || table->names[rule] != config.rules[rule].name) table = rule_table_for(config);
    table->hits[rule]->Increment();
  }
  if (decision.scope == policy::Scope::Outbound) m_score.Observe(decision.verdict.score);
  m_decision_seconds.Observe(std::chrono::duration<double>(elapsed).count());
}

void Metrics::record_refusal(const Decision& decision) {
  m_messages_by_action[action_index(decision.action)]->Increment();
}

// The table for `config`'s rule list, made current. Messages scored with
// the old and the new config alternate for a while after a reload (each
// keeps the snapshot it started with), so earlier tables are found again
// rather than rebuilt.
const Metrics::RuleTable* Metrics::rule_table_for(const policy::Config& config) {
  const auto same_rules = [&config](const RuleTable& table) {
    return std::equal(table.names.begin(), table.names.end(), config.rules.begin(), config.rules.end(),
                      [](const std::string& name, const policy::Rule& rule) { return name == rule.name; });
  };
  std::lock_guard lock(m_rules_mutex);
  for (const auto& table : m_rule_tables) {
    if (same_rules(*table)) {
      m_rules.store(table.get(), std::memory_order_release);
      return table.get();
    }
  }
  auto table = std::make_unique<RuleTable>();
  for (const auto& rule : config.rules) {
    table->names.push_back(rule.name);
    // Add() returns the existing counter for a name seen before, so counts
    // survive a reload.
    table->hits.push_back(&m_rule_hits.Add({{"rule", rule.name}}));
  }
  m_rules.store(table.get(), std::memory_order_release);
  m_rule_tables.push_back(std::move(table));
  return m_rule_tables.back().get();
}

ratelimit::CounterStore& Metrics::counter_store() {
  if (!m_timed_store) throw std::logic_error("Metrics::counter_store: no counter store in MetricsSources");
  return *m_timed_store;
}

void Metrics::watch_runtime(const MilterRuntime* runtime) {
  std::lock_guard lock(m_scrape_mutex);
  m_runtime = runtime;
}

void Metrics::refresh() const {
  if (m_sources.counters != nullptr) {
    const std::string_view current = m_sources.counters->state_label();
    bool known = false;
    for (const std::string_view state : k_store_states) {
      m_store_state.Add({{"state", std::string(state)}}).Set(state == current ? 1 : 0);
      known = known || state == current;
    }
    // A store of a kind this file does not know still shows up.
    if (!known) m_store_state.Add({{"state", std::string(current)}}).Set(1);
    if (const auto* resilient = dynamic_cast<const ratelimit::ResilientCounterStore*>(m_sources.counters)) {
      const std::uint64_t transitions = resilient->transitions();
      if (transitions > m_transitions_seen) {
        m_store_transitions.Increment(static_cast<double>(transitions - m_transitions_seen));
        m_transitions_seen = transitions;
      }
    }
  }

  if (m_sources.freezes != nullptr) {
    // An incident is open while its freeze is in force (containment/
    // incident.hpp: not closed, `until` ahead; the containment worker closes
    // it when the freeze goes). So the freezes in force answer without the
    // Redis round trips IncidentStore::list() would make for every incident
    // kept (30 days of them).
    const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto freezes = m_sources.freezes->snapshot();
    std::size_t in_force = 0;
    std::set<std::string_view> incidents;
    for (const auto& active : *freezes) {
      if (active.freeze.until <= now) continue;  // expired since the last refresh of the cache
      ++in_force;
      if (!active.freeze.incident.empty()) incidents.insert(active.freeze.incident);
    }
    m_frozen_sources.Set(static_cast<double>(in_force));
    m_open_incidents.Set(static_cast<double>(incidents.size()));
  }

  if (m_sources.spool != nullptr) {
    const auto now = std::chrono::steady_clock::now();
    if (!m_spool_scanned_at || now - *m_spool_scanned_at >= m_sources.spool_scan_interval) {
      const quarantine::SpoolStats stats = m_sources.spool->stats();
      m_quarantine_entries.Set(static_cast<double>(stats.entries));
      m_quarantine_bytes.Set(static_cast<double>(stats.bytes));
      m_spool_scanned_at = now;
    }
  }

  m_in_flight.Set(m_runtime != nullptr ? static_cast<double>(m_runtime->messages_in_flight()) : 0.0);
}

std::vector<prometheus::MetricFamily> Metrics::collect() const {
  std::lock_guard lock(m_scrape_mutex);
  refresh();
  return m_registry->Collect();
}

std::string Metrics::serialize() const { return prometheus::TextSerializer().Serialize(collect()); }

bool is_loopback_listen_address(std::string_view address) {
  std::string_view host = address;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') == std::string_view::npos ? std::string_view::npos : host.find(']') - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

void Metrics::listen(const std::string& address, const std::string& config_file, int line) {
  // civetweb takes numeric hosts only.
  std::string bind = address;
  if (bind.starts_with("localhost:")) bind = "127.0.0.1" + bind.substr(std::string_view("localhost").size());
  const std::string where =
      config_file.empty() ? std::string("metrics.listen")
                          : config_file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": metrics.listen";
  try {
    m_exposer = std::make_unique<prometheus::Exposer>(bind, 2);
  } catch (const std::exception& error) {
    throw MetricsError(where + ": cannot listen on " + address + " (in use, or no permission?): " + error.what());
  }
  m_exposer->RegisterCollectable(m_view);
  if (!is_loopback_listen_address(address))
    spdlog::warn("metrics endpoint on {} is not loopback: /metrics has no authentication", address);
}

std::unique_ptr<Metrics> start_metrics(const policy::Config& config, MetricsSources sources) {
  if (config.metrics.listen.empty()) return nullptr;
  auto metrics = std::make_unique<Metrics>(config, sources);
  const auto line = config.key_lines.find("metrics.listen");
  // The endpoint's threads inherit this mask: SIGTERM and friends must reach
  // libmilter's signal thread, never the default action in an HTTP thread.
  sigset_t handled_by_libmilter, previous;
  sigemptyset(&handled_by_libmilter);
  for (const int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&handled_by_libmilter, signal);
  pthread_sigmask(SIG_BLOCK, &handled_by_libmilter, &previous);
  try {
    metrics->listen(config.metrics.listen, config.source_file, line == config.key_lines.end() ? 0 : line->second);
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  spdlog::info("metrics listening on http://{}/metrics", config.metrics.listen);
  return metrics;
}

}  // namespace floodgate::milter
