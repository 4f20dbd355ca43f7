#include "ratelimit/redis_counter_store.hpp"

#include <algorithm>
#include <charconv>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/counter_script.hpp"
#include "ratelimit/redis_connection.hpp"
#include "ratelimit/sliding_window.hpp"

namespace floodgate::ratelimit {
namespace {

CounterResult fail(CounterFailure::Kind kind, std::string detail) {
  return tl::unexpected{CounterFailure{kind, std::move(detail)}};
}

// With Sentinel, a pooled connection older than this is closed instead of
// reused, so that the next one asks the sentinels again. A master that dies
// breaks its connections anyway; this is for a failover that leaves the old
// master up (SENTINEL FAILOVER for maintenance, a partition): the sentinels
// demote it only ~8 s after promoting the replica, and counts it takes
// meanwhile are lost. Reconnecting costs ~5 loopback round trips a second
// per connection.
constexpr std::chrono::milliseconds k_sentinel_connection_max_age{1000};

using Clock = std::chrono::steady_clock;

}  // namespace

// Idle connections plus the count of all open ones; also remembers the
// script's SHA1 once Redis told us.
class RedisCounterStore::Pool {
 public:
  // `max_age`: idle connections older than this are not reused (zero: no limit).
  Pool(unsigned size, std::chrono::milliseconds max_age) : m_size{std::max(size, 1u)}, m_max_age{max_age} {}

  struct Taken {
    RedisContextPtr context;  // null: open one (the slot is the caller's)
    Clock::time_point opened;
  };

  // An idle connection, or a null context and the right to open one, or
  // Busy after waiting `patience` for another thread to give one back.
  tl::expected<Taken, CounterFailure> take(std::chrono::milliseconds patience) {
    Taken expired{RedisContextPtr{nullptr, redisFree}, {}};
    std::unique_lock lock{m_mutex};
    const bool available = m_available.wait_for(
        lock, patience, [&] { return !m_idle.empty() || m_open < m_size; });
    if (!available) {
      return tl::unexpected{CounterFailure{
          CounterFailure::Kind::Busy,
          "all " + std::to_string(m_size) + " redis connections busy for " +
              std::to_string(patience.count()) + " ms"}};
    }
    if (!m_idle.empty()) {
      Taken taken = std::move(m_idle.back());
      m_idle.pop_back();
      if (m_max_age.count() == 0 || Clock::now() - taken.opened < m_max_age) return taken;
      // Too old: its slot is the caller's to open a fresh one; it is freed
      // (with `expired`) outside the lock.
      expired = std::move(taken);
      lock.unlock();
      return Taken{RedisContextPtr{nullptr, redisFree}, {}};
    }
    ++m_open;
    return Taken{RedisContextPtr{nullptr, redisFree}, {}};
  }

  // A healthy connection goes back to the idle list; a broken one (or a
  // slot whose connect failed) is closed and its slot freed. So are all the
  // idle ones: what broke one (a restart, a failover whose sentinels closed
  // the old master's clients or made it answer -READONLY) has broken them
  // too, and each would cost one more failed message and one more
  // retry_interval on the fallback before the store reached the new server.
  void give_back(Taken taken, bool healthy) {
    std::vector<Taken> dropped;
    {
      const std::lock_guard lock{m_mutex};
      if (healthy && taken.context) {
        m_idle.push_back(std::move(taken));
      } else {
        --m_open;
        dropped.swap(m_idle);
        m_open -= static_cast<unsigned>(dropped.size());
      }
    }
    m_available.notify_all();
    // Broken contexts are freed here, outside the lock.
  }

  std::size_t open() const {
    const std::lock_guard lock{m_mutex};
    return m_open;
  }

  std::string script_sha() const {
    const std::lock_guard lock{m_mutex};
    return m_script_sha;
  }

  void set_script_sha(std::string sha) {
    const std::lock_guard lock{m_mutex};
    m_script_sha = std::move(sha);
  }

 private:
  const unsigned m_size;
  const std::chrono::milliseconds m_max_age;
  mutable std::mutex m_mutex;
  std::condition_variable m_available;
  std::vector<Taken> m_idle;
  unsigned m_open = 0;
  std::string m_script_sha;
};

// One pooled connection for the length of one apply(); returned on scope
// exit, kept only if the caller marked it healthy.
class RedisCounterStore::Lease {
 public:
  Lease(Pool& pool, Pool::Taken taken) : m_pool{pool}, m_taken{std::move(taken)} {}
  ~Lease() { m_pool.give_back(std::move(m_taken), m_healthy); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  bool connected() const { return m_taken.context != nullptr; }
  void attach(RedisContextPtr context) {
    m_taken.context = std::move(context);
    m_taken.opened = Clock::now();
  }
  redisContext& context() { return *m_taken.context; }
  void mark_healthy() { m_healthy = true; }

 private:
  Pool& m_pool;
  Pool::Taken m_taken;
  bool m_healthy = false;
};

RedisCounterStore::RedisCounterStore(RedisCounterStoreOptions options)
    : m_options{std::move(options)},
      m_pool{std::make_unique<Pool>(m_options.pool_size, m_options.endpoint.sentinel_master.empty()
                                                             ? std::chrono::milliseconds{0}
                                                             : k_sentinel_connection_max_age)} {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
}

RedisCounterStore::~RedisCounterStore() = default;

std::size_t RedisCounterStore::open_connections() const { return m_pool->open(); }

CounterResult RedisCounterStore::apply(std::span<const policy::CounterRequest> requests,
                                       TimePoint now) {
  try {
    auto taken = m_pool->take(m_options.command_timeout);
    if (!taken) return tl::unexpected{std::move(taken.error())};
    Lease lease{*m_pool, std::move(*taken)};
    if (!lease.connected()) {
      auto opened = open_redis_connection(m_options.endpoint, m_options.password,
                                          m_options.connect_timeout,
                                          m_options.command_timeout);
      if (!opened) return tl::unexpected{std::move(opened.error())};
      lease.attach(std::move(*opened));
    }
    CounterResult result = run_script(lease, requests, now);
    // Any failure may have left the connection mid-reply: never reuse it.
    if (result) lease.mark_healthy();
    return result;
  } catch (const std::exception& error) {
    return fail(CounterFailure::Kind::Protocol,
                std::string{"redis counter store: "} + error.what());
  } catch (...) {
    return fail(CounterFailure::Kind::Protocol, "redis counter store: unknown exception");
  }
}

CounterResult RedisCounterStore::run_script(Lease& lease,
                                            std::span<const policy::CounterRequest> requests,
                                            TimePoint now) {
  redisContext& context = lease.context();

  std::string sha = m_pool->script_sha();
  if (sha.empty()) {
    auto loaded = redis_command(context, {"SCRIPT", "LOAD", k_counter_script}, "SCRIPT LOAD");
    if (!loaded) return tl::unexpected{std::move(loaded.error())};
    if ((*loaded)->type != REDIS_REPLY_STRING) {
      return fail((*loaded)->type == REDIS_REPLY_ERROR ? CounterFailure::Kind::Unavailable
                                                       : CounterFailure::Kind::Protocol,
                  "SCRIPT LOAD: " + std::string{redis_reply_text(**loaded)});
    }
    sha = std::string{redis_reply_text(**loaded)};
    m_pool->set_script_sha(sha);
  }

  // EVALSHA sha numkeys KEYS... now (kind window amount|n members...)...
  // KEYS must all precede ARGV. The keys and numbers made here are written
  // one after the other into a single string, and argv points into it once
  // it is complete: a few allocations per message instead of one or two per
  // key (a Distinct counter has 12 keys; heaptrack counted ~170 string
  // allocations per message in the version that made a string per key).
  std::size_t text_bytes = 0;
  std::size_t words = 4;
  std::size_t key_count = 0;
  for (const policy::CounterRequest& request : requests) {
    const bool distinct = request.kind == policy::CounterKind::Distinct;
    key_count += distinct ? k_window_slots + 2 : 1;
    // a Distinct's 12 keys (its key, ":" or ":u", a slot index); two numbers
    if (distinct) text_bytes += (k_window_slots + 2) * (request.key.size() + 2 + 20);
    text_bytes += 2 * 20;
    words += (distinct ? k_window_slots + 2 + request.members.size() : 1) + 3;
  }
  std::string text;
  text.reserve(text_bytes + 2 * 20);
  const auto append_number = [&text](std::int64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    text.append(digits, end);
  };
  const auto append_key = [&](const std::string& key, std::string_view separator,
                              std::int64_t slot) {
    text += key;
    text += separator;
    append_number(slot);
  };

  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  // Where in `text` each word of argv left null starts, in order (no word
  // pushed from elsewhere is null: std::string::data() never is).
  std::vector<std::size_t> text_offsets;
  argv.reserve(words);
  lengths.reserve(words);
  text_offsets.reserve(words);
  const auto push = [&](std::string_view word) {
    argv.push_back(word.data());
    lengths.push_back(word.size());
  };
  // Pushes what was appended to `text` since `from`.
  const auto push_text = [&](std::size_t from) {
    argv.push_back(nullptr);
    lengths.push_back(text.size() - from);
    text_offsets.push_back(from);
  };
  push("EVALSHA");
  push(sha);
  std::size_t from = text.size();
  append_number(static_cast<std::int64_t>(key_count));
  push_text(from);
  for (const policy::CounterRequest& request : requests) {
    if (request.kind == policy::CounterKind::Sum) {
      push(request.key);
      continue;
    }
    // The slot keys s-10..s, then the window's union for slot s (the
    // calling convention in counter_script.hpp).
    const SlidingWindow window{request.window, now};
    for (std::int64_t slot = window.oldest_slot(); slot <= window.current_slot(); ++slot) {
      from = text.size();
      append_key(request.key, ":", slot);
      push_text(from);
    }
    from = text.size();
    append_key(request.key, ":u", window.current_slot());
    push_text(from);
  }
  from = text.size();
  append_number(now.time_since_epoch().count());
  push_text(from);
  for (const policy::CounterRequest& request : requests) {
    const bool distinct = request.kind == policy::CounterKind::Distinct;
    push(distinct ? "d" : "s");
    from = text.size();
    append_number(std::chrono::milliseconds{request.window}.count());
    push_text(from);
    from = text.size();
    append_number(static_cast<std::int64_t>(distinct ? request.members.size() : request.amount));
    push_text(from);
    if (distinct) {
      for (const std::string& member : request.members) push(member);
    }
  }
  auto offset = text_offsets.begin();
  for (const char*& word : argv) {
    if (word == nullptr) word = text.data() + *offset++;
  }

  auto reply = redis_command(context, argv, lengths, "EVALSHA");
  if (reply && (*reply)->type == REDIS_REPLY_ERROR &&
      redis_reply_text(**reply).starts_with("NOSCRIPT")) {
    // Redis lost its script cache (restart, SCRIPT FLUSH, failover). EVAL
    // runs the script and caches it again, so the next EVALSHA works.
    argv[0] = "EVAL";
    lengths[0] = 4;
    argv[1] = k_counter_script.data();
    lengths[1] = k_counter_script.size();
    reply = redis_command(context, argv, lengths, "EVAL");
  }
  if (!reply) return tl::unexpected{std::move(reply.error())};

  const redisReply& values = **reply;
  // -READONLY (a master demoted while this connection was open) lands here
  // too: as a failure it drops the connection, and the next one asks the
  // sentinels again.
  if (values.type == REDIS_REPLY_ERROR) {
    return fail(CounterFailure::Kind::Unavailable,
                "counter script failed: " + std::string{redis_reply_text(values)});
  }
  if (values.type != REDIS_REPLY_ARRAY || values.elements != requests.size()) {
    return fail(CounterFailure::Kind::Protocol,
                "counter script: expected an array of " + std::to_string(requests.size()) +
                    " integers, got reply type " + std::to_string(values.type));
  }
  CounterValues result;
  result.reserve(values.elements);
  for (std::size_t i = 0; i < values.elements; ++i) {
    const redisReply& value = *values.element[i];
    if (value.type != REDIS_REPLY_INTEGER || value.integer < 0) {
      return fail(CounterFailure::Kind::Protocol,
                  "counter script: value " + std::to_string(i) + " is not a count");
    }
    result.push_back(static_cast<std::uint64_t>(value.integer));
  }
  return result;
}

}  // namespace floodgate::ratelimit
