#include "ratelimit/redis_url.hpp"

#include <charconv>
#include <fstream>
#include <utility>

namespace floodgate::ratelimit {
namespace {

constexpr std::string_view k_redis_scheme = "redis://";
constexpr std::string_view k_unix_scheme = "unix:";

// The URL as it may appear in an error message: the password masked.
std::string printable(std::string_view url) {
  if (!url.starts_with(k_redis_scheme)) return std::string{url};
  const std::string_view rest = url.substr(k_redis_scheme.size());
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) return std::string{url};
  const std::string_view userinfo = rest.substr(0, at);
  const auto colon = userinfo.find(':');
  // Without a ':' there is no telling a user name from a password: hide it.
  if (colon == std::string_view::npos) {
    return std::string{k_redis_scheme} + "***" + std::string{rest.substr(at)};
  }
  return std::string{k_redis_scheme} + std::string{userinfo.substr(0, colon)} + ":***" +
         std::string{rest.substr(at)};
}

tl::unexpected<std::string> failure(std::string_view url, std::string_view what) {
  return tl::unexpected{"redis URL '" + printable(url) + "': " + std::string{what}};
}

// A whole string of decimal digits within [min, max].
std::optional<long> parse_number(std::string_view text, long min, long max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || text.front() == '-' ||
      text.front() == '+' || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

tl::expected<RedisEndpoint, std::string> parse_unix(std::string_view url) {
  RedisEndpoint endpoint;
  endpoint.transport = RedisEndpoint::Transport::Unix;
  endpoint.port = 0;
  std::string_view path = url.substr(k_unix_scheme.size());
  if (const auto query = path.find('?'); query != std::string_view::npos) {
    const std::string_view options = path.substr(query + 1);
    path = path.substr(0, query);
    if (!options.starts_with("db=")) return failure(url, "the only option is ?db=N");
    const auto db = parse_number(options.substr(3), 0, k_max_redis_db);
    if (!db) return failure(url, "db must be a number 0-65535");
    endpoint.db = static_cast<int>(*db);
  }
  if (path.empty()) return failure(url, "socket path is missing");
  if (path.front() != '/') return failure(url, "socket path must be absolute");
  endpoint.socket_path = std::string{path};
  return endpoint;
}

tl::expected<RedisEndpoint, std::string> parse_tcp(std::string_view url) {
  RedisEndpoint endpoint;
  std::string_view rest = url.substr(k_redis_scheme.size());

  // The password may contain '@', so the host starts after the last one.
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return failure(url, "credentials must be ':password@' or 'user:password@'");
    }
    if (colon > 0) endpoint.username = std::string{userinfo.substr(0, colon)};
    const std::string_view password = userinfo.substr(colon + 1);
    if (password.empty()) return failure(url, "password after ':' is empty");
    endpoint.password = std::string{password};
  }

  if (rest.find('?') != std::string_view::npos) {
    return failure(url, "query options are not supported in redis:// URLs");
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db_text = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db_text.empty()) {
      const auto db = parse_number(db_text, 0, k_max_redis_db);
      if (!db) return failure(url, "db must be a number 0-65535");
      endpoint.db = static_cast<int>(*db);
    }
  }

  std::string_view port_text;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return failure(url, "IPv6 address lacks ']'");
    endpoint.host = std::string{rest.substr(1, close - 1)};
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return failure(url, "expected ':port' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return failure(url, "port is missing after ':'");
    }
  } else {
    const auto colon = rest.find(':');
    endpoint.host = std::string{rest.substr(0, colon)};
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return failure(url, "port is missing after ':'");
    }
  }
  if (endpoint.host.empty()) return failure(url, "host is missing");
  if (!port_text.empty()) {
    const auto port = parse_number(port_text, 1, 65535);
    if (!port) return failure(url, "port must be 1-65535");
    endpoint.port = static_cast<std::uint16_t>(*port);
  }
  return endpoint;
}

}  // namespace

tl::expected<RedisEndpoint, std::string> parse_redis_url(std::string_view url) {
  if (url.starts_with(k_redis_scheme)) return parse_tcp(url);
  if (url.starts_with(k_unix_scheme)) return parse_unix(url);
  return failure(url, "must start with redis:// or unix:");
}

namespace {

std::string host_port_text(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// "host:port" or "[v6]:port", the port required: a sentinel's port (26379
// by convention) is too easily confused with the master's to be implied.
tl::expected<SentinelAddress, std::string> parse_sentinel_address(std::string_view text) {
  const auto bad = [&](std::string_view what) {
    return tl::unexpected{"'" + std::string{text} + "': " + std::string{what}};
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("expected host:port or [v6]:port");
  std::string_view host = text.substr(0, colon);
  if (host.starts_with('[')) {
    if (host.size() < 3 || !host.ends_with(']')) return bad("IPv6 address must be in [brackets]");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("IPv6 address must be in [brackets]");
  }
  if (host.empty()) return bad("host is missing");
  for (const char c : host) {
    if (c <= ' ' || c >= 0x7f || c == '/' || c == '@') return bad("host has a character hosts do not have");
  }
  const auto port = parse_number(text.substr(colon + 1), 1, 65535);
  if (!port) return bad("port must be 1-65535");
  return SentinelAddress{.host = std::string{host}, .port = static_cast<std::uint16_t>(*port)};
}

}  // namespace

tl::expected<RedisEndpoint, std::string> redis_endpoint_from_settings(const policy::RedisSettings& settings) {
  auto endpoint = parse_redis_url(settings.url);
  if (!endpoint) return tl::unexpected{"redis.url: " + endpoint.error()};
  if (!settings.username.empty()) endpoint->username = settings.username;
  if (!settings.password_file.empty()) {
    auto password = read_redis_password_file(settings.password_file);
    if (!password) return tl::unexpected{"redis.password_file: " + password.error()};
    endpoint->password = std::move(*password);
  }

  const policy::SentinelSettings& sentinel = settings.sentinel;
  if (sentinel.master_name.empty() && sentinel.addresses.empty()) return endpoint;
  if (sentinel.master_name.empty()) {
    return tl::unexpected{std::string{"redis.sentinel.master_name: is missing (addresses are set)"}};
  }
  if (sentinel.addresses.empty()) {
    return tl::unexpected{std::string{"redis.sentinel.addresses: is empty (master_name is set)"}};
  }
  // The sentinels name a host and port; a socket path has no place in that.
  if (endpoint->transport == RedisEndpoint::Transport::Unix) {
    return tl::unexpected{std::string{"redis.url: must be redis:// with Sentinel (the master is reached over TCP)"}};
  }
  endpoint->sentinel_master = sentinel.master_name;
  for (const std::string& text : sentinel.addresses) {
    auto address = parse_sentinel_address(text);
    if (!address) return tl::unexpected{"redis.sentinel.addresses: " + address.error()};
    endpoint->sentinels.push_back(std::move(*address));
  }
  if (!sentinel.password_file.empty()) {
    auto password = read_redis_password_file(sentinel.password_file);
    if (!password) return tl::unexpected{"redis.sentinel.password_file: " + password.error()};
    endpoint->sentinel_password = std::move(*password);
  }
  return endpoint;
}

std::string describe(const SentinelAddress& sentinel) { return host_port_text(sentinel.host, sentinel.port); }

std::string describe(const RedisEndpoint& endpoint) {
  std::string text;
  if (!endpoint.sentinel_master.empty()) {
    text = "sentinel master " + endpoint.sentinel_master + " via ";
    for (std::size_t i = 0; i < endpoint.sentinels.size(); ++i) {
      if (i > 0) text += ",";
      text += describe(endpoint.sentinels[i]);
    }
  } else if (endpoint.transport == RedisEndpoint::Transport::Unix) {
    text = "unix:" + endpoint.socket_path;
  } else {
    text = host_port_text(endpoint.host, endpoint.port);
  }
  if (endpoint.db != 0) text += " db " + std::to_string(endpoint.db);
  return text;
}

tl::expected<std::string, std::string> read_redis_password_file(const std::string& path) {
  std::ifstream file(path);
  std::string password;
  if (!file || !std::getline(file, password)) return tl::unexpected("cannot read password file " + path);
  while (!password.empty() && (password.back() == '\r' || password.back() == ' ')) password.pop_back();
  if (password.empty()) return tl::unexpected("password file " + path + " is empty");
  return password;
}

}  // namespace floodgate::ratelimit
