#include "ctl/command_line.hpp"

#include "ctl/terminal_text.hpp"

namespace floodgate::ctl {

namespace po = boost::program_options;

po::options_description command_options(const CommandSpec& spec) {
  po::options_description options("Usage: floodgatectl [--config FILE] " + spec.synopsis + "\n\n" +
                                  spec.summary + "\n\nOptions");
  options.add_options()("help,h", "show this help");
  return options;
}

int usage_error(const CommandSpec& spec, const std::string& problem, CtlSession& session) {
  session.err() << "floodgatectl " << spec.name << ": " << escape_for_terminal(problem) << "\n"
                << "Try 'floodgatectl " << spec.name << " --help'.\n";
  return k_exit_usage;
}

std::optional<int> parse_command_line(const CommandSpec& spec, const po::options_description& options,
                                      const po::positional_options_description& positional,
                                      const std::vector<std::string>& args, po::variables_map& values,
                                      CtlSession& session) {
  // The ids a command takes positionally: kept out of --help, whose
  // synopsis names them.
  po::options_description hidden;
  hidden.add_options()("id", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(options).add(hidden);
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), values);
    if (values.count("help")) {
      session.out() << options << "\n";
      return k_exit_ok;
    }
    po::notify(values);
  } catch (const po::error& error) {
    return usage_error(spec, error.what(), session);
  }
  return std::nullopt;
}

void add_filter_options(po::options_description& options, bool with_limit) {
  options.add_options()("source", po::value<std::string>()->value_name("S"),
                        "client address, client name or SASL user")(
      "sender", po::value<std::string>()->value_name("A"), "envelope sender (<> for the null sender)")(
      "since", po::value<std::string>()->value_name("DURATION"),
      "quarantined within the last DURATION (30s, 10m, 1h, 1d, 2w)")(
      "reason", po::value<std::string>()->value_name("R"), "text found in any reason or the cause");
  if (with_limit) {
    options.add_options()("limit", po::value<std::string>()->value_name("N"),
                          "at most N entries, the most recent");
  }
}

std::optional<EntryFilter> read_filter(const CommandSpec& spec, const po::variables_map& values,
                                       CtlSession& session) {
  EntryFilter filter;
  if (values.count("source")) filter.source = values["source"].as<std::string>();
  if (values.count("sender")) filter.sender = values["sender"].as<std::string>();
  if (values.count("reason")) filter.reason = values["reason"].as<std::string>();
  if (values.count("since")) {
    const auto& text = values["since"].as<std::string>();
    filter.since = parse_duration(text);
    if (!filter.since) {
      usage_error(spec, "--since: '" + text + "' is not a duration such as 30s, 10m, 1h or 1d", session);
      return std::nullopt;
    }
  }
  if (values.count("limit")) {
    const auto& text = values["limit"].as<std::string>();
    std::size_t limit = 0;
    bool valid = !text.empty() && text.size() <= 9;
    for (char c : text) {
      if (c < '0' || c > '9')
        valid = false;
      else
        limit = limit * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!valid || limit == 0) {
      usage_error(spec, "--limit: '" + text + "' is not a positive number", session);
      return std::nullopt;
    }
    filter.limit = limit;
  }
  return filter;
}

}  // namespace floodgate::ctl
