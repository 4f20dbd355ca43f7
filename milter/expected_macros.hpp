// The milter macros Floodgate relies on, and a warning, once per macro, when a
// message arrives without one.
//
// Postfix and Sendmail send different macros by default, and an admin may
// change the lists (Sendmail's confMILTER_MACROS_*, Postfix's
// milter_*_macros). A macro the MTA does not send degrades quietly: no queue
// id in the logs and quarantine entries, an identity that never matches.
// So the first message that arrives without one gets a warning naming it,
// what it is needed for, and where each MTA's list is set.
#pragma once

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "policy/config.hpp"

namespace floodgate::milter {

struct ExpectedMacro {
  std::string name;      // without braces
  std::string used_for;  // for the warning, e.g. "the queue id in logs and quarantine entries"
  // The stage whose list should carry it: "connect" or "envfrom" (Sendmail's
  // confMILTER_MACROS_CONNECT / _ENVFROM, Postfix's milter_connect_macros /
  // milter_mail_macros).
  std::string stage;
};

// `i` always; and every macro the config's identities and outbound.macros
// read (they are collected at CONNECT and at MAIL FROM). Not {auth_authen}:
// an MTA sends it only for an authenticated session, so its absence says
// nothing.
std::vector<ExpectedMacro> expected_macros(const policy::Config& config);

// The warning's text for one missing macro.
std::string missing_macro_warning(const ExpectedMacro& macro, std::string_view queue_id);

// Remembers which macros were reported missing; thread-safe.
class MissingMacroReporter {
 public:
  // Of `expected`, those `is_present` says are missing and that were not
  // reported before; they count as reported from now on.
  std::vector<ExpectedMacro> newly_missing(const std::vector<ExpectedMacro>& expected,
                                           const std::function<bool(const std::string&)>& is_present);

 private:
  std::mutex m_mutex;
  std::set<std::string> m_reported;
};

}  // namespace floodgate::milter
