// Redis Sentinel against real servers (SentinelGroup: master, replica, three
// sentinels): the counter store finds the master through the sentinels,
// skips a sentinel that is down or names a replica, follows a failover
// without being recreated (its pooled connections to the demoted master are
// dropped), and a replica's -READONLY is a failure that drops the connection.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/redis_counter_store.hpp"
#include "ratelimit/freeze_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"
#include "sentinel_group.hpp"

namespace floodgate::ratelimit {
namespace {

using floodgate::testing::RedisServer;
using floodgate::testing::RedisServerOptions;
using floodgate::testing::RedisServerRole;
using floodgate::testing::SentinelGroup;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr seconds k_ready_patience{30};
// How long a failover may take to be followed, from SENTINEL FAILOVER to
// the first count written on the promoted replica.
constexpr seconds k_follow_patience{15};

TimePoint wall_now() { return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now()); }

policy::CounterRequest sum(std::string key) {
  return policy::CounterRequest{.key = std::move(key), .kind = policy::CounterKind::Sum,
                                .window = seconds{60}, .amount = 1, .members = {}};
}

std::unique_ptr<RedisCounterStore> store_via(std::vector<std::string> sentinels, const std::string& master,
                                             unsigned pool_size = 4) {
  policy::RedisSettings settings;
  settings.url = "redis://127.0.0.1:1/0";  // host and port unused with Sentinel
  settings.sentinel.master_name = master;
  settings.sentinel.addresses = std::move(sentinels);
  auto endpoint = redis_endpoint_from_settings(settings);
  if (!endpoint) throw std::runtime_error(endpoint.error());
  return std::make_unique<RedisCounterStore>(RedisCounterStoreOptions{.endpoint = std::move(*endpoint),
                                                                      .password = std::nullopt,
                                                                      .connect_timeout = milliseconds{300},
                                                                      .command_timeout = milliseconds{300},
                                                                      .pool_size = pool_size});
}

RedisServerRole replica_of(const RedisServer& master) {
  RedisServerRole role;
  role.extra_args = {"--replicaof", "127.0.0.1", std::to_string(master.port())};
  return role;
}

// A call's requests; apply() takes a span, which a braced list cannot become.
CounterResult apply(CounterStore& store, std::vector<policy::CounterRequest> requests) {
  return store.apply(requests, wall_now());
}

bool has_field(const RedisServer& server, const std::string& key, const std::string& field) {
  auto raw = server.raw();
  return RedisServer::run(*raw, {"HEXISTS", key, field})->integer == 1;
}

bool has_key(const RedisServer& server, const std::string& key) {
  auto raw = server.raw();
  return RedisServer::run(*raw, {"EXISTS", key})->integer == 1;
}

TEST(RedisSentinel, CountsOnTheMasterTheSentinelsNameSkippingOneThatIsDown) {
  SentinelGroup group;
  group.wait_ready(k_ready_patience);
  auto addresses = group.sentinel_addresses();
  addresses.insert(addresses.begin(), "127.0.0.1:1");  // nobody listens there
  auto store = store_via(addresses, group.master_name());
  const std::vector<policy::CounterRequest> message{sum("fg:{s}:msgs:60")};
  const auto first = store->apply(message, wall_now());
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  EXPECT_EQ(store->apply(message, wall_now()).value(), CounterValues{2});
  EXPECT_TRUE(has_key(group.data(0), "fg:{s}:msgs:60"));
}

TEST(RedisSentinel, UnknownMasterNameFailureSaysWhatEachSentinelAnswered) {
  SentinelGroup group;
  auto store = store_via(group.sentinel_addresses(), "no-such-master");
  const auto result = apply(*store, {sum("fg:{s}:msgs:60")});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  std::string want = "no master 'no-such-master' from the sentinels: ";
  for (int i = 0; i < SentinelGroup::k_sentinels; ++i) {
    if (i > 0) want += "; ";
    want += "sentinel 127.0.0.1:" + std::to_string(group.sentinel(i).port()) +
            ": does not know master 'no-such-master'";
  }
  EXPECT_EQ(result.error().detail, want);
}

TEST(RedisSentinel, RefusesAMasterWhoseRoleIsReplica) {
  // A sentinel that names a replica, as one may for a moment after a
  // failover: here one that was told to monitor the replica.
  RedisServer master;
  RedisServer replica{RedisServerOptions{}, replica_of(master)};
  RedisServerRole stale_role;
  stale_role.config_lines = "sentinel monitor stale 127.0.0.1 " + std::to_string(replica.port()) + " 1\n";
  stale_role.sentinel = true;
  RedisServer stale_sentinel{RedisServerOptions{}, stale_role};
  auto store = store_via({"127.0.0.1:" + std::to_string(stale_sentinel.port())}, "stale");
  const auto result = apply(*store, {sum("fg:{s}:msgs:60")});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_EQ(result.error().detail, "no master 'stale' from the sentinels: sentinel 127.0.0.1:" +
                                       std::to_string(stale_sentinel.port()) + " named 127.0.0.1:" +
                                       std::to_string(replica.port()) + ", whose ROLE is slave, not master");
  EXPECT_EQ(store->open_connections(), 0u);
}

TEST(RedisSentinel, ReadonlyReplyFromAReplicaIsAFailureThatDropsTheConnection) {
  RedisServer master;
  RedisServer replica{RedisServerOptions{}, replica_of(master)};
  RedisCounterStore store{RedisCounterStoreOptions{
      .endpoint = parse_redis_url("redis://127.0.0.1:" + std::to_string(replica.port())).value(),
      .password = std::nullopt, .connect_timeout = milliseconds{300}, .command_timeout = milliseconds{300},
      .pool_size = 2}};
  const auto result = apply(store, {sum("fg:{s}:msgs:60")});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_NE(result.error().detail.find("READONLY"), std::string::npos) << result.error().detail;
  EXPECT_EQ(store.open_connections(), 0u);
}

TEST(RedisSentinel, CounterStoreFollowsAFailoverWithoutBeingRecreated) {
  SentinelGroup group;
  group.wait_ready(k_ready_patience);
  auto store = store_via(group.sentinel_addresses(), group.master_name());
  const std::string counter = "fg:{s}:msgs:60";

  // Several threads, so that the pool holds several connections to the old
  // master when it is demoted.
  constexpr int k_threads = 4;
  constexpr int k_each = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < k_each; ++i) ASSERT_TRUE(apply(*store, {sum(counter)}).has_value());
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_GT(store->open_connections(), 1u);
  {
    auto raw = group.data(0).raw();  // every count on the replica before the failover
    ASSERT_EQ(RedisServer::run(*raw, {"WAIT", "1", "5000"})->integer, 1);
  }

  const auto start = steady_clock::now();
  group.failover();
  // Each attempt also writes its own marker key: the failover is followed
  // once a marker written after the replica was promoted (and so no longer
  // replicates from the old master) is on it.
  int attempts = 0;
  int failures = 0;
  std::uint64_t count_after = 0;
  bool followed = false;
  while (!followed && steady_clock::now() - start < k_follow_patience) {
    const std::string marker = "fg:{mark" + std::to_string(++attempts) + "}:msgs:60";
    const bool promoted = SentinelGroup::role(group.data(1)) == "master";
    const auto result = apply(*store, {sum(counter), sum(marker)});
    if (!result) {
      ++failures;
      std::this_thread::sleep_for(milliseconds{50});
      continue;
    }
    if (promoted && has_key(group.data(1), marker)) {
      followed = true;
      count_after = (*result)[0];
    } else {
      std::this_thread::sleep_for(milliseconds{50});
    }
  }
  const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  ASSERT_TRUE(followed) << "no count reached the promoted replica within " << k_follow_patience.count()
                        << " s (" << attempts << " attempts, " << failures << " failed)";
  std::printf("failover followed in %lld ms: %d attempts, %d failed\n", static_cast<long long>(took.count()),
              attempts, failures);
  // The sentinels finish the switch a little later: they name the new
  // master and demote the old one.
  const auto finished = [&] {
    return group.named_master_port(0) == group.data(1).port() && SentinelGroup::role(group.data(0)) == "slave";
  };
  while (!finished() && steady_clock::now() - start < k_follow_patience) {
    std::this_thread::sleep_for(milliseconds{100});
  }
  EXPECT_TRUE(finished()) << "sentinel 0 names port " << group.named_master_port(0) << ", old master is a "
                          << SentinelGroup::role(group.data(0));
  // The 40 counts made before the failover were replicated: counting goes
  // on from them (writes the old master took during the switch may be lost).
  EXPECT_GT(count_after, static_cast<std::uint64_t>(k_threads * k_each));
  const auto next = apply(*store, {sum(counter)});
  ASSERT_TRUE(next.has_value()) << next.error().detail;
  EXPECT_EQ((*next)[0], count_after + 1);
}

TEST(RedisSentinel, FreezeStoreFollowsAFailover) {
  SentinelGroup group;
  group.wait_ready(k_ready_patience);
  policy::RedisSettings settings;
  settings.sentinel.master_name = group.master_name();
  settings.sentinel.addresses = group.sentinel_addresses();
  auto store = make_redis_freeze_store(RedisFreezeStoreOptions{
      .endpoint = redis_endpoint_from_settings(settings).value(),
      .password = std::nullopt,
      .connect_timeout = milliseconds{300},
      .command_timeout = milliseconds{300},
      .key_prefix = "fg"});
  ASSERT_TRUE(store->active(wall_now()).has_value());
  group.failover();
  const auto start = steady_clock::now();
  bool followed = false;
  int attempt = 0;
  while (!followed && steady_clock::now() - start < k_follow_patience) {
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016x", ++attempt);
    const Freeze freeze{.source = "client=10.1.2.3",
                        .source_digest = digest,
                        .rule = "manual",
                        .reason = "sentinel test",
                        .action = policy::Action::Quarantine,
                        .since = wall_now(),
                        .until = wall_now() + std::chrono::hours{1},
                        .incident = ""};
    // Written after the promotion, so not replicated from the old master.
    const bool promoted = SentinelGroup::role(group.data(1)) == "master";
    const auto made = store->freeze(freeze, wall_now());
    followed = promoted && made.has_value() && has_field(group.data(1), "fg:{freezes}:all", digest);
    if (!followed) std::this_thread::sleep_for(milliseconds{50});
  }
  EXPECT_TRUE(followed) << "no freeze reached the promoted replica within " << k_follow_patience.count() << " s";
}

}  // namespace
}  // namespace floodgate::ratelimit
