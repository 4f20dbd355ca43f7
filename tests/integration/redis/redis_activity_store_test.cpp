// RedisActivityStore against a real redis-server: the same answers as the
// in-process store for the same traffic (several sources, several minutes,
// every order), unique recipients as a union across minutes, key expiry,
// hostile source bytes, two instances adding up, the identity filter, the
// history cap, what it refuses, and Redis down, hung or password-protected.
//
// Redis expires keys by its own clock, so these tests put their traffic
// in the minutes just before the real time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containment/activity.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"

namespace floodgate::containment {
namespace {

using floodgate::testing::RedisServer;
using floodgate::testing::RedisServerOptions;
using policy::IdentityPart;
using ratelimit::CounterFailure;
using ratelimit::TimePoint;
using Kind = IdentityPart::Kind;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using namespace std::string_view_literals;

constexpr milliseconds k_timeout{200};
constexpr seconds k_history{3600};

// 30 s into the current minute of the real clock.
TimePoint now_in_minute() {
  const auto now = std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
  return std::chrono::floor<std::chrono::minutes>(now) + seconds{30};
}

// `minutes_ago` whole minutes before `now`, `second` into that minute.
TimePoint minutes_before(TimePoint now, int minutes_ago, int second = 10) {
  return std::chrono::floor<std::chrono::minutes>(now) - std::chrono::minutes{minutes_ago} + seconds{second};
}

ratelimit::RedisFreezeStoreOptions options_for(std::string_view url) {
  return ratelimit::RedisFreezeStoreOptions{.endpoint = ratelimit::parse_redis_url(url).value(),
                                            .password = std::nullopt,
                                            .connect_timeout = k_timeout,
                                            .command_timeout = k_timeout,
                                            .key_prefix = "fg"};
}

IdentityPart part(Kind kind, std::string name = {}) {
  IdentityPart part;
  part.kind = kind;
  part.name = std::move(name);
  return part;
}

policy::Config config_with_identities() {
  policy::Config config;
  config.identities.push_back({"client", {part(Kind::ClientAddress)}, {}});
  config.identities.push_back({"sasl_user", {part(Kind::SaslUser)}, {}});
  config.identities.push_back(
      {"php_script", {part(Kind::Header, "x-php-originating-script"), part(Kind::ClientAddress)}, {}});
  return config;
}

policy::MessageFacts message(std::string client, std::string sasl_user, std::string script,
                             std::vector<std::string> recipients) {
  policy::MessageFacts facts;
  facts.client_address = std::move(client);
  facts.client_ip = policy::IpAddress::parse(facts.client_address);
  facts.sasl_user = std::move(sasl_user);
  facts.sender = "www-data@example.org";
  if (!script.empty()) facts.headers["x-php-originating-script"] = std::move(script);
  facts.recipients = std::move(recipients);
  return facts;
}

struct Event {
  policy::MessageFacts facts;
  int minutes_ago;
};

// Some traffic over five minutes: a busy script, a SASL user mailing many
// different people, a quiet client, repeats across minutes.
std::vector<Event> traffic() {
  std::vector<Event> events;
  for (int i = 0; i < 12; ++i) {
    events.push_back({message("192.0.2.10", "", "12:contact.php", {"victim" + std::to_string(i % 4) + "@example.net"}),
                      i % 5});
  }
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> recipients;
    for (int r = 0; r < 15; ++r) recipients.push_back("Person" + std::to_string(i * 15 + r) + "@Example.COM");
    events.push_back({message("198.51.100.7", "bob", "", recipients), i});
  }
  events.push_back({message("203.0.113.5", "", "", {"a@example.org", "b@example.org"}), 0});
  events.push_back({message("203.0.113.5", "", "", {"a@example.org"}), 3});
  return events;
}

void feed(ActivityRecorder& recorder, const policy::Config& config, const std::vector<Event>& events, TimePoint now) {
  for (const auto& event : events) {
    recorder.add(config, event.facts, event.facts.recipients.size(), minutes_before(now, event.minutes_ago));
  }
}

std::string describe(const std::vector<TopEntry>& entries) {
  std::string text;
  for (const auto& e : entries) {
    text += e.identity + " " + e.source + " m=" + std::to_string(e.messages) + " r=" + std::to_string(e.recipients) +
            " u=" + std::to_string(e.unique_recipients) + "\n";
  }
  return text;
}

bool same(const std::vector<TopEntry>& a, const std::vector<TopEntry>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const TopEntry& x, const TopEntry& y) {
    return x.identity == y.identity && x.source == y.source && x.source_digest == y.source_digest &&
           x.messages == y.messages && x.recipients == y.recipients && x.unique_recipients == y.unique_recipients;
  });
}

std::vector<std::string> keys(const RedisServer& server) {
  auto raw = server.raw();
  auto reply = RedisServer::run(*raw, {"KEYS", "*"});
  std::vector<std::string> names;
  for (std::size_t i = 0; i < reply->elements; ++i) names.emplace_back(reply->element[i]->str, reply->element[i]->len);
  std::sort(names.begin(), names.end());
  return names;
}

// fg:{top}:<minute>:(messages|recipients|names|u:<digest>), nothing else.
// (By hand: std::regex trips -Wmaybe-uninitialized in g++ 12's sanitizer build.)
bool is_activity_key(std::string_view key) {
  constexpr std::string_view prefix = "fg:{top}:";
  if (!key.starts_with(prefix)) return false;
  key.remove_prefix(prefix.size());
  const auto colon = key.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  if (!std::all_of(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(colon),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  key.remove_prefix(colon + 1);
  if (key == "messages" || key == "recipients" || key == "names") return true;
  return key.starts_with("u:") && is_source_digest(key.substr(2));
}

ActivityStore::Delta delta(std::int64_t minute, std::string source, std::uint64_t messages,
                           std::vector<std::string> addresses) {
  policy::SourceSpec spec{{policy::SourcePart{part(Kind::ClientAddress), source}}};
  const auto count = addresses.size();
  return ActivityStore::Delta{.minute = minute,
                              .identity = "client",
                              .source = spec.canonical(),
                              .source_digest = spec.digest(),
                              .messages = messages,
                              .recipients = count,
                              .recipient_addresses = std::move(addresses)};
}

TEST(RedisActivityStore, FlushThenTopMatchesTheMemoryStore) {
  RedisServer server;
  const auto config = config_with_identities();
  const TimePoint now = now_in_minute();
  auto redis = make_redis_activity_store(options_for(server.url()), k_history);
  auto memory = make_memory_activity_store();
  ActivityRecorder to_redis;
  ActivityRecorder to_memory;
  feed(to_redis, config, traffic(), now);
  feed(to_memory, config, traffic(), now);
  ASSERT_TRUE(to_redis.flush(*redis));
  ASSERT_TRUE(to_memory.flush(*memory));

  for (const TopOrder order : {TopOrder::Messages, TopOrder::Recipients, TopOrder::UniqueRecipients}) {
    for (const seconds window : {seconds{60}, seconds{180}, seconds{600}}) {
      for (const std::size_t limit : {std::size_t{1}, std::size_t{3}, std::size_t{20}}) {
        auto from_redis = redis->top(window, order, limit, now);
        auto from_memory = memory->top(window, order, limit, now);
        ASSERT_TRUE(from_redis) << from_redis.error().detail;
        ASSERT_TRUE(from_memory);
        EXPECT_TRUE(same(*from_redis, *from_memory))
            << "by " << to_string(order) << ", window " << window.count() << "s, limit " << limit << ": got\n"
            << describe(*from_redis) << "want\n"
            << describe(*from_memory);
      }
    }
  }
  auto full = redis->top(seconds{600}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->size(), 5u) << describe(*full);  // 3 clients, 1 script, 1 SASL user
  for (const auto& identity : {"client", "sasl_user", "php_script"}) {
    auto from_redis = redis->top_for_identity(identity, seconds{600}, TopOrder::Recipients, 2, now);
    auto from_memory = memory->top_for_identity(identity, seconds{600}, TopOrder::Recipients, 2, now);
    ASSERT_TRUE(from_redis) << from_redis.error().detail;
    ASSERT_TRUE(from_memory);
    EXPECT_TRUE(same(*from_redis, *from_memory)) << identity << ": got\n"
                                                 << describe(*from_redis) << "want\n"
                                                 << describe(*from_memory);
    for (const auto& entry : *from_redis) EXPECT_EQ(entry.identity, identity);
  }
}

TEST(RedisActivityStore, UniqueRecipientsAreAUnionAcrossMinutes) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  const TimePoint now = now_in_minute();
  const std::int64_t minute = activity_minute(now);
  ASSERT_TRUE(store->add({delta(minute - 1, "10.0.0.1", 2, {"a@x", "b@x"})}));
  ASSERT_TRUE(store->add({delta(minute, "10.0.0.1", 2, {"b@x", "c@x"})}));
  auto top = store->top(seconds{120}, TopOrder::UniqueRecipients, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].messages, 4u);
  EXPECT_EQ((*top)[0].recipients, 4u);
  EXPECT_EQ((*top)[0].unique_recipients, 3u) << "got " << (*top)[0].unique_recipients
                                              << " unique recipients, want 3 (b@x in both minutes)";
  auto current = store->top(seconds{60}, TopOrder::UniqueRecipients, 20, now);
  ASSERT_TRUE(current);
  ASSERT_EQ(current->size(), 1u);
  EXPECT_EQ((*current)[0].unique_recipients, 2u);
}

TEST(RedisActivityStore, KeysExpireHistoryPlusTwoMinutesAfterTheirMinute) {
  RedisServer server;
  constexpr seconds history{600};
  auto store = make_redis_activity_store(options_for(server.url()), history);
  const TimePoint now = now_in_minute();
  const std::int64_t minute = activity_minute(now);
  ASSERT_TRUE(store->add({delta(minute - 2, "10.0.0.1", 1, {"a@x"}), delta(minute, "10.0.0.2", 1, {"a@x"})}));
  const std::vector<std::string> found = keys(server);
  ASSERT_EQ(found.size(), 8u) << "got " << found.size() << " keys, want 2 buckets x 3 + 2 HLLs";
  auto raw = server.raw();
  const auto real_now_s =
      std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& key : found) {
    const std::int64_t bucket = key.find(":" + std::to_string(minute) + ":") != std::string::npos ? minute : minute - 2;
    const long long want = (bucket + 1) * 60 + history.count() + 120 - real_now_s;
    const long long ttl = RedisServer::run(*raw, {"TTL", key})->integer;
    EXPECT_NEAR(ttl, want, 2) << key << ": got TTL " << ttl << ", want " << want;
  }
}

TEST(RedisActivityStore, MinutesOlderThanHistoryAreNotKept) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), seconds{60});
  const TimePoint now = now_in_minute();
  // History 1m: a minute 5 minutes ago expired 2 minutes after history.
  ASSERT_TRUE(store->add({delta(activity_minute(now) - 5, "10.0.0.1", 1, {"a@x"})}));
  EXPECT_TRUE(keys(server).empty()) << "got keys for a minute past history + 2 minutes";
}

TEST(RedisActivityStore, WindowIsCappedAtHistory) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), seconds{180});
  const TimePoint now = now_in_minute();
  const std::int64_t minute = activity_minute(now);
  ASSERT_TRUE(store->add({delta(minute, "10.0.0.1", 1, {}), delta(minute - 2, "10.0.0.1", 1, {}),
                          delta(minute - 3, "10.0.0.1", 1, {})}));  // still in Redis: + 2 minutes
  auto top = store->top(seconds{3600}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].messages, 2u) << "got " << (*top)[0].messages << ", want the 3 minutes of history only";
}

TEST(RedisActivityStore, HostileSourceBytesRoundTripAndStayOutOfKeys) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  const TimePoint now = now_in_minute();
  std::string hostile = "client_address=10.0.0.1 header:x-php-originating-script=";
  hostile += "a\0b\r\n*3\r\n$3\r\nDEL\"}{\\u0000\xff\xfe\x1b[31m:{top}:*\0"sv;
  auto d = delta(activity_minute(now), "10.0.0.1", 3, {"evil\r\n@x", std::string("nul\0@x", 6)});
  d.source = hostile;
  ASSERT_TRUE(store->add({d}));
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].source, hostile);
  EXPECT_EQ((*top)[0].source.size(), hostile.size());
  EXPECT_EQ((*top)[0].unique_recipients, 2u);
  for (const auto& key : keys(server)) EXPECT_TRUE(is_activity_key(key)) << "unexpected key: " << key;
}

TEST(RedisActivityStore, TwoInstancesFlushingIntoOneRedisAddUp) {
  RedisServer server;
  const auto config = config_with_identities();
  const TimePoint now = now_in_minute();
  auto first_store = make_redis_activity_store(options_for(server.url()), k_history);
  auto second_store = make_redis_activity_store(options_for(server.url()), k_history);
  ActivityRecorder first;
  ActivityRecorder second;
  const auto web = [](std::vector<std::string> recipients) { return message("192.0.2.10", "", "", recipients); };
  first.add(config, web({"a@example.net", "b@example.net"}), 2, now);
  first.add(config, web({"a@example.net"}), 1, now);
  second.add(config, web({"A@example.net", "c@example.net"}), 2, now);
  second.add(config, web({"d@example.net"}), 1, minutes_before(now, 1));
  ASSERT_TRUE(first.flush(*first_store));
  ASSERT_TRUE(second.flush(*second_store));
  auto top = first_store->top(seconds{120}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  ASSERT_EQ(top->size(), 1u) << describe(*top);
  EXPECT_EQ((*top)[0].source, "client_address=192.0.2.10");
  EXPECT_EQ((*top)[0].messages, 4u);
  EXPECT_EQ((*top)[0].recipients, 6u);
  EXPECT_EQ((*top)[0].unique_recipients, 4u) << "a, b, c, d: got " << (*top)[0].unique_recipients;
}

TEST(RedisActivityStore, RefusesABadDigestAndWritesNothing) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  const std::int64_t minute = activity_minute(now_in_minute());
  auto bad = delta(minute, "10.0.0.1", 1, {"a@x"});
  bad.source_digest = "0123:*:messages!";
  auto added = store->add({delta(minute, "10.0.0.2", 1, {"a@x"}), bad});
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().kind, CounterFailure::Kind::Protocol);
  EXPECT_TRUE(keys(server).empty());
}

TEST(RedisActivityStore, IgnoresMembersThatAreNotDigestsAndUnnamedSourcesKeepTheirCounts) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  const TimePoint now = now_in_minute();
  const std::string bucket = "fg:{top}:" + std::to_string(activity_minute(now));
  auto raw = server.raw();
  RedisServer::run(*raw, {"ZINCRBY", bucket + ":messages", "7", "not a digest"});
  RedisServer::run(*raw, {"ZINCRBY", bucket + ":messages", "5", "0123456789abcdef"});
  RedisServer::run(*raw, {"HSET", bucket + ":names", "0123456789abcdef", "{not json"});
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0].source_digest, "0123456789abcdef");
  EXPECT_EQ((*top)[0].source, "");
  EXPECT_EQ((*top)[0].messages, 5u);
}

TEST(RedisActivityStore, EmptyRedisGivesNoEntries) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  auto top = store->top(seconds{600}, TopOrder::UniqueRecipients, 20, now_in_minute());
  ASSERT_TRUE(top) << top.error().detail;
  EXPECT_TRUE(top->empty());
}

TEST(RedisActivityStore, AuthenticatesWithPasswordOnAnotherDb) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  auto options = options_for(server.url(2));
  options.endpoint.password.reset();
  options.password = "s3cret-pw";
  auto store = make_redis_activity_store(options, k_history);
  const TimePoint now = now_in_minute();
  ASSERT_TRUE(store->add({delta(activity_minute(now), "10.0.0.1", 1, {"a@x"})}));
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, now);
  ASSERT_TRUE(top) << top.error().detail;
  EXPECT_EQ(top->size(), 1u);
  auto raw = server.raw(2);
  EXPECT_EQ(RedisServer::run(*raw, {"DBSIZE"})->integer, 4) << "not written to db 2";
}

TEST(RedisActivityStore, FailsQuicklyWhenRedisIsDown) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  server.kill();
  const TimePoint now = now_in_minute();
  const auto start = steady_clock::now();
  auto added = store->add({delta(activity_minute(now), "10.0.0.1", 1, {"a@x"})});
  auto top = store->top(seconds{60}, TopOrder::Messages, 20, now);
  const auto elapsed = steady_clock::now() - start;
  ASSERT_FALSE(added);
  ASSERT_FALSE(top);
  EXPECT_EQ(added.error().kind, CounterFailure::Kind::Unavailable) << added.error().detail;
  EXPECT_EQ(top.error().kind, CounterFailure::Kind::Unavailable) << top.error().detail;
  EXPECT_LT(elapsed, 3 * k_timeout);
}

TEST(RedisActivityStore, TimesOutWhenRedisHangs) {
  RedisServer server;
  auto store = make_redis_activity_store(options_for(server.url()), k_history);
  const TimePoint now = now_in_minute();
  server.pause();
  const auto start = steady_clock::now();
  auto added = store->add({delta(activity_minute(now), "10.0.0.1", 1, {"a@x"})});
  const auto elapsed = steady_clock::now() - start;
  server.resume();
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().kind, CounterFailure::Kind::Timeout) << added.error().detail;
  EXPECT_LT(elapsed, 2 * k_timeout + milliseconds{100});
}

}  // namespace
}  // namespace floodgate::containment
