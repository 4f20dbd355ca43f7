// RedisServer: a throwaway redis-server for one integration test.
//
// Started with fork/exec on a free loopback port (and optionally a unix
// socket) in its own temp directory, persistence off; the constructor
// returns once it answers PING and the destructor kills it. Tests can stop
// (SIGSTOP), kill and restart it to play a Redis that hangs, dies or comes
// back. With options it also plays a replica or a Sentinel (see
// sentinel_group.hpp). Not thread-safe; one per test.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>
#include <sys/types.h>

namespace floodgate::testing {

using RedisContextPtr = std::unique_ptr<redisContext, decltype(&redisFree)>;
using RedisReplyPtr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

struct RedisServerOptions {
  std::string password;  // --requirepass when not empty
  bool unix_socket = false;
};

// What makes a server a replica or a sentinel (see sentinel_group.hpp).
struct RedisServerRole {
  // Written to redis.conf in the server's directory, which is passed first
  // (a sentinel needs a writable config file; so does a data server whose
  // sentinels send it CONFIG REWRITE at a failover). Kept across restart().
  std::string config_lines;
  bool sentinel = false;               // run as `redis-server redis.conf --sentinel`
  std::vector<std::string> extra_args;  // e.g. {"--replicaof", "127.0.0.1", "6380"}
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {}, RedisServerRole role = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return m_port; }
  const std::string& socket_path() const { return m_socket_path; }
  std::string url(int db = 0) const;

  void kill();     // SIGKILL and reap
  void restart();  // kill, then start again on the same port
  void pause();    // SIGSTOP: accepts connections, answers nothing
  void resume();   // SIGCONT
  bool running() const { return m_pid > 0; }

  // A plain hiredis connection (authenticated, on `db`) for checking what
  // the store wrote. Fails the test if it cannot connect.
  RedisContextPtr raw(int db = 0) const;

  // Runs a command on a raw connection; the reply, never null.
  static RedisReplyPtr run(redisContext& context, const std::vector<std::string>& words);

 private:
  void start();
  bool answers_ping() const;

  RedisServerOptions m_options;
  RedisServerRole m_role;
  std::string m_dir;
  std::string m_config_path;
  std::string m_socket_path;
  std::uint16_t m_port = 0;
  pid_t m_pid = -1;
};

}  // namespace floodgate::testing
