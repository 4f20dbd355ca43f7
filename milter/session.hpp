// ConnectionInfo and MessageSession: what the milter learns about one SMTP
// connection and one message, and the decision made at end-of-message.
//
// Two lifetimes, as the milter protocol has them: a ConnectionInfo lives from
// CONNECT to CLOSE (client, HELO, connection macros); a MessageSession from
// MAIL FROM to end-of-message or abort (envelope, headers, body digest).
// Neither knows libmilter: milter/milter_callbacks.cpp feeds them and applies
// the Decision, which keeps this layer testable with plain calls.
//
// A MessageSession keeps the Config snapshot it was created with, so a
// reload never changes the rules halfway through a message. It is used by one
// libmilter thread at a time and is not shared.
//
// SECURITY: all input is attacker-controlled. Addresses, header and macro
// values are cut to fixed sizes, recipients are capped in number (the count
// stays exact), and the body goes to the fingerprinter, which is bounded.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "milter/freeze_cache.hpp"
#include "policy/config.hpp"
#include "policy/content_fingerprint.hpp"
#include "policy/message_facts.hpp"
#include "policy/scoring.hpp"
#include "quarantine/message_buffer.hpp"
#include "quarantine/spool_store.hpp"
#include "ratelimit/counter_store.hpp"

namespace floodgate::milter {

// Bounds on what is kept from the client; beyond them text is cut.
constexpr std::size_t k_max_address_bytes = 512;
constexpr std::size_t k_max_header_value_bytes = 1024;
constexpr std::size_t k_max_macro_value_bytes = 1024;
// Recipient addresses kept per message (for distinct counts); the recipient
// count itself is never capped.
constexpr std::size_t k_max_recipients_kept = 10000;

struct ConnectionInfo {
  std::string client_address;  // "IPv6:" stripped
  std::string client_name;
  std::string helo;
  bool local_submission = false;
  // Connection-level macros (CONNECT, HELO stages), names without braces.
  std::map<std::string, std::string> macros;
};

// An SMTP reply the MTA should give ("451", "4.7.1", "text").
struct SmtpReply {
  std::string code;
  std::string status;
  std::string text;
};

struct Decision {
  policy::Scope scope = policy::Scope::NotOutbound;
  policy::Verdict verdict;
  // The action actually applied (the verdict's, or the one the counter
  // failure mode dictated).
  policy::Action action = policy::Action::Accept;
  std::vector<std::pair<std::string, std::string>> headers_to_add;
  std::optional<SmtpReply> reply;   // Tempfail and Reject only
  std::string quarantine_reason;    // Quarantine only
  // Quarantine in spool mode: the entry is stored durably and the MTA is to
  // discard the message. In hold mode the MTA's hold queue keeps it instead.
  bool discard = false;
  std::string quarantine_id;        // the spool entry written, if any
  std::string quarantine_failure;   // why the quarantine became a tempfail
  // Containment: the source this message was frozen by (canonical text), and
  // the sources this message froze.
  std::string frozen_source;
  std::string frozen_incident;  // that freeze's incident id ("" if unknown)
  std::vector<std::string> freezes_made;
  // The freezes this message made that were new (each opens an incident).
  std::vector<ratelimit::Freeze> freezes_created;
  // Monitor mode: the sources the monitored verdict would have frozen
  // (canonical text); reported, never frozen.
  std::vector<std::string> monitor_would_freeze;
  std::string counter_state;        // "redis", "local-fallback", "unavailable", "none"
  std::string counter_failure;      // detail when the store failed, else empty
};

class MessageSession {
 public:
  // `spill_directory`: where the message copy spills beyond the configured
  // memory size; empty to keep no copy (hold mode, or no usable spool).
  MessageSession(std::shared_ptr<const policy::Config> config, const ConnectionInfo& connection,
                 const std::string& spill_directory = {});

  void set_sender(std::string_view sender);
  // `rejected_by_mta`: Postfix reports recipients it refused (unknown users)
  // to a milter that asks for them; they are counted, not delivered.
  void add_recipient(std::string_view recipient, bool rejected_by_mta);
  void set_macro(std::string_view name, std::string_view value);
  // `value` as the MTA sends it; with SMFIP_HDR_LEADSPC it keeps the
  // space after the colon, so the stored copy is the message as received.
  void add_header(std::string_view name, std::string_view value);
  void add_body_chunk(std::string_view chunk);

  // Classifies and, for outbound mail, counts and scores the message. Called
  // once, at end-of-message.
  Decision decide(ratelimit::CounterStore& counters, ratelimit::TimePoint now);

  // decide(), keeping what it computed on the way, for floodgatectl
  // explain: the counters planned and their values (empty for mail that is
  // not scored, or when the store failed) and each rule's reading.
  struct Explanation {
    Decision decision;
    policy::CounterPlan plan;
    std::vector<std::uint64_t> values;
    std::vector<policy::RuleEvaluation> evaluations;
  };
  Explanation explain(ratelimit::CounterStore& counters, ratelimit::TimePoint now);

  // Containment, after decide(): a message from a frozen source gets the
  // containment action; a verdict that fires a containment rule freezes the
  // source it names (in `freezes`, so every instance enforces it) and the
  // message gets the containment action too. Null `freezes`: no containment.
  Decision contain(Decision decision, FreezeCache* freezes, ratelimit::TimePoint now);

  // Before the headers arrive (at DATA): the freeze, if any, that already
  // decides this message, so a tempfail/reject freeze can refuse it before
  // the body is sent. Local submissions are never refused this early.
  std::optional<ActiveFreeze> frozen_before_headers(const FreezeList& freezes, ratelimit::TimePoint now) const;
  // The decision for a message refused at DATA by `freeze`.
  Decision refuse_frozen(const ActiveFreeze& freeze) const;

  // For a Quarantine decision: records the entry in `spool` (the message too
  // in spool mode, metadata only in hold mode) and returns the decision the
  // MTA must get. In spool mode the message may be discarded only once it is
  // stored; when that cannot be done (no usable spool, message over the size
  // cap, write error) the decision becomes a tempfail so the MTA keeps it.
  // `spool` may be null (the spool could not be opened). Other decisions
  // pass through unchanged.
  Decision quarantine(Decision decision, quarantine::SpoolStore* spool,
                      std::chrono::system_clock::time_point now);

  const policy::MessageFacts& facts() const { return m_facts; }
  const std::string& subject() const { return m_subject; }
  std::uint64_t recipient_count() const { return m_recipient_count; }
  const policy::Config& config() const { return *m_config; }

 private:
  Decision finish_verdict(Decision decision) const;
  // finish_verdict() again after the verdict's action changed.
  Decision redo_verdict(Decision decision) const;
  quarantine::QuarantineEntry quarantine_entry(const Decision& decision,
                                              std::chrono::system_clock::time_point now) const;
  void append_to_copy(std::string_view bytes);

  std::shared_ptr<const policy::Config> m_config;
  policy::MessageFacts m_facts;
  std::unique_ptr<policy::ContentFingerprinter> m_fingerprinter;
  std::uint64_t m_recipient_count = 0;
  std::string m_subject;
  // The message as received, for the spool; null when not kept (hold mode,
  // or no spool to spill into).
  std::unique_ptr<quarantine::MessageBuffer> m_copy;
  bool m_body_started = false;
  bool m_copy_checked = false;  // scope looked at once, at the first header
};

// The header names Floodgate adds to tagged mail.
constexpr std::string_view k_score_header = "X-Floodgate-Score";
constexpr std::string_view k_reasons_header = "X-Floodgate-Reasons";
// monitor.add_header: what the monitored verdict would have done instead.
constexpr std::string_view k_monitor_header = "X-Floodgate-Monitor";

// One key=value line describing a decision, queue id first; every
// attacker-controlled value escaped.
std::string format_decision_log(const MessageSession& session, const Decision& decision,
                                std::chrono::microseconds elapsed);

}  // namespace floodgate::milter
