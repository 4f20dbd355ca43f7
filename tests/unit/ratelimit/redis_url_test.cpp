// parse_redis_url: every accepted form, and each bad form with its error.
#include "ratelimit/redis_url.hpp"

#include <string>

#include <gtest/gtest.h>

namespace floodgate::ratelimit {
namespace {

using Transport = RedisEndpoint::Transport;

RedisEndpoint tcp(std::string host, std::uint16_t port, int db = 0) {
  RedisEndpoint endpoint;
  endpoint.host = std::move(host);
  endpoint.port = port;
  endpoint.db = db;
  return endpoint;
}

TEST(RedisUrl, AcceptsEveryDocumentedForm) {
  struct Case {
    std::string url;
    RedisEndpoint want;
  };
  RedisEndpoint with_password = tcp("redis.example", 6380, 2);
  with_password.password = "s3cret";
  RedisEndpoint with_user = tcp("10.0.0.5", 6379);
  with_user.username = "floodgate";
  with_user.password = "p@ss:word";
  RedisEndpoint unix_socket;
  unix_socket.transport = Transport::Unix;
  unix_socket.port = 0;
  unix_socket.socket_path = "/run/redis/redis.sock";
  RedisEndpoint unix_db = unix_socket;
  unix_db.db = 3;

  const Case cases[] = {
      {"redis://localhost", tcp("localhost", 6379)},
      {"redis://127.0.0.1:6379", tcp("127.0.0.1", 6379)},
      {"redis://127.0.0.1:6379/0", tcp("127.0.0.1", 6379)},
      {"redis://127.0.0.1:7000/15", tcp("127.0.0.1", 7000, 15)},
      {"redis://host:1/", tcp("host", 1)},
      {"redis://host:65535", tcp("host", 65535)},
      {"redis://host/4", tcp("host", 6379, 4)},
      {"redis://[::1]:6390/1", tcp("::1", 6390, 1)},
      {"redis://[::1]", tcp("::1", 6379)},
      {"redis://:s3cret@redis.example:6380/2", with_password},
      {"redis://floodgate:p@ss:word@10.0.0.5:6379", with_user},
      {"unix:/run/redis/redis.sock", unix_socket},
      {"unix:/run/redis/redis.sock?db=3", unix_db},
  };
  for (const Case& c : cases) {
    const auto got = parse_redis_url(c.url);
    ASSERT_TRUE(got.has_value()) << c.url << ": " << got.error();
    EXPECT_EQ(*got, c.want) << c.url;
  }
}

TEST(RedisUrl, RejectsEachBadFormWithItsReason) {
  struct Case {
    std::string url;
    std::string want_error;
  };
  const Case cases[] = {
      {"", "redis URL '': must start with redis:// or unix:"},
      {"http://host:6379", "redis URL 'http://host:6379': must start with redis:// or unix:"},
      {"rediss://host", "redis URL 'rediss://host': must start with redis:// or unix:"},
      {"redis://", "redis URL 'redis://': host is missing"},
      {"redis://:6379", "redis URL 'redis://:6379': host is missing"},
      {"redis://host:0", "redis URL 'redis://host:0': port must be 1-65535"},
      {"redis://host:65536", "redis URL 'redis://host:65536': port must be 1-65535"},
      {"redis://host:-1", "redis URL 'redis://host:-1': port must be 1-65535"},
      {"redis://host:63x9", "redis URL 'redis://host:63x9': port must be 1-65535"},
      {"redis://host:", "redis URL 'redis://host:': port is missing after ':'"},
      {"redis://host:6379/x", "redis URL 'redis://host:6379/x': db must be a number 0-65535"},
      {"redis://host:6379/-2", "redis URL 'redis://host:6379/-2': db must be a number 0-65535"},
      {"redis://host:6379/0?timeout=1",
       "redis URL 'redis://host:6379/0?timeout=1': query options are not supported in "
       "redis:// URLs"},
      {"redis://host?x=1", "redis URL 'redis://host?x=1': query options are not supported in "
                           "redis:// URLs"},
      {"redis://[::1:6379", "redis URL 'redis://[::1:6379': IPv6 address lacks ']'"},
      {"redis://[::1]6379", "redis URL 'redis://[::1]6379': expected ':port' after ']'"},
      {"redis://password@host", "redis URL 'redis://***@host': credentials must be "
                                "':password@' or 'user:password@'"},
      {"redis://:@host", "redis URL 'redis://:***@host': password after ':' is empty"},
      {"unix:", "redis URL 'unix:': socket path is missing"},
      {"unix:relative.sock", "redis URL 'unix:relative.sock': socket path must be absolute"},
      {"unix:/s.sock?database=1", "redis URL 'unix:/s.sock?database=1': the only option is ?db=N"},
      {"unix:/s.sock?db=x", "redis URL 'unix:/s.sock?db=x': db must be a number 0-65535"},
  };
  for (const Case& c : cases) {
    const auto got = parse_redis_url(c.url);
    ASSERT_FALSE(got.has_value()) << c.url << " was accepted";
    EXPECT_EQ(got.error(), c.want_error);
  }
}

TEST(RedisUrl, NeverQuotesThePasswordInAnError) {
  const auto got = parse_redis_url("redis://admin:hunter2@host:99999");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), "redis URL 'redis://admin:***@host:99999': port must be 1-65535");
}

TEST(RedisUrl, DescribesEndpointWithoutPassword) {
  EXPECT_EQ(describe(parse_redis_url("redis://:pw@10.1.1.1:6390/2").value()), "10.1.1.1:6390 db 2");
  EXPECT_EQ(describe(parse_redis_url("redis://[::1]:7000").value()), "[::1]:7000");
  EXPECT_EQ(describe(parse_redis_url("unix:/tmp/r.sock").value()), "unix:/tmp/r.sock");
}

}  // namespace
}  // namespace floodgate::ratelimit
