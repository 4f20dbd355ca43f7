// explain: one message scored against the configured policy, rule by rule --
// the answer to "why was this held?".
//
// The message (a file as the MTA would receive it: headers, a blank line,
// the body; an mbox "From " line first is skipped) goes through the
// daemon's own MessageSession, so its facts, fingerprint and counters are
// exactly the daemon's. The envelope comes from the options: --client
// (127.0.0.1 by default), --client-name, --sasl, --from (default: the From:
// header's address), --rcpt (default: the To:, Cc: and Bcc: addresses),
// --macro NAME=VALUE.
//
// Counters: by default a fresh in-process store, so each counter holds this
// message alone; with --live, the daemon's Redis read and never written
// (ratelimit/redis_counter_reader.hpp): a Sum is what the daemon would see
// counting this message now; a Distinct is an upper bound (marked "<="),
// every member of this message counted as new.
//
// SECURITY: every value taken from the message or the options is escaped
// for the terminal (or written as JSON); the file is only read.
//
// DIAGNOSTICS: an unreadable file, a message without a recipient, a bad
// --macro are usage or input errors (exit 2 and 1); Redis unreachable with
// --live is an error (exit 1) naming the Redis.
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/terminal_text.hpp"
#include "milter/session.hpp"
#include "policy/digest.hpp"
#include "policy/identity.hpp"
#include "policy/source_spec.hpp"
#include "quarantine/entry_json.hpp"
#include "ratelimit/memory_counter_store.hpp"
#include "ratelimit/redis_counter_reader.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using policy::Signal;

const CommandSpec k_explain{
    "explain",
    "explain FILE [--client ADDR] [--client-name NAME] [--sasl USER] [--from ADDRESS] [--rcpt ADDRESS]... "
    "[--macro NAME=VALUE]... [--live] [--json]",
    "Scores the message in FILE against the configured policy as the daemon would,\n"
    "and prints for every rule the source it counts (its identity's value), the\n"
    "counter's value, the threshold and the points, then the total and the action.\n"
    "The envelope: --client (default 127.0.0.1), --sasl, --from (default the From:\n"
    "address), --rcpt (default the To:, Cc: and Bcc: addresses). Counters come from\n"
    "a fresh in-process store (each holds this message alone) or, with --live, from\n"
    "the daemon's Redis, read and never written: what the daemon would count for\n"
    "this message now; '<=' marks an upper bound (distinct counts: every member of\n"
    "this message taken as new)."};

constexpr std::size_t k_max_message_bytes = 64 * 1024 * 1024;

struct ParsedMessage {
  std::vector<std::pair<std::string, std::string>> headers;  // name, value (folds kept, as the MTA passes them)
  std::string body;                                          // CRLF line ends
};

std::string with_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 40);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

ParsedMessage parse_message(std::string text) {
  if (text.starts_with("From ")) text.erase(0, text.find('\n') == std::string::npos ? text.size() : text.find('\n') + 1);
  text = with_crlf(text);
  ParsedMessage message;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find("\r\n", at);
    const std::string_view line(text.data() + at, (end == std::string::npos ? text.size() : end) - at);
    at = end == std::string::npos ? text.size() : end + 2;
    if (line.empty()) break;  // the blank line: the body follows
    if ((line[0] == ' ' || line[0] == '\t') && !message.headers.empty()) {
      message.headers.back().second += "\r\n" + std::string(line);  // folded, kept as the MTA passes it
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a header: skipped, as Postfix would not pass it
    // The value as Postfix passes it with SMFIP_HDR_LEADSPC: all after the colon.
    message.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  message.body = text.substr(at);
  return message;
}

// The addresses in an address-list header value: each <...>, or each bare
// word with an '@' when there is no angle bracket.
std::vector<std::string> addresses_in(std::string_view value) {
  std::vector<std::string> found;
  for (std::size_t open = value.find('<'); open != std::string_view::npos; open = value.find('<', open + 1)) {
    const auto close = value.find('>', open);
    if (close == std::string_view::npos) break;
    const auto address = value.substr(open + 1, close - open - 1);
    if (address.find('@') != std::string_view::npos) found.emplace_back(address);
  }
  if (!found.empty() || value.find('<') != std::string_view::npos) return found;
  std::string word;
  for (const char c : std::string(value) + ",") {
    if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';') {
      if (word.find('@') != std::string::npos) found.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  return found;
}

bool names_header(const std::string& name, std::string_view wanted) {
  return name.size() == wanted.size() && std::equal(name.begin(), name.end(), wanted.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// What a rule counts for this message, in words.
std::string counted_source(const policy::Config& config, const policy::Rule& rule, const policy::MessageFacts& facts) {
  const bool content = rule.signal == Signal::ContentCopies || rule.signal == Signal::ContentRecipients ||
                       rule.signal == Signal::ContentSources || rule.signal == Signal::ContentRecipientDomains;
  if (rule.signal == Signal::RecipientsPerMessage) return "this message";
  std::string source;
  if (rule.identity) {
    const auto& identity = config.identities[*rule.identity];
    const auto spec = policy::source_of(identity, facts);
    if (!spec) return "(no " + identity.name + ")";
    source = spec->canonical();
  }
  if (!content) return source;
  if (rule.signal == Signal::ContentSources) return "this content, by " + config.identities[*rule.identity].name;
  return rule.identity ? "this content from " + source : "this content";
}

std::string points_text(int points) { return (points >= 0 ? "+" : "") + std::to_string(points); }

}  // namespace

int run_explain(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_explain);
  options.add_options()("client", po::value<std::string>()->value_name("ADDR"), "the client's IP address (default 127.0.0.1)")(
      "client-name", po::value<std::string>()->value_name("NAME"), "the client's host name (default unknown)")(
      "sasl", po::value<std::string>()->value_name("USER"), "the SMTP AUTH user")(
      "from", po::value<std::string>()->value_name("ADDRESS"), "the envelope sender (default: the From: address)")(
      "rcpt", po::value<std::vector<std::string>>()->value_name("ADDRESS"),
      "an envelope recipient, repeated (default: the To:, Cc: and Bcc: addresses)")(
      "macro", po::value<std::vector<std::string>>()->value_name("NAME=VALUE"), "a milter macro, repeated")(
      "live", "read the counters from the daemon's Redis, without writing")(
      "json", "print the explanation as JSON");
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map values;
  if (auto status = parse_command_line(k_explain, options, positional, args, values, session)) return *status;
  if (!values.count("id")) return usage_error(k_explain, "which message? give the FILE it is in", session);
  const std::string path = values["id"].as<std::vector<std::string>>().front();
  std::vector<std::pair<std::string, std::string>> macros;
  if (values.count("macro")) {
    for (const auto& text : values["macro"].as<std::vector<std::string>>()) {
      const auto equals = text.find('=');
      if (equals == std::string::npos || equals == 0)
        return usage_error(k_explain, "--macro: '" + text + "' is not NAME=VALUE", session);
      macros.emplace_back(text.substr(0, equals), text.substr(equals + 1));
    }
  }
  const bool live = values.count("live") > 0;
  const bool json_output = values.count("json") > 0;
  if (!(live ? session.open_freeze_store() : session.open_config_only())) return k_exit_error;

  std::ifstream file(path, std::ios::binary);
  if (!file) {
    session.report_error("cannot read " + escape_for_terminal(path) + ": " + std::strerror(errno));
    return k_exit_error;
  }
  std::string text;
  std::array<char, 65536> buffer{};
  while (file.read(buffer.data(), buffer.size()) || file.gcount() > 0) {
    text.append(buffer.data(), static_cast<std::size_t>(file.gcount()));
    if (text.size() > k_max_message_bytes) {
      session.report_error(escape_for_terminal(path) + " is bigger than 64 MiB: not a message to explain");
      return k_exit_error;
    }
  }
  const ParsedMessage message = parse_message(std::move(text));

  std::string sender = values.count("from") ? values["from"].as<std::string>() : "";
  std::vector<std::string> recipients =
      values.count("rcpt") ? values["rcpt"].as<std::vector<std::string>>() : std::vector<std::string>{};
  for (const auto& [name, value] : message.headers) {
    if (!values.count("from") && sender.empty() && names_header(name, "from")) {
      const auto found = addresses_in(value);
      if (!found.empty()) sender = found.front();
    }
    if (!values.count("rcpt") && (names_header(name, "to") || names_header(name, "cc") || names_header(name, "bcc"))) {
      for (auto& address : addresses_in(value)) recipients.push_back(std::move(address));
    }
  }
  if (recipients.empty()) {
    session.report_error(escape_for_terminal(path) + ": no recipient in To:, Cc: or Bcc:; give them with --rcpt");
    return k_exit_error;
  }

  milter::ConnectionInfo connection;
  connection.client_address = values.count("client") ? values["client"].as<std::string>() : "127.0.0.1";
  connection.client_name = values.count("client-name") ? values["client-name"].as<std::string>() : "unknown";
  milter::MessageSession scored(session.shared_config(), connection);
  for (const auto& [name, value] : macros) scored.set_macro(name, value);
  if (values.count("sasl")) scored.set_macro("{auth_authen}", values["sasl"].as<std::string>());
  scored.set_sender("<" + sender + ">");
  for (const auto& recipient : recipients) scored.add_recipient("<" + recipient + ">", false);
  for (const auto& [name, value] : message.headers) scored.add_header(name, value);
  scored.add_body_chunk(message.body);

  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
  std::unique_ptr<ratelimit::CounterStore> counters;
  if (live) {
    const auto& redis = session.config().redis;
    counters = std::make_unique<ratelimit::RedisCounterReader>(session.redis_endpoint(), redis.connect_timeout,
                                                               redis.command_timeout);
  } else {
    counters = std::make_unique<ratelimit::MemoryCounterStore>();
  }
  const auto explanation = scored.explain(*counters, now);
  const auto& decision = explanation.decision;
  if (!decision.counter_failure.empty()) {
    return session.report_redis_failure(
        ratelimit::CounterFailure{ratelimit::CounterFailure::Kind::Unavailable, decision.counter_failure},
        " to read the counters", ": nothing explained");
  }

  const policy::Config& config = session.config();
  const policy::MessageFacts& facts = scored.facts();
  const std::string counters_text =
      live ? "live, read only: " + session.redis_name() : std::string("a fresh in-process store: this message alone");
  nlohmann::json json;
  json["file"] = quarantine::bytes_to_json(path);
  json["scope"] = std::string(policy::to_string(decision.scope));
  json["counters"] = live ? "redis" : "fresh";
  json["client"] = quarantine::bytes_to_json(facts.client_address);
  json["sender"] = quarantine::bytes_to_json(facts.sender);
  json["recipients"] = scored.recipient_count();
  json["fingerprint"] = facts.fingerprint.present ? facts.fingerprint.method + ":" +
                                                        policy::to_hex(facts.fingerprint.digest).substr(0, 8)
                                                  : std::string("none");
  json["rules"] = nlohmann::json::array();

  std::vector<std::vector<std::string>> rows{{"RULE", "COUNTS", "VALUE", "THRESHOLD", "POINTS", ""}};
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const policy::Rule& rule = config.rules[i];
    const bool scored_rules = !explanation.evaluations.empty();
    const policy::RuleEvaluation evaluation = scored_rules ? explanation.evaluations[i] : policy::RuleEvaluation{};
    bool upper_bound = false;
    if (live && evaluation.applies && scored_rules) {
      const auto& input = explanation.plan.rule_inputs[i];
      if (input.source == policy::RuleInput::Source::Counter)
        upper_bound = ratelimit::RedisCounterReader::is_upper_bound(explanation.plan.requests[input.counter_index]);
    }
    const std::string source = counted_source(config, rule, facts);
    std::string result = !scored_rules          ? "not scored"
                         : !evaluation.applies  ? "does not apply"
                         : evaluation.fired     ? (evaluation.monitored ? "fired (monitor)" : "fired")
                                                : "";
    rows.push_back({rule.name, escape_for_terminal(source, 60),
                    evaluation.applies ? (upper_bound ? "<=" : "") + std::to_string(evaluation.value) : "-",
                    "> " + std::to_string(evaluation.applies ? evaluation.threshold : rule.threshold) +
                        (evaluation.overridden ? " (override)" : ""),
                    points_text(rule.points), result});
    nlohmann::json entry{{"rule", rule.name},
                         {"signal", std::string(policy::to_string(rule.signal))},
                         {"counts", quarantine::bytes_to_json(source)},
                         {"applies", evaluation.applies},
                         {"threshold", evaluation.applies ? evaluation.threshold : rule.threshold},
                         {"threshold_override", evaluation.overridden},
                         {"points", rule.points},
                         {"mode", rule.mode == policy::RuleMode::Monitor || config.monitor.everything ? "monitor"
                                                                                                      : "enforce"},
                         {"fired", evaluation.fired}};
    if (evaluation.applies) {
      entry["value"] = evaluation.value;
      entry["upper_bound"] = upper_bound;
    }
    json["rules"].push_back(std::move(entry));
  }
  json["score"] = decision.verdict.score;
  json["action"] = std::string(policy::to_string(decision.verdict.action));
  json["reasons"] = decision.verdict.reasons;
  if (decision.verdict.monitor) {
    json["monitor"] = {{"score", decision.verdict.monitor->score},
                       {"action", std::string(policy::to_string(decision.verdict.monitor->action))},
                       {"reasons", decision.verdict.monitor->reasons}};
  }
  if (json_output) {
    session.out() << json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return k_exit_ok;
  }

  auto& out = session.out();
  out << "message    " << escape_for_terminal(path) << ": \"" << escape_for_terminal(scored.subject(), 80) << "\", "
      << scored.recipient_count() << " recipient(s), fingerprint " << json["fingerprint"].get<std::string>() << "\n";
  out << "envelope   client " << escape_for_terminal(facts.client_address) << ", sasl "
      << (facts.sasl_user.empty() ? "-" : escape_for_terminal(facts.sasl_user)) << ", from <"
      << escape_for_terminal(facts.sender) << ">\n";
  out << "scope      " << policy::to_string(decision.scope) << "\n";
  out << "counters   " << counters_text << "\n\n";
  // print_table pads every column but the last; a row whose last cell is
  // empty keeps trailing spaces, trimmed here.
  std::ostringstream table;
  print_table(table, rows, {false, false, true, false, true, false});
  std::istringstream lines(table.str());
  for (std::string line; std::getline(lines, line);) out << line.substr(0, line.find_last_not_of(' ') + 1) << "\n";
  std::string bands;
  for (const auto& band : config.bands)
    bands += (bands.empty() ? "" : ", ") + std::string(policy::to_string(band.action)) + " >= " + std::to_string(band.min_score);
  out << "\nscore      " << decision.verdict.score << ": " << policy::to_string(decision.verdict.action)
      << (bands.empty() ? "" : " (" + bands + ")") << "\n";
  if (decision.verdict.monitor) {
    out << "monitored  " << decision.verdict.monitor->score << ": "
        << policy::to_string(decision.verdict.monitor->action) << " (what enforcing the monitored rules would do)\n";
  }
  return k_exit_ok;
}

}  // namespace floodgate::ctl
