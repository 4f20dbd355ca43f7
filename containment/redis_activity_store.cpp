// RedisActivityStore: the ActivityStore every Floodgate instance flushes its
// per-minute activity into, and `floodgatectl top` reads.
//
// SUMMARY
// Layout (activity.hpp), bucket B = floor(ms / 60000), P = <key_prefix>:{top}:
//   P<B>:messages     ZSET  source_digest -> messages      (ZINCRBY)
//   P<B>:recipients   ZSET  source_digest -> recipients    (ZINCRBY)
//   P<B>:names        HASH  source_digest -> {"identity": NAME, "source_hex": HEX}
//   P<B>:u:<digest>   HLL   the source's lower-cased recipient addresses (PFADD)
// Every key gets EXPIREAT end of minute B + history + 2 minutes, in seconds
// since the epoch: the same deadline from every instance and every flush,
// and a key older than any window can read is gone. (The instances' clocks
// and Redis' are assumed to agree within those 2 minutes, as freezes assume.)
// One {top} hash tag keeps every key on one cluster slot, so one PFCOUNT can
// take a source's HLLs of several minutes.
//
// add()  one pipelined round trip: per delta ZINCRBY x2, HSET, PFADD and
//        EXPIREAT of its HLL; per bucket EXPIREAT of its three shared keys.
// top()  round trip 1: ZRANGE ... WITHSCORES of both ZSETs and HGETALL of the
//        names, for each of the window's buckets; the sums are made here.
//        Round trip 2: one PFCOUNT per source over the HLLs of the buckets it
//        appears in (a union, so a recipient met in two minutes counts once),
//        for every source when ranking by unique recipients, else only for
//        the `limit` ranked first.
//
// Connections: one per call, as RedisFreezeStore (ratelimit/redis_connection.hpp:
// AUTH, SELECT, timeouts). A flush happens about once a second per instance.
//
// DIAGNOSTICS
// Failures are CounterFailure values, never exceptions: Timeout, Unavailable
// (connection refused or closed, AUTH refused, any error reply, quoted) and
// Protocol (a delta whose digest is not 16 lowercase hex digits -- nothing
// is sent then -- or a reply of an unexpected shape). A pipeline is not a
// transaction: when add() fails midway, part of the aggregate may be
// written; the caller drops the rest (top is a live view).
//
// SECURITY
// Sources are attacker text (header values, SASL names): only the validated
// digest goes into key names and fields; the text is stored hex-encoded in
// the names JSON and decoded byte for byte. Recipient addresses are only
// PFADD values. Members read back that are not digests are ignored, so a
// stray write cannot make top() build an odd key name.
//
// LIMITS
// - ZSET scores are doubles: counts are exact up to 2^53.
// - HyperLogLog counts are estimates (standard error 0.81%); small counts
//   are exact in practice.
// - top() reads at most ceil(history / 60) buckets whatever the window.
//   Ranking by unique recipients costs one PFCOUNT per active source.
//
// THREAD SAFETY
// Safe for concurrent use: calls share nothing but the options.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "containment/activity.hpp"
#include "ratelimit/hex_text.hpp"
#include "ratelimit/redis_connection.hpp"

namespace floodgate::containment {
namespace {

using Json = nlohmann::json;
using ratelimit::CounterFailure;
using ratelimit::RedisReplyPtr;

template <typename T>
using Result = tl::expected<T, CounterFailure>;

// Keys outlive the oldest minute a window can read by this much, for clock
// differences between instances, floodgatectl and Redis.
constexpr std::int64_t k_expiry_slack_seconds = 120;

tl::unexpected<CounterFailure> fail(CounterFailure::Kind kind, std::string detail) {
  return tl::unexpected{CounterFailure{kind, std::move(detail)}};
}

// ---- A pipeline ----------------------------------------------------------------

// A command as argv words (binary-safe).
using Command = std::vector<std::string>;

// As redis_connection's context failure: hiredis reports a read timeout
// (SO_RCVTIMEO) as an I/O error with EAGAIN.

// Sends every command, then reads every reply: one round trip (hiredis
// writes its whole buffer before the first read). Error replies are
// replies; the caller looks at them.
Result<std::vector<RedisReplyPtr>> pipeline(redisContext& context, const std::vector<Command>& commands,
                                            std::string_view doing) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& command : commands) {
    argv.clear();
    lengths.clear();
    for (const auto& word : command) {
      argv.push_back(word.data());
      lengths.push_back(word.size());
    }
    if (redisAppendCommandArgv(&context, static_cast<int>(argv.size()), argv.data(), lengths.data()) !=
        REDIS_OK) {
      return tl::unexpected{ratelimit::redis_context_failure(context, errno, doing)};
    }
  }
  std::vector<RedisReplyPtr> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    errno = 0;
    const int status = redisGetReply(&context, &raw);
    const int saved_errno = errno;
    if (status != REDIS_OK || raw == nullptr) {
      if (raw != nullptr) freeReplyObject(raw);
      return tl::unexpected{ratelimit::redis_context_failure(context, saved_errno, doing)};
    }
    replies.emplace_back(static_cast<redisReply*>(raw), freeReplyObject);
  }
  return replies;
}

// The first error reply, as a failure.
Result<void> no_error_reply(const std::vector<RedisReplyPtr>& replies, std::string_view doing) {
  for (const auto& reply : replies) {
    if (reply->type == REDIS_REPLY_ERROR) {
      return fail(CounterFailure::Kind::Unavailable,
                  std::string{doing} + " failed: " + std::string{ratelimit::redis_reply_text(*reply)});
    }
  }
  return {};
}

// ---- The stored form -----------------------------------------------------------



std::string encode_name(const ActivityStore::Delta& delta) {
  const Json value = {{"identity", delta.identity}, {"source_hex", ratelimit::bytes_to_hex(delta.source)}};
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

struct Name {
  std::string identity;
  std::string source;
};

// nullopt for anything malformed (the source then shows as unknown).
std::optional<Name> decode_name(std::string_view text) {
  const Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  const auto identity = value.find("identity");
  const auto source_hex = value.find("source_hex");
  if (identity == value.end() || !identity->is_string() || source_hex == value.end() || !source_hex->is_string()) {
    return std::nullopt;
  }
  auto source = ratelimit::hex_to_bytes(source_hex->get<std::string>());
  if (!source) return std::nullopt;
  return Name{identity->get<std::string>(), std::move(*source)};
}

// A ZSET score ("3", "1.5e+20") as a count: negative and NaN read as 0,
// beyond 2^64 as the largest count.
std::optional<std::uint64_t> parse_score(std::string_view text) {
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  if (!(value > 0)) return 0;
  if (value >= 18446744073709551616.0) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(value);
}

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return b > std::numeric_limits<std::uint64_t>::max() - a ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

// A reply that must be an array of string pairs (ZRANGE WITHSCORES, HGETALL).
Result<const redisReply*> pairs_reply(const redisReply& reply, std::string_view doing) {
  if (reply.type == REDIS_REPLY_ERROR) {
    return fail(CounterFailure::Kind::Unavailable,
                std::string{doing} + " failed: " + std::string{ratelimit::redis_reply_text(reply)});
  }
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements % 2 != 0) {
    return fail(CounterFailure::Kind::Protocol,
                std::string{doing} + ": expected pairs, got reply type " + std::to_string(reply.type));
  }
  for (std::size_t i = 0; i < reply.elements; ++i) {
    if (reply.element[i]->type != REDIS_REPLY_STRING) {
      return fail(CounterFailure::Kind::Protocol, std::string{doing} + ": an element is not a string");
    }
  }
  return &reply;
}

std::string_view text_of(const redisReply& reply) { return {reply.str, reply.len}; }

// ---- The store -----------------------------------------------------------------

class RedisActivityStore final : public ActivityStore {
 public:
  RedisActivityStore(ratelimit::RedisFreezeStoreOptions options, std::chrono::seconds history)
      : m_options{std::move(options)},
        m_prefix{m_options.key_prefix + ":{top}:"},
        m_history_seconds{std::max<std::int64_t>(history.count(), 60)} {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  }

  Result<void> add(const std::vector<Delta>& deltas) override {
    return guarded([&]() -> Result<void> {
      if (deltas.empty()) return {};
      for (const auto& delta : deltas) {
        if (!is_source_digest(delta.source_digest)) {
          return fail(CounterFailure::Kind::Protocol, "activity: source digest is not 16 lowercase hex digits");
        }
      }
      std::vector<Command> commands;
      std::set<std::int64_t> buckets;
      for (const auto& delta : deltas) {
        const std::string deadline = expiry_of(delta.minute);
        const std::string& digest = delta.source_digest;
        commands.push_back({"ZINCRBY", key(delta.minute, "messages"), std::to_string(delta.messages), digest});
        commands.push_back(
            {"ZINCRBY", key(delta.minute, "recipients"), std::to_string(delta.recipients), digest});
        commands.push_back({"HSET", key(delta.minute, "names"), digest, encode_name(delta)});
        if (!delta.recipient_addresses.empty()) {
          const std::string hll = unique_key(delta.minute, digest);
          Command pfadd{"PFADD", hll};
          pfadd.insert(pfadd.end(), delta.recipient_addresses.begin(), delta.recipient_addresses.end());
          commands.push_back(std::move(pfadd));
          commands.push_back({"EXPIREAT", hll, deadline});
        }
        buckets.insert(delta.minute);
      }
      for (const std::int64_t minute : buckets) {
        const std::string deadline = expiry_of(minute);
        for (const char* what : {"messages", "recipients", "names"}) {
          commands.push_back({"EXPIREAT", key(minute, what), deadline});
        }
      }
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      auto replies = pipeline(**context, commands, "activity flush");
      if (!replies) return tl::unexpected{std::move(replies.error())};
      return no_error_reply(*replies, "activity flush");
    });
  }

  Result<std::vector<TopEntry>> top(std::chrono::seconds window, TopOrder order, std::size_t limit,
                                    ratelimit::TimePoint now) override {
    return top_for_identity("", window, order, limit, now);
  }

  Result<std::vector<TopEntry>> top_for_identity(std::string_view identity, std::chrono::seconds window,
                                                 TopOrder order, std::size_t limit,
                                                 ratelimit::TimePoint now) override {
    return guarded([&]() -> Result<std::vector<TopEntry>> {
      const std::int64_t history_minutes = window_minutes(std::chrono::seconds{m_history_seconds});
      const std::int64_t minutes = std::min(window_minutes(window), history_minutes);
      const std::int64_t last = activity_minute(now);
      const std::int64_t first = last - minutes + 1;

      std::vector<Command> reads;
      for (std::int64_t minute = first; minute <= last; ++minute) {
        reads.push_back({"ZRANGE", key(minute, "messages"), "0", "-1", "WITHSCORES"});
        reads.push_back({"ZRANGE", key(minute, "recipients"), "0", "-1", "WITHSCORES"});
        reads.push_back({"HGETALL", key(minute, "names")});
      }
      auto context = connect();
      if (!context) return tl::unexpected{std::move(context.error())};
      auto replies = pipeline(**context, reads, "activity read");
      if (!replies) return tl::unexpected{std::move(replies.error())};

      std::map<std::string, Sum> sums;  // by digest
      for (std::int64_t minute = first; minute <= last; ++minute) {
        const auto at = static_cast<std::size_t>(minute - first) * 3;
        auto ok = add_counts(*(*replies)[at], minute, &TopEntry::messages, sums);
        if (ok) ok = add_counts(*(*replies)[at + 1], minute, &TopEntry::recipients, sums);
        if (ok) ok = add_names(*(*replies)[at + 2], sums);
        if (!ok) return tl::unexpected{std::move(ok.error())};
      }

      std::vector<TopEntry> entries;
      std::map<std::string, std::set<std::int64_t>> minutes_of;  // by digest
      for (auto& [digest, sum] : sums) {
        if (!identity.empty() && sum.entry.identity != identity) continue;
        sum.entry.source_digest = digest;
        entries.push_back(std::move(sum.entry));
        minutes_of.emplace(digest, std::move(sum.minutes));
      }
      // Ranking by a count already known first cuts the PFCOUNTs to `limit`.
      if (order != TopOrder::UniqueRecipients) rank_top_entries(entries, order, limit);

      std::vector<Command> counts;
      for (std::size_t i = 0; i < entries.size(); ++i) {
        Command pfcount{"PFCOUNT"};
        for (const std::int64_t minute : minutes_of[entries[i].source_digest]) {
          pfcount.push_back(unique_key(minute, entries[i].source_digest));
        }
        counts.push_back(std::move(pfcount));
      }
      if (!counts.empty()) {
        auto unique = pipeline(**context, counts, "activity unique recipients");
        if (!unique) return tl::unexpected{std::move(unique.error())};
        for (std::size_t i = 0; i < entries.size(); ++i) {
          const redisReply& reply = *(*unique)[i];
          if (reply.type == REDIS_REPLY_ERROR) {
            return fail(CounterFailure::Kind::Unavailable,
                        "PFCOUNT failed: " + std::string{ratelimit::redis_reply_text(reply)});
          }
          if (reply.type != REDIS_REPLY_INTEGER) {
            return fail(CounterFailure::Kind::Protocol,
                        "PFCOUNT: expected an integer, got reply type " + std::to_string(reply.type));
          }
          entries[i].unique_recipients = reply.integer < 0 ? 0 : static_cast<std::uint64_t>(reply.integer);
        }
      }
      rank_top_entries(entries, order, limit);
      return entries;
    });
  }

 private:
  struct Sum {
    TopEntry entry;
    std::set<std::int64_t> minutes;  // the buckets it appears in
  };

  // Sums one ZRANGE WITHSCORES reply into `field` of each source.
  static Result<void> add_counts(const redisReply& reply, std::int64_t minute, std::uint64_t TopEntry::*field,
                                 std::map<std::string, Sum>& sums) {
    auto pairs = pairs_reply(reply, "ZRANGE");
    if (!pairs) return tl::unexpected{std::move(pairs.error())};
    for (std::size_t i = 0; i < reply.elements; i += 2) {
      const std::string_view digest = text_of(*reply.element[i]);
      if (!is_source_digest(digest)) continue;
      const auto score = parse_score(text_of(*reply.element[i + 1]));
      if (!score) return fail(CounterFailure::Kind::Protocol, "ZRANGE: a score is not a number");
      Sum& sum = sums[std::string{digest}];
      sum.entry.*field = saturating_add(sum.entry.*field, *score);
      sum.minutes.insert(minute);
    }
    return {};
  }

  // Names the sources already summed; called oldest bucket first, so the
  // newest name wins.
  static Result<void> add_names(const redisReply& reply, std::map<std::string, Sum>& sums) {
    auto pairs = pairs_reply(reply, "HGETALL");
    if (!pairs) return tl::unexpected{std::move(pairs.error())};
    for (std::size_t i = 0; i < reply.elements; i += 2) {
      const auto found = sums.find(std::string{text_of(*reply.element[i])});
      if (found == sums.end()) continue;
      if (auto name = decode_name(text_of(*reply.element[i + 1]))) {
        found->second.entry.identity = std::move(name->identity);
        found->second.entry.source = std::move(name->source);
      }
    }
    return {};
  }

  Result<ratelimit::RedisContextPtr> connect() const {
    return ratelimit::open_redis_connection(m_options.endpoint, m_options.password, m_options.connect_timeout,
                                            m_options.command_timeout);
  }

  std::string key(std::int64_t minute, std::string_view what) const {
    return m_prefix + std::to_string(minute) + ":" + std::string{what};
  }
  std::string unique_key(std::int64_t minute, std::string_view digest) const {
    return m_prefix + std::to_string(minute) + ":u:" + std::string{digest};
  }
  // End of minute B + history + slack, in seconds since the epoch.
  std::string expiry_of(std::int64_t minute) const {
    return std::to_string((minute + 1) * 60 + m_history_seconds + k_expiry_slack_seconds);
  }

  // Keeps the promise of no exceptions (bad_alloc, a JSON surprise).
  template <typename F>
  static auto guarded(F&& body) -> decltype(body()) {
    return ratelimit::without_exceptions("redis activity store", std::forward<F>(body));
  }

  ratelimit::RedisFreezeStoreOptions m_options;
  std::string m_prefix;
  std::int64_t m_history_seconds;
};

}  // namespace

std::unique_ptr<ActivityStore> make_redis_activity_store(ratelimit::RedisFreezeStoreOptions options,
                                                         std::chrono::seconds history) {
  return std::make_unique<RedisActivityStore>(std::move(options), history);
}

}  // namespace floodgate::containment
