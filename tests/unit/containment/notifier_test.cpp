// The report mail (headers that hostile text cannot break), the JSON a
// notification command reads, and Notifier end to end: a real script as the
// command, a fake SMTP listener on loopback as the release target, and the
// failures of both coming back as error lines, never as exceptions.
#include "containment/notifier.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/containment/notify_test_support.hpp"
#include "tests/unit/quarantine/fake_smtp_server.hpp"

namespace floodgate::containment {
namespace {

using namespace std::chrono_literals;
using quarantine::testing::FakeSmtpServer;
using quarantine::testing::FakeSmtpSession;
using testing::read_whole_file;
using testing::ScratchDirectory;
using testing::write_script;
using Clock = std::chrono::steady_clock;

// 2024-03-05 14:03:09 UTC, a Tuesday.
const TimePoint k_now{std::chrono::milliseconds{1709647389000}};

// Everything an SMTP client may put in its text, in valid UTF-8 (so JSON
// keeps it exactly).
const std::string k_hostile_utf8 =
    "web\r\nBcc: victim@example.org\r\n.\r\n$(touch /tmp/x) `id` caf\xc3\xa9 \\ \x1b[31m\tend";

Incident sample_incident(std::string source = "client_address=192.0.2.7") {
  Incident incident;
  incident.id = "20240305-140309-0badc0de";
  incident.source = std::move(source);
  incident.source_digest = "d1g35t";
  incident.rule = "same_content_rcpts_per_client";
  incident.reason = "same_content_rcpts_per_client=101>100 (+20)";
  incident.action = policy::Action::Quarantine;
  incident.identity = {{"client_address", "192.0.2.7"}, {"header:x-php-originating-script", k_hostile_utf8}};
  incident.opened_by = "mx1.example.net";
  incident.opened = k_now - 60s;
  incident.until = k_now + 3600s;
  incident.first_seen = k_now - 120s;
  incident.last_seen = k_now;
  incident.messages = 120;
  incident.recipients = 3400;
  incident.quarantined = 100;
  incident.tempfailed = 5;
  incident.rejected = 2;
  incident.slipped = 13;
  incident.recipient_sample = {"a@example.com", "b@example.org"};
  incident.recipient_domains = {{"example.com", 2000}, {"example.org", 1400}};
  incident.subjects = {{k_hostile_utf8, 90}, {std::string(5000, 'S'), 30}};
  incident.senders = {"www-data@web.example.net"};
  incident.queue_ids = {{"4XyZ1", MessageOutcome::Slipped, k_now - 100s, "held"}};
  incident.queue_clearing = "hold";
  return incident;
}

// Source, subjects and identity with CR, LF, a lone ".", shell syntax and
// 8-bit bytes that are not UTF-8, and a 5000-character source.
Incident hostile_incident() {
  std::string source = "header:subject=" + k_hostile_utf8 + "\xff\xfe\x80" + std::string(5000, 'A');
  Incident incident = sample_incident(std::move(source));
  incident.subjects.push_back({"\xff\r\n\r\nX-Injected: yes\r\n", 1});
  return incident;
}

policy::NotificationSettings mail_settings(std::vector<std::string> to = {"postmaster@example.net"}) {
  policy::NotificationSettings settings;
  settings.mail_to = std::move(to);
  settings.mail_from = "floodgate@mx1.example.net";
  return settings;
}

struct ParsedMail {
  std::vector<std::string> header_lines;  // without CRLF
  std::vector<std::string> body_lines;
};

// Splits at the first empty line; lines at CRLF.
ParsedMail parse_mail(const std::string& mail) {
  ParsedMail parsed;
  bool in_body = false;
  std::size_t start = 0;
  while (start < mail.size()) {
    std::size_t end = mail.find("\r\n", start);
    if (end == std::string::npos) end = mail.size();
    std::string line = mail.substr(start, end - start);
    start = end + 2;
    if (!in_body && line.empty()) {
      in_body = true;
      continue;
    }
    (in_body ? parsed.body_lines : parsed.header_lines).push_back(std::move(line));
  }
  return parsed;
}

std::string header_value(const ParsedMail& mail, const std::string& name) {
  for (const auto& line : mail.header_lines) {
    if (line.rfind(name + ": ", 0) == 0) return line.substr(name.size() + 2);
  }
  return "";
}

// Every CR is followed by LF and every LF preceded by CR.
bool only_crlf_line_ends(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && (i + 1 >= text.size() || text[i + 1] != '\n')) return false;
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return false;
  }
  return true;
}

// "<1709647389000.<16 lower-case hex digits>@floodgate>" (no std::regex:
// GCC 12 warns inside it under the sanitizers).
bool is_report_message_id(const std::string& id) {
  const std::string head = "<1709647389000.";
  const std::string tail = "@floodgate>";
  if (id.size() != head.size() + 16 + tail.size() || !id.starts_with(head) || !id.ends_with(tail)) return false;
  return std::all_of(id.begin() + head.size(), id.end() - tail.size(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

TEST(ReportMail, HostileSourceAndSubjectsCannotBreakOrAddHeaders) {
  const std::string mail =
      compose_report_mail(NotificationEvent::Freeze, hostile_incident(), mail_settings(), k_now);
  EXPECT_TRUE(only_crlf_line_ends(mail)) << "got a bare CR or LF in the mail";
  ParsedMail parsed = parse_mail(mail);

  const std::set<std::string> allowed{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                                      "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted",
                                      "X-Floodgate-Event", "X-Floodgate-Incident"};
  std::multiset<std::string> names;
  for (const auto& line : parsed.header_lines) {
    for (unsigned char c : line) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "got byte " << int(c) << " in header line \"" << line << "\"";
    }
    ASSERT_FALSE(line.empty());
    if (line[0] == ' ' || line[0] == '\t') continue;  // a folded continuation
    const auto colon = line.find(':');
    ASSERT_NE(colon, std::string::npos) << "got header line without a name: \"" << line << "\"";
    names.insert(line.substr(0, colon));
  }
  for (const auto& name : names) {
    EXPECT_TRUE(allowed.contains(name)) << "got header \"" << name << "\", want none but ours";
    EXPECT_EQ(names.count(name), 1u) << "got header \"" << name << "\" " << names.count(name) << " times";
  }
  EXPECT_EQ(names.size(), allowed.size());

  const std::string subject = header_value(parsed, "Subject");
  EXPECT_EQ(subject.rfind("[floodgate] frozen: header:subject=web\\x0d\\x0aBcc: victim@example.org\\x0d\\x0a.", 0),
            0u)
      << "got Subject \"" << subject << "\"";
  EXPECT_LE(subject.size(), std::string("[floodgate] frozen: ").size() + 120)
      << "got a Subject of " << subject.size() << " characters, want it capped";
  EXPECT_TRUE(subject.ends_with("...")) << "got Subject \"" << subject << "\", want it marked as cut";

  for (const auto& line : parsed.body_lines) {
    EXPECT_LT(line.size(), 998u) << "got a body line of " << line.size() << " octets";
    EXPECT_NE(line, ".") << "got a lone dot line";
    EXPECT_NE(line.rfind("X-Injected", 0), 0u) << "got the injected header text at a line start";
  }
}

TEST(ReportMail, HasTheFixedHeadersAndAnRfc5322Date) {
  const std::string mail = compose_report_mail(NotificationEvent::Freeze, sample_incident(),
                                               mail_settings({"a@example.net", "b@example.net"}), k_now);
  ParsedMail parsed = parse_mail(mail);
  EXPECT_EQ(header_value(parsed, "From"), "floodgate@mx1.example.net");
  EXPECT_EQ(header_value(parsed, "To"), "a@example.net,");
  EXPECT_NE(mail.find("To: a@example.net,\r\n b@example.net\r\n"), std::string::npos) << mail;
  EXPECT_EQ(header_value(parsed, "Subject"), "[floodgate] frozen: client_address=192.0.2.7");
  EXPECT_EQ(header_value(parsed, "Date"), "Tue, 05 Mar 2024 14:03:09 +0000");
  EXPECT_EQ(header_value(parsed, "MIME-Version"), "1.0");
  EXPECT_EQ(header_value(parsed, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header_value(parsed, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(header_value(parsed, "Auto-Submitted"), "auto-generated");
  const std::string id = header_value(parsed, "Message-ID");
  EXPECT_TRUE(is_report_message_id(id)) << "got " << id << ", want <1709647389000.<16 hex digits>@floodgate>";
  const std::string other = header_value(
      parse_mail(compose_report_mail(NotificationEvent::Freeze, sample_incident(), mail_settings(), k_now)),
      "Message-ID");
  EXPECT_NE(id, other) << "got the same Message-ID twice";
}

TEST(ReportMail, UnfreezeSaysUnfrozen) {
  ParsedMail parsed = parse_mail(
      compose_report_mail(NotificationEvent::Unfreeze, sample_incident(), mail_settings(), k_now));
  EXPECT_EQ(header_value(parsed, "Subject"), "[floodgate] unfrozen: client_address=192.0.2.7");
  ASSERT_FALSE(parsed.body_lines.empty());
  EXPECT_EQ(parsed.body_lines[0].rfind("Floodgate unfroze client_address=192.0.2.7", 0), 0u)
      << "got \"" << parsed.body_lines[0] << "\"";
}

TEST(ReportMail, BodyIsASummaryWithTheCountsThenTheIncidentText) {
  const Incident incident = sample_incident();
  ParsedMail parsed =
      parse_mail(compose_report_mail(NotificationEvent::Freeze, incident, mail_settings(), k_now));
  ASSERT_GE(parsed.body_lines.size(), 3u);
  const std::string& summary = parsed.body_lines[0];
  for (const char* part : {"Floodgate froze client_address=192.0.2.7", "120 messages", "3400 recipients",
                           "100 quarantined", "5 tempfailed", "2 rejected", "13 slipped"}) {
    EXPECT_NE(summary.find(part), std::string::npos) << "got summary \"" << summary << "\", want \"" << part << "\"";
  }
  EXPECT_EQ(parsed.body_lines[1], "");

  std::vector<std::string> rendered;
  const std::string text = render_incident_text(incident, k_now);
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = text.find('\n', start);
    rendered.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  const std::vector<std::string> rest(parsed.body_lines.begin() + 2, parsed.body_lines.end());
  EXPECT_EQ(rest, rendered);
}

TEST(NotificationJson, ParsesBackWithTheExactHostileStringsAndTheEvent) {
  Incident incident = sample_incident(k_hostile_utf8);
  const nlohmann::json json = nlohmann::json::parse(notification_json(NotificationEvent::Freeze, incident, k_now));
  EXPECT_EQ(json.at("event"), "freeze");
  EXPECT_EQ(json.at("id"), incident.id);
  EXPECT_EQ(json.at("source").get<std::string>(), k_hostile_utf8);
  EXPECT_EQ(json.at("subjects").at(0).at("text").get<std::string>(), k_hostile_utf8);
  EXPECT_EQ(json.at("identity").at("header:x-php-originating-script").get<std::string>(), k_hostile_utf8);
  EXPECT_EQ(json.at("messages"), 120);

  const nlohmann::json unfreeze =
      nlohmann::json::parse(notification_json(NotificationEvent::Unfreeze, incident, k_now));
  EXPECT_EQ(unfreeze.at("event"), "unfreeze");
}

TEST(NotificationJson, BytesThatAreNotUtf8BecomeReplacementCharactersInsteadOfThrowing) {
  std::string json_text;
  ASSERT_NO_THROW(json_text = notification_json(NotificationEvent::Freeze, hostile_incident(), k_now));
  const nlohmann::json json = nlohmann::json::parse(json_text);
  EXPECT_NE(json.at("source").get<std::string>().find("\xef\xbf\xbd"), std::string::npos);
}

TEST(Notifier, NothingConfiguredDoesNothing) {
  Notifier notifier(policy::NotificationSettings{}, quarantine::SmtpTarget{});
  EXPECT_FALSE(notifier.enabled());
  NotificationResult result = notifier.notify(NotificationEvent::Freeze, sample_incident(), k_now);
  EXPECT_FALSE(result.mail_attempted);
  EXPECT_FALSE(result.command_attempted);
  EXPECT_FALSE(result.any_failed());
}

TEST(Notifier, CommandReadsTheJsonOnStdinAndTheEventInItsEnvironment) {
  ScratchDirectory scratch;
  const std::string stdin_copy = scratch.file("stdin");
  const std::string environment_copy = scratch.file("environment");
  const std::string script = write_script(
      scratch, "notify", "cat > \"$1\"\nprintf '%s %s' \"$FLOODGATE_EVENT\" \"$FLOODGATE_INCIDENT\" > \"$2\"\n");
  policy::NotificationSettings settings;
  settings.command = {script, stdin_copy, environment_copy};
  Notifier notifier(settings, quarantine::SmtpTarget{});
  ASSERT_TRUE(notifier.enabled());

  const Incident incident = hostile_incident();
  NotificationResult result = notifier.notify(NotificationEvent::Unfreeze, incident, k_now);
  EXPECT_TRUE(result.command_attempted);
  EXPECT_TRUE(result.command_succeeded);
  EXPECT_FALSE(result.mail_attempted);
  EXPECT_TRUE(result.errors.empty()) << "got error: " << result.errors.front();
  EXPECT_TRUE(read_whole_file(stdin_copy) == notification_json(NotificationEvent::Unfreeze, incident, k_now))
      << "got stdin:\n" << read_whole_file(stdin_copy).substr(0, 300);
  EXPECT_EQ(read_whole_file(environment_copy), "unfreeze 20240305-140309-0badc0de");
}

TEST(Notifier, FailingCommandIsAnErrorLineWithTheFirstLineOfItsOutput) {
  ScratchDirectory scratch;
  const std::string script = write_script(
      scratch, "fail", "cat > /dev/null\nprintf 'no route \\033[31m to pager\\r\\nsecond line\\n'\nexit 3\n");
  policy::NotificationSettings settings;
  settings.command = {script};
  NotificationResult result;
  ASSERT_NO_THROW(result = Notifier(settings, quarantine::SmtpTarget{})
                               .notify(NotificationEvent::Freeze, sample_incident(), k_now));
  EXPECT_TRUE(result.command_attempted);
  EXPECT_FALSE(result.command_succeeded);
  ASSERT_EQ(result.errors.size(), 1u);
  const std::string& error = result.errors[0];
  EXPECT_NE(error.find("status 3"), std::string::npos) << "got \"" << error << "\"";
  EXPECT_NE(error.find("no route \\x1b[31m to pager"), std::string::npos) << "got \"" << error << "\"";
  EXPECT_EQ(error.find("second line"), std::string::npos) << "got \"" << error << "\"";
  for (unsigned char c : error) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "got byte " << int(c) << " in the error";
}

TEST(Notifier, CommandThatCannotStartIsAnError) {
  policy::NotificationSettings settings;
  settings.command = {"/nonexistent/floodgate-pager"};
  NotificationResult result = Notifier(settings, quarantine::SmtpTarget{})
                                  .notify(NotificationEvent::Freeze, sample_incident(), k_now);
  EXPECT_FALSE(result.command_succeeded);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("/nonexistent/floodgate-pager"), std::string::npos) << result.errors[0];
}

TEST(Notifier, CommandOverItsTimeoutIsKilledAndReported) {
  ScratchDirectory scratch;
  const std::string script = write_script(scratch, "slow", "echo started\nexec sleep 30\n");
  policy::NotificationSettings settings;
  settings.command = {script};
  settings.command_timeout = 1s;
  const auto start = Clock::now();
  NotificationResult result = Notifier(settings, quarantine::SmtpTarget{})
                                  .notify(NotificationEvent::Freeze, sample_incident(), k_now);
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_FALSE(result.command_succeeded);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("timed out"), std::string::npos) << "got \"" << result.errors[0] << "\"";
  EXPECT_NE(result.errors[0].find("started"), std::string::npos) << "got \"" << result.errors[0] << "\"";
}

// A target that takes the mail: greets, answers every RCPT from
// `rcpt_replies` in order, takes the data.
FakeSmtpServer::Script accepting_target(std::vector<std::string> rcpt_replies) {
  return [rcpt_replies = std::move(rcpt_replies)](FakeSmtpSession& session) {
    session.reply("220 sink.test ESMTP");
    session.command();  // EHLO
    session.reply("250-sink.test\r\n250 8BITMIME");
    session.command();  // MAIL
    session.reply("250 2.1.0 Ok");
    for (const auto& reply : rcpt_replies) {
      if (session.command().rfind("RCPT", 0) != 0) return;
      session.reply(reply);
    }
    if (session.command() != "DATA") return;
    session.reply("354 go ahead");
    session.data();
    session.reply("250 2.0.0 Ok: queued as 7AbC");
    if (session.command() == "QUIT") session.reply("221 2.0.0 Bye");
  };
}

quarantine::SmtpTarget target_at(std::uint16_t port, std::chrono::milliseconds timeout = 5s) {
  quarantine::SmtpTarget target;
  target.host = "127.0.0.1";
  target.port = port;
  target.helo_name = "floodgate.test";
  target.timeout = timeout;
  return target;
}

TEST(Notifier, ReportMailGoesToEveryRecipientInOneSession) {
  FakeSmtpServer server(accepting_target({"250 2.1.5 Ok", "250 2.1.5 Ok"}));
  Notifier notifier(mail_settings({"postmaster@example.net", "abuse@example.net"}), target_at(server.port()));
  NotificationResult result = notifier.notify(NotificationEvent::Freeze, sample_incident(), k_now);
  const std::string received = server.received();

  EXPECT_TRUE(result.mail_attempted);
  EXPECT_TRUE(result.mail_sent);
  EXPECT_TRUE(result.errors.empty()) << "got error: " << result.errors.front();
  EXPECT_EQ(received.rfind("EHLO floodgate.test\r\nMAIL FROM:<floodgate@mx1.example.net>\r\n"
                           "RCPT TO:<postmaster@example.net>\r\nRCPT TO:<abuse@example.net>\r\nDATA\r\n",
                           0),
            0u)
      << "got:\n" << received;
  EXPECT_NE(received.find("\r\nSubject: [floodgate] frozen: client_address=192.0.2.7\r\n"), std::string::npos);
  EXPECT_NE(received.find("\r\n\r\nFloodgate froze client_address=192.0.2.7 (rule same_content_rcpts_per_client, "
                          "action quarantine): 120 messages to 3400 recipients;"),
            std::string::npos)
      << "got:\n" << received;
  EXPECT_TRUE(received.ends_with("\r\n.\r\nQUIT\r\n")) << "got:\n" << received;
}

TEST(Notifier, RecipientRefusedByTheTargetIsReportedAndTheOthersStillGetIt) {
  FakeSmtpServer server(accepting_target({"550 5.1.1 unknown user", "250 2.1.5 Ok"}));
  Notifier notifier(mail_settings({"gone@example.net", "abuse@example.net"}), target_at(server.port()));
  NotificationResult result = notifier.notify(NotificationEvent::Freeze, sample_incident(), k_now);
  server.received();
  EXPECT_TRUE(result.mail_sent);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("gone@example.net"), std::string::npos) << result.errors[0];
  EXPECT_NE(result.errors[0].find("550 5.1.1"), std::string::npos) << result.errors[0];
}

// A port where nothing listens: bound, then closed.
std::uint16_t closed_port() {
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(probe);
  return ntohs(address.sin_port);
}

TEST(Notifier, UnreachableTargetIsAnErrorAndTheCommandStillRuns) {
  ScratchDirectory scratch;
  const std::string ran = scratch.file("ran");
  policy::NotificationSettings settings = mail_settings();
  settings.command = {write_script(scratch, "notify", "cat > \"$1\"\n"), ran};
  NotificationResult result;
  ASSERT_NO_THROW(result = Notifier(settings, target_at(closed_port(), 1s))
                               .notify(NotificationEvent::Freeze, sample_incident(), k_now));
  EXPECT_TRUE(result.mail_attempted);
  EXPECT_FALSE(result.mail_sent);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("127.0.0.1"), std::string::npos) << "got \"" << result.errors[0] << "\"";
  EXPECT_TRUE(result.command_succeeded);
  EXPECT_FALSE(read_whole_file(ran).empty());
}

TEST(Notifier, SilentTargetIsAnErrorWithinTheTimeout) {
  // Listening, so the connection is made, but nobody ever greets.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);

  const auto start = Clock::now();
  NotificationResult result = Notifier(mail_settings(), target_at(ntohs(address.sin_port), 300ms))
                                  .notify(NotificationEvent::Freeze, sample_incident(), k_now);
  const auto elapsed = Clock::now() - start;
  ::close(listener);

  EXPECT_FALSE(result.mail_sent);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_LT(elapsed, 2s) << "got " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                         << " ms, want about the 300 ms timeout";
}

}  // namespace
}  // namespace floodgate::containment
