// Google Benchmark of the per-message policy work, without I/O: what one
// message costs Floodgate's CPU between MAIL FROM and the verdict, under the
// shipped policy (conf/floodgate.yaml through the config loader) and the
// in-process counter store. Run by hand, not by ctest; see README.md.
//
//   scoring_bench [benchmark flags] [--message FILE.eml] [--config FILE] [--corpus-json DIR]
//
// --message: the sample message (default tests/unit/content/data/
// spam-2-00565-alternative-qp.eml, 7.4 KB: a 6.3 KB quoted-printable
// multipart/alternative body). --corpus-json: the SpamAssassin corpus as
// tests/unit/content/fetch_corpus.sh fetches it (DEST/package/data); its
// 4-6 KiB messages are fed in turn by session/corpus_4_to_6_KiB.
//
// Benchmarks:
//   session/*    a MessageSession fed as milter_callbacks.cpp feeds it
//                (connection info, sender, macros, 3 recipients, headers one
//                by one, the body in 64 KiB chunks), then decide(); with the
//                MemoryCounterStore, or with a store that answers zeros (the
//                policy work alone), and the verdict's log line.
//   fingerprint/ the same message through the fingerprinter alone, so the
//                session's cost can be split.
//   policy/*     classify, plan_counters, score on prepared MessageFacts.
//   identity/*   build_identity / source_of per shipped identity, and the
//                client address parse.
// Every benchmark reports allocs/msg and alloc_bytes/msg (per iteration):
// this binary links counting_allocator.cpp, whose operator new counts in
// thread-local integers (about a nanosecond per allocation).
//
// Arguments "client" and "all_identities": the message as smtp-source sends
// it (an SMTP client in 10/8, no SASL: the identity `client` only), or with a
// SASL login and an X-PHP-Originating-Script header as well (every shipped
// identity, so every shipped rule plans its counters).
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "counting_allocator.hpp"
#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "policy/content_fingerprint.hpp"
#include "policy/identity.hpp"
#include "policy/scoring.hpp"
#include "policy/source_spec.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace {

using floodgate::milter::ConnectionInfo;
using floodgate::milter::Decision;
using floodgate::milter::MessageSession;
using floodgate::policy::Config;
using floodgate::policy::MessageFacts;
using floodgate::ratelimit::CounterResult;
using floodgate::ratelimit::CounterStore;
using floodgate::ratelimit::MemoryCounterStore;
using floodgate::ratelimit::TimePoint;

constexpr std::size_t k_chunk = 64 * 1024;  // libmilter's largest body chunk
// Clients the session benchmarks rotate over, and how many messages go into
// one MemoryCounterStore before it is replaced (8 per client). Every message
// has the same content, so more than 20 clients would fire
// same_content_sources (one content from many sources: a botnet) and tag
// every message; 16 clients sending 8 messages of 3 recipients each stay
// below every shipped threshold, and the messages are accepted, as ordinary
// mail is. Replacing the store also keeps distinct-recipient sets at the
// size a real client's are, instead of growing with the iteration count.
constexpr std::uint32_t k_clients = 16;
constexpr std::uint64_t k_messages_per_store = 8 * k_clients;
// 400 messages/s, the rate of the Postfix benchmark: windows see traffic
// spread over time as they would, not a million messages in one millisecond.
constexpr std::chrono::microseconds k_message_interval{2500};

// Allocations made by the benchmark's thread between construction and
// report(), per iteration.
struct AllocationMeter {
  std::uint64_t allocations = floodgate::bench::allocations_on_this_thread();
  std::uint64_t bytes = floodgate::bench::allocated_bytes_on_this_thread();

  void report(benchmark::State& state) const {
    const double iterations = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["allocs/msg"] = static_cast<double>(floodgate::bench::allocations_on_this_thread() - allocations) / iterations;
    state.counters["alloc_bytes/msg"] = static_cast<double>(floodgate::bench::allocated_bytes_on_this_thread() - bytes) / iterations;
  }
};

struct Message {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::size_t raw_bytes = 0;
  std::string file;
};

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

// Headers as libmilter hands them (value after the colon, folding kept),
// the body after the first empty line (same split as fingerprint_bench).
Message split_message(std::string_view raw) {
  Message message;
  const std::string text = to_crlf(raw);
  message.raw_bytes = text.size();
  std::string_view rest = text;
  if (rest.starts_with("From ")) rest.remove_prefix(std::min(rest.size(), rest.find('\n') + 1));
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    if ((line.front() == ' ' || line.front() == '\t') && !message.headers.empty()) {
      message.headers.back().second.append("\r\n").append(line);
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      message.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    }
  }
  message.body = std::string(rest);
  return message;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every *.json under `dir` whose "text" holds a raw message of 4 to 6 KiB
// (the SpamAssassin corpus as tests/unit/content/fetch_corpus.sh fetches it).
void load_corpus_json(const std::filesystem::path& dir, std::vector<Message>& messages) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const auto json = nlohmann::json::parse(read_file(file), nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object() || !json.contains("text") || !json["text"].is_string()) continue;
    Message message = split_message(json["text"].get<std::string>());
    if (message.raw_bytes >= 4 * 1024 && message.raw_bytes <= 6 * 1024) messages.push_back(std::move(message));
  }
}

// Set up once in main(), read by every benchmark.
struct World {
  std::shared_ptr<const Config> config;
  Message message;
  std::string spill_directory;  // the session keeps its copy, as in spool mode
};
World g_world;
// Three envelope recipients per message, different for each message a
// store sees.
std::vector<std::array<std::string, 3>> g_recipients;
std::vector<std::string> g_sasl_users;  // one per client

// The message with the variable parts of its shape: an X-PHP-Originating-Script
// header (one of the headers of interest) for "all identities".
std::vector<std::pair<std::string, std::string>> headers_for(bool all_identities,
                                                             const Message& message = g_world.message) {
  auto headers = message.headers;
  if (all_identities) headers.emplace_back("X-PHP-Originating-Script", " 33:contact.php");
  return headers;
}

std::string client_address(std::uint64_t n) {
  const auto c = static_cast<std::uint32_t>(n % k_clients);
  return "10.1." + std::to_string(c / 256) + "." + std::to_string(c % 256);
}

// What libmilter's callbacks do for one message (on_envfrom .. on_eom):
// sender and macros at MAIL FROM, recipients, headers, body, the queue id
// and SASL login again at end-of-message, then decide().
void feed_message(MessageSession& session, const std::vector<std::pair<std::string, std::string>>& headers,
                  std::string_view body,
                  std::uint64_t n, bool all_identities) {
  session.set_sender("<newsletter@example.net>");
  session.set_macro("i", "4F2A11C0421");
  // One SASL login per client: a shared one would be one user sending
  // every message, over msgs_per_user's threshold.
  if (all_identities) session.set_macro("{auth_authen}", g_sasl_users[n % k_clients]);
  // Recipients vary per message, as in real traffic: distinct-recipient
  // counters see new members, not the same three forever. Made beforehand
  // so that the harness's own strings are not counted as the session's.
  for (const std::string& recipient : g_recipients[n % k_messages_per_store]) session.add_recipient(recipient, false);
  for (const auto& [name, value] : headers) session.add_header(name, value);
  for (std::size_t at = 0; at < body.size(); at += k_chunk) session.add_body_chunk(body.substr(at, k_chunk));
  // on_eom asks for the queue id and the SASL login again.
  session.set_macro("i", "4F2A11C0421");
  if (all_identities) session.set_macro("auth_authen", g_sasl_users[n % k_clients]);
}

Decision run_message(const ConnectionInfo& connection,
                     const std::vector<std::pair<std::string, std::string>>& headers, std::uint64_t n,
                     bool all_identities, CounterStore& store, TimePoint now) {
  MessageSession session(g_world.config, connection, g_world.spill_directory);
  feed_message(session, headers, g_world.message.body, n, all_identities);
  return session.decide(store, now);
}

ConnectionInfo connection_for(std::uint64_t n) {
  ConnectionInfo connection;
  connection.client_address = client_address(n);
  connection.client_name = "web" + std::to_string(n % k_clients) + ".example.net";
  connection.helo = connection.client_name;
  connection.macros["daemon_name"] = "smtpd";
  return connection;
}

// Answers zeros: the session's policy work without any counter store.
class ZeroCounterStore final : public CounterStore {
 public:
  CounterResult apply(std::span<const floodgate::policy::CounterRequest> requests, TimePoint) override {
    return floodgate::ratelimit::CounterValues(requests.size(), 0);
  }
  std::string_view state_label() const override { return "zero"; }
};

TimePoint start_time() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// One ConnectionInfo per client, built before the timing (a connection
// outlives its messages); everything from MAIL FROM to the verdict is timed.
std::vector<ConnectionInfo> connections() {
  std::vector<ConnectionInfo> all;
  for (std::uint64_t n = 0; n < k_clients; ++n) all.push_back(connection_for(n));
  return all;
}

void advance(TimePoint& now, std::uint64_t n) {
  if (n % 2 == 0) now += std::chrono::duration_cast<std::chrono::milliseconds>(2 * k_message_interval);
}

void session_memory_store(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  const auto headers = headers_for(all_identities);
  const auto clients = connections();
  auto store = std::make_unique<MemoryCounterStore>();
  TimePoint now = start_time();
  std::uint64_t n = 0;
  std::uint64_t not_accepted = 0;
  const AllocationMeter meter;
  for (auto _ : state) {
    if (n % k_messages_per_store == 0) {
      state.PauseTiming();
      store = std::make_unique<MemoryCounterStore>();
      state.ResumeTiming();
    }
    const Decision decision = run_message(clients[n % k_clients], headers, n, all_identities, *store, now);
    if (decision.action != floodgate::policy::Action::Accept) ++not_accepted;
    advance(now, ++n);
  }
  meter.report(state);
  // Should be 0: the rotation keeps every client far below the thresholds.
  state.counters["not_accepted"] = static_cast<double>(not_accepted);
  state.SetItemsProcessed(state.iterations());
}

void session_zero_store(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  const auto headers = headers_for(all_identities);
  const auto clients = connections();
  ZeroCounterStore store;
  const TimePoint now = start_time();
  std::uint64_t n = 0;
  const AllocationMeter meter;
  for (auto _ : state) {
    benchmark::DoNotOptimize(run_message(clients[n % k_clients], headers, n, all_identities, store, now));
    ++n;
  }
  meter.report(state);
  state.SetItemsProcessed(state.iterations());
}

// The SpamAssassin corpus's 4-6 KiB messages in turn (--corpus-json), each
// message its own content as in real traffic: the average message, where
// session/message is one message's cost.
std::vector<Message> g_corpus;

void session_corpus(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  std::vector<std::vector<std::pair<std::string, std::string>>> headers;
  std::size_t bytes = 0;
  for (const Message& message : g_corpus) {
    headers.push_back(headers_for(all_identities, message));
    bytes += message.raw_bytes;
  }
  const auto clients = connections();
  auto store = std::make_unique<MemoryCounterStore>();
  TimePoint now = start_time();
  std::uint64_t n = 0;
  std::uint64_t not_accepted = 0;
  const AllocationMeter meter;
  for (auto _ : state) {
    if (n % k_messages_per_store == 0) {
      state.PauseTiming();
      store = std::make_unique<MemoryCounterStore>();
      state.ResumeTiming();
    }
    const std::size_t m = n % g_corpus.size();
    MessageSession session(g_world.config, clients[n % k_clients], g_world.spill_directory);
    feed_message(session, headers[m], g_corpus[m].body, n, all_identities);
    if (session.decide(*store, now).action != floodgate::policy::Action::Accept) ++not_accepted;
    advance(now, ++n);
  }
  meter.report(state);
  state.counters["not_accepted"] = static_cast<double>(not_accepted);
  state.counters["messages"] = static_cast<double>(g_corpus.size());
  state.counters["avg_bytes"] = static_cast<double>(bytes) / static_cast<double>(g_corpus.size());
  state.SetItemsProcessed(state.iterations());
}

// decide() alone: what the MTA waits for after sending end-of-message
// (fingerprint finish, plan, the store, scoring). The session is fed with
// the timer paused; allocations are counted around decide() only.
void session_decide(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  const auto headers = headers_for(all_identities);
  const auto clients = connections();
  auto store = std::make_unique<MemoryCounterStore>();
  TimePoint now = start_time();
  std::uint64_t n = 0;
  std::uint64_t allocations = 0;
  std::uint64_t bytes = 0;
  std::unique_ptr<MessageSession> session;
  for (auto _ : state) {
    state.PauseTiming();
    if (n % k_messages_per_store == 0) store = std::make_unique<MemoryCounterStore>();
    session.reset();  // the previous message's destruction is not decide()'s
    session = std::make_unique<MessageSession>(g_world.config, clients[n % k_clients], g_world.spill_directory);
    feed_message(*session, headers, g_world.message.body, n, all_identities);
    state.ResumeTiming();
    const std::uint64_t allocations_before = floodgate::bench::allocations_on_this_thread();
    const std::uint64_t bytes_before = floodgate::bench::allocated_bytes_on_this_thread();
    benchmark::DoNotOptimize(session->decide(*store, now));
    allocations += floodgate::bench::allocations_on_this_thread() - allocations_before;
    bytes += floodgate::bench::allocated_bytes_on_this_thread() - bytes_before;
    advance(now, ++n);
  }
  const double iterations = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
  state.counters["allocs/msg"] = static_cast<double>(allocations) / iterations;
  state.counters["alloc_bytes/msg"] = static_cast<double>(bytes) / iterations;
}

// The verdict's log line (milter_callbacks.cpp writes one per message).
void session_log_line(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  ZeroCounterStore store;
  MessageSession session(g_world.config, connection_for(1), g_world.spill_directory);
  session.set_sender("<newsletter@example.net>");
  session.set_macro("i", "4F2A11C0421");
  if (all_identities) session.set_macro("{auth_authen}", "webshop@example.net");
  for (int i = 0; i < 3; ++i) session.add_recipient("<user" + std::to_string(i) + "@example.org>", false);
  for (const auto& [name, value] : headers_for(all_identities)) session.add_header(name, value);
  session.add_body_chunk(g_world.message.body);
  const Decision decision = session.decide(store, start_time());
  const AllocationMeter meter;
  for (auto _ : state) {
    benchmark::DoNotOptimize(floodgate::milter::format_decision_log(session, decision, std::chrono::microseconds(134)));
  }
  meter.report(state);
}

void fingerprint_message(benchmark::State& state) {
  const AllocationMeter meter;
  for (auto _ : state) {
    auto fingerprinter = floodgate::policy::make_content_fingerprinter(g_world.config->content);
    for (const auto& [name, value] : g_world.message.headers) fingerprinter->add_header(name, value);
    const std::string_view body = g_world.message.body;
    for (std::size_t at = 0; at < body.size(); at += k_chunk) fingerprinter->add_body_chunk(body.substr(at, k_chunk));
    benchmark::DoNotOptimize(fingerprinter->finish());
  }
  meter.report(state);
}

// The facts decide() scores, as the session collects them for message `n`.
MessageFacts prepared_facts(bool all_identities, std::uint64_t n = 0) {
  ZeroCounterStore store;
  MessageSession session(g_world.config, connection_for(n));
  session.set_sender("<newsletter@example.net>");
  if (all_identities) session.set_macro("{auth_authen}", "webshop" + std::to_string(n) + "@example.net");
  session.add_recipient("<user" + std::to_string(n) + "@example.org>", false);
  session.add_recipient("<info@example.com>", false);
  session.add_recipient("<sales@example.co.uk>", false);
  for (const auto& [name, value] : headers_for(all_identities)) session.add_header(name, value);
  session.add_body_chunk(g_world.message.body);
  (void)session.decide(store, start_time());  // fills facts().fingerprint
  return session.facts();
}

void policy_classify(benchmark::State& state) {
  const MessageFacts facts = prepared_facts(state.range(0) != 0);
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::classify(*g_world.config, facts));
  meter.report(state);
}

void policy_plan_counters(benchmark::State& state) {
  const MessageFacts facts = prepared_facts(state.range(0) != 0);
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::plan_counters(*g_world.config, facts));
  meter.report(state);
  const auto plan = floodgate::policy::plan_counters(*g_world.config, facts);
  state.counters["requests"] = static_cast<double>(plan.requests.size());
}

// Scoring with counter values that make the content rules fire, so the
// reasons are built as they are for a burst (the expensive case).
void policy_score(benchmark::State& state) {
  const MessageFacts facts = prepared_facts(state.range(0) != 0);
  const auto plan = floodgate::policy::plan_counters(*g_world.config, facts);
  const std::vector<std::uint64_t> values(plan.requests.size(), state.range(1));
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::score(*g_world.config, plan, values));
  meter.report(state);
}

// The policy core's whole per-message step: classify, plan, score (values 0).
void policy_plan_and_score(benchmark::State& state) {
  const MessageFacts facts = prepared_facts(state.range(0) != 0);
  const AllocationMeter meter;
  for (auto _ : state) {
    benchmark::DoNotOptimize(floodgate::policy::classify(*g_world.config, facts));
    const auto plan = floodgate::policy::plan_counters(*g_world.config, facts);
    const std::vector<std::uint64_t> values(plan.requests.size(), 0);
    benchmark::DoNotOptimize(floodgate::policy::score(*g_world.config, plan, values));
  }
  meter.report(state);
}

// The in-process store applying one message's plan (client rotating as in
// the session benchmarks, store replaced every k_messages_per_store).
void store_memory_apply(benchmark::State& state) {
  const bool all_identities = state.range(0) != 0;
  std::vector<std::vector<floodgate::policy::CounterRequest>> plans;
  for (std::uint64_t n = 0; n < k_clients; ++n)
    plans.push_back(floodgate::policy::plan_counters(*g_world.config, prepared_facts(all_identities, n)).requests);
  auto store = std::make_unique<MemoryCounterStore>();
  TimePoint now = start_time();
  std::uint64_t n = 0;
  const AllocationMeter meter;
  for (auto _ : state) {
    if (n % k_messages_per_store == 0) {
      state.PauseTiming();
      store = std::make_unique<MemoryCounterStore>();
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(store->apply(plans[n % k_clients], now));
    advance(now, ++n);
  }
  meter.report(state);
  state.counters["requests"] = static_cast<double>(plans.front().size());
}

// One identity of the shipped config, built for a message (plan_counters
// builds it once per rule that names it).
void identity_build(benchmark::State& state, std::size_t identity_index) {
  const MessageFacts facts = prepared_facts(/*all_identities=*/true);
  const auto& definition = g_world.config->identities[identity_index];
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::build_identity(definition, facts));
  meter.report(state);
}

void identity_source_of(benchmark::State& state, std::size_t identity_index) {
  const MessageFacts facts = prepared_facts(/*all_identities=*/true);
  const auto& definition = g_world.config->identities[identity_index];
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::source_of(definition, facts));
  meter.report(state);
}

void identity_client_address_parse(benchmark::State& state) {
  const std::string address = "10.1.3.77";
  const AllocationMeter meter;
  for (auto _ : state) benchmark::DoNotOptimize(floodgate::policy::IpAddress::parse(address));
  meter.report(state);
}

void shapes(benchmark::internal::Benchmark* benchmark) {
  benchmark->ArgName("all_identities")->Arg(0)->Arg(1);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes its --benchmark_* flags out
  std::string message_file = FLOODGATE_SOURCE_DIR "/tests/unit/content/data/spam-2-00565-alternative-qp.eml";
  std::string config_file = FLOODGATE_SOURCE_DIR "/conf/floodgate.yaml";
  std::string corpus_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--message" || arg == "--config" || arg == "--corpus-json") && i + 1 < argc) {
      (arg == "--message" ? message_file : arg == "--config" ? config_file : corpus_dir) = argv[++i];
    } else {
      std::cerr << "scoring_bench: unknown argument " << arg
                << "\nusage: scoring_bench [--benchmark_...] [--message FILE.eml] [--config FILE] "
                   "[--corpus-json DIR]\n";
      return 2;
    }
  }
  char spill_template[] = "/tmp/fg-scoring-bench-XXXXXX";
  try {
    g_world.config = floodgate::policy::load_config_file(config_file);
    g_world.message = split_message(read_file(message_file));
    g_world.message.file = std::filesystem::path(message_file).filename();
    if (!corpus_dir.empty()) {
      load_corpus_json(corpus_dir, g_corpus);
      if (g_corpus.empty()) throw std::runtime_error("no message of 4 to 6 KiB under " + corpus_dir);
    }
    if (::mkdtemp(spill_template) == nullptr) throw std::runtime_error("mkdtemp failed");
    g_world.spill_directory = spill_template;
  } catch (const std::exception& error) {
    std::cerr << "scoring_bench: " << error.what() << "\n";
    return 1;
  }
  for (std::uint64_t n = 0; n < k_clients; ++n) g_sasl_users.push_back("webshop" + std::to_string(n) + "@example.net");
  for (std::uint64_t n = 0; n < k_messages_per_store; ++n) {
    g_recipients.push_back({"<user" + std::to_string(n) + "@example.org>",
                            "<info" + std::to_string(n % 97) + "@example.com>", "<sales@example.co.uk>"});
  }
  benchmark::AddCustomContext("message", g_world.message.file + " (" + std::to_string(g_world.message.raw_bytes) +
                                             " bytes, body " + std::to_string(g_world.message.body.size()) + ")");
  benchmark::AddCustomContext("config", config_file);

  using benchmark::kMicrosecond;
  using benchmark::kNanosecond;
  benchmark::RegisterBenchmark("session/message/memory_store", session_memory_store)->Apply(shapes)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("session/message/zero_store", session_zero_store)->Apply(shapes)->Unit(kMicrosecond);
  if (!g_corpus.empty()) {
    benchmark::RegisterBenchmark("session/corpus_4_to_6_KiB/memory_store", session_corpus)
        ->Apply(shapes)
        ->Unit(kMicrosecond);
  }
  benchmark::RegisterBenchmark("session/decide/memory_store", session_decide)->Apply(shapes)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("session/log_line", session_log_line)->Apply(shapes)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("fingerprint/message", fingerprint_message)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("policy/classify", policy_classify)->Apply(shapes)->Unit(kNanosecond);
  benchmark::RegisterBenchmark("policy/plan_counters", policy_plan_counters)->Apply(shapes)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("policy/score", policy_score)
      ->ArgNames({"all_identities", "value"})
      ->Args({0, 0})
      ->Args({1, 0})
      ->Args({1, 1000})
      ->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("policy/plan_and_score", policy_plan_and_score)->Apply(shapes)->Unit(kMicrosecond);
  benchmark::RegisterBenchmark("store/memory_apply", store_memory_apply)->Apply(shapes)->Unit(kMicrosecond);
  for (std::size_t i = 0; i < g_world.config->identities.size(); ++i) {
    const std::string& name = g_world.config->identities[i].name;
    benchmark::RegisterBenchmark(("identity/build_identity/" + name).c_str(), identity_build, i)->Unit(kNanosecond);
    benchmark::RegisterBenchmark(("identity/source_of/" + name).c_str(), identity_source_of, i)->Unit(kNanosecond);
  }
  benchmark::RegisterBenchmark("identity/client_address_parse", identity_client_address_parse)->Unit(kNanosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ignored;
  std::filesystem::remove_all(g_world.spill_directory, ignored);
  return 0;
}
