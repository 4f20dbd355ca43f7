#include "policy/identity.hpp"

#include <algorithm>

#include "policy/digest.hpp"

namespace floodgate::policy {
namespace {

constexpr std::string_view k_missing_placeholder = "-";

std::string_view part_label(const IdentityPart& part) {
  switch (part.kind) {
    case IdentityPart::Kind::ClientAddress: return "client_address";
    case IdentityPart::Kind::ClientNetwork: return "client_network";
    case IdentityPart::Kind::ClientName: return "client_name";
    case IdentityPart::Kind::SaslUser: return "sasl_user";
    case IdentityPart::Kind::Sender: return "sender";
    case IdentityPart::Kind::SenderDomain: return "sender_domain";
    case IdentityPart::Kind::Header: return "header";
    case IdentityPart::Kind::Macro: return "macro";
  }
  return "part";
}

}  // namespace

std::string address_domain(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return {};
  return lower_ascii(address.substr(at + 1));
}

std::string identity_part_value(const IdentityPart& part, const MessageFacts& facts) {
  switch (part.kind) {
    case IdentityPart::Kind::ClientAddress:
      return facts.client_ip ? facts.client_ip->to_string() : std::string{};
    case IdentityPart::Kind::ClientNetwork: {
      if (!facts.client_ip) return {};
      const unsigned prefix = facts.client_ip->is_v4() ? part.ipv4_prefix : part.ipv6_prefix;
      return facts.client_ip->masked(prefix).to_string() + "/" + std::to_string(prefix);
    }
    case IdentityPart::Kind::ClientName:
      // Postfix says "unknown" when the client has no verified reverse name:
      // that is the absence of a name, not a name shared by every such client.
      if (facts.client_name.empty() || facts.client_name == "unknown") return {};
      return lower_ascii(facts.client_name);
    case IdentityPart::Kind::SaslUser:
      return lower_ascii(trim_whitespace(facts.sasl_user));
    case IdentityPart::Kind::Sender:
      return lower_ascii(facts.sender);
    case IdentityPart::Kind::SenderDomain:
      return address_domain(facts.sender);
    case IdentityPart::Kind::Header: {
      const auto found = facts.headers.find(part.name);
      return found == facts.headers.end() ? std::string{} : std::string(trim_whitespace(found->second));
    }
    case IdentityPart::Kind::Macro: {
      const auto found = facts.macros.find(part.name);
      return found == facts.macros.end() ? std::string{} : std::string(trim_whitespace(found->second));
    }
  }
  return {};
}

namespace {

// The digest, and with `description` the readable description too. The
// digest input is length-prefixed so that no choice of part values can make
// two different part lists hash the same input.
std::optional<std::string> digest_of(const IdentityDefinition& definition, const MessageFacts& facts,
                                     std::string* description) {
  std::string digest_input = definition.name;
  for (const auto& part : definition.parts) {
    std::string value = identity_part_value(part, facts);
    digest_input += '\x1f';
    if (value.empty()) {
      if (definition.when_missing == MissingPartPolicy::SkipRule) return std::nullopt;
      // Marked without a length prefix, so no real value (not even "-")
      // shares the counter of messages that lack the part.
      digest_input += "missing";
      value = k_missing_placeholder;
    } else {
      digest_input += std::to_string(value.size());
      digest_input += ':';
      digest_input += value;
    }

    if (description == nullptr) continue;
    if (!description->empty()) *description += ' ';
    *description += part_label(part);
    if (part.kind == IdentityPart::Kind::Header || part.kind == IdentityPart::Kind::Macro) {
      *description += ':';
      *description += part.name;
    }
    *description += '=';
    *description += value;
  }
  return to_hex(digest64(digest_input));
}

}  // namespace

std::optional<SourceIdentity> build_identity(const IdentityDefinition& definition,
                                             const MessageFacts& facts) {
  std::string description;
  auto digest = digest_of(definition, facts, &description);
  if (!digest) return std::nullopt;
  return SourceIdentity{std::move(*digest), std::move(description)};
}

std::optional<std::string> build_identity_digest(const IdentityDefinition& definition, const MessageFacts& facts) {
  return digest_of(definition, facts, nullptr);
}

}  // namespace floodgate::policy
