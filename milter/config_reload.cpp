#include "milter/config_reload.hpp"

#include <utility>

namespace floodgate::milter {
namespace {

// Keeps running's value of one setting, noting `key` when the file changed it.
template <typename Value>
void keep_running(const Value& running, Value& next, const char* key, std::vector<std::string>& needs_restart) {
  if (next == running) return;
  needs_restart.emplace_back(key);
  next = running;
}

}  // namespace

ReloadPlan plan_reload(const policy::Config& running, policy::Config next) {
  std::vector<std::string> needs_restart;
  keep_running(running.milter_socket, next.milter_socket, "milter.socket", needs_restart);
  keep_running(running.daemon, next.daemon, "milter (user, socket owner/group/mode, shutdown_timeout)",
               needs_restart);
  keep_running(running.log.destination, next.log.destination, "log.destination", needs_restart);
  keep_running(running.log.syslog_facility, next.log.syslog_facility, "log.syslog_facility", needs_restart);
  keep_running(running.log.syslog_ident, next.log.syslog_ident, "log.syslog_ident", needs_restart);
  keep_running(running.metrics, next.metrics, "metrics", needs_restart);
  keep_running(running.redis, next.redis, "redis", needs_restart);
  keep_running(running.top, next.top, "top", needs_restart);

  // The spool is opened at start, and its purger and the notifier's release
  // target were set up from these.
  keep_running(running.quarantine.mode, next.quarantine.mode, "quarantine.mode", needs_restart);
  keep_running(running.quarantine.spool_directory, next.quarantine.spool_directory,
               "quarantine.spool_directory", needs_restart);
  keep_running(running.quarantine.retention, next.quarantine.retention, "quarantine.retention", needs_restart);
  keep_running(running.quarantine.purge_interval, next.quarantine.purge_interval, "quarantine.purge_interval",
               needs_restart);
  keep_running(running.quarantine.release_host, next.quarantine.release_host, "quarantine.release_host",
               needs_restart);
  keep_running(running.quarantine.release_port, next.quarantine.release_port, "quarantine.release_port",
               needs_restart);
  keep_running(running.quarantine.release_timeout, next.quarantine.release_timeout, "quarantine.release_timeout",
               needs_restart);
  keep_running(running.quarantine.postfix_config_directory, next.quarantine.postfix_config_directory,
               "quarantine.postfix_config_directory", needs_restart);

  // The containment worker and its notifier run from the start-up config.
  keep_running(running.containment.refresh_interval, next.containment.refresh_interval,
               "containment.refresh_interval", needs_restart);
  keep_running(running.containment.incidents, next.containment.incidents, "containment.incidents", needs_restart);
  keep_running(running.containment.notify, next.containment.notify, "containment.notify", needs_restart);
  keep_running(running.containment.queue_clearing, next.containment.queue_clearing, "containment.queue_clearing",
               needs_restart);

  // Line numbers are only for messages: the new file's are the right ones.
  return ReloadPlan{std::make_shared<const policy::Config>(std::move(next)), std::move(needs_restart)};
}

}  // namespace floodgate::milter
