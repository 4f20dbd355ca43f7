// RedisFreezeStore against a real redis-server: exact round trip of a
// hostile source, two store instances (two daemons) sharing freezes,
// refreeze, expiry and cleanup, unfreeze, what it refuses, malformed data,
// and Redis down, hung or password-protected.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/freeze_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"

namespace floodgate::ratelimit {
namespace {

using floodgate::testing::RedisServer;
using floodgate::testing::RedisServerOptions;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr milliseconds k_timeout{200};
constexpr std::int64_t k_t0 = 1'700'000'000'000;
const std::string k_hash = "fg:{freezes}:all";

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

RedisFreezeStoreOptions options_for(std::string_view url, std::string key_prefix = "fg") {
  return RedisFreezeStoreOptions{.endpoint = parse_redis_url(url).value(),
                                 .password = std::nullopt,
                                 .connect_timeout = k_timeout,
                                 .command_timeout = k_timeout,
                                 .key_prefix = std::move(key_prefix)};
}

Freeze make_freeze(std::string digest, std::int64_t since_ms, std::int64_t until_ms,
                   std::string reason = "same_content_rcpts_per_client=101>100 (+20)") {
  return Freeze{.source = "client=10.1.2.3",
                .source_digest = std::move(digest),
                .rule = "same_content_rcpts_per_client",
                .reason = std::move(reason),
                .action = policy::Action::Quarantine,
                .since = at_ms(since_ms),
                .until = at_ms(until_ms),
                .incident = "20261127-120000-0a1b2c3d"};
}

long long hash_length(const RedisServer& server, const std::string& key = k_hash) {
  auto raw = server.raw();
  return RedisServer::run(*raw, {"HLEN", key})->integer;
}

TEST(RedisFreezeStore, RoundTripsAHostileSourceExactly) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 600'000);
  using namespace std::string_literals;  // "\0" inside ""s literals is a real NUL byte
  freeze.source =
      "client=10.1.2.3 sasl=bob the builder header:X-PHP-Originating-Script="
      "12:a=b\r\nX-Injected: 1\n\x80\xff\xc3( \0nul\0 \"}{\\"s;
  ASSERT_EQ(freeze.source.size(), 106u);
  freeze.rule = "manual";
  freeze.reason = "ops: \"spam\" wave\n\ttab \\ back \0 nul üñí"s;
  freeze.action = policy::Action::Reject;
  ASSERT_EQ(store->freeze(freeze, at_ms(k_t0)), true);

  const auto active = store->active(at_ms(k_t0 + 1));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front().source, freeze.source);
  EXPECT_EQ(active->front(), freeze);
}

TEST(RedisFreezeStore, StoresOneJsonValuePerDigestInTheSharedHash) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 600'000);
  freeze.action = policy::Action::Tempfail;
  ASSERT_EQ(store->freeze(freeze, at_ms(k_t0)), true);

  auto raw = server.raw();
  const auto keys = RedisServer::run(*raw, {"KEYS", "*"});
  ASSERT_EQ(keys->elements, 1u);
  EXPECT_EQ(std::string(keys->element[0]->str, keys->element[0]->len), k_hash);
  const auto value = RedisServer::run(*raw, {"HGET", k_hash, "0123456789abcdef"});
  ASSERT_EQ(value->type, REDIS_REPLY_STRING);
  const std::string text{value->str, value->len};
  EXPECT_NE(text.find(R"("source_hex":"636c69656e743d31302e312e322e33")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("action":"tempfail")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("since_ms":1700000000000)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("until_ms":1700000600000)"), std::string::npos) << text;
}

TEST(RedisFreezeStore, FreezeByOneInstanceIsEnforcedByAnother) {
  RedisServer server;
  auto first_daemon = make_redis_freeze_store(options_for(server.url()));
  auto second_daemon = make_redis_freeze_store(options_for(server.url()));
  const Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 600'000);
  ASSERT_EQ(first_daemon->freeze(freeze, at_ms(k_t0)), true);

  const auto seen = second_daemon->active(at_ms(k_t0 + 1'000));
  ASSERT_TRUE(seen.has_value()) << seen.error().detail;
  ASSERT_EQ(seen->size(), 1u) << "the second instance does not see the freeze";
  EXPECT_EQ(seen->front(), freeze);

  EXPECT_EQ(second_daemon->unfreeze("0123456789abcdef"), true);
  EXPECT_TRUE(first_daemon->active(at_ms(k_t0 + 2'000))->empty());
}

TEST(RedisFreezeStore, RefreezeKeepsTheFirstFreeze) {
  RedisServer server;
  auto first_daemon = make_redis_freeze_store(options_for(server.url()));
  auto second_daemon = make_redis_freeze_store(options_for(server.url()));
  const Freeze first = make_freeze("0123456789abcdef", k_t0, k_t0 + 600'000, "first");
  Freeze second = make_freeze("0123456789abcdef", k_t0 + 5, k_t0 + 900'000, "second");
  second.action = policy::Action::Reject;
  ASSERT_EQ(first_daemon->freeze(first, at_ms(k_t0)), true);
  EXPECT_EQ(second_daemon->freeze(second, at_ms(k_t0 + 5)), false);
  EXPECT_EQ(first_daemon->freeze(second, at_ms(k_t0 + 5)), false);
  const auto active = second_daemon->active(at_ms(k_t0 + 10));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front(), first) << "got reason " << active->front().reason << ", want first";
}

TEST(RedisFreezeStore, ExpiredFreezesAreDroppedAndRemovedFromRedis) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  ASSERT_EQ(store->freeze(make_freeze("aaaaaaaaaaaaaaaa", k_t0, k_t0 + 1'000), at_ms(k_t0)), true);
  ASSERT_EQ(store->freeze(make_freeze("bbbbbbbbbbbbbbbb", k_t0, k_t0 + 9'000), at_ms(k_t0)), true);
  EXPECT_EQ(store->active(at_ms(k_t0 + 999))->size(), 2u);
  EXPECT_EQ(hash_length(server), 2);

  const auto active = store->active(at_ms(k_t0 + 1'000));  // until is exclusive
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front().source_digest, "bbbbbbbbbbbbbbbb");
  EXPECT_EQ(hash_length(server), 1) << "the expired freeze is still in Redis";
}

TEST(RedisFreezeStore, ExpiredFreezeIsReplacedByANewOne) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  ASSERT_EQ(store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 1'000, "old"), at_ms(k_t0)), true);
  // Not cleaned up yet: nobody called active() since it expired.
  const Freeze again = make_freeze("0123456789abcdef", k_t0 + 1'000, k_t0 + 5'000, "again");
  EXPECT_EQ(store->freeze(again, at_ms(k_t0 + 1'000)), true);
  const auto active = store->active(at_ms(k_t0 + 1'001));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front(), again);
}

TEST(RedisFreezeStore, UnfreezeReportsWhetherItWasFrozen) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  ASSERT_EQ(store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
  EXPECT_EQ(store->unfreeze("fedcba9876543210"), false);
  EXPECT_EQ(store->unfreeze("0123456789abcdef"), true);
  EXPECT_EQ(store->unfreeze("0123456789abcdef"), false);
  EXPECT_TRUE(store->active(at_ms(k_t0))->empty());
  EXPECT_EQ(hash_length(server), 0);
}

TEST(RedisFreezeStore, ActiveIsSortedBySince) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  for (const auto& [digest, since] : std::vector<std::pair<std::string, std::int64_t>>{
           {"cccccccccccccccc", 30}, {"aaaaaaaaaaaaaaaa", 20}, {"bbbbbbbbbbbbbbbb", 10}}) {
    ASSERT_EQ(store->freeze(make_freeze(digest, k_t0 + since, k_t0 + 60'000), at_ms(k_t0)), true);
  }
  const auto active = store->active(at_ms(k_t0 + 100));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 3u);
  EXPECT_EQ((*active)[0].source_digest, "bbbbbbbbbbbbbbbb");
  EXPECT_EQ((*active)[1].source_digest, "aaaaaaaaaaaaaaaa");
  EXPECT_EQ((*active)[2].source_digest, "cccccccccccccccc");
}

TEST(RedisFreezeStore, RefusesABadDigestWithoutWritingAnything) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  for (const std::string bad : {"", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0",
                                "client=10.1.2.3", "0123456789abcde\n", "*"}) {
    const auto frozen = store->freeze(make_freeze(bad, k_t0, k_t0 + 60'000), at_ms(k_t0));
    ASSERT_FALSE(frozen.has_value()) << "digest '" << bad << "' was accepted";
    EXPECT_EQ(frozen.error().kind, CounterFailure::Kind::Protocol);
    const auto unfrozen = store->unfreeze(bad);
    ASSERT_FALSE(unfrozen.has_value()) << "digest '" << bad << "' was accepted by unfreeze";
    EXPECT_EQ(unfrozen.error().kind, CounterFailure::Kind::Protocol);
  }
  Freeze accept = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000);
  accept.action = policy::Action::Accept;
  const auto frozen = store->freeze(accept, at_ms(k_t0));
  ASSERT_FALSE(frozen.has_value());
  EXPECT_EQ(frozen.error().kind, CounterFailure::Kind::Protocol);

  auto raw = server.raw();
  EXPECT_EQ(RedisServer::run(*raw, {"DBSIZE"})->integer, 0);
}

TEST(RedisFreezeStore, SkipsAndRemovesMalformedValues) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  const Freeze good = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000);
  ASSERT_EQ(store->freeze(good, at_ms(k_t0)), true);
  auto raw = server.raw();
  // A well-formed value, and ones with one member wrong.
  const auto value = [](std::string_view source_hex, std::string_view action, std::string_view since_ms) {
    return R"({"source_hex":")" + std::string{source_hex} + R"(","rule":"r","reason":"x",)" +
           R"("action":")" + std::string{action} + R"(","since_ms":)" + std::string{since_ms} +
           R"(,"until_ms":9000000000000})";
  };
  const std::string well_formed = value("61", "reject", "1");
  RedisServer::run(*raw, {"HSET", k_hash, "1111111111111111", "not json"});
  RedisServer::run(*raw, {"HSET", k_hash, "2222222222222222", "[1,2]"});
  RedisServer::run(*raw, {"HSET", k_hash, "3333333333333333", value("zz", "reject", "1")});
  RedisServer::run(*raw, {"HSET", k_hash, "4444444444444444", value("61", "accept", "1")});
  RedisServer::run(*raw, {"HSET", k_hash, "5555555555555555", value("61", "reject", "\"1\"")});
  RedisServer::run(*raw, {"HSET", k_hash, "6666666666666666", value("61", "reject", "1.5")});
  RedisServer::run(*raw, {"HSET", k_hash, "NOT-A-DIGEST", well_formed});

  const auto active = store->active(at_ms(k_t0 + 1));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front(), good);
  EXPECT_EQ(hash_length(server), 1) << "malformed values were left in Redis";

  // A malformed value never blocks a new freeze of that digest.
  RedisServer::run(*raw, {"HSET", k_hash, "1111111111111111",
                          R"({"source_hex":"61","action":"reject","until_ms":9000000000000})"});
  EXPECT_EQ(store->freeze(make_freeze("1111111111111111", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
}

TEST(RedisFreezeStore, KeepsFreezesOfOtherPrefixesApart) {
  RedisServer server;
  auto production = make_redis_freeze_store(options_for(server.url(), "fg"));
  auto staging = make_redis_freeze_store(options_for(server.url(), "fg-staging"));
  ASSERT_EQ(production->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
  EXPECT_TRUE(staging->active(at_ms(k_t0))->empty());
  EXPECT_EQ(staging->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
}

TEST(RedisFreezeStore, KeepsReasonTextThatIsNotUtf8AsReplacementCharacters) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  Freeze freeze = make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000, "bad \xff byte");
  ASSERT_EQ(store->freeze(freeze, at_ms(k_t0)), true);
  const auto active = store->active(at_ms(k_t0 + 1));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ(active->front().reason, "bad \xef\xbf\xbd byte");
}

TEST(RedisFreezeStore, ConcurrentFreezesFromManyInstancesMakeExactlyOneNewFreeze) {
  RedisServer server;
  constexpr int k_instances = 8;
  std::atomic<int> created{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < k_instances; ++i) {
    threads.emplace_back([&, i] {
      auto store = make_redis_freeze_store(options_for(server.url()));
      const auto result = store->freeze(
          make_freeze("0123456789abcdef", k_t0 + i, k_t0 + 60'000, std::to_string(i)), at_ms(k_t0 + i));
      if (!result) {
        ++failed;
      } else if (*result) {
        ++created;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(created.load(), 1) << "got " << created.load() << " new freezes, want 1";
}

TEST(RedisFreezeStore, AuthenticatesWithPassword) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  auto from_url = make_redis_freeze_store(options_for(server.url(3)));
  ASSERT_EQ(from_url->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)), true);
  auto options = options_for(server.url(3));
  options.endpoint.password.reset();
  options.password = "s3cret-pw";
  auto from_options = make_redis_freeze_store(options);
  const auto active = from_options->active(at_ms(k_t0));
  ASSERT_TRUE(active.has_value()) << active.error().detail;
  EXPECT_EQ(active->size(), 1u);
  auto raw = server.raw(3);
  EXPECT_EQ(RedisServer::run(*raw, {"HLEN", k_hash})->integer, 1) << "not written to db 3";
}

TEST(RedisFreezeStore, FailsClearlyWithWrongPassword) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  auto options = options_for(server.url());
  options.password = "not-the-password";
  auto store = make_redis_freeze_store(options);
  const auto result = store->active(at_ms(k_t0));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_NE(result.error().detail.find("AUTH"), std::string::npos) << result.error().detail;
  EXPECT_EQ(result.error().detail.find("not-the-password"), std::string::npos);
}

TEST(RedisFreezeStore, FailsQuicklyWhenRedisIsDown) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  ASSERT_TRUE(store->active(at_ms(k_t0)).has_value());
  server.kill();
  const auto start = steady_clock::now();
  const auto frozen = store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0));
  const auto unfrozen = store->unfreeze("0123456789abcdef");
  const auto active = store->active(at_ms(k_t0));
  const auto elapsed = steady_clock::now() - start;
  ASSERT_FALSE(frozen.has_value());
  ASSERT_FALSE(unfrozen.has_value());
  ASSERT_FALSE(active.has_value());
  EXPECT_EQ(frozen.error().kind, CounterFailure::Kind::Unavailable) << frozen.error().detail;
  EXPECT_EQ(active.error().kind, CounterFailure::Kind::Unavailable) << active.error().detail;
  EXPECT_LT(elapsed, 3 * k_timeout) << active.error().detail;
}

TEST(RedisFreezeStore, TimesOutWhenRedisHangs) {
  RedisServer server;
  auto store = make_redis_freeze_store(options_for(server.url()));
  server.pause();
  for (const bool freezing : {true, false}) {
    const auto start = steady_clock::now();
    const auto result =
        freezing
            ? store->freeze(make_freeze("0123456789abcdef", k_t0, k_t0 + 60'000), at_ms(k_t0)).map([](bool) {
                return 0;
              })
            : store->active(at_ms(k_t0)).map([](const auto&) { return 0; });
    const auto elapsed = steady_clock::now() - start;
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().kind, CounterFailure::Kind::Timeout) << result.error().detail;
    EXPECT_GE(elapsed, k_timeout - milliseconds{20});
    EXPECT_LT(elapsed, 2 * k_timeout + milliseconds{100}) << result.error().detail;
  }
  server.resume();
}

}  // namespace
}  // namespace floodgate::ratelimit
