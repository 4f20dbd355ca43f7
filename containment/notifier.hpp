// Notifier: tells the postmaster that a source was frozen or unfrozen.
//
// Two channels, either or both as configured (containment.notify):
// - a short plain-text report mail (render_incident_text() of the
//   incident, under a Subject naming the event and the source) sent over
//   SMTP to the release target, which does not pass through Floodgate again;
// - a command, run as an argument vector without a shell, given the
//   incident as JSON on stdin (incident_to_json() plus "event") and the
//   environment FLOODGATE_EVENT=freeze|unfreeze, FLOODGATE_INCIDENT=<id>.
//   No message data ever becomes an argument.
//
// The per-source rate limit is the caller's (IncidentStore::
// claim_notification); the notifier sends what it is asked to. Failures are
// returned, never thrown; the caller logs them and mail handling goes on.
//
// SECURITY: the source, subjects and identity values are attacker text.
// In the report mail they are escaped (render_incident_text), and the
// Subject header is built from the escaped, length-capped source with no
// CR or LF, so no header can be injected; in the JSON they are JSON strings.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "containment/incident.hpp"
#include "containment/incident_store.hpp"
#include "policy/config.hpp"
#include "quarantine/smtp_release.hpp"

namespace floodgate::containment {

struct NotificationResult {
  bool mail_attempted = false;
  bool mail_sent = false;
  bool command_attempted = false;
  bool command_succeeded = false;
  std::vector<std::string> errors;  // one line each, for the log

  bool any_failed() const { return !errors.empty(); }
};

// The report mail, complete (headers, blank line, body), CRLF line ends:
// From: settings.mail_from, To: the mail_to addresses, Subject
// "[floodgate] frozen: <source>" or "[floodgate] unfrozen: <source>",
// Date, Message-ID, MIME-Version, Content-Type text/plain; charset=utf-8,
// Auto-Submitted: auto-generated; body: render_incident_text().
std::string compose_report_mail(NotificationEvent event, const Incident& incident,
                                const policy::NotificationSettings& settings, TimePoint now);

// What the command reads on stdin: incident_to_json() with "event" added.
std::string notification_json(NotificationEvent event, const Incident& incident, TimePoint now);

class Notifier {
 public:
  Notifier(policy::NotificationSettings settings, quarantine::SmtpTarget target);

  // Nothing configured (no mail_to, no command): notify() does nothing.
  bool enabled() const;

  NotificationResult notify(NotificationEvent event, const Incident& incident, TimePoint now) const;

 private:
  policy::NotificationSettings m_settings;
  quarantine::SmtpTarget m_target;
};

}  // namespace floodgate::containment
