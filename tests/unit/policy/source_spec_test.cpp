// Tests for policy/source_spec.hpp: the one spelling of a frozen source, the
// spec a rule's identity names, the spec ops type, and which messages match.
// The key property: a freeze typed by hand and a freeze made by a rule for
// the same source are the same freeze (same canonical text, same digest).
#include "policy/source_spec.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace floodgate::policy {
namespace {

using namespace std::string_literals;
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

// Field by field: SourceSpec's defaulted operator== needs an operator== on
// IdentityPart, which config.hpp does not declare yet.
bool same_part(const SourcePart& a, const SourcePart& b) {
  return a.part.kind == b.part.kind && a.part.ipv4_prefix == b.part.ipv4_prefix &&
         a.part.ipv6_prefix == b.part.ipv6_prefix && a.part.name == b.part.name && a.value == b.value;
}

::testing::AssertionResult same_spec(const std::optional<SourceSpec>& got, const SourceSpec& want) {
  if (!got) return ::testing::AssertionFailure() << "got no spec, want \"" << want.canonical() << "\"";
  bool same = got->parts.size() == want.parts.size();
  for (std::size_t i = 0; same && i < want.parts.size(); ++i) same = same_part(got->parts[i], want.parts[i]);
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got \"" << got->canonical() << "\", want \""
                                       << want.canonical() << "\" (or they differ in prefixes/order)";
}

MessageFacts facts_from(std::string_view client) {
  MessageFacts facts;
  facts.client_address = std::string(client);
  facts.client_ip = IpAddress::parse(client);
  return facts;
}

// A web-form-like message with every part present.
MessageFacts full_facts() {
  MessageFacts facts = facts_from("10.1.2.3");
  facts.client_name = "Web1.Example.NET";
  facts.sasl_user = " Bob ";
  facts.sender = "Www-Data@Example.COM";
  facts.macros = {{"daemon_name", "submission"}};
  facts.headers = {{"x-php-originating-script", " 12:contact.php\r\n"}};
  return facts;
}

std::optional<SourceSpec> parse(std::vector<std::string> words) {
  std::string error;
  auto spec = parse_source_spec(words, error);
  EXPECT_TRUE(spec) << "parse failed: " << error;
  return spec;
}

std::string parse_error(std::vector<std::string> words) {
  std::string error;
  auto spec = parse_source_spec(words, error);
  EXPECT_FALSE(spec) << "parsed, want an error; canonical: " << (spec ? spec->canonical() : "");
  return error;
}

// ---- canonical() and its inverse -------------------------------------------------

TEST(SourceSpec, CanonicalOrdersPartsByKindThenName) {
  const auto spec = parse({"macro:daemon_name=submission", "header:X-B=2", "sender=a@b.example",
                           "header:X-A=1", "sasl=bob", "network=10.1.2.0/24", "client=10.1.2.3",
                           "client_name=web1.example.net", "sender_domain=b.example"});
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->canonical(),
            "client_address=10.1.2.3 client_network=10.1.2.0/24 client_name=web1.example.net "
            "sasl_user=bob sender=a@b.example sender_domain=b.example header:x-a=1 header:x-b=2 "
            "macro:daemon_name=submission");
}

TEST(SourceSpec, CanonicalDoesNotDependOnTheOrderPartsAreStoredIn) {
  SourceSpec spec{{SourcePart{part(Kind::Sender), "a@b.example"},
                   SourcePart{part(Kind::ClientAddress), "10.1.2.3"}}};
  EXPECT_EQ(spec.canonical(), "client_address=10.1.2.3 sender=a@b.example");
}

struct EscapeCase {
  const char* what;
  std::string value;
  std::string want;  // the value as canonical text spells it
};

TEST(SourceSpec, CanonicalPercentEncodesSeparatorsControlsAnd8Bit) {
  const EscapeCase cases[] = {
      {"plain", "12:contact.php", "12:contact.php"},
      {"space", "a b", "a%20b"},
      {"equals", "a=b", "a%3Db"},
      {"percent", "100%", "100%25"},
      {"already escaped text", "%20", "%2520"},
      {"newline and CR", "a\r\nb", "a%0D%0Ab"},
      {"tab", "a\tb", "a%09b"},
      {"NUL", "a\0b"s, "a%00b"},
      {"DEL", "a\x7f", "a%7F"},
      {"8-bit", "caf\xc3\xa9", "caf%C3%A9"},
      {"printable punctuation kept", "<>\"'`$;|&", "<>\"'`$;|&"},
  };
  for (const auto& c : cases) {
    const SourceSpec spec{{SourcePart{part(Kind::Header, "x-script"), c.value}}};
    const std::string got = spec.canonical();
    const std::string want = "header:x-script=" + c.want;
    EXPECT_EQ(got, want) << c.what << ": got \"" << got << "\", want \"" << want << "\"";
  }
}

TEST(SourceSpec, CanonicalEscapesPartNamesToo) {
  const SourceSpec spec{{SourcePart{part(Kind::Header, "x=a b"), "v"}}};
  EXPECT_EQ(spec.canonical(), "header:x%3Da%20b=v");
  EXPECT_TRUE(same_spec(parse_canonical_source(spec.canonical()), spec));
}

TEST(SourceSpec, HostileValuesRoundTripThroughCanonicalText) {
  const std::string hostile[] = {
      "a b",        "a=b",        "=",          "%",           "%41",     " leading",
      "trailing ",  "a\nb",       "\r\n",       "\0"s,         "a\0b"s,   "\xff\xfe",
      "caf\xc3\xa9", "x sender=y", "q%20=%3D ", "header:x=1", "\x1b[31m", std::string(300, 'z'),
  };
  for (const auto& value : hostile) {
    for (const Kind kind : {Kind::ClientName, Kind::SaslUser, Kind::Sender, Kind::SenderDomain}) {
      const SourceSpec spec{{SourcePart{part(kind), value},
                             SourcePart{part(Kind::Header, "x-script"), value},
                             SourcePart{part(Kind::Macro, "daemon_name"), value}}};
      const std::string text = spec.canonical();
      EXPECT_EQ(text.find_first_of("\r\n\0\t"s), std::string::npos) << text;
      const auto back = parse_canonical_source(text);
      ASSERT_TRUE(back) << "did not read back: " << text;
      EXPECT_TRUE(same_spec(back, spec)) << text;
      EXPECT_EQ(back->canonical(), text);
    }
  }
}

TEST(SourceSpec, ValuesCannotForgeAnotherPart) {
  // Were '=' and ' ' not escaped, these two specs would share a text.
  const SourceSpec one{{SourcePart{part(Kind::SaslUser), "bob sender=x@y"}}};
  const SourceSpec two{{SourcePart{part(Kind::SaslUser), "bob"}, SourcePart{part(Kind::Sender), "x@y"}}};
  EXPECT_NE(one.canonical(), two.canonical());
  EXPECT_NE(one.digest(), two.digest());
  EXPECT_TRUE(same_spec(parse_canonical_source(one.canonical()), one));
  EXPECT_TRUE(same_spec(parse_canonical_source(two.canonical()), two));
}

TEST(SourceSpec, DifferentSpecsHaveDifferentCanonicalTextsAndDigests) {
  const std::vector<SourceSpec> specs = {
      *parse({"client=10.1.2.3"}),
      *parse({"client=10.1.2.4"}),
      *parse({"network=10.1.2.0/24"}),
      *parse({"network=10.1.2.0/25"}),
      *parse({"network=2001:db8::/64"}),
      *parse({"client=2001:db8::1"}),
      *parse({"sasl=bob"}),
      *parse({"sender=bob"}),
      *parse({"client_name=bob"}),
      *parse({"header:X-A=bob"}),
      *parse({"header:X-B=bob"}),
      *parse({"macro:x_a=bob"}),
      *parse({"client=10.1.2.3", "sasl=bob"}),
      *parse({"client=10.1.2.3", "header:X-A=bob"}),
      SourceSpec{{SourcePart{part(Kind::Header, "x-a"), "bob "}}},
  };
  std::set<std::string> texts, digests;
  for (const auto& spec : specs) {
    EXPECT_TRUE(texts.insert(spec.canonical()).second) << "shared text: " << spec.canonical();
    EXPECT_TRUE(digests.insert(spec.digest()).second) << "shared digest: " << spec.canonical();
  }
}

TEST(SourceSpec, DigestIsSixteenHexDigitsOfTheCanonicalText) {
  const auto spec = parse({"client=10.1.2.3"});
  ASSERT_TRUE(spec);
  const std::string digest = spec->digest();
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << digest;
  EXPECT_EQ(digest, parse({"client_address=10.1.2.3"})->digest());
}

TEST(SourceSpec, ParseCanonicalRejectsWhatCanonicalNeverWrites) {
  const char* const bad[] = {
      "",                                              // no part
      " client_address=10.1.2.3",                      // leading space
      "client_address=10.1.2.3 ",                      // trailing space
      "client_address=10.1.2.3  sasl_user=bob",        // double space
      "client_address",                                // no '='
      "client_address=",                               // empty value
      "client=10.1.2.3",                               // command-line alias
      "client_address=10.001.2.3",                     // not normalised
      "client_address=::FFFF:10.1.2.3",                // not normalised
      "client_address=nonsense",                       // not an address
      "client_network=10.1.2.3/24",                    // not masked
      "client_network=10.1.2.0",                       // no length
      "client_network=10.1.2.0/33",                    // bad length
      "sasl_user=bob client_address=10.1.2.3",         // out of order
      "sasl_user=bob sasl_user=bob",                   // repeated
      "header:x-a=2 header:x-a=1",                     // out of order within a name
      "header:=v",                                     // no header name
      "header:x-a=a%2",                                // short escape
      "header:x-a=a%2g",                               // bad escape
      "header:x-a=a%2f",                               // lower-case hex
      "header:x-a=%41",                                // needless escape
      "header:x-a=a=b",                                // raw '='
      "HEADER:x-a=v",                                  // label case
      "frob=1",                                        // unknown label
  };
  for (const char* text : bad) {
    EXPECT_FALSE(parse_canonical_source(text)) << "accepted \"" << text << "\"";
  }
}

// ---- parse_source_spec --------------------------------------------------------------

struct WordCase {
  std::string word;
  std::string want;  // canonical text
};

TEST(SourceSpec, ParsesEachCommandLineForm) {
  const WordCase cases[] = {
      {"client=10.1.2.3", "client_address=10.1.2.3"},
      {"client_address=10.1.2.3", "client_address=10.1.2.3"},
      {"client=::ffff:10.1.2.3", "client_address=10.1.2.3"},
      {"client=2001:DB8:0::1", "client_address=2001:db8::1"},
      {"network=10.1.2.77/24", "client_network=10.1.2.0/24"},
      {"client_network=10.1.2.0/24", "client_network=10.1.2.0/24"},
      {"network=2001:db8:1:2:3::/48", "client_network=2001:db8:1::/48"},
      {"client_name=Web1.Example.NET", "client_name=web1.example.net"},
      {"sasl=Bob", "sasl_user=bob"},
      {"sasl_user= bob ", "sasl_user=bob"},
      {"sender=<Bob@Example.COM>", "sender=bob@example.com"},
      {"sender=bob@example.com", "sender=bob@example.com"},
      {"sender_domain=Example.COM", "sender_domain=example.com"},
      {"header:X-PHP-Originating-Script=12:contact.php", "header:x-php-originating-script=12:contact.php"},
      {"header:X-Mailer= Case Kept ", "header:x-mailer=Case%20Kept"},
      {"header:X-A=a=b", "header:x-a=a%3Db"},
      {"macro:daemon_name=submission", "macro:daemon_name=submission"},
      {"macro:{daemon_name}=submission", "macro:daemon_name=submission"},
      {"macro:i=4XyZ", "macro:i=4XyZ"},
  };
  for (const auto& c : cases) {
    const auto spec = parse({c.word});
    if (!spec) continue;
    EXPECT_EQ(spec->canonical(), c.want) << c.word;
    EXPECT_TRUE(same_spec(parse_canonical_source(spec->canonical()), *spec)) << c.word;
  }
}

TEST(SourceSpec, NetworkPartKeepsTheLengthInItsOwnFamily) {
  const auto v4 = parse({"network=10.1.0.0/16"});
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->parts.at(0).part.ipv4_prefix, 16u);
  const auto v6 = parse({"network=2001:db8::/56"});
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->parts.at(0).part.ipv6_prefix, 56u);
}

struct ErrorCase {
  std::vector<std::string> words;
  std::string want_in_error;
};

TEST(SourceSpec, RejectsBadCommandLineWordsAndSaysWhy) {
  const ErrorCase cases[] = {
      {{}, "at least one part"},
      {{"foo=1"}, "unknown source part 'foo' (use client=, network=, client_name=, sasl=, sender=, "
                  "sender_domain=, header:NAME=, macro:NAME=)"},
      {{"10.1.2.3"}, "expected NAME=VALUE"},
      {{"client="}, "'client' needs a value"},
      {{"sasl=  "}, "'sasl' needs a value"},
      {{"client=10.1.2.300"}, "'10.1.2.300' is not an IP address"},
      {{"client=10.1.2.0/24"}, "not an IP address"},
      {{"network=10.1.2.0"}, "not a network"},
      {{"network=10.1.2.0/33"}, "not a network"},
      {{"network=example.com/24"}, "not a network"},
      {{"client_name=unknown"}, "names no client"},
      {{"sender=<>"}, "null sender"},
      {{"header:=x"}, "header field name"},
      {{"header:X:Y=x"}, "header field name"},
      {{"macro:=x"}, "macro name"},
      {{"macro:a-b=x"}, "macro name"},
      {{"client=10.1.2.3", "client_address=10.1.2.4"}, "duplicate source part 'client_address'"},
      {{"sasl=bob", "sasl=alice"}, "duplicate source part 'sasl_user'"},
      {{"network=10.0.0.0/8", "network=10.1.0.0/16"}, "duplicate source part 'client_network'"},
      {{"header:X-A=1", "header:x-a=2"}, "duplicate source part 'header:x-a'"},
      {{"client=10.1.2.3", "bogus"}, "expected NAME=VALUE"},
  };
  for (const auto& c : cases) {
    const std::string error = parse_error(c.words);
    EXPECT_NE(error.find(c.want_in_error), std::string::npos)
        << "got \"" << error << "\", want it to contain \"" << c.want_in_error << "\"";
  }
}

TEST(SourceSpec, ErrorsEscapeWhatWasTyped) {
  const std::string error = parse_error({"fo\no=1"});
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_NE(error.find("'fo%0Ao'"), std::string::npos) << error;
}

TEST(SourceSpec, DifferentHeaderNamesAreNotDuplicates) {
  const auto spec = parse({"header:X-A=1", "header:X-B=1", "macro:a=1", "macro:b=1"});
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->parts.size(), 4u);
}

// ---- source_of ------------------------------------------------------------------------

TEST(SourceSpec, SourceOfTakesEachPartsValueFromTheMessage) {
  const IdentityDefinition identity{
      "everything",
      {part(Kind::Macro, "daemon_name"), part(Kind::Header, "x-php-originating-script"),
       part(Kind::SenderDomain), part(Kind::Sender), part(Kind::SaslUser), part(Kind::ClientName),
       network_part(16, 48), part(Kind::ClientAddress)},
      MissingPartPolicy::SkipRule};
  const auto spec = source_of(identity, full_facts());
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->canonical(),
            "client_address=10.1.2.3 client_network=10.1.0.0/16 client_name=web1.example.net "
            "sasl_user=bob sender=www-data@example.com sender_domain=example.com "
            "header:x-php-originating-script=12:contact.php macro:daemon_name=submission");
  EXPECT_TRUE(same_spec(parse_canonical_source(spec->canonical()), *spec));
  EXPECT_TRUE(matches(*spec, full_facts(), true));
  EXPECT_FALSE(spec->known_before_headers());
}

TEST(SourceSpec, SourceOfIsEmptyWhenAPartIsMissingEvenForPlaceholderIdentities) {
  const IdentityPart parts[] = {
      part(Kind::ClientAddress), network_part(24, 64),           part(Kind::ClientName),
      part(Kind::SaslUser),      part(Kind::Sender),             part(Kind::SenderDomain),
      part(Kind::Header, "x-a"), part(Kind::Macro, "auth_authen"),
  };
  MessageFacts empty;  // local submission: no client, no sender, nothing
  empty.client_name = "unknown";
  for (const auto& p : parts) {
    for (const auto policy : {MissingPartPolicy::SkipRule, MissingPartPolicy::Placeholder}) {
      const IdentityDefinition identity{"id", {part(Kind::Header, "x-php-originating-script"), p}, policy};
      MessageFacts facts = empty;
      facts.headers = full_facts().headers;
      EXPECT_FALSE(source_of(identity, facts)) << "part kind " << static_cast<int>(p.kind);
    }
  }
  EXPECT_FALSE(source_of(IdentityDefinition{"none", {}, MissingPartPolicy::SkipRule}, full_facts()));
}

TEST(SourceSpec, SourceOfNetworkEqualsTheTypedNetwork) {
  const IdentityDefinition identity{"net", {network_part(24, 48)}, MissingPartPolicy::SkipRule};
  const auto v4 = source_of(identity, facts_from("10.1.2.3"));
  ASSERT_TRUE(v4);
  EXPECT_TRUE(same_spec(v4, *parse({"network=10.1.2.0/24"})));
  const auto v6 = source_of(identity, facts_from("2001:db8:1:2::5"));
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->canonical(), "client_network=2001:db8:1::/48");
  EXPECT_TRUE(same_spec(v6, *parse({"network=2001:db8:1::/48"})));
}

TEST(SourceSpec, SourceOfAnIdentityListingAPartTwiceNamesItOnce) {
  const IdentityDefinition identity{
      "twice", {part(Kind::ClientAddress), part(Kind::ClientAddress)}, MissingPartPolicy::SkipRule};
  const auto spec = source_of(identity, facts_from("10.1.2.3"));
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->canonical(), "client_address=10.1.2.3");
}

// The point of the whole type: ops freezing the source a rule would freeze
// make one freeze, not two.
TEST(SourceSpec, TypedSpecEqualsTheRulesSpecForTheSameSource) {
  const IdentityDefinition identity{
      "web_script",
      {part(Kind::ClientAddress), part(Kind::Header, "x-php-originating-script")},
      MissingPartPolicy::Placeholder};
  const auto from_rule = source_of(identity, full_facts());
  const auto typed = parse({"client=10.1.2.3", "header:X-PHP-Originating-Script=12:contact.php"});
  ASSERT_TRUE(from_rule);
  ASSERT_TRUE(typed);
  EXPECT_TRUE(same_spec(typed, *from_rule));
  EXPECT_EQ(typed->canonical(), from_rule->canonical());
  EXPECT_EQ(typed->digest(), from_rule->digest());
  // Typed in another order, with the canonical spelling, the same.
  const auto reordered =
      parse({"header:x-php-originating-script=12:contact.php", "client_address=10.1.2.3"});
  ASSERT_TRUE(reordered);
  EXPECT_EQ(reordered->digest(), from_rule->digest());
}

// ---- matches -------------------------------------------------------------------------

struct MatchCase {
  const char* what;
  std::vector<std::string> words;
  bool want;
};

TEST(SourceSpec, MatchesEachPartKindAgainstTheMessage) {
  const MessageFacts facts = full_facts();
  const MatchCase cases[] = {
      {"client", {"client=10.1.2.3"}, true},
      {"other client", {"client=10.1.2.4"}, false},
      {"network contains", {"network=10.1.2.0/24"}, true},
      {"wider network contains", {"network=10.0.0.0/8"}, true},
      {"network does not contain", {"network=10.1.3.0/24"}, false},
      {"v6 network, v4 client", {"network=::/0"}, false},
      {"client_name any case", {"client_name=WEB1.example.net"}, true},
      {"other client_name", {"client_name=web2.example.net"}, false},
      {"sasl any case", {"sasl=BOB"}, true},
      {"other sasl", {"sasl=alice"}, false},
      {"sender any case", {"sender=<WWW-DATA@example.com>"}, true},
      {"other sender", {"sender=root@example.com"}, false},
      {"sender_domain", {"sender_domain=EXAMPLE.com"}, true},
      {"other sender_domain", {"sender_domain=example.org"}, false},
      {"header, name any case", {"header:x-PHP-originating-SCRIPT=12:contact.php"}, true},
      {"header value case kept", {"header:X-PHP-Originating-Script=12:CONTACT.php"}, false},
      {"other header value", {"header:X-PHP-Originating-Script=13:contact.php"}, false},
      {"absent header", {"header:X-Other=12:contact.php"}, false},
      {"macro", {"macro:{daemon_name}=submission"}, true},
      {"other macro value", {"macro:daemon_name=smtpd"}, false},
      {"absent macro", {"macro:auth_authen=bob"}, false},
      {"all parts", {"client=10.1.2.3", "sasl=bob", "sender_domain=example.com"}, true},
      {"one part differs", {"client=10.1.2.3", "sasl=bob", "sender_domain=example.org"}, false},
  };
  for (const auto& c : cases) {
    const auto spec = parse(c.words);
    if (!spec) continue;
    EXPECT_EQ(matches(*spec, facts, true), c.want) << c.what << ": " << spec->canonical();
  }
}

TEST(SourceSpec, MatchesIpv6ClientsAndNetworks) {
  const MessageFacts facts = facts_from("2001:db8:1:2::25");
  EXPECT_TRUE(matches(*parse({"client=2001:DB8:1:2:0:0:0:25"}), facts, false));
  EXPECT_TRUE(matches(*parse({"network=2001:db8:1::/48"}), facts, false));
  EXPECT_TRUE(matches(*parse({"network=2001:db8:1:2::/64"}), facts, false));
  EXPECT_FALSE(matches(*parse({"network=2001:db8:2::/48"}), facts, false));
  EXPECT_FALSE(matches(*parse({"network=0.0.0.0/0"}), facts, false));
  // The MTA may report an IPv4 client in mapped form.
  EXPECT_TRUE(matches(*parse({"network=10.1.2.0/24"}), facts_from("::ffff:10.1.2.9"), false));
}

TEST(SourceSpec, ClientPartsNeverMatchAMessageWithoutAClient) {
  MessageFacts local;
  local.local_submission = true;
  EXPECT_FALSE(matches(*parse({"client=10.1.2.3"}), local, true));
  EXPECT_FALSE(matches(*parse({"network=0.0.0.0/0"}), local, true));
}

TEST(SourceSpec, HeaderPartsMatchOnlyOnceHeadersAreKnown) {
  const auto spec = parse({"client=10.1.2.3", "header:X-PHP-Originating-Script=12:contact.php"});
  ASSERT_TRUE(spec);
  EXPECT_FALSE(spec->known_before_headers());
  EXPECT_FALSE(matches(*spec, full_facts(), false));
  EXPECT_TRUE(matches(*spec, full_facts(), true));

  const auto early = parse({"client=10.1.2.3", "sasl=bob", "macro:daemon_name=submission"});
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->known_before_headers());
  EXPECT_TRUE(matches(*early, full_facts(), false));
}

TEST(SourceSpec, AnEmptySpecMatchesNothing) {
  EXPECT_FALSE(matches(SourceSpec{}, full_facts(), true));
}

}  // namespace
}  // namespace floodgate::policy
