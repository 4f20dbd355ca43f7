// Scoring: from a message's facts and its counters to a Verdict.
//
// The policy core's whole job, in three pure steps the milter calls at
// end-of-message:
//   1. classify()      is the message outbound, exempt, or out of scope?
//   2. plan_counters() which counters must be bumped and read (one
//                      CounterStore round trip serves them all);
//   3. score()         given the counters' values, sum the points of every
//                      rule above its threshold and pick the action band.
//                      Rules in monitor mode (each rule's `mode`, or the
//                      policy's) are summed apart, in Verdict::monitor: what
//                      the policy would have done, reported, not acted on.
// No clock, no I/O, no libmilter: facts in, verdict out. Thread-safe (no
// shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "policy/config.hpp"
#include "policy/counter_request.hpp"
#include "policy/message_facts.hpp"

namespace floodgate::policy {

enum class Scope {
  Outbound,     // scored
  NotOutbound,  // accepted untouched
  Exempt,       // outbound but exempted by the config: accepted, not counted
};

std::string_view to_string(Scope scope);

Scope classify(const Config& config, const MessageFacts& facts);

// Where a rule's value comes from for one message.
struct RuleInput {
  enum class Source {
    NotApplicable,  // identity part missing, no fingerprint: the rule is skipped
    Immediate,      // known without counters (recipients_per_message)
    Counter,        // the highest of CounterPlan::requests[counter_index] and [more_counter_indices]
  };
  Source source = Source::NotApplicable;
  std::uint64_t immediate_value = 0;
  std::size_t counter_index = 0;
  // A content rule on a near-duplicate fingerprint reads one counter per
  // LSH band (ContentFingerprint::bands): the same content, reworded, shares
  // at least one band with its copies, so its count is the highest.
  std::vector<std::size_t> more_counter_indices;
  // A content rule read on an exact fingerprint (text too short for
  // shingles): its reason says so, since only identical text is counted.
  bool exact_content = false;
  // This message's source has its own threshold for the rule
  // (Config::overrides), used instead of the rule's.
  std::optional<std::uint64_t> threshold_override;
};

struct CounterPlan {
  // Deduplicated: rules reading the same counter share one request.
  std::vector<CounterRequest> requests;
  // One entry per Config::rules entry, same order.
  std::vector<RuleInput> rule_inputs;
};

CounterPlan plan_counters(const Config& config, const MessageFacts& facts);

// One rule read for one message: the value it compared with its threshold.
struct RuleEvaluation {
  bool applies = false;     // false: a part of its identity is missing, or no fingerprint
  std::uint64_t value = 0;  // when it applies
  std::uint64_t threshold = 0;  // the rule's, or this source's override
  bool overridden = false;      // threshold is an override
  bool fired = false;       // value > threshold
  bool monitored = false;   // monitor mode (the rule's or the whole policy's): reported, not acted on
  bool exact_content = false;  // a content rule read on an exact fingerprint
};

// `counter_values` holds one value per plan.requests entry (what the store
// returned). One entry per Config::rules entry, same order. Precondition:
// counter_values.size() == plan.requests.size().
std::vector<RuleEvaluation> evaluate_rules(const Config& config, const CounterPlan& plan,
                                           std::span<const std::uint64_t> counter_values);

// What every rule together, enforced and monitored, would have done.
struct MonitorVerdict {
  Action action = Action::Accept;
  int score = 0;
  // Every fired rule's reason; a monitored rule's says so: "x=5>4 (+10, monitor)".
  std::vector<std::string> reasons;
  std::vector<std::size_t> fired_rules;
};

struct Verdict {
  Action action = Action::Accept;
  int score = 0;
  // One per enforced rule that fired, e.g. "rcpts_per_msg=200>50 (+10)".
  std::vector<std::string> reasons;
  // Indices into Config::rules of the enforced rules that fired, in the same order.
  std::vector<std::size_t> fired_rules;
  // Set when the config monitors anything (monitors_anything()): the fields
  // above then leave out every monitored rule, and this has them all.
  std::optional<MonitorVerdict> monitor;
};

Verdict score(const Config& config, const CounterPlan& plan,
              std::span<const std::uint64_t> counter_values);

// The verdict of evaluated rules (evaluate_rules()'s result).
Verdict verdict_of(const Config& config, std::span<const RuleEvaluation> evaluations);

// A fired rule's reason: "rcpts_per_msg=200>50 (+10)", with ", exact" for an
// exact-fingerprint content rule, ", override" for a source's own threshold
// and ", monitor" for a monitored rule.
std::string reason_of(const Rule& rule, const RuleEvaluation& evaluation);

// The action band a score falls into.
Action action_for_score(const Config& config, int score);

// "rcpts_per_msg=200>50 (+10), ..." for headers and logs.
std::string join_reasons(const std::vector<std::string>& reasons);

}  // namespace floodgate::policy
