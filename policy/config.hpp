// Config: the immutable, validated configuration model.
//
// A Config is built once by the YAML loader (policy/config_loader.hpp) and
// then shared read-only as std::shared_ptr<const Config>; sessions keep the
// snapshot they started with. Nothing in here refers to yaml-cpp.
//
// Every field has a default that is safe to run with; the loader overwrites
// only what the file sets. Validation (names resolve, thresholds positive,
// bands ordered) is the loader's job: code that receives a Config may rely on
// it being consistent.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/ip_address.hpp"

namespace floodgate::policy {

// ---- Source identities -------------------------------------------------

// One component of a source identity.
struct IdentityPart {
  enum class Kind {
    ClientAddress,  // the client's IP address
    ClientNetwork,  // the client's address masked to a prefix length
    ClientName,     // reverse DNS name as the MTA reported it
    SaslUser,       // {auth_authen}
    Sender,         // envelope sender, lower-cased
    SenderDomain,   // domain of the envelope sender, lower-cased
    Header,         // value of a named header (first occurrence)
    Macro,          // value of a milter macro
  };
  Kind kind = Kind::ClientAddress;
  unsigned ipv4_prefix = 24;  // ClientNetwork only
  unsigned ipv6_prefix = 64;  // ClientNetwork only
  std::string name;           // Header (lower-case) or Macro (without braces)
  friend bool operator==(const IdentityPart&, const IdentityPart&) = default;
};

// What a rule does when a part of its identity is missing for a message
// (no SASL user on an unauthenticated connection, no script header, ...).
enum class MissingPartPolicy {
  SkipRule,     // the rule does not apply to this message
  Placeholder,  // "missing" counts as a value of its own (shown as "-" in logs)
};

struct IdentityDefinition {
  std::string name;  // [a-z0-9_]+, referenced by rules
  std::vector<IdentityPart> parts;
  MissingPartPolicy when_missing = MissingPartPolicy::SkipRule;
};

// ---- Rules ---------------------------------------------------------------

enum class Signal {
  RecipientsPerMessage,  // recipients of this message (no window, no identity)
  Messages,              // messages per identity per window
  Recipients,            // recipients per identity per window
  DistinctRecipients,    // distinct recipient addresses per identity per window
  RejectedRecipients,    // recipients the MTA refused, per identity per window
  ContentCopies,         // messages with this fingerprint per window
  ContentRecipients,     // recipients of messages with this fingerprint per window
  ContentSources,        // distinct identities sending this fingerprint per window
  ContentRecipientDomains,  // distinct recipient domains of this fingerprint per window
};

// Enforce: a fired rule's points count toward the action (and a containment
// rule freezes). Monitor: the rule is scored and reported -- what it would
// have done -- but never acted on, so a new rule can be tried on real
// traffic beside the enforced ones.
enum class RuleMode { Enforce, Monitor };

struct Rule {
  std::string name;  // [a-z0-9_]+, appears in reasons and logs
  Signal signal = Signal::Messages;
  // Index into Config::identities. Required for per-source signals and
  // ContentSources (which identity counts as "a source"); optional for
  // ContentCopies/ContentRecipients, where it narrows the count to this
  // fingerprint from this source.
  std::optional<std::size_t> identity;
  std::chrono::seconds window{600};  // ignored for RecipientsPerMessage
  std::uint64_t threshold = 0;       // fires when the value is > threshold
  int points = 0;
  RuleMode mode = RuleMode::Enforce;
};

// Per-source thresholds (`overrides: {file: ...}`): a rule that counts per
// source may allow one source more (a newsletter account) or less. Read
// from their own YAML file with every load of the config, so a reload
// re-reads them.
struct ThresholdOverrides {
  std::string file;  // where they were read from; empty: none
  // Per rule (index into Config::rules): canonical source -> threshold.
  std::map<std::size_t, std::map<std::string, std::uint64_t>> by_rule;

  friend bool operator==(const ThresholdOverrides&, const ThresholdOverrides&) = default;
};

// Monitor mode for the whole policy (top-level `mode: monitor`) and what
// monitoring adds to mail (`monitor:`).
struct MonitorSettings {
  // Every rule in monitor mode: nothing is tagged, quarantined, refused or
  // frozen by a rule; the verdict the policy would have given is logged and
  // counted. A freeze made by hand (floodgatectl freeze) is still enforced.
  bool everything = false;
  // X-Floodgate-Monitor: the monitored verdict (action, score, reasons) on
  // mail it would have treated differently from what it got.
  bool add_header = false;

  friend bool operator==(const MonitorSettings&, const MonitorSettings&) = default;
};

// ---- Scope and exemptions -------------------------------------------------

// Which messages count as outbound; anything else is accepted untouched.
struct OutboundScope {
  std::vector<IpNetwork> client_networks;
  bool authenticated = true;     // a SASL user makes a message outbound
  bool local_submission = true;  // sendmail(1) / non_smtpd_milters
  // A macro with one of the listed values makes a message outbound, e.g.
  // {daemon_name} = submission.
  struct MacroMatch {
    std::string macro;  // without braces
    std::vector<std::string> values;
  };
  std::vector<MacroMatch> macros;
};

// One exemption: a message matching every condition of any exemption is
// accepted without scoring (and without counting).
struct Exemption {
  std::vector<IpNetwork> client_networks;  // any of
  std::vector<std::string> sasl_users;     // any of, case-insensitive
  std::vector<std::string> senders;        // any of, case-insensitive
  std::vector<std::string> sender_domains; // any of, case-insensitive
  std::vector<std::string> client_names;   // any of, case-insensitive
  // A named header or milter macro whose value (trimmed, exact) is one of
  // the listed values, e.g. the PHP script that sends the newsletter. Every
  // listed name must match.
  struct ValueMatch {
    std::string name;  // header: lower-case; macro: without braces
    std::vector<std::string> values;
  };
  std::vector<ValueMatch> headers;
  std::vector<ValueMatch> macros;
};

// ---- Verdicts ---------------------------------------------------------------

// From mildest to hardest: containment relies on this order.
enum class Action { Accept, Tag, Quarantine, Tempfail, Reject };

// A score band: messages scoring >= min_score get `action` unless a band
// with a higher min_score also matches.
struct ActionBand {
  Action action = Action::Accept;
  int min_score = 0;
};

struct Replies {
  std::string tempfail_code = "451";
  std::string tempfail_status = "4.7.1";
  std::string tempfail_text = "Too much mail from this source, try again later";
  std::string reject_code = "550";
  std::string reject_status = "5.7.1";
  std::string reject_text = "Message refused by outbound policy";
};

// ---- Adapters' settings ------------------------------------------------------

// What to do when the counter store (Redis) cannot be used.
enum class CounterFailureMode {
  Local,     // keep scoring with the in-process counters of this node
  Accept,    // accept without scoring
  Tempfail,  // tempfail the message
};

// Redis Sentinel: where to ask for the current master. With sentinels set,
// the host and port of `url` are ignored (its db, user and password still
// apply) and every new connection goes to the master the sentinels name.
struct SentinelSettings {
  std::string master_name;             // empty: no Sentinel
  std::vector<std::string> addresses;  // "host:port", "[v6]:port"; asked in order
  std::string password_file;           // for sentinels with requirepass; optional

  friend bool operator==(const SentinelSettings&, const SentinelSettings&) = default;
};

struct RedisSettings {
  std::string url = "redis://127.0.0.1:6379/0";
  // Redis 6 ACL user; overrides a user in the URL. With no password, none
  // is sent (the user is then unused, as Redis' AUTH needs both).
  std::string username;
  std::string password_file;  // optional; overrides a password in the URL
  SentinelSettings sentinel;
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds command_timeout{200};
  unsigned pool_size = 8;
  std::string key_prefix = "fg";
  CounterFailureMode on_failure = CounterFailureMode::Local;
  // While Redis is failing, how long to wait between attempts to return.
  std::chrono::milliseconds retry_interval{5000};

  friend bool operator==(const RedisSettings&, const RedisSettings&) = default;
};

// Where quarantined mail goes and how it is released (quarantine/, ctl/).
struct QuarantineSettings {
  enum class Mode {
    Spool,  // Floodgate stores the message durably, then the MTA discards it
    Hold,   // the MTA's hold queue (milter quarantine request); metadata only
  };
  Mode mode = Mode::Spool;
  std::string spool_directory = "/var/spool/floodgate/quarantine";
  // Messages bigger than this are tempfailed instead of quarantined.
  std::uint64_t max_message_bytes = 64ull * 1024 * 1024;
  // Per message, kept in memory up to this; beyond, spilled to a file.
  std::size_t memory_buffer_bytes = 256 * 1024;
  // Entries older than this are purged (0: keep forever).
  std::chrono::seconds retention{14 * 24 * 3600};
  std::chrono::seconds purge_interval{3600};
  // Release re-injects here: an MTA listener that does not call Floodgate.
  std::string release_host = "127.0.0.1";
  std::uint16_t release_port = 10026;
  std::chrono::seconds release_timeout{60};
  // The MTA whose queue hold mode and containment.queue_clearing act on,
  // so which tool releases (postsuper -H, or sendmail -qQ -Q) and clears.
  enum class Mta { Postfix, Sendmail };
  Mta mta = Mta::Postfix;
  // Postfix: the configuration directory postsuper gets (-c);
  // empty for the default /etc/postfix.
  std::string postfix_config_directory;
  // Sendmail: the command, with any options of its own (say -C
  // FILE), that the queue options are appended to.
  std::vector<std::string> sendmail_command{"/usr/sbin/sendmail"};

  friend bool operator==(const QuarantineSettings&, const QuarantineSettings&) = default;
};

// What each freeze's incident keeps (containment/incident_store.hpp).
struct IncidentSettings {
  // How long an incident is kept after its freeze ends.
  std::chrono::seconds retention{30 * 24 * 3600};
  // Messages from a source accepted this long before its freeze count as
  // "slipped through" and are the ones queue clearing acts on.
  std::chrono::seconds lookback{600};
  std::size_t recipient_sample = 20;  // recipients (and domains) kept as a sample
  std::size_t subjects = 10;          // distinct subjects shown, most frequent first
  std::size_t max_queue_ids = 1000;   // queue ids listed; counts go on beyond

  friend bool operator==(const IncidentSettings&, const IncidentSettings&) = default;
};

// Who is told about a freeze and its end (containment/notifier.hpp).
struct NotificationSettings {
  std::vector<std::string> mail_to;  // report mail recipients (none: no mail)
  std::string mail_from = "floodgate@localhost";
  // argv of a command given the incident as JSON on stdin (empty: none);
  // run without a shell.
  std::vector<std::string> command;
  std::chrono::seconds command_timeout{10};
  // At most one notification per source and event (freeze, unfreeze) in
  // this interval.
  std::chrono::seconds min_interval{900};
  bool on_unfreeze = true;

  friend bool operator==(const NotificationSettings&, const NotificationSettings&) = default;
};

// On freeze, what to do with the source's accepted messages still in the
// local MTA's queue (quarantine.mta; Delete needs Postfix).
enum class QueueClearing { Off, Hold, Delete };

// Containment: freezing the source that tripped a rule, so that its
// following mail gets `action` until ops unfreeze it or `ttl` runs out.
struct ContainmentSettings {
  // Rules (indices into Config::rules) whose firing freezes the source named
  // by that rule's identity for this message.
  std::vector<std::size_t> rules;
  // A score at or above this freezes the sources of every fired rule that has
  // an identity; unset: no score-based freeze.
  std::optional<int> min_score;
  Action action = Action::Quarantine;  // Quarantine, Tempfail or Reject
  std::chrono::seconds ttl{3600};
  // How often each instance re-reads the freezes from Redis (freezes made by
  // this instance apply at once).
  std::chrono::milliseconds refresh_interval{1000};
  // Where a frozen source whose freeze tempfails or rejects is refused.
  // Data: at DATA, the first stage Floodgate answers anyway (no body is
  // sent). MailFrom: at MAIL FROM, before the recipients too; this makes
  // the MTA wait for Floodgate's reply to every MAIL FROM of every client
  // (one more milter round trip per message).
  enum class RefuseAt { Data, MailFrom };
  RefuseAt refuse_at = RefuseAt::Data;
  IncidentSettings incidents;
  NotificationSettings notify;
  QueueClearing queue_clearing = QueueClearing::Off;
};

// `floodgatectl top`: per-minute activity of each source, kept in Redis
// (containment/activity.hpp).
struct TopSettings {
  bool enabled = true;
  std::chrono::seconds history{3600};  // how far back `top --window` can look
  // How often each instance writes its aggregated activity to Redis.
  std::chrono::milliseconds flush_interval{1000};

  friend bool operator==(const TopSettings&, const TopSettings&) = default;
};

struct ContentSettings {
  // How much decoded body text the fingerprinter reads; the rest is ignored.
  std::size_t max_text_bytes = 256 * 1024;
  // Real mail nests multiparts three or four deep (mixed > related >
  // alternative); deeper parts are a parser attack and are skipped.
  std::size_t max_nesting_depth = 8;
  // MIME parts read; after this many the rest of the message is ignored.
  std::size_t max_parts = 512;
  // Of the header fields that say how a part is read (Content-Type,
  // Content-Transfer-Encoding, Content-Disposition), this much of each value
  // is kept; a long boundary still fits in the default.
  std::size_t max_header_bytes = 1024;
};

// How the daemon runs: its socket, who it runs as, and how it stops.
struct DaemonSettings {
  // After opening the socket and the files that need root, the daemon
  // drops to this user ("USER" or "USER:GROUP"; group defaults to the
  // user's). Empty: keep running as whoever started it.
  std::string user;
  // A unix milter socket is given this owner, group and mode, so that the
  // MTA's user can reach it. Unset: left as created (the owner is the
  // daemon's user, the mode follows the umask).
  std::string socket_owner;
  std::string socket_group;
  std::optional<unsigned> socket_mode;
  // On SIGTERM: how long messages in flight may take to finish.
  std::chrono::seconds shutdown_timeout{30};

  friend bool operator==(const DaemonSettings&, const DaemonSettings&) = default;
};

// Where log lines go: syslog (the default for a daemon; the mail facility,
// next to the MTA's own lines) or stderr (running in the foreground).
struct LogSettings {
  enum class Destination { Syslog, Stderr };
  std::string level = "info";
  Destination destination = Destination::Syslog;
  std::string syslog_facility = "mail";  // mail, daemon, local0 .. local7
  std::string syslog_ident = "floodgate";

  friend bool operator==(const LogSettings&, const LogSettings&) = default;
};

// The Prometheus endpoint (milter/metrics). Empty listen: no endpoint.
struct MetricsSettings {
  std::string listen;  // "127.0.0.1:9890"

  friend bool operator==(const MetricsSettings&, const MetricsSettings&) = default;
};

struct Config {
  std::string source_file;  // for messages only
  std::string milter_socket = "inet:8890@127.0.0.1";
  DaemonSettings daemon;
  LogSettings log;
  MetricsSettings metrics;
  RedisSettings redis;
  ContentSettings content;
  QuarantineSettings quarantine;
  ContainmentSettings containment;
  TopSettings top;
  OutboundScope outbound;
  std::vector<Exemption> exemptions;
  std::vector<IdentityDefinition> identities;
  std::vector<Rule> rules;
  MonitorSettings monitor;
  ThresholdOverrides overrides;
  std::vector<ActionBand> bands;  // sorted by min_score ascending
  Replies replies;
  // Header names (lower-case) that identities and exemptions reference; the
  // milter collects exactly these.
  std::vector<std::string> headers_of_interest;
  // Line of each key in source_file, by dotted path ("redis.url"), so that
  // checks made after loading (the daemon's) can point at the line too.
  std::map<std::string, int> key_lines;
};

// Whether the policy has anything in monitor mode (the whole of it, or a rule).
bool monitors_anything(const Config& config);

std::string_view to_string(Action action);
std::string_view to_string(Signal signal);
std::string_view to_string(QueueClearing clearing);

}  // namespace floodgate::policy
