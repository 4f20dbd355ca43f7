// Releasing one quarantined message: the step `release` takes for each entry
// (ctl/change_commands.cpp) and `unfreeze --release-quarantined` takes for
// each entry its freeze stopped, so both keep the same promise.
//
// A spool entry is re-injected over SMTP to the configured release target
// with its original envelope and removed only once every recipient was
// accepted; refused recipients stay in the entry. A hold-mode entry is
// released with postsuper -H, then removed. Every failure is printed (on
// stderr, escaped) as it happens.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ctl/ctl_session.hpp"
#include "quarantine/entry.hpp"

namespace floodgate::ctl {

// Needs session.open(). With `copy_to`, one copy goes to that address and
// the entry is kept. Prints the outcome (success on stdout unless
// `json_output`) and returns it as JSON: {"id", "released", ...}, where
// "released" is true only when the entry is done with.
nlohmann::json release_entry(const quarantine::QuarantineEntry& entry, const std::optional<std::string>& copy_to,
                             bool json_output, CtlSession& session);

}  // namespace floodgate::ctl
