// MessageFacts: everything the policy core may know about one message, as
// plain values collected by the milter layer.
//
// SECURITY: every string here except `local_submission` comes from the SMTP
// client or the message and is attacker-controlled. The policy core never
// uses it raw in a counter key (it hashes it) and the logger escapes it.
// Strings are already bounded by the collector (see milter/session.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/ip_address.hpp"

namespace floodgate::policy {

// Result of content fingerprinting (see policy/content_fingerprint.hpp).
struct ContentFingerprint {
  // Stable digest of the normalised text; 0 with `present == false` when
  // the message had no text to fingerprint (empty body, attachments only).
  std::uint64_t digest = 0;
  bool present = false;
  // How it was made, for reasons and logs: "minhash" (near-duplicate
  // matching through `bands`), "exact" (text too short for shingles: only
  // `digest` counts).
  std::string method;
  // LSH band keys of the MinHash signature (policy/minhash.hpp): two
  // messages are "the same content" when any band key is equal. Empty for
  // "exact".
  std::vector<std::uint64_t> bands;
  // When !present: why ("no text", "nesting too deep", ...), for logs.
  std::string unfingerprintable;
};

struct MessageFacts {
  std::string client_address;          // as the MTA gave it, "IPv6:" stripped
  std::optional<IpAddress> client_ip;  // unset when unknown or unparsable
  std::string client_name;             // reverse name, "unknown" as the MTA said
  std::string helo;
  std::string sasl_user;               // empty: not authenticated
  std::string sender;                  // envelope sender without <>, "" for null sender
  std::vector<std::string> recipients;           // accepted by the MTA
  std::vector<std::string> rejected_recipients;  // refused by the MTA (unknown users...)
  // Milter macros seen for this connection and message, names without braces
  // ("daemon_name", "auth_authen", "i").
  std::map<std::string, std::string> macros;
  // Headers named by the configuration, keyed by lower-case name; first
  // occurrence wins (a spammer adding a second copy cannot shadow the first).
  std::map<std::string, std::string> headers;
  // True when the MTA told us the mail was submitted locally (sendmail(1),
  // Postfix's non_smtpd_milters): no SMTP client, verdicts only at
  // end-of-message.
  bool local_submission = false;
  ContentFingerprint fingerprint;
  std::uint64_t size_bytes = 0;
};

}  // namespace floodgate::policy
