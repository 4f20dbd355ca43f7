#include "milter/containment_worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "containment/queue_clearing.hpp"
#include "milter/log_escape.hpp"
#include "policy/ascii.hpp"
#include "policy/digest.hpp"

namespace floodgate::milter {
namespace {

using containment::IncidentMessage;
using containment::MessageOutcome;

constexpr auto k_round_interval = std::chrono::milliseconds(200);
// Recipient addresses a message brings to its incident (the store samples
// further); the count is always exact.
constexpr std::size_t k_recipients_per_message = 20;
// Messages remembered for "slipped" and queue clearing.
constexpr std::size_t k_recent_capacity = 20000;

ratelimit::TimePoint clock_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::optional<MessageOutcome> outcome_of(policy::Action action) {
  switch (action) {
    case policy::Action::Quarantine: return MessageOutcome::Quarantined;
    case policy::Action::Tempfail: return MessageOutcome::Tempfailed;
    case policy::Action::Reject: return MessageOutcome::Rejected;
    default: return std::nullopt;
  }
}

// The source's identity as this message shows it.
std::map<std::string, std::string> identity_of(const policy::MessageFacts& facts) {
  std::map<std::string, std::string> identity;
  if (!facts.client_address.empty()) identity["client_address"] = facts.client_address;
  if (!facts.client_name.empty()) identity["client_name"] = facts.client_name;
  if (!facts.sasl_user.empty()) identity["sasl_user"] = facts.sasl_user;
  identity["sender"] = facts.sender.empty() ? "<>" : facts.sender;
  // Header values as the MTA sent them keep the space after the colon.
  for (const auto& [name, value] : facts.headers) identity["header:" + name] = policy::trim_whitespace(value);
  return identity;
}

}  // namespace

ContainmentWorker::ContainmentWorker(std::shared_ptr<const policy::Config> config, FreezeCache& freezes,
                                     containment::IncidentStore& incidents, containment::ActivityStore* activity,
                                     const containment::Notifier& notifier, std::string host_name)
    : m_config(std::move(config)),
      m_freezes(freezes),
      m_incidents(incidents),
      m_activity(activity),
      m_notifier(notifier),
      m_host_name(std::move(host_name)),
      m_recent(m_config->containment.incidents.lookback, k_recent_capacity) {}

IncidentMessage ContainmentWorker::incident_message(const MessageSession& session, const Decision& decision,
                                                    ratelimit::TimePoint now) const {
  const policy::MessageFacts& facts = session.facts();
  IncidentMessage message;
  message.time = now;
  const auto queue_id = facts.macros.find("i");
  if (queue_id != facts.macros.end() && queue_id->second != "-") message.queue_id = queue_id->second;
  message.outcome = outcome_of(decision.action).value_or(MessageOutcome::Slipped);
  message.recipients = session.recipient_count();
  const std::size_t kept = std::min(facts.recipients.size(), k_recipients_per_message);
  message.recipient_addresses.assign(facts.recipients.begin(), facts.recipients.begin() + static_cast<long>(kept));
  message.sender = facts.sender;
  message.subject = session.subject();
  if (facts.fingerprint.present)
    message.fingerprint = facts.fingerprint.method + ":" + policy::to_hex(facts.fingerprint.digest);
  return message;
}

void ContainmentWorker::message_decided(const MessageSession& session, const Decision& decision,
                                        ratelimit::TimePoint now) {
  if (decision.scope != policy::Scope::Outbound) return;
  if (m_activity != nullptr) m_activity_recorder.add(*m_config, session.facts(), session.recipient_count(), now);

  std::vector<containment::Incident> openings;
  for (const auto& freeze : decision.freezes_created) {
    if (freeze.incident.empty()) continue;
    containment::Incident incident = containment::incident_opened_by(freeze);
    incident.identity = identity_of(session.facts());
    incident.opened_by = m_host_name;
    incident.queue_clearing = std::string(policy::to_string(m_config->containment.queue_clearing));
    openings.push_back(std::move(incident));
  }

  IncidentMessage message = incident_message(session, decision, now);
  if (!decision.frozen_source.empty()) {
    // Stopped by a freeze: part of that freeze's incident.
    std::lock_guard lock(m_mutex);
    for (auto& opening : openings) m_pending_openings.push_back(std::move(opening));
    if (!decision.frozen_incident.empty()) {
      if (m_pending_count < k_max_pending_events) {
        m_pending_messages[decision.frozen_incident].push_back(std::move(message));
        ++m_pending_count;
      } else {
        ++m_dropped;
      }
    }
    return;
  }
  if (decision.action == policy::Action::Accept || decision.action == policy::Action::Tag)
    m_recent.add(std::move(message), session.facts(), now);
}

void ContainmentWorker::message_refused(const MessageSession& session, const Decision& decision,
                                        ratelimit::TimePoint now) {
  message_decided(session, decision, now);
}

void ContainmentWorker::report_store(const char* what, bool failed, const std::string& detail) {
  bool& failing = m_store_failing[what];
  if (failed && !failing) {
    spdlog::warn("containment {} store failing: {}", what, escape_log_value(detail));
  } else if (!failed && failing) {
    spdlog::info("containment {} store working again", what);
  }
  failing = failed;
}

void ContainmentWorker::run_once(ratelimit::TimePoint now) {
  std::vector<containment::Incident> openings;
  std::map<std::string, std::vector<IncidentMessage>> messages;
  std::size_t dropped = 0;
  {
    std::lock_guard lock(m_mutex);
    openings.swap(m_pending_openings);
    messages.swap(m_pending_messages);
    m_pending_count = 0;
    std::swap(dropped, m_dropped);
  }
  if (dropped > 0) spdlog::warn("containment events dropped={} (queue full)", dropped);
  process_events(openings, messages);

  // Freezes in force now against the last round's.
  const auto snapshot = m_freezes.snapshot();
  std::map<std::string, ActiveFreeze> current;
  for (const auto& active : *snapshot) {
    if (active.freeze.until > now) current.emplace(active.freeze.source_digest, active);
  }
  for (const auto& [digest, active] : current) {
    const auto known = m_known_freezes.find(digest);
    // A refreeze of the same source is a new incident.
    if (known == m_known_freezes.end() || known->second.freeze.incident != active.freeze.incident)
      freeze_observed(active, now);
  }
  for (const auto& [digest, active] : m_known_freezes) {
    const auto still = current.find(digest);
    if (still == current.end() || still->second.freeze.incident != active.freeze.incident) freeze_gone(active, now);
  }
  m_known_freezes = std::move(current);

  if (m_activity != nullptr) {
    const auto steady_now = std::chrono::steady_clock::now();
    if (steady_now - m_last_activity_flush >= m_config->top.flush_interval) {
      m_last_activity_flush = steady_now;
      auto flushed = m_activity_recorder.flush(*m_activity);
      report_store("activity", !flushed, flushed ? std::string() : flushed.error().detail);
      if (const auto dropped = m_activity_recorder.take_dropped(); dropped > 0)
        spdlog::warn("top activity not recorded for {} message sources (too many sources in one flush)", dropped);
    }
  }
}

void ContainmentWorker::process_events(std::vector<containment::Incident>& openings,
                                       std::map<std::string, std::vector<IncidentMessage>>& messages) {
  for (const auto& incident : openings) {
    auto opened = m_incidents.open(incident);
    report_store("incident", !opened, opened ? std::string() : opened.error().detail);
    spdlog::warn("incident opened {} {} {}", log_field("incident", incident.id),
                 log_field("source", incident.source, 512), log_field("rule", incident.rule));
  }
  for (auto& [incident_id, batch] : messages) {
    auto recorded = m_incidents.record(incident_id, batch);
    report_store("incident", !recorded, recorded ? std::string() : recorded.error().detail);
  }
  // Told after their first messages (and the slipped ones, in this same
  // round) are in, so the report has something to say.
  for (const auto& incident : openings) {
    queue_notification(containment::NotificationEvent::Freeze, incident.id, incident.source_digest);
  }
}

void ContainmentWorker::freeze_observed(const ActiveFreeze& active, ratelimit::TimePoint now) {
  const ratelimit::Freeze& freeze = active.freeze;
  std::vector<IncidentMessage> slipped = m_recent.take_from(active.source, now);
  if (freeze.incident.empty()) return;  // a freeze from before incidents: nothing to record into
  if (slipped.empty()) return;
  auto recorded = m_incidents.record(freeze.incident, slipped);
  report_store("incident", !recorded, recorded ? std::string() : recorded.error().detail);

  const policy::QueueClearing mode = m_config->containment.queue_clearing;
  std::string clearing = "off";
  if (mode != policy::QueueClearing::Off) {
    std::vector<std::string> queue_ids;
    for (const auto& message : slipped)
      if (!message.queue_id.empty()) queue_ids.push_back(message.queue_id);
    const auto actions =
        containment::clear_queued_messages(mode, m_config->quarantine, queue_ids,
                                           "floodgate: source frozen, incident " + freeze.incident);
    std::map<std::string, std::size_t> tally;
    for (const auto& action : actions) ++tally[action.result.starts_with("failed") ? "failed" : action.result];
    clearing.clear();
    for (const auto& [result, count] : tally)
      clearing += (clearing.empty() ? "" : ",") + result + ":" + std::to_string(count);
    if (clearing.empty()) clearing = "none";
    auto stored = m_incidents.record_queue_actions(freeze.incident, actions);
    report_store("incident", !stored, stored ? std::string() : stored.error().detail);
    for (const auto& action : actions) {
      if (action.result.starts_with("failed")) {
        spdlog::warn("queue clearing {} {} {}", log_field("incident", freeze.incident),
                     log_field("qid", action.queue_id, 64), log_field("error", action.result));
        break;  // one line: the others failed the same way
      }
    }
  }
  spdlog::warn("incident slipped {} {} slipped={} {}", log_field("incident", freeze.incident),
               log_field("source", freeze.source, 512), slipped.size(),
               log_field("queue_clearing", clearing));
}

void ContainmentWorker::freeze_gone(const ActiveFreeze& active, ratelimit::TimePoint now) {
  const ratelimit::Freeze& freeze = active.freeze;
  if (freeze.incident.empty()) return;
  const std::string reason = freeze.until <= now ? "expired" : "unfrozen";
  auto closed = m_incidents.close(freeze.incident, reason, now);
  report_store("incident", !closed, closed ? std::string() : closed.error().detail);
  if (!closed || !*closed) return;  // another instance (or floodgatectl) closed it and tells
  spdlog::warn("incident closed {} {} {}", log_field("incident", freeze.incident),
               log_field("source", freeze.source, 512), log_field("reason", reason));
  if (m_config->containment.notify.on_unfreeze)
    queue_notification(containment::NotificationEvent::Unfreeze, freeze.incident, freeze.source_digest);
}

void ContainmentWorker::queue_notification(containment::NotificationEvent event, const std::string& incident_id,
                                           const std::string& source_digest) {
  if (!m_notifier.enabled()) return;
  std::lock_guard lock(m_notify_mutex);
  m_notifications.push_back({event, incident_id, source_digest});
  m_notify_wake.notify_one();
}

void ContainmentWorker::send_pending_notifications(ratelimit::TimePoint now) {
  std::deque<PendingNotification> pending;
  {
    std::lock_guard lock(m_notify_mutex);
    pending.swap(m_notifications);
  }
  const auto& settings = m_config->containment.notify;
  for (const auto& notification : pending) {
    const auto event_name = containment::to_string(notification.event);
    auto allowed = m_incidents.claim_notification(notification.source_digest, notification.event,
                                                  settings.min_interval, now);
    // Without the store we cannot know whether it was told already; tell
    // (a duplicate beats a silent freeze).
    if (allowed && !*allowed) {
      (void)m_incidents.count_notification(notification.incident_id, containment::NotificationCount::Suppressed);
      spdlog::info("notification suppressed {} event={} (one per source per {}s)",
                   log_field("incident", notification.incident_id), event_name, settings.min_interval.count());
      continue;
    }
    auto incident = m_incidents.get(notification.incident_id);
    if (!incident || !*incident) {
      spdlog::warn("notification not sent {} event={}: incident unreadable: {}",
                   log_field("incident", notification.incident_id), event_name,
                   escape_log_value(incident ? std::string("not found") : incident.error().detail));
      continue;
    }
    const auto result = m_notifier.notify(notification.event, **incident, now);
    (void)m_incidents.count_notification(notification.incident_id, result.any_failed()
                                                                        ? containment::NotificationCount::Failed
                                                                        : containment::NotificationCount::Sent);
    if (result.any_failed()) {
      for (const auto& error : result.errors)
        spdlog::warn("notification failed {} event={} error={}", log_field("incident", notification.incident_id),
                     event_name, escape_log_value(error));
    } else {
      spdlog::info("notification sent {} event={} mail={} command={}",
                   log_field("incident", notification.incident_id), event_name, result.mail_sent ? 1 : 0,
                   result.command_succeeded ? 1 : 0);
    }
  }
}

void ContainmentWorker::run_notifications(std::stop_token stop) {
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(m_notify_mutex);
      m_notify_wake.wait(lock, stop, [&] { return !m_notifications.empty(); });
    }
    if (stop.stop_requested()) break;
    try {
      send_pending_notifications(clock_now());
    } catch (const std::exception& error) {
      spdlog::error("notification error={}", escape_log_value(error.what()));
    }
  }
}

void ContainmentWorker::run(std::stop_token stop) {
  std::jthread notifications([this](std::stop_token inner) { run_notifications(inner); });
  while (!stop.stop_requested()) {
    try {
      run_once(clock_now());
    } catch (const std::exception& error) {
      spdlog::error("containment worker error={}", escape_log_value(error.what()));
    }
    std::unique_lock lock(m_mutex);
    // Events wait for the round: one store call per incident per round,
    // not one per message.
    m_wake.wait_for(lock, stop, k_round_interval, [] { return false; });
  }
  notifications.request_stop();
}

}  // namespace floodgate::milter
