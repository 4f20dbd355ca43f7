// Redis 6 ACL users against a real redis-server: the endpoint built from
// redis.url + redis.username + redis.password_file authenticates the
// counter store as that user; a wrong password is a clear Unavailable
// failure that never quotes the password.
#include <chrono>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ratelimit/redis_counter_store.hpp"
#include "ratelimit/redis_url.hpp"
#include "redis_server.hpp"
#include "tests/support/scratch_directory.hpp"

namespace floodgate::ratelimit {
namespace {

using floodgate::testing::RedisServer;
using floodgate::testing::RedisServerOptions;
using floodgate::testing::ScratchDirectory;
using std::chrono::milliseconds;

const std::vector<policy::CounterRequest> k_message{policy::CounterRequest{
    .key = "fg:{acl}:msgs:10", .kind = policy::CounterKind::Sum, .window = std::chrono::seconds{10},
    .amount = 1, .members = {}}};

TimePoint wall_now() { return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now()); }

// `requirepass`: the default user's password, "" for none.
void add_acl_user(RedisServer& server, const std::string& password) {
  auto raw = server.raw();
  const auto reply = RedisServer::run(*raw, {"ACL", "SETUSER", "floodgate", "on", ">" + password, "~*", "+@all"});
  ASSERT_EQ(reply->type, REDIS_REPLY_STATUS) << (reply->str != nullptr ? reply->str : "");
}

std::unique_ptr<RedisCounterStore> store_for(const policy::RedisSettings& settings) {
  auto endpoint = redis_endpoint_from_settings(settings);
  if (!endpoint) throw std::runtime_error(endpoint.error());
  return std::make_unique<RedisCounterStore>(RedisCounterStoreOptions{.endpoint = std::move(*endpoint),
                                                    .password = std::nullopt,
                                                    .connect_timeout = milliseconds{500},
                                                    .command_timeout = milliseconds{500},
                                                    .pool_size = 2});
}

// The client list's user column for the store's connection: proof that it
// authenticated as `floodgate`, not as the default user.
bool a_client_is_user(RedisServer& server, const std::string& user) {
  auto raw = server.raw();
  const auto reply = RedisServer::run(*raw, {"CLIENT", "LIST"});
  return reply->str != nullptr && std::string{reply->str, reply->len}.find(" user=" + user + " ") != std::string::npos;
}

struct AclCase {
  const char* name;
  std::string requirepass;  // the default user's; "" leaves it open
};

class RedisAclUser : public ::testing::TestWithParam<AclCase> {};

TEST_P(RedisAclUser, CountsAsTheUserWithPasswordFromFile) {
  RedisServer server{RedisServerOptions{.password = GetParam().requirepass, .unix_socket = false}};
  add_acl_user(server, "user-pw");
  ScratchDirectory dir("floodgate-redis-acl");
  std::ofstream(dir.file("pw")) << "user-pw\n";

  policy::RedisSettings settings;
  settings.url = "redis://127.0.0.1:" + std::to_string(server.port()) + "/0";
  settings.username = "floodgate";
  settings.password_file = dir.file("pw");
  auto store = store_for(settings);
  const auto first = store->apply(k_message, wall_now());
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  EXPECT_EQ(*first, CounterValues{1});
  EXPECT_EQ(store->apply(k_message, wall_now()).value(), CounterValues{2});
  EXPECT_TRUE(a_client_is_user(server, "floodgate"));
}

TEST_P(RedisAclUser, WrongPasswordIsUnavailableAndNeverQuoted) {
  RedisServer server{RedisServerOptions{.password = GetParam().requirepass, .unix_socket = false}};
  add_acl_user(server, "user-pw");
  ScratchDirectory dir("floodgate-redis-acl");
  std::ofstream(dir.file("pw")) << "wrong-secret-value\n";

  policy::RedisSettings settings;
  settings.url = "redis://127.0.0.1:" + std::to_string(server.port()) + "/0";
  settings.username = "floodgate";
  settings.password_file = dir.file("pw");
  auto store = store_for(settings);
  const auto result = store->apply(k_message, wall_now());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, CounterFailure::Kind::Unavailable);
  const std::string& detail = result.error().detail;
  EXPECT_NE(detail.find("AUTH to 127.0.0.1:" + std::to_string(server.port()) + " refused: WRONGPASS"),
            std::string::npos)
      << detail;
  EXPECT_EQ(detail.find("wrong-secret-value"), std::string::npos) << detail;
  EXPECT_EQ(store->open_connections(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Requirepass, RedisAclUser,
                         ::testing::Values(AclCase{"off", ""}, AclCase{"on", "default-pw"}),
                         [](const auto& info) { return std::string{"requirepass_"} + info.param.name; });

}  // namespace
}  // namespace floodgate::ratelimit
