// Incident: ids, outcome names, state, the JSON and the text view -- and
// that the text view is safe with hostile subjects, sources and identities.
#include "containment/incident.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace floodgate::containment {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;  // "\0" inside ""s literals is a real NUL byte
using Json = nlohmann::json;

// 2026-11-27T13:45:01.250Z
const TimePoint k_opened{std::chrono::milliseconds{1'795'787'101'250}};

Incident sample_incident() {
  Incident incident;
  incident.id = "20261127-134501-0a1b2c3d";
  incident.source = "client_address=192.0.2.7 header:x-php-originating-script=12:contact.php";
  incident.source_digest = "0123456789abcdef";
  incident.rule = "same_content_rcpts_per_client";
  incident.reason = "same_content_rcpts_per_client=101>100 (+20)";
  incident.action = policy::Action::Quarantine;
  incident.identity = {{"client_address", "192.0.2.7"}, {"header:x-php-originating-script", "12:contact.php"}};
  incident.opened_by = "mx1.example.org";
  incident.opened = k_opened;
  incident.until = k_opened + 1h;
  incident.first_seen = k_opened - 2min;
  incident.last_seen = k_opened + 30s;
  incident.messages = 120;
  incident.recipients = 12'000;
  incident.quarantined = 95;
  incident.tempfailed = 3;
  incident.rejected = 2;
  incident.slipped = 20;
  incident.recipient_sample = {"a@example.net", "b@example.com"};
  incident.recipient_domains = {{"example.net", 9000}, {"example.com", 3000}};
  incident.subjects = {{"Buy now", 100}, {"Cheap pills", 20}};
  incident.fingerprints = {{"exact:0a1b2c3d", 120}};
  incident.senders = {"www-data@web1.example.org"};
  incident.queue_ids = {{"4AbC123", MessageOutcome::Slipped, k_opened - 1min, "held"},
                        {"4AbC124", MessageOutcome::Quarantined, k_opened + 1s, ""}};
  incident.queue_ids_not_listed = 7;
  incident.queue_clearing = "hold";
  incident.notifications_sent = 1;
  incident.notifications_suppressed = 2;
  incident.notifications_failed = 3;
  return incident;
}

// Every line ends with '\n' and holds only printable ASCII.
void expect_plain_text(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '\n') continue;
    EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << "got byte 0x" << std::hex << int{byte} << " at " << std::dec << i
                                             << ", want printable ASCII only:\n"
                                             << text;
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& each : lines_of(text)) {
    if (each == line) return true;
  }
  return false;
}

TEST(MessageOutcome, NamesRoundTrip) {
  for (auto outcome : {MessageOutcome::Slipped, MessageOutcome::Quarantined, MessageOutcome::Tempfailed,
                       MessageOutcome::Rejected}) {
    EXPECT_EQ(parse_message_outcome(to_string(outcome)), outcome) << to_string(outcome);
  }
  EXPECT_EQ(to_string(MessageOutcome::Slipped), "slipped");
  EXPECT_EQ(to_string(MessageOutcome::Tempfailed), "tempfailed");
  EXPECT_FALSE(parse_message_outcome("Quarantined").has_value());
  EXPECT_FALSE(parse_message_outcome("").has_value());
}

TEST(IncidentId, IsTheOpeningTimeInUtcAndEightHexDigits) {
  EXPECT_EQ(make_incident_id(k_opened, 0x0a1b2c3d), "20261127-134501-0a1b2c3d");
  EXPECT_EQ(make_incident_id(k_opened, 0xffffffff0000002aULL), "20261127-134501-0000002a")
      << "only the low 32 bits are used";
  EXPECT_TRUE(is_valid_incident_id(make_incident_id(k_opened, 0xdeadbeef)));
  EXPECT_TRUE(is_valid_incident_id(make_incident_id(TimePoint{}, 1)));
}

TEST(IncidentId, ValidationRefusesAnythingElse) {
  for (const std::string bad :
       {"", "20261127-134501-0a1b2c3", "20261127-134501-0a1b2c3d0", "20261127-134501-0A1B2C3D",
        "20261127_134501-0a1b2c3d", "2026112a-134501-0a1b2c3d", "20261127-134501-0a1b2c3g", "../../../etc/passwd",
        "20261127-134501-0a1b2c3d\n", "20261127 134501 0a1b2c3d", "x:{freezes}:all-0a1b2c3d",
        "20261127-134501-\x80\x81\x82\x83\x84\x85\x86\x87"}) {
    EXPECT_FALSE(is_valid_incident_id(bad)) << "got valid for '" << bad << "', want invalid";
  }
}

TEST(IncidentState, IsOpenUntilTheFreezeEndsOrIsLifted) {
  Incident incident = sample_incident();
  EXPECT_EQ(incident.state(k_opened + 59min), "open");
  EXPECT_TRUE(incident.is_open(k_opened + 59min));
  EXPECT_EQ(incident.state(k_opened + 1h), "expired") << "until is exclusive";
  incident.closed = k_opened + 10min;
  incident.close_reason = "unfrozen";
  EXPECT_EQ(incident.state(k_opened + 11min), "unfrozen");
  EXPECT_FALSE(incident.is_open(k_opened + 11min));
  incident.close_reason = "expired";
  EXPECT_EQ(incident.state(k_opened + 11min), "expired");
}

TEST(IncidentJson, HoldsEveryField) {
  const Incident incident = sample_incident();
  const Json json = Json::parse(incident_to_json(incident, k_opened + 5min).dump());
  EXPECT_EQ(json["id"], incident.id);
  EXPECT_EQ(json["state"], "open");
  EXPECT_EQ(json["source"], incident.source);
  EXPECT_EQ(json["source_digest"], incident.source_digest);
  EXPECT_EQ(json["rule"], incident.rule);
  EXPECT_EQ(json["reason"], incident.reason);
  EXPECT_EQ(json["action"], "quarantine");
  EXPECT_EQ(json["identity"], (Json{{"client_address", "192.0.2.7"},
                                    {"header:x-php-originating-script", "12:contact.php"}}));
  EXPECT_EQ(json["opened_by"], "mx1.example.org");
  EXPECT_EQ(json["opened"], "2026-11-27T13:45:01Z");
  EXPECT_EQ(json["opened_ms"], 1'795'787'101'250);
  EXPECT_EQ(json["until"], "2026-11-27T14:45:01Z");
  EXPECT_EQ(json["until_ms"], 1'795'787'101'250 + 3'600'000);
  EXPECT_TRUE(json["closed"].is_null());
  EXPECT_TRUE(json["closed_ms"].is_null());
  EXPECT_EQ(json["close_reason"], "");
  EXPECT_EQ(json["first_seen"], "2026-11-27T13:43:01Z");
  EXPECT_EQ(json["first_seen_ms"], 1'795'787'101'250 - 120'000);
  EXPECT_EQ(json["last_seen"], "2026-11-27T13:45:31Z");
  EXPECT_EQ(json["last_seen_ms"], 1'795'787'101'250 + 30'000);
  EXPECT_EQ(json["messages"], 120);
  EXPECT_EQ(json["recipients"], 12'000);
  EXPECT_EQ(json["quarantined"], 95);
  EXPECT_EQ(json["tempfailed"], 3);
  EXPECT_EQ(json["rejected"], 2);
  EXPECT_EQ(json["slipped"], 20);
  EXPECT_EQ(json["recipient_sample"], (Json{"a@example.net", "b@example.com"}));
  EXPECT_EQ(json["recipient_domains"],
            Json::parse(R"([{"text":"example.net","count":9000},{"text":"example.com","count":3000}])"));
  EXPECT_EQ(json["subjects"], Json::parse(R"([{"text":"Buy now","count":100},{"text":"Cheap pills","count":20}])"));
  EXPECT_EQ(json["fingerprints"], Json::parse(R"([{"text":"exact:0a1b2c3d","count":120}])"));
  EXPECT_EQ(json["senders"], Json{"www-data@web1.example.org"});
  EXPECT_EQ(json["queue_ids"], Json::parse(R"([
      {"queue_id":"4AbC123","outcome":"slipped","time":"2026-11-27T13:44:01Z","time_ms":1795787041250,
       "queue_action":"held"},
      {"queue_id":"4AbC124","outcome":"quarantined","time":"2026-11-27T13:45:02Z","time_ms":1795787102250,
       "queue_action":""}])"));
  EXPECT_EQ(json["queue_ids_not_listed"], 7);
  EXPECT_EQ(json["queue_clearing"], "hold");
  EXPECT_EQ(json["notifications_sent"], 1);
  EXPECT_EQ(json["notifications_suppressed"], 2);
  EXPECT_EQ(json["notifications_failed"], 3);
  EXPECT_EQ(json.size(), 37u) << "a field was added: test it here";
}

TEST(IncidentJson, ClosedTimesAndStateAreFilledIn) {
  Incident incident = sample_incident();
  incident.closed = k_opened + 10min;
  incident.close_reason = "unfrozen";
  incident.first_seen.reset();
  const Json json = incident_to_json(incident, k_opened + 11min);
  EXPECT_EQ(json["state"], "unfrozen");
  EXPECT_EQ(json["closed"], "2026-11-27T13:55:01Z");
  EXPECT_EQ(json["closed_ms"], 1'795'787'101'250 + 600'000);
  EXPECT_EQ(json["close_reason"], "unfrozen");
  EXPECT_TRUE(json["first_seen"].is_null());
}

TEST(IncidentJson, HostileBytesStayJsonStrings) {
  Incident incident = sample_incident();
  incident.subjects = {{"a\r\nb\0\x1b[2J\"}\xff"s, 1}};
  const std::string text =
      incident_to_json(incident, k_opened).dump(-1, ' ', false, Json::error_handler_t::replace);
  const Json back = Json::parse(text);
  EXPECT_EQ(back["subjects"][0]["text"], "a\r\nb\0\x1b[2J\"}\xef\xbf\xbd"s) << "invalid UTF-8 becomes U+FFFD";
  EXPECT_EQ(text.find('\n'), std::string::npos);
}

TEST(IncidentText, ShowsTheIncidentAsAPersonReadsIt) {
  const std::string text = render_incident_text(sample_incident(), k_opened + 5min);
  expect_plain_text(text);
  const auto lines = lines_of(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "incident 20261127-134501-0a1b2c3d  open");
  for (const std::string want : {
           "source: client_address=192.0.2.7 header:x-php-originating-script=12:contact.php",
           "rule: same_content_rcpts_per_client (same_content_rcpts_per_client=101>100 (+20))",
           "action: quarantine",
           "opened: 2026-11-27 13:45:01 UTC by mx1.example.org",
           "until: 2026-11-27 14:45:01 UTC",
           "first seen: 2026-11-27 13:43:01 UTC  last seen: 2026-11-27 13:45:31 UTC",
           "messages 120  recipients 12000  quarantined 95  tempfailed 3  rejected 2  slipped 20",
           "  client_address: 192.0.2.7",
           "  header:x-php-originating-script: 12:contact.php",
           "  a@example.net",
           "  9000  example.net",
           "  100  Buy now",
           "  20  Cheap pills",
           "  120  exact:0a1b2c3d",
           "  www-data@web1.example.org",
           "queue ids (2, 7 more not listed):",
           "  4AbC123  slipped  2026-11-27 13:44:01 UTC  held",
           "  4AbC124  quarantined  2026-11-27 13:45:02 UTC",
           "queue clearing: hold",
           "notifications: sent 1  suppressed 2  failed 3",
       }) {
    EXPECT_TRUE(has_line(text, want)) << "no line '" << want << "' in:\n" << text;
  }
  EXPECT_FALSE(has_line(text, "closed:")) << text;
}

TEST(IncidentText, NamesTheCloseAndShowsNoTimesItDoesNotKnow) {
  Incident incident = sample_incident();
  incident.closed = k_opened + 10min;
  incident.close_reason = "unfrozen";
  incident.first_seen.reset();
  incident.last_seen.reset();
  const std::string text = render_incident_text(incident, k_opened + 11min);
  EXPECT_EQ(lines_of(text)[0], "incident 20261127-134501-0a1b2c3d  unfrozen");
  EXPECT_TRUE(has_line(text, "closed: 2026-11-27 13:55:01 UTC (unfrozen)")) << text;
  EXPECT_TRUE(has_line(text, "first seen: -  last seen: -")) << text;
}

TEST(IncidentText, EscapesHostileTextSoNoLineOrHeaderCanBeForged) {
  Incident incident = sample_incident();
  incident.subjects = {{"Hi\r\nBcc: victim@example.org\r\n\r\n$(rm -rf ~); `id` | tee /etc/x & \\n", 5}};
  incident.source = "header:x-mailer=\x1b]0;owned\x07\x9b" "31m";
  incident.identity["sender"] = "a\nb\xc3\xa9\x7f\0"s;
  incident.senders = {"<>\r\n.\r\n"};
  incident.recipient_sample = {"\"x\ry\"@example.net"};
  incident.reason = "ops\tnote";
  incident.queue_ids[0].queue_action = "failed: postsuper: \r\nexit 1";
  const std::string text = render_incident_text(incident, k_opened);
  expect_plain_text(text);
  EXPECT_TRUE(has_line(text, R"(  5  Hi\x0d\x0aBcc: victim@example.org\x0d\x0a\x0d\x0a$(rm -rf ~); `id` | tee /etc/x & \\n)"))
      << text;
  EXPECT_TRUE(has_line(text, R"(source: header:x-mailer=\x1b]0;owned\x07\x9b31m)")) << text;
  EXPECT_TRUE(has_line(text, R"(  sender: a\x0ab\xc3\xa9\x7f\x00)")) << text;
  EXPECT_TRUE(has_line(text, R"(  <>\x0d\x0a.\x0d\x0a)")) << text;
  EXPECT_TRUE(has_line(text, R"(  "x\x0dy"@example.net)")) << text;
  EXPECT_TRUE(has_line(text, R"(rule: same_content_rcpts_per_client (ops\x09note))")) << text;
  EXPECT_TRUE(has_line(text, R"(  4AbC123  slipped  2026-11-27 13:44:01 UTC  failed: postsuper: \x0d\x0aexit 1)"))
      << text;
  EXPECT_FALSE(has_line(text, "Bcc: victim@example.org")) << text;
}

TEST(IncidentText, CutsLongValuesSoLinesStayShort) {
  Incident incident = sample_incident();
  incident.subjects = {{std::string(5000, '\xff'), 1}, {std::string(5000, 'a'), 1}};
  const std::string text = render_incident_text(incident, k_opened);
  expect_plain_text(text);
  for (const auto& line : lines_of(text)) EXPECT_LT(line.size(), 500u) << line.substr(0, 80);
  EXPECT_NE(text.find("\\xff\\xff...\n"), std::string::npos) << "a cut value ends with ...";
  EXPECT_EQ(text.find("\\xf..."), std::string::npos) << "an escape was split";
}

TEST(IncidentText, AnIdThatIsNotOneIsEscapedToo) {
  Incident incident = sample_incident();
  incident.id = "x\r\nSubject: forged";
  const std::string text = render_incident_text(incident, k_opened);
  expect_plain_text(text);
  EXPECT_EQ(lines_of(text)[0], R"(incident x\x0d\x0aSubject: forged  open)");
}

}  // namespace
}  // namespace floodgate::containment
