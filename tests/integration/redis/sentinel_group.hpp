// SentinelGroup: a private Redis Sentinel set-up for one integration test.
//
// One master, one replica (--replicaof) and three sentinels (quorum 2,
// down-after 1000 ms, failover-timeout 5000 ms), each a RedisServer on its
// own loopback port with a writable config file. wait_ready() returns once
// the replica is in sync and every sentinel knows the replica and the two
// other sentinels, so that a failover (asked for, or after killing the
// master) can happen. Not thread-safe; one per test.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redis_server.hpp"

namespace floodgate::testing {

class SentinelGroup {
 public:
  static constexpr int k_sentinels = 3;

  explicit SentinelGroup(std::string master_name = "m");

  const std::string& master_name() const { return m_master_name; }
  // 0: the master at start, 1: the replica at start.
  RedisServer& data(int index) { return *m_data.at(static_cast<std::size_t>(index)); }
  RedisServer& sentinel(int index) { return *m_sentinels.at(static_cast<std::size_t>(index)); }
  // "127.0.0.1:PORT" of each sentinel, for redis.sentinel.addresses.
  std::vector<std::string> sentinel_addresses() const;

  // Throws std::runtime_error (naming what was missing) after `patience`.
  void wait_ready(std::chrono::seconds patience);
  // SENTINEL FAILOVER on sentinel 0: promotes the replica without waiting
  // for the master to be seen down.
  void failover();

  // ROLE's first word ("master", "slave", "sentinel"), or "" when the
  // server does not answer.
  static std::string role(const RedisServer& server);
  // The master's port sentinel `index` names now (0 when it names none).
  std::uint16_t named_master_port(int index);

 private:
  std::string m_master_name;
  std::vector<std::unique_ptr<RedisServer>> m_data;
  std::vector<std::unique_ptr<RedisServer>> m_sentinels;
};

}  // namespace floodgate::testing
