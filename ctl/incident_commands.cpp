// incidents, incident: the trace each freeze leaves in Redis -- what the
// frozen source sent, what Floodgate did with it, who was told
// (containment/incident.hpp). Read only: these commands change nothing.
//
// SECURITY: sources, rules' reasons, subjects, addresses and identity
// values are text from the SMTP client. The table escapes them for the
// terminal and cuts them to a column; `incident ID` prints
// render_incident_text(), which escapes every control and 8-bit byte; JSON
// escapes by itself (bytes that are not UTF-8 become U+FFFD). An ID from the
// command line is checked with is_valid_incident_id() before it names any
// key.
//
// DIAGNOSTICS: a malformed --since, a missing or extra ID are usage errors
// (exit 2), and so is an ID that is not an incident id ("X is not an
// incident id"); an unknown ID ("no incident with id X") and a Redis that
// cannot be reached or does not answer in time (naming the Redis) are
// errors (exit 1). No incidents is not an error.
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "containment/incident.hpp"
#include "containment/incident_store.hpp"
#include "ctl/command_line.hpp"
#include "ctl/commands.hpp"
#include "ctl/terminal_text.hpp"

namespace floodgate::ctl {
namespace {

namespace po = boost::program_options;
using containment::Incident;
using ratelimit::TimePoint;

// Widths of the table's free-text columns.
constexpr std::size_t k_source_column = 48;
constexpr std::size_t k_rule_column = 32;

const CommandSpec k_incidents{
    "incidents", "incidents [--open] [--since DURATION] [--json]",
    "Lists the incidents -- one per freeze, by a rule or by hand -- newest first:\n"
    "id, state (open, unfrozen or expired), source, rule, messages and recipients\n"
    "recorded by every Floodgate instance sharing the Redis, how many of the\n"
    "messages were quarantined, rejected or slipped through before the freeze,\n"
    "and how long ago the first and last were seen. Incidents are kept for\n"
    "containment.incidents.retention after their freeze ends."};

const CommandSpec k_incident{
    "incident", "incident ID [--json]",
    "Shows one incident as ID names it (as incidents lists it): the source and\n"
    "its identity, the rule and why, the freeze's times, counts by outcome, a\n"
    "sample of the recipients, recipient domains and subjects with their counts,\n"
    "fingerprints, senders, the queue ids with what queue clearing did, and the\n"
    "notifications sent. Times are UTC."};

TimePoint now_ms(const CtlSession& session) {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
}

std::string dump(const nlohmann::json& json) {
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string seen_ago(const std::optional<TimePoint>& time, TimePoint now) {
  return time ? format_age(now - *time) + " ago" : "-";
}

}  // namespace

int run_incidents(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_incidents);
  options.add_options()("open", "only the incidents whose freeze is in force")(
      "since", po::value<std::string>()->value_name("DURATION"),
      "only those opened within the last DURATION (30s, 10m, 1h, 1d, 2w)")(
      "json", "print a JSON array of whole incidents (times as ISO-8601 UTC and unix ms)");
  po::variables_map values;
  if (auto status = parse_command_line(k_incidents, options, {}, args, values, session)) return *status;
  std::optional<std::chrono::seconds> since;
  if (values.count("since")) {
    const auto& text = values["since"].as<std::string>();
    since = parse_duration(text);
    if (!since) {
      return usage_error(k_incidents, "--since: '" + text + "' is not a duration such as 30s, 10m, 1h or 1d",
                         session);
    }
  }
  const bool open_only = values.count("open") > 0;
  if (!session.open_freeze_store()) return k_exit_error;

  const TimePoint now = now_ms(session);
  std::optional<TimePoint> opened_since;
  if (since) opened_since = now - std::chrono::duration_cast<std::chrono::milliseconds>(*since);
  auto incidents = session.incident_store().list(opened_since, open_only, now);
  if (!incidents) return session.report_redis_failure(incidents.error(), " while reading the incidents");

  if (values.count("json")) {
    auto array = nlohmann::json::array();
    for (const auto& incident : *incidents) array.push_back(containment::incident_to_json(incident, now));
    session.out() << dump(array) << "\n";
    return k_exit_ok;
  }
  if (incidents->empty()) {
    session.out() << (since || open_only ? "no incidents match\n" : "no incidents\n");
    return k_exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "STATE", "SOURCE", "RULE", "MESSAGES", "RECIPIENTS", "QUAR/REJ/SLIP", "FIRST SEEN",
                  "LAST SEEN"});
  for (const Incident& incident : *incidents) {
    rows.push_back({escape_for_terminal(incident.id), incident.state(now),
                    escape_for_terminal(incident.source, k_source_column),
                    escape_for_terminal(incident.rule, k_rule_column), std::to_string(incident.messages),
                    std::to_string(incident.recipients),
                    std::to_string(incident.quarantined) + "/" + std::to_string(incident.rejected) + "/" +
                        std::to_string(incident.slipped),
                    seen_ago(incident.first_seen, now), seen_ago(incident.last_seen, now)});
  }
  print_table(session.out(), rows, {false, false, false, false, true, true, true, true, true});
  return k_exit_ok;
}

int run_incident(const std::vector<std::string>& args, CtlSession& session) {
  auto options = command_options(k_incident);
  options.add_options()("json", "print the whole incident as JSON (times as ISO-8601 UTC and unix ms)");
  po::positional_options_description positional;
  positional.add("id", -1);
  po::variables_map values;
  if (auto status = parse_command_line(k_incident, options, positional, args, values, session)) return *status;
  if (!values.count("id") || values["id"].as<std::vector<std::string>>().size() != 1) {
    return usage_error(k_incident, "give exactly one ID, as incidents lists it", session);
  }
  const std::string id = values["id"].as<std::vector<std::string>>().front();
  if (!containment::is_valid_incident_id(id)) {
    session.report_error(escape_for_terminal(id) + " is not an incident id");
    return k_exit_usage;
  }
  if (!session.open_freeze_store()) return k_exit_error;

  const TimePoint now = now_ms(session);
  auto incident = session.incident_store().get(id);
  if (!incident) return session.report_redis_failure(incident.error(), " while reading the incident");
  if (!*incident) {
    session.report_error("no incident with id " + id);
    return k_exit_error;
  }
  if (values.count("json")) {
    session.out() << dump(containment::incident_to_json(**incident, now)) << "\n";
  } else {
    session.out() << containment::render_incident_text(**incident, now);
  }
  return k_exit_ok;
}

}  // namespace floodgate::ctl
