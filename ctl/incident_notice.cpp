#include "ctl/incident_notice.hpp"

#include <random>

#include "containment/notifier.hpp"
#include "ctl/terminal_text.hpp"

namespace floodgate::ctl {
namespace {

std::string identity_key(const policy::IdentityPart& part) {
  using Kind = policy::IdentityPart::Kind;
  switch (part.kind) {
    case Kind::ClientAddress: return "client_address";
    case Kind::ClientNetwork: return "client_network";
    case Kind::ClientName: return "client_name";
    case Kind::SaslUser: return "sasl_user";
    case Kind::Sender: return "sender";
    case Kind::SenderDomain: return "sender_domain";
    case Kind::Header: return "header:" + part.name;
    case Kind::Macro: return "macro:" + part.name;
  }
  return "unknown";
}

void warn(CtlSession& session, const std::string& what) { session.report_error("warning: " + what); }

// Tells the postmaster about `incident_id`, unless this source was told of
// this event within notify.min_interval.
void notify(containment::NotificationEvent event, const std::string& incident_id, const std::string& source_digest,
            CtlSession& session, std::ostream& notes) {
  const policy::Config& config = session.config();
  const containment::Notifier notifier(
      config.containment.notify,
      quarantine::SmtpTarget{.host = config.quarantine.release_host,
                             .port = config.quarantine.release_port,
                             .helo_name = "floodgatectl.localhost",
                             .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 config.quarantine.release_timeout)});
  if (!notifier.enabled()) return;
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
  auto& incidents = session.incident_store();
  auto allowed = incidents.claim_notification(source_digest, event, config.containment.notify.min_interval, now);
  if (allowed && !*allowed) {
    (void)incidents.count_notification(incident_id, containment::NotificationCount::Suppressed);
    notes << "not notified: this source's last " << containment::to_string(event)
                  << " notification was less than notify.min_interval ago\n";
    return;
  }
  auto incident = incidents.get(incident_id);
  if (!incident || !*incident) {
    warn(session, "no notification sent: incident " + incident_id + " could not be read" +
                      (incident ? std::string() : " (" + escape_for_terminal(incident.error().detail) + ")"));
    return;
  }
  const auto result = notifier.notify(event, **incident, now);
  (void)incidents.count_notification(incident_id, result.any_failed() ? containment::NotificationCount::Failed
                                                                      : containment::NotificationCount::Sent);
  for (const auto& error : result.errors) warn(session, "notification failed: " + escape_for_terminal(error));
  if (result.mail_sent) notes << "notified by mail: " << count_text(config.containment.notify.mail_to.size(), "address") << "\n";
  if (result.command_succeeded) notes << "notified by command\n";
}

}  // namespace

std::string new_incident_id(ratelimit::TimePoint now) {
  std::random_device random;
  const std::uint64_t bits = (static_cast<std::uint64_t>(random()) << 32) | random();
  return containment::make_incident_id(now, bits);
}

void open_manual_incident(const ratelimit::Freeze& freeze, const policy::SourceSpec& source, CtlSession& session,
                          std::ostream& notes) {
  containment::Incident incident = containment::incident_opened_by(freeze);
  for (const auto& part : source.parts) incident.identity[identity_key(part.part)] = part.value;
  incident.opened_by = "floodgatectl";
  incident.queue_clearing = std::string(policy::to_string(session.config().containment.queue_clearing));
  if (auto opened = session.incident_store().open(incident); !opened) {
    warn(session, "the freeze stands, but its incident could not be opened: " +
                      escape_for_terminal(opened.error().detail));
    return;
  }
  notes << "incident: " << incident.id << "\n";
  notify(containment::NotificationEvent::Freeze, incident.id, incident.source_digest, session, notes);
}

void close_unfrozen_incident(const std::string& incident_id, const std::string& source_digest, CtlSession& session,
                             std::ostream& notes) {
  if (incident_id.empty()) return;
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(session.now());
  auto closed = session.incident_store().close(incident_id, "unfrozen", now);
  if (!closed) {
    warn(session, "the source is unfrozen, but its incident " + incident_id +
                      " could not be closed: " + escape_for_terminal(closed.error().detail));
    return;
  }
  if (!*closed) return;  // closed already: whoever closed it told
  notes << "incident closed: " << incident_id << "\n";
  if (session.config().containment.notify.on_unfreeze)
    notify(containment::NotificationEvent::Unfreeze, incident_id, source_digest, session, notes);
}

}  // namespace floodgate::ctl
