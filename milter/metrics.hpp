// Metrics: Floodgate's Prometheus metrics and their HTTP endpoint
// (`metrics.listen`). The names, labels and meaning of every metric are in
// milter/METRICS.md.
//
// SUMMARY
// A Metrics owns a prometheus::Registry. Two kinds of values live in it:
//  - counted on the mail path: each decision (record_decision) and each
//    refusal of a frozen source at MAIL/DATA (record_refusal), and each
//    counter-store call, through the CounterStore decorator counter_store()
//    returns, which the daemon hands to MilterRuntime in place of its store;
//  - read at scrape time from what the daemon already keeps (counter store
//    state and transitions, FreezeCache, the quarantine spool, messages in
//    flight): refresh() sets them right before the registry is serialised.
//
// COST ON THE MAIL PATH
// record_decision() and the decorator do atomic increments and histogram
// observes (prometheus-cpp's Histogram takes its own short mutex) and
// nothing else: the metric objects for each action and each rule are looked
// up once and kept, and a fired rule costs one compare of its name with the
// cached table's; a decision scored with a config whose rules differ (a
// reload) switches tables under a mutex. No lock is held across a Redis
// call. Measured on a loaded 2-core machine: ~0.15 µs per decision firing
// three rules, ~40 ns added to each counter-store call (a message's verdict
// takes ~300 µs).
//
// SCRAPE COST
// Scrapes run on the endpoint's own threads. They read the FreezeCache
// snapshot (no Redis call), MilterRuntime::messages_in_flight() and
// SpoolStore::stats(), which reads every entry's metadata and is therefore
// cached for spool_scan_interval (10 s).
//
// SECURITY
// The endpoint has no authentication: it is meant for loopback (the shipped
// 127.0.0.1:9890), and a non-loopback listen address is logged as a warning.
// Label values are rule and action names from the config and fixed words,
// never message text.
//
// DIAGNOSTICS
// listen() throws MetricsError naming the config line and address when the
// endpoint cannot listen (port in use, no permission, bad address).
//
// THREAD SAFETY
// record_*(), the decorator and collect() may run concurrently from any
// thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "milter/freeze_cache.hpp"
#include "milter/session.hpp"
#include "policy/config.hpp"
#include "quarantine/spool_store.hpp"
#include "ratelimit/counter_store.hpp"

namespace prometheus {
class Exposer;
}

namespace floodgate::ratelimit {
class ResilientCounterStore;
}

namespace floodgate::milter {

class MilterRuntime;

class MetricsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the scrape-time gauges read. Every pointer may be null (that part is
// not running: the gauges read 0); each must outlive the Metrics.
struct MetricsSources {
  // The daemon's counter store: counter_store() wraps it; its state_label()
  // (and transitions(), if it is a ResilientCounterStore) is read at scrape.
  ratelimit::CounterStore* counters = nullptr;
  FreezeCache* freezes = nullptr;
  quarantine::SpoolStore* spool = nullptr;
  // How long a spool scan (quarantine_entries, quarantine_bytes) is reused.
  std::chrono::milliseconds spool_scan_interval{10'000};
};

class Metrics {
 public:
  // Metrics without an endpoint (listen() adds one). The per-rule counters
  // start with `config`'s rules, at 0.
  Metrics(const policy::Config& config, MetricsSources sources);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves /metrics on `address` ("HOST:PORT"). `config_file`/`line` only
  // name the setting in the error.
  void listen(const std::string& address, const std::string& config_file = {}, int line = 0);

  // A decision given at end-of-message: its action, the rules that fired
  // (indices into `config.rules`, the config the message was scored with),
  // the score (outbound mail only: the rest is not scored) and how long
  // deciding took.
  void record_decision(const policy::Config& config, const Decision& decision, std::chrono::microseconds elapsed);
  // A frozen source's message refused at MAIL FROM or DATA.
  void record_refusal(const Decision& decision);

  // The store MilterRuntime must use so that counter-store calls are timed
  // and their failures counted; it forwards to sources.counters. Must not
  // be called when sources.counters is null.
  ratelimit::CounterStore& counter_store();

  // MilterRuntime registers itself (and unregisters in its destructor), so
  // a scrape never reads a runtime that is gone.
  void watch_runtime(const MilterRuntime* runtime);

  // The registry's families after refresh(): what a scrape returns.
  std::vector<prometheus::MetricFamily> collect() const;
  // collect() in the Prometheus text format.
  std::string serialize() const;

 private:
  class TimedCounterStore;
  class ScrapeView;
  struct RuleTable {
    std::vector<std::string> names;  // config.rules[i].name
    std::vector<prometheus::Counter*> hits;
  };

  void refresh() const;
  const RuleTable* rule_table_for(const policy::Config& config);

  MetricsSources m_sources;
  std::shared_ptr<prometheus::Registry> m_registry;

  prometheus::Family<prometheus::Counter>& m_messages;
  std::array<prometheus::Counter*, 5> m_messages_by_action{};  // by policy::Action
  prometheus::Family<prometheus::Counter>& m_monitor_messages;
  std::array<prometheus::Counter*, 5> m_monitor_messages_by_action{};  // by policy::Action
  prometheus::Family<prometheus::Counter>& m_rule_hits;
  prometheus::Histogram& m_score;
  prometheus::Histogram& m_decision_seconds;
  prometheus::Histogram& m_redis_seconds;
  prometheus::Family<prometheus::Counter>& m_redis_errors;
  std::array<prometheus::Counter*, 4> m_redis_errors_by_kind{};  // by CounterFailure::Kind
  prometheus::Family<prometheus::Gauge>& m_store_state;
  prometheus::Counter& m_store_transitions;
  prometheus::Gauge& m_frozen_sources;
  prometheus::Gauge& m_open_incidents;
  prometheus::Gauge& m_quarantine_entries;
  prometheus::Gauge& m_quarantine_bytes;
  prometheus::Gauge& m_in_flight;

  // The table for the rules last seen. A plain pointer, not a shared_ptr:
  // the hot path must not bump a reference count every thread shares.
  std::atomic<const RuleTable*> m_rules{nullptr};
  std::mutex m_rules_mutex;  // guards m_rule_tables
  // Every table built, one per distinct rule list (kept: a message scored
  // with an older config may still look one up).
  std::vector<std::unique_ptr<RuleTable>> m_rule_tables;

  std::unique_ptr<TimedCounterStore> m_timed_store;
  // The daemon's store when it is a ResilientCounterStore: it reports each
  // Redis call (and failure) to us itself.
  ratelimit::ResilientCounterStore* m_observed_store = nullptr;

  mutable std::mutex m_scrape_mutex;  // guards the scrape-time state below
  const MilterRuntime* m_runtime = nullptr;
  mutable std::uint64_t m_transitions_seen = 0;
  mutable std::optional<std::chrono::steady_clock::time_point> m_spool_scanned_at;

  std::shared_ptr<ScrapeView> m_view;
  std::unique_ptr<prometheus::Exposer> m_exposer;  // last: stopped first
};

// For the daemon: null when `config.metrics.listen` is empty, else Metrics
// serving on it. Starts the endpoint's threads with the signals libmilter
// handles blocked (libmilter must be the only thread to take SIGTERM).
// Throws MetricsError when it cannot listen.
std::unique_ptr<Metrics> start_metrics(const policy::Config& config, MetricsSources sources);

// Whether `address` ("HOST:PORT", "[V6]:PORT") names a loopback host.
bool is_loopback_listen_address(std::string_view address);

}  // namespace floodgate::milter
