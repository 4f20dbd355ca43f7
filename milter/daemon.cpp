#include "milter/daemon.hpp"

#include <libmilter/mfapi.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include <unistd.h>

#include "containment/activity.hpp"
#include "containment/incident_store.hpp"
#include "containment/notifier.hpp"
#include "milter/containment_worker.hpp"
#include "milter/milter_callbacks.hpp"
#include "policy/config_loader.hpp"
#include "milter/freeze_cache.hpp"
#include "quarantine/spool_store.hpp"
#include "ratelimit/freeze_store.hpp"
#include "ratelimit/counter_store_factory.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::milter {
namespace {

bool is_valid_socket_spec(const std::string& spec) {
  // libmilter's forms: unix:/path, local:/path, inet:PORT[@HOST], inet6:PORT[@HOST]
  for (const char* prefix : {"unix:", "local:", "inet:", "inet6:"}) {
    const std::string p(prefix);
    if (spec.rfind(p, 0) == 0 && spec.size() > p.size()) return true;
  }
  return false;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("floodgate");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

// Probes the counter store once so that the log says at start whether Redis
// is there, rather than at the first message.
void probe_counters(ratelimit::CounterStore& counters, const policy::Config& config) {
  policy::CounterRequest probe;
  probe.key = config.redis.key_prefix + ":{probe}:start";
  probe.window = std::chrono::seconds(1);
  probe.amount = 0;
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  // A fallback store answers even when Redis does not: what matters is which
  // store answered.
  const auto result = counters.apply(std::span(&probe, 1), now);
  const std::string_view state = counters.state_label();
  const char* redis = config.redis.url.empty() ? "not-configured"
                      : (result && state == "redis") ? "reachable"
                                                     : "unreachable";
  spdlog::info("counters={} redis={}", state, redis);
}

// libmilter handles SIGTERM/SIGINT/SIGHUP in a thread of its own and needs
// them blocked everywhere else; a thread started before smfi_main() inherits
// our mask, so they are blocked while it starts.
template <typename Body>
std::jthread start_background_thread(Body&& body) {
  sigset_t handled_by_libmilter, previous;
  sigemptyset(&handled_by_libmilter);
  for (const int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&handled_by_libmilter, signal);
  pthread_sigmask(SIG_BLOCK, &handled_by_libmilter, &previous);
  std::jthread thread(std::forward<Body>(body));
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return thread;
}

ratelimit::RedisFreezeStoreOptions redis_store_options(const policy::Config& config,
                                                       const std::optional<std::string>& password);

// Freezes are shared through Redis; with no Redis configured they are this
// node's alone.
std::unique_ptr<ratelimit::FreezeStore> make_freeze_store(const policy::Config& config,
                                                          const std::optional<std::string>& password) {
  if (config.redis.url.empty()) return ratelimit::make_memory_freeze_store();
  return ratelimit::make_redis_freeze_store(redis_store_options(config, password));
}

ratelimit::RedisFreezeStoreOptions redis_store_options(const policy::Config& config,
                                                       const std::optional<std::string>& password) {
  ratelimit::RedisFreezeStoreOptions options;
  options.endpoint = *ratelimit::parse_redis_url(config.redis.url);  // validated by load_daemon_config
  options.password = password;
  options.connect_timeout = config.redis.connect_timeout;
  options.command_timeout = config.redis.command_timeout;
  options.key_prefix = config.redis.key_prefix;
  return options;
}

// Incidents are shared through Redis like the freezes that open them.
std::unique_ptr<containment::IncidentStore> make_incident_store(const policy::Config& config,
                                                                const std::optional<std::string>& password) {
  const auto limits = containment::incident_limits(config.containment.incidents);
  if (config.redis.url.empty()) return containment::make_memory_incident_store(limits);
  return containment::make_redis_incident_store(redis_store_options(config, password), limits);
}

// Activity is only worth keeping where floodgatectl top can read it.
std::unique_ptr<containment::ActivityStore> make_activity_store(const policy::Config& config,
                                                                const std::optional<std::string>& password) {
  if (config.redis.url.empty() || !config.top.enabled) return nullptr;
  return containment::make_redis_activity_store(redis_store_options(config, password), config.top.history);
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// The spool, or null when it cannot be used: the daemon still runs (accept,
// tag, tempfail and reject need no spool) and quarantine verdicts become
// tempfails, so mail waits in the sender's queue instead of being lost.
std::unique_ptr<quarantine::SpoolStore> open_quarantine_spool(const policy::Config& config) {
  auto spool = quarantine::SpoolStore::open_spool(config.quarantine.spool_directory);
  if (!spool) {
    spdlog::critical("quarantine spool {} unusable: {}; quarantine verdicts will tempfail",
                     config.quarantine.spool_directory, spool.error().message);
    return nullptr;
  }
  spdlog::info("quarantine mode={} spool={} stale_files_removed={}",
               config.quarantine.mode == policy::QuarantineSettings::Mode::Spool ? "spool" : "hold",
               config.quarantine.spool_directory, (*spool)->cleaned_at_open());
  return std::move(*spool);
}

void purge_periodically(quarantine::SpoolStore& spool, const policy::QuarantineSettings& settings,
                        std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any wake;
  while (!stop.stop_requested()) {
    const auto cutoff = std::chrono::system_clock::now() - settings.retention;
    if (auto purged = spool.purge_older_than(cutoff); !purged) {
      spdlog::warn("quarantine purge failed: {}", purged.error().message);
    } else if (*purged > 0) {
      spdlog::info("quarantine purged={} older_than_s={}", *purged, settings.retention.count());
    }
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, settings.purge_interval, [] { return false; });
  }
}

}  // namespace

std::shared_ptr<const policy::Config> load_daemon_config(const DaemonOptions& options) {
  auto loaded = policy::load_config_file(options.config_path);
  auto config = std::make_shared<policy::Config>(*loaded);
  if (options.socket_override) config->milter_socket = *options.socket_override;
  if (options.redis_override) config->redis.url = *options.redis_override;

  std::vector<policy::ConfigIssue> issues;
  // Where a value came from: its line in the file, or the flag that overrode it.
  const auto issue = [&](const std::string& key, const char* overriding_flag, std::string message) {
    const auto line = config->key_lines.find(key);
    const bool in_file = overriding_flag == nullptr && line != config->key_lines.end();
    issues.push_back(policy::ConfigIssue{options.config_path, in_file ? line->second : 0,
                                         overriding_flag ? overriding_flag : key, std::move(message)});
  };
  if (!is_valid_socket_spec(config->milter_socket))
    issue("milter.socket", options.socket_override ? "--socket" : nullptr,
          "\"" + config->milter_socket + "\" is not a libmilter socket (inet:PORT@HOST or unix:/path)");
  if (!config->redis.url.empty()) {
    if (auto endpoint = ratelimit::parse_redis_url(config->redis.url); !endpoint)
      issue("redis.url", options.redis_override ? "--redis" : nullptr, endpoint.error());
  }
  if (!config->redis.password_file.empty()) {
    if (auto password = ratelimit::read_redis_password_file(config->redis.password_file); !password)
      issue("redis.password_file", nullptr, password.error());
  }
  // Anyone who can write these can change the policy or plant mail to be
  // released: refuse to run with them, as Postfix does with its own files.
  struct stat file_status {};
  if (::stat(options.config_path.c_str(), &file_status) == 0 && (file_status.st_mode & S_IWOTH) != 0) {
    issues.push_back(policy::ConfigIssue{options.config_path, 0, "",
                                         "the configuration file is writable by everyone; "
                                         "chmod o-w it (Floodgate will not run with it)"});
  }
  const std::string& spool = config->quarantine.spool_directory;
  if (::stat(spool.c_str(), &file_status) == 0 && (file_status.st_mode & S_IWOTH) != 0) {
    issue("quarantine.spool_directory", nullptr,
          "\"" + spool + "\" is writable by everyone; chmod o-w it (Floodgate will not run with it)");
  }
  if (!issues.empty()) throw policy::ConfigError(std::move(issues));
  return config;
}

int run_daemon(const DaemonOptions& options) {
  const auto config = load_daemon_config(options);
  setup_logging(config->log.level);

  std::optional<std::string> password;
  if (!config->redis.password_file.empty()) {
    auto read = ratelimit::read_redis_password_file(config->redis.password_file);
    if (!read) {
      spdlog::critical("redis: {}", read.error());
      return 1;
    }
    password = std::move(*read);
  }
  auto counters = ratelimit::make_counter_store(config->redis, password);
  if (!counters) {
    spdlog::critical("redis: {}", counters.error());
    return 1;
  }
  probe_counters(**counters, *config);

  const std::unique_ptr<quarantine::SpoolStore> spool = open_quarantine_spool(*config);
  // Retention runs beside the milter threads; it stops with the daemon.
  std::jthread purger;
  if (spool && config->quarantine.retention.count() > 0) {
    purger = start_background_thread(
        [&](std::stop_token stop) { purge_periodically(*spool, config->quarantine, stop); });
  }

  const std::unique_ptr<ratelimit::FreezeStore> freeze_store = make_freeze_store(*config, password);
  FreezeCache freezes(*freeze_store);
  freezes.refresh(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
  const std::jthread freeze_refresher = start_background_thread([&](std::stop_token stop) {
    freezes.refresh_periodically(config->containment.refresh_interval, stop);
  });

  const auto incident_store = make_incident_store(*config, password);
  const auto activity_store = make_activity_store(*config, password);
  const containment::Notifier notifier(
      config->containment.notify,
      quarantine::SmtpTarget{.host = config->quarantine.release_host,
                             .port = config->quarantine.release_port,
                             .helo_name = host_name(),
                             .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 config->quarantine.release_timeout)});
  ContainmentWorker containment(config, freezes, *incident_store, activity_store.get(), notifier, host_name());
  const std::jthread containment_thread =
      start_background_thread([&](std::stop_token stop) { containment.run(stop); });

  MilterRuntime runtime(config, **counters, spool.get(), &freezes, &containment);
  install_runtime(&runtime);

  smfiDesc description = filter_description();
  if (smfi_register(description) != MI_SUCCESS) {
    spdlog::critical("smfi_register failed");
    return 1;
  }
  if (smfi_setconn(const_cast<char*>(config->milter_socket.c_str())) != MI_SUCCESS ||
      smfi_opensocket(true) != MI_SUCCESS) {
    spdlog::critical("cannot listen on {} (in use, or no permission?)", config->milter_socket);
    return 1;
  }
  spdlog::info("floodgate {} listening on {} config={}", FLOODGATE_VERSION, config->milter_socket,
               config->source_file);
  const int status = smfi_main();
  spdlog::info("floodgate stopped");
  install_runtime(nullptr);
  return status == MI_SUCCESS ? 0 : 1;
}

}  // namespace floodgate::milter
