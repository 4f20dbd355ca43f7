// RedisFreezeStore: the FreezeStore shared by every Floodgate instance on one
// Redis, so a freeze made by one instance is enforced by all of them.
//
// SUMMARY
// All freezes are one hash, `<key_prefix>:{freezes}:all` (one hash tag, so
// a cluster keeps it on one node); field = source_digest, value = JSON
//   {"source_hex": hex of the SourceSpec text, "rule": ..., "reason": ...,
//    "action": "quarantine"|"tempfail"|"reject",
//    "since_ms": ms since the epoch, "until_ms": ms since the epoch,
//    "incident": the incident id (optional: older freezes have none)}
// freeze()    one EVAL: keep an existing, well-formed, unexpired freeze
//             (false), else HSET the new one (true). Atomic, so of two
//             instances freezing one source at once exactly one gets true.
// unfreeze()  HDEL; true if a field was removed.
// active()    HGETALL; values that are expired or malformed are left out of
//             the answer and removed with a compare-and-delete EVAL (only if
//             unchanged, so a refreeze made meanwhile by another instance
//             survives). The cleanup is best effort: if it fails the answer
//             still stands and the next call tries again.
//
// Connections: one hiredis connection per call, opened with AUTH and SELECT
// as configured (redis_connection.hpp) and closed on return. Freezes are
// rare and active() is polled about once a second per instance, so a pool
// is not worth its stale-connection cases. Worst case for one call: connect_timeout +
// 4 x command_timeout (AUTH, SELECT, and two commands for active()).
//
// DIAGNOSTICS
// Every problem comes back as a CounterFailure, never an exception:
//   Timeout      connect or reply slower than its timeout
//   Unavailable  connection refused or closed, AUTH/SELECT refused, or any
//                other error reply from Redis (quoted in `detail`)
//   Protocol     a source_digest that is not 16 lowercase hex digits, an
//                action other than quarantine/tempfail/reject, or a reply
//                of an unexpected shape
//
// SECURITY
// The source text is attacker-influenced (client names, SASL users, header
// values) and may hold any bytes: it never becomes a key or a field (the
// field is the digest, validated), and is stored as hex so the JSON is
// plain ASCII and the round trip is exact. `rule` and `reason` are stored
// as JSON strings; bytes that are not valid UTF-8 are replaced by U+FFFD
// (nlohmann's error_handler_t::replace), so those two round-trip exactly
// only for UTF-8 text -- they are for people, not for matching. The
// password is not kept in any failure detail. SIGPIPE is set to ignored if
// it still has its default action, as RedisCounterStore does.
//
// LIMITS
// - Lua numbers are doubles: times are exact up to 2^53 ms (year 287396).
// - A hash has no per-field TTL before Redis 7.4: an expired freeze stays
//   in Redis until some instance's active() or freeze() meets it.
// - Host names are resolved by getaddrinfo(3), which the connect timeout
//   does not bound: configure an address or a unix socket.
//
// THREAD SAFETY
// Safe for concurrent use: calls share nothing but the options.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ratelimit/freeze_store.hpp"
#include "ratelimit/hex_text.hpp"
#include "ratelimit/redis_connection.hpp"

namespace floodgate::ratelimit {
namespace {

using Json = nlohmann::json;

constexpr std::size_t k_digest_chars = 16;

// KEYS[1] the hash, ARGV[1] digest, ARGV[2] new value, ARGV[3] now (ms).
// An existing value counts only if it has the shape active() accepts, so a
// value active() would drop never blocks a new freeze.
constexpr std::string_view k_freeze_script = R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  if ok and type(old) == 'table'
      and type(old.source_hex) == 'string' and type(old.rule) == 'string'
      and type(old.reason) == 'string'
      and (old.action == 'quarantine' or old.action == 'tempfail' or old.action == 'reject')
      and type(old.since_ms) == 'number' and type(old.until_ms) == 'number'
      and old.until_ms > tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// KEYS[1] the hash, ARGV pairs of (field, value read): delete each field
// whose value is still the one read.
constexpr std::string_view k_remove_unchanged_script = R"lua(
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
)lua";

template <typename T>
using Result = tl::expected<T, CounterFailure>;

tl::unexpected<CounterFailure> fail(CounterFailure::Kind kind, std::string detail) {
  return tl::unexpected{CounterFailure{kind, std::move(detail)}};
}

// An integer reply, or why not.
Result<long long> integer_reply(Result<RedisReplyPtr> reply, std::string_view doing) {
  if (!reply) return tl::unexpected{std::move(reply.error())};
  const redisReply& r = **reply;
  if (r.type == REDIS_REPLY_INTEGER) return r.integer;
  if (r.type == REDIS_REPLY_ERROR) {
    return fail(CounterFailure::Kind::Unavailable,
                std::string{doing} + " failed: " + std::string{redis_reply_text(r)});
  }
  return fail(CounterFailure::Kind::Protocol,
              std::string{doing} + ": expected an integer, got reply type " + std::to_string(r.type));
}

// ---- The stored form ------------------------------------------------------

bool is_digest(std::string_view text) {
  return text.size() == k_digest_chars && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::optional<std::string_view> action_name(policy::Action action) {
  switch (action) {
    case policy::Action::Quarantine:
      return "quarantine";
    case policy::Action::Tempfail:
      return "tempfail";
    case policy::Action::Reject:
      return "reject";
    default:
      return std::nullopt;
  }
}

std::optional<policy::Action> parse_action(std::string_view name) {
  for (const policy::Action action :
       {policy::Action::Quarantine, policy::Action::Tempfail, policy::Action::Reject}) {
    if (action_name(action) == name) return action;
  }
  return std::nullopt;
}



std::int64_t to_ms(TimePoint time) { return time.time_since_epoch().count(); }

std::string encode(const Freeze& freeze, std::string_view action) {
  const Json value = {{"source_hex", bytes_to_hex(freeze.source)},
                      {"rule", freeze.rule},
                      {"reason", freeze.reason},
                      {"action", action},
                      {"since_ms", to_ms(freeze.since)},
                      {"until_ms", to_ms(freeze.until)},
                      {"incident", freeze.incident}};
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<std::string> string_member(const Json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<TimePoint> time_member(const Json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return TimePoint{std::chrono::milliseconds{it->get<std::int64_t>()}};
}

// A stored value back into a Freeze; nullopt for anything malformed.
std::optional<Freeze> decode(std::string_view digest, std::string_view text) {
  if (!is_digest(digest)) return std::nullopt;
  const Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  const auto source_hex = string_member(value, "source_hex");
  const auto rule = string_member(value, "rule");
  const auto reason = string_member(value, "reason");
  const auto action_text = string_member(value, "action");
  const auto since = time_member(value, "since_ms");
  const auto until = time_member(value, "until_ms");
  if (!source_hex || !rule || !reason || !action_text || !since || !until) return std::nullopt;
  // Optional: freezes written before incidents existed have none.
  auto incident = string_member(value, "incident");
  if (incident && !std::all_of(incident->begin(), incident->end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
      })) {
    return std::nullopt;
  }
  auto source = hex_to_bytes(*source_hex);
  const auto action = parse_action(*action_text);
  if (!source || !action) return std::nullopt;
  return Freeze{.source = std::move(*source),
                .source_digest = std::string{digest},
                .rule = std::move(*rule),
                .reason = std::move(*reason),
                .action = *action,
                .since = *since,
                .until = *until,
                .incident = incident.value_or(std::string{})};
}

// ---- The store ------------------------------------------------------------

class RedisFreezeStore final : public FreezeStore {
 public:
  explicit RedisFreezeStore(RedisFreezeStoreOptions options)
      : m_options{std::move(options)}, m_key{m_options.key_prefix + ":{freezes}:all"} {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
  }

  Result<bool> freeze(const Freeze& freeze, TimePoint now) override {
    return guarded([&]() -> Result<bool> {
      if (!is_digest(freeze.source_digest)) {
        return fail(CounterFailure::Kind::Protocol, "freeze: source digest is not 16 lowercase hex digits");
      }
      const auto action = action_name(freeze.action);
      if (!action) {
        return fail(CounterFailure::Kind::Protocol, "freeze: action must be quarantine, tempfail or reject");
      }
      const std::string value = encode(freeze, *action);
      const std::string now_ms = std::to_string(to_ms(now));
      auto context = open_redis_connection(m_options.endpoint, m_options.password,
                                           m_options.connect_timeout, m_options.command_timeout);
      if (!context) return tl::unexpected{std::move(context.error())};
      auto created = integer_reply(
          redis_command(**context, {"EVAL", k_freeze_script, "1", m_key, freeze.source_digest, value, now_ms},
                  "freeze script"),
          "freeze script");
      if (!created) return tl::unexpected{std::move(created.error())};
      return *created == 1;
    });
  }

  Result<bool> unfreeze(std::string_view source_digest) override {
    return guarded([&]() -> Result<bool> {
      if (!is_digest(source_digest)) {
        return fail(CounterFailure::Kind::Protocol, "unfreeze: source digest is not 16 lowercase hex digits");
      }
      auto context = open_redis_connection(m_options.endpoint, m_options.password,
                                           m_options.connect_timeout, m_options.command_timeout);
      if (!context) return tl::unexpected{std::move(context.error())};
      auto removed = integer_reply(redis_command(**context, {"HDEL", m_key, source_digest}, "HDEL"), "HDEL");
      if (!removed) return tl::unexpected{std::move(removed.error())};
      return *removed > 0;
    });
  }

  Result<std::vector<Freeze>> active(TimePoint now) override {
    return guarded([&]() -> Result<std::vector<Freeze>> {
      auto context = open_redis_connection(m_options.endpoint, m_options.password,
                                           m_options.connect_timeout, m_options.command_timeout);
      if (!context) return tl::unexpected{std::move(context.error())};
      auto reply = redis_command(**context, {"HGETALL", m_key}, "HGETALL");
      if (!reply) return tl::unexpected{std::move(reply.error())};
      const redisReply& all = **reply;
      if (all.type == REDIS_REPLY_ERROR) {
        return fail(CounterFailure::Kind::Unavailable,
                    "HGETALL failed: " + std::string{redis_reply_text(all)});
      }
      if (all.type != REDIS_REPLY_ARRAY || all.elements % 2 != 0) {
        return fail(CounterFailure::Kind::Protocol,
                    "HGETALL: expected field/value pairs, got reply type " + std::to_string(all.type));
      }
      std::vector<Freeze> freezes;
      std::vector<std::string_view> stale;  // field, value, field, value...
      for (std::size_t i = 0; i < all.elements; i += 2) {
        const redisReply& field = *all.element[i];
        const redisReply& value = *all.element[i + 1];
        if (field.type != REDIS_REPLY_STRING || value.type != REDIS_REPLY_STRING) {
          return fail(CounterFailure::Kind::Protocol, "HGETALL: a field or value is not a string");
        }
        const std::string_view field_text{field.str, field.len};
        const std::string_view value_text{value.str, value.len};
        auto freeze = decode(field_text, value_text);
        if (freeze && freeze->until > now) {
          freezes.push_back(std::move(*freeze));
        } else {
          stale.push_back(field_text);
          stale.push_back(value_text);
        }
      }
      if (!stale.empty()) {
        std::vector<std::string_view> words{"EVAL", k_remove_unchanged_script, "1", m_key};
        words.insert(words.end(), stale.begin(), stale.end());
        // Best effort: a failed cleanup does not change which freezes are in force.
        (void)redis_command(**context, words, "remove expired freezes");
      }
      std::sort(freezes.begin(), freezes.end(), [](const Freeze& a, const Freeze& b) {
        return a.since != b.since ? a.since < b.since : a.source_digest < b.source_digest;
      });
      return freezes;
    });
  }

 private:
  // Keeps the promise of no exceptions (bad_alloc, a JSON surprise).
  template <typename F>
  static auto guarded(F&& body) -> decltype(body()) {
    return without_exceptions("redis freeze store", std::forward<F>(body));
  }

  RedisFreezeStoreOptions m_options;
  std::string m_key;
};

}  // namespace

std::unique_ptr<FreezeStore> make_redis_freeze_store(RedisFreezeStoreOptions options) {
  return std::make_unique<RedisFreezeStore>(std::move(options));
}

}  // namespace floodgate::ratelimit
