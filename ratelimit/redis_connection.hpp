// Redis connection helpers shared by the Redis stores (counters, freezes,
// and containment's incidents and activity). It includes hiredis, so no
// public header may include it.
//
// open_redis_connection() connects to an endpoint, sets the command timeout
// and sends AUTH and SELECT as configured; redis_command() sends one
// binary-safe command. Every call is bounded by the given timeouts: the
// connect by connect_timeout, each command (AUTH, SELECT included) by
// command_timeout. Host names are resolved by getaddrinfo(3), which the
// connect timeout does not bound.
//
// With endpoint.sentinel_master set, open_redis_connection() first asks the
// sentinels, in order, for that master's address (AUTH with
// endpoint.sentinel_password), connects there, and keeps the connection only
// if ROLE says "master"; otherwise it asks the next sentinel. Nothing is
// cached: every new connection asks again, which is how a failover is
// followed. Each sentinel tried adds its own timeouts to the worst case.
// The failure then lists what each sentinel answered.
//
// Failures are CounterFailure values (Timeout, or Unavailable for a refused
// or closed connection and a refused AUTH/SELECT); nothing here throws
// except std::bad_alloc. An error reply to redis_command() is a reply, not
// a failure: the caller decides what it means. Passwords never appear in a
// failure detail; Redis' own error texts are quoted, cut to a sane length.
//
// Thread safety: the functions share no state; a context is used by one
// thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>
#include <tl/expected.hpp>

#include "ratelimit/counter_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ratelimit {

using RedisContextPtr = std::unique_ptr<redisContext, decltype(&redisFree)>;
using RedisReplyPtr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

// A connected context with its command timeout set, authenticated and on
// endpoint.db. `password`, when set, overrides endpoint.password.
// What went wrong on a context whose last call failed. `saved_errno` is
// errno right after the failing call: hiredis reports a read timeout
// (SO_RCVTIMEO) as an I/O error with EAGAIN and a connect timeout with
// ETIMEDOUT, so both become Kind::Timeout; anything else is Unavailable.
CounterFailure redis_context_failure(const redisContext& context, int saved_errno, std::string_view doing);

tl::expected<RedisContextPtr, CounterFailure> open_redis_connection(
    const RedisEndpoint& endpoint, const std::optional<std::string>& password,
    std::chrono::milliseconds connect_timeout, std::chrono::milliseconds command_timeout);

// Sends one command and returns its reply, or why there is none. `doing`
// names the command in a failure detail. argv and lengths have one entry
// per word.
tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::vector<const char*>& argv,
    const std::vector<std::size_t>& lengths, std::string_view doing);
tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::span<const std::string_view> words, std::string_view doing);
tl::expected<RedisReplyPtr, CounterFailure> redis_command(
    redisContext& context, std::initializer_list<std::string_view> words,
    std::string_view doing);

// The reply's string (status, error or bulk), cut to a length fit for a
// log line; empty if it has none.
std::string_view redis_reply_text(const redisReply& reply);

// Runs `body`, which returns tl::expected<T, CounterFailure>, and turns any
// exception it throws (bad_alloc, a JSON surprise) into a Protocol failure
// naming `store`: the Redis stores promise failures as values, never as
// exceptions.
template <typename Body>
auto without_exceptions(std::string_view store, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& error) {
    return tl::unexpected{CounterFailure{CounterFailure::Kind::Protocol, std::string{store} + ": " + error.what()}};
  } catch (...) {
    return tl::unexpected{CounterFailure{CounterFailure::Kind::Protocol, std::string{store} + ": unknown exception"}};
  }
}

}  // namespace floodgate::ratelimit
