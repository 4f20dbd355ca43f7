// Incident: the trace of one freeze -- what the frozen source sent, what
// Floodgate did with it, and who was told.
//
// Every freeze (by a rule or by hand) opens one incident. Every Floodgate
// instance that sees mail from the frozen source records it into the
// incident (containment/incident_store.hpp); the messages the source got
// through before the freeze ("slipped") are added by each instance from its
// own memory of recent mail (containment/recent_messages.hpp). The incident
// stays readable for containment.incidents.retention after the freeze ends.
//
// State is derived, not stored alone: an incident is open while it has no
// `closed` time and its freeze's `until` is still ahead; after that it is
// ended (closed by an unfreeze, or expired).
//
// SECURITY: sources, subjects, senders, recipients and identity values are
// text from the SMTP client. render_incident_text() escapes every control
// and 8-bit byte (as \xNN), so its output is safe on a terminal and as the
// body of a plain-text mail; JSON escapes by itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "policy/config.hpp"
#include "ratelimit/counter_store.hpp"
#include "ratelimit/freeze_store.hpp"

namespace floodgate::containment {

using ratelimit::TimePoint;

// What happened to one message of the source.
enum class MessageOutcome {
  Slipped,      // accepted before the freeze (counted by the instance that accepted it)
  Quarantined,  // stopped by the freeze (or by its own score) into the quarantine
  Tempfailed,
  Rejected,
};
std::string_view to_string(MessageOutcome outcome);
std::optional<MessageOutcome> parse_message_outcome(std::string_view text);

// One message, as recorded into an incident.
struct IncidentMessage {
  TimePoint time;
  std::string queue_id;  // the MTA's, "" when unknown
  MessageOutcome outcome = MessageOutcome::Quarantined;
  std::uint64_t recipients = 0;         // the full count
  std::vector<std::string> recipient_addresses;  // as many as the message kept (the store samples)
  std::string sender;
  std::string subject;
  std::string fingerprint;  // "exact:<hex>", "" when none
};

// What queue clearing did with one queued message.
struct QueueAction {
  std::string queue_id;
  std::string result;  // "held", "deleted", "not in queue", or "failed: <why>"
};

struct CountedText {
  std::string text;
  std::uint64_t count = 0;
  friend bool operator==(const CountedText&, const CountedText&) = default;
};

struct IncidentQueueEntry {
  std::string queue_id;
  MessageOutcome outcome = MessageOutcome::Quarantined;
  TimePoint time;
  std::string queue_action;  // "" when queue clearing did not touch it
};

struct Incident {
  std::string id;             // make_incident_id()
  std::string source;         // canonical SourceSpec text
  std::string source_digest;  // SourceSpec::digest()
  std::string rule;           // the rule that froze it, or "manual"
  std::string reason;         // "same_content_rcpts_per_client=101>100 (+20)", or ops' text
  policy::Action action = policy::Action::Quarantine;
  // The source's identity as the message that froze it showed it:
  // "client_address", "client_name", "sasl_user", "sender", and
  // "header:<lower-case name>" for each header of interest. A manual freeze
  // has only the parts its SOURCE named.
  std::map<std::string, std::string> identity;
  std::string opened_by;      // host name of the instance (or "floodgatectl")

  TimePoint opened;
  TimePoint until;            // the freeze's expiry
  std::optional<TimePoint> closed;
  std::string close_reason;   // "unfrozen", "expired"

  std::optional<TimePoint> first_seen;  // earliest message recorded (slipped ones included)
  std::optional<TimePoint> last_seen;
  std::uint64_t messages = 0;     // every recorded message, whatever its outcome
  std::uint64_t recipients = 0;   // their recipients, summed
  std::uint64_t quarantined = 0;
  std::uint64_t tempfailed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t slipped = 0;

  std::vector<std::string> recipient_sample;     // distinct, at most incidents.recipient_sample
  std::vector<CountedText> recipient_domains;    // most frequent first
  std::vector<CountedText> subjects;             // most frequent first, at most incidents.subjects
  std::vector<CountedText> fingerprints;         // most frequent first
  std::vector<std::string> senders;              // distinct envelope senders, a sample

  std::vector<IncidentQueueEntry> queue_ids;     // oldest first, at most incidents.max_queue_ids
  std::uint64_t queue_ids_not_listed = 0;        // beyond that cap
  std::string queue_clearing = "off";            // the mode in force: off, hold, delete

  std::uint64_t notifications_sent = 0;
  std::uint64_t notifications_suppressed = 0;    // by the per-source rate limit
  std::uint64_t notifications_failed = 0;

  // Open: not closed, and the freeze not expired at `now`.
  bool is_open(TimePoint now) const { return !closed && until > now; }
  // "open", "unfrozen", "expired".
  std::string state(TimePoint now) const;
};

// What an incident's opener knows from its freeze: id (freeze.incident),
// source, digest, rule, reason, action, opened (since) and until. The
// opener adds identity, opened_by and queue_clearing.
Incident incident_opened_by(const ratelimit::Freeze& freeze);

// "YYYYMMDD-HHMMSS-xxxxxxxx": the opening time (UTC) and 8 hex digits of
// `random_bits`. Sortable by time; safe in Redis keys, file names and shells.
std::string make_incident_id(TimePoint opened, std::uint64_t random_bits);
bool is_valid_incident_id(std::string_view text);

// The whole incident as JSON (what `incident ID --json` prints and what a
// notification command reads on stdin). Times as ISO 8601 UTC strings and
// as "..._ms" integers; `state` is computed at `now`.
nlohmann::json incident_to_json(const Incident& incident, TimePoint now);

// Attacker text made printable: bytes below 0x20, 0x7f and above as \xNN, a
// backslash as \\; at most `max_chars` characters, a cut value ending in
// "..." (an escape is never split). What render_incident_text() and the
// report mail use for every value from the SMTP client.
std::string escape_incident_text(std::string_view raw, std::size_t max_chars);

// A person's view, for a terminal and for the report mail: headed by the
// source, state and rule, then times, counts, samples, subjects and queue
// ids. Every line ends with '\n'; attacker text is escaped (see above).
std::string render_incident_text(const Incident& incident, TimePoint now);

}  // namespace floodgate::containment
