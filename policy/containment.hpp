// Containment decisions, pure: which sources a verdict freezes, and what a
// message from a frozen source gets.
//
// sources_to_freeze(): for an outbound message whose verdict fired a
// containment rule (or reached containment.min_score), the sources named by
// the fired rules' identities. The milter stores them (ratelimit/
// freeze_store.hpp) and every instance then enforces them. Rules in monitor
// mode never freeze: sources_monitor_would_freeze() names what they would.
// contain(): turns a verdict into the containment action for a message that
// comes from a frozen source (or froze it), keeping the score and adding the
// reason "frozen(<rule>)"; a harder action the message earned by itself
// (tempfail, reject) stays.
#pragma once

#include <string>
#include <vector>

#include "policy/config.hpp"
#include "policy/message_facts.hpp"
#include "policy/scoring.hpp"
#include "policy/source_spec.hpp"

namespace floodgate::policy {

struct FreezeRequest {
  std::size_t rule = 0;  // index into Config::rules
  SourceSpec source;
  std::string reason;    // the rule's reason, "same_content_rcpts_per_client=101>100 (+20)"
};

std::vector<FreezeRequest> sources_to_freeze(const Config& config, const Verdict& verdict,
                                             const MessageFacts& facts);

// The sources the monitored verdict (Verdict::monitor) would have frozen
// besides those sources_to_freeze() freezes: reported, never frozen.
std::vector<FreezeRequest> sources_monitor_would_freeze(const Config& config, const Verdict& verdict,
                                                        const MessageFacts& facts);

// The verdict a message from a source frozen (by `rule_name`, with the
// freeze's own `action`: a manual freeze may choose another than the
// config's) gets.
Verdict contain(Verdict verdict, Action freeze_action, const std::string& rule_name);

}  // namespace floodgate::policy
