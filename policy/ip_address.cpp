#include "policy/ip_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace floodgate::policy {
namespace {

constexpr std::array<std::uint8_t, 12> k_v4_mapped_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string, and would stop at an embedded
  // NUL: "10.0.0.1\0junk" must not parse as 10.0.0.1.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());

  IpAddress address;
  in_addr v4{};
  if (inet_pton(AF_INET, buffer, &v4) == 1) {
    std::memcpy(address.m_bytes.data(), k_v4_mapped_prefix.data(), k_v4_mapped_prefix.size());
    std::memcpy(address.m_bytes.data() + 12, &v4, 4);
    address.m_is_v4 = true;
    return address;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buffer, &v6) == 1) {
    std::memcpy(address.m_bytes.data(), &v6, 16);
    address.m_is_v4 =
        std::memcmp(address.m_bytes.data(), k_v4_mapped_prefix.data(), k_v4_mapped_prefix.size()) == 0;
    return address;
  }
  return std::nullopt;
}

IpAddress IpAddress::masked(unsigned prefix_length) const {
  IpAddress result = *this;
  const unsigned family_bits = m_is_v4 ? 32 : 128;
  if (prefix_length >= family_bits) return result;
  const unsigned first_bit = (m_is_v4 ? 96 : 0) + prefix_length;
  for (unsigned bit = first_bit; bit < 128; ++bit) {
    result.m_bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return result;
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (m_is_v4) {
    inet_ntop(AF_INET, m_bytes.data() + 12, buffer, sizeof buffer);
  } else {
    inet_ntop(AF_INET6, m_bytes.data(), buffer, sizeof buffer);
  }
  return buffer;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto base = IpAddress::parse(text.substr(0, slash));
  if (!base) return std::nullopt;
  const unsigned family_bits = base->is_v4() ? 32 : 128;
  unsigned prefix = family_bits;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
        prefix > family_bits) {
      return std::nullopt;
    }
  }
  IpNetwork network;
  network.m_base = base->masked(prefix);
  network.m_prefix_length = prefix;
  return network;
}

bool IpNetwork::contains(const IpAddress& address) const {
  if (address.is_v4() != m_base.is_v4()) return false;
  return address.masked(m_prefix_length) == m_base;
}

std::string IpNetwork::to_string() const {
  return m_base.to_string() + "/" + std::to_string(m_prefix_length);
}

}  // namespace floodgate::policy
