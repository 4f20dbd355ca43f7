// Incident: names, ids, JSON and the person's view (contract in incident.hpp).
//
// SECURITY
// render_incident_text() is read on terminals and sent as a plain-text mail
// body, so every piece of attacker text goes through escape_text(): bytes
// below 0x20, 0x7f and every byte >= 0x80 become \xNN and a backslash
// becomes \\, so the output is 7-bit printable ASCII plus the '\n' that ends
// each line -- no escape sequence, no bare CR, no forged line or header.
// Unlike ctl's escape_for_terminal(), valid UTF-8 is escaped too: a mail
// body without a Content-Transfer-Encoding must stay 7-bit, and containment
// must not depend on ctl. incident_to_json() leaves escaping to JSON; the
// caller dumps with error_handler_t::replace, so bytes that are not UTF-8
// become U+FFFD there (JSON is for programs; the exact bytes stay in the
// store).
//
// LIMITS
// - Each attacker value in the text view is cut to k_max_value_chars
//   printed characters (ending "..."), so no line comes near the 998
//   characters SMTP allows; the JSON has the whole value.
// - make_incident_id() writes years 0000-9999 only: times outside are
//   clamped (an id is a name, not a record of the time; `opened` is).
#include "containment/incident.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

namespace floodgate::containment {
namespace {

using Json = nlohmann::json;

// Printed characters per attacker value in the text view (see LIMITS).
constexpr std::size_t k_max_value_chars = 400;
constexpr std::size_t k_incident_id_chars = 24;  // "YYYYMMDD-HHMMSS-xxxxxxxx"

std::tm utc_fields(TimePoint time) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const std::time_t t = static_cast<std::time_t>(seconds.time_since_epoch().count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  return utc;
}

std::string format_time(TimePoint time, const char* format) {
  const std::tm utc = utc_fields(time);
  char text[64];
  const std::size_t length = std::strftime(text, sizeof text, format, &utc);
  return std::string(text, length);
}

// "2026-11-27T13:45:01Z": the JSON form (whole seconds; *_ms is exact).
std::string iso_utc(TimePoint time) { return format_time(time, "%Y-%m-%dT%H:%M:%SZ"); }

// "2026-11-27 13:45:01 UTC": the text form, as floodgatectl prints times.
std::string text_utc(TimePoint time) { return format_time(time, "%Y-%m-%d %H:%M:%S UTC"); }

std::int64_t to_ms(TimePoint time) { return time.time_since_epoch().count(); }

Json optional_time(const std::optional<TimePoint>& time) {
  return time ? Json(iso_utc(*time)) : Json(nullptr);
}

Json optional_ms(const std::optional<TimePoint>& time) {
  return time ? Json(to_ms(*time)) : Json(nullptr);
}

Json counted_list(const std::vector<CountedText>& items) {
  Json array = Json::array();
  for (const auto& item : items) array.push_back({{"text", item.text}, {"count", item.count}});
  return array;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string escape_text(std::string_view raw, std::size_t max_chars = k_max_value_chars) {
  return escape_incident_text(raw, max_chars);
}

}  // namespace

std::string escape_incident_text(std::string_view raw, std::size_t max_chars) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  std::size_t cut = 0;  // the length to cut back to: the last piece end that leaves room for "..."
  for (const char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      out += {'\\', 'x', k_hex[byte >> 4], k_hex[byte & 0x0f]};
    } else if (byte == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
    if (out.size() + 3 <= max_chars) cut = out.size();
    if (out.size() > max_chars) {
      out.resize(cut);
      return out + "...";
    }
  }
  return out;
}

std::string_view to_string(MessageOutcome outcome) {
  switch (outcome) {
    case MessageOutcome::Slipped: return "slipped";
    case MessageOutcome::Quarantined: return "quarantined";
    case MessageOutcome::Tempfailed: return "tempfailed";
    case MessageOutcome::Rejected: return "rejected";
  }
  return "unknown";
}

std::optional<MessageOutcome> parse_message_outcome(std::string_view text) {
  for (const auto outcome : {MessageOutcome::Slipped, MessageOutcome::Quarantined, MessageOutcome::Tempfailed,
                             MessageOutcome::Rejected}) {
    if (text == to_string(outcome)) return outcome;
  }
  return std::nullopt;
}

std::string Incident::state(TimePoint now) const {
  // A close by anything but an unfreeze (the reaper noticing `until`
  // passed) reads as expired, whatever text it left.
  if (closed) return close_reason == "unfrozen" ? "unfrozen" : "expired";
  return until > now ? "open" : "expired";
}

std::string make_incident_id(TimePoint opened, std::uint64_t random_bits) {
  // Clamped to the years strftime writes with four digits (see LIMITS).
  constexpr std::int64_t k_first_ms = 0;                   // 1970-01-01
  constexpr std::int64_t k_last_ms = 253'402'300'799'000;  // 9999-12-31 23:59:59
  const TimePoint clamped{std::chrono::milliseconds{std::clamp(to_ms(opened), k_first_ms, k_last_ms)}};
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "-%08x", static_cast<unsigned>(random_bits & 0xffffffffu));
  return format_time(clamped, "%Y%m%d-%H%M%S") + suffix;
}

bool is_valid_incident_id(std::string_view text) {
  if (text.size() != k_incident_id_chars) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 15) {
      if (c != '-') return false;
    } else if (i < 15) {
      if (!is_digit(c)) return false;
    } else if (!is_digit(c) && !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

nlohmann::json incident_to_json(const Incident& incident, TimePoint now) {
  Json identity = Json::object();
  for (const auto& [name, value] : incident.identity) identity[name] = value;

  Json queue_ids = Json::array();
  for (const auto& entry : incident.queue_ids) {
    queue_ids.push_back({{"queue_id", entry.queue_id},
                         {"outcome", std::string(to_string(entry.outcome))},
                         {"time", iso_utc(entry.time)},
                         {"time_ms", to_ms(entry.time)},
                         {"queue_action", entry.queue_action}});
  }

  return Json{
      {"id", incident.id},
      {"state", incident.state(now)},
      {"source", incident.source},
      {"source_digest", incident.source_digest},
      {"rule", incident.rule},
      {"reason", incident.reason},
      {"action", std::string(policy::to_string(incident.action))},
      {"identity", std::move(identity)},
      {"opened_by", incident.opened_by},
      {"opened", iso_utc(incident.opened)},
      {"opened_ms", to_ms(incident.opened)},
      {"until", iso_utc(incident.until)},
      {"until_ms", to_ms(incident.until)},
      {"closed", optional_time(incident.closed)},
      {"closed_ms", optional_ms(incident.closed)},
      {"close_reason", incident.close_reason},
      {"first_seen", optional_time(incident.first_seen)},
      {"first_seen_ms", optional_ms(incident.first_seen)},
      {"last_seen", optional_time(incident.last_seen)},
      {"last_seen_ms", optional_ms(incident.last_seen)},
      {"messages", incident.messages},
      {"recipients", incident.recipients},
      {"quarantined", incident.quarantined},
      {"tempfailed", incident.tempfailed},
      {"rejected", incident.rejected},
      {"slipped", incident.slipped},
      {"recipient_sample", incident.recipient_sample},
      {"recipient_domains", counted_list(incident.recipient_domains)},
      {"subjects", counted_list(incident.subjects)},
      {"fingerprints", counted_list(incident.fingerprints)},
      {"senders", incident.senders},
      {"queue_ids", std::move(queue_ids)},
      {"queue_ids_not_listed", incident.queue_ids_not_listed},
      {"queue_clearing", incident.queue_clearing},
      {"notifications_sent", incident.notifications_sent},
      {"notifications_suppressed", incident.notifications_suppressed},
      {"notifications_failed", incident.notifications_failed},
  };
}

std::string render_incident_text(const Incident& incident, TimePoint now) {
  std::string out;
  const auto line = [&out](const std::string& text) { out += text + "\n"; };
  const auto or_dash = [](const std::optional<TimePoint>& time) { return time ? text_utc(*time) : "-"; };
  const auto counted = [&](const char* heading, const std::vector<CountedText>& items) {
    if (items.empty()) return;
    line(heading);
    for (const auto& item : items) line("  " + std::to_string(item.count) + "  " + escape_text(item.text));
  };
  const auto listed = [&](const std::string& heading, const std::vector<std::string>& items) {
    if (items.empty()) return;
    line(heading);
    for (const auto& item : items) line("  " + escape_text(item));
  };

  // The id is ours, but an incident read back from a store is checked
  // like any other value.
  const std::string id = is_valid_incident_id(incident.id) ? incident.id : escape_text(incident.id, 64);
  line("incident " + id + "  " + incident.state(now));
  line("source: " + escape_text(incident.source));
  line("rule: " + escape_text(incident.rule, 100) + " (" + escape_text(incident.reason) + ")");
  line("action: " + std::string(policy::to_string(incident.action)));
  line("opened: " + text_utc(incident.opened) +
       (incident.opened_by.empty() ? "" : " by " + escape_text(incident.opened_by, 100)));
  line("until: " + text_utc(incident.until));
  if (incident.closed) {
    line("closed: " + text_utc(*incident.closed) +
         (incident.close_reason.empty() ? "" : " (" + escape_text(incident.close_reason, 100) + ")"));
  }
  line("first seen: " + or_dash(incident.first_seen) + "  last seen: " + or_dash(incident.last_seen));
  line("messages " + std::to_string(incident.messages) + "  recipients " + std::to_string(incident.recipients) +
       "  quarantined " + std::to_string(incident.quarantined) + "  tempfailed " +
       std::to_string(incident.tempfailed) + "  rejected " + std::to_string(incident.rejected) + "  slipped " +
       std::to_string(incident.slipped));

  if (!incident.identity.empty()) {
    line("identity:");
    for (const auto& [name, value] : incident.identity) {
      line("  " + escape_text(name, 100) + ": " + escape_text(value));
    }
  }
  listed("recipients (sample of " + std::to_string(incident.recipient_sample.size()) + "):",
         incident.recipient_sample);
  counted("recipient domains:", incident.recipient_domains);
  counted("subjects:", incident.subjects);
  counted("fingerprints:", incident.fingerprints);
  listed("senders:", incident.senders);

  if (!incident.queue_ids.empty() || incident.queue_ids_not_listed > 0) {
    std::string heading = "queue ids (" + std::to_string(incident.queue_ids.size());
    if (incident.queue_ids_not_listed > 0) {
      heading += ", " + std::to_string(incident.queue_ids_not_listed) + " more not listed";
    }
    line(heading + "):");
    for (const auto& entry : incident.queue_ids) {
      line("  " + escape_text(entry.queue_id, 64) + "  " + std::string(to_string(entry.outcome)) + "  " +
           text_utc(entry.time) + (entry.queue_action.empty() ? "" : "  " + escape_text(entry.queue_action, 200)));
    }
  }
  line("queue clearing: " + escape_text(incident.queue_clearing, 20));
  line("notifications: sent " + std::to_string(incident.notifications_sent) + "  suppressed " +
       std::to_string(incident.notifications_suppressed) + "  failed " +
       std::to_string(incident.notifications_failed));
  return out;
}

Incident incident_opened_by(const ratelimit::Freeze& freeze) {
  Incident incident;
  incident.id = freeze.incident;
  incident.source = freeze.source;
  incident.source_digest = freeze.source_digest;
  incident.rule = freeze.rule;
  incident.reason = freeze.reason;
  incident.action = freeze.action;
  incident.opened = freeze.since;
  incident.until = freeze.until;
  return incident;
}

}  // namespace floodgate::containment
