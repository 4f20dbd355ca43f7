// ContainmentWorker with in-process stores: a freeze opens an incident that
// counts the frozen source's messages, the ones it got through before the
// freeze (here or elsewhere) as slipped; the end of a freeze closes the
// incident once; notifications are sent once per source per interval.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "milter/containment_worker.hpp"
#include "milter/freeze_cache.hpp"
#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace floodgate::milter {
namespace {

using namespace std::chrono_literals;
using containment::MessageOutcome;

const ratelimit::TimePoint k_start{1'800'000'000'000ms};

std::shared_ptr<const policy::Config> worker_config(const std::string& notify_command = {}) {
  return policy::load_config_text(R"(
outbound:
  client_networks: [10.0.0.0/8]
quarantine: {mode: hold}
identities:
  client: {parts: [client_address]}
rules:
  - {name: rcpts_per_client, signal: recipients, identity: client, window: 10m, threshold: 5, points: 20}
containment:
  rules: [rcpts_per_client]
  ttl: 1h
  notify:
    command: [)" + (notify_command.empty() ? std::string() : "/bin/sh, -c, '" + notify_command + "'") + R"(]
    min_interval: 15m
actions:
  quarantine: 20
)",
                                  "test.yaml");
}

class ContainmentWorkerTest : public ::testing::Test {
 protected:
  explicit ContainmentWorkerTest(const std::string& notify_command = {})
      : m_config(worker_config(notify_command)),
        m_notifier(m_config->containment.notify, quarantine::SmtpTarget{}),
        m_worker(m_config, m_cache, *m_incidents, m_activity.get(), m_notifier, "test-host") {}

  Decision send(const std::string& client, int recipients, ratelimit::TimePoint now, const std::string& queue_id) {
    ConnectionInfo connection;
    connection.client_address = client;
    MessageSession session(m_config, connection);
    session.set_sender("<web@example.com>");
    session.set_macro("i", queue_id);
    for (int i = 0; i < recipients; ++i)
      session.add_recipient("<r" + std::to_string(m_next++) + "@people.example>", false);
    session.add_header("Subject", " Offer");
    session.add_body_chunk("Hello\r\n");
    Decision decision = session.contain(session.decide(m_counters, now), &m_cache, now);
    m_worker.message_decided(session, decision, now);
    return decision;
  }

  containment::Incident only_incident(ratelimit::TimePoint now) {
    auto listed = m_incidents->list(std::nullopt, false, now);
    EXPECT_TRUE(listed);
    EXPECT_EQ(listed->size(), 1u);
    return listed && !listed->empty() ? listed->front() : containment::Incident{};
  }

  std::shared_ptr<const policy::Config> m_config;
  ratelimit::MemoryCounterStore m_counters;
  std::unique_ptr<ratelimit::FreezeStore> m_store = ratelimit::make_memory_freeze_store();
  FreezeCache m_cache{*m_store};
  std::unique_ptr<containment::IncidentStore> m_incidents =
      containment::make_memory_incident_store(containment::IncidentLimits{});
  std::unique_ptr<containment::ActivityStore> m_activity = containment::make_memory_activity_store();
  containment::Notifier m_notifier;
  ContainmentWorker m_worker;
  int m_next = 0;
};

TEST_F(ContainmentWorkerTest, FreezeOpensAnIncidentCountingSlippedAndStoppedMessages) {
  send("10.9.9.9", 3, k_start, "Q1");               // accepted: slips through
  send("10.8.8.8", 1, k_start, "OTHER");            // another client
  const Decision tripping = send("10.9.9.9", 3, k_start + 1s, "Q2");  // 6 > 5: freezes
  ASSERT_EQ(tripping.freezes_created.size(), 1u);
  EXPECT_FALSE(tripping.frozen_incident.empty());
  send("10.9.9.9", 1, k_start + 2s, "Q3");          // stopped by the freeze
  m_worker.run_once(k_start + 3s);

  const containment::Incident incident = only_incident(k_start + 3s);
  EXPECT_EQ(incident.id, tripping.frozen_incident);
  EXPECT_EQ(incident.source, "client_address=10.9.9.9");
  EXPECT_EQ(incident.rule, "rcpts_per_client");
  EXPECT_EQ(incident.opened_by, "test-host");
  EXPECT_EQ(incident.identity.at("client_address"), "10.9.9.9");
  EXPECT_EQ(incident.identity.at("sender"), "web@example.com");
  EXPECT_EQ(incident.messages, 3u);
  EXPECT_EQ(incident.recipients, 7u);
  EXPECT_EQ(incident.slipped, 1u);
  EXPECT_EQ(incident.quarantined, 2u);
  ASSERT_TRUE(incident.first_seen && incident.last_seen);
  EXPECT_EQ(*incident.first_seen, k_start);
  EXPECT_EQ(*incident.last_seen, k_start + 2s);
  std::vector<std::pair<std::string, MessageOutcome>> queue_ids;
  for (const auto& entry : incident.queue_ids) queue_ids.emplace_back(entry.queue_id, entry.outcome);
  std::sort(queue_ids.begin(), queue_ids.end());
  EXPECT_EQ(queue_ids, (std::vector<std::pair<std::string, MessageOutcome>>{
                           {"Q1", MessageOutcome::Slipped},
                           {"Q2", MessageOutcome::Quarantined},
                           {"Q3", MessageOutcome::Quarantined}}));
}

TEST_F(ContainmentWorkerTest, AFreezeMadeElsewhereCountsWhatThisInstanceLetThrough) {
  send("10.7.7.7", 2, k_start, "A1");
  send("10.7.7.7", 2, k_start + 1s, "A2");
  m_worker.run_once(k_start + 2s);
  // Another instance (or floodgatectl) freezes the client and opens its incident.
  std::string error;
  const auto source = policy::parse_source_spec({"client=10.7.7.7"}, error);
  ASSERT_TRUE(source) << error;
  containment::Incident opened;
  opened.id = containment::make_incident_id(k_start + 3s, 42);
  opened.source = source->canonical();
  opened.source_digest = source->digest();
  opened.rule = "manual";
  opened.opened = k_start + 3s;
  opened.until = k_start + 1h;
  ASSERT_TRUE(m_incidents->open(opened));
  ratelimit::Freeze freeze{.source = source->canonical(), .source_digest = source->digest(), .rule = "manual",
                           .reason = "by hand", .action = policy::Action::Quarantine, .since = k_start + 3s,
                           .until = k_start + 1h, .incident = opened.id};
  ASSERT_TRUE(m_store->freeze(freeze, k_start + 3s));
  m_cache.refresh(k_start + 3s);
  m_worker.run_once(k_start + 4s);

  const containment::Incident incident = only_incident(k_start + 4s);
  EXPECT_EQ(incident.slipped, 2u);
  EXPECT_EQ(incident.recipients, 4u);
  // Taken once: a second round adds nothing.
  m_worker.run_once(k_start + 5s);
  EXPECT_EQ(only_incident(k_start + 5s).slipped, 2u);
}

TEST_F(ContainmentWorkerTest, UnfreezeClosesTheIncidentAsUnfrozenAndExpiryAsExpired) {
  send("10.9.9.9", 6, k_start, "Q1");
  m_worker.run_once(k_start + 1s);
  const std::string id = only_incident(k_start + 1s).id;
  ASSERT_TRUE(m_store->unfreeze(policy::parse_canonical_source("client_address=10.9.9.9")->digest()));
  m_cache.refresh(k_start + 2s);
  m_worker.run_once(k_start + 2s);
  auto closed = m_incidents->get(id);
  ASSERT_TRUE(closed && *closed);
  EXPECT_EQ((*closed)->close_reason, "unfrozen");
  EXPECT_EQ((*closed)->state(k_start + 3s), "unfrozen");

  send("10.6.6.6", 6, k_start + 10s, "Q2");
  m_worker.run_once(k_start + 11s);
  m_cache.refresh(k_start + 2h);
  m_worker.run_once(k_start + 2h);  // its TTL (1h) ran out
  auto listed = m_incidents->list(std::nullopt, false, k_start + 2h);
  ASSERT_TRUE(listed);
  const auto expired = std::find_if(listed->begin(), listed->end(),
                                    [](const containment::Incident& i) { return i.source == "client_address=10.6.6.6"; });
  ASSERT_NE(expired, listed->end());
  EXPECT_EQ(expired->close_reason, "expired");
}

TEST_F(ContainmentWorkerTest, AccountsActivityForTop) {
  send("10.5.5.5", 2, k_start, "T1");
  send("10.5.5.5", 3, k_start + 1s, "T2");
  m_worker.run_once(k_start + 2s);
  auto top = m_activity->top(10min, containment::TopOrder::Messages, 10, k_start + 2s);
  ASSERT_TRUE(top);
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].source, "client_address=10.5.5.5");
  EXPECT_EQ((*top)[0].messages, 2u);
  EXPECT_EQ((*top)[0].recipients, 5u);
}

class NotifyingWorkerTest : public ContainmentWorkerTest {
 protected:
  NotifyingWorkerTest() : ContainmentWorkerTest("cat > " + output_directory() + "/$FLOODGATE_EVENT-$FLOODGATE_INCIDENT.json") {}
  static std::string output_directory() {
    static const std::string directory = [] {
      const std::string path = ::testing::TempDir() + "/floodgate_worker_notify_" + std::to_string(::getpid());
      std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
      return path;
    }();
    return directory;
  }
  std::vector<std::string> outputs() {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(output_directory()))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST_F(NotifyingWorkerTest, NotifiesAFreezeOnceAndSuppressesARefreezeWithinTheInterval) {
  std::filesystem::remove_all(output_directory());
  std::filesystem::create_directories(output_directory());
  send("10.9.9.9", 6, k_start, "Q1");
  m_worker.run_once(k_start + 1s);
  m_worker.send_pending_notifications(k_start + 1s);
  const std::string first = only_incident(k_start + 1s).id;
  EXPECT_EQ(outputs(), std::vector<std::string>{"freeze-" + first + ".json"});

  // Unfrozen, then frozen again by the next burst: the unfreeze is told, the
  // second freeze is not (15m interval) but counted as suppressed.
  ASSERT_TRUE(m_store->unfreeze(policy::parse_canonical_source("client_address=10.9.9.9")->digest()));
  m_cache.refresh(k_start + 2s);
  m_worker.run_once(k_start + 2s);
  send("10.9.9.9", 6, k_start + 3s, "Q2");
  m_worker.run_once(k_start + 4s);
  m_worker.send_pending_notifications(k_start + 4s);
  EXPECT_EQ(outputs(), (std::vector<std::string>{"freeze-" + first + ".json", "unfreeze-" + first + ".json"}));
  auto listed = m_incidents->list(std::nullopt, true, k_start + 5s);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().notifications_suppressed, 1u);
  EXPECT_EQ(listed->front().notifications_sent, 0u);
}

}  // namespace
}  // namespace floodgate::milter
