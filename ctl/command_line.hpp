// Command-line plumbing shared by floodgatectl's subcommands: each one has
// its own Boost.Program_options description (with --help), usage errors
// print the problem and a hint and exit 2, and the entry filters
// (--source, --sender, --since, --reason, --limit) read the same way
// everywhere.
#pragma once

#include <boost/program_options.hpp>

#include <optional>
#include <string>
#include <vector>

#include "ctl/ctl_session.hpp"
#include "ctl/entry_filter.hpp"

namespace floodgate::ctl {

struct CommandSpec {
  std::string name;      // "list"
  std::string synopsis;  // "list [--source S] ..."
  std::string summary;   // one paragraph for --help
};

// A description captioned with the command's usage, holding --help.
boost::program_options::options_description command_options(const CommandSpec& spec);

// Parses a subcommand's arguments; positional arguments, if `positional`
// takes them, are stored as "id" (a vector of strings). std::nullopt: go on; otherwise the exit
// status to return (0 after --help, k_exit_usage after a printed usage error).
std::optional<int> parse_command_line(
    const CommandSpec& spec, const boost::program_options::options_description& options,
    const boost::program_options::positional_options_description& positional,
    const std::vector<std::string>& args, boost::program_options::variables_map& values, CtlSession& session);

// Prints "floodgatectl <command>: <problem>" and the --help hint; returns k_exit_usage.
int usage_error(const CommandSpec& spec, const std::string& problem, CtlSession& session);

void add_filter_options(boost::program_options::options_description& options, bool with_limit);
// The filter the options name; a malformed --since or --limit is a usage
// error, printed, and gives std::nullopt.
std::optional<EntryFilter> read_filter(const CommandSpec& spec,
                                       const boost::program_options::variables_map& values,
                                       CtlSession& session);

}  // namespace floodgate::ctl
