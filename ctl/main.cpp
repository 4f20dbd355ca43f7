// floodgatectl: looks at and acts on what Floodgate quarantined and froze. Parses the
// global flags and the subcommand's name, then hands over to the command
// (ctl/commands.hpp).
#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "ctl/commands.hpp"
#include "ctl/ctl_session.hpp"
#include "ctl/terminal_text.hpp"

namespace po = boost::program_options;
using namespace floodgate::ctl;

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>&, CtlSession&);
  const char* summary;
};

constexpr Command k_commands[] = {
    {"list", run_list, "list quarantined messages (filters: --source --sender --since --reason --limit)"},
    {"show", run_show, "show one message's metadata and headers, or with --raw the message itself"},
    {"release", run_release, "re-inject messages to their recipients (or --to someone) and remove them"},
    {"delete", run_delete, "remove messages for good"},
    {"purge", run_purge, "remove messages older than --older-than DURATION"},
    {"stats", run_stats, "count entries and bytes, by reason and by source"},
    {"frozen", run_frozen, "list the frozen sources: since, TTL left, action, rule, reason"},
    {"freeze", run_freeze, "freeze a SOURCE (--ttl, --action, --reason) on every instance sharing Redis"},
    {"unfreeze", run_unfreeze, "lift a SOURCE's freeze (--release-quarantined: and release its mail)"},
    {"top", run_top, "the busiest sources of the last minutes (--by, --window, --limit, --identity), frozen marked"},
    {"incidents", run_incidents, "list the freezes' incidents, newest first (--open, --since DURATION, --json)"},
    {"incident", run_incident, "show one incident: source, counts, recipients, subjects, queue ids (--json)"},
    {"explain", run_explain, "score a message FILE rule by rule: what each counts, its value, points, the action"},
};

void print_usage(std::ostream& out, const po::options_description& options) {
  out << "Usage: floodgatectl [--config FILE] COMMAND [options]\n\n"
         "Inspects and releases the mail Floodgate quarantined; freezes and unfreezes sources.\n\nCommands:\n";
  for (const auto& command : k_commands)
    out << "  " << command.name << std::string(11 - std::string(command.name).size(), ' ') << command.summary
        << "\n";
  out << "\n"
      << options << "\n"
      << "'floodgatectl COMMAND --help' describes a command. Exit status: 0 done, 1 error, 2 usage.\n";
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description options("Global options");
  options.add_options()("help,h", "show this help")(
      "config,c",
      po::value<std::string>()->default_value("/etc/floodgate/floodgate.yaml")->value_name("FILE"),
      "the daemon's configuration file (spool directory, release target, Redis)")("version,V",
                                                                           "print the version and exit");
  // Global flags come before the command; everything after its name is the
  // command's own (so `list --help` is list's help).
  std::vector<std::string> global_args;
  std::vector<std::string> command_args;
  std::string command_name;
  {
    int i = 1;
    for (; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--config" || arg == "-c") {
        global_args.push_back(arg);
        if (i + 1 < argc) global_args.push_back(argv[++i]);
        continue;
      }
      if (!arg.empty() && arg[0] == '-' && arg != "-") {
        global_args.push_back(arg);
        continue;
      }
      break;
    }
    if (i < argc) command_name = argv[i++];
    for (; i < argc; ++i) command_args.emplace_back(argv[i]);
  }

  po::variables_map flags;
  try {
    po::store(po::command_line_parser(global_args).options(options).run(), flags);
    po::notify(flags);
  } catch (const po::error& error) {
    std::cerr << "floodgatectl: " << escape_for_terminal(error.what()) << "\nTry 'floodgatectl --help'.\n";
    return k_exit_usage;
  }
  if (flags.count("help")) {
    print_usage(std::cout, options);
    return k_exit_ok;
  }
  if (flags.count("version")) {
    std::cout << "floodgatectl " << FLOODGATE_VERSION << "\n";
    return k_exit_ok;
  }
  if (command_name.empty()) {
    print_usage(std::cerr, options);
    return k_exit_usage;
  }
  for (const auto& command : k_commands) {
    if (command_name != command.name) continue;
    CtlSession session(flags["config"].as<std::string>(), std::cout, std::cerr);
    try {
      return command.run(command_args, session);
    } catch (const std::exception& error) {
      // A bug or resource exhaustion: say so instead of aborting silently.
      session.report_error(escape_for_terminal(error.what()));
      return k_exit_error;
    }
  }
  std::cerr << "floodgatectl: unknown command '" << escape_for_terminal(command_name)
            << "'\nTry 'floodgatectl --help'.\n";
  return k_exit_usage;
}
