// The floodgate daemon: load the config, open the socket (as root), become
// milter.user, build the counter stack, register with libmilter and serve.
// SIGHUP reloads the config (config_reload.hpp); SIGTERM/SIGINT tempfail
// messages that reach DATA from then on and let those past DATA finish, up
// to milter.shutdown_timeout, before libmilter stops.
//
// DIAGNOSTICS: configuration problems are collected and reported together
// (file:line: key: message); run_daemon() returns the process exit status:
// 0 after a clean stop, 1 for a bad config or a socket that cannot be opened.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/config.hpp"

namespace floodgate::milter {

struct DaemonOptions {
  std::string config_path;
  std::optional<std::string> socket_override;  // --socket
  std::optional<std::string> redis_override;   // --redis
  std::optional<std::string> user_override;    // --user
  bool foreground = false;                     // --foreground: log to stderr
};

enum class ConfigChecks {
  Full,       // at start and --check-config: also reads the password files
  ForReload,  // SIGHUP, as milter.user: secrets are not read again
};

// Loads and validates the config with the command-line overrides applied.
// Throws policy::ConfigError listing every problem, including those only
// the daemon checks (Redis URL, password file, socket spec).
std::shared_ptr<const policy::Config> load_daemon_config(const DaemonOptions& options,
                                                        ConfigChecks checks = ConfigChecks::Full);

int run_daemon(const DaemonOptions& options);

}  // namespace floodgate::milter
