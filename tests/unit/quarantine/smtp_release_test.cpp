// release_over_smtp() against a scripted fake SMTP server on a loopback
// port: what goes on the wire, byte for byte, and how every kind of refusal
// or failure of the target comes back in ReleaseResult.
#include "quarantine/smtp_release.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_smtp_server.hpp"

namespace floodgate::quarantine {
namespace {

using namespace std::chrono_literals;

using testing::FakeSmtpServer;
using testing::FakeSmtpSession;

SmtpTarget target_for(const FakeSmtpServer& server, std::chrono::milliseconds timeout = 5s) {
  SmtpTarget target;
  target.host = "127.0.0.1";
  target.port = server.port();
  target.helo_name = "release.test";
  target.timeout = timeout;
  return target;
}

// A producer handing over the message in exactly these pieces.
MessageProducer pieces(std::vector<std::string> parts) {
  return [parts = std::move(parts)](const std::function<bool(std::string_view)>& write) {
    for (const auto& part : parts) {
      if (!write(part)) return false;
    }
    return true;
  };
}

// A well-behaved target: greets, offers 8BITMIME in a multi-line EHLO reply,
// answers RCPT TO from `rcpt_replies` in order, takes the data.
FakeSmtpServer::Script obliging_target(std::vector<std::string> rcpt_replies,
                                       std::string final_reply = "250 2.0.0 Ok: queued as 4XyZ") {
  return [rcpt_replies = std::move(rcpt_replies), final_reply](FakeSmtpSession& session) {
    session.reply("220 sink.test ESMTP");
    session.command();  // EHLO
    session.reply("250-sink.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 DSN");
    session.command();  // MAIL
    session.reply("250 2.1.0 Ok");
    for (const auto& rcpt_reply : rcpt_replies) {
      std::string command = session.command();
      if (command.rfind("RCPT", 0) != 0) return;
      session.reply(rcpt_reply);
    }
    std::string command = session.command();
    if (command == "DATA") {
      session.reply("354 End data with <CR><LF>.<CR><LF>");
      session.data();
      session.reply(final_reply);
      command = session.command();
    }
    while (command == "RSET") {
      session.reply("250 2.0.0 Ok");
      command = session.command();
    }
    if (command == "QUIT") session.reply("221 2.0.0 Bye");
  };
}

TEST(SmtpRelease, SendsTheOriginalEnvelopeAndTheMessageDotStuffedWithCrlfLineEnds) {
  FakeSmtpServer server(obliging_target({"250 2.1.5 Ok", "250 2.1.5 Ok"}));
  // Line ends of every kind, a line starting with "." split from its line
  // start, a CRLF split across pieces, 8-bit bytes, no final line end.
  auto message = pieces({"Subject: caf\xc3\xa9\n", "\n", "body\r", "\n.hidden\n", ".", ".two dots\r\n",
                         "lone cr\rnext\n", "last line"});
  ReleaseResult result = release_over_smtp(target_for(server), "alice@example.org",
                                           {"bob@example.net", "carol@example.net"}, message);

  EXPECT_TRUE(result.delivered) << result.error;
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.accepted, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
  EXPECT_TRUE(result.refused.empty());
  EXPECT_EQ(result.final_reply, "250 2.0.0 Ok: queued as 4XyZ");
  EXPECT_EQ(server.received(),
            "EHLO release.test\r\n"
            "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"
            "RCPT TO:<bob@example.net>\r\n"
            "RCPT TO:<carol@example.net>\r\n"
            "DATA\r\n"
            "Subject: caf\xc3\xa9\r\n"
            "\r\n"
            "body\r\n"
            "..hidden\r\n"
            "...two dots\r\n"
            "lone cr\r\n"
            "next\r\n"
            "last line\r\n"
            ".\r\n"
            "QUIT\r\n");
}

TEST(SmtpRelease, SevenBitMessageIsNotDeclaredEightBit) {
  FakeSmtpServer server(obliging_target({"250 Ok"}));
  ReleaseResult result =
      release_over_smtp(target_for(server), "", {"bob@example.net"}, pieces({"Subject: hi\n\nx\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  EXPECT_NE(server.received().find("MAIL FROM:<>\r\n"), std::string::npos) << server.received();
}

TEST(SmtpRelease, EightBitMessageIsNotDeclaredToATargetWithout8Bitmime) {
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220 old.test ESMTP");
    session.command();
    session.reply("250-old.test\r\n250 SIZE 1000");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("354 go");
    session.data();
    session.reply("250 Ok");
    session.command();
    session.reply("221 Bye");
  });
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"caf\xc3\xa9\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  EXPECT_NE(server.received().find("MAIL FROM:<a@x>\r\nRCPT"), std::string::npos) << server.received();
}

TEST(SmtpRelease, RefusedRecipientIsReportedWithItsReplyAndTheOthersGetTheMessage) {
  FakeSmtpServer server(obliging_target(
      {"250 2.1.5 Ok", "550 5.1.1 <nobody@example.net>: Recipient address rejected", "250 2.1.5 Ok"}));
  ReleaseResult result = release_over_smtp(target_for(server), "a@example.org",
                                           {"b@example.net", "nobody@example.net", "c@example.net"},
                                           pieces({"Subject: x\n\nbody\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  EXPECT_EQ(result.accepted, (std::vector<std::string>{"b@example.net", "c@example.net"}));
  ASSERT_EQ(result.refused.size(), 1u);
  EXPECT_EQ(result.refused[0].recipient, "nobody@example.net");
  EXPECT_EQ(result.refused[0].reply, "550 5.1.1 <nobody@example.net>: Recipient address rejected");
  EXPECT_NE(server.received().find("DATA\r\n"), std::string::npos);
}

TEST(SmtpRelease, TemporaryRecipientRefusalCountsAsRefused) {
  FakeSmtpServer server(obliging_target({"450 4.2.0 try later", "250 Ok"}));
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y", "c@y"}, pieces({"x\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  ASSERT_EQ(result.refused.size(), 1u);
  EXPECT_EQ(result.refused[0].recipient, "b@y");
  EXPECT_EQ(result.refused[0].reply, "450 4.2.0 try later");
}

TEST(SmtpRelease, NoRecipientAcceptedSendsNoDataAndIsAnError) {
  FakeSmtpServer server(obliging_target({"550 5.1.1 no", "551 5.1.6 moved"}));
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y", "c@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_TRUE(result.accepted.empty());
  EXPECT_EQ(result.refused.size(), 2u);
  EXPECT_NE(result.error.find("none of the recipients"), std::string::npos) << result.error;
  std::string received = server.received();
  EXPECT_EQ(received.find("DATA"), std::string::npos) << received;
  EXPECT_NE(received.find("RCPT TO:<c@y>\r\nRSET\r\nQUIT\r\n"), std::string::npos) << received;
}

TEST(SmtpRelease, RefusedDataIsNotDelivered) {
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220 t ESMTP");
    session.command();
    session.reply("250 t");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("250 Ok");
    session.command();  // DATA
    session.reply("554 5.5.1 no valid recipients");
    while (true) {
      std::string command = session.command();
      if (command.empty()) return;
      session.reply(command == "QUIT" ? "221 Bye" : "250 Ok");
    }
  });
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("554 5.5.1 no valid recipients"), std::string::npos) << result.error;
  EXPECT_EQ(server.received().find("\r\nx\r\n"), std::string::npos) << "the message was sent anyway";
}

TEST(SmtpRelease, MessageRefusedAtTheEndOfDataIsNotDelivered) {
  FakeSmtpServer server(obliging_target({"250 Ok"}, "552-5.3.4 message too big\r\n552 5.3.4 sorry"));
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.final_reply, "552-5.3.4 message too big / 552 5.3.4 sorry");
  EXPECT_NE(result.error.find("552 5.3.4 sorry"), std::string::npos) << result.error;
}

TEST(SmtpRelease, TargetClosingMidSessionIsAnErrorNotADelivery) {
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220 t ESMTP");
    session.command();
    session.reply("250 t");
    session.command();
    session.reply("250 Ok");
    session.command();  // RCPT: no answer, hang up
  });
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("connection closed"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("RCPT TO"), std::string::npos) << result.error;
}

TEST(SmtpRelease, SilentTargetTimesOutWithinTheConfiguredTimeout) {
  FakeSmtpServer server([](FakeSmtpSession& session) { session.wait_for_close(); });
  auto started = std::chrono::steady_clock::now();
  ReleaseResult result = release_over_smtp(target_for(server, 300ms), "a@x", {"b@y"}, pieces({"x\n"}));
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("timed out"), std::string::npos) << result.error;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
}

TEST(SmtpRelease, TargetStallingAfterDataTimesOut) {
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220 t ESMTP");
    session.command();
    session.reply("250 t");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("354 go");
    session.wait_for_close();  // never answers the final "."
  });
  auto started = std::chrono::steady_clock::now();
  ReleaseResult result = release_over_smtp(target_for(server, 300ms), "a@x", {"b@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("timed out"), std::string::npos) << result.error;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST(SmtpRelease, MultiLineEhloReplyIsReadWhole) {
  // 8BITMIME on the last line, lower case, and a greeting that is itself
  // multi-line: none of its lines may be taken as the EHLO reply.
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220-t ESMTP\r\n220-no UCE\r\n220 welcome");
    session.command();
    session.reply("250-t greets you\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n250 8bitmime");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("354 go");
    session.data();
    session.reply("250 Ok");
    session.command();
    session.reply("221 Bye");
  });
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"\xff\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  EXPECT_NE(server.received().find("MAIL FROM:<a@x> BODY=8BITMIME\r\n"), std::string::npos)
      << server.received();
}

TEST(SmtpRelease, FallsBackToHeloWhenEhloIsRefused) {
  FakeSmtpServer server([](FakeSmtpSession& session) {
    session.reply("220 t SMTP");
    session.command();
    session.reply("502 5.5.2 command not recognized");
    session.command();
    session.reply("250 t");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("250 Ok");
    session.command();
    session.reply("354 go");
    session.data();
    session.reply("250 Ok");
    session.command();
    session.reply("221 Bye");
  });
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, pieces({"caf\xc3\xa9\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  std::string received = server.received();
  EXPECT_EQ(
      received.rfind("EHLO release.test\r\nHELO release.test\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n", 0), 0u)
      << received;
}

TEST(SmtpRelease, UnreadableMessageIsAbandonedWithoutTheFinalDot) {
  FakeSmtpServer server(obliging_target({"250 Ok"}));
  MessageProducer breaks_midway = [](const std::function<bool(std::string_view)>& write) {
    write("Subject: half\n\nfirst half\n");
    return false;  // the spool file could not be read further
  };
  ReleaseResult result = release_over_smtp(target_for(server), "a@x", {"b@y"}, breaks_midway);
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("cannot read the message"), std::string::npos) << result.error;
  EXPECT_EQ(server.received().find("\r\n.\r\n"), std::string::npos) << "a truncated message was completed";
}

TEST(SmtpRelease, RecipientWithLineBreakIsNeverPutOnTheWire) {
  FakeSmtpServer server(obliging_target({"250 Ok"}));
  ReleaseResult result =
      release_over_smtp(target_for(server), "a@x", {"evil@y>\r\nRCPT TO:<extra@z", "b@y"}, pieces({"x\n"}));
  EXPECT_TRUE(result.delivered) << result.error;
  ASSERT_EQ(result.refused.size(), 1u);
  EXPECT_EQ(result.refused[0].recipient, "evil@y>\r\nRCPT TO:<extra@z");
  EXPECT_EQ(server.received().find("extra@z"), std::string::npos) << server.received();
}

TEST(SmtpRelease, UnreachableTargetIsAnError) {
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(probe);  // nothing listens there now

  SmtpTarget target;
  target.port = ntohs(address.sin_port);
  target.timeout = 2s;
  ReleaseResult result = release_over_smtp(target, "a@x", {"b@y"}, pieces({"x\n"}));
  EXPECT_FALSE(result.delivered);
  EXPECT_NE(result.error.find("cannot connect to 127.0.0.1:" + std::to_string(target.port)),
            std::string::npos)
      << result.error;
}

}  // namespace
}  // namespace floodgate::quarantine
