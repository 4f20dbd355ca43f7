// A scripted fake SMTP server on a loopback port, for tests of SMTP
// clients (release_over_smtp and what sends mail through it): it accepts
// one connection, runs a script of replies on it in a thread and records
// every byte the client sent, so a test can compare the exact bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace floodgate::quarantine::testing {

// The server's side of one connection. Everything the client sends is
// recorded in `received`, so a test can compare the exact bytes.
class FakeSmtpSession {
 public:
  explicit FakeSmtpSession(int fd) : m_fd(fd) {}

  void reply(const std::string& lines) {
    std::string bytes = lines + "\r\n";
    ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }

  // One command line without its CRLF; "" when the client closed.
  std::string command() {
    while (true) {
      if (auto end = m_pending.find("\r\n"); end != std::string::npos) {
        std::string line = m_pending.substr(0, end);
        m_pending.erase(0, end + 2);
        return line;
      }
      if (!receive()) return "";
    }
  }

  // The DATA content up to and including the terminating "\r\n.\r\n"; ""
  // if the client closed before sending it.
  std::string data() {
    while (true) {
      if (m_pending.rfind(".\r\n", 0) == 0) {  // an empty message
        m_pending.erase(0, 3);
        return ".\r\n";
      }
      if (auto end = m_pending.find("\r\n.\r\n"); end != std::string::npos) {
        std::string content = m_pending.substr(0, end + 5);
        m_pending.erase(0, end + 5);
        return content;
      }
      if (!receive()) return "";
    }
  }

  // Reads until the client closes (or the safety timeout passes).
  void wait_for_close() {
    while (receive()) {
    }
  }

  std::string received() const {
    std::lock_guard lock(m_mutex);
    return m_received;
  }

 private:
  bool receive() {
    char buffer[4096];
    ssize_t got = ::recv(m_fd, buffer, sizeof buffer, 0);
    if (got <= 0) return false;
    m_pending.append(buffer, static_cast<std::size_t>(got));
    std::lock_guard lock(m_mutex);
    m_received.append(buffer, static_cast<std::size_t>(got));
    return true;
  }

  int m_fd;
  std::string m_pending;
  mutable std::mutex m_mutex;
  std::string m_received;
};

// Listens on 127.0.0.1 (a free port), accepts one connection and runs the
// script on it in a thread; the connection closes when the script returns.
class FakeSmtpServer {
 public:
  using Script = std::function<void(FakeSmtpSession&)>;

  explicit FakeSmtpServer(Script script) {
    m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(m_listener, 1) != 0 ||
        ::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    m_port = ntohs(address.sin_port);
    m_thread = std::thread([this, script = std::move(script)] {
      pollfd waiting{m_listener, POLLIN, 0};
      if (::poll(&waiting, 1, 10000) != 1) return;  // the client never came
      int fd = ::accept(m_listener, nullptr, nullptr);
      if (fd < 0) return;
      // A safety net so a broken test cannot hang the suite.
      timeval limit{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      FakeSmtpSession session(fd);
      script(session);
      m_received = session.received();
      ::close(fd);
    });
  }

  ~FakeSmtpServer() {
    join();
    if (m_listener >= 0) ::close(m_listener);
  }

  std::uint16_t port() const { return m_port; }

  // Waits for the script to end; returns every byte the client sent.
  std::string received() {
    join();
    return m_received;
  }

 private:
  void join() {
    if (m_thread.joinable()) m_thread.join();
  }

  int m_listener = -1;
  std::uint16_t m_port = 0;
  std::thread m_thread;
  std::string m_received;
};

}  // namespace floodgate::quarantine::testing
