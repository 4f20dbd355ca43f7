// IpAddress and IpNetwork: parsed IPv4/IPv6 addresses and CIDR networks.
//
// Pure values; parsing never throws and returns std::nullopt on bad input.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are treated as IPv4, so a
// network written as 10.0.0.0/8 matches a client the MTA reports either way.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace floodgate::policy {

class IpAddress {
 public:
  static std::optional<IpAddress> parse(std::string_view text);

  bool is_v4() const { return m_is_v4; }
  // 16 bytes; an IPv4 address occupies the last 4 (v4-mapped form).
  const std::array<std::uint8_t, 16>& bytes() const { return m_bytes; }
  // The address with all bits past `prefix_length` cleared (prefix counted
  // in the address's own family: 0..32 for IPv4, 0..128 for IPv6).
  IpAddress masked(unsigned prefix_length) const;
  std::string to_string() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<std::uint8_t, 16> m_bytes{};
  bool m_is_v4 = false;
};

class IpNetwork {
 public:
  // "10.0.0.0/8", "::1/128", or a bare address (a host network).
  static std::optional<IpNetwork> parse(std::string_view text);

  bool contains(const IpAddress& address) const;
  std::string to_string() const;

 private:
  IpAddress m_base;
  unsigned m_prefix_length = 0;
};

}  // namespace floodgate::policy
