#include "milter/tcp_listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace floodgate::milter {
namespace {

bool socket_option_is(int fd, int level, int name, int want) {
  int value = 0;
  socklen_t length = sizeof value;
  return ::getsockopt(fd, level, name, &value, &length) == 0 && value == want;
}

bool is_tcp_listener(int fd) {
  int domain = 0;
  socklen_t length = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0) return false;  // not a socket
  if (domain != AF_INET && domain != AF_INET6) return false;
  return socket_option_is(fd, SOL_SOCKET, SO_TYPE, SOCK_STREAM) && socket_option_is(fd, SOL_SOCKET, SO_ACCEPTCONN, 1);
}

}  // namespace

std::set<int> tcp_listening_sockets() {
  std::set<int> sockets;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    const std::string name = entry.path().filename().string();
    int fd = -1;
    const auto [end, parsed] = std::from_chars(name.data(), name.data() + name.size(), fd);
    if (parsed != std::errc{} || end != name.data() + name.size()) continue;
    if (is_tcp_listener(fd)) sockets.insert(fd);
  }
  return sockets;
}

tl::expected<void, std::string> disable_nagle(const std::set<int>& sockets) {
  const int on = 1;
  for (const int fd : sockets) {
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) {
      return tl::unexpected{"setsockopt(TCP_NODELAY) on fd " + std::to_string(fd) + ": " + std::strerror(errno)};
    }
  }
  return {};
}

}  // namespace floodgate::milter
