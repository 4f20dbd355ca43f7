// milter_load: a load generator that plays the MTA side of the milter
// protocol (version 6) against any milter socket, the way Postfix 3.7 does.
//
// SUMMARY
//   C concurrent sessions (one thread and one milter connection each), M
//   messages per connection, messages from a corpus of real mail with
//   generated envelopes (client addresses from a pool, recipients at varied
//   domains). Reports messages/s, latency from MAIL to the end-of-message
//   reply, verdict counts and errors; --json prints one JSON object.
//
// WHAT IT COPIES FROM POSTFIX (src/milter/milter8.c)
//   - Offers protocol version 6, every action and every protocol step flag
//     Postfix knows (MILTER8_V6_PROTO_MASK), then honours what the filter
//     negotiated: skipped steps are not sent, steps without replies
//     (SMFIP_NR_*) are not waited for; SMFIR_SETSYMLIST narrows the macros.
//   - One SMFIC_MACRO packet right before each command, with Postfix's
//     default macro names; no queue id "i" at MAIL (smtpd opens the queue file
//     only after the first accepted recipient).
//   - Writes as Postfix's VSTREAM does (src/util/vbuf.c, vstream.c): packets
//     are copied into a write buffer that goes out only when it is full or
//     right before a read of a reply (milter8 opens the stream
//     double-buffered: vstream_buf_get_ready flushes the write buffer before
//     each read). So the packets the filter does not answer (SMFIP_NR_*
//     steps), the SMFIC_MACRO packets and SMFIC_ABORT share one write with
//     the next packet that is answered; milter8_event calls this its "special
//     feature". The buffer is VSTREAM_BUFSIZE (4096) bytes, except on TCP,
//     where milter8_connect calls vstream_tweak_tcp: with an MSS above a
//     quarter of the buffer, the buffer becomes 4 x MSS (on Linux loopback,
//     an MSS of 32741 gives 130964 bytes). --write-per-packet writes every
//     packet alone instead: a naive MTA, to show the Nagle trap.
//   - No TCP_NODELAY (unless --nodelay), as Postfix sets none.
//   - Header values lose one leading space unless SMFIP_HDR_LEADSPC was
//     negotiated; the body goes with CRLF line ends in chunks of 65535 bytes;
//     SMFIC_ABORT after each transaction (smtpd's mail_reset), SMFIC_QUIT at
//     the end of the connection.
//
// LIMITS
//   A reject, tempfail or accept at CONNECT or HELO is counted as an
//   unexpected reply (an error), not as a verdict: this tool measures message
//   filtering, and such a filter would refuse every message of the session.
//   Addresses are IPv4 only.
//
// Built with -DMILTER_LOAD_NO_MAIN by tests/unit/bench so that the protocol
// pieces (framing, negotiation, macro packets, reply handling) are unit tested
// without a socket.
#include <arpa/inet.h>
#include <libmilter/mfdef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace milter_load {

// ---------------------------------------------------------------- protocol

constexpr std::uint32_t k_protocol_version = 6;
// Postfix offers every action it implements (SMFIF_ADDHDRS .. SMFIF_SETSYMLIST).
constexpr std::uint32_t k_offered_actions = SMFI_CURR_ACTS;
constexpr std::uint32_t k_no_send_mask = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT |
                                         SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOUNKNOWN |
                                         SMFIP_NODATA;
constexpr std::uint32_t k_no_reply_mask = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                                          SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY |
                                          SMFIP_NR_HDR;
// Postfix 3.7's MILTER8_V6_PROTO_MASK.
constexpr std::uint32_t k_offered_protocol =
    k_no_send_mask | SMFIP_SKIP | SMFIP_RCPT_REJ | k_no_reply_mask | SMFIP_HDR_LEADSPC;
constexpr std::size_t k_body_chunk_bytes = MILTER_CHUNK_SIZE;
// A reply longer than this is a broken peer, not a big header: Postfix refuses
// INT_MAX/2, we only ever expect small replies.
constexpr std::uint32_t k_max_reply_bytes = 16 * 1024 * 1024;

// The steps of one conversation, each with its "do not send" and "no reply" flag.
enum class Step { Connect, Helo, Mail, Rcpt, Data, Header, Eoh, Body, Unknown, Eom };

struct StepFlags {
  std::uint32_t no_send;
  std::uint32_t no_reply;
};

constexpr StepFlags flags_of(Step step) {
  switch (step) {
    case Step::Connect:
      return {SMFIP_NOCONNECT, SMFIP_NR_CONN};
    case Step::Helo:
      return {SMFIP_NOHELO, SMFIP_NR_HELO};
    case Step::Mail:
      return {SMFIP_NOMAIL, SMFIP_NR_MAIL};
    case Step::Rcpt:
      return {SMFIP_NORCPT, SMFIP_NR_RCPT};
    case Step::Data:
      return {SMFIP_NODATA, SMFIP_NR_DATA};
    case Step::Header:
      return {SMFIP_NOHDRS, SMFIP_NR_HDR};
    case Step::Eoh:
      return {SMFIP_NOEOH, SMFIP_NR_EOH};
    case Step::Body:
      return {SMFIP_NOBODY, SMFIP_NR_BODY};
    case Step::Unknown:
      return {SMFIP_NOUNKNOWN, SMFIP_NR_UNKN};
    case Step::Eom:
      return {0, 0};  // always sent, always answered
  }
  return {0, 0};
}

// The macro class (SMFIM_*) a SMFIR_SETSYMLIST entry names, by command.
constexpr int k_macro_class_count = 7;
constexpr int macro_class_of(char command) {
  switch (command) {
    case SMFIC_CONNECT:
      return 0;
    case SMFIC_HELO:
      return 1;
    case SMFIC_MAIL:
      return 2;
    case SMFIC_RCPT:
      return 3;
    case SMFIC_DATA:
      return 4;
    case SMFIC_BODYEOB:
      return 5;
    case SMFIC_EOH:
      return 6;
    default:
      return -1;
  }
}

struct Packet {
  char command = 0;
  std::string data;
};

// One packet on the wire: 4-byte big-endian length of command + data, command, data.
std::string frame(char command, std::string_view data) {
  const std::uint32_t length = htonl(static_cast<std::uint32_t>(data.size() + 1));
  std::string out(reinterpret_cast<const char*>(&length), 4);
  out.push_back(command);
  out.append(data);
  return out;
}

void append_u32(std::string& out, std::uint32_t value) {
  const std::uint32_t net = htonl(value);
  out.append(reinterpret_cast<const char*>(&net), 4);
}

std::uint32_t read_u32(std::string_view data, std::size_t offset) {
  std::uint32_t net = 0;
  std::memcpy(&net, data.data() + offset, 4);
  return ntohl(net);
}

void append_cstring(std::string& out, std::string_view text) {
  out.append(text);
  out.push_back('\0');
}

// Splits a byte stream into packets; bytes may arrive in any pieces.
class PacketReader {
 public:
  void append(std::string_view bytes) { m_buffer.append(bytes); }

  // The next complete packet, nothing if more bytes are needed; sets *error
  // (and returns nothing) on a length no milter sends.
  std::optional<Packet> next(std::string* error) {
    if (m_buffer.size() - m_offset < 4) return std::nullopt;
    const std::uint32_t length = read_u32(m_buffer, m_offset);
    if (length == 0 || length > k_max_reply_bytes) {
      *error = "bad packet length " + std::to_string(length);
      return std::nullopt;
    }
    if (m_buffer.size() - m_offset - 4 < length) return std::nullopt;
    Packet packet{m_buffer[m_offset + 4], m_buffer.substr(m_offset + 5, length - 1)};
    m_offset += 4 + length;
    if (m_offset == m_buffer.size()) {
      m_buffer.clear();
      m_offset = 0;
    }
    return packet;
  }

 private:
  std::string m_buffer;
  std::size_t m_offset = 0;
};

std::string optneg_packet(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol) {
  std::string data;
  append_u32(data, version);
  append_u32(data, actions);
  append_u32(data, protocol);
  return frame(SMFIC_OPTNEG, data);
}

// What the filter agreed to, from its SMFIC_OPTNEG reply.
struct Negotiated {
  std::uint32_t version = 0;
  std::uint32_t actions = 0;
  std::uint32_t protocol = 0;
  // Per macro class: the names the filter wants (SMFIR_SETSYMLIST), if it said.
  std::array<std::optional<std::vector<std::string>>, k_macro_class_count> macro_lists;

  bool sends(Step step) const { return (protocol & flags_of(step).no_send) == 0; }
  bool awaits_reply(Step step) const { return sends(step) && (protocol & flags_of(step).no_reply) == 0; }
  bool wants_macro(char command, std::string_view name) const {
    const int klass = macro_class_of(command);
    if (klass < 0 || !macro_lists[klass]) return true;
    const auto& names = *macro_lists[klass];
    return std::find(names.begin(), names.end(), name) != names.end();
  }
};

// Parses the filter's OPTNEG reply; the filter may ask only for what we
// offered (Postfix treats anything else as a configuration error).
std::optional<Negotiated> parse_optneg(const Packet& packet, std::string* error) {
  if (packet.command != SMFIC_OPTNEG || packet.data.size() < 12) {
    *error = "negotiation: want an OPTNEG reply of 12+ bytes, got '" + std::string(1, packet.command) +
             "' of " + std::to_string(packet.data.size());
    return std::nullopt;
  }
  Negotiated result;
  result.version = read_u32(packet.data, 0);
  result.actions = read_u32(packet.data, 4);
  result.protocol = read_u32(packet.data, 8);
  if (result.version < 2 || result.version > k_protocol_version) {
    *error = "negotiation: filter protocol version " + std::to_string(result.version);
    return std::nullopt;
  }
  if ((result.actions & ~k_offered_actions) != 0 || (result.protocol & ~k_offered_protocol) != 0) {
    *error = "negotiation: filter asked for actions/steps not offered";
    return std::nullopt;
  }
  // Then (class, "name name ...") pairs: the macros the filter wants per stage.
  std::size_t at = 12;
  while (at + 4 < packet.data.size()) {
    const std::uint32_t klass = read_u32(packet.data, at);
    at += 4;
    const std::size_t end = packet.data.find('\0', at);
    if (end == std::string::npos || klass >= k_macro_class_count) {
      *error = "negotiation: malformed macro list";
      return std::nullopt;
    }
    std::vector<std::string> names;
    std::istringstream words(packet.data.substr(at, end - at));
    for (std::string word; words >> word;) names.push_back(word);
    result.macro_lists[klass] = std::move(names);
    at = end + 1;
  }
  return result;
}

using Macros = std::vector<std::pair<std::string, std::string>>;  // wire name ("i", "{client_addr}") -> value

// SMFIC_MACRO for `command`: the command byte, then name\0value\0 pairs;
// empty when no macro is left (Postfix sends no empty macro packet).
std::string macro_packet(char command, const Macros& macros, const Negotiated& negotiated) {
  std::string data(1, command);
  for (const auto& [name, value] : macros) {
    if (value.empty() || !negotiated.wants_macro(command, name)) continue;
    append_cstring(data, name);
    append_cstring(data, value);
  }
  return data.size() == 1 ? std::string() : frame(SMFIC_MACRO, data);
}

std::string connect_packet(std::string_view client_name, std::string_view client_addr, std::uint16_t port) {
  std::string data;
  append_cstring(data, client_name);
  data.push_back(SMFIA_INET);
  const std::uint16_t net_port = htons(port);
  data.append(reinterpret_cast<const char*>(&net_port), 2);
  append_cstring(data, client_addr);
  return frame(SMFIC_CONNECT, data);
}

std::string argv_packet(char command, const std::vector<std::string>& argv) {
  std::string data;
  for (const auto& arg : argv) append_cstring(data, arg);
  return frame(command, data);
}

std::string header_packet(std::string_view name, std::string_view raw_value, bool keep_leading_space) {
  std::string data;
  append_cstring(data, name);
  // Postfix drops one leading space unless the filter asked to keep it.
  if (!keep_leading_space && !raw_value.empty() && raw_value.front() == ' ') raw_value.remove_prefix(1);
  append_cstring(data, raw_value);
  return frame(SMFIC_HEADER, data);
}

// What one reply packet means to the MTA.
enum class ReplyKind {
  Continue,
  Accept,
  Reject,
  Tempfail,
  Discard,
  Skip,      // final for the step
  Progress,  // keep waiting
  Modification,
  Quarantine,  // only at end-of-message, then keep waiting
  ConnectionFailure,
  Shutdown,
  Unknown
};

ReplyKind classify_reply(const Packet& packet) {
  switch (packet.command) {
    case SMFIR_CONTINUE:
      return ReplyKind::Continue;
    case SMFIR_ACCEPT:
      return ReplyKind::Accept;
    case SMFIR_REJECT:
      return ReplyKind::Reject;
    case SMFIR_TEMPFAIL:
      return ReplyKind::Tempfail;
    case SMFIR_DISCARD:
      return ReplyKind::Discard;
    case SMFIR_SKIP:
      return ReplyKind::Skip;
    case SMFIR_PROGRESS:
      return ReplyKind::Progress;
    case SMFIR_REPLYCODE:
      // "4xx ..." is a tempfail and "5xx ..." a reject, as Postfix maps it.
      if (!packet.data.empty() && packet.data[0] == '4') return ReplyKind::Tempfail;
      if (!packet.data.empty() && packet.data[0] == '5') return ReplyKind::Reject;
      return ReplyKind::Unknown;
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_DELRCPT:
    case SMFIR_CHGFROM:
    case SMFIR_REPLBODY:
      return ReplyKind::Modification;
    case SMFIR_QUARANTINE:
      return ReplyKind::Quarantine;
    case SMFIR_CONN_FAIL:
      return ReplyKind::ConnectionFailure;
    case SMFIR_SHUTDOWN:
      return ReplyKind::Shutdown;
    default:
      return ReplyKind::Unknown;
  }
}

// Verdicts counted per message.
enum class Verdict { Accept, Tempfail, Reject, Discard, Quarantine };
constexpr std::array<const char*, 5> k_verdict_names = {"accept", "tempfail", "reject", "discard",
                                                        "quarantine"};

// ---------------------------------------------------------------- messages

struct Message {
  std::vector<std::pair<std::string, std::string>> headers;  // name, raw value (leading space kept)
  std::string body;                                          // CRLF line ends
  std::string sender;                                        // from the From header
  std::size_t size = 0;                                      // bytes as read
};

// The address in a From header value: the last <...>, else the first word with an '@'.
std::string address_of(std::string_view value) {
  const auto open = value.rfind('<');
  const auto close = value.rfind('>');
  if (open != std::string_view::npos && close != std::string_view::npos && close > open + 1) {
    return std::string(value.substr(open + 1, close - open - 1));
  }
  std::istringstream words{std::string(value)};
  for (std::string word; words >> word;) {
    if (word.find('@') != std::string::npos) {
      word.erase(std::remove_if(word.begin(), word.end(),
                                [](char c) { return c == '"' || c == ',' || c == '(' || c == ')'; }),
                 word.end());
      return word;
    }
  }
  return {};
}

// Parses raw message text (LF or CRLF line ends, an optional mbox "From " line
// first) into what the MTA sends: headers, then the body with CRLF line ends.
Message parse_message(std::string_view text) {
  Message message;
  message.size = text.size();
  if (text.substr(0, 5) == "From ") {
    const auto eol = text.find('\n');
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
  }
  std::size_t at = 0;
  while (at < text.size()) {
    auto eol = text.find('\n', at);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(at, eol - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      at = eol + 1;
      break;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !message.headers.empty()) {
      // A folded header goes to the filter with its line breaks as "\n".
      message.headers.back().second.append("\n").append(line);
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
      message.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    } else {
      break;  // not a header: the body starts here (as Postfix's cleanup treats it)
    }
    at = eol + 1;
  }
  message.body.reserve(text.size() > at ? text.size() - at + 128 : 0);
  while (at < text.size()) {
    auto eol = text.find('\n', at);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(at, eol - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    message.body.append(line).append("\r\n");
    at = eol + 1;
  }
  for (const auto& [name, value] : message.headers) {
    if (strcasecmp(name.c_str(), "From") == 0) {
      message.sender = address_of(value);
      break;
    }
  }
  return message;
}

// Cuts the body at a line end so that the message is about `size` bytes.
void truncate_to(Message& message, std::size_t size) {
  std::size_t header_bytes = 0;
  for (const auto& [name, value] : message.headers) header_bytes += name.size() + value.size() + 3;
  if (header_bytes >= size) return;
  const std::size_t keep = size - header_bytes;
  if (message.body.size() <= keep) return;
  const auto cut = message.body.rfind("\r\n", keep);
  message.body.resize(cut == std::string::npos ? keep : cut + 2);
  message.size = header_bytes + message.body.size();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every *.json (with a "text" field) and *.eml under dir; with size > 0, the
// messages of 0.75x..1.25x that size, topped up with bigger ones cut to size
// when fewer than 100 fit, so runs compare messages of about the same size.
std::vector<Message> load_corpus(const std::filesystem::path& dir, std::size_t size) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    const auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".json" || ext == ".eml")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());  // the same order, hence the same run, every time
  std::vector<Message> fitting, bigger;
  for (const auto& file : files) {
    std::string text = read_file(file);
    if (file.extension() == ".json") {
      auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded() || !json.is_object() || !json.contains("text") || !json["text"].is_string()) {
        continue;  // file_list.json and other indexes
      }
      text = json["text"].get<std::string>();
    }
    Message message = parse_message(text);
    if (message.headers.empty()) continue;
    if (size == 0 || (message.size * 4 >= size * 3 && message.size * 4 <= size * 5)) {
      fitting.push_back(std::move(message));
    } else if (message.size > size) {
      bigger.push_back(std::move(message));
    }
  }
  for (auto& message : bigger) {
    if (fitting.size() >= 100) break;
    truncate_to(message, size);
    fitting.push_back(std::move(message));
  }
  return fitting;
}

// ---------------------------------------------------------------- envelopes

const std::array<const char*, 12> k_recipient_domains = {
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de",      "web.de",
    "orange.fr", "libero.it", "mail.ru",     "icloud.com",  "example.org", "example.net"};
const std::array<const char*, 10> k_local_parts = {"alice", "bob",   "carol", "dave", "erin",
                                                   "frank", "grace", "heidi", "ivan", "judy"};

struct Client {
  std::string address;  // 10.x.y.z: inside the outbound client networks of the shipped policy
  std::string name;     // "unknown" for a share, as for clients without reverse DNS
  std::string helo;
  std::uint16_t port;
  std::string sasl_user;  // empty: not authenticated
};

Client client_for(std::uint32_t index, std::uint32_t pool, double auth_share, std::mt19937& random) {
  const std::uint32_t n = index % std::max<std::uint32_t>(pool, 1);
  Client client;
  client.address = "10." + std::to_string((n >> 16) & 0xff) + "." + std::to_string((n >> 8) & 0xff) + "." +
                   std::to_string(n & 0xff);
  const bool has_name = n % 10 != 0;
  client.name = has_name ? "host" + std::to_string(n) + ".customer" + std::to_string(n % 37) + ".example.net"
                         : "unknown";
  client.helo = has_name ? client.name : "[" + client.address + "]";
  client.port = static_cast<std::uint16_t>(1024 + random() % 64000);
  if (std::uniform_real_distribution<double>(0, 1)(random) < auth_share) {
    client.sasl_user = "user" + std::to_string(n) + "@example.com";
  }
  return client;
}

std::vector<std::string> recipients_for(std::uint64_t message_index, int count) {
  std::vector<std::string> out;
  for (int r = 0; r < count; ++r) {
    const std::uint64_t k = message_index * 7 + static_cast<std::uint64_t>(r) * 13;
    out.push_back(std::string(k_local_parts[k % k_local_parts.size()]) + std::to_string(k % 997) + "@" +
                  k_recipient_domains[(message_index + static_cast<std::uint64_t>(r) * 5) %
                                      k_recipient_domains.size()]);
  }
  return out;
}

std::string domain_of(const std::string& address) {
  const auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : address.substr(at + 1);
}

// ---------------------------------------------------------------- transport

struct SocketSpec {
  bool unix_socket = false;
  std::string path;  // unix
  std::string host;  // inet
  std::string port;
};

// libmilter's syntax: inet:PORT@HOST, inet6:PORT@HOST, unix:/path (or local:/path).
std::optional<SocketSpec> parse_socket_spec(std::string_view spec) {
  SocketSpec out;
  if (spec.starts_with("unix:") || spec.starts_with("local:")) {
    out.unix_socket = true;
    out.path = std::string(spec.substr(spec.find(':') + 1));
    return out.path.empty() ? std::nullopt : std::optional(out);
  }
  if (spec.starts_with("inet:") || spec.starts_with("inet6:")) {
    spec.remove_prefix(spec.find(':') + 1);
    const auto at = spec.find('@');
    out.port = std::string(spec.substr(0, at));
    out.host = at == std::string_view::npos ? "127.0.0.1" : std::string(spec.substr(at + 1));
    return out.port.empty() ? std::nullopt : std::optional(out);
  }
  return std::nullopt;
}

// Postfix's VSTREAM_BUFSIZE.
constexpr std::size_t k_vstream_buffer_bytes = 4096;

// The size of Postfix's milter write buffer: VSTREAM_BUFSIZE, or on TCP what
// vstream_tweak_tcp makes of it: 4 x MSS when the MSS is above a quarter of
// the buffer ("some LINUX loopback TCP stacks report an MSS of 21845 ... Even
// with a VSTREAM buffer 2x the reported MSS size, performance would suck due
// to Nagle or delayed ACK delays"). mss 0: not TCP, or the kernel did not say.
std::size_t postfix_write_buffer_bytes(int mss) {
  if (mss <= 0 || static_cast<std::size_t>(mss) <= k_vstream_buffer_bytes / 4) return k_vstream_buffer_bytes;
  return static_cast<std::size_t>(mss) * 4;
}

// The write side of a VSTREAM, without the socket: bytes are copied into a
// buffer of fixed capacity; when the buffer is full and more bytes come, the
// whole buffer goes out as one write first (vbuf_write calls put_ready on a
// full buffer, vstream_fflush_some writes it all). A packet bigger than the
// buffer, such as a 65535-byte body chunk over a unix socket, is therefore
// not written directly: it goes out in capacity-sized writes as the buffer
// fills, and its tail waits in the buffer for the next flush.
class StreamWriteBuffer {
 public:
  explicit StreamWriteBuffer(std::size_t capacity) : m_capacity(capacity) { m_bytes.reserve(capacity); }

  // `write(std::string_view)` must write everything it is given.
  template <typename Write>
  void append(std::string_view bytes, Write&& write) {
    while (!bytes.empty()) {
      if (m_bytes.size() == m_capacity) flush(write);
      const std::size_t n = std::min(bytes.size(), m_capacity - m_bytes.size());
      m_bytes.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
  }

  template <typename Write>
  void flush(Write&& write) {
    if (m_bytes.empty()) return;
    write(std::string_view(m_bytes));
    m_bytes.clear();
  }

  std::size_t capacity() const { return m_capacity; }
  std::size_t pending() const { return m_bytes.size(); }

 private:
  std::size_t m_capacity;
  std::string m_bytes;
};

struct Options {
  SocketSpec socket;
  std::string socket_text;
  int concurrency = 1;
  int messages_per_session = 10;
  std::uint64_t messages = 0;   // 0: no limit (with --duration); 1000 when neither is given
  double duration_seconds = 0;  // 0: run until `messages`
  // Messages per second over all sessions, started on a fixed timetable
  // (message k at k / rate); 0: each session sends its next message as soon
  // as the last one is answered, which saturates the filter.
  double rate = 0;
  std::filesystem::path corpus;
  std::size_t size = 5120;
  int recipients = 3;
  std::uint32_t clients = 1000;
  double auth_share = 0.2;
  bool nodelay = false;
  bool write_per_packet = false;  // a naive MTA: one write per packet, no buffer
  bool json = false;
  double timeout_seconds = 30;
};

// ---------------------------------------------------------------- sessions

// The end-of-message replies that change the message, counted by kind (so a
// run can tell that a filter really added its headers or quarantined).
constexpr std::array<char, 9> k_modification_commands = {
    SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER, SMFIR_ADDRCPT,   SMFIR_ADDRCPT_PAR,
    SMFIR_DELRCPT,   SMFIR_CHGFROM,   SMFIR_REPLBODY,  SMFIR_QUARANTINE};
constexpr std::array<const char*, 9> k_modification_names = {
    "add_header",  "insert_header", "change_header", "add_rcpt", "add_rcpt_par",
    "delete_rcpt", "change_from",   "replace_body",  "quarantine"};
using ModificationCounts = std::array<std::uint64_t, k_modification_commands.size()>;

constexpr std::size_t modification_index(char command) {
  for (std::size_t i = 0; i < k_modification_commands.size(); ++i) {
    if (k_modification_commands[i] == command) return i;
  }
  return k_modification_commands.size();
}

struct Totals {
  std::array<std::uint64_t, 5> verdicts{};
  std::uint64_t connection_failures = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t unexpected_replies = 0;
  std::uint64_t modifications = 0;  // add/change header, recipients, ... and quarantine
  ModificationCounts modifications_by_kind{};
  std::uint64_t skips = 0;  // SMFIR_SKIP during the body
  std::uint64_t connections = 0;
  std::uint64_t writes = 0;            // write system calls to the filter
  std::uint64_t packets = 0;           // milter packets sent to the filter
  std::size_t write_buffer_bytes = 0;  // the Postfix-like buffer's size (per connection)
  std::vector<std::uint32_t> latencies_us;
  std::string first_error;

  void merge(const Totals& other) {
    for (std::size_t i = 0; i < verdicts.size(); ++i) verdicts[i] += other.verdicts[i];
    connection_failures += other.connection_failures;
    protocol_errors += other.protocol_errors;
    unexpected_replies += other.unexpected_replies;
    modifications += other.modifications;
    for (std::size_t i = 0; i < modifications_by_kind.size(); ++i) {
      modifications_by_kind[i] += other.modifications_by_kind[i];
    }
    skips += other.skips;
    connections += other.connections;
    writes += other.writes;
    packets += other.packets;
    write_buffer_bytes = std::max(write_buffer_bytes, other.write_buffer_bytes);
    latencies_us.insert(latencies_us.end(), other.latencies_us.begin(), other.latencies_us.end());
    if (first_error.empty()) first_error = other.first_error;
  }
  std::uint64_t errors() const { return connection_failures + protocol_errors + unexpected_replies; }
};

// A failed conversation: the connection is dropped, counted by kind.
struct ConversationError {
  enum Kind { Connection, Protocol, Unexpected } kind;
  std::string what;
};

class MilterConnection {
 public:
  MilterConnection(const Options& options) : m_options(options), m_out(k_vstream_buffer_bytes) {}
  ~MilterConnection() {
    if (m_fd >= 0) ::close(m_fd);
  }
  MilterConnection(const MilterConnection&) = delete;
  MilterConnection& operator=(const MilterConnection&) = delete;

  void open() {
    const auto& spec = m_options.socket;
    if (spec.unix_socket) {
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      if (spec.path.size() >= sizeof(address.sun_path))
        fail(ConversationError::Connection, "socket path too long");
      std::memcpy(address.sun_path, spec.path.c_str(), spec.path.size() + 1);
      m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (m_fd < 0 || ::connect(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        fail(ConversationError::Connection,
             std::string("connect ") + spec.path + ": " + std::strerror(errno));
      }
    } else {
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      if (::getaddrinfo(spec.host.c_str(), spec.port.c_str(), &hints, &found) != 0 || found == nullptr) {
        fail(ConversationError::Connection, "cannot resolve " + spec.host);
      }
      m_fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int rc = m_fd < 0 ? -1 : ::connect(m_fd, found->ai_addr, found->ai_addrlen);
      const int saved = errno;
      ::freeaddrinfo(found);
      if (rc != 0)
        fail(ConversationError::Connection, "connect " + m_options.socket_text + ": " + std::strerror(saved));
      if (m_options.nodelay) {
        const int one = 1;
        ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      // vstream_tweak_tcp, right after the connect as in milter8_connect.
      int mss = 0;
      socklen_t mss_length = sizeof(mss);
      if (::getsockopt(m_fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &mss_length) != 0) mss = 0;
      m_out = StreamWriteBuffer(postfix_write_buffer_bytes(mss));
    }
    timeval timeout{};
    timeout.tv_sec = static_cast<time_t>(m_options.timeout_seconds);
    timeout.tv_usec =
        static_cast<suseconds_t>((m_options.timeout_seconds - static_cast<double>(timeout.tv_sec)) * 1e6);
    ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(m_fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  }

  // Queues one packet (nothing for an empty one: a macro packet left with
  // no macro). Postfix-like: into the write buffer, which goes out when full;
  // --write-per-packet: written at once.
  void send(std::string_view packet) {
    if (packet.empty()) return;
    ++m_packets;
    if (m_options.write_per_packet) {
      write_all(packet);
    } else {
      m_out.append(packet, [this](std::string_view bytes) { write_all(bytes); });
    }
  }

  // Writes what is buffered: before a read, and before closing (SMFIC_QUIT,
  // as vstream_fclose flushes).
  void flush() {
    m_out.flush([this](std::string_view bytes) { write_all(bytes); });
  }

  Packet receive() {
    for (;;) {
      std::string error;
      if (auto packet = m_reader.next(&error)) return *packet;
      if (!error.empty()) fail(ConversationError::Protocol, error);
      // Only now, about to block on a read, does the buffer go out.
      flush();
      char buffer[4096];
      const ssize_t n = ::recv(m_fd, buffer, sizeof(buffer), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fail(ConversationError::Connection, n == 0 ? "filter closed the connection"
                                            : (errno == EAGAIN || errno == EWOULDBLOCK)
                                                ? "timed out waiting for a reply"
                                                : std::string("read: ") + std::strerror(errno));
      }
      m_reader.append(std::string_view(buffer, static_cast<std::size_t>(n)));
    }
  }

  [[noreturn]] static void fail(ConversationError::Kind kind, std::string what) {
    throw ConversationError{kind, std::move(what)};
  }

  std::uint64_t writes() const { return m_writes; }
  std::uint64_t packets() const { return m_packets; }
  std::size_t write_buffer_bytes() const { return m_out.capacity(); }

 private:
  void write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        fail(ConversationError::Connection,
             std::string("write: ") + (n < 0 ? std::strerror(errno) : "closed"));
      }
      ++m_writes;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  const Options& m_options;
  int m_fd = -1;
  PacketReader m_reader;
  StreamWriteBuffer m_out;
  std::uint64_t m_writes = 0;
  std::uint64_t m_packets = 0;
};

// How a step ended, for the message.
struct StepResult {
  ReplyKind kind = ReplyKind::Continue;
  bool quarantined = false;
  std::uint32_t modifications = 0;
  ModificationCounts modifications_by_kind{};
};

// Waits for the final reply of `step`: progress is skipped, modifications and
// quarantine are allowed only at end-of-message, skip only in the body.
StepResult await_reply(MilterConnection& connection, Step step, const Negotiated& negotiated) {
  StepResult result;
  for (;;) {
    const Packet packet = connection.receive();
    const ReplyKind kind = classify_reply(packet);
    switch (kind) {
      case ReplyKind::Progress:
        continue;
      case ReplyKind::Modification:
      case ReplyKind::Quarantine:
        if (step != Step::Eom) {
          MilterConnection::fail(
              ConversationError::Protocol,
              "modification '" + std::string(1, packet.command) + "' before end-of-message");
        }
        if (kind == ReplyKind::Quarantine) result.quarantined = true;
        ++result.modifications;
        ++result.modifications_by_kind.at(modification_index(packet.command));
        continue;
      case ReplyKind::Skip:
        if (step != Step::Body || (negotiated.protocol & SMFIP_SKIP) == 0) {
          MilterConnection::fail(ConversationError::Protocol,
                                 "SMFIR_SKIP outside the body or not negotiated");
        }
        result.kind = kind;
        return result;
      case ReplyKind::Continue:
      case ReplyKind::Accept:
      case ReplyKind::Reject:
      case ReplyKind::Tempfail:
      case ReplyKind::Discard:
        result.kind = kind;
        return result;
      case ReplyKind::ConnectionFailure:
      case ReplyKind::Shutdown:
        MilterConnection::fail(ConversationError::Unexpected,
                               "filter ended the connection ('" + std::string(1, packet.command) + "')");
      case ReplyKind::Unknown:
        MilterConnection::fail(ConversationError::Protocol,
                               "unknown reply '" + std::string(1, packet.command) + "'");
    }
  }
}

Verdict verdict_of(ReplyKind kind, bool quarantined) {
  if (quarantined && (kind == ReplyKind::Accept || kind == ReplyKind::Continue)) return Verdict::Quarantine;
  switch (kind) {
    case ReplyKind::Reject:
      return Verdict::Reject;
    case ReplyKind::Tempfail:
      return Verdict::Tempfail;
    case ReplyKind::Discard:
      return Verdict::Discard;
    default:
      return Verdict::Accept;
  }
}

// Shared by all sessions: which message comes next, and when to stop.
struct Schedule {
  std::atomic<std::uint64_t> next_message{0};
  std::uint64_t limit = 0;  // 0: no limit (duration only)
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  double rate = 0;  // Options::rate
  std::chrono::steady_clock::time_point start;

  // With a rate: sleeps until message `index` is due. Its latency is still
  // measured from its MAIL: a filter slower than the rate shows as a lower
  // messages/s than asked, not as latency.
  void wait_for_turn(std::uint64_t index) const {
    if (rate <= 0) return;
    std::this_thread::sleep_until(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double>(static_cast<double>(index) / rate)));
  }

  std::optional<std::uint64_t> claim() {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    const std::uint64_t index = next_message.fetch_add(1);
    if (limit != 0 && index >= limit) return std::nullopt;
    return index;
  }
};

class Session {
 public:
  Session(const Options& options, const std::vector<Message>& corpus, Schedule& schedule, int id)
      : m_options(options),
        m_corpus(corpus),
        m_schedule(schedule),
        m_id(id),
        m_random(static_cast<unsigned>(id) * 2654435761u) {}

  Totals run() {
    std::uint32_t connection_number = 0;
    std::optional<std::uint64_t> pending = m_schedule.claim();
    while (pending) {
      MilterConnection connection(m_options);
      const Client client = client_for(static_cast<std::uint32_t>(m_id) * 7919u + connection_number++,
                                       m_options.clients, m_options.auth_share, m_random);
      std::uint64_t index = *pending;
      try {
        connection.open();
        ++m_totals.connections;
        const Negotiated negotiated = negotiate(connection);
        greet(connection, negotiated, client);
        for (int sent = 0;;) {
          m_schedule.wait_for_turn(index);
          run_message(connection, negotiated, client, m_corpus[index % m_corpus.size()], index);
          pending = ++sent < m_options.messages_per_session ? m_schedule.claim() : std::nullopt;
          if (!pending) break;
          index = *pending;
        }
        connection.send(frame(SMFIC_QUIT, {}));
        connection.flush();
        pending = m_schedule.claim();
      } catch (const ConversationError& error) {
        count(error);
        // The message in flight is lost, as Postfix would apply its default
        // action; the next one starts on a new connection after a short pause
        // so that a dead filter does not spin this thread.
        std::this_thread::sleep_for(
            std::chrono::milliseconds(error.kind == ConversationError::Connection ? 50 : 0));
        pending = m_schedule.claim();
      }
      m_totals.writes += connection.writes();
      m_totals.packets += connection.packets();
      m_totals.write_buffer_bytes = std::max(m_totals.write_buffer_bytes, connection.write_buffer_bytes());
    }
    return std::move(m_totals);
  }

 private:
  void count(const ConversationError& error) {
    switch (error.kind) {
      case ConversationError::Connection:
        ++m_totals.connection_failures;
        break;
      case ConversationError::Protocol:
        ++m_totals.protocol_errors;
        break;
      case ConversationError::Unexpected:
        ++m_totals.unexpected_replies;
        break;
    }
    if (m_totals.first_error.empty()) m_totals.first_error = error.what;
  }

  Negotiated negotiate(MilterConnection& connection) {
    connection.send(optneg_packet(k_protocol_version, k_offered_actions, k_offered_protocol));
    std::string error;
    auto negotiated = parse_optneg(connection.receive(), &error);
    if (!negotiated) MilterConnection::fail(ConversationError::Protocol, error);
    return *negotiated;
  }

  // Sends a step's macros and packet, and waits for the reply if one is due.
  StepResult step(MilterConnection& connection, const Negotiated& negotiated, Step which, char command,
                  const Macros& macros, const std::string& packet) {
    if (!negotiated.sends(which)) return {};
    connection.send(macro_packet(command, macros, negotiated));
    connection.send(packet);
    if (!negotiated.awaits_reply(which)) return {};
    return await_reply(connection, which, negotiated);
  }

  void greet(MilterConnection& connection, const Negotiated& negotiated, const Client& client) {
    // Postfix's milter_connect_macros, plus the client macros a filter may ask for.
    const Macros connect_macros = {{"j", "relay.bench.example"},
                                   {"{daemon_name}", "relay.bench.example"},
                                   {"{daemon_addr}", "127.0.0.1"},
                                   {"v", "Postfix 3.7.11"},
                                   {"_", client.name + " [" + client.address + "]"},
                                   {"{client_addr}", client.address},
                                   {"{client_name}", client.name},
                                   {"{client_ptr}", client.name},
                                   {"{client_port}", std::to_string(client.port)},
                                   {"{if_name}", "relay.bench.example"},
                                   {"{if_addr}", "127.0.0.1"}};
    // Postfix gives the filter "[addr]" for a client without a name (Sendmail's form).
    const std::string connect_name = client.name == "unknown" ? "[" + client.address + "]" : client.name;
    StepResult result = step(connection, negotiated, Step::Connect, SMFIC_CONNECT, connect_macros,
                             connect_packet(connect_name, client.address, client.port));
    if (result.kind != ReplyKind::Continue) {
      MilterConnection::fail(ConversationError::Unexpected,
                             "filter refused or accepted the connection at CONNECT");
    }
    // No TLS: the HELO macros ({tls_version}, {cipher}, ...) have no values, so none go.
    result = step(connection, negotiated, Step::Helo, SMFIC_HELO, {}, argv_packet(SMFIC_HELO, {client.helo}));
    if (result.kind != ReplyKind::Continue) {
      MilterConnection::fail(ConversationError::Unexpected,
                             "filter refused or accepted the connection at HELO");
    }
  }

  void run_message(MilterConnection& connection, const Negotiated& negotiated, const Client& client,
                   const Message& message, std::uint64_t index) {
    const std::string sender =
        message.sender.empty() ? "sender" + std::to_string(index % 500) + "@bench.example" : message.sender;
    const auto recipients = recipients_for(index, m_options.recipients);
    char queue_id[24];
    std::snprintf(queue_id, sizeof(queue_id), "%03X%08llX", static_cast<unsigned>(m_id) & 0xfff,
                  static_cast<unsigned long long>(index));
    const auto started = std::chrono::steady_clock::now();
    auto finish = [&](ReplyKind kind, bool quarantined) {
      const auto elapsed =
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
      m_totals.latencies_us.push_back(
          static_cast<std::uint32_t>(std::min<long long>(elapsed.count(), UINT32_MAX)));
      ++m_totals.verdicts[static_cast<std::size_t>(verdict_of(kind, quarantined))];
      // smtpd's mail_reset ends every transaction with an abort to the filter.
      connection.send(frame(SMFIC_ABORT, {}));
    };

    Macros mail_macros = {
        {"{mail_addr}", sender}, {"{mail_host}", domain_of(sender)}, {"{mail_mailer}", "smtp"}};
    if (!client.sasl_user.empty()) {
      mail_macros.insert(mail_macros.begin(),
                         {{"{auth_type}", "PLAIN"}, {"{auth_authen}", client.sasl_user}});
    }
    StepResult result =
        step(connection, negotiated, Step::Mail, SMFIC_MAIL, mail_macros,
             argv_packet(SMFIC_MAIL, {"<" + sender + ">", "SIZE=" + std::to_string(message.size)}));
    if (result.kind != ReplyKind::Continue) return finish(result.kind, false);

    int accepted_recipients = 0;
    for (std::size_t r = 0; r < recipients.size(); ++r) {
      // The queue file (and so "i") exists once the first recipient was accepted.
      Macros rcpt_macros = {{"{rcpt_addr}", recipients[r]},
                            {"{rcpt_host}", domain_of(recipients[r])},
                            {"{rcpt_mailer}", "smtp"}};
      if (r > 0) rcpt_macros.insert(rcpt_macros.begin(), {"i", queue_id});
      result = step(connection, negotiated, Step::Rcpt, SMFIC_RCPT, rcpt_macros,
                    argv_packet(SMFIC_RCPT, {"<" + recipients[r] + ">"}));
      if (result.kind == ReplyKind::Accept || result.kind == ReplyKind::Discard)
        return finish(result.kind, false);
      if (result.kind == ReplyKind::Continue) ++accepted_recipients;
    }
    if (accepted_recipients == 0) return finish(ReplyKind::Reject, false);

    const Macros queue_id_macro = {{"i", queue_id}};
    result = step(connection, negotiated, Step::Data, SMFIC_DATA, queue_id_macro, frame(SMFIC_DATA, {}));
    if (result.kind != ReplyKind::Continue) return finish(result.kind, false);

    const bool keep_space = (negotiated.protocol & SMFIP_HDR_LEADSPC) != 0;
    for (const auto& [name, value] : message.headers) {
      result = step(connection, negotiated, Step::Header, SMFIC_HEADER, {},
                    header_packet(name, value, keep_space));
      if (result.kind != ReplyKind::Continue) return finish(result.kind, false);
    }
    result = step(connection, negotiated, Step::Eoh, SMFIC_EOH, queue_id_macro, frame(SMFIC_EOH, {}));
    if (result.kind != ReplyKind::Continue) return finish(result.kind, false);

    for (std::size_t at = 0; at < message.body.size(); at += k_body_chunk_bytes) {
      result = step(connection, negotiated, Step::Body, SMFIC_BODY, {},
                    frame(SMFIC_BODY, std::string_view(message.body).substr(at, k_body_chunk_bytes)));
      if (result.kind == ReplyKind::Skip) {
        ++m_totals.skips;
        break;
      }
      if (result.kind != ReplyKind::Continue) return finish(result.kind, false);
    }
    result = step(connection, negotiated, Step::Eom, SMFIC_BODYEOB, queue_id_macro, frame(SMFIC_BODYEOB, {}));
    m_totals.modifications += result.modifications;
    for (std::size_t i = 0; i < result.modifications_by_kind.size(); ++i) {
      m_totals.modifications_by_kind[i] += result.modifications_by_kind[i];
    }
    finish(result.kind, result.quarantined);
  }

  const Options& m_options;
  const std::vector<Message>& m_corpus;
  Schedule& m_schedule;
  int m_id;
  std::mt19937 m_random;
  Totals m_totals;
};

// ---------------------------------------------------------------- report

std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(fraction * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

nlohmann::json report(const Options& options, Totals& totals, double seconds, std::size_t corpus_messages) {
  std::sort(totals.latencies_us.begin(), totals.latencies_us.end());
  const auto& latencies = totals.latencies_us;
  nlohmann::json verdicts = nlohmann::json::object();
  nlohmann::json modifications = nlohmann::json::object();
  for (std::size_t i = 0; i < totals.modifications_by_kind.size(); ++i) {
    modifications[k_modification_names[i]] = totals.modifications_by_kind[i];
  }
  std::uint64_t messages = 0;
  for (std::size_t i = 0; i < totals.verdicts.size(); ++i) {
    verdicts[k_verdict_names[i]] = totals.verdicts[i];
    messages += totals.verdicts[i];
  }
  return {
      {"socket", options.socket_text},
      {"concurrency", options.concurrency},
      {"rate", options.rate},
      {"messages_per_session", options.messages_per_session},
      {"recipients", options.recipients},
      {"size", options.size},
      {"corpus_messages", corpus_messages},
      {"nodelay", options.nodelay},
      {"write_mode", options.write_per_packet ? "per-packet" : "postfix"},
      {"write_buffer_bytes", options.write_per_packet ? 0 : totals.write_buffer_bytes},
      {"messages", messages},
      {"seconds", seconds},
      {"messages_per_second", seconds > 0 ? static_cast<double>(messages) / seconds : 0.0},
      {"latency_us",
       {{"p50", percentile(latencies, 0.50)},
        {"p90", percentile(latencies, 0.90)},
        {"p99", percentile(latencies, 0.99)},
        {"max", latencies.empty() ? 0 : latencies.back()}}},
      {"verdicts", verdicts},
      {"modifications", totals.modifications},
      {"modifications_by_kind", modifications},
      {"packets_sent", totals.packets},
      {"writes", totals.writes},
      {"body_skips", totals.skips},
      {"connections", totals.connections},
      {"errors",
       {{"total", totals.errors()},
        {"connection_failures", totals.connection_failures},
        {"protocol_errors", totals.protocol_errors},
        {"unexpected_replies", totals.unexpected_replies},
        {"first", totals.first_error}}},
  };
}

void print_text(const nlohmann::json& r) {
  const auto& l = r["latency_us"];
  const auto& v = r["verdicts"];
  const auto& e = r["errors"];
  std::printf("%s: %llu messages in %.2f s, %.1f msg/s, concurrency %d\n",
              r["socket"].get<std::string>().c_str(),
              static_cast<unsigned long long>(r["messages"].get<std::uint64_t>()), r["seconds"].get<double>(),
              r["messages_per_second"].get<double>(), r["concurrency"].get<int>());
  std::printf("latency MAIL..end-of-message reply (us): p50 %u  p90 %u  p99 %u  max %u\n",
              l["p50"].get<unsigned>(), l["p90"].get<unsigned>(), l["p99"].get<unsigned>(),
              l["max"].get<unsigned>());
  std::printf("verdicts: accept %llu  tempfail %llu  reject %llu  discard %llu  quarantine %llu\n",
              static_cast<unsigned long long>(v["accept"].get<std::uint64_t>()),
              static_cast<unsigned long long>(v["tempfail"].get<std::uint64_t>()),
              static_cast<unsigned long long>(v["reject"].get<std::uint64_t>()),
              static_cast<unsigned long long>(v["discard"].get<std::uint64_t>()),
              static_cast<unsigned long long>(v["quarantine"].get<std::uint64_t>()));
  std::printf("modifications: %llu", static_cast<unsigned long long>(r["modifications"].get<std::uint64_t>()));
  const char* separator = " (";
  for (const auto& [name, count] : r["modifications_by_kind"].items()) {
    if (count.get<std::uint64_t>() == 0) continue;
    std::printf("%s%s %llu", separator, name.c_str(), static_cast<unsigned long long>(count.get<std::uint64_t>()));
    separator = ", ";
  }
  std::printf("%s\n", separator[0] == ',' ? ")" : "");
  std::printf("writes: %llu for %llu packets (%s%s)\n",
              static_cast<unsigned long long>(r["writes"].get<std::uint64_t>()),
              static_cast<unsigned long long>(r["packets_sent"].get<std::uint64_t>()),
              r["write_mode"].get<std::string>().c_str(),
              r["write_mode"].get<std::string>() == "postfix"
                  ? (", buffer " + std::to_string(r["write_buffer_bytes"].get<std::size_t>()) + " bytes").c_str()
                  : "");
  std::printf(
      "errors: %llu (connection %llu, protocol %llu, unexpected reply %llu)%s%s\n",
      static_cast<unsigned long long>(e["total"].get<std::uint64_t>()),
      static_cast<unsigned long long>(e["connection_failures"].get<std::uint64_t>()),
      static_cast<unsigned long long>(e["protocol_errors"].get<std::uint64_t>()),
      static_cast<unsigned long long>(e["unexpected_replies"].get<std::uint64_t>()),
      e["first"].get<std::string>().empty() ? "" : "; first: ", e["first"].get<std::string>().c_str());
}

}  // namespace milter_load

#ifndef MILTER_LOAD_NO_MAIN

namespace {

constexpr const char* k_usage =
    "usage: milter_load --socket inet:PORT@HOST|unix:/path --corpus DIR\n"
    "         [--concurrency C (1)] [--messages-per-session M (10)] [--messages N (1000 without "
    "--duration)]\n"
    "         [--duration S] [--rate MSG_PER_S (0: as fast as answered)]\n"
    "         [--size BYTES (5120; 0: as they are)] [--recipients R (3)]\n"
    "         [--clients K (1000)] [--auth-share F (0.2)] [--nodelay] [--write-per-packet]\n"
    "         [--timeout S (30)] [--json]\n"
    "  --write-per-packet: one write per packet, not Postfix's buffered writes (a naive MTA;\n"
    "  shows the Nagle trap)\n";

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr, "milter_load: %s\n%s", problem.c_str(), k_usage);
  std::exit(2);
}

milter_load::Options parse_options(int argc, char** argv) {
  milter_load::Options options;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto number = [&](int& i) -> double {
    const std::string text = value(i);
    char* end = nullptr;
    const double n = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || n < 0) usage("bad number: " + text);
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--socket") {
      options.socket_text = value(i);
      auto spec = milter_load::parse_socket_spec(options.socket_text);
      if (!spec) usage("bad socket " + options.socket_text);
      options.socket = *spec;
    } else if (arg == "--corpus") {
      options.corpus = value(i);
    } else if (arg == "--concurrency") {
      options.concurrency = static_cast<int>(number(i));
    } else if (arg == "--messages-per-session") {
      options.messages_per_session = static_cast<int>(number(i));
    } else if (arg == "--messages") {
      options.messages = static_cast<std::uint64_t>(number(i));
    } else if (arg == "--duration") {
      options.duration_seconds = number(i);
    } else if (arg == "--rate") {
      options.rate = number(i);
    } else if (arg == "--size") {
      options.size = static_cast<std::size_t>(number(i));
    } else if (arg == "--recipients") {
      options.recipients = static_cast<int>(number(i));
    } else if (arg == "--clients") {
      options.clients = static_cast<std::uint32_t>(number(i));
    } else if (arg == "--auth-share") {
      options.auth_share = number(i);
    } else if (arg == "--timeout") {
      options.timeout_seconds = number(i);
    } else if (arg == "--nodelay") {
      options.nodelay = true;
    } else if (arg == "--write-per-packet") {
      options.write_per_packet = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (options.socket_text.empty()) usage("--socket is required");
  if (options.corpus.empty()) usage("--corpus is required");
  if (options.rate < 0) usage("--rate must not be negative");
  if (options.concurrency < 1 || options.messages_per_session < 1 || options.recipients < 1 ||
      options.clients < 1 || options.timeout_seconds <= 0) {
    usage("--concurrency, --messages-per-session, --recipients, --clients and --timeout must be positive");
  }
  if (options.messages == 0 && options.duration_seconds == 0) options.messages = 1000;
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace milter_load;
  const Options options = parse_options(argc, argv);
  std::vector<Message> corpus;
  try {
    corpus = load_corpus(options.corpus, options.size);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "milter_load: cannot read corpus %s: %s\n", options.corpus.c_str(), error.what());
    return 2;
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "milter_load: no usable message in %s (*.json with \"text\", *.eml)\n",
                 options.corpus.c_str());
    return 2;
  }
  Schedule schedule;
  schedule.limit = options.messages;
  schedule.rate = options.rate;
  const auto started = std::chrono::steady_clock::now();
  schedule.start = started;
  if (options.duration_seconds > 0) {
    schedule.deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(options.duration_seconds));
  }
  std::vector<Totals> results(static_cast<std::size_t>(options.concurrency));
  std::vector<std::thread> threads;
  for (int id = 0; id < options.concurrency; ++id) {
    threads.emplace_back([&, id] {
      Session session(options, corpus, schedule, id);
      results[static_cast<std::size_t>(id)] = session.run();
    });
  }
  for (auto& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  Totals totals;
  for (const auto& result : results) totals.merge(result);
  const auto summary = report(options, totals, seconds, corpus.size());
  if (options.json) {
    std::printf("%s\n", summary.dump().c_str());
  } else {
    print_text(summary);
  }
  return totals.errors() == 0 ? 0 : 1;
}

#endif  // MILTER_LOAD_NO_MAIN
