// list, show, stats: the commands that only read the spool.
#include <algorithm>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/terminal_text.hpp"
#include "quarantine/entry_json.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using quarantine::QuarantineEntry;

// Widths of the table's free-text columns: enough to recognise a value,
// short enough that a row fits a wide terminal.
constexpr std::size_t k_subject_column = 40;
constexpr std::size_t k_address_column = 40;
constexpr std::size_t k_user_column = 24;
constexpr std::size_t k_reason_column = 40;
// show reads the header section up to this size; a longer one is cut.
constexpr std::size_t k_max_header_bytes = 256 * 1024;

std::string client_text(const QuarantineEntry& entry) {
  if (entry.client_name.empty()) return "[" + entry.client_address + "]";
  return entry.client_name + "[" + entry.client_address + "]";
}

std::string sender_text(const QuarantineEntry& entry) { return entry.sender.empty() ? "<>" : entry.sender; }

std::string first_reason(const QuarantineEntry& entry) {
  return entry.reasons.empty() ? entry.cause : entry.reasons.front();
}

// "rcpts_per_msg=200>50 (+10)" -> "rcpts_per_msg": what stats groups by.
std::string reason_name(const std::string& reason) { return reason.substr(0, reason.find_first_of("= (")); }

std::string source_text(const QuarantineEntry& entry) {
  if (!entry.sasl_user.empty()) return "sasl:" + entry.sasl_user;
  return entry.client_address.empty() ? "local" : entry.client_address;
}

const CommandSpec k_list{
    "list", "list [--source S] [--sender A] [--since DURATION] [--reason R] [--limit N] [--json]",
    "Lists quarantined messages, oldest first: id, age, client, SASL user, sender,\n"
    "number of recipients, subject, score and the first reason."};

const CommandSpec k_show{"show", "show ID [--raw] [--json]",
                         "Shows one quarantined message: its metadata and the message's headers.\n"
                         "With --raw, writes the stored message exactly as it was received instead."};

const CommandSpec k_stats{"stats", "stats [--json]",
                          "Counts the quarantine: entries, bytes, the oldest entry, entries by reason\n"
                          "and by source (SASL user, else client address)."};

// The stored message's header section (up to and including the blank line).
std::optional<std::string> read_headers(const std::string& id, CtlSession& session) {
  std::string headers;
  bool complete = false;
  auto result = session.store().for_each_message_piece(id, [&](std::string_view piece) {
    headers.append(piece);
    for (std::string_view end : {"\r\n\r\n", "\n\n"}) {
      if (auto at = headers.find(end); at != std::string::npos) {
        headers.resize(at + end.size());
        complete = true;
      }
    }
    if (!complete && headers.size() > k_max_header_bytes) {
      headers.resize(k_max_header_bytes);
      complete = true;
    }
    return !complete;
  });
  // Stopping early on purpose may be reported as a failure by the store.
  if (!result && !complete) {
    session.report_error(id + ": cannot read the message: " + escape_for_terminal(result.error().message));
    return std::nullopt;
  }
  return headers;
}

}  // namespace

bool check_ids(const std::vector<std::string>& ids, CtlSession& session) {
  bool all_valid = true;
  for (const auto& id : ids) {
    if (!quarantine::is_valid_entry_id(id)) {
      session.report_error(escape_for_terminal(id) + " is not a quarantine id");
      all_valid = false;
    }
  }
  return all_valid;
}

std::optional<QuarantineEntry> find_entry(const std::string& id, CtlSession& session) {
  auto entry = session.store().read_metadata(id);
  if (entry) return std::move(*entry);
  // Absent, or present but unreadable? Only the latter deserves the
  // store's own explanation.
  auto entries = session.store().list();
  const bool listed = std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.id == id; });
  if (listed) {
    session.report_error(id + ": " + escape_for_terminal(entry.error().message));
  } else {
    session.report_error("no quarantined message with id " + id);
  }
  return std::nullopt;
}

int run_list(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_list);
  add_filter_options(options, true);
  options.add_options()("json", "print a JSON array of entries");
  po::variables_map values;
  if (auto status = parse_command_line(k_list, options, {}, args, values, session)) return *status;
  auto filter = read_filter(k_list, values, session);
  if (!filter) return k_exit_usage;
  if (!session.open()) return k_exit_error;

  std::vector<std::string> problems;
  auto entries = select_entries(session.store().list(&problems), *filter, session.now());
  for (const auto& problem : problems) session.report_error("skipped: " + escape_for_terminal(problem));

  if (values.count("json")) {
    auto array = nlohmann::json::array();
    for (const auto& entry : entries) array.push_back(quarantine::entry_to_json(entry));
    session.out() << array.dump(2) << "\n";
    return k_exit_ok;
  }
  if (entries.empty()) {
    session.out() << (filter->empty() ? "no quarantined messages\n" : "no quarantined messages match\n");
    return k_exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "AGE", "CLIENT", "SASL USER", "SENDER", "RCPTS", "SUBJECT", "SCORE", "REASON"});
  for (const auto& entry : entries) {
    rows.push_back({entry.id, format_age(session.now() - entry.time),
                    escape_for_terminal(client_text(entry), k_address_column),
                    entry.sasl_user.empty() ? "-" : escape_for_terminal(entry.sasl_user, k_user_column),
                    escape_for_terminal(sender_text(entry), k_address_column),
                    std::to_string(entry.recipients.size()),
                    escape_for_terminal(entry.subject, k_subject_column), std::to_string(entry.score),
                    escape_for_terminal(first_reason(entry), k_reason_column)});
  }
  print_table(session.out(), rows, {false, true, false, false, false, true, false, true, false});
  return k_exit_ok;
}

int run_show(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_show);
  options.add_options()("raw", "write the stored message byte for byte")("json", "print the entry as JSON");
  po::positional_options_description positional;
  positional.add("id", -1);
  po::variables_map values;
  if (auto status = parse_command_line(k_show, options, positional, args, values, session)) return *status;
  if (!values.count("id") || values["id"].as<std::vector<std::string>>().size() != 1) {
    return usage_error(k_show, "give exactly one ID", session);
  }
  if (values.count("raw") && values.count("json"))
    return usage_error(k_show, "--raw and --json exclude each other", session);
  const std::string id = values["id"].as<std::vector<std::string>>().front();
  if (!check_ids({id}, session)) return k_exit_error;
  if (!session.open()) return k_exit_error;
  auto entry = find_entry(id, session);
  if (!entry) return k_exit_error;
  const bool held = entry->mode == quarantine::EntryMode::Hold;

  if (values.count("raw")) {
    if (held) {
      session.report_error(id + ": the message is in the MTA's hold queue (queue id " +
                           escape_for_terminal(entry->queue_id) + "), not in the spool");
      return k_exit_error;
    }
    // Exact bytes, unescaped: this is what --raw is for (pipe it to a file).
    auto result = session.store().read_message(id, session.out());
    session.out().flush();
    if (!result) {
      session.report_error(id + ": " + escape_for_terminal(result.error().message));
      return k_exit_error;
    }
    return k_exit_ok;
  }

  std::optional<std::string> headers;
  if (!held) {
    headers = read_headers(id, session);
    if (!headers) return k_exit_error;
  }
  if (values.count("json")) {
    auto json = quarantine::entry_to_json(*entry);
    if (headers) json["headers"] = quarantine::bytes_to_json(*headers);
    session.out() << json.dump(2) << "\n";
    return k_exit_ok;
  }

  auto& out = session.out();
  auto field = [&](std::string_view name, const std::string& value) {
    out << std::left << std::setw(13) << (std::string(name) + ":") << value << "\n";
  };
  field("id", entry->id);
  field("time", format_utc(entry->time) + " (" + format_age(session.now() - entry->time) + " ago)");
  field("mode", std::string(quarantine::to_string(entry->mode)));
  field("queue id", escape_for_terminal(entry->queue_id));
  field("client", escape_for_terminal(client_text(*entry)));
  field("helo", escape_for_terminal(entry->helo));
  field("sasl user", escape_for_terminal(entry->sasl_user));
  field("sender", "<" + escape_for_terminal(entry->sender) + ">");
  field("recipients", std::to_string(entry->recipients.size()));
  for (const auto& recipient : entry->recipients) out << "  <" << escape_for_terminal(recipient) << ">\n";
  field("subject", escape_for_terminal(entry->subject));
  field("size", std::to_string(entry->size_bytes) + " bytes");
  field("score", std::to_string(entry->score));
  field("cause", escape_for_terminal(entry->cause));
  if (!entry->frozen_source.empty()) field("frozen by", escape_for_terminal(entry->frozen_source));
  field("reasons", std::to_string(entry->reasons.size()));
  for (const auto& reason : entry->reasons) out << "  " << escape_for_terminal(reason) << "\n";
  field("fingerprint", escape_for_terminal(entry->fingerprint));
  if (!headers) {
    out << "\n(the message is in the MTA's hold queue)\n";
    return k_exit_ok;
  }
  out << "\n";
  // One escaped line per stored line; a folded header keeps its indent.
  std::string_view rest = *headers;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    std::string printable;
    // A tab is how headers fold; keep it readable rather than \x09.
    for (std::size_t start = 0; start <= line.size();) {
      auto tab = line.find('\t', start);
      printable += escape_for_terminal(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
      if (tab == std::string_view::npos) break;
      printable += '\t';
      start = tab + 1;
    }
    out << printable << "\n";
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return k_exit_ok;
}

int run_stats(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_stats);
  options.add_options()("json", "print the counts as JSON");
  po::variables_map values;
  if (auto status = parse_command_line(k_stats, options, {}, args, values, session)) return *status;
  if (!session.open()) return k_exit_error;

  const auto totals = session.store().stats();
  std::map<std::string, std::size_t> by_reason;
  std::map<std::string, std::size_t> by_source;
  for (const auto& entry : session.store().list()) {
    std::set<std::string> names;  // an entry counts once per reason name
    for (const auto& reason : entry.reasons) names.insert(reason_name(reason));
    if (names.empty()) names.insert(entry.cause);
    for (const auto& name : names) ++by_reason[name];
    ++by_source[source_text(entry)];
  }

  if (values.count("json")) {
    nlohmann::json json;
    json["entries"] = totals.entries;
    json["bytes"] = totals.bytes;
    json["oldest"] = nullptr;
    if (totals.oldest) json["oldest"] = format_utc(*totals.oldest);
    json["by_reason"] = nlohmann::json::object();
    for (const auto& [name, count] : by_reason) json["by_reason"][name] = count;
    json["by_source"] = nlohmann::json::object();
    for (const auto& [name, count] : by_source) json["by_source"][name] = count;
    // Keys hold attacker bytes; dump() must not throw on invalid UTF-8.
    session.out() << json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return k_exit_ok;
  }
  auto& out = session.out();
  out << "entries: " << totals.entries << "\n";
  out << "bytes:   " << totals.bytes << "\n";
  out << "oldest:  "
      << (totals.oldest
              ? format_utc(*totals.oldest) + " (" + format_age(session.now() - *totals.oldest) + " ago)"
              : std::string("-"))
      << "\n";
  auto print_counts = [&](std::string_view title, const std::map<std::string, std::size_t>& counts) {
    out << title << ":\n";
    std::vector<std::pair<std::string, std::size_t>> sorted(counts.begin(), counts.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [name, count] : sorted)
      out << "  " << std::setw(6) << std::right << count << "  "
          << escape_for_terminal(name, k_address_column) << "\n";
  };
  print_counts("by reason", by_reason);
  print_counts("by source", by_source);
  return k_exit_ok;
}

}  // namespace floodgate::ctl
