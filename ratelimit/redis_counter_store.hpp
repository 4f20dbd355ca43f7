// RedisCounterStore: the CounterStore shared by every node, in Redis.
//
// SUMMARY
// apply() is ONE round trip: an EVALSHA of the script in counter_script.hpp
// that bumps every counter of the message and returns the values. The
// script is loaded (SCRIPT LOAD) on first use; if Redis has forgotten it
// (restart, SCRIPT FLUSH, failover) the NOSCRIPT reply is answered by one
// EVAL, which also puts it back in Redis' cache. state_label() is "redis".
//
// Connections: a pool of at most pool_size hiredis connections shared by
// all threads, opened lazily (with AUTH and SELECT as configured) and closed
// on any error, so a Redis that went away is reconnected to on a later call
// without anyone noticing. Nothing is opened by the constructor.
//
// DIAGNOSTICS
// Every problem comes back as a CounterFailure, never an exception:
//   Timeout      connect or reply slower than its timeout, or every pooled
//                connection busy for longer than command_timeout
//   Unavailable  connection refused or closed, AUTH/SELECT refused, or any
//                other error reply from Redis (quoted in `detail`)
//   Protocol     a reply of an unexpected shape
// Worst case for one apply(): connect_timeout + 4 x command_timeout (AUTH,
// SELECT, SCRIPT LOAD and EVALSHA on a fresh connection); typically one
// command_timeout.
//
// SECURITY
// Keys and members come from the policy core as hashes; no mail text is
// sent. The password is not kept in any log or failure detail.
// hiredis writes with write(2): so that a Redis that closed the connection
// gives an error instead of killing the process with SIGPIPE, the
// constructor sets SIGPIPE to ignored if it still has its default action
// (a daemon that talks to sockets wants that anyway).
//
// LIMITS
// - Lua numbers are doubles: counts are exact up to 2^53, and an amount
//   beyond INT64_MAX is refused by HINCRBY (a failure, not a wrap).
// - Distinct counts are HyperLogLog estimates (~0.8% standard error), exact
//   in practice for small sets; MemoryCounterStore is exact. A Distinct
//   counter in use for more than a slot also keeps its window's union for
//   the current slot (one more HLL, see counter_script.hpp), which misses
//   members written into an older slot after it was built: only when
//   nodes' clocks disagree, and only until the next slot.
// - Host names are resolved by getaddrinfo(3), which the connect timeout
//   does not bound: configure an address or a unix socket.
//
// THREAD SAFETY
// Safe for concurrent use; calls beyond pool_size wait for a connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "ratelimit/counter_store.hpp"
#include "ratelimit/redis_url.hpp"

namespace floodgate::ratelimit {

inline constexpr std::chrono::milliseconds k_default_connect_timeout{200};
inline constexpr std::chrono::milliseconds k_default_command_timeout{200};
inline constexpr unsigned k_default_pool_size = 8;

struct RedisCounterStoreOptions {
  RedisEndpoint endpoint;
  // Overrides endpoint.password when set (e.g. read from a password file).
  std::optional<std::string> password;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  std::chrono::milliseconds command_timeout = k_default_command_timeout;
  unsigned pool_size = k_default_pool_size;
};

class RedisCounterStore final : public CounterStore {
 public:
  explicit RedisCounterStore(RedisCounterStoreOptions options);
  ~RedisCounterStore() override;

  RedisCounterStore(const RedisCounterStore&) = delete;
  RedisCounterStore& operator=(const RedisCounterStore&) = delete;

  CounterResult apply(std::span<const policy::CounterRequest> requests,
                      TimePoint now) override;

  std::string_view state_label() const override { return "redis"; }

  // Connections open right now (idle or in use). For tests and metrics.
  std::size_t open_connections() const;

 private:
  class Pool;
  class Lease;

  CounterResult run_script(Lease& lease, std::span<const policy::CounterRequest> requests,
                           TimePoint now);

  RedisCounterStoreOptions m_options;
  std::unique_ptr<Pool> m_pool;
};

}  // namespace floodgate::ratelimit
