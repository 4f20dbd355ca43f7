// What a configuration reload (SIGHUP) may change in a running daemon.
//
// The policy applies to the next message at once: rules, identities,
// exemptions, outbound scope, action bands, replies, content limits, the
// containment rules and action, quarantine limits, log.level. What the
// daemon built at start from the config (its socket and user, Redis
// connections, spool, metrics endpoint, log destination, the containment
// worker's incident, notification, queue-clearing and refresh settings, top)
// keeps its running value until a restart: plan_reload() copies those values
// into the new config, so that what runs and what the config says it runs
// agree, and names each such setting so the daemon can say so.
//
// Pure function; no I/O.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/config.hpp"

namespace floodgate::milter {

struct ReloadPlan {
  std::shared_ptr<const policy::Config> config;  // what new messages get
  // Changed in the file but kept at their running value until a restart,
  // by key ("redis", "milter.socket", ...).
  std::vector<std::string> needs_restart;
};

ReloadPlan plan_reload(const policy::Config& running, policy::Config next);

}  // namespace floodgate::milter
