#include "ratelimit/redis_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <utility>

#include <sys/time.h>

namespace floodgate::ratelimit {
namespace {

// Redis error texts are quoted in logs; keep them a sane length.
constexpr std::size_t k_max_detail_chars = 200;

timeval to_timeval(std::chrono::milliseconds duration) {
  const auto ms = std::max<std::chrono::milliseconds::rep>(duration.count(), 1);
  return timeval{.tv_sec = static_cast<time_t>(ms / 1000),
                 .tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000)};
}

}  // namespace

CounterFailure redis_context_failure(const redisContext& context, int saved_errno, std::string_view doing) {
  const std::string_view message = context.errstr;
  const bool timed_out =
      context.err == REDIS_ERR_IO &&
      (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
       message.find("timed out") != std::string_view::npos ||
       message.find("temporarily unavailable") != std::string_view::npos);
  std::string detail{doing};
  detail += timed_out ? ": timed out (" : ": ";
  detail += message.empty() ? "connection error" : message;
  if (timed_out) detail += ")";
  return CounterFailure{timed_out ? CounterFailure::Kind::Timeout
                                  : CounterFailure::Kind::Unavailable,
                        std::move(detail)};
}

namespace {

// For AUTH and SELECT, whose only good answer is +OK.
tl::expected<void, CounterFailure> expect_ok(tl::expected<RedisReplyPtr, CounterFailure> reply,
                                             std::string_view doing) {
  if (!reply) return tl::unexpected{std::move(reply.error())};
  const redisReply& r = **reply;
  if (r.type == REDIS_REPLY_STATUS && redis_reply_text(r) == "OK") return {};
  return tl::unexpected{CounterFailure{
      CounterFailure::Kind::Unavailable,
      std::string{doing} + " refused: " +
          (r.type == REDIS_REPLY_ERROR ? std::string{redis_reply_text(r)} : "unexpected reply")}};
}

}  // namespace

std::string_view redis_reply_text(const redisReply& reply) {
  if (reply.str == nullptr) return {};
  return std::string_view{reply.str, reply.len}.substr(0, k_max_detail_chars);
}

tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::vector<const char*>& argv,
    const std::vector<std::size_t>& lengths, std::string_view doing) {
  errno = 0;
  void* raw = redisCommandArgv(&context, static_cast<int>(argv.size()), argv.data(),
                               lengths.data());
  const int saved_errno = errno;
  if (raw == nullptr) return tl::unexpected{redis_context_failure(context, saved_errno, doing)};
  return RedisReplyPtr{static_cast<redisReply*>(raw), freeReplyObject};
}

tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::span<const std::string_view> words, std::string_view doing) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(words.size());
  lengths.reserve(words.size());
  for (const std::string_view word : words) {
    argv.push_back(word.data());
    lengths.push_back(word.size());
  }
  return redis_command(context, argv, lengths, doing);
}

tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::initializer_list<std::string_view> words,
    std::string_view doing) {
  return redis_command(context, std::span<const std::string_view>{words.begin(), words.size()},
                       doing);
}

tl::expected<RedisContextPtr, CounterFailure> open_redis_connection(
    const RedisEndpoint& endpoint, const std::optional<std::string>& password,
    std::chrono::milliseconds connect_timeout, std::chrono::milliseconds command_timeout) {
  const std::string where = describe(endpoint);
  const timeval connect_tv = to_timeval(connect_timeout);
  errno = 0;
  redisContext* raw =
      endpoint.transport == RedisEndpoint::Transport::Unix
          ? redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), connect_tv)
          : redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, connect_tv);
  const int saved_errno = errno;
  if (raw == nullptr) {
    return tl::unexpected{CounterFailure{CounterFailure::Kind::Unavailable,
                                         "connect to " + where + ": out of memory"}};
  }
  RedisContextPtr context{raw, redisFree};
  if (context->err != 0) {
    return tl::unexpected{redis_context_failure(*context, saved_errno, "connect to " + where)};
  }
  if (redisSetTimeout(context.get(), to_timeval(command_timeout)) != REDIS_OK) {
    return tl::unexpected{redis_context_failure(*context, errno, "set timeout on " + where)};
  }

  const std::optional<std::string>& auth_password = password ? password : endpoint.password;
  if (auth_password) {
    auto reply =
        endpoint.username
            ? redis_command(*context, {"AUTH", *endpoint.username, *auth_password}, "AUTH")
            : redis_command(*context, {"AUTH", *auth_password}, "AUTH");
    if (auto ok = expect_ok(std::move(reply), "AUTH to " + where); !ok) {
      return tl::unexpected{std::move(ok.error())};
    }
  }
  if (endpoint.db != 0) {
    const std::string db = std::to_string(endpoint.db);
    if (auto ok = expect_ok(redis_command(*context, {"SELECT", db}, "SELECT"),
                            "SELECT " + db + " on " + where);
        !ok) {
      return tl::unexpected{std::move(ok.error())};
    }
  }
  return context;
}

}  // namespace floodgate::ratelimit
