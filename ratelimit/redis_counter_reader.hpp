// RedisCounterReader: the counters in Redis, read and never written
// (floodgatectl explain --live).
//
// SUMMARY
// apply() answers what RedisCounterStore::apply() would answer for the same
// requests at `now`, without changing any key: each counter is read with a
// plain command, one per request on one connection.
//   Sum:      HMGET of the slots s-10..s, added up as SlidingWindow::sum()
//             does, plus the request's own amount (the message being
//             explained, as if it were counted now): exact.
//   Distinct: PFCOUNT over the 11 slot keys s-10..s (with more than one key
//             Redis merges them in a scratch register array and writes
//             nothing; a single key's PFCOUNT would cache its estimate in
//             the key), plus the request's members: an upper bound, as if
//             every member of this message were new to the window
//             (is_upper_bound() says so).
// The window's union key the daemon's script keeps ("<key>:u<s>") is not
// read: the 11 slot keys hold the same members.
//
// Not for the daemon: no pool, no retry, one connection made on first use.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "ratelimit/counter_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ratelimit {

class RedisCounterReader final : public CounterStore {
 public:
  RedisCounterReader(RedisEndpoint endpoint, std::chrono::milliseconds connect_timeout,
                     std::chrono::milliseconds command_timeout);
  ~RedisCounterReader() override;

  CounterResult apply(std::span<const policy::CounterRequest> requests, TimePoint now) override;
  std::string_view state_label() const override { return "redis-read-only"; }

  // Whether the value apply() gives for `request` is an upper bound rather
  // than the count itself.
  static bool is_upper_bound(const policy::CounterRequest& request) {
    return request.kind == policy::CounterKind::Distinct && !request.members.empty();
  }

 private:
  struct Connection;
  RedisEndpoint m_endpoint;
  std::chrono::milliseconds m_connect_timeout;
  std::chrono::milliseconds m_command_timeout;
  std::unique_ptr<Connection> m_connection;
};

}  // namespace floodgate::ratelimit
