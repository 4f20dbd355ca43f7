// Google Benchmark of the counter script: RedisCounterStore::apply (one
// EVALSHA of ratelimit/counter_script.hpp) against a real redis-server that
// this program starts on a free loopback port (persistence off) and kills at
// exit. Run by hand, not by ctest; see README.md.
//
//   redis_script_bench [benchmark flags] [--message FILE.eml] [--config FILE]
//
// The requests are the ones the shipped policy plans for one message: a
// MessageSession fed the sample message is decided, and plan_counters() runs
// on its facts, as MessageSession::decide does. 1024 such plans (1024
// clients, different recipients each) are made up front and applied in turn,
// so Redis holds a realistic number of keys instead of one hot set.
//
// Reported per call:
//   Time / call_us        wall time of apply() as one client thread sees it
//                         (with T threads, Google Benchmark's "Time" is the
//                         wall time divided by all threads' calls, i.e. the
//                         inverse throughput; call_us is the latency)
//   evalsha_us            Redis' own time in the script (INFO commandstats,
//                         usec_per_call of evalsha over this run)
//   redis_cpu_us          redis-server's whole CPU (INFO cpu, user+sys) per
//                         call: the script plus reading and answering
//   <command>_us, _n      of evalsha_us, the time in each command the script
//                         calls (HINCRBY, HGETALL, HDEL, PEXPIRE, PFADD,
//                         PFCOUNT, EXISTS, PFMERGE), and how many of each one
//                         call runs; the rest of evalsha_us is Lua itself
//   commands_n            all commands the script ran inside Redis, per call
//   allocs                operator new calls apply() made on the client side
//                         (building the command, reading the reply; hiredis'
//                         own mallocs are not counted), counting_allocator.hpp
//   requests              counters in one call
// Shapes: all_identities=0 is the message as smtp-source sends it (a client
// in 10/8, no SASL: the identity `client` only); 1 adds a SASL login and an
// X-PHP-Originating-Script header, so every shipped rule plans its counters
// (3 content rules x 8 LSH bands, and the rest). all_identities:1/sums_only
// and /distinct_only apply that plan's Sum requests alone and its Distinct
// (HyperLogLog) requests alone, one thread: which kind the script spends on.
// all_identities:1/new_slot_each_call moves the clock on by 6 minutes (the
// slot of the policy's longest window, 1 h) before every call, so that every
// counter is in a slot it has not been written in yet: the first message of a
// slot, the worst case for a store that does per-slot work once.
// all_identities:1/unique_content sends, on the wall clock, a text/plain
// message of the sample's words in an order drawn anew for every call: the
// same clients, but content nobody sent before (other MinHash bands), so the
// content rules' 16 band counters are new on every call, as for most real
// mail, while the per-source counters are reused. Its plan is made outside
// the timed part.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "counting_allocator.hpp"
#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "policy/scoring.hpp"
#include "ratelimit/redis_counter_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"

namespace {

using floodgate::policy::CounterRequest;
using floodgate::ratelimit::CounterStore;
using floodgate::ratelimit::TimePoint;
using floodgate::testing::RedisServer;

constexpr std::uint64_t k_clients = 1024;

struct World {
  std::unique_ptr<RedisServer> server;
  std::unique_ptr<floodgate::ratelimit::RedisCounterStore> store;
  floodgate::testing::RedisContextPtr stats{nullptr, &redisFree};  // for INFO, CONFIG RESETSTAT
  // [shape][client]; shapes 0 and 1: all_identities=0|1, the whole plan;
  // 2 and 3: all_identities=1 split by kind, its Sum requests only and its
  // Distinct (HyperLogLog) requests only, to see which kind costs the script.
  std::vector<std::vector<CounterRequest>> plans[4];
  // For unique_content: the policy and the sample's words.
  std::shared_ptr<const floodgate::policy::Config> config;
  std::vector<std::string> words;
};
World g_world;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Headers as libmilter hands them and the body (the split of
// fingerprint_bench.cpp, with LF line ends turned to CRLF).
void feed_message(floodgate::milter::MessageSession& session, std::string_view raw) {
  std::string text;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) text.push_back('\r');
    text.push_back(raw[i]);
  }
  std::string_view rest = text;
  std::vector<std::pair<std::string, std::string>> headers;
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
      headers.back().second.append("\r\n").append(line);
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    }
  }
  for (const auto& [name, value] : headers) session.add_header(name, value);
  session.add_body_chunk(rest);
}

class ZeroCounterStore final : public CounterStore {
 public:
  floodgate::ratelimit::CounterResult apply(std::span<const CounterRequest> requests, TimePoint) override {
    return floodgate::ratelimit::CounterValues(requests.size(), 0);
  }
  std::string_view state_label() const override { return "zero"; }
};

TimePoint wall_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// The plan decide() would apply for client `n`'s message.
std::vector<CounterRequest> plan_for(const std::shared_ptr<const floodgate::policy::Config>& config,
                                     const std::string& raw_message, std::uint64_t n, bool all_identities) {
  floodgate::milter::ConnectionInfo connection;
  connection.client_address = "10.1." + std::to_string(n / 256) + "." + std::to_string(n % 256);
  connection.client_name = "web" + std::to_string(n) + ".example.net";
  floodgate::milter::MessageSession session(config, connection);
  session.set_sender("<newsletter@example.net>");
  if (all_identities) session.set_macro("{auth_authen}", "webshop" + std::to_string(n) + "@example.net");
  session.add_recipient("<user" + std::to_string(n) + "@example.org>", false);
  session.add_recipient("<info" + std::to_string(n % 97) + "@example.com>", false);
  session.add_recipient("<sales@example.co.uk>", false);
  if (all_identities) session.add_header("X-PHP-Originating-Script", " 33:contact.php");
  feed_message(session, raw_message);
  ZeroCounterStore zero;
  (void)session.decide(zero, wall_now());  // computes the fingerprint into facts()
  return floodgate::policy::plan_counters(*config, session.facts()).requests;
}

std::map<std::string, std::string> info_fields(const std::string& section) {
  const auto reply = RedisServer::run(*g_world.stats, {"INFO", section});
  std::map<std::string, std::string> fields;
  std::istringstream lines(std::string(reply->str ? reply->str : "", reply->len));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon != std::string::npos) fields[line.substr(0, colon)] = line.substr(colon + 1);
  }
  return fields;
}

double redis_cpu_seconds() {
  auto fields = info_fields("cpu");
  return std::strtod(fields["used_cpu_user"].c_str(), nullptr) + std::strtod(fields["used_cpu_sys"].c_str(), nullptr);
}

// "cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,..." -> calls and
// usec. Commands the script runs through redis.call() are counted too, under
// their own names.
std::pair<double, double> command_calls_usec(const std::map<std::string, std::string>& commandstats,
                                             const std::string& command) {
  const auto found = commandstats.find("cmdstat_" + command);
  if (found == commandstats.end()) return {0, 0};
  double calls = 0, usec = 0;
  std::istringstream parts(found->second);
  for (std::string part; std::getline(parts, part, ',');) {
    const auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    if (part.substr(0, eq) == "calls") calls = std::strtod(part.c_str() + eq + 1, nullptr);
    if (part.substr(0, eq) == "usec") usec = std::strtod(part.c_str() + eq + 1, nullptr);
  }
  return {calls, usec};
}

// Words of three letters or more in `text`, for made-up message bodies.
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      word.push_back(c);
      continue;
    }
    if (word.size() >= 3) words.push_back(word);
    word.clear();
  }
  return words;
}

// A plain-text message of 300 of the sample's words in an order drawn from
// `seed`: its shingles, hence its bands, are its own.
std::string unique_message(std::uint64_t seed) {
  std::mt19937_64 random{seed};
  std::string text = "Subject: offer\nContent-Type: text/plain\n\n";
  for (int i = 0; i < 300; ++i) {
    text += g_world.words[random() % g_world.words.size()];
    text += i % 12 == 11 ? '\n' : ' ';
  }
  return text;
}

// The commands the counter script calls.
constexpr const char* k_script_commands[] = {"hincrby", "hgetall", "hdel",   "pexpire",
                                             "pfadd",   "pfcount", "exists", "pfmerge"};

// The slot length of the shipped policy's longest window (1 h / 10).
constexpr std::chrono::milliseconds k_longest_slot{360'000};

// A shape of its own: plans made per call (see unique_message).
constexpr int k_unique_content = 4;

// `shape`: an index into World::plans, k_unique_content, or -1 for the
// benchmark's argument.
// `step`: how far the clock moves on between calls (zero: the wall clock).
void apply_script(benchmark::State& state, int shape, std::chrono::milliseconds step) {
  const auto& plans = g_world.plans[shape == k_unique_content ? 1 : shape >= 0 ? shape : state.range(0)];
  double cpu_before = 0;
  if (state.thread_index() == 0) {
    // Thread 0 sets up and reads the statistics; the other threads wait at
    // the loop's start and end barriers, so nothing else runs meanwhile.
    RedisServer::run(*g_world.stats, {"CONFIG", "RESETSTAT"});
    cpu_before = redis_cpu_seconds();
  }
  std::uint64_t n = static_cast<std::uint64_t>(state.thread_index()) * (k_clients / 8);
  std::uint64_t failures = 0;
  std::uint64_t allocations = 0;
  // With a step (one thread only), each run goes on a day past where the
  // last one stopped, so that no run meets the slots another one wrote.
  static TimePoint stepped_clock = wall_now();
  if (step.count() > 0) stepped_clock += std::chrono::hours{24};
  // unique_content's plans: drawn per call, outside call_us.
  const bool unique_content = shape == k_unique_content;
  static std::uint64_t unique_seed = 0;
  std::vector<CounterRequest> unique_plan;
  std::chrono::steady_clock::duration planning{};
  const auto started = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (unique_content) {
      state.PauseTiming();
      const auto planning_started = std::chrono::steady_clock::now();
      unique_plan = plan_for(g_world.config, unique_message(++unique_seed), n % k_clients, true);
      planning += std::chrono::steady_clock::now() - planning_started;
      state.ResumeTiming();
    }
    if (step.count() > 0) stepped_clock += step;
    const std::uint64_t allocations_before = floodgate::bench::allocations_on_this_thread();
    auto result = g_world.store->apply(unique_content ? unique_plan : plans[n % k_clients],
                                       step.count() > 0 ? stepped_clock : wall_now());
    allocations += floodgate::bench::allocations_on_this_thread() - allocations_before;
    if (!result) ++failures;
    benchmark::DoNotOptimize(result);
    ++n;
  }
  const std::chrono::duration<double, std::micro> elapsed =
      std::chrono::steady_clock::now() - started - planning;
  using benchmark::Counter;
  state.counters["call_us"] =
      Counter(elapsed.count() / static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1)),
              Counter::kAvgThreads);
  state.counters["failures"] = Counter(static_cast<double>(failures));
  state.counters["allocs"] = Counter(static_cast<double>(allocations), Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const auto commandstats = info_fields("commandstats");
    const auto [calls, usec] = command_calls_usec(commandstats, "evalsha");
    const double cpu_us = (redis_cpu_seconds() - cpu_before) * 1e6;
    if (calls > 0) {
      state.counters["evalsha_us"] = usec / calls;
      state.counters["redis_cpu_us"] = cpu_us / calls;
      // Where the script's time goes: µs per apply() in each command, and
      // how many of them one apply() runs.
      double commands = 0;
      for (const char* command : k_script_commands) {
        const auto [inner_calls, inner_usec] = command_calls_usec(commandstats, command);
        state.counters[std::string(command) + "_us"] = inner_usec / calls;
        state.counters[std::string(command) + "_n"] = inner_calls / calls;
        commands += inner_calls;
      }
      state.counters["commands_n"] = commands / calls;
    }
    state.counters["requests"] = static_cast<double>(unique_content ? unique_plan.size() : plans.front().size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes its --benchmark_* flags out
  std::string message_file = FLOODGATE_SOURCE_DIR "/tests/unit/content/data/spam-2-00565-alternative-qp.eml";
  std::string config_file = FLOODGATE_SOURCE_DIR "/conf/floodgate.yaml";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--message" || arg == "--config") && i + 1 < argc) {
      (arg == "--message" ? message_file : config_file) = argv[++i];
    } else {
      std::cerr << "redis_script_bench: unknown argument " << arg
                << "\nusage: redis_script_bench [--benchmark_...] [--message FILE.eml] [--config FILE]\n";
      return 2;
    }
  }
  try {
    const auto config = floodgate::policy::load_config_file(config_file);
    const std::string raw_message = read_file(message_file);
    g_world.config = config;
    g_world.words = words_of(raw_message.substr(raw_message.find("\n\n")));
    for (std::uint64_t n = 0; n < k_clients; ++n) {
      g_world.plans[0].push_back(plan_for(config, raw_message, n, false));
      g_world.plans[1].push_back(plan_for(config, raw_message, n, true));
      for (const int kind : {2, 3}) {
        auto& part = g_world.plans[kind].emplace_back();
        for (const CounterRequest& request : g_world.plans[1].back()) {
          if ((request.kind == floodgate::policy::CounterKind::Sum) == (kind == 2)) part.push_back(request);
        }
      }
    }
    g_world.server = std::make_unique<RedisServer>();
    g_world.stats = g_world.server->raw();
    // The shipped connection settings (pool of 8, 200 ms timeouts).
    floodgate::ratelimit::RedisCounterStoreOptions options;
    options.endpoint = floodgate::ratelimit::parse_redis_url(g_world.server->url()).value();
    options.connect_timeout = config->redis.connect_timeout;
    options.command_timeout = config->redis.command_timeout;
    options.pool_size = config->redis.pool_size;
    g_world.store = std::make_unique<floodgate::ratelimit::RedisCounterStore>(options);
    // Loads the script, so no run pays for SCRIPT LOAD.
    if (!g_world.store->apply(g_world.plans[1].front(), wall_now())) throw std::runtime_error("first apply failed");
  } catch (const std::exception& error) {
    std::cerr << "redis_script_bench: " << error.what() << "\n";
    return 1;
  }
  auto version = info_fields("server")["redis_version"];
  benchmark::AddCustomContext("redis_version", version);
  benchmark::AddCustomContext("message", std::filesystem::path(message_file).filename());

  constexpr std::chrono::milliseconds wall_clock{0};
  for (const int threads : {1, 2, 8}) {
    benchmark::RegisterBenchmark("redis/apply", apply_script, -1, wall_clock)
        ->ArgName("all_identities")
        ->Arg(0)
        ->Arg(1)
        ->Threads(threads)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("redis/apply/all_identities:1/sums_only", apply_script, 2, wall_clock)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("redis/apply/all_identities:1/distinct_only", apply_script, 3, wall_clock)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("redis/apply/all_identities:1/new_slot_each_call", apply_script, 1,
                               k_longest_slot)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("redis/apply/all_identities:1/unique_content", apply_script,
                               k_unique_content, wall_clock)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_world.stats.reset();
  g_world.store.reset();
  g_world.server.reset();  // kills redis-server and removes its directory
  return 0;
}
