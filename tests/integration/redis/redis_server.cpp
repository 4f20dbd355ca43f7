#include "redis_server.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace floodgate::testing {
namespace {

// Binding port 0 makes the kernel pick a free port; redis-server takes it
// over a moment later (a race we accept in tests).
std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options, RedisServerRole role)
    : m_options{std::move(options)}, m_role{std::move(role)} {
  char dir_template[] = "/tmp/fg-redis-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) throw std::runtime_error("mkdtemp failed");
  m_dir = dir_template;
  if (m_options.unix_socket) m_socket_path = m_dir + "/redis.sock";
  if (!m_role.config_lines.empty() || m_role.sentinel) {
    m_config_path = m_dir + "/redis.conf";
    std::ofstream config(m_config_path);
    config << m_role.config_lines;
    if (!config) throw std::runtime_error("cannot write " + m_config_path);
  }
  m_port = free_loopback_port();
  start();
}

RedisServer::~RedisServer() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(m_dir, ignored);
}

std::string RedisServer::url(int db) const {
  std::string text = "redis://";
  if (!m_options.password.empty()) text += ":" + m_options.password + "@";
  return text + "127.0.0.1:" + std::to_string(m_port) + "/" + std::to_string(db);
}

void RedisServer::start() {
  std::vector<std::string> args{FLOODGATE_REDIS_SERVER};
  if (!m_config_path.empty()) args.push_back(m_config_path);
  if (m_role.sentinel) args.push_back("--sentinel");
  args.insert(args.end(), {"--port", std::to_string(m_port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", m_dir, "--daemonize", "no", "--loglevel",
                           "warning", "--logfile", m_dir + "/redis.log"});
  args.insert(args.end(), m_role.extra_args.begin(), m_role.extra_args.end());
  if (!m_options.password.empty()) {
    args.insert(args.end(), {"--requirepass", m_options.password});
  }
  if (!m_socket_path.empty()) {
    args.insert(args.end(), {"--unixsocket", m_socket_path, "--unixsocketperm", "700"});
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  m_pid = ::fork();
  if (m_pid < 0) throw std::runtime_error("fork failed");
  if (m_pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!answers_ping()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("redis-server did not answer PING within 10 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
}

bool RedisServer::answers_ping() const {
  const timeval timeout{0, 200'000};
  RedisContextPtr context{redisConnectWithTimeout("127.0.0.1", m_port, timeout), redisFree};
  if (!context || context->err != 0) return false;
  auto* reply = static_cast<redisReply*>(redisCommand(context.get(), "PING"));
  if (reply == nullptr) return false;
  freeReplyObject(reply);  // +PONG, or NOAUTH: either way it is up
  return true;
}

void RedisServer::kill() {
  if (m_pid <= 0) return;
  ::kill(m_pid, SIGCONT);
  ::kill(m_pid, SIGKILL);
  ::waitpid(m_pid, nullptr, 0);
  m_pid = -1;
}

void RedisServer::restart() {
  kill();
  start();
}

void RedisServer::pause() { ::kill(m_pid, SIGSTOP); }

void RedisServer::resume() { ::kill(m_pid, SIGCONT); }

RedisContextPtr RedisServer::raw(int db) const {
  const timeval timeout{2, 0};
  RedisContextPtr context{redisConnectWithTimeout("127.0.0.1", m_port, timeout), redisFree};
  if (!context || context->err != 0) {
    ADD_FAILURE() << "raw connection to redis on port " << m_port << " failed";
    throw std::runtime_error("raw redis connection failed");
  }
  if (!m_options.password.empty()) run(*context, {"AUTH", m_options.password});
  if (db != 0) run(*context, {"SELECT", std::to_string(db)});
  return context;
}

RedisReplyPtr RedisServer::run(redisContext& context, const std::vector<std::string>& words) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& word : words) {
    argv.push_back(word.c_str());
    lengths.push_back(word.size());
  }
  void* reply =
      redisCommandArgv(&context, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (reply == nullptr) throw std::runtime_error(std::string{"raw redis command: "} + context.errstr);
  return RedisReplyPtr{static_cast<redisReply*>(reply), freeReplyObject};
}

}  // namespace floodgate::testing
