// SMTP re-injection (see smtp_release.hpp for the contract).
//
// SECURITY: the envelope addresses come from the original SMTP client and
// the message is attacker-written. An address holding CR, LF or another
// control character is never put on the wire (it could smuggle a second
// command); the message is dot-stuffed and its line ends normalised, so it
// cannot end DATA early. Replies from the target are bounded in size.
//
// LIMITS: one command at a time (no PIPELINING), no STARTTLS or AUTH: the
// release target is a trusted local listener.
#include "quarantine/smtp_release.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>

namespace floodgate::quarantine {
namespace {

using Clock = std::chrono::steady_clock;

// RFC 5321 allows 512 octets per reply line; a bit of slack for chatty
// servers, but a target that sends more is broken, not worth buffering.
constexpr std::size_t k_max_reply_line_bytes = 4096;
constexpr std::size_t k_max_reply_lines = 100;
// DATA is sent in chunks of about this size.
constexpr std::size_t k_send_chunk_bytes = 64 * 1024;

struct Reply {
  int code = 0;
  std::vector<std::string> lines;  // without CRLF, with the code

  bool positive() const { return code >= 200 && code < 300; }
  // The reply as one line for messages: "550 5.1.1 unknown" (continuation
  // lines joined with " / ").
  std::string text() const {
    std::string joined;
    for (const auto& line : lines) {
      if (!joined.empty()) joined += " / ";
      joined += line;
    }
    return joined;
  }
};

std::string errno_text(int error) { return std::strerror(error); }

bool has_control_character(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// One SMTP connection: a non-blocking socket driven by poll() so that every
// step is bounded by the target's timeout. Errors are sticky: after the
// first one, every call fails and error() says what happened.
class SmtpConnection {
 public:
  explicit SmtpConnection(std::chrono::milliseconds timeout) : m_timeout(timeout) {}
  ~SmtpConnection() {
    if (m_fd >= 0) ::close(m_fd);
  }
  SmtpConnection(const SmtpConnection&) = delete;
  SmtpConnection& operator=(const SmtpConnection&) = delete;

  const std::string& error() const { return m_error; }
  bool failed() const { return !m_error.empty(); }

  bool connect_to(const std::string& host, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    const std::string where = host + ":" + service;
    if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
      return fail("cannot resolve " + host + ": " + ::gai_strerror(rc));
    }
    std::string last_error = "no address";
    for (addrinfo* address = found; address != nullptr; address = address->ai_next) {
      int fd = ::socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        address->ai_protocol);
      if (fd < 0) {
        last_error = errno_text(errno);
        continue;
      }
      int error = 0;
      if (::connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
        error = errno;
        if (error == EINPROGRESS) error = wait_for_connect(fd);
      }
      if (error == 0) {
        m_fd = fd;
        break;
      }
      last_error = error == ETIMEDOUT ? "timed out" : errno_text(error);
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (m_fd < 0) return fail("cannot connect to " + where + ": " + last_error);
    return true;
  }

  bool send_line(std::string_view line, std::string_view what) {
    std::string bytes(line);
    bytes += "\r\n";
    return send_bytes(bytes, what);
  }

  bool send_bytes(std::string_view bytes, std::string_view what) {
    if (failed()) return false;
    const auto deadline = Clock::now() + m_timeout;
    while (!bytes.empty()) {
      // MSG_NOSIGNAL: a target that went away must give an error, not kill
      // the process with SIGPIPE.
      ssize_t sent = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(sent));
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_for(POLLOUT, deadline, what, "sending")) return false;
        continue;
      }
      return fail("sending " + std::string(what) + ": " + errno_text(errno));
    }
    return true;
  }

  // One whole reply, multi-line ones included.
  std::optional<Reply> read_reply(std::string_view what) {
    if (failed()) return std::nullopt;
    const auto deadline = Clock::now() + m_timeout;
    Reply reply;
    while (true) {
      std::optional<std::string> line = read_line(deadline, what);
      if (!line) return std::nullopt;
      // "250-..." continues, "250 ..." or a bare "250" ends the reply.
      if (line->size() < 3 || !is_digit((*line)[0]) || !is_digit((*line)[1]) || !is_digit((*line)[2]) ||
          (line->size() > 3 && (*line)[3] != ' ' && (*line)[3] != '-')) {
        fail("malformed reply to " + std::string(what) + ": \"" + printable(*line) + "\"");
        return std::nullopt;
      }
      int code = std::stoi(line->substr(0, 3));
      if (!reply.lines.empty() && code != reply.code) {
        fail("inconsistent multi-line reply to " + std::string(what));
        return std::nullopt;
      }
      reply.code = code;
      bool last = line->size() == 3 || (*line)[3] == ' ';
      reply.lines.push_back(std::move(*line));
      if (last) return reply;
      if (reply.lines.size() >= k_max_reply_lines) {
        fail("reply to " + std::string(what) + " has too many lines");
        return std::nullopt;
      }
    }
  }

 private:
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  // The target's reply text goes into error messages printed to a terminal.
  static std::string printable(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 200)) out += (c < 0x20 || c >= 0x7f) ? '?' : static_cast<char>(c);
    return out;
  }

  bool fail(std::string message) {
    if (m_error.empty()) m_error = std::move(message);
    return false;
  }

  int wait_for_connect(int fd) {
    pollfd waiting{fd, POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&waiting, 1, static_cast<int>(m_timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return errno;
    if (ready == 0) return ETIMEDOUT;
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
  }

  bool wait_for(short events, Clock::time_point deadline, std::string_view what, std::string_view doing) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return fail("timed out " + std::string(doing) + " " + std::string(what) + " after " +
                    std::to_string(m_timeout.count()) + " ms");
      }
      pollfd waiting{m_fd, events, 0};
      int ready = ::poll(&waiting, 1, static_cast<int>(left.count()) + 1);
      if (ready > 0) return true;  // errors and hangups show in recv/send
      if (ready < 0 && errno != EINTR) return fail("poll: " + errno_text(errno));
    }
  }

  std::optional<std::string> read_line(Clock::time_point deadline, std::string_view what) {
    while (true) {
      if (auto end = m_input.find('\n'); end != std::string::npos) {
        std::string line = m_input.substr(0, end);
        m_input.erase(0, end + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (m_input.size() > k_max_reply_line_bytes) {
        fail("reply line to " + std::string(what) + " is too long");
        return std::nullopt;
      }
      char buffer[4096];
      ssize_t got = ::recv(m_fd, buffer, sizeof buffer, 0);
      if (got > 0) {
        m_input.append(buffer, static_cast<std::size_t>(got));
        continue;
      }
      if (got == 0) {
        fail("connection closed by the target while waiting for the reply to " + std::string(what));
        return std::nullopt;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_for(POLLIN, deadline, what, "waiting for the reply to")) return std::nullopt;
        continue;
      }
      fail("reading the reply to " + std::string(what) + ": " + errno_text(errno));
      return std::nullopt;
    }
  }

  std::chrono::milliseconds m_timeout;
  int m_fd = -1;
  std::string m_input;
  std::string m_error;
};

// Turns the stored message into DATA content: every line end (LF, CRLF or a
// lone CR) becomes CRLF and a line starting with "." gets a second one
// (RFC 5321 4.5.2), across piece boundaries. Output goes out in chunks.
class DataEncoder {
 public:
  explicit DataEncoder(SmtpConnection& connection) : m_connection(connection) {}

  bool write(std::string_view piece) {
    for (char c : piece) {
      if (m_pending_cr) {
        m_pending_cr = false;
        end_line();
        if (c == '\n') continue;
      }
      if (c == '\r') {
        m_pending_cr = true;
      } else if (c == '\n') {
        end_line();
      } else {
        if (m_at_line_start && c == '.') m_output += '.';
        m_output += c;
        m_at_line_start = false;
      }
    }
    if (m_output.size() >= k_send_chunk_bytes) return flush();
    return !m_connection.failed();
  }

  // The end of the message: an unterminated last line is terminated, then
  // the lone "." that ends DATA.
  bool finish() {
    if (m_pending_cr) end_line();
    m_pending_cr = false;
    if (!m_at_line_start) end_line();
    m_output += ".\r\n";
    return flush();
  }

 private:
  void end_line() {
    m_output += "\r\n";
    m_at_line_start = true;
  }

  bool flush() {
    bool ok = m_connection.send_bytes(m_output, "the message");
    m_output.clear();
    return ok;
  }

  SmtpConnection& m_connection;
  std::string m_output;
  bool m_at_line_start = true;
  bool m_pending_cr = false;
};

bool message_has_8bit(const MessageProducer& message, bool& readable) {
  bool found = false;
  readable = message([&](std::string_view piece) {
    for (unsigned char c : piece) {
      if (c >= 0x80) {
        found = true;
        return false;  // enough: stop reading
      }
    }
    return true;
  });
  // A producer told to stop early may report that as failure.
  if (found) readable = true;
  return found;
}

bool offers_extension(const Reply& ehlo_reply, std::string_view keyword) {
  // The first line is the greeting; each following one is "250-KEYWORD params".
  for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
    std::string_view line = ehlo_reply.lines[i];
    if (line.size() < 4) continue;
    line.remove_prefix(4);
    std::string_view word = line.substr(0, line.find(' '));
    if (word.size() != keyword.size()) continue;
    bool same = true;
    for (std::size_t k = 0; k < word.size(); ++k) {
      char a = word[k];
      if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 'a' + 'A');
      if (a != keyword[k]) same = false;
    }
    if (same) return true;
  }
  return false;
}

// Ends the session politely; its outcome does not matter any more.
void quit(SmtpConnection& connection) {
  if (connection.failed()) return;
  if (connection.send_line("QUIT", "QUIT")) connection.read_reply("QUIT");
}

void abandon_transaction(SmtpConnection& connection) {
  if (connection.failed()) return;
  if (connection.send_line("RSET", "RSET")) connection.read_reply("RSET");
  quit(connection);
}

ReleaseResult release(const SmtpTarget& target, const std::string& sender,
                      const std::vector<std::string>& recipients, const MessageProducer& message) {
  ReleaseResult result;
  if (has_control_character(sender)) {
    result.error = "the envelope sender holds control characters; not sent";
    return result;
  }
  if (recipients.empty()) {
    result.error = "no recipients to send to";
    return result;
  }

  SmtpConnection connection(target.timeout);
  auto failed = [&](std::string message_text) {
    result.error = connection.failed() ? connection.error() : std::move(message_text);
    return result;
  };
  if (!connection.connect_to(target.host, target.port)) return failed("");

  auto greeting = connection.read_reply("the greeting");
  if (!greeting) return failed("");
  if (greeting->code != 220) {
    quit(connection);
    return failed("the target refused the session: " + greeting->text());
  }

  bool can_8bitmime = false;
  if (!connection.send_line("EHLO " + target.helo_name, "EHLO")) return failed("");
  auto hello = connection.read_reply("EHLO");
  if (!hello) return failed("");
  if (hello->code >= 500 && hello->code < 600) {
    // An old server without ESMTP: plain HELO, and no extensions.
    if (!connection.send_line("HELO " + target.helo_name, "HELO")) return failed("");
    hello = connection.read_reply("HELO");
    if (!hello) return failed("");
  } else if (hello->positive()) {
    can_8bitmime = offers_extension(*hello, "8BITMIME");
  }
  if (!hello->positive()) {
    quit(connection);
    return failed("the target refused the greeting: " + hello->text());
  }

  std::string mail_from = "MAIL FROM:<" + sender + ">";
  if (can_8bitmime) {
    // Only a message that needs it is declared 8-bit; this costs a first
    // read of the message, which is from the local spool.
    bool readable = true;
    bool eight_bit = message_has_8bit(message, readable);
    if (!readable) {
      quit(connection);
      return failed("cannot read the message");
    }
    if (eight_bit) mail_from += " BODY=8BITMIME";
  }
  if (!connection.send_line(mail_from, "MAIL FROM")) return failed("");
  auto mail_reply = connection.read_reply("MAIL FROM");
  if (!mail_reply) return failed("");
  if (!mail_reply->positive()) {
    abandon_transaction(connection);
    return failed("the target refused the sender: " + mail_reply->text());
  }

  for (const auto& recipient : recipients) {
    if (has_control_character(recipient)) {
      result.refused.push_back({recipient, "not sent: the address holds control characters"});
      continue;
    }
    if (!connection.send_line("RCPT TO:<" + recipient + ">", "RCPT TO")) return failed("");
    auto rcpt_reply = connection.read_reply("RCPT TO");
    if (!rcpt_reply) return failed("");
    if (rcpt_reply->positive()) {
      result.accepted.push_back(recipient);
    } else {
      result.refused.push_back({recipient, rcpt_reply->text()});
    }
  }
  if (result.accepted.empty()) {
    abandon_transaction(connection);
    return failed("the target accepted none of the recipients");
  }

  if (!connection.send_line("DATA", "DATA")) return failed("");
  auto data_reply = connection.read_reply("DATA");
  if (!data_reply) return failed("");
  if (data_reply->code != 354) {
    abandon_transaction(connection);
    return failed("the target refused DATA: " + data_reply->text());
  }

  DataEncoder encoder(connection);
  bool complete = message([&](std::string_view piece) { return encoder.write(piece); });
  if (connection.failed()) return failed("");
  if (!complete) {
    // Without the final "." the target discards the partial message when
    // the connection drops, which is what we want: never half a message.
    return failed("cannot read the message; the transfer was abandoned");
  }
  if (!encoder.finish()) return failed("");
  auto final_reply = connection.read_reply("the end of the message");
  if (!final_reply) return failed("");
  result.final_reply = final_reply->text();
  if (final_reply->code != 250) {
    quit(connection);
    return failed("the target did not accept the message: " + final_reply->text());
  }
  result.delivered = true;
  quit(connection);
  return result;
}

}  // namespace

ReleaseResult release_over_smtp(const SmtpTarget& target, const std::string& sender,
                                const std::vector<std::string>& recipients, const MessageProducer& message) {
  try {
    return release(target, sender, recipients, message);
  } catch (const std::exception& error) {
    // bad_alloc, or whatever the producer threw.
    ReleaseResult result;
    result.error = std::string("release failed: ") + error.what();
    return result;
  } catch (...) {
    ReleaseResult result;
    result.error = "release failed: unknown exception";
    return result;
  }
}

}  // namespace floodgate::quarantine
