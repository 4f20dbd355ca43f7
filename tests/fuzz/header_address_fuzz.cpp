// libFuzzer target for the small parsers of SMTP client text outside the
// message body: IP addresses and networks, address domains, ASCII folding
// and trimming, the MIME header fields the fingerprinter reads, identity
// part values and source specs (built from a message, typed by ops, read
// back from Redis), and the escaping of all of it for log lines.
//
// Input layout: byte 0 picks the identity parts (a bit per kind), byte 1 the
// IPv4 prefix, byte 2 the IPv6 prefix, byte 3 the log escaping cap; then
// NUL-separated fields: client address, client name, SASL user, sender,
// header name, header value, macro name, macro value, Content-Type,
// Content-Disposition, then source spec words (to the end). Every field also
// goes through every byte-string parser.
//
// Besides "no crash, no sanitizer report", it aborts when a promise the
// headers make breaks: escaped log values hold no control character and
// unescape to the input; lower-cased text has no upper case; trimming
// leaves no edge space; parsed addresses, networks and source specs read
// back to themselves; a message matches the source spec built from it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milter/log_escape.hpp"
#include "policy/ascii.hpp"
#include "policy/config.hpp"
#include "policy/identity.hpp"
#include "policy/ip_address.hpp"
#include "policy/message_facts.hpp"
#include "policy/mime_header.hpp"
#include "policy/source_spec.hpp"

namespace {

using namespace floodgate;
using policy::IdentityPart;

// abort() rather than assert(): the check must hold in release builds too.
void require(bool condition) {
  if (!condition) std::abort();
}

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_edge_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
// What a log line or a canonical source spec may hold: printable ASCII.
bool is_printable(std::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  }
  return true;
}

std::vector<std::string_view> split_fields(std::string_view input) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start <= input.size() && fields.size() < 64) {
    const std::size_t end = input.find('\0', start);
    fields.push_back(
        input.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return fields;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// escape_log_value's inverse: only \xNN (lower-case hex) may appear after a
// backslash; nullopt if the text is not something the escaper writes.
std::optional<std::string> unescape_log_value(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (i + 3 >= text.size()) return std::nullopt;
    if (text[i + 1] != 'x') return std::nullopt;
    const int high = hex_value(text[i + 2]);
    const int low = hex_value(text[i + 3]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 3;
  }
  return out;
}

void check_log_escaping(std::string_view raw, std::size_t max_bytes) {
  const std::string escaped = milter::escape_log_value(raw, max_bytes);
  require(is_printable(escaped));
  require(escaped.find('"') == std::string::npos);
  const bool truncated = raw.size() > max_bytes;
  std::string_view body = escaped;
  if (truncated) {
    require(body.ends_with("..."));
    body.remove_suffix(3);
  }
  const auto unescaped = unescape_log_value(body);
  require(unescaped.has_value());
  require(*unescaped == raw.substr(0, max_bytes));

  // key=value stays one token of a space-separated line: either no space
  // and no quote, or one double-quoted string.
  const std::string field = milter::log_field("k", raw, max_bytes);
  require(field.starts_with("k="));
  const std::string_view value = std::string_view(field).substr(2);
  require(is_printable(value));
  if (value.find(' ') != std::string_view::npos || value.find('=') != std::string_view::npos ||
      value.empty() || value.front() == '"') {
    require(value.size() >= 2 && value.front() == '"' && value.back() == '"');
    require(value.substr(1, value.size() - 2).find('"') == std::string_view::npos);
  }
}

void check_ascii(std::string_view text) {
  const std::string lowered = policy::lower_ascii(text);
  require(lowered.size() == text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    require(!is_upper(lowered[i]));
    // Only A-Z change: 8-bit bytes (UTF-8, Latin-1) pass untouched.
    if (!is_upper(text[i])) require(lowered[i] == text[i]);
  }
  require(policy::lower_ascii(lowered) == lowered);
  require(policy::equals_ignoring_case(text, lowered));
  require(policy::equals_ignoring_case(lowered, text));

  for (const std::string_view trimmed : {policy::trim_whitespace(text), policy::trim_header_space(text)}) {
    require(trimmed.empty() || (!is_edge_space(trimmed.front()) && !is_edge_space(trimmed.back())));
    require(trimmed.data() >= text.data() && trimmed.data() + trimmed.size() <= text.data() + text.size());
  }

  const std::string domain = policy::address_domain(text);
  require(domain.find('@') == std::string::npos);
  require(lowered.ends_with(domain));
  for (const char c : domain) require(!is_upper(c));
}

void check_ip(std::string_view text, unsigned v4_prefix, unsigned v6_prefix) {
  if (const auto address = policy::IpAddress::parse(text)) {
    const std::string spelled = address->to_string();
    const auto again = policy::IpAddress::parse(spelled);
    require(again.has_value() && *again == *address && again->to_string() == spelled);
    require(address->is_v4() == (spelled.find(':') == std::string::npos));
    const unsigned prefix = address->is_v4() ? v4_prefix : v6_prefix;
    const auto masked = address->masked(prefix);
    require(masked.masked(prefix) == masked);
    require(address->masked(128) == *address);
    const auto network = policy::IpNetwork::parse(spelled + "/" + std::to_string(prefix));
    require(network.has_value() && network->contains(*address) && network->contains(masked));
  }
  if (const auto network = policy::IpNetwork::parse(text)) {
    const std::string spelled = network->to_string();
    const auto again = policy::IpNetwork::parse(spelled);
    require(again.has_value() && again->to_string() == spelled);
    const auto base = policy::IpAddress::parse(std::string_view(spelled).substr(0, spelled.find('/')));
    require(base.has_value() && network->contains(*base));
  }
}

void check_mime_header(std::string_view content_type, std::string_view disposition) {
  const policy::ContentType parsed = policy::parse_content_type(content_type);
  for (const char c : parsed.media_type) require(!is_upper(c) && !is_edge_space(c));
  const auto slash = parsed.media_type.find('/');
  require(slash != std::string::npos && slash > 0 && slash + 1 < parsed.media_type.size());
  require(parsed.boundary.size() <= policy::k_max_boundary_length);
  require(!parsed.charset.empty() && parsed.charset.size() <= policy::k_max_charset_length);
  for (const char c : parsed.charset) require(!is_upper(c));
  require(parsed.is_multipart() == parsed.media_type.starts_with("multipart/"));
  // Header names and parameter names are case-insensitive, values are not:
  // lower-casing the whole field changes nothing but the boundary's case.
  const policy::ContentType lowered = policy::parse_content_type(policy::lower_ascii(content_type));
  require(lowered.media_type == parsed.media_type && lowered.charset == parsed.charset);
  require(policy::lower_ascii(lowered.boundary) == policy::lower_ascii(parsed.boundary));
  require(policy::is_attachment_disposition(disposition) ==
          policy::is_attachment_disposition(policy::lower_ascii(disposition)));
}

void check_canonical(const policy::SourceSpec& spec) {
  const std::string canonical = spec.canonical();
  // One printable line: a source is stored in Redis and printed as it is.
  require(is_printable(canonical));
  const auto read_back = policy::parse_canonical_source(canonical);
  require(read_back.has_value() && *read_back == spec && read_back->canonical() == canonical);
  require(spec.digest().size() == 16);
}

void check_identity(std::uint8_t part_mask, unsigned v4_prefix, unsigned v6_prefix,
                    const policy::MessageFacts& facts, const std::string& header_name,
                    const std::string& macro_name) {
  using Kind = IdentityPart::Kind;
  constexpr Kind k_kinds[] = {Kind::ClientAddress, Kind::ClientNetwork, Kind::ClientName, Kind::SaslUser,
                              Kind::Sender,        Kind::SenderDomain,  Kind::Header,     Kind::Macro};
  policy::IdentityDefinition identity;
  identity.name = "fuzz";
  for (std::size_t i = 0; i < std::size(k_kinds); ++i) {
    if ((part_mask >> i & 1) == 0) continue;
    IdentityPart part;
    part.kind = k_kinds[i];
    part.ipv4_prefix = v4_prefix;
    part.ipv6_prefix = v6_prefix;
    // As the config loader gives them: header names lower-case, macro names
    // without braces.
    if (part.kind == Kind::Header) part.name = header_name;
    if (part.kind == Kind::Macro) part.name = macro_name;
    const std::string value = policy::identity_part_value(part, facts);
    if (part.kind == Kind::Sender || part.kind == Kind::SenderDomain || part.kind == Kind::ClientName ||
        part.kind == Kind::SaslUser) {
      for (const char c : value) require(!is_upper(c));
    }
    if (part.kind == Kind::ClientAddress && !value.empty())
      require(policy::IpAddress::parse(value).has_value());
    if (part.kind == Kind::ClientNetwork && !value.empty())
      require(policy::IpNetwork::parse(value).has_value());
    identity.parts.push_back(std::move(part));
  }

  for (const auto when_missing :
       {policy::MissingPartPolicy::SkipRule, policy::MissingPartPolicy::Placeholder}) {
    identity.when_missing = when_missing;
    const auto built = policy::build_identity(identity, facts);
    if (when_missing == policy::MissingPartPolicy::Placeholder) require(built.has_value());
    if (built) {
      require(built->digest.size() == 16);
      require(built->digest.find_first_not_of("0123456789abcdef") == std::string::npos);
    }
  }

  const auto spec = policy::source_of(identity, facts);
  if (!spec) return;
  check_canonical(*spec);
  // A freeze of the source a message came from must catch that message.
  require(policy::matches(*spec, facts, true));
  if (spec->known_before_headers()) require(policy::matches(*spec, facts, false));
}

void check_typed_spec(const std::vector<std::string>& words) {
  std::string error;
  const auto spec = policy::parse_source_spec(words, error);
  if (!spec) {
    require(!error.empty());
    return;
  }
  require(!spec->parts.empty());
  check_canonical(*spec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::uint8_t part_mask = data[0];
  const unsigned v4_prefix = data[1] % 33;
  const unsigned v6_prefix = data[2] % 129;
  const std::size_t max_log_bytes = data[3];
  const auto fields = split_fields(std::string_view(reinterpret_cast<const char*>(data) + 4, size - 4));
  auto field = [&](std::size_t i) { return i < fields.size() ? fields[i] : std::string_view{}; };

  for (const std::string_view text : fields) {
    check_log_escaping(text, max_log_bytes);
    check_ascii(text);
    check_ip(text, v4_prefix, v6_prefix);
    if (const auto spec = policy::parse_canonical_source(text)) {
      require(spec->canonical() == text);
      check_canonical(*spec);
    }
  }
  check_mime_header(field(8), field(9));

  // The facts the milter collects (milter/session.cpp), and the names the
  // config loader lets an identity have: configured header names non-empty
  // and lower-case, macro names non-empty and without braces.
  policy::MessageFacts facts;
  facts.client_address = std::string(field(0));
  facts.client_ip = policy::IpAddress::parse(facts.client_address);
  facts.client_name = std::string(field(1));
  facts.sasl_user = std::string(field(2));
  facts.sender = std::string(field(3));
  const std::string header_name =
      field(4).empty() ? "x-php-originating-script" : policy::lower_ascii(field(4));
  facts.headers.emplace(header_name, std::string(field(5)));
  const std::string macro_name = field(6).empty() ? "auth_authen" : std::string(field(6));
  facts.macros.emplace(macro_name, std::string(field(7)));
  check_identity(part_mask, v4_prefix, v6_prefix, facts, header_name, macro_name);

  std::vector<std::string> words;
  for (std::size_t i = 10; i < fields.size(); ++i) words.emplace_back(fields[i]);
  check_typed_spec(words);
  return 0;
}
