#include "milter/tcp_listener.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>

#include <gtest/gtest.h>

namespace floodgate::milter {
namespace {

// A file descriptor closed at the end of the test.
struct Fd {
  int fd;
  explicit Fd(int value) : fd(value) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

sockaddr_in loopback_any_port() {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

int nodelay_of(int fd) {
  int value = -1;
  socklen_t length = sizeof value;
  EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
  return value;
}

TEST(TcpListener, FindsListeningTcpSocketsOnly) {
  Fd listener{::socket(AF_INET, SOCK_STREAM, 0)};
  sockaddr_in address = loopback_any_port();
  ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  Fd bound_not_listening{::socket(AF_INET, SOCK_STREAM, 0)};
  sockaddr_in other = loopback_any_port();
  ASSERT_EQ(::bind(bound_not_listening.fd, reinterpret_cast<sockaddr*>(&other), sizeof other), 0);
  Fd datagram{::socket(AF_INET, SOCK_DGRAM, 0)};
  Fd unix_listener{::socket(AF_UNIX, SOCK_STREAM, 0)};
  sockaddr_un unix_address{};
  unix_address.sun_family = AF_UNIX;  // abstract name: nothing to clean up
  const char name[] = "floodgate-tcp-listener-test";
  std::copy(std::begin(name), std::end(name), unix_address.sun_path + 1);
  ASSERT_EQ(::bind(unix_listener.fd, reinterpret_cast<sockaddr*>(&unix_address), sizeof unix_address), 0);
  ASSERT_EQ(::listen(unix_listener.fd, 1), 0);

  EXPECT_FALSE(tcp_listening_sockets().contains(listener.fd)) << "not listening yet";
  ASSERT_EQ(::listen(listener.fd, 1), 0);

  const std::set<int> found = tcp_listening_sockets();
  EXPECT_TRUE(found.contains(listener.fd));
  EXPECT_FALSE(found.contains(bound_not_listening.fd));
  EXPECT_FALSE(found.contains(datagram.fd));
  EXPECT_FALSE(found.contains(unix_listener.fd));
}

TEST(TcpListener, AcceptedConnectionInheritsNoDelayFromListener) {
  Fd listener{::socket(AF_INET, SOCK_STREAM, 0)};
  sockaddr_in address = loopback_any_port();
  ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener.fd, 2), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&address), &length), 0);

  // Before: Linux's default, Nagle on.
  Fd client_before{::socket(AF_INET, SOCK_STREAM, 0)};
  ASSERT_EQ(::connect(client_before.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  Fd accepted_before{::accept(listener.fd, nullptr, nullptr)};
  ASSERT_GE(accepted_before.fd, 0);
  EXPECT_EQ(nodelay_of(accepted_before.fd), 0);

  ASSERT_TRUE(disable_nagle({listener.fd}).has_value());

  Fd client_after{::socket(AF_INET, SOCK_STREAM, 0)};
  ASSERT_EQ(::connect(client_after.fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  Fd accepted_after{::accept(listener.fd, nullptr, nullptr)};
  ASSERT_GE(accepted_after.fd, 0);
  EXPECT_NE(nodelay_of(accepted_after.fd), 0) << "an accepted connection must inherit TCP_NODELAY";
}

TEST(TcpListener, DisableNagleNamesTheSocketItCannotSet) {
  const auto result = disable_nagle({987654});
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().find("fd 987654"), std::string::npos) << result.error();
}

}  // namespace
}  // namespace floodgate::milter
