// plan_counters()'s exact output pinned: every key, member and amount for a
// message that every kind of rule plans counters for. Keys are Redis keys
// that live for days; a change to their spelling restarts the counters, so
// a rework of the planner for speed must reproduce them byte for byte. The
// values were produced by the planner before that rework.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/scoring.hpp"

namespace floodgate::policy {
namespace {

using namespace std::chrono_literals;
using Kind = IdentityPart::Kind;

IdentityPart part(Kind kind, std::string name = {}) {
  IdentityPart result;
  result.kind = kind;
  result.name = std::move(name);
  return result;
}

Rule rule(std::string name, Signal signal, std::optional<std::size_t> identity, std::chrono::seconds window) {
  Rule result;
  result.name = std::move(name);
  result.signal = signal;
  result.identity = identity;
  result.window = window;
  return result;
}

Config pinned_config() {
  Config config;
  config.redis.key_prefix = "fgpin";
  config.outbound.client_networks = {*IpNetwork::parse("192.0.2.0/24")};
  config.identities = {
      {"client_address", {part(Kind::ClientAddress)}, MissingPartPolicy::SkipRule},
      {"sasl_user", {part(Kind::SaslUser)}, MissingPartPolicy::SkipRule},
      {"script", {part(Kind::ClientAddress), part(Kind::Header, "x-php-originating-script")},
       MissingPartPolicy::Placeholder},
      {"net", {part(Kind::ClientNetwork), part(Kind::SenderDomain)}, MissingPartPolicy::Placeholder},
  };
  config.rules = {
      rule("rcpts_per_msg", Signal::RecipientsPerMessage, std::nullopt, 0s),
      rule("msgs", Signal::Messages, 0, 600s),
      rule("msgs_again", Signal::Messages, 0, 600s),  // shares the counter above
      rule("rcpts", Signal::Recipients, 1, 3600s),
      rule("drcpts", Signal::DistinctRecipients, 2, 86400s),
      rule("rejected", Signal::RejectedRecipients, 3, 600s),
      rule("copies", Signal::ContentCopies, std::nullopt, 3600s),
      rule("crcpts", Signal::ContentRecipients, std::nullopt, 3600s),
      rule("srcs", Signal::ContentSources, 0, 3600s),
      rule("cdoms", Signal::ContentRecipientDomains, std::nullopt, 3600s),
      rule("copies_per_script", Signal::ContentCopies, 2, 600s),
      rule("cdoms_per_net", Signal::ContentRecipientDomains, 3, 600s),
  };
  return config;
}

MessageFacts pinned_facts() {
  MessageFacts facts;
  facts.client_address = "192.0.2.10";
  facts.client_ip = IpAddress::parse(facts.client_address);
  facts.client_name = "web1.example.com";
  facts.sasl_user = " Webshop@Example.COM ";
  facts.sender = "Alice@Example.com";
  facts.recipients = {"bob@example.org", "Carol@Example.NET", "bob@example.org", "dave@sub.example.org"};
  facts.rejected_recipients = {"gone@example.org"};
  facts.headers["x-php-originating-script"] = " 33:contact.php ";
  return facts;
}

// One line per request: "key kind window amount member,member".
std::vector<std::string> describe(const CounterPlan& plan) {
  std::vector<std::string> lines;
  for (const auto& request : plan.requests) {
    std::string line = request.key + (request.kind == CounterKind::Sum ? " sum " : " distinct ") +
                       std::to_string(request.window.count()) + " " + std::to_string(request.amount) + " ";
    for (std::size_t i = 0; i < request.members.size(); ++i) line += (i > 0 ? "," : "") + request.members[i];
    lines.push_back(line);
  }
  for (const auto& input : plan.rule_inputs) {
    std::string line = "input " + std::to_string(static_cast<int>(input.source)) + " " +
                       std::to_string(input.immediate_value) + " " + std::to_string(input.counter_index) + " [";
    for (const std::size_t index : input.more_counter_indices) line += std::to_string(index) + ",";
    line += input.exact_content ? "] exact" : "]";
    lines.push_back(line);
  }
  return lines;
}

void expect_lines(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  ASSERT_EQ(got.size(), want.size()) << "got " << got.size() << " lines, want " << want.size();
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "line " << i;
}

TEST(PlanCountersPinned, NearDuplicateFingerprintKeepsEveryKeyAndMember) {
  MessageFacts facts = pinned_facts();
  facts.fingerprint = {0x0123456789abcdefULL, true, "minhash", {0x1111, 0xfedcba9876543210ULL}, {}};
  expect_lines(describe(plan_counters(pinned_config(), facts)),
               {
                   "fgpin:{s08aa62d96a283a66}:msgs:client_address:600 sum 600 1 ",
                   "fgpin:{s8ae69594077d9741}:rcpts:sasl_user:3600 sum 3600 4 ",
                   "fgpin:{s2d1b969bc0398d7c}:drcpts:script:86400 distinct 86400 0 4e9417347ec95887,71ad17ff8e8c867a,f6942bc075080d2d",
                   "fgpin:{s7b3f81d20153ec34}:rejrcpts:net:600 sum 600 1 ",
                   "fgpin:{cb0000000000001111}:copies:b0000000000001111:3600 sum 3600 1 ",
                   "fgpin:{cbfedcba9876543210}:copies:bfedcba9876543210:3600 sum 3600 1 ",
                   "fgpin:{cb0000000000001111}:crcpts:b0000000000001111:3600 sum 3600 4 ",
                   "fgpin:{cbfedcba9876543210}:crcpts:bfedcba9876543210:3600 sum 3600 4 ",
                   "fgpin:{cb0000000000001111}:srcs:b0000000000001111:client_address:3600 distinct 3600 0 08aa62d96a283a66",
                   "fgpin:{cbfedcba9876543210}:srcs:bfedcba9876543210:client_address:3600 distinct 3600 0 08aa62d96a283a66",
                   "fgpin:{cb0000000000001111}:cdoms:b0000000000001111:3600 distinct 3600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "fgpin:{cbfedcba9876543210}:cdoms:bfedcba9876543210:3600 distinct 3600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "fgpin:{s2d1b969bc0398d7c}:copies:b0000000000001111:script:600 sum 600 1 ",
                   "fgpin:{s2d1b969bc0398d7c}:copies:bfedcba9876543210:script:600 sum 600 1 ",
                   "fgpin:{s7b3f81d20153ec34}:cdoms:b0000000000001111:net:600 distinct 600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "fgpin:{s7b3f81d20153ec34}:cdoms:bfedcba9876543210:net:600 distinct 600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "input 1 4 0 []",
                   "input 2 0 0 []",
                   "input 2 0 0 []",
                   "input 2 0 1 []",
                   "input 2 0 2 []",
                   "input 2 0 3 []",
                   "input 2 0 4 [5,]",
                   "input 2 0 6 [7,]",
                   "input 2 0 8 [9,]",
                   "input 2 0 10 [11,]",
                   "input 2 0 12 [13,]",
                   "input 2 0 14 [15,]"
               });
}

TEST(PlanCountersPinned, ExactFingerprintKeepsEveryKeyAndMember) {
  MessageFacts facts = pinned_facts();
  facts.fingerprint = {0x0123456789abcdefULL, true, "exact", {}, {}};
  expect_lines(describe(plan_counters(pinned_config(), facts)),
               {
                   "fgpin:{s08aa62d96a283a66}:msgs:client_address:600 sum 600 1 ",
                   "fgpin:{s8ae69594077d9741}:rcpts:sasl_user:3600 sum 3600 4 ",
                   "fgpin:{s2d1b969bc0398d7c}:drcpts:script:86400 distinct 86400 0 4e9417347ec95887,71ad17ff8e8c867a,f6942bc075080d2d",
                   "fgpin:{s7b3f81d20153ec34}:rejrcpts:net:600 sum 600 1 ",
                   "fgpin:{c0123456789abcdef}:copies:0123456789abcdef:3600 sum 3600 1 ",
                   "fgpin:{c0123456789abcdef}:crcpts:0123456789abcdef:3600 sum 3600 4 ",
                   "fgpin:{c0123456789abcdef}:srcs:0123456789abcdef:client_address:3600 distinct 3600 0 08aa62d96a283a66",
                   "fgpin:{c0123456789abcdef}:cdoms:0123456789abcdef:3600 distinct 3600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "fgpin:{s2d1b969bc0398d7c}:copies:0123456789abcdef:script:600 sum 600 1 ",
                   "fgpin:{s7b3f81d20153ec34}:cdoms:0123456789abcdef:net:600 distinct 600 0 13917de939dd3421,4037554f7ebcbf45,ae6837490a555c74",
                   "input 1 4 0 []",
                   "input 2 0 0 []",
                   "input 2 0 0 []",
                   "input 2 0 1 []",
                   "input 2 0 2 []",
                   "input 2 0 3 []",
                   "input 2 0 4 [] exact",
                   "input 2 0 5 [] exact",
                   "input 2 0 6 [] exact",
                   "input 2 0 7 [] exact",
                   "input 2 0 8 [] exact",
                   "input 2 0 9 [] exact"
               });
}

}  // namespace
}  // namespace floodgate::policy
