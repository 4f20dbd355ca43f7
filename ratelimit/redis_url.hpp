// RedisEndpoint and parse_redis_url: where the Redis counter store connects.
//
// Accepted forms (the `url` setting, see policy::RedisSettings):
//   redis://host                       port 6379, db 0
//   redis://host:port[/db]
//   redis://:password@host:port[/db]
//   redis://user:password@host:port[/db]   (Redis 6 ACL user)
//   redis://[::1]:port[/db]            IPv6 literal in brackets
//   unix:/path/to/redis.sock[?db=N]
//
// A bad URL gives an error string that quotes the URL with any password
// replaced by "***" and names what is wrong, e.g.
//   redis URL 'redis://h:0': port must be 1-65535
// The URL comes from the admin's config file, not from mail; it is still
// parsed strictly (no percent-decoding, no query options besides db).
// Pure function, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "policy/config.hpp"

namespace floodgate::ratelimit {

// A Redis Sentinel to ask where the master is.
struct SentinelAddress {
  std::string host;  // name or address, without IPv6 brackets
  std::uint16_t port = 26379;

  friend bool operator==(const SentinelAddress&, const SentinelAddress&) = default;
};

struct RedisEndpoint {
  enum class Transport { Tcp, Unix };
  Transport transport = Transport::Tcp;
  std::string host;         // Tcp: name or address, without IPv6 brackets
  std::uint16_t port = 6379;  // Tcp
  std::string socket_path;  // Unix
  std::optional<std::string> username;
  std::optional<std::string> password;
  int db = 0;
  // Sentinel: when sentinel_master is set, each new connection asks these
  // sentinels (in order, until one answers) for that master's address, and
  // host/port above are not used; db, username and password still are.
  std::string sentinel_master;
  std::vector<SentinelAddress> sentinels;
  std::optional<std::string> sentinel_password;  // AUTH to the sentinels

  friend bool operator==(const RedisEndpoint&, const RedisEndpoint&) = default;
};

inline constexpr std::uint16_t k_default_redis_port = 6379;
inline constexpr int k_max_redis_db = 0xFFFF;  // Redis' own limit is config-dependent

tl::expected<RedisEndpoint, std::string> parse_redis_url(std::string_view url);

// The endpoint the settings describe: `url` parsed, then redis.username,
// redis.password_file (into `password`) and redis.sentinel applied, the
// password files read. The error starts with the setting's dotted name and
// ": " ("redis.sentinel.addresses: '[::1:26379': ..."), then says what is
// wrong; it never contains a password. Sentinel needs a redis:// url (its
// host and port are then unused). Reads files: call it before dropping
// privileges.
tl::expected<RedisEndpoint, std::string> redis_endpoint_from_settings(const policy::RedisSettings& settings);

// "host:port" or "unix:/path", for logs; never includes the password.
// With Sentinel: "sentinel master NAME via host:port,...".
std::string describe(const RedisEndpoint& endpoint);
std::string describe(const SentinelAddress& sentinel);  // "host:port", "[v6]:port"

// The Redis password kept in a file (redis.password_file): its first line,
// without a trailing CR or blanks. The error names the file, never its content.
tl::expected<std::string, std::string> read_redis_password_file(const std::string& path);

}  // namespace floodgate::ratelimit
