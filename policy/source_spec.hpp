// SourceSpec: a source named by the values of its identity parts, e.g.
// "client_address=10.1.2.3 header:x-php-originating-script=12:contact.php".
//
// Containment freezes a SourceSpec. Rules produce one from the identity that
// tripped them (source_of), ops type one on the command line
// (parse_source_spec: `client=10.1.2.3 sasl=bob header:X-PHP-Originating-Script=12:contact.php`),
// and the milter asks whether a message comes from it (matches).
// canonical() is the one spelling of a spec (parts in a fixed order, names
// lower-cased), so the same source frozen twice, by a rule or by hand, is one
// freeze. Values are attacker-controlled text: never a Redis key or file name
// as they are (digest() is), and escaped when logged or printed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/config.hpp"
#include "policy/message_facts.hpp"

namespace floodgate::policy {

struct SourcePart {
  IdentityPart part;  // Kind, and for ClientNetwork the prefix, for Header/Macro the name
  std::string value;  // normalised as identity_part_value() gives it
  friend bool operator==(const SourcePart&, const SourcePart&) = default;
};

struct SourceSpec {
  std::vector<SourcePart> parts;  // sorted, no duplicates (see canonical())

  std::string canonical() const;
  std::string digest() const;  // 16 hex digits of canonical()
  // True when the parts can all be known before the message's headers arrive
  // (no header part): such a freeze can refuse the message at MAIL FROM.
  bool known_before_headers() const;
  friend bool operator==(const SourceSpec&, const SourceSpec&) = default;
};

// The source a rule's identity names for this message (its parts with this
// message's values); empty when a part is missing.
std::optional<SourceSpec> source_of(const IdentityDefinition& identity, const MessageFacts& facts);

// From command-line words: client=ADDR, network=ADDR/LEN, client_name=NAME,
// sasl=USER, sender=ADDR, sender_domain=DOMAIN, header:NAME=VALUE,
// macro:NAME=VALUE; also the canonical spelling (client_address=...,
// sasl_user=...). On error returns nullopt and says why in `error`.
std::optional<SourceSpec> parse_source_spec(const std::vector<std::string>& words, std::string& error);
// The canonical spelling read back (what canonical() wrote).
std::optional<SourceSpec> parse_canonical_source(std::string_view text);

// Every part of `spec` has the message's value. Header parts only match when
// `headers_known` (before the headers arrive they cannot be checked yet).
bool matches(const SourceSpec& spec, const MessageFacts& facts, bool headers_known);

}  // namespace floodgate::policy
