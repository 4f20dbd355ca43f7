// RedisIncidentStore against a real redis-server: the shared
// IncidentStoreContract (the same answers as the memory store), plus what
// only Redis shows -- the key layout, expiries, one round trip per record(),
// attacker text kept out of key names, two instances adding to one
// incident, and Redis down or hung.
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containment/incident_store.hpp"
#include "incident_store_contract.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"

namespace floodgate::containment {
namespace {

using namespace std::chrono_literals;
using contract::IncidentStoreContract;
using floodgate::testing::RedisServer;
using ratelimit::CounterFailure;

constexpr std::chrono::milliseconds k_timeout{200};

ratelimit::RedisFreezeStoreOptions options_for(const std::string& url,
                                               std::chrono::milliseconds command_timeout = k_timeout) {
  return ratelimit::RedisFreezeStoreOptions{.endpoint = ratelimit::parse_redis_url(url).value(),
                                            .password = std::nullopt,
                                            .connect_timeout = k_timeout,
                                            .command_timeout = command_timeout,
                                            .key_prefix = "fg"};
}

class RedisBackend final : public contract::IncidentStoreBackend {
 public:
  std::unique_ptr<IncidentStore> make(IncidentLimits limits) override {
    // Generous: a 10,000 message batch under the sanitizers takes a while.
    return make_redis_incident_store(options_for(m_server.url(), 5s), limits);
  }

 private:
  RedisServer m_server;
};

INSTANTIATE_TEST_SUITE_P(Redis, IncidentStoreContract,
                         ::testing::Values(contract::BackendFactory{
                             "Redis", [] { return std::make_unique<RedisBackend>(); }}),
                         contract::backend_name);

TimePoint real_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

Incident opener(TimePoint opened, std::chrono::milliseconds ttl, std::uint64_t random_bits = 1) {
  Incident incident;
  incident.id = make_incident_id(opened, random_bits);
  incident.source = "header:x-php-originating-script=evil\r\nKEYS *\n{freezes}:all";
  incident.source_digest = "0123456789abcdef";
  incident.rule = "manual";
  incident.reason = "frozen by hand";
  incident.identity = {{"header:x-php-originating-script", "evil\r\nKEYS *"}};
  incident.opened_by = "floodgatectl";
  incident.opened = opened;
  incident.until = opened + ttl;
  return incident;
}

IncidentMessage message(TimePoint time, std::string queue_id, std::string subject = "Buy now") {
  IncidentMessage m;
  m.time = time;
  m.queue_id = std::move(queue_id);
  m.outcome = MessageOutcome::Quarantined;
  m.recipients = 1;
  m.recipient_addresses = {"victim:{freezes}:x@example.net"};
  m.sender = "*:incident:*";
  m.subject = std::move(subject);
  m.fingerprint = "exact:ab";
  return m;
}

std::vector<std::string> strings_of(const redisReply& reply) {
  std::vector<std::string> items;
  for (std::size_t i = 0; i < reply.elements; ++i) items.emplace_back(reply.element[i]->str, reply.element[i]->len);
  return items;
}

std::set<std::string> all_keys(const RedisServer& server) {
  auto raw = server.raw();
  const auto keys = strings_of(*RedisServer::run(*raw, {"KEYS", "*"}));
  return {keys.begin(), keys.end()};
}

TEST(RedisIncidentStore, KeysFollowTheDocumentedLayout) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url()), {});
  const TimePoint now = real_now();
  const Incident incident = opener(now, 1h);
  ASSERT_TRUE(store->open(incident).has_value());
  ASSERT_TRUE(store->record(incident.id, std::vector<IncidentMessage>{message(now, "4AbC1")}).has_value());
  ASSERT_TRUE(store->record_queue_actions(incident.id, std::vector<QueueAction>{{"4AbC1", "held"}}).has_value());
  ASSERT_EQ(store->claim_notification(incident.source_digest, NotificationEvent::Freeze, 60s, now), true);

  const std::string p = "fg:{freezes}:incident:" + incident.id;
  EXPECT_EQ(all_keys(server), (std::set<std::string>{p + ":meta", p + ":recipients", p + ":domains", p + ":subjects",
                                                     p + ":fingerprints", p + ":senders", p + ":queue",
                                                     p + ":queue_actions", "fg:{freezes}:incidents",
                                                     "fg:{freezes}:notified:0123456789abcdef:freeze"}));
  auto raw = server.raw();
  const auto score = RedisServer::run(*raw, {"ZSCORE", "fg:{freezes}:incidents", incident.id});
  EXPECT_EQ(std::string(score->str, score->len), std::to_string(now.time_since_epoch().count()));
  const auto queued = RedisServer::run(*raw, {"HGET", p + ":queue", "4AbC1"});
  EXPECT_EQ(std::string(queued->str, queued->len), "quarantined " + std::to_string(now.time_since_epoch().count()));
  const auto action = RedisServer::run(*raw, {"HGET", p + ":queue_actions", "4AbC1"});
  EXPECT_EQ(std::string(action->str, action->len), "68656c64");  // "held"
  const auto messages = RedisServer::run(*raw, {"HGET", p + ":meta", "messages"});
  EXPECT_EQ(std::string(messages->str, messages->len), "1");
}

TEST(RedisIncidentStore, EveryKeyExpiresRetentionAfterTheFreezeEnds) {
  RedisServer server;
  IncidentLimits limits;
  limits.retention = 24h;
  auto store = make_redis_incident_store(options_for(server.url()), limits);
  const TimePoint now = real_now();
  const Incident incident = opener(now, 1h);
  // Recorded before the open: the newest message stands for the end.
  ASSERT_TRUE(store->record(incident.id, std::vector<IncidentMessage>{message(now, "4AbC1")}).has_value());
  auto raw = server.raw();
  const std::string meta = "fg:{freezes}:incident:" + incident.id + ":meta";
  const auto early = RedisServer::run(*raw, {"PTTL", meta})->integer;
  EXPECT_GT(early, (24h - 1min) / 1ms);
  EXPECT_LE(early, 24h / 1ms);

  ASSERT_TRUE(store->open(incident).has_value());
  ASSERT_TRUE(store->count_notification(incident.id, NotificationCount::Sent).has_value());
  for (const auto& key : all_keys(server)) {
    const auto ttl = RedisServer::run(*raw, {"PTTL", key})->integer;
    EXPECT_GT(ttl, (25h - 1min) / 1ms) << key << ": got a TTL of " << ttl << " ms, want until + retention";
    EXPECT_LE(ttl, 25h / 1ms) << key;
  }

  ASSERT_EQ(store->close(incident.id, "unfrozen", now + 10min), true);
  const auto closed = RedisServer::run(*raw, {"PTTL", meta})->integer;
  EXPECT_GT(closed, (24h + 9min) / 1ms) << "the close did not set the expiry to closed + retention";
  EXPECT_LE(closed, (24h + 10min) / 1ms);
  const auto index = RedisServer::run(*raw, {"PTTL", "fg:{freezes}:incidents"})->integer;
  EXPECT_GT(index, (25h - 1min) / 1ms) << "the index outlives its incidents";
}

TEST(RedisIncidentStore, RecordIsOneRoundTripForABatch) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url(), 5s), {});
  const TimePoint now = real_now();
  std::vector<IncidentMessage> batch;
  for (int i = 0; i < 500; ++i) batch.push_back(message(now, "Q" + std::to_string(i), "s" + std::to_string(i % 7)));
  auto raw = server.raw();
  RedisServer::run(*raw, {"CONFIG", "RESETSTAT"});
  ASSERT_TRUE(store->record(make_incident_id(now, 2), batch).has_value());
  const auto info = RedisServer::run(*raw, {"INFO", "all"});
  const std::string stats(info->str, info->len);
  // One connection, one command on it (the script's own commands are
  // listed too, as called from EVAL; CONFIG and INFO are the test's).
  EXPECT_NE(stats.find("total_connections_received:1\r\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("cmdstat_eval:calls=1,"), std::string::npos) << stats;
  for (const std::string client_command : {"cmdstat_select", "cmdstat_auth", "cmdstat_multi", "cmdstat_evalsha"}) {
    EXPECT_EQ(stats.find(client_command), std::string::npos) << stats;
  }
}

TEST(RedisIncidentStore, AttackerTextNeverBecomesAKeyOrAQueueIdField) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url()), {});
  const TimePoint now = real_now();
  const Incident incident = opener(now, 1h);
  ASSERT_TRUE(store->open(incident).has_value());
  std::vector<IncidentMessage> batch{message(now, "4AbC1"), message(now, "x:{freezes}:all"),
                                     message(now, "4AbC2\r\n"), message(now, "../4AbC3")};
  ASSERT_TRUE(store->record(incident.id, batch).has_value());
  ASSERT_TRUE(store->record_queue_actions(incident.id, std::vector<QueueAction>{{"* 1", "held"}}).has_value());
  for (const auto& key : all_keys(server)) {
    for (const std::string hostile : {"\r", "\n", "KEYS", "victim", "evil", " "}) {
      EXPECT_EQ(key.find(hostile), std::string::npos) << "key '" << key << "' holds '" << hostile << "'";
    }
  }
  auto raw = server.raw();
  const auto fields = strings_of(*RedisServer::run(*raw, {"HKEYS", "fg:{freezes}:incident:" + incident.id + ":queue"}));
  EXPECT_EQ(fields, std::vector<std::string>{"4AbC1"});
  const auto got = store->get(incident.id);
  ASSERT_TRUE(got.has_value() && got->has_value());
  EXPECT_EQ((*got)->messages, 4u) << "messages with odd queue ids are still counted";
  EXPECT_EQ((*got)->source, incident.source);
  EXPECT_EQ((*got)->identity, incident.identity);
}

TEST(RedisIncidentStore, TwoInstancesAddToOneIncident) {
  RedisServer server;
  auto opener_instance = make_redis_incident_store(options_for(server.url()), {});
  auto other_instance = make_redis_incident_store(options_for(server.url()), {});
  const TimePoint now = real_now();
  const Incident incident = opener(now, 1h);
  ASSERT_TRUE(opener_instance->open(incident).has_value());
  ASSERT_TRUE(opener_instance->record(incident.id, std::vector<IncidentMessage>{message(now, "4A1")}).has_value());
  ASSERT_TRUE(other_instance->record(incident.id, std::vector<IncidentMessage>{message(now + 1s, "5B1")}).has_value());
  const auto listed = other_instance->list(std::nullopt, true, now + 2s);
  ASSERT_TRUE(listed.has_value()) << listed.error().detail;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().messages, 2u);
  EXPECT_EQ(listed->front().queue_ids.size(), 2u);
  EXPECT_EQ(other_instance->close(incident.id, "unfrozen", now + 3s), true);
  EXPECT_EQ(opener_instance->close(incident.id, "expired", now + 4s), false);
}

TEST(RedisIncidentStore, ListDropsIndexMembersWhoseIncidentIsGone) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url()), {});
  const TimePoint now = real_now();
  const Incident kept = opener(now, 1h, 1);
  const Incident gone = opener(now, 1h, 2);
  ASSERT_TRUE(store->open(kept).has_value());
  ASSERT_TRUE(store->open(gone).has_value());
  auto raw = server.raw();
  RedisServer::run(*raw, {"DEL", "fg:{freezes}:incident:" + gone.id + ":meta"});
  RedisServer::run(*raw, {"ZADD", "fg:{freezes}:incidents", "1", "../../not-an-id"});
  const auto listed = store->list(std::nullopt, false, now);
  ASSERT_TRUE(listed.has_value()) << listed.error().detail;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, kept.id);
  const auto members = strings_of(*RedisServer::run(*raw, {"ZRANGE", "fg:{freezes}:incidents", "0", "-1"}));
  EXPECT_EQ(members, std::vector<std::string>{kept.id});
}

TEST(RedisIncidentStore, FailsQuicklyWhenRedisIsDown) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url()), {});
  server.kill();
  const TimePoint now = real_now();
  const auto start = std::chrono::steady_clock::now();
  const auto listed = store->list(std::nullopt, false, now);
  const auto got = store->get(make_incident_id(now, 1));
  const auto recorded = store->record(make_incident_id(now, 1), std::vector<IncidentMessage>{message(now, "4A1")});
  const auto claimed = store->claim_notification("0123456789abcdef", NotificationEvent::Freeze, 60s, now);
  ASSERT_FALSE(listed.has_value());
  ASSERT_FALSE(got.has_value());
  ASSERT_FALSE(recorded.has_value());
  ASSERT_FALSE(claimed.has_value());
  EXPECT_EQ(listed.error().kind, CounterFailure::Kind::Unavailable) << listed.error().detail;
  EXPECT_EQ(recorded.error().kind, CounterFailure::Kind::Unavailable) << recorded.error().detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6 * k_timeout);
}

TEST(RedisIncidentStore, TimesOutWhenRedisHangs) {
  RedisServer server;
  auto store = make_redis_incident_store(options_for(server.url()), {});
  server.pause();
  const TimePoint now = real_now();
  const auto start = std::chrono::steady_clock::now();
  const auto closed = store->close(make_incident_id(now, 1), "unfrozen", now);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  server.resume();
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().kind, CounterFailure::Kind::Timeout) << closed.error().detail;
  EXPECT_LT(elapsed, 2 * k_timeout + 100ms);
}

}  // namespace
}  // namespace floodgate::containment
