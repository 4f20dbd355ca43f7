// Notifier (see notifier.hpp for the contract).
//
// SECURITY
// Header values built from attacker text (the source in the Subject) go
// through escape_incident_text(): bytes below 0x20, 0x7f and every byte
// >= 0x80 become \xNN and a backslash becomes \\ -- the same printed form
// as render_incident_text() -- so a header is 7-bit printable ASCII on one
// line and no CR or LF can start a forged header. We escape rather than
// RFC 2047-encode: the postmaster must see the bytes the client sent, not a
// decoded look-alike. The escaped source is cut to k_max_subject_source_chars.
// Configured values (addresses, the incident id) are escaped the same way,
// although the config loader already refuses control characters in them.
// The body is render_incident_text() (escaped by it) under a summary line
// built from the same escaped text; any body line longer than
// k_max_body_line_octets is wrapped, so no line reaches SMTP's 998.
// The command's argv comes from the config only; the incident reaches it
// as JSON on stdin and as two environment entries of our making.
//
// DIAGNOSTICS
// Each failure is one line in NotificationResult::errors: the report mail
// with the SMTP error or refused recipients, the command with run_child()'s
// error and the first line of its output (escaped, cut). Nothing is logged
// here and nothing throws.
//
// LIMITS
// - A printable "=?...?=" in the source stays in the Subject as is; a mail
//   reader may decode it as an RFC 2047 word for display. It cannot add a
//   header (the line has no CR or LF), only change what the Subject shows.
// - The Subject is not folded; with the cap it stays far below 998 octets.
#include "containment/notifier.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <random>
#include <string_view>

#include <nlohmann/json.hpp>

#include "containment/child_process.hpp"

namespace floodgate::containment {
namespace {

// Printed characters of the source in the Subject and in the summary line.
constexpr std::size_t k_max_subject_source_chars = 120;
constexpr std::size_t k_max_summary_value_chars = 200;
// Body lines are wrapped at this many octets (RFC 5321 allows 998 plus CRLF).
constexpr std::size_t k_max_body_line_octets = 990;
// How much of a failing command's first output line goes into its error.
constexpr std::size_t k_max_command_output_chars = 200;


std::string escape_value(std::string_view raw) { return escape_incident_text(raw, k_max_summary_value_chars); }

// RFC 5322 date-time in UTC: "Tue, 05 Mar 2024 14:03:09 +0000". Built by
// hand: strftime's %a and %b follow the locale.
std::string rfc5322_date(TimePoint now) {
  static constexpr const char* k_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t seconds = std::chrono::system_clock::to_time_t(std::chrono::system_clock::time_point(now));
  std::tm fields{};
  if (::gmtime_r(&seconds, &fields) == nullptr) fields = std::tm{};
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000", k_days[fields.tm_wday % 7],
                fields.tm_mday, k_months[fields.tm_mon % 12], fields.tm_year + 1900, fields.tm_hour, fields.tm_min,
                fields.tm_sec);
  return buffer;
}

std::uint64_t random_bits() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator();
}

// <time.random@floodgate>: unique enough for a report, and says who made it.
std::string message_id(TimePoint now) {
  char buffer[80];
  std::snprintf(buffer, sizeof buffer, "<%lld.%016llx@floodgate>", static_cast<long long>(now.time_since_epoch().count()),
                static_cast<unsigned long long>(random_bits()));
  return buffer;
}

// "Floodgate froze web-form.example (rule r, action quarantine): 120
// messages to 3400 recipients; 100 quarantined, 0 tempfailed, 0 rejected,
// 20 slipped through before the freeze."
std::string summary_line(NotificationEvent event, const Incident& incident) {
  std::string line = event == NotificationEvent::Freeze ? "Floodgate froze " : "Floodgate unfroze ";
  line += escape_value(incident.source);
  line += " (rule " + escape_incident_text(incident.rule, 100) + ", action " +
          std::string(policy::to_string(incident.action)) + "): ";
  line += std::to_string(incident.messages) + " messages to " + std::to_string(incident.recipients) +
          " recipients; " + std::to_string(incident.quarantined) + " quarantined, " +
          std::to_string(incident.tempfailed) + " tempfailed, " + std::to_string(incident.rejected) +
          " rejected, " + std::to_string(incident.slipped) + " slipped through before the freeze.";
  return line;
}

// Appends `line` with CRLF, wrapped into pieces of at most
// k_max_body_line_octets (never inside a UTF-8 sequence, should one be
// there).
void append_body_line(std::string& out, std::string_view line) {
  while (line.size() > k_max_body_line_octets) {
    std::size_t cut = k_max_body_line_octets;
    while (cut > 1 && (static_cast<unsigned char>(line[cut]) & 0xc0) == 0x80) --cut;
    out.append(line.substr(0, cut));
    out += "\r\n";
    line.remove_prefix(cut);
  }
  out.append(line);
  out += "\r\n";
}

// `text` with every line end (LF, CRLF or a lone CR) made CRLF and long
// lines wrapped.
void append_body(std::string& out, std::string_view text) {
  while (!text.empty()) {
    const std::size_t end = text.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      append_body_line(out, text);
      return;
    }
    append_body_line(out, text.substr(0, end));
    const bool crlf = text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n';
    text.remove_prefix(end + (crlf ? 2 : 1));
  }
}

std::string first_line(std::string_view text) {
  const std::size_t end = text.find_first_of("\r\n");
  return escape_incident_text(text.substr(0, end), k_max_command_output_chars);
}

std::string what_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

void send_mail(NotificationEvent event, const Incident& incident, const policy::NotificationSettings& settings,
               const quarantine::SmtpTarget& target, TimePoint now, NotificationResult& result) {
  const std::string where = escape_value(target.host) + ":" + std::to_string(target.port);
  result.mail_attempted = true;
  const std::string message = compose_report_mail(event, incident, settings, now);
  const quarantine::MessageProducer producer = [&message](const std::function<bool(std::string_view)>& write) {
    return write(message);
  };
  const quarantine::ReleaseResult sent =
      quarantine::release_over_smtp(target, settings.mail_from, settings.mail_to, producer);
  result.mail_sent = sent.delivered;
  if (!sent.delivered) {
    result.errors.push_back("report mail via " + where + " not sent: " + escape_value(sent.error));
  }
  // Delivered to some: the others still did not get it.
  for (const auto& refused : sent.refused) {
    if (!sent.delivered) break;  // already said above, with the reason
    result.errors.push_back("report mail via " + where + ": recipient " + escape_value(refused.recipient) +
                            " refused: " + escape_value(refused.reply));
  }
}

void run_command(NotificationEvent event, const Incident& incident, const policy::NotificationSettings& settings,
                 TimePoint now, NotificationResult& result) {
  result.command_attempted = true;
  const std::string name = escape_value(settings.command.front());
  const std::vector<std::string> environment{"FLOODGATE_EVENT=" + std::string(to_string(event)),
                                             "FLOODGATE_INCIDENT=" + escape_incident_text(incident.id, 64)};
  const ChildResult child = run_child(settings.command, notification_json(event, incident, now),
                                      std::chrono::duration_cast<std::chrono::milliseconds>(settings.command_timeout),
                                      environment);
  // A command that caught SIGTERM and exited 0 still overran its time.
  result.command_succeeded = child.succeeded() && !child.timed_out;
  if (result.command_succeeded) return;
  std::string line = "notification command " + name + " failed: " + escape_value(child.error);
  if (child.started) {
    const std::string output = first_line(child.output);
    line += output.empty() ? " (no output)" : "; output: " + output;
  }
  result.errors.push_back(std::move(line));
}

}  // namespace

std::string compose_report_mail(NotificationEvent event, const Incident& incident,
                                const policy::NotificationSettings& settings, TimePoint now) {
  const bool freeze = event == NotificationEvent::Freeze;
  std::string mail;
  const auto header = [&mail](std::string_view name, std::string_view value) {
    mail.append(name);
    mail += ": ";
    mail.append(value);
    mail += "\r\n";
  };
  header("From", escape_value(settings.mail_from));
  // One address per line (folded), so many recipients never make a long line.
  std::string to;
  for (const auto& address : settings.mail_to) {
    if (!to.empty()) to += ",\r\n ";
    to += escape_value(address);
  }
  if (!to.empty()) header("To", to);
  header("Subject", std::string(freeze ? "[floodgate] frozen: " : "[floodgate] unfrozen: ") +
                        escape_incident_text(incident.source, k_max_subject_source_chars));
  header("Date", rfc5322_date(now));
  header("Message-ID", message_id(now));
  header("MIME-Version", "1.0");
  header("Content-Type", "text/plain; charset=utf-8");
  header("Content-Transfer-Encoding", "8bit");
  header("Auto-Submitted", "auto-generated");
  header("X-Floodgate-Event", to_string(event));
  header("X-Floodgate-Incident", escape_incident_text(incident.id, 64));
  mail += "\r\n";

  append_body_line(mail, summary_line(event, incident));
  mail += "\r\n";
  append_body(mail, render_incident_text(incident, now));
  return mail;
}

std::string notification_json(NotificationEvent event, const Incident& incident, TimePoint now) {
  nlohmann::json json = incident_to_json(incident, now);
  json["event"] = std::string(to_string(event));
  // Bytes that are not UTF-8 become U+FFFD instead of throwing; a final
  // newline so that a shell `read` takes the whole line.
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Notifier::Notifier(policy::NotificationSettings settings, quarantine::SmtpTarget target)
    : m_settings{std::move(settings)}, m_target{std::move(target)} {}

bool Notifier::enabled() const { return !m_settings.mail_to.empty() || !m_settings.command.empty(); }

NotificationResult Notifier::notify(NotificationEvent event, const Incident& incident, TimePoint now) const {
  NotificationResult result;
  // The channels are independent: a failure of one never skips the other.
  const auto guarded = [&result](const char* what, auto&& channel) {
    try {
      channel();
    } catch (...) {
      try {
        result.errors.push_back(std::string(what) + ": " + escape_value(what_of(std::current_exception())));
      } catch (...) {
        // Out of memory while reporting: the flags still say it failed.
      }
    }
  };
  if (!m_settings.mail_to.empty()) {
    guarded("report mail not sent", [&] { send_mail(event, incident, m_settings, m_target, now, result); });
  }
  if (!m_settings.command.empty()) {
    guarded("notification command failed", [&] { run_command(event, incident, m_settings, now, result); });
  }
  return result;
}

}  // namespace floodgate::containment
