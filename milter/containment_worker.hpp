// ContainmentWorker: everything containment does besides deciding a
// message -- keeping incidents, telling the postmaster, clearing the queue,
// and feeding `floodgatectl top` -- done off the milter threads.
//
// SUMMARY
// Milter threads call message_decided() once per message (and
// message_refused() for a frozen source refused at DATA); it only updates
// in-process structures and queues events, so a slow or absent Redis, a
// slow postsuper or sendmail or a hanging notification command never delays mail.
// The worker thread (run()) then, every 200 ms or when woken:
//  1. opens the incidents of freezes this instance made and records the
//     messages of frozen sources into their incidents (one store call per
//     incident per round);
//  2. compares the freezes in force (FreezeCache) with the last round's:
//     for a freeze seen for the first time -- made here, by another
//     instance, or by hand -- the messages this instance let through from
//     that source in the last incidents.lookback are recorded as "slipped"
//     and, with queue_clearing hold/delete, taken out of the local MTA's
//     queue (postsuper, or Sendmail's quarantine), which the incident
//     records; for a freeze gone,
//     its incident is closed ("unfrozen", or "expired" when its TTL ran
//     out) -- by exactly one instance, which then notifies;
//  3. flushes the activity aggregate (top) every top.flush_interval.
// Notifications (mail, command) run on a second thread, rate-limited per
// source through the IncidentStore, so a slow SMTP target holds up nothing
// else.
//
// DIAGNOSTICS
// One log line per freeze observed (slipped count and what queue clearing
// did), per incident closed and per notification; a failing incident
// store or activity store is logged once per change of state, not per
// message. Events beyond k_max_pending_events are dropped and counted in
// the next log line (the burst it would record is being contained anyway).
//
// THREAD SAFETY: message_decided()/message_refused() from any thread;
// run() on one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <string>
#include <vector>

#include "containment/activity.hpp"
#include "containment/incident_store.hpp"
#include "containment/notifier.hpp"
#include "containment/recent_messages.hpp"
#include "milter/freeze_cache.hpp"
#include "milter/session.hpp"

namespace floodgate::milter {

constexpr std::size_t k_max_pending_events = 100000;

class ContainmentWorker {
 public:
  // `activity` may be null (top disabled); the others must outlive the worker.
  ContainmentWorker(std::shared_ptr<const policy::Config> config, FreezeCache& freezes,
                    containment::IncidentStore& incidents, containment::ActivityStore* activity,
                    const containment::Notifier& notifier, std::string host_name);

  // After decide/contain/quarantine: the message's part in incidents,
  // recent messages and activity.
  void message_decided(const MessageSession& session, const Decision& decision, ratelimit::TimePoint now);
  // A message from a frozen source refused at DATA (no headers, no body).
  void message_refused(const MessageSession& session, const Decision& decision, ratelimit::TimePoint now);

  // The worker loop, until `stop`; runs the notification thread beside it.
  void run(std::stop_token stop);

  // One round of the loop (for tests): events, freezes, activity.
  void run_once(ratelimit::TimePoint now);
  // Notifications queued so far, sent now (for tests; run() does this on
  // its own thread).
  void send_pending_notifications(ratelimit::TimePoint now);

  const containment::RecentMessages& recent() const { return m_recent; }

 private:
  struct PendingNotification {
    containment::NotificationEvent event;
    std::string incident_id;
    std::string source_digest;
  };

  containment::IncidentMessage incident_message(const MessageSession& session, const Decision& decision,
                                                ratelimit::TimePoint now) const;
  void record_frozen_message(const std::string& incident_id, containment::IncidentMessage message);
  void process_events(std::vector<containment::Incident>& openings,
                      std::map<std::string, std::vector<containment::IncidentMessage>>& messages);
  void freeze_observed(const ActiveFreeze& freeze, ratelimit::TimePoint now);
  void freeze_gone(const ActiveFreeze& freeze, ratelimit::TimePoint now);
  void queue_notification(containment::NotificationEvent event, const std::string& incident_id,
                          const std::string& source_digest);
  void report_store(const char* what, bool failed, const std::string& detail);
  void run_notifications(std::stop_token stop);

  std::shared_ptr<const policy::Config> m_config;
  FreezeCache& m_freezes;
  containment::IncidentStore& m_incidents;
  containment::ActivityStore* m_activity;
  const containment::Notifier& m_notifier;
  std::string m_host_name;
  containment::RecentMessages m_recent;
  containment::ActivityRecorder m_activity_recorder;

  std::mutex m_mutex;  // guards the pending events and m_wake
  std::condition_variable_any m_wake;
  std::vector<containment::Incident> m_pending_openings;
  std::map<std::string, std::vector<containment::IncidentMessage>> m_pending_messages;  // by incident id
  std::size_t m_pending_count = 0;
  std::size_t m_dropped = 0;

  // The worker thread's own state.
  std::map<std::string, ActiveFreeze> m_known_freezes;  // by source digest
  std::chrono::steady_clock::time_point m_last_activity_flush{};
  std::map<std::string, bool> m_store_failing;  // by what, for one log line per state change

  std::mutex m_notify_mutex;
  std::condition_variable_any m_notify_wake;
  std::deque<PendingNotification> m_notifications;
};

}  // namespace floodgate::milter
