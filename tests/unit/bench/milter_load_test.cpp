// The MTA-side protocol pieces of tests/bench/milter_load.cpp, without a socket.
#define MILTER_LOAD_NO_MAIN
#include "tests/bench/milter_load.cpp"

#include <gtest/gtest.h>
#include <libmilter/mfapi.h>  // SMFIF_* action flags
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace milter_load {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

Packet only_packet(const std::string& wire) {
  PacketReader reader;
  reader.append(wire);
  std::string error;
  auto packet = reader.next(&error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_TRUE(packet.has_value());
  std::string more_error;
  EXPECT_FALSE(reader.next(&more_error).has_value()) << "want exactly one packet";
  return packet.value_or(Packet{});
}

Negotiated negotiated_with(std::uint32_t protocol) {
  Negotiated n;
  n.version = 6;
  n.actions = SMFIF_ADDHDRS | SMFIF_QUARANTINE;
  n.protocol = protocol;
  return n;
}

TEST(MilterLoadFraming, LengthCountsCommandByteAndIsBigEndian) {
  EXPECT_EQ(frame('T', ""), bytes({0, 0, 0, 1, 'T'}));
  EXPECT_EQ(frame('B', "abc"), bytes({0, 0, 0, 4, 'B', 'a', 'b', 'c'}));
  EXPECT_EQ(frame('B', std::string(300, 'x')).substr(0, 4), bytes({0, 0, 1, 45}));
}

TEST(MilterLoadFraming, ReaderSplitsPacketsArrivingInAnyPieces) {
  const std::string wire = frame('h', std::string("X-A\0v\0", 6)) + frame('c', "") + frame('a', "");
  PacketReader reader;
  std::vector<Packet> packets;
  std::string error;
  for (char c : wire) {  // one byte at a time: the worst fragmentation
    reader.append(std::string_view(&c, 1));
    while (auto packet = reader.next(&error)) packets.push_back(*packet);
    ASSERT_TRUE(error.empty()) << error;
  }
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_EQ(packets[0].command, 'h');
  EXPECT_EQ(packets[0].data, std::string("X-A\0v\0", 6));
  EXPECT_EQ(packets[1].command, 'c');
  EXPECT_EQ(packets[2].command, 'a');
}

TEST(MilterLoadFraming, ReaderRefusesZeroAndHugeLengths) {
  for (const std::string& wire : {bytes({0, 0, 0, 0, 'c'}), bytes({0x7f, 0, 0, 0, 'c'})}) {
    PacketReader reader;
    reader.append(wire);
    std::string error;
    EXPECT_FALSE(reader.next(&error).has_value());
    EXPECT_NE(error.find("bad packet length"), std::string::npos) << "got error \"" << error << "\"";
  }
}

TEST(MilterLoadNegotiation, OffersWhatPostfix37Offers) {
  const Packet packet = only_packet(optneg_packet(k_protocol_version, k_offered_actions, k_offered_protocol));
  ASSERT_EQ(packet.command, SMFIC_OPTNEG);
  ASSERT_EQ(packet.data.size(), 12u);
  EXPECT_EQ(read_u32(packet.data, 0), 6u);
  EXPECT_EQ(read_u32(packet.data, 4), 0x1FFu);
  // MILTER8_V6_PROTO_MASK: every step and no-reply flag, SKIP, RCPT_REJ,
  // HDR_LEADSPC; not the MDS sizes.
  EXPECT_EQ(read_u32(packet.data, 8), 0x001FFFFFu);
}

TEST(MilterLoadNegotiation, SkippedStepsAreNotSentAndNoReplyStepsNotAwaited) {
  // floodgate's conversation: no EOH, no UNKNOWN; replies only at DATA and EOM.
  const Negotiated n =
      negotiated_with(SMFIP_NOUNKNOWN | SMFIP_NOEOH | SMFIP_RCPT_REJ | SMFIP_HDR_LEADSPC | SMFIP_NR_CONN |
                      SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_BODY);
  struct Case {
    Step step;
    bool sent;
    bool awaited;
  };
  for (const Case& c :
       {Case{Step::Connect, true, false}, Case{Step::Helo, true, false}, Case{Step::Mail, true, false},
        Case{Step::Rcpt, true, false}, Case{Step::Data, true, true}, Case{Step::Header, true, false},
        Case{Step::Eoh, false, false}, Case{Step::Body, true, false}, Case{Step::Unknown, false, false},
        Case{Step::Eom, true, true}}) {
    EXPECT_EQ(n.sends(c.step), c.sent) << "step " << static_cast<int>(c.step);
    EXPECT_EQ(n.awaits_reply(c.step), c.awaited) << "step " << static_cast<int>(c.step);
  }
  const Negotiated everything = negotiated_with(0);
  EXPECT_TRUE(everything.awaits_reply(Step::Connect));
  EXPECT_TRUE(everything.awaits_reply(Step::Header));
  const Negotiated no_body = negotiated_with(SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOCONNECT);
  EXPECT_FALSE(no_body.sends(Step::Body));
  EXPECT_FALSE(no_body.sends(Step::Header));
  EXPECT_FALSE(no_body.sends(Step::Connect));
}

TEST(MilterLoadNegotiation, ParsesReplyWithMacroListsAndRefusesWhatWasNotOffered) {
  std::string data;
  append_u32(data, 6);
  append_u32(data, SMFIF_ADDHDRS);
  append_u32(data, SMFIP_NOEOH | SMFIP_NR_HDR);
  append_u32(data, 2);  // SMFIM_ENVFROM
  append_cstring(data, "{mail_addr} {auth_authen}");
  std::string error;
  auto n = parse_optneg(Packet{SMFIC_OPTNEG, data}, &error);
  ASSERT_TRUE(n.has_value()) << error;
  EXPECT_EQ(n->protocol, static_cast<std::uint32_t>(SMFIP_NOEOH | SMFIP_NR_HDR));
  EXPECT_TRUE(n->wants_macro(SMFIC_MAIL, "{auth_authen}"));
  EXPECT_FALSE(n->wants_macro(SMFIC_MAIL, "{mail_host}"));
  EXPECT_TRUE(n->wants_macro(SMFIC_RCPT, "{rcpt_addr}")) << "no list for RCPT: every macro goes";

  std::string greedy;
  append_u32(greedy, 6);
  append_u32(greedy, 0);
  append_u32(greedy, SMFIP_MDS_1M);  // never offered
  EXPECT_FALSE(parse_optneg(Packet{SMFIC_OPTNEG, greedy}, &error).has_value());
  EXPECT_FALSE(parse_optneg(Packet{SMFIR_CONTINUE, ""}, &error).has_value());
  EXPECT_NE(error.find("negotiation"), std::string::npos) << "got error \"" << error << "\"";
}

TEST(MilterLoadMacros, PacketNamesItsCommandAndSkipsEmptyAndUnwantedMacros) {
  Negotiated n = negotiated_with(0);
  const Packet packet = only_packet(macro_packet(SMFIC_DATA, {{"i", "4F1A2"}, {"{empty}", ""}}, n));
  EXPECT_EQ(packet.command, SMFIC_MACRO);
  EXPECT_EQ(packet.data, std::string("Ti\0"
                                     "4F1A2\0",
                                     9));
  EXPECT_EQ(macro_packet(SMFIC_HELO, {{"{tls_version}", ""}}, n), "") << "no empty macro packet";
  n.macro_lists[4] = std::vector<std::string>{"{other}"};  // SMFIM_DATA
  EXPECT_EQ(macro_packet(SMFIC_DATA, {{"i", "4F1A2"}}, n), "");
}

TEST(MilterLoadPackets, ConnectCarriesNameFamilyPortAndAddress) {
  const Packet packet = only_packet(connect_packet("mx.example", "10.0.0.7", 2525));
  EXPECT_EQ(packet.command, SMFIC_CONNECT);
  EXPECT_EQ(packet.data, std::string("mx.example\0"
                                     "4",
                                     12) +
                             bytes({0x09, 0xDD}) + std::string("10.0.0.7\0", 9));
}

TEST(MilterLoadPackets, HeaderValueLosesOneLeadingSpaceUnlessFilterKeepsIt) {
  EXPECT_EQ(only_packet(header_packet("Subject", "  hi", false)).data, std::string("Subject\0 hi\0", 12));
  EXPECT_EQ(only_packet(header_packet("Subject", "  hi", true)).data, std::string("Subject\0  hi\0", 13));
}

TEST(MilterLoadReplies, ClassifiesFinalProgressAndModificationReplies) {
  EXPECT_EQ(classify_reply({SMFIR_CONTINUE, ""}), ReplyKind::Continue);
  EXPECT_EQ(classify_reply({SMFIR_PROGRESS, ""}), ReplyKind::Progress);
  EXPECT_EQ(classify_reply({SMFIR_ADDHEADER, "X\0v\0"}), ReplyKind::Modification);
  EXPECT_EQ(classify_reply({SMFIR_QUARANTINE, "why\0"}), ReplyKind::Quarantine);
  EXPECT_EQ(classify_reply({SMFIR_SKIP, ""}), ReplyKind::Skip);
  EXPECT_EQ(classify_reply({SMFIR_REPLYCODE, "451 4.7.1 later"}), ReplyKind::Tempfail);
  EXPECT_EQ(classify_reply({SMFIR_REPLYCODE, "550 5.7.1 no"}), ReplyKind::Reject);
  EXPECT_EQ(classify_reply({'Z', ""}), ReplyKind::Unknown);
  EXPECT_EQ(verdict_of(ReplyKind::Accept, true), Verdict::Quarantine);
  EXPECT_EQ(verdict_of(ReplyKind::Continue, false), Verdict::Accept);
  EXPECT_EQ(verdict_of(ReplyKind::Discard, false), Verdict::Discard);
}

TEST(MilterLoadMessages, ParsesMboxTextIntoHeadersSenderAndCrlfBody) {
  const Message m = parse_message(
      "From someone@x Thu Aug 22 13:17:22 2002\n"
      "From: \"Web, Form\" <web@shop.example>\n"
      "Subject: a\n\tfolded\n"
      "\n"
      "line 1\nline 2\n");
  ASSERT_EQ(m.headers.size(), 2u);
  EXPECT_EQ(m.headers[1].first, "Subject");
  EXPECT_EQ(m.headers[1].second, " a\n\tfolded");
  EXPECT_EQ(m.sender, "web@shop.example");
  EXPECT_EQ(m.body, "line 1\r\nline 2\r\n");
  EXPECT_EQ(address_of(" bare@addr.example (Bare)"), "bare@addr.example");
}

TEST(MilterLoadMessages, TruncatesBodyAtALineEndNearTheSize) {
  Message m = parse_message("From: a@b\n\n" + std::string(100, 'x') + "\n" + std::string(100, 'y') + "\n");
  truncate_to(m, 150);
  EXPECT_EQ(m.body, std::string(100, 'x') + "\r\n");
}

TEST(MilterLoadSockets, ParsesLibmilterSocketSyntax) {
  auto inet = parse_socket_spec("inet:8890@127.0.0.1");
  ASSERT_TRUE(inet.has_value());
  EXPECT_FALSE(inet->unix_socket);
  EXPECT_EQ(inet->port, "8890");
  EXPECT_EQ(inet->host, "127.0.0.1");
  auto local = parse_socket_spec("unix:/run/f.sock");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->path, "/run/f.sock");
  EXPECT_FALSE(parse_socket_spec("tcp:1@h").has_value());
  EXPECT_FALSE(parse_socket_spec("unix:").has_value());
}

TEST(MilterLoadWrites, BufferGoesOutOnlyWhenFullOrFlushed) {
  StreamWriteBuffer buffer(4096);
  std::vector<std::size_t> writes;
  auto write = [&](std::string_view bytes) { writes.push_back(bytes.size()); };
  buffer.append(std::string(100, 'a'), write);
  buffer.append(std::string(3996, 'b'), write);
  EXPECT_TRUE(writes.empty()) << "an exactly full buffer waits for the next byte, as vbuf_write does";
  buffer.append("c", write);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0], 4096u);
  EXPECT_EQ(buffer.pending(), 1u);
  buffer.flush(write);
  EXPECT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[1], 1u);
  buffer.flush(write);
  EXPECT_EQ(writes.size(), 2u) << "flushing an empty buffer writes nothing";
}

TEST(MilterLoadWrites, PacketLargerThanTheBufferGoesOutInBufferSizedWrites) {
  // A 65535-byte body chunk over a unix socket: the buffer is filled and
  // written out again and again, the tail stays for the next flush.
  StreamWriteBuffer buffer(4096);
  std::vector<std::size_t> writes;
  auto write = [&](std::string_view bytes) { writes.push_back(bytes.size()); };
  buffer.append(std::string(100, 'm'), write);
  buffer.append(frame(SMFIC_BODY, std::string(k_body_chunk_bytes, 'x')), write);
  const std::size_t total = 100 + 5 + k_body_chunk_bytes;
  ASSERT_EQ(writes.size(), total / 4096) << "got " << writes.size() << " writes";
  for (std::size_t size : writes) EXPECT_EQ(size, 4096u);
  EXPECT_EQ(buffer.pending(), total % 4096);
}

TEST(MilterLoadWrites, BufferIsVstreamSizeOrFourTimesTheTcpMss) {
  EXPECT_EQ(postfix_write_buffer_bytes(0), 4096u) << "unix socket";
  EXPECT_EQ(postfix_write_buffer_bytes(536), 4096u) << "MSS not above a quarter of the buffer";
  EXPECT_EQ(postfix_write_buffer_bytes(1460), 5840u);
  EXPECT_EQ(postfix_write_buffer_bytes(32741), 130964u) << "Linux loopback";
}

// A filter on a unix socket that negotiates floodgate's conversation (replies
// only at DATA and end-of-message, no EOH) and records, for each read(), the
// commands of the packets it got. It adds a header and accepts each message.
class RecordingFilter {
 public:
  static constexpr std::uint32_t k_protocol = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                                              SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NOEOH | SMFIP_NOUNKNOWN;

  RecordingFilter() {
    m_path = std::filesystem::temp_directory_path() /
             ("milter_load_test." + std::to_string(::getpid()) + "." + std::to_string(s_instances++) + ".sock");
    std::filesystem::remove(m_path);
    m_listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, m_path.c_str(), m_path.string().size() + 1);
    if (::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(m_listener, 1) != 0) {
      ADD_FAILURE() << "cannot listen on " << m_path << ": " << std::strerror(errno);
    }
    m_thread = std::thread([this] { serve(); });
  }
  ~RecordingFilter() {
    if (m_thread.joinable()) m_thread.join();
    ::close(m_listener);
    std::filesystem::remove(m_path);
  }

  std::string socket_spec() const { return "unix:" + m_path.string(); }
  // Joins the filter's thread (it ends at SMFIC_QUIT or when the peer closes).
  const std::vector<std::string>& reads() {
    if (m_thread.joinable()) m_thread.join();
    return m_reads;
  }
  std::size_t packets() {
    std::size_t n = 0;
    for (const auto& read : reads()) n += read.size();
    return n;
  }

 private:
  void reply(int fd, char command, std::string_view data) {
    const std::string packet = frame(command, data);
    ASSERT_EQ(::send(fd, packet.data(), packet.size(), MSG_NOSIGNAL), static_cast<ssize_t>(packet.size()));
  }

  void serve() {
    const int fd = ::accept(m_listener, nullptr, nullptr);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    timeval timeout{10, 0};  // a hung test fails instead of hanging
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    PacketReader reader;
    for (bool done = false; !done;) {
      std::string buffer(256 * 1024, '\0');
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) break;
      reader.append(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      std::string commands, error;
      while (auto packet = reader.next(&error)) {
        commands.push_back(packet->command);
        if (packet->command == SMFIC_OPTNEG) {
          std::string data;
          append_u32(data, 6);
          append_u32(data, SMFIF_ADDHDRS);
          append_u32(data, k_protocol);
          reply(fd, SMFIC_OPTNEG, data);
        } else if (packet->command == SMFIC_DATA) {
          reply(fd, SMFIR_CONTINUE, "");
        } else if (packet->command == SMFIC_BODYEOB) {
          reply(fd, SMFIR_ADDHEADER, std::string("X-Test\0yes\0", 11));
          reply(fd, SMFIR_ACCEPT, "");
        } else if (packet->command == SMFIC_QUIT) {
          done = true;
        }
      }
      EXPECT_TRUE(error.empty()) << error;
      m_reads.push_back(commands);
    }
    ::close(fd);
  }

  static inline int s_instances = 0;
  std::filesystem::path m_path;
  int m_listener = -1;
  std::thread m_thread;
  std::vector<std::string> m_reads;
};

struct ConversationRecord {
  Totals totals;
  std::vector<std::string> reads;  // per read() of the filter: the packets' commands
  std::size_t filter_packets = 0;
};

// Two messages on one connection, as milter_load sends them.
ConversationRecord converse(bool write_per_packet) {
  RecordingFilter filter;
  Options options;
  options.socket_text = filter.socket_spec();
  options.socket = *parse_socket_spec(options.socket_text);
  options.messages_per_session = 2;
  options.recipients = 2;
  options.timeout_seconds = 10;
  options.write_per_packet = write_per_packet;
  const std::vector<Message> corpus = {
      parse_message("From: a@b.example\nTo: c@d.example\nSubject: hello\n\nline 1\nline 2\n")};
  Schedule schedule;
  schedule.limit = 2;
  Session session(options, corpus, schedule, 0);
  ConversationRecord record;
  record.totals = session.run();
  record.reads = filter.reads();
  record.filter_packets = filter.packets();
  return record;
}

TEST(MilterLoadWrites, UnansweredPacketsRideInTheWriteOfTheNextAnsweredPacket) {
  const ConversationRecord record = converse(/*write_per_packet=*/false);
  ASSERT_EQ(record.totals.errors(), 0u) << record.totals.first_error;
  EXPECT_EQ(record.totals.verdicts[static_cast<std::size_t>(Verdict::Accept)], 2u);
  EXPECT_EQ(record.totals.modifications_by_kind[modification_index(SMFIR_ADDHEADER)], 2u);
  // One read per reply the MTA waits for, plus the closing ABORT + QUIT:
  // OPTNEG | macros CONNECT HELO macros MAIL macros RCPT x2 macros DATA |
  // HEADER x3 BODY macros EOM | ABORT macros MAIL ... DATA | HEADER x3 ... EOM |
  // ABORT QUIT.
  const std::vector<std::string> want = {"O", "DCHDMDRDRDT", "LLLBDE", "ADMDRDRDT", "LLLBDE", "AQ"};
  EXPECT_EQ(record.reads, want);
  EXPECT_EQ(record.totals.writes, want.size());
  EXPECT_EQ(record.totals.packets, record.filter_packets);
}

TEST(MilterLoadWrites, WritePerPacketWritesEveryPacketAlone) {
  const ConversationRecord record = converse(/*write_per_packet=*/true);
  ASSERT_EQ(record.totals.errors(), 0u) << record.totals.first_error;
  EXPECT_EQ(record.totals.verdicts[static_cast<std::size_t>(Verdict::Accept)], 2u);
  // The filter may still read several packets at once when it is slower than
  // the writer, so what is certain is the writer's side: one write each.
  EXPECT_EQ(record.filter_packets, 35u);
  EXPECT_EQ(record.totals.packets, record.filter_packets);
  EXPECT_EQ(record.totals.writes, record.filter_packets);
}

}  // namespace
}  // namespace milter_load

namespace milter_load {
namespace {

// --rate: message k starts k / rate seconds after the run began, whoever
// sends it; without a rate nothing waits.
TEST(MilterLoadSchedule, RateStartsMessageKAtKOverRate) {
  Schedule schedule;
  schedule.rate = 200;  // one every 5 ms
  schedule.start = std::chrono::steady_clock::now();
  schedule.wait_for_turn(10);
  const auto waited = std::chrono::steady_clock::now() - schedule.start;
  EXPECT_GE(waited, std::chrono::milliseconds(50));
  EXPECT_LT(waited, std::chrono::milliseconds(500));

  Schedule unpaced;
  unpaced.start = std::chrono::steady_clock::now();
  unpaced.wait_for_turn(1'000'000);
  EXPECT_LT(std::chrono::steady_clock::now() - unpaced.start, std::chrono::milliseconds(50));
}

}  // namespace
}  // namespace milter_load
