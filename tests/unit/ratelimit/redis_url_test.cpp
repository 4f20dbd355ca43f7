// parse_redis_url: every accepted form, and each bad form with its error.
#include "ratelimit/redis_url.hpp"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/scratch_directory.hpp"

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

// ---- redis_endpoint_from_settings -------------------------------------------

void write_file(const std::string& path, const std::string& content) {
  std::ofstream file(path);
  file << content;
}

TEST(RedisEndpointFromSettings, WithoutExtrasIsTheParsedUrl) {
  policy::RedisSettings settings;
  settings.url = "redis://:inurl@10.0.0.1:6390/3";
  const auto got = redis_endpoint_from_settings(settings);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_EQ(*got, parse_redis_url(settings.url).value());
}

TEST(RedisEndpointFromSettings, UsernameAndPasswordFileOverrideTheUrl) {
  testing::ScratchDirectory dir("floodgate-redis-url");
  write_file(dir.file("pw"), "from-file \r\nsecond line ignored\n");
  policy::RedisSettings settings;
  settings.url = "redis://urluser:inurl@host:7000/1";
  settings.username = "floodgate";
  settings.password_file = dir.file("pw");
  const auto got = redis_endpoint_from_settings(settings);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_EQ(got->username, "floodgate");
  EXPECT_EQ(got->password, "from-file");
  EXPECT_EQ(got->host, "host");
  EXPECT_EQ(got->db, 1);
  EXPECT_TRUE(got->sentinel_master.empty());
}

TEST(RedisEndpointFromSettings, SentinelAddressesAndPasswordAreRead) {
  testing::ScratchDirectory dir("floodgate-redis-url");
  write_file(dir.file("sentinel-pw"), "sentinel-secret\n");
  policy::RedisSettings settings;
  settings.url = "redis://:pw@ignored:6379/2";
  settings.sentinel.master_name = "mymaster";
  settings.sentinel.addresses = {"10.0.0.1:26379", "[2001:db8::5]:26380", "sentinel.example:1"};
  settings.sentinel.password_file = dir.file("sentinel-pw");
  const auto got = redis_endpoint_from_settings(settings);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_EQ(got->sentinel_master, "mymaster");
  const std::vector<SentinelAddress> want{
      {"10.0.0.1", 26379}, {"2001:db8::5", 26380}, {"sentinel.example", 1}};
  EXPECT_EQ(got->sentinels, want);
  EXPECT_EQ(got->sentinel_password, "sentinel-secret");
  EXPECT_EQ(got->password, "pw");
  EXPECT_EQ(got->db, 2);
  EXPECT_EQ(describe(*got),
            "sentinel master mymaster via 10.0.0.1:26379,[2001:db8::5]:26380,sentinel.example:1 db 2");
}

TEST(RedisEndpointFromSettings, EachBadSettingIsNamedInTheError) {
  testing::ScratchDirectory dir("floodgate-redis-url");
  write_file(dir.file("empty"), "\n");
  struct Case {
    std::string name;
    policy::RedisSettings settings;
    std::string want_error;
  };
  std::vector<Case> cases;
  const auto sentinel = [](std::vector<std::string> addresses) {
    policy::RedisSettings settings;
    settings.sentinel.master_name = "m";
    settings.sentinel.addresses = std::move(addresses);
    return settings;
  };
  {
    policy::RedisSettings s;
    s.url = "redis://:hunter2@h:0";
    cases.push_back({"bad url", s, "redis.url: redis URL 'redis://:***@h:0': port must be 1-65535"});
  }
  {
    policy::RedisSettings s;
    s.password_file = dir.file("missing");
    cases.push_back({"missing password file", s,
                     "redis.password_file: cannot read password file " + dir.file("missing")});
  }
  {
    policy::RedisSettings s = sentinel({"127.0.0.1:26379"});
    s.sentinel.password_file = dir.file("empty");
    cases.push_back({"empty sentinel password file", s,
                     "redis.sentinel.password_file: password file " + dir.file("empty") + " is empty"});
  }
  cases.push_back({"no port", sentinel({"127.0.0.1:26379", "sentinel2"}),
                   "redis.sentinel.addresses: 'sentinel2': expected host:port or [v6]:port"});
  cases.push_back({"port 0", sentinel({"s:0"}), "redis.sentinel.addresses: 's:0': port must be 1-65535"});
  cases.push_back({"bare v6", sentinel({"::1:26379"}),
                   "redis.sentinel.addresses: '::1:26379': IPv6 address must be in [brackets]"});
  cases.push_back({"unclosed v6", sentinel({"[::1:26379"}),
                   "redis.sentinel.addresses: '[::1:26379': IPv6 address must be in [brackets]"});
  cases.push_back({"no host", sentinel({":26379"}), "redis.sentinel.addresses: ':26379': host is missing"});
  {
    policy::RedisSettings s = sentinel({});
    cases.push_back({"no addresses", s, "redis.sentinel.addresses: is empty (master_name is set)"});
  }
  {
    policy::RedisSettings s = sentinel({"s:1"});
    s.sentinel.master_name.clear();
    cases.push_back({"no master", s, "redis.sentinel.master_name: is missing (addresses are set)"});
  }
  {
    policy::RedisSettings s = sentinel({"s:1"});
    s.url = "unix:/run/redis.sock";
    cases.push_back({"unix url", s, "redis.url: must be redis:// with Sentinel (the master is reached over TCP)"});
  }
  for (const Case& c : cases) {
    const auto got = redis_endpoint_from_settings(c.settings);
    ASSERT_FALSE(got.has_value()) << c.name << " was accepted";
    EXPECT_EQ(got.error(), c.want_error) << c.name;
  }
}

TEST(RedisEndpointFromSettings, NeverPutsThePasswordFileContentInAnError) {
  testing::ScratchDirectory dir("floodgate-redis-url");
  write_file(dir.file("pw"), "topsecret\n");
  policy::RedisSettings settings;
  settings.password_file = dir.file("pw");
  settings.sentinel.master_name = "m";
  settings.sentinel.addresses = {"no-port"};
  const auto got = redis_endpoint_from_settings(settings);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().find("topsecret"), std::string::npos) << got.error();
}

}  // namespace
}  // namespace floodgate::ratelimit
