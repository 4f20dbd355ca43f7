// top: which sources sent the most in the last minutes, from the activity
// every Floodgate instance flushes to Redis (containment/activity.hpp), with
// the ones currently frozen marked -- what an admin runs first after an
// abuse report.
//
// SECURITY: a source's values (header values, SASL names, addresses) are
// text from the SMTP client: escaped for the terminal and cut to a column,
// or written as JSON (bytes_to_json) with --json.
//
// DIAGNOSTICS: a malformed --by, --window or --limit, a window longer than
// top.history and an identity the config does not define are usage errors
// (exit 2); top disabled in the config and a Redis that cannot be reached or
// does not answer in time are errors (exit 1) naming the config or the
// Redis. No activity in the window is not an error.
#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "containment/activity.hpp"
#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/terminal_text.hpp"
#include "quarantine/entry_json.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using containment::TopEntry;
using containment::TopOrder;

constexpr std::size_t k_source_column = 60;
constexpr std::size_t k_default_limit = 20;
// At most this many rows: a bigger --limit is surely a typo, and every row
// may cost a PFCOUNT.
constexpr std::size_t k_max_limit = 100000;
constexpr std::chrono::seconds k_default_window{600};

const CommandSpec k_top{
    "top", "top [--by messages|recipients|unique-recipients] [--window DURATION] [--limit N] [--identity NAME] [--json]",
    "Lists the sources that sent the most outbound mail in the last DURATION\n"
    "(default 10m, at most top.history), as every Floodgate instance sharing the\n"
    "Redis reports it (each flushes every top.flush_interval): one row per source\n"
    "of each identity the config defines, with its messages, recipients and unique\n"
    "recipients (an estimate, exact for small counts), largest first by --by\n"
    "(default messages). FROZEN marks a source frozen now. The window counts whole\n"
    "minutes, the current one included: 10m is the current minute and the 9 before."};

// "45s", "10m", "2h", "1d": the largest unit that divides it exactly.
std::string exact_duration(std::chrono::seconds duration) {
  const auto seconds = duration.count();
  if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

std::optional<std::size_t> parse_limit(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  std::size_t limit = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    limit = limit * 10 + static_cast<std::size_t>(c - '0');
  }
  if (limit == 0) return std::nullopt;
  return limit;
}

std::string source_text(const TopEntry& entry) {
  // The name is written with the counts; a source without one lost it to
  // something outside Floodgate.
  if (entry.source.empty()) return "(unknown source " + entry.source_digest + ")";
  return escape_for_terminal(entry.source, k_source_column);
}

// print_table pads every column but the last; an empty last cell still
// leaves the separator, which is trimmed here.
void print_trimmed_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                         const std::vector<bool>& right_aligned) {
  std::ostringstream table;
  print_table(table, rows, right_aligned);
  std::istringstream lines(table.str());
  for (std::string line; std::getline(lines, line);) {
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  }
}

}  // namespace

int run_top(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_top);
  options.add_options()("by", po::value<std::string>()->value_name("KEY"),
                        "messages (default), recipients or unique-recipients")(
      "window", po::value<std::string>()->value_name("DURATION"),
      "how far back to look (30s, 10m, 1h; default 10m, at most top.history)")(
      "limit", po::value<std::string>()->value_name("N"), "at most N sources (default 20)")(
      "identity", po::value<std::string>()->value_name("NAME"),
      "only the sources of this identity of the config (client, php_script, ...)")(
      "json", "print a JSON array of sources, ranked");
  po::variables_map values;
  if (auto status = parse_command_line(k_top, options, {}, args, values, session)) return *status;

  TopOrder order = TopOrder::Messages;
  if (values.count("by")) {
    const auto& text = values["by"].as<std::string>();
    const auto parsed = containment::parse_top_order(text);
    if (!parsed) {
      return usage_error(k_top, "--by: '" + text + "' is not messages, recipients or unique-recipients", session);
    }
    order = *parsed;
  }
  std::optional<std::chrono::seconds> window;
  if (values.count("window")) {
    const auto& text = values["window"].as<std::string>();
    window = parse_duration(text);
    if (!window) return usage_error(k_top, "--window: '" + text + "' is not a duration such as 30s, 10m or 1h", session);
  }
  std::size_t limit = k_default_limit;
  if (values.count("limit")) {
    const auto& text = values["limit"].as<std::string>();
    const auto parsed = parse_limit(text);
    if (!parsed || *parsed > k_max_limit) {
      return usage_error(k_top, "--limit: '" + text + "' is not a number from 1 to " + std::to_string(k_max_limit),
                         session);
    }
    limit = *parsed;
  }
  if (!session.open_freeze_store()) return k_exit_error;

  const auto& config = session.config();
  if (!config.top.enabled) {
    session.report_error("top is disabled in the config (top.enabled is false in " +
                         escape_for_terminal(config.source_file) + "): the daemons record no activity");
    return k_exit_error;
  }
  // Redis keeps no minute older than top.history.
  if (window && *window > config.top.history) {
    return usage_error(k_top,
                       "--window " + values["window"].as<std::string>() + " is longer than top.history (" +
                           exact_duration(config.top.history) + "), the activity Redis keeps",
                       session);
  }
  const std::chrono::seconds span = window.value_or(std::min(k_default_window, config.top.history));
  const std::string span_text = window ? values["window"].as<std::string>() : exact_duration(span);
  std::string identity;
  if (values.count("identity")) {
    identity = values["identity"].as<std::string>();
    std::string known;
    bool found = false;
    for (const auto& definition : config.identities) {
      found = found || definition.name == identity;
      known += (known.empty() ? "" : ", ") + definition.name;
    }
    if (!found) {
      return usage_error(k_top, "--identity: the config defines no identity '" + identity + "' (it has: " +
                                    (known.empty() ? "none" : known) + ")",
                         session);
    }
  }

  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
  auto entries = session.activity_store().top_for_identity(identity, span, order, limit, now);
  if (!entries) return session.report_redis_failure(entries.error(), " while reading the activity");

  // Which are frozen now. Without it the ranking still stands: print it,
  // say why the marks are missing, exit 1.
  std::optional<std::vector<std::string>> frozen;
  std::optional<ratelimit::CounterFailure> freeze_failure;
  if (!entries->empty()) {
    if (auto freezes = session.freeze_store().active(now)) {
      frozen.emplace();
      for (const auto& freeze : *freezes) frozen->push_back(freeze.source_digest);
    } else {
      freeze_failure = std::move(freezes.error());
    }
  }
  const auto is_frozen = [&](const TopEntry& entry) -> std::optional<bool> {
    if (!frozen) return std::nullopt;
    return std::find(frozen->begin(), frozen->end(), entry.source_digest) != frozen->end();
  };

  if (values.count("json")) {
    auto array = nlohmann::json::array();
    std::size_t rank = 0;
    for (const auto& entry : *entries) {
      const auto marked = is_frozen(entry);
      array.push_back({{"rank", ++rank},
                       {"identity", quarantine::bytes_to_json(entry.identity)},
                       {"source", quarantine::bytes_to_json(entry.source)},
                       {"source_digest", entry.source_digest},
                       {"messages", entry.messages},
                       {"recipients", entry.recipients},
                       {"unique_recipients", entry.unique_recipients},
                       {"frozen", marked ? nlohmann::json(*marked) : nlohmann::json(nullptr)}});
    }
    session.out() << array.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (entries->empty()) {
    session.out() << "no activity in the last " << escape_for_terminal(span_text)
                  << (identity.empty() ? "" : " from identity " + escape_for_terminal(identity)) << "\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"RANK", "IDENTITY", "SOURCE", "MESSAGES", "RECIPIENTS", "UNIQUE RCPTS", "FROZEN"});
    std::size_t rank = 0;
    for (const auto& entry : *entries) {
      const auto marked = is_frozen(entry);
      rows.push_back({std::to_string(++rank), escape_for_terminal(entry.identity), source_text(entry),
                      std::to_string(entry.messages), std::to_string(entry.recipients),
                      std::to_string(entry.unique_recipients), !marked ? "?" : *marked ? "frozen" : ""});
    }
    print_trimmed_table(session.out(), rows, {true, false, false, true, true, true, false});
  }
  if (freeze_failure) return session.report_redis_failure(*freeze_failure, " while reading the freezes");
  return k_exit_ok;
}

}  // namespace floodgate::ctl
