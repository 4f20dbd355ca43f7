#include "sentinel_group.hpp"

#include <stdexcept>
#include <string_view>
#include <thread>

namespace floodgate::testing {
namespace {

// A flat field/value array (SENTINEL replicas/sentinels entries): the value of `field`.
std::string field_of(const redisReply& entry, std::string_view field) {
  if (entry.type != REDIS_REPLY_ARRAY) return {};
  for (std::size_t i = 0; i + 1 < entry.elements; i += 2) {
    const redisReply& name = *entry.element[i];
    if (name.str != nullptr && std::string_view{name.str, name.len} == field) {
      const redisReply& value = *entry.element[i + 1];
      return value.str != nullptr ? std::string{value.str, value.len} : std::string{};
    }
  }
  return {};
}

}  // namespace

SentinelGroup::SentinelGroup(std::string master_name) : m_master_name{std::move(master_name)} {
  // A data server gets a config file too: at a failover the sentinels send
  // it CONFIG REWRITE.
  RedisServerRole master_role;
  master_role.config_lines = "# test master\n";
  m_data.push_back(std::make_unique<RedisServer>(RedisServerOptions{}, master_role));
  const std::string master_port = std::to_string(m_data[0]->port());
  RedisServerRole replica_role;
  replica_role.config_lines = "# test replica\n";
  replica_role.extra_args = {"--replicaof", "127.0.0.1", master_port};
  m_data.push_back(std::make_unique<RedisServer>(RedisServerOptions{}, replica_role));
  const std::string config = "sentinel monitor " + m_master_name + " 127.0.0.1 " + master_port + " 2\n" +
                             "sentinel down-after-milliseconds " + m_master_name + " 1000\n" +
                             "sentinel failover-timeout " + m_master_name + " 5000\n";
  for (int i = 0; i < k_sentinels; ++i) {
    RedisServerRole sentinel_role;
    sentinel_role.config_lines = config;
    sentinel_role.sentinel = true;
    m_sentinels.push_back(std::make_unique<RedisServer>(RedisServerOptions{}, sentinel_role));
  }
}

std::vector<std::string> SentinelGroup::sentinel_addresses() const {
  std::vector<std::string> addresses;
  for (const auto& sentinel : m_sentinels) addresses.push_back("127.0.0.1:" + std::to_string(sentinel->port()));
  return addresses;
}

void SentinelGroup::wait_ready(std::chrono::seconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  std::string missing;
  while (std::chrono::steady_clock::now() < deadline) {
    missing.clear();
    auto replica = data(1).raw();
    const auto info = RedisServer::run(*replica, {"INFO", "replication"});
    if (info->str == nullptr || std::string_view{info->str, info->len}.find("master_link_status:up") ==
                                    std::string_view::npos) {
      missing = "replica not in sync with the master";
    }
    for (int i = 0; i < k_sentinels && missing.empty(); ++i) {
      auto context = sentinel(i).raw();
      const auto replicas = RedisServer::run(*context, {"SENTINEL", "replicas", m_master_name});
      if (replicas->type != REDIS_REPLY_ARRAY || replicas->elements != 1 ||
          field_of(*replicas->element[0], "flags") != "slave") {
        missing = "sentinel " + std::to_string(i) + " does not see the replica up";
      }
      const auto others = RedisServer::run(*context, {"SENTINEL", "sentinels", m_master_name});
      if (missing.empty() && (others->type != REDIS_REPLY_ARRAY || others->elements != k_sentinels - 1)) {
        missing = "sentinel " + std::to_string(i) + " does not know the other sentinels yet";
      }
    }
    if (missing.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  throw std::runtime_error("sentinel group not ready after " + std::to_string(patience.count()) + " s: " + missing);
}

void SentinelGroup::failover() {
  auto context = sentinel(0).raw();
  const auto reply = RedisServer::run(*context, {"SENTINEL", "FAILOVER", m_master_name});
  if (reply->type != REDIS_REPLY_STATUS) {
    throw std::runtime_error("SENTINEL FAILOVER refused: " +
                             (reply->str != nullptr ? std::string{reply->str, reply->len} : std::string{}));
  }
}

std::string SentinelGroup::role(const RedisServer& server) {
  if (!server.running()) return {};
  try {
    auto context = server.raw();
    const auto reply = RedisServer::run(*context, {"ROLE"});
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 || reply->element[0]->str == nullptr) return {};
    return std::string{reply->element[0]->str, reply->element[0]->len};
  } catch (const std::exception&) {
    return {};
  }
}

std::uint16_t SentinelGroup::named_master_port(int index) {
  auto context = sentinel(index).raw();
  const auto reply = RedisServer::run(*context, {"SENTINEL", "get-master-addr-by-name", m_master_name});
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[1]->str == nullptr) return 0;
  return static_cast<std::uint16_t>(std::stoi(std::string{reply->element[1]->str, reply->element[1]->len}));
}

}  // namespace floodgate::testing
