// Source identities: who sent a message, as a rule counts it.
//
// build_identity() turns the parts an IdentityDefinition names into a
// SourceIdentity: a digest for counter keys and a readable description for
// logs. Parts are normalised first (addresses lower-cased, header values
// trimmed) so that trivial variations do not split one source into several.
//
// LIMITS: clients behind one NAT or one shared web server share a
// client_address identity; a header part is only as trustworthy as the host
// that wrote the header (X-PHP-Originating-Script is written by PHP on the
// sending server, so it is trusted only together with client_address).
#pragma once

#include <optional>
#include <string>

#include "policy/ascii.hpp"
#include "policy/config.hpp"
#include "policy/message_facts.hpp"

namespace floodgate::policy {

struct SourceIdentity {
  // 16 hex digits; digest of the definition's name and the part values.
  std::string digest;
  // "client_address=10.1.2.3 sasl_user=-" : attacker-controlled values,
  // escape before logging.
  std::string description;
};

// Empty when a part is missing and the definition says SkipRule.
std::optional<SourceIdentity> build_identity(const IdentityDefinition& definition,
                                             const MessageFacts& facts);

// build_identity(...)->digest alone, without the description (counter
// planning needs no more).
std::optional<std::string> build_identity_digest(const IdentityDefinition& definition, const MessageFacts& facts);

// The value a single part takes for a message, normalised; empty when the
// message does not have it.
std::string identity_part_value(const IdentityPart& part, const MessageFacts& facts);

// Domain of an address ("user@Example.COM" -> "example.com"), empty if none.
std::string address_domain(std::string_view address);

}  // namespace floodgate::policy
