// CtlSession: what every floodgatectl command shares once its command line
// has been accepted: the configuration (the daemon's file, so both agree
// on the spool and the release target), the spool store it names, the
// output streams and one notion of "now".
//
// DIAGNOSTICS: open() prints configuration problems exactly as the daemon
// does (one "file:line: key: message" per line) and other failures as
// "floodgatectl: ...", then returns false; the caller exits 1.
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "policy/config.hpp"
#include "quarantine/spool_store.hpp"

namespace floodgate::ctl {

// Exit statuses, the same for every command.
constexpr int k_exit_ok = 0;
constexpr int k_exit_error = 1;
constexpr int k_exit_usage = 2;

class CtlSession {
 public:
  CtlSession(std::string config_path, std::ostream& out, std::ostream& err);

  bool open();

  // Valid after open() returned true.
  const policy::Config& config() const { return *m_config; }
  quarantine::SpoolStore& store() { return *m_store; }

  std::ostream& out() { return m_out; }
  std::ostream& err() { return m_err; }
  std::chrono::system_clock::time_point now() const { return m_now; }

  // "floodgatectl: <message>" on stderr; `message` must already be escaped.
  void report_error(std::string_view message);

 private:
  std::string m_config_path;
  std::ostream& m_out;
  std::ostream& m_err;
  std::chrono::system_clock::time_point m_now;
  std::shared_ptr<const policy::Config> m_config;
  std::unique_ptr<quarantine::SpoolStore> m_store;
};

}  // namespace floodgate::ctl
