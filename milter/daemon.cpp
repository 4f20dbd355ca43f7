#include "milter/daemon.hpp"

#include <libmilter/mfapi.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <syslog.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include <unistd.h>

#include "containment/activity.hpp"
#include "containment/incident_store.hpp"
#include "containment/notifier.hpp"
#include "milter/config_reload.hpp"
#include "milter/containment_worker.hpp"
#include "milter/metrics.hpp"
#include "milter/milter_callbacks.hpp"
#include "milter/privileges.hpp"
#include "milter/tcp_listener.hpp"
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

int syslog_facility(const std::string& name) {
  static const std::pair<const char*, int> k_facilities[] = {
      {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
      {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
      {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};
  for (const auto& [known, facility] : k_facilities)
    if (name == known) return facility;
  return LOG_MAIL;  // the loader accepts only the names above
}

// Syslog by default, next to the MTA's own lines (the mail facility);
// stderr in the foreground (--foreground, or log.destination: stderr).
void setup_logging(const policy::LogSettings& settings, bool foreground) {
  std::shared_ptr<spdlog::logger> logger;
  if (foreground || settings.destination == policy::LogSettings::Destination::Stderr) {
    logger = spdlog::stderr_logger_mt("floodgate");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  } else {
    // syslog adds the time, host and "floodgate[pid]:"; the level word
    // stays in the text so grep finds warnings as in the foreground.
    logger = spdlog::syslog_logger_mt("floodgate", settings.syslog_ident, LOG_PID | LOG_NDELAY,
                                      syslog_facility(settings.syslog_facility), true);
    logger->set_pattern("%l %v");
  }
  logger->set_level(spdlog::level::from_str(settings.level));
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

// SIGTERM/SIGINT/SIGHUP are the main thread's alone (see SignalPipe): every
// other thread starts with them blocked. libmilter's own signal thread,
// which would stop the milter on SIGHUP, never takes them either
// (milter/libmilter_signal_thread.cpp).
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

// Freezes are shared through Redis; with no Redis configured they are this
// node's alone. `endpoint` is redis_endpoint_from_settings' (read at start,
// with the password files, before dropping root); unused without Redis.
ratelimit::RedisFreezeStoreOptions redis_store_options(const policy::Config& config,
                                                       const ratelimit::RedisEndpoint& endpoint) {
  ratelimit::RedisFreezeStoreOptions options;
  options.endpoint = endpoint;
  options.connect_timeout = config.redis.connect_timeout;
  options.command_timeout = config.redis.command_timeout;
  options.key_prefix = config.redis.key_prefix;
  return options;
}

std::unique_ptr<ratelimit::FreezeStore> make_freeze_store(const policy::Config& config,
                                                          const ratelimit::RedisEndpoint& endpoint) {
  if (config.redis.url.empty()) return ratelimit::make_memory_freeze_store();
  return ratelimit::make_redis_freeze_store(redis_store_options(config, endpoint));
}

// Incidents are shared through Redis like the freezes that open them.
std::unique_ptr<containment::IncidentStore> make_incident_store(const policy::Config& config,
                                                                const ratelimit::RedisEndpoint& endpoint) {
  const auto limits = containment::incident_limits(config.containment.incidents);
  if (config.redis.url.empty()) return containment::make_memory_incident_store(limits);
  return containment::make_redis_incident_store(redis_store_options(config, endpoint), limits);
}

// Activity is only worth keeping where floodgatectl top can read it.
std::unique_ptr<containment::ActivityStore> make_activity_store(const policy::Config& config,
                                                                const ratelimit::RedisEndpoint& endpoint) {
  if (config.redis.url.empty() || !config.top.enabled) return nullptr;
  return containment::make_redis_activity_store(redis_store_options(config, endpoint), config.top.history);
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

// Signals become bytes on a pipe that the main thread polls: a handler
// may do almost nothing (async-signal-safe), and reloading or stopping is
// far from nothing. The milter thread writes 'M' when smfi_main() returns.
class SignalPipe {
 public:
  static constexpr char k_reload = 'H';
  static constexpr char k_stop = 'T';
  static constexpr char k_milter_ended = 'M';

  SignalPipe() {
    if (::pipe2(s_fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("cannot create the signal pipe");
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (const int signal : {SIGHUP, SIGTERM, SIGINT}) ::sigaction(signal, &action, nullptr);
  }
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  static void post(char event) {
    // A full pipe already holds an event that wakes the main thread.
    [[maybe_unused]] const auto written = ::write(s_fds[1], &event, 1);
  }

  // Waits for the next event; reads one at a time so that a stop is never
  // lost behind reloads.
  char wait() const {
    for (;;) {
      pollfd readable{.fd = s_fds[0], .events = POLLIN, .revents = 0};
      if (::poll(&readable, 1, -1) < 0 && errno != EINTR) throw std::runtime_error("poll on the signal pipe failed");
      char event = 0;
      if (::read(s_fds[0], &event, 1) == 1) return event;
    }
  }

 private:
  static void on_signal(int signal) {
    const int saved_errno = errno;
    post(signal == SIGHUP ? k_reload : k_stop);
    errno = saved_errno;
  }

  static inline int s_fds[2] = {-1, -1};
};

// See tcp_listener.hpp: without this, over an inet: socket every tagged or
// held message waits ~40 ms for a delayed ACK between our replies.
void disable_nagle_on_milter_listener(const std::string& socket_spec, const std::set<int>& listeners_before) {
  if (!socket_spec.starts_with("inet:") && !socket_spec.starts_with("inet6:")) return;
  std::set<int> opened;
  for (const int fd : tcp_listening_sockets())
    if (!listeners_before.contains(fd)) opened.insert(fd);
  if (opened.empty()) {
    spdlog::warn("socket={} TCP_NODELAY not set: libmilter's listening socket not found; replies that "
                 "add headers may wait ~40 ms for a delayed ACK",
                 socket_spec);
    return;
  }
  if (auto set = disable_nagle(opened); !set) {
    spdlog::warn("socket={} TCP_NODELAY not set: {}", socket_spec, set.error());
  }
}

// glibc gives threads up to 8 malloc arenas per core, and libmilter runs one
// thread per MTA session: with 200 sessions on 2 cores, 16 arenas each kept
// their own free memory. Measured (milter_load, 200 sessions, 25,000
// messages, 29 MB in use): peak RSS 66 MB with glibc's default, 54.5 MB with
// 2 arenas, at the same throughput. MALLOC_ARENA_MAX in the environment wins.
void limit_malloc_arenas() {
  constexpr int k_malloc_arenas = 2;
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  // Refused only by a replacement allocator (AddressSanitizer's, say), which
  // has its own arenas: nothing to warn an admin about.
  if (::mallopt(M_ARENA_MAX, k_malloc_arenas) != 1) spdlog::debug("mallopt(M_ARENA_MAX) refused");
}

void set_main_thread_signals(int how) {
  sigset_t ours;
  sigemptyset(&ours);
  for (const int signal : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&ours, signal);
  pthread_sigmask(how, &ours, nullptr);
}

// SIGHUP: the policy of the new file applies to the next message; a file
// with any problem is refused whole, and the running one stays.
void reload_config(const DaemonOptions& options, MilterRuntime& runtime) {
  std::shared_ptr<const policy::Config> loaded;
  try {
    loaded = load_daemon_config(options, ConfigChecks::ForReload);
  } catch (const policy::ConfigError& error) {
    for (const auto& issue : error.issues()) spdlog::error("reload refused: {}", issue.to_string());
    spdlog::error("reload refused: {} has {} problem(s); the running configuration stays", options.config_path,
                  error.issues().size());
    return;
  } catch (const std::exception& error) {
    spdlog::error("reload refused: {}; the running configuration stays", error.what());
    return;
  }
  ReloadPlan plan = plan_reload(*runtime.config(), *loaded);
  for (const auto& key : plan.needs_restart)
    spdlog::warn("reload: {} changed in the file; it keeps its running value until a restart", key);
  spdlog::set_level(spdlog::level::from_str(plan.config->log.level));
  const std::size_t rules = plan.config->rules.size();
  runtime.replace_config(std::move(plan.config));
  spdlog::info("reload: {} applied to new messages (rules={})", options.config_path, rules);
}

// SIGTERM: messages not yet past DATA are tempfailed there (their clients
// retry); the ones past DATA get up to shutdown_timeout to get their
// verdict; then libmilter stops. Only then: Debian's libmilter serves
// sessions from a worker pool that quits as soon as smfi_stop() is called,
// which would cut the messages in flight off.
void drain(MilterRuntime& runtime, std::chrono::seconds timeout) {
  runtime.begin_drain();
  const std::size_t in_flight = runtime.messages_in_flight();
  spdlog::info("stopping: messages reaching DATA are tempfailed; waiting up to {}s for {} message(s) in flight",
               timeout.count(), in_flight);
  if (runtime.wait_for_messages(timeout)) {
    spdlog::info("stopping: no message in flight");
  } else {
    spdlog::warn("stopping: {} message(s) still in flight after {}s; their MTA applies its milter_default_action",
                 runtime.messages_in_flight(), timeout.count());
  }
  smfi_stop();
}

// Everything that needs root, done before the switch to milter.user.
tl::expected<void, std::string> prepare_as_root(const policy::Config& config, const std::optional<Account>& account) {
  const std::string socket_path = unix_socket_path(config.milter_socket);
  if (!socket_path.empty()) {
    std::string owner = config.daemon.socket_owner;
    if (owner.empty() && account) owner = std::to_string(account->uid);
    if (auto set = set_socket_access(socket_path, owner, config.daemon.socket_group, config.daemon.socket_mode); !set)
      return tl::unexpected(set.error());
  }
  if (account) {
    if (auto prepared = prepare_directory_for(config.quarantine.spool_directory, *account); !prepared)
      return tl::unexpected("quarantine spool: " + prepared.error());
    if (auto became = become(*account); !became) return tl::unexpected("milter.user: " + became.error());
  }
  return {};
}

}  // namespace

std::shared_ptr<const policy::Config> load_daemon_config(const DaemonOptions& options, ConfigChecks checks) {
  auto loaded = policy::load_config_file(options.config_path);
  auto config = std::make_shared<policy::Config>(*loaded);
  if (options.socket_override) config->milter_socket = *options.socket_override;
  if (options.redis_override) config->redis.url = *options.redis_override;
  if (options.user_override) config->daemon.user = *options.user_override;

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
    if (auto endpoint = ratelimit::parse_redis_url(config->redis.url); !endpoint) {
      issue("redis.url", options.redis_override ? "--redis" : nullptr, endpoint.error());
    } else if (checks == ConfigChecks::Full) {
      // Also reads the password files. Secrets are read at start, as root;
      // a reload (as milter.user, and with Redis settings that only a
      // restart changes) does not read them again.
      if (auto full = ratelimit::redis_endpoint_from_settings(config->redis); !full) {
        // "redis.password_file: cannot read ...": the key comes first.
        const auto colon = full.error().find(": ");
        if (colon == std::string::npos) {
          issue("redis", nullptr, full.error());
        } else {
          issue(full.error().substr(0, colon), nullptr, full.error().substr(colon + 2));
        }
      }
    }
  }
  if (!config->daemon.user.empty()) {
    if (auto account = resolve_account(config->daemon.user); !account)
      issue("milter.user", options.user_override ? "--user" : nullptr, account.error());
  }
  if (!config->daemon.socket_owner.empty()) {
    if (auto owner = resolve_user_id(config->daemon.socket_owner); !owner)
      issue("milter.socket_owner", nullptr, owner.error());
  }
  if (!config->daemon.socket_group.empty()) {
    if (auto group = resolve_group_id(config->daemon.socket_group); !group)
      issue("milter.socket_group", nullptr, group.error());
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
  const auto config = load_daemon_config(options, ConfigChecks::Full);
  setup_logging(config->log, options.foreground);
  limit_malloc_arenas();

  // Until the main thread waits for them, the signals stay pending; every
  // thread started meanwhile inherits the block.
  set_main_thread_signals(SIG_BLOCK);
  const SignalPipe signals;

  // Password files are read now, while still root.
  ratelimit::RedisEndpoint redis_endpoint;
  if (!config->redis.url.empty()) {
    auto endpoint = ratelimit::redis_endpoint_from_settings(config->redis);
    if (!endpoint) {
      spdlog::critical("redis: {}", endpoint.error());
      return 1;
    }
    redis_endpoint = std::move(*endpoint);
  }

  smfiDesc description = filter_description();
  if (smfi_register(description) != MI_SUCCESS) {
    spdlog::critical("smfi_register failed");
    return 1;
  }
  const std::set<int> listeners_before = tcp_listening_sockets();
  if (smfi_setconn(const_cast<char*>(config->milter_socket.c_str())) != MI_SUCCESS ||
      smfi_opensocket(true) != MI_SUCCESS) {
    spdlog::critical("cannot listen on {} (in use, or no permission?)", config->milter_socket);
    return 1;
  }
  disable_nagle_on_milter_listener(config->milter_socket, listeners_before);
  std::optional<Account> account;
  if (!config->daemon.user.empty()) account = *resolve_account(config->daemon.user);  // checked by load_daemon_config
  if (auto prepared = prepare_as_root(*config, account); !prepared) {
    spdlog::critical("{}", prepared.error());
    return 1;
  }
  if (account) spdlog::info("running as uid={} gid={} ({})", ::getuid(), ::getgid(), config->daemon.user);

  const std::unique_ptr<ratelimit::CounterStore> counters = ratelimit::make_counter_store(config->redis, redis_endpoint);
  probe_counters(*counters, *config);

  const std::unique_ptr<quarantine::SpoolStore> spool = open_quarantine_spool(*config);
  // Retention runs beside the milter threads; it stops with the daemon.
  std::jthread purger;
  if (spool && config->quarantine.retention.count() > 0) {
    purger = start_background_thread(
        [&](std::stop_token stop) { purge_periodically(*spool, config->quarantine, stop); });
  }

  const std::unique_ptr<ratelimit::FreezeStore> freeze_store = make_freeze_store(*config, redis_endpoint);
  FreezeCache freezes(*freeze_store);
  freezes.refresh(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
  const std::jthread freeze_refresher = start_background_thread([&](std::stop_token stop) {
    freezes.refresh_periodically(config->containment.refresh_interval, stop);
  });

  const auto incident_store = make_incident_store(*config, redis_endpoint);
  const auto activity_store = make_activity_store(*config, redis_endpoint);
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

  std::unique_ptr<Metrics> metrics;
  try {
    metrics = start_metrics(*config, MetricsSources{.counters = counters.get(), .freezes = &freezes, .spool = spool.get()});
  } catch (const MetricsError& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  // With metrics, counter-store calls go through its timing decorator.
  ratelimit::CounterStore& scored_counters = metrics ? metrics->counter_store() : *counters;
  MilterRuntime runtime(config, scored_counters, spool.get(), &freezes, &containment, metrics.get());
  install_runtime(&runtime);

  spdlog::info("floodgate {} listening on {} config={}", FLOODGATE_VERSION, config->milter_socket,
               config->source_file);
  std::atomic<int> milter_status{MI_SUCCESS};
  std::jthread milter_thread = start_background_thread([&] {
    milter_status = smfi_main();
    SignalPipe::post(SignalPipe::k_milter_ended);
  });

  set_main_thread_signals(SIG_UNBLOCK);
  for (bool running = true; running;) {
    switch (signals.wait()) {
      case SignalPipe::k_reload:
        reload_config(options, runtime);
        break;
      case SignalPipe::k_milter_ended:
        spdlog::warn("libmilter stopped on its own (status {}); stopping", milter_status.load());
        running = false;
        break;
      default:
        running = false;
        break;
    }
  }
  set_main_thread_signals(SIG_BLOCK);
  drain(runtime, runtime.config()->daemon.shutdown_timeout);
  milter_thread.join();
  spdlog::info("floodgate stopped");
  install_runtime(nullptr);
  return milter_status == MI_SUCCESS ? 0 : 1;
}

}  // namespace floodgate::milter
