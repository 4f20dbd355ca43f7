// RedisCounterStore against a real redis-server: the Lua script agrees with
// MemoryCounterStore, keys carry TTLs and expire, and every way Redis can
// misbehave (script cache flushed, wrong password, killed, hung, restarted)
// ends in a value or a CounterFailure, quickly.
#include "ratelimit/redis_counter_store.hpp"

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/memory_counter_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "ratelimit/sliding_window.hpp"
#include "redis_server.hpp"

namespace floodgate::ratelimit {
namespace {

using floodgate::testing::RedisServer;
using floodgate::testing::RedisServerOptions;
using policy::CounterKind;
using policy::CounterRequest;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr milliseconds k_command_timeout{200};

TimePoint at_ms(std::int64_t ms) { return TimePoint{milliseconds{ms}}; }

TimePoint wall_now() {
  return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
}

CounterRequest sum(std::string key, std::uint64_t amount, seconds window = seconds{10}) {
  return CounterRequest{.key = std::move(key), .kind = CounterKind::Sum, .window = window,
                        .amount = amount, .members = {}};
}

CounterRequest distinct(std::string key, std::vector<std::string> members,
                        seconds window = seconds{10}) {
  return CounterRequest{.key = std::move(key), .kind = CounterKind::Distinct, .window = window,
                        .amount = 0, .members = std::move(members)};
}

RedisCounterStoreOptions options_for(std::string_view url, unsigned pool_size = 4) {
  return RedisCounterStoreOptions{.endpoint = parse_redis_url(url).value(),
                                  .password = std::nullopt,
                                  .connect_timeout = k_command_timeout,
                                  .command_timeout = k_command_timeout,
                                  .pool_size = pool_size};
}

std::vector<std::string> all_keys(redisContext& raw) {
  const auto reply = RedisServer::run(raw, {"KEYS", "*"});
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < reply->elements; ++i) {
    keys.emplace_back(reply->element[i]->str, reply->element[i]->len);
  }
  return keys;
}

long long pttl(redisContext& raw, const std::string& key) {
  return RedisServer::run(raw, {"PTTL", key})->integer;
}

bool exists(redisContext& raw, const std::string& key) {
  return RedisServer::run(raw, {"EXISTS", key})->integer == 1;
}

// How many times Redis ran `command` (e.g. "pfmerge") since the last
// CONFIG RESETSTAT, the script's own calls included (INFO commandstats).
long long command_calls(redisContext& raw, const std::string& command) {
  const auto reply = RedisServer::run(raw, {"INFO", "commandstats"});
  const std::string info(reply->str, reply->len);
  const std::string field = "cmdstat_" + command + ":calls=";
  const auto at = info.find(field);
  return at == std::string::npos ? 0 : std::stoll(info.substr(at + field.size()));
}

// The key holding a Distinct counter's window union for the slot of `now`.
std::string union_key(const std::string& key, seconds window, TimePoint now) {
  return key + ":u" + std::to_string(SlidingWindow{window, now}.current_slot());
}

CounterResult apply_all(CounterStore& store, const std::vector<CounterRequest>& requests,
                        TimePoint now) {
  return store.apply(requests, now);
}

const std::vector<CounterRequest> k_message{sum("fg:{src}:msgs:10", 1),
                                            distinct("fg:{src}:rcpt:10", {"a", "b"})};

// ---- Same answers as the in-process store --------------------------------

struct Step {
  std::int64_t at_ms;
  std::vector<CounterRequest> requests;
};

// Hand-picked edges first: slot boundaries, the window's end, partial
// overlap of the oldest slot, a long gap. Then a deterministic random walk.
std::vector<Step> equivalence_steps() {
  constexpr std::int64_t t0 = 1'700'000'000'000;  // on a slot boundary of every window used
  const std::string s10 = "fg:{eq}:msgs:10";
  const std::string s60 = "fg:{eq}:rcpts:60";
  const std::string d10 = "fg:{eq}:drcpt:10";
  const std::string d60 = "fg:{eq}:drcpt:60";
  std::vector<Step> steps{
      {t0, {sum(s10, 5), sum(s60, 40, seconds{60}), distinct(d10, {"a", "b"})}},
      {t0 + 999, {sum(s10, 1), distinct(d10, {"b", "c"})}},
      {t0 + 1000, {sum(s10, 2), distinct(d10, {"d"})}},       // next slot starts
      {t0 + 10'000, {sum(s10, 0), distinct(d10, {})}},          // window end: t0 fully in
      {t0 + 10'250, {sum(s10, 0), sum(s60, 0, seconds{60})}},   // oldest weighted 3/4
      {t0 + 10'999, {sum(s10, 0), distinct(d10, {})}},          // 1 ms of oldest left
      {t0 + 11'000, {sum(s10, 0), distinct(d10, {})}},          // t0's slot gone
      {t0 + 11'500, {sum(s10, 7), distinct(d10, {"a"})}},
      {t0 + 3'600'000, {sum(s10, 1), sum(s60, 1, seconds{60}), distinct(d10, {"z"})}},
      {t0 + 3'600'000, {sum(s10, 1), sum(s60, 1, seconds{60}), distinct(d10, {"z", "y"})}},
  };
  std::mt19937_64 random{42};
  std::int64_t now = t0 + 4'000'000;
  for (int i = 0; i < 300; ++i) {
    now += static_cast<std::int64_t>(random() % 1700);
    std::vector<std::string> members;
    for (std::uint64_t m = random() % 4; m > 0; --m) {
      members.push_back("member-" + std::to_string(random() % 25));
    }
    // d60 (L = 6 s) sees several messages per slot, so most of its reads
    // come from a union built earlier in the slot.
    steps.push_back({now,
                     {sum(s10, random() % 50), sum(s60, random() % 200, seconds{60}),
                      distinct(d10, members), distinct(d60, members, seconds{60})}});
  }
  return steps;
}

TEST(RedisCounterStore, ScriptCountsEqualMemoryStoreCounts) {
  RedisServer server;
  RedisCounterStore redis{options_for(server.url())};
  MemoryCounterStore memory;
  int step_index = 0;
  for (const Step& step : equivalence_steps()) {
    const auto got = redis.apply(step.requests, at_ms(step.at_ms));
    ASSERT_TRUE(got.has_value()) << "step " << step_index << ": " << got.error().detail;
    const auto want = memory.apply(step.requests, at_ms(step.at_ms)).value();
    ASSERT_EQ(*got, want) << "step " << step_index << " at +" << step.at_ms % 10'000'000
                          << " ms: got redis values, want memory values";
    ++step_index;
  }
}

TEST(RedisCounterStore, AddsMoreMembersThanLuaCanUnpackAtOnce) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  std::vector<std::string> members;
  for (int i = 0; i < 20'000; ++i) members.push_back("rcpt-" + std::to_string(i));
  const auto result = apply_all(store, {distinct("fg:{big}:rcpt:600", members, seconds{600})},
                                at_ms(1'700'000'000'000));
  ASSERT_TRUE(result.has_value()) << result.error().detail;
  // HyperLogLog: within its ~1% standard error, give or take.
  EXPECT_NEAR(static_cast<double>(result->at(0)), 20'000.0, 600.0);
}

// ---- Keys, TTLs, expiry ---------------------------------------------------

TEST(RedisCounterStore, SetsTtlOnEveryKeyItWrites) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const TimePoint now = at_ms(1'700'000'000'000);
  ASSERT_TRUE(store.apply(k_message, now).has_value());
  ASSERT_TRUE(apply_all(store, {sum("fg:{src}:msgs:600", 3, seconds{600})}, now).has_value());

  const auto raw = server.raw();
  // One hash per Sum; one HyperLogLog (the current slot) per Distinct.
  const SlidingWindow window{seconds{10}, now};
  EXPECT_EQ(all_keys(*raw).size(), 3u);
  const std::string current_slot_key =
      "fg:{src}:rcpt:10:" + std::to_string(window.current_slot());
  EXPECT_TRUE(exists(*raw, current_slot_key));
  // The next slot's message has a closed slot in its window: the Distinct
  // gets the window's union for that slot too.
  const TimePoint next_slot = now + seconds{1};
  ASSERT_TRUE(store.apply(k_message, next_slot).has_value());
  const auto keys = all_keys(*raw);
  EXPECT_EQ(keys.size(), 5u);
  const std::string union_of_slot = union_key("fg:{src}:rcpt:10", seconds{10}, next_slot);
  EXPECT_NE(std::find(keys.begin(), keys.end(), union_of_slot), keys.end());
  for (const std::string& key : keys) {
    EXPECT_TRUE(key.starts_with("fg:{src}:")) << key << ": not in the counter's hash slot";
    const long long ttl = pttl(*raw, key);
    if (key == union_of_slot) {
      // `next_slot` starts a 1 s slot: the rest of it (1 s) plus min(L, 1 s).
      EXPECT_GT(ttl, 1000) << key;
      EXPECT_LE(ttl, 2000) << key << ": got " << ttl << ", want <= end of slot + min(L, 1 s)";
      continue;
    }
    const long long window_ms = key == "fg:{src}:msgs:600" ? 600'000 : 10'000;
    EXPECT_GT(ttl, 0) << key;
    EXPECT_LE(ttl, window_ms + 2 * window_ms / 10) << key << ": got " << ttl << ", want <= W + 2L";
    EXPECT_GT(ttl, window_ms) << key;
  }
}

TEST(RedisCounterStore, DropsStaleSlotFieldsFromSumHashes) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  constexpr std::int64_t t0 = 1'700'000'000'000;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(apply_all(store, {sum("fg:{h}:n:10", 1)}, at_ms(t0 + i * 1000)).has_value());
  }
  const auto raw = server.raw();
  // Slots s-10..s are all that is kept.
  EXPECT_EQ(RedisServer::run(*raw, {"HLEN", "fg:{h}:n:10"})->integer, 11);
}

TEST(RedisCounterStore, KeysExpireAfterWindowPlusTwoSlots) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  // One-second window: L = 100 ms, TTL 1.2 s of real time.
  const std::vector<CounterRequest> requests{sum("fg:{x}:m:1", 1, seconds{1}),
                                             distinct("fg:{x}:r:1", {"a"}, seconds{1})};
  ASSERT_TRUE(store.apply(requests, wall_now()).has_value());
  const auto raw = server.raw();
  EXPECT_EQ(all_keys(*raw).size(), 2u);
  std::this_thread::sleep_for(milliseconds{1400});
  EXPECT_EQ(RedisServer::run(*raw, {"EXISTS", "fg:{x}:m:1"})->integer, 0);
  EXPECT_TRUE(all_keys(*raw).empty());
}

TEST(RedisCounterStore, SetsEachSlotsTtlOnceNotOnEveryMessage) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const auto raw = server.raw();
  constexpr std::int64_t t0 = 1'700'000'000'000;  // a 1 s slot starts here
  RedisServer::run(*raw, {"CONFIG", "RESETSTAT"});
  // Five messages in one slot, the same recipients: one PEXPIRE for the
  // Sum's new field, one for the Distinct's new slot key.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store.apply(k_message, at_ms(t0 + i * 100)).has_value());
  }
  EXPECT_EQ(command_calls(*raw, "pexpire"), 2);
  // A new recipient changes the slot's HyperLogLog: its TTL is set again
  // (harmless), the Sum's field is not new.
  ASSERT_TRUE(apply_all(store, {sum("fg:{src}:msgs:10", 1), distinct("fg:{src}:rcpt:10", {"c"})},
                        at_ms(t0 + 600))
                  .has_value());
  EXPECT_EQ(command_calls(*raw, "pexpire"), 3);
  // The next slot: a new field, a new slot key and the window union built
  // for the slot, three more; then none for the rest of the slot.
  ASSERT_TRUE(store.apply(k_message, at_ms(t0 + 1000)).has_value());
  ASSERT_TRUE(store.apply(k_message, at_ms(t0 + 1500)).has_value());
  EXPECT_EQ(command_calls(*raw, "pexpire"), 6);
}

TEST(RedisCounterStore, RenewsSumHashTtlWhenANewSlotIsWritten) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const auto raw = server.raw();
  constexpr std::int64_t t0 = 1'700'000'000'000;
  const std::string key = "fg:{t}:msgs:10";  // W = 10 s, L = 1 s: TTL 12 s
  ASSERT_TRUE(apply_all(store, {sum(key, 1)}, at_ms(t0)).has_value());
  std::this_thread::sleep_for(milliseconds{400});
  // Same slot: the TTL runs on from the slot's first write.
  ASSERT_TRUE(apply_all(store, {sum(key, 1)}, at_ms(t0 + 500)).has_value());
  EXPECT_LE(pttl(*raw, key), 11'700) << "the TTL was set again within the slot";
  // A later slot needs W + 2L from now on.
  ASSERT_TRUE(apply_all(store, {sum(key, 1)}, at_ms(t0 + 1000)).has_value());
  EXPECT_GT(pttl(*raw, key), 11'900);
}

// ---- Distinct: the window's union, built once per slot -------------------

TEST(RedisCounterStore, BuildsDistinctWindowUnionOncePerSlot) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const auto raw = server.raw();
  constexpr std::int64_t t0 = 1'700'000'000'000;  // a 1 s slot starts here
  const std::string key = "fg:{u}:drcpt:10";
  RedisServer::run(*raw, {"CONFIG", "RESETSTAT"});

  // A new counter: nothing in its window but the current slot, which is
  // counted alone; no union.
  EXPECT_EQ(apply_all(store, {distinct(key, {"a"})}, at_ms(t0)).value(), CounterValues{1});
  EXPECT_EQ(apply_all(store, {distinct(key, {"b"})}, at_ms(t0 + 400)).value(), CounterValues{2});
  EXPECT_EQ(apply_all(store, {distinct(key, {"a"})}, at_ms(t0 + 999)).value(), CounterValues{2});
  EXPECT_EQ(command_calls(*raw, "pfmerge"), 0) << "a new counter's first slot";
  EXPECT_FALSE(exists(*raw, union_key(key, seconds{10}, at_ms(t0))));

  // The next slot's union starts from the closed slot's members: one merge
  // for the slot, whatever the number of messages.
  EXPECT_EQ(apply_all(store, {distinct(key, {"c"})}, at_ms(t0 + 1000)).value(), CounterValues{3});
  EXPECT_EQ(apply_all(store, {distinct(key, {"a", "d"})}, at_ms(t0 + 1500)).value(),
            CounterValues{4});
  EXPECT_EQ(apply_all(store, {distinct(key, {})}, at_ms(t0 + 1999)).value(), CounterValues{4});
  EXPECT_EQ(command_calls(*raw, "pfmerge"), 1) << "three messages in the next slot";
  // The value is the union's own count, which holds the whole window.
  const std::string second = union_key(key, seconds{10}, at_ms(t0 + 1000));
  EXPECT_EQ(RedisServer::run(*raw, {"PFCOUNT", second})->integer, 4);
  EXPECT_GT(pttl(*raw, second), 0);
}

TEST(RedisCounterStore, DistinctWindowUnionExpiresAfterItsSlot) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const auto raw = server.raw();
  // One-second window: L = 100 ms; the union lives to its slot's end + L.
  const std::string key = "fg:{x}:r:1";
  const TimePoint first = wall_now();
  ASSERT_TRUE(apply_all(store, {distinct(key, {"a"}, seconds{1})}, first).has_value());
  // The next slot's message builds the union, the first slot being closed.
  const TimePoint now = first + milliseconds{100};
  ASSERT_TRUE(apply_all(store, {distinct(key, {"b"}, seconds{1})}, now).has_value());
  const std::string union_of_slot = union_key(key, seconds{1}, now);
  const long long ttl = pttl(*raw, union_of_slot);
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 200) << "got " << ttl << ", want <= the rest of the slot + L";
  std::this_thread::sleep_for(milliseconds{300});
  EXPECT_FALSE(exists(*raw, union_of_slot));
  // The slot's own key stays for W + 2L: later slots' unions read it.
  EXPECT_TRUE(exists(*raw, key + ":" + std::to_string(SlidingWindow{seconds{1}, now}.current_slot())));
}

TEST(RedisCounterStore, DistinctCountsEqualMemoryStoreWhileOldSlotsExpire) {
  RedisServer server;
  RedisCounterStore redis{options_for(server.url())};
  MemoryCounterStore memory;
  // One-second window (L = 100 ms, keys live 1.2 s): the first members'
  // slot has expired in Redis by the third call, the second's has not.
  const std::string key = "fg:{x}:r:1";
  const std::vector<std::vector<std::string>> messages{{"a", "b"}, {"b", "c"}, {"d"}};
  const milliseconds pauses[] = {milliseconds{600}, milliseconds{700}, milliseconds{0}};
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::vector<CounterRequest> requests{distinct(key, messages[i], seconds{1})};
    const TimePoint now = wall_now();
    const auto got = redis.apply(requests, now);
    ASSERT_TRUE(got.has_value()) << got.error().detail;
    EXPECT_EQ(*got, memory.apply(requests, now).value()) << "message " << i;
    std::this_thread::sleep_for(pauses[i]);
  }
  // Everything gone, in both stores: a fresh start.
  std::this_thread::sleep_for(milliseconds{1300});
  const std::vector<CounterRequest> last{distinct(key, {"e"}, seconds{1})};
  const TimePoint now = wall_now();
  EXPECT_EQ(redis.apply(last, now).value(), CounterValues{1});
  EXPECT_EQ(memory.apply(last, now).value(), CounterValues{1});
}

// The one way the union differs from reading the 11 slot keys (see
// counter_script.hpp): a node whose clock is behind adds a member to slot s
// after another node has built the union of slot s+1.
TEST(RedisCounterStore, MemberAddedToAnOlderSlotAfterTheUnionWasBuiltCountsFromTheNextSlot) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  constexpr std::int64_t t0 = 1'700'000'000'000;  // a 1 s slot starts here
  const std::string key = "fg:{lag}:drcpt:10";
  EXPECT_EQ(apply_all(store, {distinct(key, {"z"})}, at_ms(t0 - 1000)).value(), CounterValues{1});
  // Slot s+1 (s = t0's slot) has a closed slot in its window: union built.
  EXPECT_EQ(apply_all(store, {distinct(key, {"a"})}, at_ms(t0 + 1000)).value(), CounterValues{2});
  // The late node, 1 ms behind, still in slot s.
  EXPECT_EQ(apply_all(store, {distinct(key, {"b"})}, at_ms(t0 + 999)).value(), CounterValues{2});
  // z, a and b are in the window; the union of s+1 has only z and a.
  EXPECT_EQ(apply_all(store, {distinct(key, {})}, at_ms(t0 + 1500)).value(), CounterValues{2});
  EXPECT_EQ(apply_all(store, {distinct(key, {})}, at_ms(t0 + 2000)).value(), CounterValues{3});
}

// ---- Script cache, AUTH, SELECT, unix socket -----------------------------

TEST(RedisCounterStore, RunsScriptAgainAfterScriptFlush) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  const TimePoint now = at_ms(1'700'000'000'000);
  ASSERT_TRUE(store.apply(k_message, now).has_value());
  RedisServer::run(*server.raw(), {"SCRIPT", "FLUSH"});
  const auto after_flush = store.apply(k_message, now);
  ASSERT_TRUE(after_flush.has_value()) << after_flush.error().detail;
  EXPECT_EQ(*after_flush, (CounterValues{2, 2}));
  // EVAL put the script back: the next EVALSHA needs no fallback.
  EXPECT_EQ(store.apply(k_message, now).value(), (CounterValues{3, 2}));
  EXPECT_EQ(store.open_connections(), 1u);
}

TEST(RedisCounterStore, AuthenticatesWithPasswordFromUrlOrOptions) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  RedisCounterStore from_url{options_for(server.url())};
  EXPECT_TRUE(from_url.apply(k_message, wall_now()).has_value());

  auto options = options_for("redis://127.0.0.1:" + std::to_string(server.port()));
  options.password = "s3cret-pw";
  RedisCounterStore from_options{options};
  EXPECT_TRUE(from_options.apply(k_message, wall_now()).has_value());
}

TEST(RedisCounterStore, FailsClearlyWithWrongPassword) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  auto options = options_for("redis://127.0.0.1:" + std::to_string(server.port()));
  options.password = "not-the-password";
  RedisCounterStore store{options};
  const auto result = store.apply(k_message, wall_now());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_NE(result.error().detail.find("AUTH to 127.0.0.1:"), std::string::npos)
      << result.error().detail;
  EXPECT_NE(result.error().detail.find("WRONGPASS"), std::string::npos) << result.error().detail;
  EXPECT_EQ(result.error().detail.find("not-the-password"), std::string::npos);
  EXPECT_EQ(store.open_connections(), 0u);
}

TEST(RedisCounterStore, FailsClearlyWithoutPasswordWhenOneIsRequired) {
  RedisServer server{RedisServerOptions{.password = "s3cret-pw", .unix_socket = false}};
  RedisCounterStore store{options_for("redis://127.0.0.1:" + std::to_string(server.port()))};
  const auto result = store.apply(k_message, wall_now());
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().detail.find("NOAUTH"), std::string::npos) << result.error().detail;
}

TEST(RedisCounterStore, WritesToSelectedDatabase) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url(5))};
  ASSERT_TRUE(store.apply(k_message, wall_now()).has_value());
  EXPECT_TRUE(all_keys(*server.raw(0)).empty());
  EXPECT_EQ(all_keys(*server.raw(5)).size(), 2u);
}

TEST(RedisCounterStore, ConnectsOverUnixSocket) {
  RedisServer server{RedisServerOptions{.password = "", .unix_socket = true}};
  RedisCounterStore store{options_for("unix:" + server.socket_path() + "?db=2")};
  const auto result = store.apply(k_message, wall_now());
  ASSERT_TRUE(result.has_value()) << result.error().detail;
  EXPECT_EQ(*result, (CounterValues{1, 2}));
  EXPECT_EQ(all_keys(*server.raw(2)).size(), 2u);
}

TEST(RedisCounterStore, ReportsRedisErrorReplyAsFailureAndDropsConnection) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  RedisServer::run(*server.raw(), {"SET", "fg:{w}:msgs:10", "not a hash"});
  const auto result = apply_all(store, {sum("fg:{w}:msgs:10", 1)}, wall_now());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  EXPECT_NE(result.error().detail.find("WRONGTYPE"), std::string::npos) << result.error().detail;
  EXPECT_EQ(store.open_connections(), 0u);
  EXPECT_TRUE(store.apply(k_message, wall_now()).has_value());
}

// ---- Redis away, hung, back -----------------------------------------------

TEST(RedisCounterStore, FailsQuicklyWhenRedisIsKilled) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  ASSERT_TRUE(store.apply(k_message, wall_now()).has_value());
  server.kill();
  for (int attempt = 0; attempt < 2; ++attempt) {  // stale connection, then refused
    const auto start = steady_clock::now();
    const auto result = store.apply(k_message, wall_now());
    const auto elapsed = steady_clock::now() - start;
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable) << result.error().detail;
    EXPECT_LT(elapsed, k_command_timeout + milliseconds{100}) << result.error().detail;
  }
}

TEST(RedisCounterStore, TimesOutWithinCommandTimeoutWhenRedisHangs) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  ASSERT_TRUE(store.apply(k_message, wall_now()).has_value());
  server.pause();
  const auto start = steady_clock::now();
  const auto result = store.apply(k_message, wall_now());
  const auto elapsed = steady_clock::now() - start;
  server.resume();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Timeout) << result.error().detail;
  EXPECT_NE(result.error().detail.find("EVALSHA: timed out"), std::string::npos)
      << result.error().detail;
  EXPECT_GE(elapsed, k_command_timeout - milliseconds{20});
  EXPECT_LT(elapsed, 2 * k_command_timeout + milliseconds{100});
}

TEST(RedisCounterStore, WaitsAtMostCommandTimeoutForABusyPool) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url(), /*pool_size=*/1)};
  ASSERT_TRUE(store.apply(k_message, wall_now()).has_value());
  server.pause();
  // The only connection hangs in one thread; the other must not wait for
  // longer than its own command timeout plus, at worst, one of its own.
  std::thread holder{[&] { (void)store.apply(k_message, wall_now()); }};
  std::this_thread::sleep_for(milliseconds{20});
  const auto start = steady_clock::now();
  const auto result = store.apply(k_message, wall_now());
  const auto elapsed = steady_clock::now() - start;
  holder.join();
  server.resume();
  ASSERT_FALSE(result.has_value());
  // The holder gives the connection back when its own call times out, just
  // before this call's wait for the pool would end (Busy): this call then
  // makes its own, which times out too.
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Timeout) << result.error().detail;
  EXPECT_LT(elapsed, 2 * k_command_timeout + milliseconds{150});
}

TEST(RedisCounterStore, ReconnectsByItselfAfterServerRestart) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  ASSERT_TRUE(store.apply(k_message, wall_now()).has_value());
  server.restart();
  // The pooled connection is stale: at most one call sees that; the new
  // server has no script either, which EVAL takes care of.
  int failures = 0;
  CounterResult result = store.apply(k_message, wall_now());
  if (!result) {
    ++failures;
    result = store.apply(k_message, wall_now());
  }
  ASSERT_TRUE(result.has_value()) << result.error().detail;
  EXPECT_LE(failures, 1);
  EXPECT_EQ(*result, (CounterValues{1, 2}));  // a fresh server starts from zero
}

TEST(RedisCounterStore, ConcurrentAppliesGiveExactTotals) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url(), /*pool_size=*/4)};
  constexpr int k_threads = 8;
  constexpr int k_messages = 300;
  const TimePoint now = wall_now();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&] {
      const std::vector<CounterRequest> message{sum("fg:{c}:msgs:600", 1, seconds{600}),
                                                sum("fg:{c}:rcpts:600", 7, seconds{600})};
      for (int i = 0; i < k_messages; ++i) {
        if (!store.apply(message, now)) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  const auto totals = apply_all(store, {sum("fg:{c}:msgs:600", 0, seconds{600}),
                                   sum("fg:{c}:rcpts:600", 0, seconds{600})},
                                  now);
  EXPECT_EQ(totals.value(), (CounterValues{k_threads * k_messages, 7 * k_threads * k_messages}));
  EXPECT_LE(store.open_connections(), 4u);
}

TEST(RedisCounterStore, OpensNoConnectionUntilFirstApply) {
  RedisServer server;
  RedisCounterStore store{options_for(server.url())};
  EXPECT_EQ(store.open_connections(), 0u);
  EXPECT_EQ(store.state_label(), "redis");
}

}  // namespace
}  // namespace floodgate::ratelimit
