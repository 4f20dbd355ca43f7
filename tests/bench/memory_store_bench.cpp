// Memory held by the in-process counter store (ratelimit/memory_counter_store.hpp)
// under the shipped policy's request mix: the store Floodgate runs on when
// no Redis is configured, and its fallback while Redis is down. Run by hand,
// not by ctest; see README.md.
//
//   memory_store_bench [--config FILE] [--messages N,N,...] [--clients N]
//                      [--contents N] [--threads N] [--rate MSG_PER_S]
//                      [--client-only] [--malloc-stats] [--trim] [--max-bytes N]
//
// Each message is built as the milter builds it and planned by the policy
// core (plan_counters under --config, default tests/bench/bench.yaml): a
// client out of --clients (1000) addresses in 10/8, each with its SASL login
// and an X-PHP-Originating-Script header (every shipped identity; --client-only
// leaves both out, as milter_load and smtp-source send), 3 recipients never
// seen before, and a ~5 KB text body fingerprinted by the real
// fingerprinter. With --contents 0 (the default) every message has a content
// of its own, the worst case for the content rules (8 LSH band keys per rule,
// all new); --contents N cycles N contents instead. Time advances by
// 1/--rate s per message (4000 msg/s, the degraded phase of degradation.py),
// so nothing expires before the 10-minute windows end: what is measured is
// what the store keeps.
//
// At each --messages checkpoint (10000,100000,500000) it prints the keys
// held, evictions, the heap in use (mallinfo2 uordblks + hblkhd) above what
// it was before the store existed, bytes per key from that, the store's own
// accounting when it has one, VmRSS / VmHWM, and the wall time spent in
// apply() per message since the previous checkpoint (summed over threads). --threads N applies from
// N threads at once (one message each in turn), as libmilter's
// per-connection threads do, to see glibc's per-thread arenas; with
// --malloc-stats glibc's malloc_stats() is printed at each checkpoint, and
// with --trim malloc_trim(0) is called there and the RSS printed again (how
// much of it was free heap glibc kept). --max-bytes sets the store's budget
// (MemoryCounterStoreOptions::max_bytes, default 24 MiB).
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "policy/config_loader.hpp"
#include "policy/content_fingerprint.hpp"
#include "policy/ip_address.hpp"
#include "policy/message_facts.hpp"
#include "policy/scoring.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace {

using floodgate::policy::Config;
using floodgate::policy::MessageFacts;
using floodgate::ratelimit::MemoryCounterStore;
using floodgate::ratelimit::TimePoint;

struct Options {
  std::string config_file = FLOODGATE_SOURCE_DIR "/tests/bench/bench.yaml";
  std::vector<std::uint64_t> checkpoints{10'000, 100'000, 500'000};
  std::uint64_t clients = 1000;
  std::uint64_t contents = 0;  // 0: every message its own content
  unsigned threads = 1;
  double rate = 4000;
  bool all_identities = true;
  bool malloc_stats = false;
  bool trim = false;
  std::size_t max_bytes = std::size_t{16} << 20;  // the store's default
};

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// About 5 KB of words drawn from a 4096-word vocabulary, seeded by the
// content number: two contents share no run of words, so their MinHash
// bands differ, as two different real messages' do.
std::string body_text(std::uint64_t content) {
  std::uint64_t state = content * 0x2545f4914f6cdd1dULL + 1;
  std::string text;
  text.reserve(5200);
  while (text.size() < 5000) {
    const std::uint64_t word = splitmix64(state) % 4096;
    text += "w";
    for (std::uint64_t w = word; w != 0; w /= 26) text += static_cast<char>('a' + w % 26);
    text += text.size() % 70 < 8 ? "\r\n" : " ";
  }
  return text;
}

MessageFacts facts_for(const Config& config, const Options& options, std::uint64_t n) {
  MessageFacts facts;
  const std::uint64_t client = n % options.clients;
  facts.client_address = "10." + std::to_string(client / 65536 % 256) + "." +
                         std::to_string(client / 256 % 256) + "." + std::to_string(client % 256);
  facts.client_ip = floodgate::policy::IpAddress::parse(facts.client_address);
  facts.client_name = "host" + std::to_string(client) + ".example.net";
  facts.helo = facts.client_name;
  facts.sender = "newsletter@example.net";
  facts.macros["daemon_name"] = "smtpd";
  if (options.all_identities) {
    facts.sasl_user = "user" + std::to_string(client) + "@example.net";
    facts.macros["auth_authen"] = facts.sasl_user;
    facts.headers["x-php-originating-script"] = "33:contact.php";
  }
  // Recipients never seen before, in a few domains.
  for (int r = 0; r < 3; ++r) {
    facts.recipients.push_back("rcpt" + std::to_string(n) + "-" + std::to_string(r) + "@domain" +
                               std::to_string((n * 3 + r) % 997) + ".example");
  }
  const std::uint64_t content = options.contents == 0 ? n : n % options.contents;
  auto fingerprinter = floodgate::policy::make_content_fingerprinter(config.content);
  fingerprinter->add_header("Subject", " offer " + std::to_string(content));
  fingerprinter->add_header("Content-Type", " text/plain; charset=us-ascii");
  fingerprinter->add_body_chunk(body_text(content));
  facts.fingerprint = fingerprinter->finish();
  facts.size_bytes = 5200;
  return facts;
}

std::uint64_t heap_in_use() {
  const struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
}

std::uint64_t proc_status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

std::vector<std::uint64_t> parse_list(std::string_view text) {
  std::vector<std::uint64_t> values;
  std::stringstream in{std::string(text)};
  for (std::string item; std::getline(in, item, ',');) values.push_back(std::stoull(item));
  return values;
}

// The store's own byte accounting, where the store has one (it was added
// with the byte budget; the bench also builds against the store before it).
template <typename Store>
auto accounted_bytes(const Store& store, int) -> decltype(store.memory_bytes(), std::int64_t{}) {
  return static_cast<std::int64_t>(store.memory_bytes());
}
template <typename Store>
std::int64_t accounted_bytes(const Store&, long) {
  return -1;
}

// The options with --max-bytes, where the store has a byte budget.
template <typename StoreOptions>
auto store_options(std::size_t max_bytes, int) -> decltype(StoreOptions{}.max_bytes, StoreOptions{}) {
  StoreOptions options;
  options.max_bytes = max_bytes;
  return options;
}
template <typename StoreOptions>
StoreOptions store_options(std::size_t, long) {
  return StoreOptions{};
}

void report(const MemoryCounterStore& store, std::uint64_t messages, std::uint64_t requests,
            std::uint64_t heap_before, double seconds, double apply_us_per_message, const Options& options) {
  const std::uint64_t keys = store.key_count();
  const std::int64_t heap = static_cast<std::int64_t>(heap_in_use()) - static_cast<std::int64_t>(heap_before);
  const std::int64_t accounted = accounted_bytes(store, 0);
  char accounted_text[32] = "-";
  if (accounted >= 0) std::snprintf(accounted_text, sizeof accounted_text, "%.1f MB", static_cast<double>(accounted) / 1e6);
  std::printf("%9llu msgs %10llu requests %9zu keys %10llu evictions  heap %8.1f MB  %6.0f B/key  "
              "accounted %s  RSS %7.1f MB  HWM %7.1f MB  %6.1f s  apply %5.1f us/msg\n",
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(requests), keys,
              static_cast<unsigned long long>(store.evictions()), static_cast<double>(heap) / 1e6,
              keys == 0 ? 0.0 : static_cast<double>(heap) / static_cast<double>(keys),
              accounted_text,
              static_cast<double>(proc_status_kib("VmRSS")) / 1024.0,
              static_cast<double>(proc_status_kib("VmHWM")) / 1024.0, seconds, apply_us_per_message);
  std::fflush(stdout);
  if (options.malloc_stats) ::malloc_stats();
  if (options.trim) {
    // What of the RSS is free heap that glibc could give back (malloc_trim
    // releases the whole free pages inside every arena, not only the top).
    ::malloc_trim(0);
    std::printf("%9s after malloc_trim(0): RSS %7.1f MB\n", "", static_cast<double>(proc_status_kib("VmRSS")) / 1024.0);
    std::fflush(stdout);
  }
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--config" && has_value) {
      options.config_file = argv[++i];
    } else if (arg == "--messages" && has_value) {
      options.checkpoints = parse_list(argv[++i]);
    } else if (arg == "--clients" && has_value) {
      options.clients = std::max<std::uint64_t>(std::stoull(argv[++i]), 1);
    } else if (arg == "--contents" && has_value) {
      options.contents = std::stoull(argv[++i]);
    } else if (arg == "--threads" && has_value) {
      options.threads = std::max(static_cast<unsigned>(std::stoul(argv[++i])), 1u);
    } else if (arg == "--rate" && has_value) {
      options.rate = std::stod(argv[++i]);
    } else if (arg == "--client-only") {
      options.all_identities = false;
    } else if (arg == "--malloc-stats") {
      options.malloc_stats = true;
    } else if (arg == "--trim") {
      options.trim = true;
    } else if (arg == "--max-bytes" && has_value) {
      options.max_bytes = std::stoull(argv[++i]);
    } else {
      throw std::invalid_argument("unknown argument " + std::string(arg));
    }
  }
  std::sort(options.checkpoints.begin(), options.checkpoints.end());
  if (options.checkpoints.empty() || options.rate <= 0) throw std::invalid_argument("need --messages and --rate > 0");
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::shared_ptr<const Config> config;
  try {
    options = parse_options(argc, argv);
    config = floodgate::policy::load_config_file(options.config_file);
  } catch (const std::exception& error) {
    std::cerr << "memory_store_bench: " << error.what()
              << "\nusage: memory_store_bench [--config FILE] [--messages N,N,...] [--clients N] "
                 "[--contents N] [--threads N] [--rate MSG_PER_S] [--client-only] [--malloc-stats] [--trim] "
                 "[--max-bytes N]\n";
    return 2;
  }
  {
    const auto plan = floodgate::policy::plan_counters(*config, facts_for(*config, options, 0));
    std::printf("config %s: %zu counter requests per message, %llu clients, %s, %u thread(s), %.0f msg/s\n",
                options.config_file.c_str(), plan.requests.size(),
                static_cast<unsigned long long>(options.clients),
                options.contents == 0 ? "every content new"
                                      : (std::to_string(options.contents) + " contents").c_str(),
                options.threads, options.rate);
  }

  const std::uint64_t heap_before = heap_in_use();
  std::printf("before the store: heap in use %.1f MB, RSS %.1f MB; store budget %.1f MB\n",
              static_cast<double>(heap_before) / 1e6, static_cast<double>(proc_status_kib("VmRSS")) / 1024.0,
              static_cast<double>(options.max_bytes) / 1e6);
  MemoryCounterStore store{store_options<floodgate::ratelimit::MemoryCounterStoreOptions>(options.max_bytes, 0)};
  const TimePoint start =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  const auto started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> apply_ns{0};  // wall time inside apply(), summed over threads
  std::uint64_t from = 0;
  for (const std::uint64_t checkpoint : options.checkpoints) {
    // Message n goes to thread n % threads; the threads meet at each
    // checkpoint so that the figures describe exactly `checkpoint` messages.
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < options.threads; ++t) {
      threads.emplace_back([&, t] {
        for (std::uint64_t n = from + t; n < checkpoint; n += options.threads) {
          const auto plan = floodgate::policy::plan_counters(*config, facts_for(*config, options, n));
          const auto now = start + std::chrono::milliseconds{
                                       static_cast<std::int64_t>(static_cast<double>(n) * 1000.0 / options.rate)};
          const auto apply_started = std::chrono::steady_clock::now();
          if (!store.apply(plan.requests, now)) throw std::logic_error("the in-process store failed");
          apply_ns += static_cast<std::uint64_t>(std::chrono::nanoseconds(std::chrono::steady_clock::now() - apply_started).count());
          requests += plan.requests.size();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    const double apply_us = static_cast<double>(apply_ns.exchange(0)) / 1000.0 / static_cast<double>(checkpoint - from);
    from = checkpoint;
    report(store, checkpoint, requests.load(), heap_before,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), apply_us, options);
  }
  return 0;
}
