// SUMMARY: SourceSpec spelling (canonical text and its digest), the spec a
// rule's identity names for a message, the spec ops type, and matching.
//
// SECURITY: part values come from messages (source_of) or from the command
// line, and canonical text is read back from Redis; all are untrusted. The
// canonical text percent-encodes every byte that could split a part or a
// value ('%', '=', space, controls, 8-bit), so it is one printable line and
// no value can forge another part.
//
// LIMITS: a header part only matches headers the configuration names (the
// milter collects no others); a ClientNetwork part keeps only the prefix of
// its own address family, the other family's prefix is reset to the default
// so a rule's freeze and a typed one compare equal.
#include "policy/source_spec.hpp"

#include <algorithm>
#include <charconv>
#include <tuple>

#include "policy/ascii.hpp"
#include "policy/digest.hpp"
#include "policy/identity.hpp"
#include "policy/ip_address.hpp"

namespace floodgate::policy {
namespace {

using Kind = IdentityPart::Kind;

constexpr std::string_view k_header_prefix = "header:";
constexpr std::string_view k_macro_prefix = "macro:";
constexpr std::string_view k_known_parts =
    "(use client=, network=, client_name=, sasl=, sender=, sender_domain=, header:NAME=, "
    "macro:NAME=)";

bool needs_escape(unsigned char c) { return c == '%' || c == '=' || c < 0x21 || c >= 0x7f; }

std::string escape(std::string_view text) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out += '%';
      out += k_hex[c >> 4];
      out += k_hex[c & 0x0f];
    } else {
      out += ch;
    }
  }
  return out;
}

int hex_digit(char c) {
  // Upper-case only: canonical() writes upper case, and one spelling per
  // text keeps canonical texts one-to-one with specs.
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_digit(text[i + 1]);
    const int low = hex_digit(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string_view kind_label(Kind kind) {
  switch (kind) {
    case Kind::ClientAddress: return "client_address";
    case Kind::ClientNetwork: return "client_network";
    case Kind::ClientName: return "client_name";
    case Kind::SaslUser: return "sasl_user";
    case Kind::Sender: return "sender";
    case Kind::SenderDomain: return "sender_domain";
    case Kind::Header: return "header";
    case Kind::Macro: return "macro";
  }
  return "part";
}

bool has_name(Kind kind) { return kind == Kind::Header || kind == Kind::Macro; }

std::string label_of(const IdentityPart& part) {
  std::string label(kind_label(part.kind));
  if (has_name(part.kind)) {
    label += ':';
    label += escape(part.name);
  }
  return label;
}

// The order of canonical text: kind, then name; the value only breaks ties
// between parts of one kind that an identity lists twice (two networks).
auto order_key(const SourcePart& p) {
  return std::tie(p.part.kind, p.part.name, p.value);
}
bool same_slot(const SourcePart& a, const SourcePart& b) {
  return a.part.kind == b.part.kind && a.part.name == b.part.name;
}

// "10.1.2.0/24" -> the part with that family's prefix set; the other family's
// prefix stays at its default so that equal networks are equal parts.
std::optional<SourcePart> network_part(std::string_view text) {
  const auto network = IpNetwork::parse(text);
  if (!network) return std::nullopt;
  SourcePart result;
  result.part.kind = Kind::ClientNetwork;
  result.value = network->to_string();
  const auto slash = result.value.find('/');
  const auto base = IpAddress::parse(std::string_view(result.value).substr(0, slash));
  unsigned prefix = 0;
  const char* first = result.value.data() + slash + 1;
  const char* last = result.value.data() + result.value.size();
  if (!base || std::from_chars(first, last, prefix).ec != std::errc{}) return std::nullopt;
  (base->is_v4() ? result.part.ipv4_prefix : result.part.ipv6_prefix) = prefix;
  return result;
}

std::optional<SourcePart> address_part(std::string_view text) {
  const auto address = IpAddress::parse(text);
  if (!address) return std::nullopt;
  SourcePart result;
  result.part.kind = Kind::ClientAddress;
  result.value = address->to_string();
  return result;
}

// RFC 5322 field name: printable US-ASCII except ':'.
bool is_header_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != ':';
  });
}

// Milter macro names are letters, digits and '_', as the config accepts them.
bool is_macro_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
  });
}

std::string quoted(std::string_view text) { return "'" + escape(text) + "'"; }

// One typed word, NAME=VALUE, normalised the way identity_part_value()
// normalises a message's value, so a typed spec equals a rule's.
std::optional<SourcePart> parse_word(std::string_view word, std::string& error) {
  const auto equals = word.find('=');
  if (equals == std::string_view::npos) {
    error = "expected NAME=VALUE, got " + quoted(word) + " " + std::string(k_known_parts);
    return std::nullopt;
  }
  const std::string_view name = word.substr(0, equals);
  const std::string_view raw_value = trim_whitespace(word.substr(equals + 1));
  const auto empty_value = [&]() -> std::optional<SourcePart> {
    error = "source part " + quoted(name) + " needs a value";
    return std::nullopt;
  };
  if (raw_value.empty()) return empty_value();

  SourcePart result;
  const std::string lowered_name = lower_ascii(name);
  if (lowered_name == "client" || lowered_name == "client_address") {
    auto part = address_part(raw_value);
    if (!part) error = quoted(raw_value) + " is not an IP address (" + std::string(name) + "=)";
    return part;
  }
  if (lowered_name == "network" || lowered_name == "client_network") {
    // A bare address would silently become a /32 host network: ask for the
    // length, it is the whole point of a network part.
    auto part = raw_value.find('/') == std::string_view::npos ? std::nullopt : network_part(raw_value);
    if (!part) {
      error = quoted(raw_value) + " is not a network such as 10.1.2.0/24 or 2001:db8::/64 (" +
              std::string(name) + "=)";
    }
    return part;
  }
  if (lowered_name == "client_name") {
    result.part.kind = Kind::ClientName;
    result.value = lower_ascii(raw_value);
    if (result.value == "unknown") {
      // The MTA's word for "no verified reverse name"; no message has it.
      error = "client_name=unknown names no client (it is how the MTA says there is no name)";
      return std::nullopt;
    }
    return result;
  }
  if (lowered_name == "sasl" || lowered_name == "sasl_user") {
    result.part.kind = Kind::SaslUser;
    result.value = lower_ascii(raw_value);
    return result;
  }
  if (lowered_name == "sender") {
    std::string_view address = raw_value;
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
      address = trim_whitespace(address.substr(1, address.size() - 2));
    }
    if (address.empty()) {
      error = "sender=<> is the null sender, which names no source";
      return std::nullopt;
    }
    result.part.kind = Kind::Sender;
    result.value = lower_ascii(address);
    return result;
  }
  if (lowered_name == "sender_domain") {
    result.part.kind = Kind::SenderDomain;
    result.value = lower_ascii(raw_value);
    return result;
  }
  if (lowered_name.starts_with(k_header_prefix)) {
    const std::string_view header = name.substr(k_header_prefix.size());
    if (!is_header_name(header)) {
      error = "expected a header field name after 'header:', such as "
              "header:X-PHP-Originating-Script=VALUE, got " + quoted(header);
      return std::nullopt;
    }
    result.part.kind = Kind::Header;
    result.part.name = lower_ascii(header);
    result.value = std::string(raw_value);
    return result;
  }
  if (lowered_name.starts_with(k_macro_prefix)) {
    std::string_view macro = name.substr(k_macro_prefix.size());
    if (macro.size() >= 2 && macro.front() == '{' && macro.back() == '}') {
      macro = macro.substr(1, macro.size() - 2);
    }
    if (!is_macro_name(macro)) {
      error = "expected a macro name after 'macro:', such as macro:daemon_name=VALUE, got " +
              quoted(macro);
      return std::nullopt;
    }
    result.part.kind = Kind::Macro;
    result.part.name = std::string(macro);
    result.value = std::string(raw_value);
    return result;
  }
  error = "unknown source part " + quoted(name) + " " + std::string(k_known_parts);
  return std::nullopt;
}

// One canonical word read back: no normalising, only what canonical() can
// have written (the final canonical() comparison rejects anything else).
std::optional<SourcePart> parse_canonical_word(std::string_view word) {
  const auto equals = word.find('=');
  if (equals == std::string_view::npos) return std::nullopt;
  const std::string_view label = word.substr(0, equals);
  auto value = unescape(word.substr(equals + 1));
  if (!value || value->empty()) return std::nullopt;

  if (label == kind_label(Kind::ClientAddress)) return address_part(*value);
  if (label == kind_label(Kind::ClientNetwork)) return network_part(*value);
  SourcePart result;
  result.value = std::move(*value);
  for (const Kind kind : {Kind::ClientName, Kind::SaslUser, Kind::Sender, Kind::SenderDomain}) {
    if (label == kind_label(kind)) {
      result.part.kind = kind;
      return result;
    }
  }
  for (const auto& [prefix, kind] : {std::pair{k_header_prefix, Kind::Header},
                                     std::pair{k_macro_prefix, Kind::Macro}}) {
    if (!label.starts_with(prefix)) continue;
    auto name = unescape(label.substr(prefix.size()));
    if (!name || name->empty()) return std::nullopt;
    result.part.kind = kind;
    result.part.name = std::move(*name);
    return result;
  }
  return std::nullopt;
}

}  // namespace

std::string SourceSpec::canonical() const {
  std::vector<const SourcePart*> sorted;
  sorted.reserve(parts.size());
  for (const auto& part : parts) sorted.push_back(&part);
  std::sort(sorted.begin(), sorted.end(),
            [](const SourcePart* a, const SourcePart* b) { return order_key(*a) < order_key(*b); });
  std::string text;
  for (const SourcePart* part : sorted) {
    if (!text.empty()) text += ' ';
    text += label_of(part->part);
    text += '=';
    text += escape(part->value);
  }
  return text;
}

std::string SourceSpec::digest() const { return to_hex(digest64(canonical())); }

bool SourceSpec::known_before_headers() const {
  return std::none_of(parts.begin(), parts.end(),
                      [](const SourcePart& p) { return p.part.kind == Kind::Header; });
}

std::optional<SourceSpec> source_of(const IdentityDefinition& identity, const MessageFacts& facts) {
  SourceSpec spec;
  for (const auto& part : identity.parts) {
    // Even for a Placeholder identity: a freeze must name a real source,
    // never "every message without a SASL user".
    std::string value = identity_part_value(part, facts);
    if (value.empty()) return std::nullopt;
    if (part.kind == Kind::ClientNetwork) {
      auto network = network_part(value);
      if (!network) return std::nullopt;
      spec.parts.push_back(std::move(*network));
      continue;
    }
    spec.parts.push_back(SourcePart{IdentityPart{.kind = part.kind, .name = part.name}, std::move(value)});
  }
  if (spec.parts.empty()) return std::nullopt;
  std::sort(spec.parts.begin(), spec.parts.end(),
            [](const SourcePart& a, const SourcePart& b) { return order_key(a) < order_key(b); });
  // An identity may list a part twice; the source is the same.
  spec.parts.erase(std::unique(spec.parts.begin(), spec.parts.end(),
                               [](const SourcePart& a, const SourcePart& b) {
                                 return order_key(a) == order_key(b);
                               }),
                   spec.parts.end());
  return spec;
}

std::optional<SourceSpec> parse_source_spec(const std::vector<std::string>& words, std::string& error) {
  if (words.empty()) {
    error = "a source needs at least one part, e.g. client=10.1.2.3 " + std::string(k_known_parts);
    return std::nullopt;
  }
  SourceSpec spec;
  for (const auto& word : words) {
    auto part = parse_word(word, error);
    if (!part) return std::nullopt;
    for (const auto& seen : spec.parts) {
      if (same_slot(seen, *part)) {
        error = "duplicate source part " + quoted(label_of(part->part)) + " in " + quoted(word);
        return std::nullopt;
      }
    }
    spec.parts.push_back(std::move(*part));
  }
  std::sort(spec.parts.begin(), spec.parts.end(),
            [](const SourcePart& a, const SourcePart& b) { return order_key(a) < order_key(b); });
  return spec;
}

std::optional<SourceSpec> parse_canonical_source(std::string_view text) {
  if (text.empty()) return std::nullopt;
  SourceSpec spec;
  std::size_t start = 0;
  while (true) {
    const auto space = text.find(' ', start);
    auto part = parse_canonical_word(text.substr(start, space - start));
    if (!part) return std::nullopt;
    spec.parts.push_back(std::move(*part));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  // Sorted, without repeats, and spelled exactly as canonical() spells it
  // (upper-case hex, no needless escapes, normalised addresses): else two
  // texts would name one spec.
  for (std::size_t i = 1; i < spec.parts.size(); ++i) {
    if (!(order_key(spec.parts[i - 1]) < order_key(spec.parts[i]))) return std::nullopt;
  }
  if (spec.canonical() != text) return std::nullopt;
  return spec;
}

bool matches(const SourceSpec& spec, const MessageFacts& facts, bool headers_known) {
  // A spec without parts would name every message; it never comes from the
  // parsers or source_of, and must not freeze all mail if built by mistake.
  if (spec.parts.empty()) return false;
  return std::all_of(spec.parts.begin(), spec.parts.end(), [&](const SourcePart& p) {
    if (p.part.kind == Kind::Header && !headers_known) return false;
    // For ClientNetwork this masks the message's address with the part's
    // prefix, the same text as the stored network when it contains it.
    return identity_part_value(p.part, facts) == p.value;
  });
}

}  // namespace floodgate::policy
