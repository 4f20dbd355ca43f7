#include "ctl/ctl_session.hpp"

#include <fstream>

#include "ctl/terminal_text.hpp"
#include "policy/config_loader.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ctl {

CtlSession::CtlSession(std::string config_path, std::ostream& out, std::ostream& err)
    : m_config_path(std::move(config_path)),
      m_out(out),
      m_err(err),
      m_now(std::chrono::system_clock::now()) {}

bool CtlSession::open_config() {
  if (m_config) return true;
  try {
    m_config = policy::load_config_file(m_config_path);
  } catch (const policy::ConfigError& error) {
    for (const auto& issue : error.issues()) m_err << issue.to_string() << "\n";
    return false;
  } catch (const std::exception& error) {
    report_error(escape_for_terminal(error.what()));
    return false;
  }
  return true;
}

bool CtlSession::open() {
  if (!open_config()) return false;
  auto store = quarantine::SpoolStore::open_spool(m_config->quarantine.spool_directory);
  if (!store) {
    report_error("cannot open the quarantine spool: " + escape_for_terminal(store.error().message));
    return false;
  }
  m_store = std::move(*store);
  return true;
}

bool CtlSession::open_freeze_store() {
  if (!open_config()) return false;
  const auto& settings = m_config->redis;
  // Printed as the daemon prints its own configuration problems.
  const auto config_issue = [&](const std::string& key, std::string message) {
    const auto line = m_config->key_lines.find(key);
    m_err << policy::ConfigIssue{m_config_path, line == m_config->key_lines.end() ? 0 : line->second, key,
                                 std::move(message)}
                 .to_string()
          << "\n";
    return false;
  };
  if (settings.url.empty()) {
    return config_issue("redis.url",
                        "is empty: freezes then live in each daemon's memory, out of floodgatectl's reach");
  }
  // The same endpoint the daemon builds, Sentinel included, so that
  // floodgatectl follows a failover as the daemon does.
  auto endpoint = ratelimit::redis_endpoint_from_settings(settings);
  if (!endpoint) {
    // The error starts with the setting's name: "redis.sentinel.addresses: ...".
    const std::string& error = endpoint.error();
    const auto colon = error.find(": ");
    if (colon == std::string::npos) return config_issue("redis", escape_for_terminal(error));
    return config_issue(error.substr(0, colon), escape_for_terminal(error.substr(colon + 2)));
  }

  m_redis_name = "Redis at " + escape_for_terminal(ratelimit::describe(*endpoint));
  m_redis_endpoint = *endpoint;
  ratelimit::RedisFreezeStoreOptions options{
      .endpoint = std::move(*endpoint),
      .password = std::nullopt,
      .connect_timeout = settings.connect_timeout,
      .command_timeout = settings.command_timeout,
      .key_prefix = settings.key_prefix,
  };
  m_activity_store = containment::make_redis_activity_store(options, m_config->top.history);
  m_incident_store =
      containment::make_redis_incident_store(options, containment::incident_limits(m_config->containment.incidents));
  m_freeze_store = ratelimit::make_redis_freeze_store(std::move(options));
  return true;
}

void CtlSession::report_error(std::string_view message) { m_err << "floodgatectl: " << message << "\n"; }

int CtlSession::report_redis_failure(const ratelimit::CounterFailure& failure, std::string_view doing,
                                     std::string_view consequence) {
  std::string what;
  switch (failure.kind) {
    case ratelimit::CounterFailure::Kind::Unavailable:
      what = "cannot reach " + m_redis_name;
      break;
    case ratelimit::CounterFailure::Kind::Timeout:
      what = m_redis_name + " did not answer in time";
      break;
    case ratelimit::CounterFailure::Kind::Protocol:
      what = m_redis_name + " gave an unexpected answer";
      break;
    case ratelimit::CounterFailure::Kind::Busy:
      what = "every connection to " + m_redis_name + " stayed busy";
      break;
  }
  what += doing;
  if (!failure.detail.empty()) what += " (" + escape_for_terminal(failure.detail) + ")";
  what += consequence;
  report_error(what);
  return k_exit_error;
}

}  // namespace floodgate::ctl
