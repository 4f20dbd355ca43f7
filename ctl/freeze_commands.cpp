// frozen, freeze, unfreeze: the contained sources in the Redis freeze store
// that every Floodgate instance reads. unfreeze --release-quarantined also
// releases the entries whose frozen_source is the source's canonical
// spelling, one by one as release does (ctl/release_entry.hpp).
//
// SECURITY: a source's values (header values, SASL names, addresses) are
// text from the SMTP client, and so is a reason a rule wrote; both are
// escaped for the terminal. The freeze store keys a freeze by the source's
// digest, never by its text.
//
// DIAGNOSTICS: a SOURCE that does not parse is a usage error (exit 2) with
// parse_source_spec's explanation; a Redis that cannot be reached or does
// not answer in time is an error (exit 1) naming the Redis and saying that
// nothing was changed.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <map>

#include <nlohmann/json.hpp>

#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/incident_notice.hpp"
#include "ctl/release_entry.hpp"
#include "ctl/terminal_text.hpp"
#include "policy/source_spec.hpp"
#include "quarantine/entry_json.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using ratelimit::Freeze;
using ratelimit::TimePoint;

// Widths of the table's free-text columns.
constexpr std::size_t k_source_column = 60;
constexpr std::size_t k_rule_column = 24;
constexpr std::size_t k_reason_column = 40;

constexpr std::string_view k_manual_rule = "manual";
constexpr std::string_view k_manual_reason = "frozen by hand";

const CommandSpec k_frozen{"frozen", "frozen [--json]",
                           "Lists the frozen sources, oldest freeze first: source, since when, the time\n"
                           "left before the freeze expires, its action, the rule that froze it and why,\n"
                           "and from its incident the messages and recipients seen since, and how many\n"
                           "were stopped (quarantined, tempfailed, rejected) or slipped through before."};

const CommandSpec k_freeze{
    "freeze",
    "freeze SOURCE... [--ttl DURATION] [--action quarantine|tempfail|reject] [--reason TEXT] [--json]",
    "Freezes a source for every Floodgate instance sharing the Redis: its mail gets\n"
    "the action (default: containment.action) until the freeze expires (default:\n"
    "containment.ttl) or is lifted with unfreeze. The SOURCE words together name one\n"
    "source, e.g. client=10.1.2.3 header:X-PHP-Originating-Script=12:contact.php\n"
    "(parts: client, network, client_name, sasl, sender, sender_domain,\n"
    "header:NAME, macro:NAME). A source already frozen keeps its freeze."};

const CommandSpec k_unfreeze{
    "unfreeze", "unfreeze SOURCE... [--release-quarantined] [--json]",
    "Lifts the freeze of the source the SOURCE words name, whether a rule or a\n"
    "person made it. SOURCE is typed as for freeze, or copied as frozen prints it\n"
    "(the canonical spelling, where %XX stands for a space, '=', '%' or a control\n"
    "or 8-bit byte). Exit status 1 if it was not frozen.\n"
    "With --release-quarantined (a false positive), also releases, as release does,\n"
    "every quarantined message that this source's freeze stopped (not those its\n"
    "score stopped): over SMTP to the release target, or with postsuper -H (or\n"
    "sendmail -qQ -Q) for hold-mode entries. A source no longer frozen is said so and its mail released\n"
    "all the same; the exit status is then 1 only if a message was not released\n"
    "to all its recipients (those refused stay in the entry). A daemon may\n"
    "quarantine for up to containment.refresh_interval after the unfreeze: run\n"
    "it again to release such stragglers."};

std::string dump(const nlohmann::json& json) {
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

TimePoint now_ms(const CtlSession& session) {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
}

// "2026-11-27T10:15:00.123Z"
std::string iso_utc(TimePoint time) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const auto millis = (time - seconds).count();
  const std::time_t t = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  const std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof text - length, ".%03dZ", static_cast<int>(millis));
  return text;
}

nlohmann::json freeze_to_json(const Freeze& freeze) {
  return {
      {"source", quarantine::bytes_to_json(freeze.source)},
      {"source_digest", freeze.source_digest},
      {"rule", quarantine::bytes_to_json(freeze.rule)},
      {"reason", quarantine::bytes_to_json(freeze.reason)},
      {"action", std::string(policy::to_string(freeze.action))},
      {"since", iso_utc(freeze.since)},
      {"since_ms", freeze.since.time_since_epoch().count()},
      {"until", iso_utc(freeze.until)},
      {"until_ms", freeze.until.time_since_epoch().count()},
  };
}

std::optional<policy::Action> parse_action(std::string_view text) {
  for (auto action : {policy::Action::Quarantine, policy::Action::Tempfail, policy::Action::Reject}) {
    if (text == policy::to_string(action)) return action;
  }
  return std::nullopt;
}

// Options and SOURCE words shared by freeze and unfreeze. std::nullopt: go
// on with `spec`; otherwise the exit status (help, usage error).
// `printed` is the SOURCE words read as frozen prints a source (canonical,
// percent-encoded), when they are that and name another spec than `source`.
std::optional<int> parse_source_command(const CommandSpec& spec, const po::options_description& options,
                                        const std::vector<std::string>& args, po::variables_map& values,
                                        policy::SourceSpec& source, std::optional<policy::SourceSpec>& printed,
                                        CtlSession& session) {
  po::positional_options_description positional;
  positional.add("id", -1);
  if (auto status = parse_command_line(spec, options, positional, args, values, session)) return status;
  if (!values.count("id")) return usage_error(spec, "give the SOURCE, e.g. client=10.1.2.3", session);
  const auto& words = values["id"].as<std::vector<std::string>>();
  std::string error;
  auto parsed = policy::parse_source_spec(words, error);
  if (!parsed) return usage_error(spec, error.empty() ? "not a source" : error, session);
  source = std::move(*parsed);
  std::string joined;
  for (const auto& word : words) joined += (joined.empty() ? "" : " ") + word;
  printed = policy::parse_canonical_source(joined);
  if (printed && printed->digest() == source.digest()) printed.reset();
  return std::nullopt;
}

std::optional<Freeze> find_freeze(const std::vector<Freeze>& freezes, std::string_view digest) {
  auto found = std::find_if(freezes.begin(), freezes.end(),
                            [&](const Freeze& freeze) { return freeze.source_digest == digest; });
  if (found == freezes.end()) return std::nullopt;
  return *found;
}

std::string until_text(const Freeze& freeze) {
  return escape_for_terminal(freeze.source) + " until " + format_utc(freeze.until) + " (" +
         std::string(policy::to_string(freeze.action)) + ")";
}

}  // namespace

int run_frozen(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_frozen);
  options.add_options()("json", "print a JSON array of freezes (times as ISO-8601 UTC and unix ms)");
  po::variables_map values;
  if (auto status = parse_command_line(k_frozen, options, {}, args, values, session)) return *status;
  if (!session.open_freeze_store()) return k_exit_error;

  const TimePoint now = now_ms(session);
  auto freezes = session.freeze_store().active(now);
  if (!freezes) return session.report_redis_failure(freezes.error(), "");
  std::stable_sort(freezes->begin(), freezes->end(), [](const Freeze& a, const Freeze& b) {
    return a.since != b.since ? a.since < b.since : a.source < b.source;
  });

  // The counts are the incidents'; a freeze without one (or an incident
  // that cannot be read) shows none, and the listing still stands.
  std::map<std::string, containment::Incident> incidents;
  std::optional<std::string> incident_problem;
  for (const auto& freeze : *freezes) {
    if (freeze.incident.empty()) continue;
    auto incident = session.incident_store().get(freeze.incident);
    if (incident && *incident) {
      incidents.emplace(freeze.incident, std::move(**incident));
    } else if (!incident && !incident_problem) {
      incident_problem = incident.error().detail;
    }
  }
  if (incident_problem)
    session.report_error("warning: counts left out, incidents unreadable: " + escape_for_terminal(*incident_problem));
  const auto incident_of = [&](const Freeze& freeze) -> const containment::Incident* {
    const auto found = incidents.find(freeze.incident);
    return found == incidents.end() ? nullptr : &found->second;
  };

  if (values.count("json")) {
    auto array = nlohmann::json::array();
    for (const auto& freeze : *freezes) {
      auto item = freeze_to_json(freeze);
      item["incident"] = freeze.incident.empty() ? nlohmann::json(nullptr) : nlohmann::json(freeze.incident);
      if (const auto* incident = incident_of(freeze)) {
        item["counts"] = {{"messages", incident->messages},       {"recipients", incident->recipients},
                          {"quarantined", incident->quarantined}, {"tempfailed", incident->tempfailed},
                          {"rejected", incident->rejected},       {"slipped", incident->slipped}};
      }
      array.push_back(std::move(item));
    }
    session.out() << dump(array) << "\n";
    return k_exit_ok;
  }
  if (freezes->empty()) {
    session.out() << "no frozen sources\n";
    return k_exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"SOURCE", "SINCE", "TTL LEFT", "ACTION", "RULE", "MESSAGES", "RCPTS", "STOPPED/SLIPPED", "REASON"});
  for (const auto& freeze : *freezes) {
    const auto* incident = incident_of(freeze);
    const auto count = [&](std::uint64_t containment::Incident::*field) {
      return incident ? std::to_string(incident->*field) : std::string("-");
    };
    const std::string stopped =
        incident ? std::to_string(incident->quarantined + incident->tempfailed + incident->rejected) + "/" +
                       std::to_string(incident->slipped)
                 : "-";
    rows.push_back({escape_for_terminal(freeze.source, k_source_column), format_age(now - freeze.since),
                    format_age(freeze.until - now), std::string(policy::to_string(freeze.action)),
                    escape_for_terminal(freeze.rule, k_rule_column), count(&containment::Incident::messages),
                    count(&containment::Incident::recipients), stopped,
                    escape_for_terminal(freeze.reason, k_reason_column)});
  }
  print_table(session.out(), rows, {false, true, true, false, false, true, true, true, false});
  return k_exit_ok;
}

int run_freeze(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_freeze);
  options.add_options()("ttl", po::value<std::string>()->value_name("DURATION"),
                        "how long the freeze lasts (30s, 10m, 1h, 1d, 2w; default containment.ttl)")(
      "action", po::value<std::string>()->value_name("A"),
      "quarantine, tempfail or reject (default containment.action)")(
      "reason", po::value<std::string>()->value_name("TEXT"), "why, for the record (default \"frozen by hand\")")(
      "json", "print the outcome as JSON");
  po::variables_map values;
  policy::SourceSpec source;
  // Freezing takes the words as typed only: a value containing "%20" means
  // those three characters, as it does in a header.
  std::optional<policy::SourceSpec> printed;
  if (auto status = parse_source_command(k_freeze, options, args, values, source, printed, session))
    return *status;
  std::optional<std::chrono::seconds> ttl;
  if (values.count("ttl")) {
    const auto& text = values["ttl"].as<std::string>();
    ttl = parse_duration(text);
    if (!ttl) return usage_error(k_freeze, "--ttl: '" + text + "' is not a duration such as 30s, 10m, 1h or 1d", session);
  }
  std::optional<policy::Action> action;
  if (values.count("action")) {
    const auto& text = values["action"].as<std::string>();
    action = parse_action(text);
    if (!action) return usage_error(k_freeze, "--action: '" + text + "' is not quarantine, tempfail or reject", session);
  }
  if (!session.open_freeze_store()) return k_exit_error;

  // The milter keeps only the headers the config names (identities,
  // exemptions): a freeze on any other header could never match a message.
  const auto& collected = session.config().headers_of_interest;
  for (const auto& part : source.parts) {
    if (part.part.kind == policy::IdentityPart::Kind::Header &&
        std::find(collected.begin(), collected.end(), part.part.name) == collected.end()) {
      session.report_error("Floodgate does not read the header " + escape_for_terminal(part.part.name) +
                           ": name it in an identity of " + escape_for_terminal(session.config().source_file) +
                           " (and restart floodgate) before freezing on it");
      return k_exit_error;
    }
  }

  const auto& containment = session.config().containment;
  const TimePoint now = now_ms(session);
  Freeze freeze{
      .source = source.canonical(),
      .source_digest = source.digest(),
      .rule = std::string(k_manual_rule),
      .reason = values.count("reason") ? values["reason"].as<std::string>() : std::string(k_manual_reason),
      .action = action.value_or(containment.action),
      .since = now,
      .until = now + std::chrono::duration_cast<std::chrono::milliseconds>(ttl.value_or(containment.ttl)),
      .incident = new_incident_id(now),
  };
  auto created = session.freeze_store().freeze(freeze, now);
  if (!created) return session.report_redis_failure(created.error(), "", "; nothing was frozen");

  // An existing freeze stays as it was: show that one, not the one asked for.
  Freeze shown = freeze;
  if (!*created) {
    if (auto freezes = session.freeze_store().active(now)) {
      if (auto existing = find_freeze(*freezes, freeze.source_digest)) shown = std::move(*existing);
    }
  }
  if (values.count("json")) {
    // JSON alone on stdout: what the incident step says goes to stderr.
    if (*created) open_manual_incident(freeze, source, session, session.err());
    session.out() << dump({{"frozen", *created}, {"freeze", freeze_to_json(shown)}}) << "\n";
    return k_exit_ok;
  }
  if (*created) {
    session.out() << "frozen: " << until_text(shown) << "\n";
    open_manual_incident(freeze, source, session, session.out());
  } else {
    session.out() << "already frozen: " << until_text(shown) << ", since " << format_utc(shown.since) << " by rule "
                  << escape_for_terminal(shown.rule, k_rule_column) << "\n";
  }
  return k_exit_ok;
}

int run_unfreeze(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_unfreeze);
  options.add_options()("release-quarantined",
                        "also release the mail this source's freeze quarantined")(
      "json", "print the outcome as JSON");
  po::variables_map values;
  policy::SourceSpec source;
  std::optional<policy::SourceSpec> printed;
  if (auto status = parse_source_command(k_unfreeze, options, args, values, source, printed, session))
    return *status;
  const bool release = values.count("release-quarantined") > 0;
  const bool json_output = values.count("json") > 0;
  // A spool that cannot be opened stops the command before the freeze is
  // lifted: ops asked for both or neither.
  if (release && !session.open()) return k_exit_error;
  if (!session.open_freeze_store()) return k_exit_error;

  // The freeze's incident, to close once the freeze is lifted (best
  // effort: without it the incident simply shows as ended when it expires).
  std::vector<Freeze> active;
  if (auto freezes = session.freeze_store().active(now_ms(session))) active = std::move(*freezes);

  // The words as typed first; else, if they are a source as frozen printed
  // it, that one. Trying a source that is not frozen changes nothing.
  auto removed = session.freeze_store().unfreeze(source.digest());
  if (removed && !*removed && printed) {
    removed = session.freeze_store().unfreeze(printed->digest());
    if (removed && *removed) source = std::move(*printed);
  }
  if (!removed) return session.report_redis_failure(removed.error(), "", "; nothing was unfrozen");
  const auto lifted = find_freeze(active, source.digest());
  const std::string incident_id = *removed && lifted ? lifted->incident : std::string();

  std::vector<quarantine::QuarantineEntry> stopped;
  if (release) {
    std::vector<std::string> problems;
    const auto entries = session.store().list(&problems);
    for (const auto& problem : problems) session.report_error("skipped: " + escape_for_terminal(problem));
    auto stopped_by = [&](const policy::SourceSpec& spec) {
      const std::string canonical = spec.canonical();
      std::vector<quarantine::QuarantineEntry> found;
      std::copy_if(entries.begin(), entries.end(), std::back_inserter(found),
                   [&](const quarantine::QuarantineEntry& entry) { return entry.frozen_source == canonical; });
      return found;
    };
    stopped = stopped_by(source);
    // Unfrozen before (or expired) under neither spelling: the entries say
    // which one the words meant.
    if (!*removed && stopped.empty() && printed) {
      stopped = stopped_by(*printed);
      if (!stopped.empty()) source = std::move(*printed);
    }
  }

  const std::string canonical = source.canonical();
  if (!json_output) {
    if (*removed) {
      session.out() << "unfrozen: " << escape_for_terminal(canonical) << "\n";
      close_unfrozen_incident(incident_id, source.digest(), session, session.out());
    } else if (release) {
      session.out() << "not frozen (any more): " << escape_for_terminal(canonical)
                    << "; releasing its quarantined mail all the same\n";
    } else {
      session.report_error("not frozen: " + escape_for_terminal(canonical));
    }
  }
  if (json_output && *removed) close_unfrozen_incident(incident_id, source.digest(), session, session.err());
  if (!release) {
    if (json_output) {
      session.out() << dump({{"unfrozen", *removed},
                             {"source", quarantine::bytes_to_json(canonical)},
                             {"source_digest", source.digest()}})
                    << "\n";
    }
    return *removed ? k_exit_ok : k_exit_error;
  }

  auto outcomes = nlohmann::json::array();
  std::vector<std::string> released;
  std::vector<std::string> not_released;
  for (const auto& entry : stopped) {
    auto outcome = release_entry(entry, std::nullopt, json_output, session);
    (outcome["released"].get<bool>() ? released : not_released).push_back(entry.id);
    outcomes.push_back(std::move(outcome));
  }
  if (json_output) {
    session.out() << dump({{"unfrozen", *removed},
                           {"source", quarantine::bytes_to_json(canonical)},
                           {"source_digest", source.digest()},
                           {"released", released},
                           {"not_released", not_released},
                           {"outcomes", std::move(outcomes)}})
                  << "\n";
  } else if (stopped.empty()) {
    session.out() << "no quarantined mail from " << escape_for_terminal(canonical) << "\n";
  } else {
    session.out() << "released " << released.size() << " of " << count_text(stopped.size(), "entry")
                  << " quarantined from " << escape_for_terminal(canonical) << "\n";
  }
  if (!not_released.empty()) {
    std::string ids;
    for (const auto& id : not_released) ids += " " + id;
    session.report_error(count_text(not_released.size(), "entry") + " not released:" + ids);
  }
  return not_released.empty() ? k_exit_ok : k_exit_error;
}

}  // namespace floodgate::ctl
