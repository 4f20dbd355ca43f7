#include "quarantine/entry_json.hpp"

#include <array>
#include <cstdint>
#include <ctime>
#include <limits>

namespace floodgate::quarantine {
namespace {

using nlohmann::json;

constexpr std::string_view k_base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += k_base64_alphabet[(v >> 18) & 63];
    out += k_base64_alphabet[(v >> 12) & 63];
    out += k_base64_alphabet[(v >> 6) & 63];
    out += k_base64_alphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += k_base64_alphabet[(v >> 18) & 63];
    out += k_base64_alphabet[(v >> 12) & 63];
    out += rest == 2 ? k_base64_alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict: padded, no whitespace, no bits left over in the last symbol, so
// each byte string has exactly one encoding.
tl::expected<std::string, std::string> base64_decode(std::string_view text) {
  std::array<int, 256> value{};
  value.fill(-1);
  for (std::size_t i = 0; i < k_base64_alphabet.size(); ++i) {
    value[static_cast<unsigned char>(k_base64_alphabet[i])] = static_cast<int>(i);
  }
  if (text.size() % 4 != 0) return tl::unexpected(std::string("base64 length is not a multiple of 4"));
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int padding = 0;
    if (last && text[i + 3] == '=') padding = text[i + 2] == '=' ? 2 : 1;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      if (k >= 4 - static_cast<std::size_t>(padding)) {
        v <<= 6;
        continue;
      }
      const int d = value[static_cast<unsigned char>(text[i + k])];
      if (d < 0) return tl::unexpected(std::string("invalid base64 character"));
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    if ((padding == 1 && (v & 0xff) != 0) || (padding == 2 && (v & 0xffff) != 0)) {
      return tl::unexpected(std::string("non-canonical base64 padding"));
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (padding < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string iso_utc_seconds(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(time));
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

tl::expected<std::string, std::string> bytes_from_json(const json& value, std::string_view key) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.size() == 1 && value.contains("base64") && value["base64"].is_string()) {
    auto decoded = base64_decode(value["base64"].get_ref<const std::string&>());
    if (!decoded) return tl::unexpected(std::string(key) + ": " + decoded.error());
    return decoded;
  }
  return tl::unexpected(std::string(key) + ": expected a string or {\"base64\": ...}");
}

// Reads the JSON object field by field; the first problem wins.
class Reader {
 public:
  explicit Reader(const json& object) : m_object(object) {}

  const json* find(std::string_view key) {
    if (!m_error.empty()) return nullptr;
    const auto it = m_object.find(key);
    if (it == m_object.end()) {
      m_error = std::string(key) + ": missing";
      return nullptr;
    }
    return &*it;
  }

  void bytes(std::string_view key, std::string& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    auto decoded = bytes_from_json(*value, key);
    if (!decoded) {
      m_error = decoded.error();
      return;
    }
    out = std::move(*decoded);
  }

  void byte_list(std::string_view key, std::vector<std::string>& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (!value->is_array()) {
      m_error = std::string(key) + ": expected an array";
      return;
    }
    out.clear();
    out.reserve(value->size());
    for (const json& item : *value) {
      auto decoded = bytes_from_json(item, key);
      if (!decoded) {
        m_error = decoded.error();
        return;
      }
      out.push_back(std::move(*decoded));
    }
  }

  template <typename Integer>
  void integer(std::string_view key, Integer& out) {
    const json* value = find(key);
    if (value == nullptr) return;
    if (value->is_number_unsigned()) {
      const auto v = value->get<std::uint64_t>();
      if (v <= static_cast<std::uint64_t>(std::numeric_limits<Integer>::max())) {
        out = static_cast<Integer>(v);
        return;
      }
    } else if (value->is_number_integer()) {
      const auto v = value->get<std::int64_t>();
      if (std::numeric_limits<Integer>::is_signed && v >= static_cast<std::int64_t>(std::numeric_limits<Integer>::min()) &&
          v <= static_cast<std::int64_t>(std::numeric_limits<Integer>::max())) {
        out = static_cast<Integer>(v);
        return;
      }
    }
    m_error = std::string(key) + ": expected an integer in range";
  }

  // For a key older writers did not know: missing leaves `out` as it is.
  void optional_bytes(std::string_view key, std::string& out) {
    if (m_error.empty() && m_object.contains(key)) bytes(key, out);
  }

  const std::string& error() const { return m_error; }

 private:
  const json& m_object;
  std::string m_error;
};

}  // namespace

// Follows the Unicode well-formedness table (3-7): no overlong forms, no
// surrogates, nothing past U+10FFFF — the same rules nlohmann's strict
// dump() applies, so a string judged valid here never makes it throw.
bool is_valid_utf8(std::string_view bytes) {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  auto continuation = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < n && at(k) >= lo && at(k) <= hi;
  };
  while (i < n) {
    const unsigned char c = at(i);
    if (c < 0x80) {
      i += 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!continuation(i + 1)) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
      if (!continuation(i + 1, lo, hi) || !continuation(i + 2)) return false;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
      if (!continuation(i + 1, lo, hi) || !continuation(i + 2) || !continuation(i + 3)) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

nlohmann::json bytes_to_json(std::string_view bytes) {
  if (is_valid_utf8(bytes)) return std::string(bytes);
  return json{{"base64", base64_encode(bytes)}};
}

nlohmann::json entry_to_json(const QuarantineEntry& entry) {
  auto list = [](const std::vector<std::string>& items) {
    json array = json::array();
    for (const auto& item : items) array.push_back(bytes_to_json(item));
    return array;
  };
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(entry.time.time_since_epoch());
  return json{
      {"id", bytes_to_json(entry.id)},
      {"time", iso_utc_seconds(entry.time)},
      {"time_unix_ns", static_cast<std::int64_t>(since_epoch.count())},
      {"mode", std::string(to_string(entry.mode))},
      {"queue_id", bytes_to_json(entry.queue_id)},
      {"client_address", bytes_to_json(entry.client_address)},
      {"client_name", bytes_to_json(entry.client_name)},
      {"helo", bytes_to_json(entry.helo)},
      {"sasl_user", bytes_to_json(entry.sasl_user)},
      {"sender", bytes_to_json(entry.sender)},
      {"recipients", list(entry.recipients)},
      {"subject", bytes_to_json(entry.subject)},
      {"size_bytes", entry.size_bytes},
      {"score", entry.score},
      {"reasons", list(entry.reasons)},
      {"cause", bytes_to_json(entry.cause)},
      {"fingerprint", bytes_to_json(entry.fingerprint)},
      {"frozen_source", bytes_to_json(entry.frozen_source)},
  };
}

tl::expected<QuarantineEntry, std::string> entry_from_json(const nlohmann::json& object) {
  if (!object.is_object()) return tl::unexpected(std::string("entry metadata is not a JSON object"));
  QuarantineEntry entry;
  Reader read(object);
  read.bytes("id", entry.id);
  std::int64_t time_ns = 0;
  read.integer("time_unix_ns", time_ns);
  std::string mode;
  read.bytes("mode", mode);
  read.bytes("queue_id", entry.queue_id);
  read.bytes("client_address", entry.client_address);
  read.bytes("client_name", entry.client_name);
  read.bytes("helo", entry.helo);
  read.bytes("sasl_user", entry.sasl_user);
  read.bytes("sender", entry.sender);
  read.byte_list("recipients", entry.recipients);
  read.bytes("subject", entry.subject);
  read.integer("size_bytes", entry.size_bytes);
  read.integer("score", entry.score);
  read.byte_list("reasons", entry.reasons);
  read.bytes("cause", entry.cause);
  read.bytes("fingerprint", entry.fingerprint);
  // Entries written before containment have none: the score band stopped them.
  read.optional_bytes("frozen_source", entry.frozen_source);
  if (!read.error().empty()) return tl::unexpected(read.error());

  if (!is_valid_entry_id(entry.id)) return tl::unexpected(std::string("id: not a valid entry id"));
  if (mode == "spool") {
    entry.mode = EntryMode::Spool;
  } else if (mode == "hold") {
    entry.mode = EntryMode::Hold;
  } else {
    return tl::unexpected(std::string("mode: expected \"spool\" or \"hold\""));
  }
  entry.time = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(time_ns)));
  return entry;
}

}  // namespace floodgate::quarantine
