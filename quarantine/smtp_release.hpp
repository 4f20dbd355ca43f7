// SMTP re-injection of a quarantined message to the release target.
//
// release_over_smtp() opens one SMTP session to `target` (a listener that
// does not pass through Floodgate again), sends EHLO, MAIL FROM:<sender>
// (with BODY=8BITMIME when the target offers it and the message has 8-bit
// bytes), one RCPT TO per recipient, and DATA with dot-stuffing and CRLF
// line ends, then QUIT. A recipient the target refuses is reported with its
// reply and the others are still sent; the message counts as delivered only
// when the final DATA reply is 250.
//
// Every network step has a timeout; nothing throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate::quarantine {

struct SmtpTarget {
  std::string host = "127.0.0.1";
  std::uint16_t port = 10026;
  std::string helo_name = "floodgate.localhost";
  std::chrono::milliseconds timeout{60000};
};

struct RefusedRecipient {
  std::string recipient;
  std::string reply;  // "550 5.1.1 <x@y>: Recipient address rejected: ..."
};

struct ReleaseResult {
  bool delivered = false;                 // DATA got 250 for the accepted recipients
  std::vector<std::string> accepted;      // recipients the target took
  std::vector<RefusedRecipient> refused;  // recipients it refused
  std::string error;                      // when not delivered: what went wrong
  std::string final_reply;                // the reply to DATA's end
};

// `message` is fed to `write` piece by piece by the caller-supplied
// producer: produce(write) must call write(piece) for each piece, in order,
// and return false if it could not read the message.
using MessageProducer = std::function<bool(const std::function<bool(std::string_view)>& write)>;

ReleaseResult release_over_smtp(const SmtpTarget& target, const std::string& sender,
                                const std::vector<std::string>& recipients, const MessageProducer& message);

}  // namespace floodgate::quarantine
