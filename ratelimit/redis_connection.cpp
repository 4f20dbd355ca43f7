#include "ratelimit/redis_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
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

namespace {

using Opened = tl::expected<RedisContextPtr, CounterFailure>;

tl::unexpected<CounterFailure> unavailable(std::string detail) {
  return tl::unexpected{CounterFailure{CounterFailure::Kind::Unavailable, std::move(detail)}};
}

// A TCP or unix connection with its command timeout set; nothing sent yet.
Opened connect_to(const RedisEndpoint& endpoint, const std::string& host, std::uint16_t port,
                  const std::string& where, std::chrono::milliseconds connect_timeout,
                  std::chrono::milliseconds command_timeout) {
  const timeval connect_tv = to_timeval(connect_timeout);
  errno = 0;
  redisContext* raw = endpoint.transport == RedisEndpoint::Transport::Unix
                          ? redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), connect_tv)
                          : redisConnectWithTimeout(host.c_str(), port, connect_tv);
  const int saved_errno = errno;
  if (raw == nullptr) return unavailable("connect to " + where + ": out of memory");
  RedisContextPtr context{raw, redisFree};
  if (context->err != 0) {
    return tl::unexpected{redis_context_failure(*context, saved_errno, "connect to " + where)};
  }
  if (redisSetTimeout(context.get(), to_timeval(command_timeout)) != REDIS_OK) {
    return tl::unexpected{redis_context_failure(*context, errno, "set timeout on " + where)};
  }
  return context;
}

// Connects to the Redis at host:port (or the endpoint's socket), then AUTH
// and SELECT as the endpoint says.
Opened open_data_connection(const RedisEndpoint& endpoint, const std::string& host, std::uint16_t port,
                            const std::string& where, const std::optional<std::string>& password,
                            std::chrono::milliseconds connect_timeout,
                            std::chrono::milliseconds command_timeout) {
  auto context = connect_to(endpoint, host, port, where, connect_timeout, command_timeout);
  if (!context) return context;

  const std::optional<std::string>& auth_password = password ? password : endpoint.password;
  if (auth_password) {
    auto reply =
        endpoint.username
            ? redis_command(**context, {"AUTH", *endpoint.username, *auth_password}, "AUTH")
            : redis_command(**context, {"AUTH", *auth_password}, "AUTH");
    if (auto ok = expect_ok(std::move(reply), "AUTH to " + where); !ok) {
      return tl::unexpected{std::move(ok.error())};
    }
  }
  if (endpoint.db != 0) {
    const std::string db = std::to_string(endpoint.db);
    if (auto ok = expect_ok(redis_command(**context, {"SELECT", db}, "SELECT"),
                            "SELECT " + db + " on " + where);
        !ok) {
      return tl::unexpected{std::move(ok.error())};
    }
  }
  return context;
}

// One sentinel's answer to SENTINEL get-master-addr-by-name, or why there
// is none; every failure detail starts by naming the sentinel, for the
// caller's list of what each said.
tl::expected<SentinelAddress, CounterFailure> ask_sentinel(const SentinelAddress& sentinel,
                                                           const RedisEndpoint& endpoint,
                                                           std::chrono::milliseconds connect_timeout,
                                                           std::chrono::milliseconds command_timeout) {
  const std::string where = "sentinel " + describe(sentinel);
  const auto said = [&](CounterFailure failure) {
    failure.detail = where + ": " + failure.detail;
    return tl::unexpected{std::move(failure)};
  };
  RedisEndpoint tcp;  // the transport only; host and port are passed apart
  auto context = connect_to(tcp, sentinel.host, sentinel.port, where, connect_timeout, command_timeout);
  if (!context) return tl::unexpected{std::move(context.error())};  // "connect to sentinel ...: ..."
  if (endpoint.sentinel_password) {
    if (auto ok = expect_ok(redis_command(**context, {"AUTH", *endpoint.sentinel_password}, "AUTH"),
                            "AUTH to " + where);
        !ok) {
      return tl::unexpected{std::move(ok.error())};
    }
  }
  auto reply = redis_command(**context, {"SENTINEL", "get-master-addr-by-name", endpoint.sentinel_master},
                             "SENTINEL get-master-addr-by-name");
  if (!reply) return said(std::move(reply.error()));
  const redisReply& r = **reply;
  if (r.type == REDIS_REPLY_NIL) {
    return said({CounterFailure::Kind::Unavailable, "does not know master '" + endpoint.sentinel_master + "'"});
  }
  if (r.type == REDIS_REPLY_ERROR) {
    return said({CounterFailure::Kind::Unavailable, "refused: " + std::string{redis_reply_text(r)}});
  }
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 || r.element[0]->type != REDIS_REPLY_STRING ||
      r.element[1]->type != REDIS_REPLY_STRING) {
    return said({CounterFailure::Kind::Protocol, "unexpected reply type " + std::to_string(r.type)});
  }
  const std::string_view port_text = redis_reply_text(*r.element[1]);
  unsigned port = 0;
  const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return said({CounterFailure::Kind::Protocol, "port '" + std::string{port_text} + "' is not a port"});
  }
  return SentinelAddress{std::string{redis_reply_text(*r.element[0])}, static_cast<std::uint16_t>(port)};
}

// ROLE's first word: "master", "slave" or "sentinel"; or why there is none.
tl::expected<std::string, CounterFailure> role_of(redisContext& context) {
  auto reply = redis_command(context, {"ROLE"}, "ROLE");
  if (!reply) return tl::unexpected{std::move(reply.error())};
  const redisReply& r = **reply;
  if (r.type == REDIS_REPLY_ERROR) return unavailable("ROLE refused: " + std::string{redis_reply_text(r)});
  if (r.type != REDIS_REPLY_ARRAY || r.elements == 0 || r.element[0]->type != REDIS_REPLY_STRING) {
    return tl::unexpected{CounterFailure{CounterFailure::Kind::Protocol, "ROLE: unexpected reply"}};
  }
  return std::string{redis_reply_text(*r.element[0])};
}

// Asks the sentinels in order and returns a connection to the first master
// one of them names that says it is one. Nothing is remembered between
// calls: a failover is followed by the next connection opened. Each sentinel
// costs up to connect_timeout + 2 command timeouts, the master it names up
// to connect_timeout + 4 command timeouts.
Opened open_through_sentinels(const RedisEndpoint& endpoint, const std::optional<std::string>& password,
                              std::chrono::milliseconds connect_timeout,
                              std::chrono::milliseconds command_timeout) {
  std::string heard;  // what each sentinel said, for the failure detail
  const auto note = [&](const std::string& what) {
    if (!heard.empty()) heard += "; ";
    heard += what;
  };
  for (const SentinelAddress& sentinel : endpoint.sentinels) {
    auto master = ask_sentinel(sentinel, endpoint, connect_timeout, command_timeout);
    if (!master) {
      note(master.error().detail);
      continue;
    }
    const std::string named = "sentinel " + describe(sentinel) + " named " + describe(*master);
    auto context = open_data_connection(endpoint, master->host, master->port, describe(*master), password,
                                        connect_timeout, command_timeout);
    if (!context) {
      note(named + ", which failed: " + context.error().detail);
      continue;
    }
    // Right after a failover a sentinel may still name the demoted master,
    // which would answer every write with -READONLY.
    auto role = role_of(**context);
    if (!role) {
      note(named + ", which failed: " + role.error().detail);
      continue;
    }
    if (*role != "master") {
      note(named + ", whose ROLE is " + *role + ", not master");
      continue;
    }
    return context;
  }
  return unavailable("no master '" + endpoint.sentinel_master + "' from the sentinels: " + heard);
}

}  // namespace

tl::expected<RedisContextPtr, CounterFailure> open_redis_connection(
    const RedisEndpoint& endpoint, const std::optional<std::string>& password,
    std::chrono::milliseconds connect_timeout, std::chrono::milliseconds command_timeout) {
  if (!endpoint.sentinel_master.empty()) {
    return open_through_sentinels(endpoint, password, connect_timeout, command_timeout);
  }
  return open_data_connection(endpoint, endpoint.host, endpoint.port, describe(endpoint), password,
                              connect_timeout, command_timeout);
}

}  // namespace floodgate::ratelimit
