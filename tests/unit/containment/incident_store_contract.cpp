// IncidentStoreContract: see incident_store_contract.hpp.
#include "incident_store_contract.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace floodgate::containment::contract {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;  // "\0" inside ""s literals is a real NUL byte

TimePoint real_now() { return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()); }

Incident opener(const std::string& id, TimePoint opened, std::chrono::milliseconds ttl = 1h) {
  Incident incident;
  incident.id = id;
  incident.source = "client_address=192.0.2.7";
  incident.source_digest = "0123456789abcdef";
  incident.rule = "same_content_rcpts_per_client";
  incident.reason = "same_content_rcpts_per_client=101>100 (+20)";
  incident.action = policy::Action::Tempfail;
  incident.identity = {{"client_address", "192.0.2.7"}, {"header:x-php-originating-script", "12:contact.php"}};
  incident.opened_by = "mx1.example.org";
  incident.opened = opened;
  incident.until = opened + ttl;
  incident.queue_clearing = "hold";
  return incident;
}

IncidentMessage message(TimePoint time, MessageOutcome outcome, std::vector<std::string> recipients,
                        std::string subject = "Buy now", std::string queue_id = "") {
  IncidentMessage m;
  m.time = time;
  m.queue_id = std::move(queue_id);
  m.outcome = outcome;
  m.recipients = recipients.size();
  m.recipient_addresses = std::move(recipients);
  m.sender = "www-data@web1.example.org";
  m.subject = std::move(subject);
  m.fingerprint = "exact:0a1b2c3d";
  return m;
}

Incident get_ok(IncidentStore& store, const std::string& id) {
  auto got = store.get(id);
  EXPECT_TRUE(got.has_value()) << got.error().detail;
  if (!got || !*got) {
    ADD_FAILURE() << "got no incident " << id << ", want one";
    return Incident{};
  }
  return **got;
}

std::vector<std::string> ids_of(const std::vector<Incident>& incidents) {
  std::vector<std::string> ids;
  for (const auto& incident : incidents) ids.push_back(incident.id);
  return ids;
}

TEST_P(IncidentStoreContract, UnknownIdIsNotAnError) {
  auto& s = store();
  const auto got = s.get(make_incident_id(real_now(), 1));
  ASSERT_TRUE(got.has_value()) << got.error().detail;
  EXPECT_FALSE(got->has_value()) << "got an incident for an id never used, want none";
}

TEST_P(IncidentStoreContract, MalformedIdsAreProtocolFailures) {
  auto& s = store();
  const std::vector<IncidentMessage> one{message(real_now(), MessageOutcome::Quarantined, {"a@example.net"})};
  for (const std::string bad : {"", "../../etc/passwd", "20261127-134501-0A1B2C3D", "20261127-134501-0a1b2c3d*",
                                "x:{freezes}:all"}) {
    const auto got = s.get(bad);
    ASSERT_FALSE(got.has_value()) << "get(" << bad << ") succeeded, want a Protocol failure";
    EXPECT_EQ(got.error().kind, ratelimit::CounterFailure::Kind::Protocol);
    EXPECT_FALSE(s.record(bad, one).has_value()) << bad;
    EXPECT_FALSE(s.close(bad, "unfrozen", real_now()).has_value()) << bad;
    Incident incident = opener(bad, real_now());
    EXPECT_FALSE(s.open(incident).has_value()) << bad;
  }
  const auto claim = s.claim_notification("client=1.2.3.4", NotificationEvent::Freeze, 60s, real_now());
  ASSERT_FALSE(claim.has_value()) << "claimed for a digest that is not one";
  EXPECT_EQ(claim.error().kind, ratelimit::CounterFailure::Kind::Protocol);
}

TEST_P(IncidentStoreContract, OpenKeepsTheOpenersFieldsByteForByte) {
  auto& s = store();
  const TimePoint now = real_now();
  Incident incident = opener(make_incident_id(now, 2), now);
  incident.source = "header:x-php-originating-script=12:a\r\nX-Injected: 1\n\x80\xff\0nul \"}{\\"s;
  incident.reason = "ops: \"spam\" wave\n\ttab \0 üñí"s;
  incident.identity["header:x-php-originating-script"] = "12:a\r\nX-Injected: 1\n\x80\xff\0nul"s;
  incident.opened_by = "mx1\x1b[2J";
  ASSERT_TRUE(s.open(incident).has_value());

  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.id, incident.id);
  EXPECT_EQ(got.source, incident.source);
  EXPECT_EQ(got.source_digest, incident.source_digest);
  EXPECT_EQ(got.rule, incident.rule);
  EXPECT_EQ(got.reason, incident.reason);
  EXPECT_EQ(got.action, policy::Action::Tempfail);
  EXPECT_EQ(got.identity, incident.identity);
  EXPECT_EQ(got.opened_by, incident.opened_by);
  EXPECT_EQ(got.opened, incident.opened);
  EXPECT_EQ(got.until, incident.until);
  EXPECT_FALSE(got.closed.has_value());
  EXPECT_EQ(got.queue_clearing, "hold");
  EXPECT_EQ(got.messages, 0u);
  EXPECT_FALSE(got.first_seen.has_value());
  EXPECT_EQ(got.state(now), "open");
}

TEST_P(IncidentStoreContract, RecordCountsEveryOutcomeAndRecipient) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 3), now);
  ASSERT_TRUE(s.open(incident).has_value());
  std::vector<IncidentMessage> batch{
      message(now - 30s, MessageOutcome::Slipped, {"a@example.net", "b@example.net"}, "Buy now", "4AbC1"),
      message(now + 1s, MessageOutcome::Quarantined, {"c@Example.NET"}, "Buy now", "4AbC2"),
      message(now + 2s, MessageOutcome::Tempfailed, {"d@example.com"}, "Cheap pills"),
      message(now + 3s, MessageOutcome::Rejected, {"e@example.org"}, "Buy now"),
  };
  batch[0].recipients = 250;  // the message kept only two of them
  ASSERT_TRUE(s.record(incident.id, batch).has_value());
  ASSERT_TRUE(s.record(incident.id, std::vector<IncidentMessage>{batch[1]}).has_value());

  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.messages, 5u);
  EXPECT_EQ(got.recipients, 250u + 1 + 1 + 1 + 1);
  EXPECT_EQ(got.slipped, 1u);
  EXPECT_EQ(got.quarantined, 2u);
  EXPECT_EQ(got.tempfailed, 1u);
  EXPECT_EQ(got.rejected, 1u);
  EXPECT_EQ(got.first_seen, now - 30s);
  EXPECT_EQ(got.last_seen, now + 3s);
  EXPECT_EQ(got.recipient_sample, (std::vector<std::string>{"a@example.net", "b@example.net", "c@Example.NET",
                                                            "d@example.com", "e@example.org"}));
  EXPECT_EQ(got.recipient_domains, (std::vector<CountedText>{{"example.net", 4}, {"example.com", 1},
                                                             {"example.org", 1}}));
  EXPECT_EQ(got.subjects, (std::vector<CountedText>{{"Buy now", 4}, {"Cheap pills", 1}}));
  EXPECT_EQ(got.fingerprints, (std::vector<CountedText>{{"exact:0a1b2c3d", 5}}));
  EXPECT_EQ(got.senders, std::vector<std::string>{"www-data@web1.example.org"});
  ASSERT_EQ(got.queue_ids.size(), 2u);
  EXPECT_EQ(got.queue_ids[0].queue_id, "4AbC1");
  EXPECT_EQ(got.queue_ids[0].outcome, MessageOutcome::Slipped);
  EXPECT_EQ(got.queue_ids[0].time, now - 30s);
  EXPECT_EQ(got.queue_ids[1].queue_id, "4AbC2");
  EXPECT_EQ(got.queue_ids[1].outcome, MessageOutcome::Quarantined);
  EXPECT_EQ(got.queue_ids_not_listed, 0u);
}

TEST_P(IncidentStoreContract, RecordBeforeOpenKeepsTheCounts) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 4), now);
  // Another instance's message lands a moment before the opener's open().
  ASSERT_TRUE(s.record(incident.id, std::vector<IncidentMessage>{message(now, MessageOutcome::Quarantined,
                                                                         {"a@example.net"})})
                  .has_value());
  ASSERT_TRUE(s.open(incident).has_value());
  ASSERT_TRUE(s.open(incident).has_value());  // again: still no reset
  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.messages, 1u) << "open() reset the counts";
  EXPECT_EQ(got.quarantined, 1u);
  EXPECT_EQ(got.recipient_sample, std::vector<std::string>{"a@example.net"});
  EXPECT_EQ(got.source, incident.source);
}

TEST_P(IncidentStoreContract, SamplesKeepTheFirstDistinctUpToTheirLimits) {
  IncidentLimits limits;
  limits.recipient_sample = 3;
  limits.senders = 2;
  auto& s = store(limits);
  const TimePoint now = real_now();
  const std::string id = make_incident_id(now, 5);
  std::vector<IncidentMessage> batch;
  for (int i = 0; i < 40; ++i) {
    auto m = message(now, MessageOutcome::Quarantined,
                     {"r" + std::to_string(i) + "@d" + std::to_string(i) + ".example", "r0@d0.example"});
    m.sender = "s" + std::to_string(i % 5) + "@example.org";
    batch.push_back(std::move(m));
  }
  ASSERT_TRUE(s.record(id, std::span{batch}.subspan(0, 1)).has_value());
  ASSERT_TRUE(s.record(id, std::span{batch}.subspan(1)).has_value());
  const Incident got = get_ok(s, id);
  EXPECT_EQ(got.recipient_sample, (std::vector<std::string>{"r0@d0.example", "r1@d1.example", "r2@d2.example"}));
  EXPECT_EQ(got.senders, (std::vector<std::string>{"s0@example.org", "s1@example.org"}));
  // Domains: counted for at most 10 x 3 distinct ones, the first met.
  ASSERT_EQ(got.recipient_domains.size(), 30u);
  EXPECT_EQ(got.recipient_domains[0], (CountedText{"d0.example", 41}));
  EXPECT_EQ(got.recipient_domains[1], (CountedText{"d1.example", 1}));
  EXPECT_EQ(got.recipients, 80u);
}

TEST_P(IncidentStoreContract, TopSubjectsAreTheMostFrequentThenByText) {
  IncidentLimits limits;
  limits.subjects = 2;
  limits.fingerprints = 1;
  auto& s = store(limits);
  const TimePoint now = real_now();
  const std::string id = make_incident_id(now, 6);
  std::vector<IncidentMessage> batch;
  const auto add = [&](const std::string& subject, int times, const std::string& fingerprint = "exact:aa") {
    for (int i = 0; i < times; ++i) {
      batch.push_back(message(now, MessageOutcome::Quarantined, {"a@example.net"}, subject));
      batch.back().fingerprint = fingerprint;
    }
  };
  add("beta", 3);
  add("alpha", 3, "exact:bb");
  add("gamma", 5, "exact:bb");
  for (int i = 0; i < 30; ++i) add("one-off " + std::to_string(i), 1);
  add("late and frequent", 9);  // met after 10 x 2 distinct subjects: not counted
  ASSERT_TRUE(s.record(id, batch).has_value());
  const Incident got = get_ok(s, id);
  EXPECT_EQ(got.subjects, (std::vector<CountedText>{{"gamma", 5}, {"alpha", 3}}));
  EXPECT_EQ(got.fingerprints, (std::vector<CountedText>{{"exact:aa", 42}}));
  EXPECT_EQ(got.messages, batch.size()) << "counts must stay exact whatever the caps";
}

TEST_P(IncidentStoreContract, QueueIdsAreListedOldestFirstUpToTheCap) {
  IncidentLimits limits;
  limits.max_queue_ids = 3;
  auto& s = store(limits);
  const TimePoint now = real_now();
  const std::string id = make_incident_id(now, 7);
  std::vector<IncidentMessage> batch;
  const std::vector<std::string> queue_ids{"4B2", "4B1", "bad/../id", "", "4B3", "4B1", "4B4", "4B5",
                                           std::string(65, 'A')};
  for (std::size_t i = 0; i < queue_ids.size(); ++i) {
    batch.push_back(message(now + std::chrono::seconds(10 - i), MessageOutcome::Slipped, {"a@example.net"},
                            "s", queue_ids[i]));
  }
  ASSERT_TRUE(s.record(id, batch).has_value());
  const Incident got = get_ok(s, id);
  ASSERT_EQ(got.queue_ids.size(), 3u);
  EXPECT_EQ(got.queue_ids[0].queue_id, "4B3");  // the newest of them is listed last
  EXPECT_EQ(got.queue_ids[1].queue_id, "4B1");
  EXPECT_EQ(got.queue_ids[2].queue_id, "4B2");
  EXPECT_EQ(got.queue_ids_not_listed, 2u) << "4B4 and 4B5 did not fit; odd ids are not queue ids";
  EXPECT_EQ(got.messages, queue_ids.size());

  const std::vector<QueueAction> actions{{"4B1", "held"}, {"4B9", "held"}, {"odd id", "held"}};
  ASSERT_TRUE(s.record_queue_actions(id, actions).has_value());
  const Incident after = get_ok(s, id);
  ASSERT_EQ(after.queue_ids.size(), 3u);
  EXPECT_EQ(after.queue_ids[1].queue_action, "held");
  EXPECT_EQ(after.queue_ids[0].queue_action, "");
  EXPECT_EQ(after.queue_ids_not_listed, 3u) << "4B9 did not fit either";
}

TEST_P(IncidentStoreContract, QueueActionsAddQueueIdsNotYetRecorded) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 8), now);
  ASSERT_TRUE(s.open(incident).has_value());
  ASSERT_TRUE(s.record_queue_actions(incident.id, std::vector<QueueAction>{{"4XyZ12AbC", "failed: postsuper\r\nexit 1"}})
                  .has_value());
  const Incident got = get_ok(s, incident.id);
  ASSERT_EQ(got.queue_ids.size(), 1u);
  EXPECT_EQ(got.queue_ids[0].queue_id, "4XyZ12AbC");
  EXPECT_EQ(got.queue_ids[0].outcome, MessageOutcome::Slipped);
  EXPECT_EQ(got.queue_ids[0].time, incident.opened);
  EXPECT_EQ(got.queue_ids[0].queue_action, "failed: postsuper\r\nexit 1");
}

TEST_P(IncidentStoreContract, NotificationsAreCounted) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 9), now);
  ASSERT_TRUE(s.open(incident).has_value());
  for (auto what : {NotificationCount::Sent, NotificationCount::Sent, NotificationCount::Suppressed,
                    NotificationCount::Failed, NotificationCount::Sent}) {
    ASSERT_TRUE(s.count_notification(incident.id, what).has_value());
  }
  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.notifications_sent, 3u);
  EXPECT_EQ(got.notifications_suppressed, 1u);
  EXPECT_EQ(got.notifications_failed, 1u);
}

TEST_P(IncidentStoreContract, CloseAnswersTrueOnlyToTheFirstCloser) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 10), now);
  EXPECT_EQ(s.close(incident.id, "unfrozen", now), false) << "closed an incident never opened";
  ASSERT_TRUE(s.open(incident).has_value());
  EXPECT_EQ(s.close(incident.id, "unfrozen", now + 5s), true);
  EXPECT_EQ(s.close(incident.id, "expired", now + 6s), false);
  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.closed, now + 5s);
  EXPECT_EQ(got.close_reason, "unfrozen");
  EXPECT_EQ(got.state(now + 7s), "unfrozen");
  EXPECT_FALSE(got.is_open(now + 7s));
}

TEST_P(IncidentStoreContract, OfConcurrentClosersExactlyOneWins) {
  auto& s = store();
  const TimePoint now = real_now();
  for (int round = 0; round < 10; ++round) {
    const Incident incident = opener(make_incident_id(now, 100 + static_cast<std::uint64_t>(round)), now);
    ASSERT_TRUE(s.open(incident).has_value());
    std::atomic<int> winners{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> closers;
    for (int i = 0; i < 4; ++i) {
      closers.emplace_back([&] {
        const auto closed = s.close(incident.id, "expired", now);
        if (!closed) ++failures;
        if (closed && *closed) ++winners;
      });
    }
    for (auto& closer : closers) closer.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(winners.load(), 1) << "round " << round << ": got " << winners.load() << " closers told true, want 1";
  }
}

TEST_P(IncidentStoreContract, ListIsNewestFirstAndFilters) {
  auto& s = store();
  const TimePoint now = real_now();
  const Incident old = opener(make_incident_id(now - 3h, 11), now - 3h, 1h);     // expired at now
  const Incident closed = opener(make_incident_id(now - 2h, 12), now - 2h, 4h);  // unfrozen below
  const Incident open = opener(make_incident_id(now - 1h, 13), now - 1h, 2h);
  for (const auto* incident : {&open, &old, &closed}) ASSERT_TRUE(s.open(*incident).has_value());
  ASSERT_EQ(s.close(closed.id, "unfrozen", now - 90min), true);
  // Recorded into, never opened: not listed.
  ASSERT_TRUE(s.record(make_incident_id(now, 14), std::vector<IncidentMessage>{message(now, MessageOutcome::Slipped,
                                                                                       {"a@example.net"})})
                  .has_value());

  const auto all = s.list(std::nullopt, false, now);
  ASSERT_TRUE(all.has_value()) << all.error().detail;
  EXPECT_EQ(ids_of(*all), (std::vector<std::string>{open.id, closed.id, old.id}));
  const auto recent = s.list(now - 150min, false, now);
  ASSERT_TRUE(recent.has_value()) << recent.error().detail;
  EXPECT_EQ(ids_of(*recent), (std::vector<std::string>{open.id, closed.id}));
  const auto open_only = s.list(std::nullopt, true, now);
  ASSERT_TRUE(open_only.has_value()) << open_only.error().detail;
  EXPECT_EQ(ids_of(*open_only), std::vector<std::string>{open.id});
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[2].state(now), "expired");
  EXPECT_EQ((*all)[1].state(now), "unfrozen");
}

TEST_P(IncidentStoreContract, IncidentsPastTheirRetentionAreDropped) {
  IncidentLimits limits;
  limits.retention = 1s;
  auto& s = store(limits);
  const TimePoint now = real_now();
  const Incident gone = opener(make_incident_id(now - 1h, 15), now - 1h, 10s);
  const Incident kept = opener(make_incident_id(now - 1s, 16), now - 1s, 1h);
  ASSERT_TRUE(s.open(gone).has_value());
  ASSERT_TRUE(s.open(kept).has_value());
  const auto listed = s.list(std::nullopt, false, now);
  ASSERT_TRUE(listed.has_value()) << listed.error().detail;
  EXPECT_EQ(ids_of(*listed), std::vector<std::string>{kept.id});
  const auto got = s.get(gone.id);
  ASSERT_TRUE(got.has_value()) << got.error().detail;
  EXPECT_FALSE(got->has_value()) << "an incident past its retention is still there";
}

TEST_P(IncidentStoreContract, NotificationClaimsAreRateLimitedPerSourceAndEvent) {
  auto& s = store();
  const TimePoint now = real_now();
  const std::string digest = "0123456789abcdef";
  EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Freeze, 1s, now), true);
  EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Freeze, 1s, now + 10ms), false);
  EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Unfreeze, 1s, now + 10ms), true);
  EXPECT_EQ(s.claim_notification("fedcba9876543210", NotificationEvent::Freeze, 1s, now + 10ms), true);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Freeze, 0s, now), true) << "interval 0 must allow all";
  }
  // The Redis store measures the interval with Redis' clock: really wait.
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Freeze, 1s, now + 1100ms), true);
  EXPECT_EQ(s.claim_notification(digest, NotificationEvent::Freeze, 1s, now + 1110ms), false);
}

TEST_P(IncidentStoreContract, HostileTextRoundTripsExactly) {
  auto& s = store();
  const TimePoint now = real_now();
  const std::string id = make_incident_id(now, 17);
  const std::string subject = "=?utf-8?q?x?=\r\nBcc: victim@example.org\n$(rm -rf /); `id` | ;\x1b[31m\x80\xff\0end"s;
  const std::string address = "\"a\r\nb\"@exa\x01mple.net";
  auto m = message(now, MessageOutcome::Quarantined, {address}, subject);
  m.sender = "<>\r\n\0"s;
  ASSERT_TRUE(s.record(id, std::vector<IncidentMessage>{m}).has_value());
  const Incident got = get_ok(s, id);
  EXPECT_EQ(got.subjects, (std::vector<CountedText>{{subject, 1}}));
  EXPECT_EQ(got.recipient_sample, std::vector<std::string>{address});
  EXPECT_EQ(got.recipient_domains, (std::vector<CountedText>{{"exa\x01mple.net", 1}}));
  EXPECT_EQ(got.senders, std::vector<std::string>{m.sender});
}

TEST_P(IncidentStoreContract, ABurstInOneCallKeepsCapsAndExactCounts) {
  IncidentLimits limits;  // the defaults: 20 recipients, 10 subjects, 1000 queue ids
  auto& s = store(limits);
  const TimePoint now = real_now();
  const Incident incident = opener(make_incident_id(now, 18), now);
  ASSERT_TRUE(s.open(incident).has_value());
  std::vector<IncidentMessage> burst;
  constexpr int k_messages = 10'000;
  for (int i = 0; i < k_messages; ++i) {
    std::vector<std::string> recipients;
    for (int r = 0; r < 5; ++r) recipients.push_back("user" + std::to_string(i * 5 + r) + "@d" + std::to_string(r) + ".example");
    auto m = message(now + std::chrono::milliseconds(i), i % 10 == 0 ? MessageOutcome::Slipped : MessageOutcome::Quarantined,
                     std::move(recipients), i % 3 == 0 ? "Buy now" : "Buy now " + std::to_string(i % 50), "Q" + std::to_string(i));
    m.recipients = 100;
    m.sender = "s" + std::to_string(i) + "@example.org";
    burst.push_back(std::move(m));
  }
  ASSERT_TRUE(s.record(incident.id, burst).has_value());
  const Incident got = get_ok(s, incident.id);
  EXPECT_EQ(got.messages, static_cast<std::uint64_t>(k_messages));
  EXPECT_EQ(got.recipients, 100u * k_messages);
  EXPECT_EQ(got.slipped, 1000u);
  EXPECT_EQ(got.quarantined, 9000u);
  EXPECT_EQ(got.first_seen, now);
  EXPECT_EQ(got.last_seen, now + std::chrono::milliseconds(k_messages - 1));
  EXPECT_EQ(got.recipient_sample.size(), 20u);
  EXPECT_EQ(got.senders.size(), 20u);
  EXPECT_EQ(got.recipient_domains.size(), 5u);
  EXPECT_EQ(got.recipient_domains[0], (CountedText{"d0.example", k_messages}));
  ASSERT_EQ(got.subjects.size(), 10u);
  EXPECT_EQ(got.subjects[0], (CountedText{"Buy now", 3334}));
  EXPECT_EQ(got.queue_ids.size(), 1000u);
  EXPECT_EQ(got.queue_ids_not_listed, 9000u);
  EXPECT_EQ(got.queue_ids.front().queue_id, "Q0");
  EXPECT_EQ(got.queue_ids.back().queue_id, "Q999");
}

}  // namespace
}  // namespace floodgate::containment::contract
