// Tests for policy/identity.hpp: what each identity part takes from a
// message, how it is normalised, and how the parts become a digest that no
// two different sources share and a description for logs.
#include "policy/identity.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/ascii.hpp"

namespace floodgate::policy {
namespace {

using Kind = IdentityPart::Kind;

IdentityPart part(Kind kind, std::string name = {}) {
  IdentityPart result;
  result.kind = kind;
  result.name = std::move(name);
  return result;
}

IdentityPart network_part(unsigned ipv4_prefix, unsigned ipv6_prefix) {
  IdentityPart result;
  result.kind = Kind::ClientNetwork;
  result.ipv4_prefix = ipv4_prefix;
  result.ipv6_prefix = ipv6_prefix;
  return result;
}

IdentityDefinition definition(std::string name, std::vector<IdentityPart> parts,
                              MissingPartPolicy when_missing = MissingPartPolicy::SkipRule) {
  return IdentityDefinition{std::move(name), std::move(parts), when_missing};
}

MessageFacts facts_from(std::string_view client) {
  MessageFacts facts;
  facts.client_address = std::string(client);
  facts.client_ip = IpAddress::parse(client);
  return facts;
}

// A message with every part present.
MessageFacts full_facts() {
  MessageFacts facts = facts_from("192.0.2.77");
  facts.client_name = "Mail.Example.NET";
  facts.sasl_user = "Alice";
  facts.sender = "Alice.Smith@Example.COM";
  facts.recipients = {"bob@example.org"};
  facts.macros = {{"daemon_name", " submission "}};
  facts.headers = {{"x-php-originating-script", "  1000:mailer.php\r\n"}};
  return facts;
}

// ---- identity_part_value -----------------------------------------------------------

struct PartCase {
  const char* what;
  IdentityPart part;
  std::string want;
};

TEST(Identity, EachPartTakesItsNormalisedValueFromTheMessage) {
  const MessageFacts facts = full_facts();
  const PartCase cases[] = {
      {"client_address", part(Kind::ClientAddress), "192.0.2.77"},
      {"client_network /24", network_part(24, 64), "192.0.2.0/24"},
      {"client_network /16", network_part(16, 64), "192.0.0.0/16"},
      {"client_name lower-cased", part(Kind::ClientName), "mail.example.net"},
      {"sasl_user lower-cased", part(Kind::SaslUser), "alice"},
      {"sender lower-cased", part(Kind::Sender), "alice.smith@example.com"},
      {"sender_domain lower-cased", part(Kind::SenderDomain), "example.com"},
      {"header trimmed, case kept", part(Kind::Header, "x-php-originating-script"), "1000:mailer.php"},
      {"macro trimmed", part(Kind::Macro, "daemon_name"), "submission"},
  };
  for (const auto& c : cases) {
    const std::string got = identity_part_value(c.part, facts);
    EXPECT_EQ(got, c.want) << c.what << ": got \"" << got << "\", want \"" << c.want << "\"";
  }
}

TEST(Identity, ClientNetworkUsesTheIpv6PrefixForIpv6Clients) {
  const MessageFacts facts = facts_from("2001:db8:1:2:3:4:5:6");
  const std::string got = identity_part_value(network_part(24, 48), facts);
  EXPECT_EQ(got, "2001:db8:1::/48") << "got " << got << ", want 2001:db8:1::/48";
}

TEST(Identity, V4MappedClientHasTheSameAddressAndNetworkAsPlainV4) {
  const MessageFacts mapped = facts_from("::ffff:192.0.2.77");
  const MessageFacts plain = facts_from("192.0.2.77");
  for (const auto& p : {part(Kind::ClientAddress), network_part(24, 64)}) {
    const std::string got = identity_part_value(p, mapped);
    const std::string want = identity_part_value(p, plain);
    EXPECT_EQ(got, want) << "got " << got << " for the mapped client, want " << want;
  }
}

TEST(Identity, SenderDomainTakesTextAfterTheLastAt) {
  MessageFacts facts;
  facts.sender = "\"odd@local\"@Mail.Example.COM";
  const std::string got = identity_part_value(part(Kind::SenderDomain), facts);
  EXPECT_EQ(got, "mail.example.com") << "got " << got << ", want mail.example.com";
}

struct MissingCase {
  const char* what;
  IdentityPart part;
  MessageFacts facts;
};

TEST(Identity, PartIsEmptyWhenTheMessageDoesNotHaveIt) {
  MessageFacts unknown_name = full_facts();
  unknown_name.client_name = "unknown";  // Postfix: no verified reverse name
  MessageFacts no_name = full_facts();
  no_name.client_name.clear();
  MessageFacts no_ip = full_facts();
  no_ip.client_ip.reset();
  MessageFacts no_sasl = full_facts();
  no_sasl.sasl_user.clear();
  MessageFacts blank_sasl = full_facts();
  blank_sasl.sasl_user = " \t";
  MessageFacts null_sender = full_facts();
  null_sender.sender.clear();
  MessageFacts sender_without_domain = full_facts();
  sender_without_domain.sender = "postmaster";
  MessageFacts sender_ending_in_at = full_facts();
  sender_ending_in_at.sender = "user@";
  MessageFacts blank_header = full_facts();
  blank_header.headers["x-php-originating-script"] = " \t\r\n";

  const MissingCase cases[] = {
      {"client_name \"unknown\"", part(Kind::ClientName), unknown_name},
      {"client_name empty", part(Kind::ClientName), no_name},
      {"client_address without an IP", part(Kind::ClientAddress), no_ip},
      {"client_network without an IP", network_part(24, 64), no_ip},
      {"sasl_user unauthenticated", part(Kind::SaslUser), no_sasl},
      {"sasl_user only blanks", part(Kind::SaslUser), blank_sasl},
      {"sender null", part(Kind::Sender), null_sender},
      {"sender_domain of null sender", part(Kind::SenderDomain), null_sender},
      {"sender_domain without @", part(Kind::SenderDomain), sender_without_domain},
      {"sender_domain after trailing @", part(Kind::SenderDomain), sender_ending_in_at},
      {"header not collected", part(Kind::Header, "x-mailer"), full_facts()},
      {"header only blanks", part(Kind::Header, "x-php-originating-script"), blank_header},
      {"macro not sent", part(Kind::Macro, "auth_authen"), full_facts()},
  };
  for (const auto& c : cases) {
    const std::string got = identity_part_value(c.part, c.facts);
    EXPECT_EQ(got, "") << c.what << ": got \"" << got << "\", want empty";
  }
}

TEST(Identity, HeaderPartReadsTheCollectedFirstOccurrence) {
  // The collector keeps the first occurrence in facts.headers; the part must
  // take exactly that value, keyed by the lower-case name.
  MessageFacts facts = full_facts();
  facts.headers = {{"x-php-originating-script", "first.php"}, {"x-other", "second.php"}};
  const std::string got = identity_part_value(part(Kind::Header, "x-php-originating-script"), facts);
  EXPECT_EQ(got, "first.php") << "got " << got << ", want first.php";
}

TEST(Identity, HeaderAndMacroValuesKeepTheirCase) {
  MessageFacts facts = full_facts();
  facts.headers = {{"x-script", "Mailer.PHP"}};
  facts.macros = {{"daemon_name", "Submission"}};
  EXPECT_EQ(identity_part_value(part(Kind::Header, "x-script"), facts), "Mailer.PHP");
  EXPECT_EQ(identity_part_value(part(Kind::Macro, "daemon_name"), facts), "Submission");
}

// ---- build_identity ------------------------------------------------------------------

TEST(Identity, DigestIsSixteenLowerCaseHexDigits) {
  const auto identity = build_identity(definition("by_addr", {part(Kind::ClientAddress)}), full_facts());
  ASSERT_TRUE(identity.has_value()) << "got nullopt, want an identity";
  EXPECT_EQ(identity->digest.size(), 16u) << "got digest \"" << identity->digest << "\", want 16 digits";
  EXPECT_EQ(identity->digest.find_first_not_of("0123456789abcdef"), std::string::npos)
      << "got digest \"" << identity->digest << "\", want lower-case hex only";
}

TEST(Identity, SameSourceGivesSameDigestAcrossCaseVariations) {
  MessageFacts upper = full_facts();
  upper.sender = "ALICE.SMITH@EXAMPLE.COM";
  MessageFacts lower = full_facts();
  lower.sender = "alice.smith@example.com";
  const auto def = definition("by_sender", {part(Kind::Sender)});
  const auto a = build_identity(def, upper);
  const auto b = build_identity(def, lower);
  ASSERT_TRUE(a && b) << "got nullopt, want identities";
  EXPECT_EQ(a->digest, b->digest) << "got " << a->digest << " vs " << b->digest << ", want equal";
}

TEST(Identity, DifferentValuesGiveDifferentDigests) {
  MessageFacts other = full_facts();
  other.sender = "mallory@example.com";
  const auto def = definition("by_sender", {part(Kind::Sender)});
  const auto a = build_identity(def, full_facts());
  const auto b = build_identity(def, other);
  ASSERT_TRUE(a && b) << "got nullopt, want identities";
  EXPECT_NE(a->digest, b->digest) << "got the same digest " << a->digest << " for two senders";
}

TEST(Identity, MissingPartWithSkipRuleGivesNoIdentity) {
  MessageFacts facts = full_facts();
  facts.sasl_user.clear();
  const auto identity = build_identity(
      definition("addr_user", {part(Kind::ClientAddress), part(Kind::SaslUser)}, MissingPartPolicy::SkipRule),
      facts);
  EXPECT_FALSE(identity.has_value()) << "got identity \"" << identity->description << "\", want nullopt";
}

TEST(Identity, PresentPartsWithSkipRuleGiveAnIdentity) {
  const auto identity = build_identity(
      definition("addr_user", {part(Kind::ClientAddress), part(Kind::SaslUser)}, MissingPartPolicy::SkipRule),
      full_facts());
  ASSERT_TRUE(identity.has_value()) << "got nullopt, want an identity";
  EXPECT_EQ(identity->description, "client_address=192.0.2.77 sasl_user=alice");
}

TEST(Identity, MissingPartWithPlaceholderCountsAsDash) {
  MessageFacts facts = full_facts();
  facts.sasl_user.clear();
  const auto def = definition("addr_user", {part(Kind::ClientAddress), part(Kind::SaslUser)},
                              MissingPartPolicy::Placeholder);
  const auto missing = build_identity(def, facts);
  const auto present = build_identity(def, full_facts());
  ASSERT_TRUE(missing.has_value()) << "got nullopt, want an identity with a placeholder";
  ASSERT_TRUE(present.has_value()) << "got nullopt, want an identity";
  EXPECT_EQ(missing->description, "client_address=192.0.2.77 sasl_user=-")
      << "got \"" << missing->description << "\"";
  EXPECT_NE(missing->digest, present->digest)
      << "got the same digest " << missing->digest << " for a missing and a real sasl_user";
}

TEST(Identity, PlaceholderIdentitiesOfTwoMessagesMissingThePartAreEqual) {
  MessageFacts first = full_facts();
  first.client_name = "unknown";
  MessageFacts second = full_facts();
  second.client_name.clear();
  const auto def = definition("by_name", {part(Kind::ClientName)}, MissingPartPolicy::Placeholder);
  const auto a = build_identity(def, first);
  const auto b = build_identity(def, second);
  ASSERT_TRUE(a && b) << "got nullopt, want identities";
  EXPECT_EQ(a->digest, b->digest) << "got " << a->digest << " vs " << b->digest
                                  << ": \"unknown\" and no name must both be the placeholder";
}

TEST(Identity, DefinitionsWithSamePartsButDifferentNamesHaveDifferentDigests) {
  const auto a = build_identity(definition("by_addr", {part(Kind::ClientAddress)}), full_facts());
  const auto b = build_identity(definition("by_addr_too", {part(Kind::ClientAddress)}), full_facts());
  ASSERT_TRUE(a && b) << "got nullopt, want identities";
  EXPECT_NE(a->digest, b->digest) << "got the same digest " << a->digest << " for two identity names";
}

TEST(Identity, PartBoundariesAreNotAmbiguous) {
  // ("ab", "c") and ("a", "bc") concatenate to the same text; their digests
  // must still differ.
  const auto def = definition("two_headers", {part(Kind::Header, "x-a"), part(Kind::Header, "x-b")});
  MessageFacts ab_c = full_facts();
  ab_c.headers = {{"x-a", "ab"}, {"x-b", "c"}};
  MessageFacts a_bc = full_facts();
  a_bc.headers = {{"x-a", "a"}, {"x-b", "bc"}};
  const auto first = build_identity(def, ab_c);
  const auto second = build_identity(def, a_bc);
  ASSERT_TRUE(first && second) << "got nullopt, want identities";
  EXPECT_NE(first->digest, second->digest) << "got the same digest " << first->digest
                                           << " for (\"ab\",\"c\") and (\"a\",\"bc\")";
}

TEST(Identity, PartValuesContainingTheSeparatorCannotForgeABoundary) {
  // Header values are attacker text and may hold control characters: a
  // value carrying a part separator (\x1f) must not let ("a<sep>b", "c")
  // collide with ("a", "b<sep>c").
  const auto def = definition("two_headers", {part(Kind::Header, "x-a"), part(Kind::Header, "x-b")});
  MessageFacts forged = full_facts();
  forged.headers = {{"x-a", "a\x1f:b"}, {"x-b", "c"}};
  MessageFacts genuine = full_facts();
  genuine.headers = {{"x-a", "a"}, {"x-b", "b\x1f:c"}};
  const auto first = build_identity(def, forged);
  const auto second = build_identity(def, genuine);
  ASSERT_TRUE(first && second) << "got nullopt, want identities";
  EXPECT_NE(first->digest, second->digest) << "got the same digest " << first->digest;
}

TEST(Identity, PartOrderMatters) {
  const auto forward = definition("pair", {part(Kind::Header, "x-a"), part(Kind::Header, "x-b")});
  const auto backward = definition("pair", {part(Kind::Header, "x-b"), part(Kind::Header, "x-a")});
  MessageFacts facts = full_facts();
  facts.headers = {{"x-a", "one"}, {"x-b", "two"}};
  MessageFacts swapped = full_facts();
  swapped.headers = {{"x-a", "two"}, {"x-b", "one"}};
  const auto a = build_identity(forward, facts);
  const auto b = build_identity(forward, swapped);
  ASSERT_TRUE(a && b) << "got nullopt, want identities";
  EXPECT_NE(a->digest, b->digest) << "got the same digest for swapped values";
  // Same values read in the other order give the same list, so the same digest.
  const auto c = build_identity(backward, swapped);
  ASSERT_TRUE(c) << "got nullopt, want an identity";
  EXPECT_EQ(a->digest, c->digest) << "got " << a->digest << " vs " << c->digest
                                  << " for the same ordered values";
}

TEST(Identity, DescriptionLabelsEveryPartAndNamesHeadersAndMacros) {
  const auto def = definition("everything", {part(Kind::ClientAddress), network_part(24, 64),
                                             part(Kind::ClientName), part(Kind::SaslUser),
                                             part(Kind::Sender), part(Kind::SenderDomain),
                                             part(Kind::Header, "x-php-originating-script"),
                                             part(Kind::Macro, "daemon_name")});
  const auto identity = build_identity(def, full_facts());
  ASSERT_TRUE(identity.has_value()) << "got nullopt, want an identity";
  const std::string want =
      "client_address=192.0.2.77 client_network=192.0.2.0/24 client_name=mail.example.net "
      "sasl_user=alice sender=alice.smith@example.com sender_domain=example.com "
      "header:x-php-originating-script=1000:mailer.php macro:daemon_name=submission";
  EXPECT_EQ(identity->description, want) << "got  \"" << identity->description << "\"\nwant \"" << want
                                         << "\"";
}

// ---- helpers ----------------------------------------------------------------------------

TEST(Identity, LowerAsciiLowersOnlyAsciiLetters) {
  const std::string got = lower_ascii("AbC-Z@[\xC3\x89]");
  EXPECT_EQ(got, "abc-z@[\xC3\x89]") << "got " << got;
}

TEST(Identity, AddressDomain) {
  const struct {
    std::string_view address;
    std::string_view want;
  } cases[] = {
      {"user@Example.COM", "example.com"},
      {"a@b@C.example", "c.example"},
      {"@example.com", "example.com"},
      {"user@", ""},
      {"user", ""},
      {"", ""},
  };
  for (const auto& c : cases) {
    const std::string got = address_domain(c.address);
    EXPECT_EQ(got, c.want) << "address_domain(\"" << c.address << "\"): got \"" << got << "\", want \""
                           << c.want << "\"";
  }
}

}  // namespace
}  // namespace floodgate::policy
