// CtlSession: what every floodgatectl command shares once its command line
// has been accepted: the configuration (the daemon's file, so both agree
// on the spool, the release target and Redis), the spool store or the
// freeze store it names, the output streams and one notion of "now".
//
// DIAGNOSTICS: the open functions print configuration problems exactly as
// the daemon does (one "file:line: key: message" per line) and other
// failures as "floodgatectl: ...", then return false; the caller exits 1.
//
// The freeze store is always Redis, never a local fallback: a freeze that
// only floodgatectl's own process knew would contain nothing. Opening it
// does not connect; the first command does, and reports a Redis that is
// down as a CounterFailure.
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "containment/activity.hpp"
#include "containment/incident_store.hpp"
#include "policy/config.hpp"
#include "quarantine/spool_store.hpp"
#include "ratelimit/freeze_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ctl {

// Exit statuses, the same for every command.
constexpr int k_exit_ok = 0;
constexpr int k_exit_error = 1;
constexpr int k_exit_usage = 2;

class CtlSession {
 public:
  CtlSession(std::string config_path, std::ostream& out, std::ostream& err);

  // The configuration and the quarantine spool.
  bool open();
  // The configuration alone.
  bool open_config_only() { return open_config(); }
  // The configuration and the Redis freeze store (redis.url, password_file,
  // timeouts, key_prefix). Fails when redis.url is empty (local-only
  // counters: each daemon's freezes live in its own memory).
  bool open_freeze_store();

  // Valid after open() (or open_freeze_store()) returned true.
  const policy::Config& config() const { return *m_config; }
  std::shared_ptr<const policy::Config> shared_config() const { return m_config; }
  // Valid after open_freeze_store() returned true: where the daemon's Redis is.
  const ratelimit::RedisEndpoint& redis_endpoint() const { return m_redis_endpoint; }
  // Valid after open() returned true.
  quarantine::SpoolStore& store() { return *m_store; }
  // Valid after open_freeze_store() returned true.
  ratelimit::FreezeStore& freeze_store() { return *m_freeze_store; }
  // Valid after open_freeze_store() returned true: the activity `top` reads,
  // in the same Redis, with the same options and top.history.
  containment::ActivityStore& activity_store() { return *m_activity_store; }
  // Valid after open_freeze_store() returned true: the incidents, in the
  // same Redis, with the same options and containment.incidents' limits.
  containment::IncidentStore& incident_store() { return *m_incident_store; }
  // "Redis at 127.0.0.1:6379", for messages; never holds the password.
  const std::string& redis_name() const { return m_redis_name; }

  std::ostream& out() { return m_out; }
  std::ostream& err() { return m_err; }
  std::chrono::system_clock::time_point now() const { return m_now; }

  // "floodgatectl: <message>" on stderr; `message` must already be escaped.
  void report_error(std::string_view message);
  // A failed Redis call, said once the same way by every command: "cannot
  // reach Redis at ...<doing> (detail)<consequence>". Returns k_exit_error.
  int report_redis_failure(const ratelimit::CounterFailure& failure, std::string_view doing,
                           std::string_view consequence = {});

 private:
  bool open_config();

  std::string m_config_path;
  std::ostream& m_out;
  std::ostream& m_err;
  std::chrono::system_clock::time_point m_now;
  std::shared_ptr<const policy::Config> m_config;
  std::unique_ptr<quarantine::SpoolStore> m_store;
  std::unique_ptr<ratelimit::FreezeStore> m_freeze_store;
  std::unique_ptr<containment::ActivityStore> m_activity_store;
  std::unique_ptr<containment::IncidentStore> m_incident_store;
  std::string m_redis_name;
  ratelimit::RedisEndpoint m_redis_endpoint;
};

}  // namespace floodgate::ctl
