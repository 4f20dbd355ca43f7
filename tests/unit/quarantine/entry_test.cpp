#include <gtest/gtest.h>

#include <random>
#include <string>

#include "quarantine/entry.hpp"
#include "quarantine/entry_json.hpp"
#include "quarantine_test_support.hpp"

namespace floodgate::quarantine {
namespace {

using testing::sample_entry;
using testing::sample_time;
using namespace std::string_literals;

TEST(EntryId, IsUtcTimeThenSixteenHexDigits) {
  EXPECT_EQ(make_entry_id(sample_time(), 0x0123456789abcdefULL), "20261127T101500Z-0123456789abcdef");
  EXPECT_EQ(make_entry_id(sample_time(), 1), "20261127T101500Z-0000000000000001");
}

TEST(EntryId, MadeIdsAreValid) {
  std::mt19937_64 random(7);
  for (int i = 0; i < 1000; ++i) {
    const auto time = sample_time(static_cast<long>(random() % 400000000) - 200000000);
    const std::string id = make_entry_id(time, random());
    EXPECT_TRUE(is_valid_entry_id(id)) << id;
  }
}

TEST(EntryId, SortsByTime) {
  EXPECT_LT(make_entry_id(sample_time(0), ~0ULL), make_entry_id(sample_time(1), 0));
  EXPECT_LT(make_entry_id(sample_time(59), ~0ULL), make_entry_id(sample_time(60), 0));
}

struct IdCase {
  std::string text;
  bool valid;
};

class EntryIdValidation : public ::testing::TestWithParam<IdCase> {};

TEST_P(EntryIdValidation, AcceptsOnlyTheExactShape) {
  EXPECT_EQ(is_valid_entry_id(GetParam().text), GetParam().valid) << "id " << ::testing::PrintToString(GetParam().text);
}

INSTANTIATE_TEST_SUITE_P(
    Table, EntryIdValidation,
    ::testing::Values(
        IdCase{"20261127T101500Z-0123456789abcdef", true}, IdCase{"19700101T000000Z-0000000000000000", true},
        IdCase{"99991231T235960Z-ffffffffffffffff", true},
        // Path traversal and other paths.
        IdCase{"../x", false}, IdCase{"/etc/passwd", false}, IdCase{"a/b", false}, IdCase{"..", false},
        IdCase{".", false}, IdCase{"", false}, IdCase{"../20261127T101500Z-0123456789abcd", false},
        IdCase{"20261127T101500Z-0123456789abc/.", false}, IdCase{"20261127T101500Z-012345678/../../x", false},
        IdCase{"20261127T101500Z/0123456789abcdef", false},
        // Near misses.
        IdCase{"20261127T101500Z-0123456789ABCDEF", false}, IdCase{"20261127T101500Z-0123456789abcdeF", false},
        IdCase{"20261127T101500Z-0123456789abcdef0", false}, IdCase{"20261127T101500Z-0123456789abcde", false},
        IdCase{"20261127T101500Z-0123456789abcdef.fgq", false}, IdCase{"20261127t101500Z-0123456789abcdef", false},
        IdCase{"20261127T101500z-0123456789abcdef", false}, IdCase{"20261127T101500Z_0123456789abcdef", false},
        IdCase{"2026112XT101500Z-0123456789abcdef", false}, IdCase{"20261327T101500Z-0123456789abcdef", false},
        IdCase{"20261100T101500Z-0123456789abcdef", false}, IdCase{"20261127T241500Z-0123456789abcdef", false},
        IdCase{"20261127T101500Z-0123456789abcdeg", false}, IdCase{" 20261127T101500Z-0123456789abcde", false},
        IdCase{"20261127T101500Z-0123456789abcde\n", false},
        IdCase{"20261127T101500Z-0123456789abcde\0"s, false},
        IdCase{"20261127T101500Z-01234567\0abcdef"s, false}, IdCase{std::string(4096, 'a'), false},
        IdCase{"20261127T101500Z-0123456789abcdef" + std::string(1000, '/'), false}));

TEST(EntryJson, RoundTripsEveryField) {
  QuarantineEntry entry = sample_entry(sample_time() + std::chrono::nanoseconds(123456789), 0xfeed);
  entry.mode = EntryMode::Hold;
  entry.size_bytes = 18446744073709551615ULL;
  entry.score = -7;
  entry.cause = "freeze:burst";
  entry.frozen_source = "client_address=192.0.2.7 header:x-php-originating-script=12:contact.php";
  const auto json = entry_to_json(entry);
  auto back = entry_from_json(nlohmann::json::parse(json.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->id, entry.id);
  EXPECT_EQ(back->time, entry.time);
  EXPECT_EQ(back->mode, EntryMode::Hold);
  EXPECT_EQ(back->queue_id, entry.queue_id);
  EXPECT_EQ(back->client_address, entry.client_address);
  EXPECT_EQ(back->client_name, entry.client_name);
  EXPECT_EQ(back->helo, entry.helo);
  EXPECT_EQ(back->sasl_user, entry.sasl_user);
  EXPECT_EQ(back->sender, entry.sender);
  EXPECT_EQ(back->recipients, entry.recipients);
  EXPECT_EQ(back->subject, entry.subject);
  EXPECT_EQ(back->size_bytes, entry.size_bytes);
  EXPECT_EQ(back->score, entry.score);
  EXPECT_EQ(back->reasons, entry.reasons);
  EXPECT_EQ(back->cause, entry.cause);
  EXPECT_EQ(back->fingerprint, entry.fingerprint);
  EXPECT_EQ(back->frozen_source, entry.frozen_source);
}

// The canonical spelling percent-encodes, but the field holds whatever the
// milter put there: a header value with NULs, line breaks, terminal escapes
// and 8-bit bytes must come back byte for byte.
TEST(EntryJson, FrozenSourceWithHostileBytesRoundTrips) {
  const std::vector<std::string> hostile = {
      "header:x-php-originating-script=a\0b\r\nX-Forged: yes\x1b[2J"s,
      "sasl_user=\xff\xfe\xc0\xaf \"quoted\" {\"base64\": \"QQ==\"}"s,
      "client_name=\0"s,
      std::string(1, '\x80'),
  };
  for (const auto& source : hostile) {
    QuarantineEntry entry = sample_entry(sample_time(), 1);
    entry.cause = "freeze:web_form";
    entry.frozen_source = source;
    std::string text;
    ASSERT_NO_THROW(text = entry_to_json(entry).dump()) << ::testing::PrintToString(source);
    auto back = entry_from_json(nlohmann::json::parse(text));
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(back->frozen_source, source) << "got " << ::testing::PrintToString(back->frozen_source) << ", want "
                                           << ::testing::PrintToString(source);
  }
  QuarantineEntry entry = sample_entry(sample_time(), 1);
  entry.frozen_source = "sasl_user=\xff";
  EXPECT_EQ(entry_to_json(entry)["frozen_source"], nlohmann::json({{"base64", "c2FzbF91c2VyPf8="}}));
}

TEST(EntryJson, ScoreBandEntryHasAnEmptyFrozenSource) {
  const auto json = entry_to_json(sample_entry(sample_time(), 1));
  EXPECT_EQ(json["frozen_source"], "");
}

// Written by a version without containment: no "frozen_source" key. Spools
// survive upgrades, so it must still read, as stopped by the score band.
TEST(EntryJson, EntryWithoutFrozenSourceFromAnOlderVersionReadsBackWithItEmpty) {
  const auto old = nlohmann::json::parse(R"json({
    "id": "20261127T101500Z-0123456789abcdef", "time": "2026-11-27T10:15:00Z",
    "time_unix_ns": 1795774500000000000, "mode": "spool", "queue_id": "4AbCdEf123",
    "client_address": "192.0.2.10", "client_name": "web1.example.org", "helo": "web1.example.org",
    "sasl_user": "", "sender": "alice@example.org", "recipients": ["bob@example.net"],
    "subject": "quarterly report", "size_bytes": 120, "score": 30,
    "reasons": ["rcpts_per_msg=200>50 (+30)"], "cause": "score", "fingerprint": ""})json");
  auto back = entry_from_json(old);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->frozen_source, "");
  EXPECT_EQ(back->id, "20261127T101500Z-0123456789abcdef");
  EXPECT_EQ(back->sender, "alice@example.org");
}

TEST(EntryJson, ShowsTimeForPeopleAndValidUtf8AsPlainStrings) {
  QuarantineEntry entry = sample_entry(sample_time(), 1);
  entry.subject = "Grüße \xe2\x82\xac";
  const auto json = entry_to_json(entry);
  EXPECT_EQ(json["time"], "2026-11-27T10:15:00Z");
  EXPECT_EQ(json["subject"], "Grüße \xe2\x82\xac");
  EXPECT_EQ(json["mode"], "spool");
  EXPECT_EQ(json["recipients"][1], "b@example.com");
}

TEST(EntryJson, InvalidUtf8BecomesBase64AndComesBackExact) {
  QuarantineEntry entry = sample_entry(sample_time(), 1);
  entry.subject = "Gr\xfc\xdf" "e";  // Latin-1, not UTF-8
  entry.recipients = {"ok@example.org", "\xff\xfe@example.org"};
  const auto json = entry_to_json(entry);
  ASSERT_TRUE(json["subject"].is_object());
  EXPECT_EQ(json["subject"]["base64"], "R3L832U=");
  EXPECT_EQ(json["recipients"][0], "ok@example.org");
  EXPECT_TRUE(json["recipients"][1].is_object());
  auto back = entry_from_json(nlohmann::json::parse(json.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->subject, entry.subject);
  EXPECT_EQ(back->recipients, entry.recipients);
}

TEST(EntryJson, KeepsNulBytes) {
  QuarantineEntry entry = sample_entry(sample_time(), 1);
  entry.subject = "a\0b\0"s;
  entry.helo = "\0"s;
  auto back = entry_from_json(nlohmann::json::parse(entry_to_json(entry).dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->subject, "a\0b\0"s);
  EXPECT_EQ(back->helo, "\0"s);
}

TEST(Utf8Validation, RejectsOverlongSurrogatesAndOutOfRange) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_TRUE(is_valid_utf8("\xed\x9f\xbf"));       // U+D7FF
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));
}

// Every byte string must survive a trip through the file's JSON, and the
// writer must never throw (nlohmann's dump() throws on invalid UTF-8 if a
// string slips past the validator).
TEST(EntryJson, RandomByteStringsRoundTripExactly) {
  std::mt19937_64 random(12345);
  for (int i = 0; i < 3000; ++i) {
    std::string bytes(random() % 12, '\0');
    for (char& c : bytes) {
      // Mostly high bytes, where UTF-8 edge cases live.
      c = static_cast<char>(random() % 3 == 0 ? random() % 128 : 0x80 + random() % 128);
    }
    QuarantineEntry entry = sample_entry(sample_time(), 1);
    entry.subject = bytes;
    entry.recipients = {bytes, bytes + "@x"};
    std::string text;
    ASSERT_NO_THROW(text = entry_to_json(entry).dump()) << ::testing::PrintToString(bytes);
    auto back = entry_from_json(nlohmann::json::parse(text));
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(back->subject, bytes);
    ASSERT_EQ(back->recipients, entry.recipients);
  }
}

TEST(EntryJson, RefusesMalformedMetadataNamingTheKey) {
  const auto good = entry_to_json(sample_entry(sample_time(), 1));
  struct Case {
    std::string key;
    nlohmann::json value;
    std::string error_start;
  };
  const std::vector<Case> cases = {
      {"recipients", "a@b", "recipients:"},
      {"recipients", nlohmann::json::array({1}), "recipients:"},
      {"subject", nlohmann::json{{"base64", "!!!!"}}, "subject:"},
      {"subject", nlohmann::json{{"base64", "QQ="}}, "subject:"},
      {"subject", nlohmann::json{{"base64", "QR=="}}, "subject:"},  // non-canonical
      {"subject", nlohmann::json{{"hex", "41"}}, "subject:"},
      {"size_bytes", -1, "size_bytes:"},
      {"score", "12", "score:"},
      {"score", 4294967296LL, "score:"},
      {"mode", "queue", "mode:"},
      {"id", "../../etc/passwd", "id:"},
      {"time_unix_ns", 1.5, "time_unix_ns:"},
      // Optional, but not any type when present.
      {"frozen_source", 7, "frozen_source:"},
      {"frozen_source", nullptr, "frozen_source:"},
      {"frozen_source", nlohmann::json{{"base64", "QR=="}}, "frozen_source:"},
  };
  for (const auto& c : cases) {
    auto json = good;
    json[c.key] = c.value;
    auto back = entry_from_json(json);
    ASSERT_FALSE(back) << c.key << " = " << c.value.dump();
    EXPECT_EQ(back.error().rfind(c.error_start, 0), 0u) << "got " << back.error() << ", want it to start with "
                                                        << c.error_start;
  }
  auto missing = good;
  missing.erase("sender");
  auto back = entry_from_json(missing);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error(), "sender: missing");
  EXPECT_FALSE(entry_from_json(nlohmann::json::array()));
}

TEST(EntryJson, IgnoresKeysAddedByANewerWriter) {
  auto json = entry_to_json(sample_entry(sample_time(), 1));
  json["containment"] = {{"rule", "x"}};
  EXPECT_TRUE(entry_from_json(json));
}

}  // namespace
}  // namespace floodgate::quarantine
