#include "ratelimit/redis_counter_reader.hpp"

#include <array>
#include <charconv>
#include <string_view>
#include <vector>

#include "ratelimit/redis_connection.hpp"
#include "ratelimit/sliding_window.hpp"

namespace floodgate::ratelimit {

struct RedisCounterReader::Connection {
  RedisContextPtr context{nullptr, &redisFree};
};

namespace {

CounterResult fail(CounterFailure::Kind kind, std::string detail) {
  return tl::unexpected{CounterFailure{kind, std::move(detail)}};
}

std::optional<std::uint64_t> count_of(const redisReply& reply) {
  if (reply.type == REDIS_REPLY_NIL) return 0;  // a slot never written
  if (reply.type == REDIS_REPLY_INTEGER) return reply.integer < 0 ? std::nullopt : std::optional<std::uint64_t>(reply.integer);
  if (reply.type != REDIS_REPLY_STRING) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(reply.str, reply.str + reply.len, value);
  if (error != std::errc{} || end != reply.str + reply.len) return std::nullopt;
  return value;
}

}  // namespace

RedisCounterReader::RedisCounterReader(RedisEndpoint endpoint, std::chrono::milliseconds connect_timeout,
                                       std::chrono::milliseconds command_timeout)
    : m_endpoint(std::move(endpoint)), m_connect_timeout(connect_timeout), m_command_timeout(command_timeout) {}

RedisCounterReader::~RedisCounterReader() = default;

CounterResult RedisCounterReader::apply(std::span<const policy::CounterRequest> requests, TimePoint now) {
  return without_exceptions("redis counter reader", [&]() -> CounterResult {
    if (!m_connection) {
      auto opened = open_redis_connection(m_endpoint, std::nullopt, m_connect_timeout, m_command_timeout);
      if (!opened) return tl::unexpected{std::move(opened.error())};
      m_connection = std::make_unique<Connection>();
      m_connection->context = std::move(*opened);
    }
    redisContext& context = *m_connection->context;
    CounterValues values;
    values.reserve(requests.size());
    for (const policy::CounterRequest& request : requests) {
      const SlidingWindow window{request.window, now};
      std::vector<std::string> words;
      words.push_back(request.kind == policy::CounterKind::Sum ? "HMGET" : "PFCOUNT");
      if (request.kind == policy::CounterKind::Sum) words.push_back(request.key);
      for (std::int64_t slot = window.oldest_slot(); slot <= window.current_slot(); ++slot) {
        words.push_back(request.kind == policy::CounterKind::Sum ? std::to_string(slot)
                                                                  : request.key + ":" + std::to_string(slot));
      }
      std::vector<std::string_view> views(words.begin(), words.end());
      auto reply = redis_command(context, views, words[0]);
      if (!reply) {
        m_connection.reset();
        return tl::unexpected{std::move(reply.error())};
      }
      const redisReply& answer = **reply;
      if (answer.type == REDIS_REPLY_ERROR) {
        return fail(CounterFailure::Kind::Unavailable, words[0] + " " + request.key + ": " +
                                                           std::string(redis_reply_text(answer)));
      }
      if (request.kind == policy::CounterKind::Sum) {
        if (answer.type != REDIS_REPLY_ARRAY || answer.elements != k_slots_read) {
          return fail(CounterFailure::Kind::Protocol, "HMGET " + request.key + ": not an array of 11 counts");
        }
        std::array<std::uint64_t, k_slots_read> counts{};
        for (std::size_t i = 0; i < k_slots_read; ++i) {
          const auto count = count_of(*answer.element[i]);
          if (!count) return fail(CounterFailure::Kind::Protocol, "HMGET " + request.key + ": a slot is not a count");
          counts[i] = *count;
        }
        counts[k_slots_read - 1] = saturating_add(counts[k_slots_read - 1], request.amount);
        values.push_back(window.sum(counts));
      } else {
        const auto count = count_of(answer);
        if (!count) return fail(CounterFailure::Kind::Protocol, "PFCOUNT " + request.key + ": not a count");
        values.push_back(saturating_add(*count, request.members.size()));
      }
    }
    return values;
  });
}

}  // namespace floodgate::ratelimit
