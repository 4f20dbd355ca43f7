// floodgatectl's subcommands. Each takes the arguments after its name,
// parses them (usage errors: exit 2), opens the session (configuration and
// spool or Redis: exit 1 on failure) and returns the exit status: 0 when everything
// asked for was done, 1 when anything failed.
//
// SECURITY: ids from the command line are checked with is_valid_entry_id
// before any is looked up, so no argument can name a file outside the
// spool; every attacker-controlled field printed as text goes through
// escape_for_terminal (JSON output escapes by itself).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ctl/ctl_session.hpp"
#include "quarantine/entry.hpp"

namespace floodgate::ctl {

int run_list(const std::vector<std::string>& args, CtlSession& session);
int run_show(const std::vector<std::string>& args, CtlSession& session);
int run_stats(const std::vector<std::string>& args, CtlSession& session);
int run_release(const std::vector<std::string>& args, CtlSession& session);
int run_delete(const std::vector<std::string>& args, CtlSession& session);
int run_purge(const std::vector<std::string>& args, CtlSession& session);
// Containment (ctl/freeze_commands.cpp): these open the Redis freeze store,
// not the spool (except unfreeze --release-quarantined, which opens both).
int run_frozen(const std::vector<std::string>& args, CtlSession& session);
int run_freeze(const std::vector<std::string>& args, CtlSession& session);
int run_unfreeze(const std::vector<std::string>& args, CtlSession& session);
// Activity (ctl/top_command.cpp): the busiest sources, from Redis.
int run_top(const std::vector<std::string>& args, CtlSession& session);
// Incidents (ctl/incident_commands.cpp): what each freeze's source sent and
// what was done with it, from Redis.
int run_incidents(const std::vector<std::string>& args, CtlSession& session);
int run_incident(const std::vector<std::string>& args, CtlSession& session);
// Policy (ctl/explain_command.cpp): one message scored rule by rule.
int run_explain(const std::vector<std::string>& args, CtlSession& session);

// Shared by the commands that take ids.
// Reports each malformed id ("X is not a quarantine id"); true if none was.
bool check_ids(const std::vector<std::string>& ids, CtlSession& session);
// The entry named by a checked id, or std::nullopt after reporting "no
// quarantined message with id X" (or why it could not be read).
std::optional<quarantine::QuarantineEntry> find_entry(const std::string& id, CtlSession& session);

}  // namespace floodgate::ctl
