// Malformed and hostile MIME through the content fingerprinter's public
// interface: every message must finish() with a fingerprint or with none
// (and then, where the implementation gives reasons, a reason), quickly and
// in bounded memory. Nothing here checks *which* digest comes out.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fingerprinter_factory.hpp"
#include "policy/content_fingerprint.hpp"

namespace floodgate::policy {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using BodyFeeder = std::function<void(ContentFingerprinter&)>;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool k_sanitized = true;
#else
constexpr bool k_sanitized = false;
#endif
#else
constexpr bool k_sanitized = false;
#endif

// Every case measured under 150 ms in RelWithDebInfo and under 300 ms with
// ASan/UBSan; sanitizers may cost up to ~10x on slower code.
constexpr std::chrono::milliseconds k_time_bound{k_sanitized ? 20'000 : 2'000};
// The 100 MB line: a fingerprinter that stops reading at its text cap takes
// milliseconds (measured: under 15 ms, sanitized or not); one that scans all
// of it at the 100 MB/s target takes a second. Ten times that leaves room
// for a loaded CI machine while still catching a stall.
constexpr std::chrono::milliseconds k_time_bound_100_mb{k_sanitized ? 60'000 : 10'000};
// The 100 MB line may grow the peak resident set by this much at most: the
// fingerprinter keeps bounded text, never the body.
constexpr std::int64_t k_memory_bound_kib = 50 * 1024;
constexpr std::size_t k_chunk = 64 * 1024;

struct Outcome {
  ContentFingerprint fingerprint;
  std::chrono::milliseconds elapsed;
};

Outcome run(const Headers& headers, const BodyFeeder& feed_body) {
  const auto start = std::chrono::steady_clock::now();
  auto fingerprinter = testing::make_fingerprinter_under_test();
  for (const auto& [name, value] : headers) fingerprinter->add_header(name, value);
  feed_body(*fingerprinter);
  Outcome outcome{fingerprinter->finish(), {}};
  outcome.elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return outcome;
}

BodyFeeder in_chunks(std::string body) {
  return [body = std::move(body)](ContentFingerprinter& fingerprinter) {
    for (std::size_t at = 0; at < body.size(); at += k_chunk) {
      fingerprinter.add_body_chunk(std::string_view(body).substr(at, k_chunk));
    }
  };
}

// Whether the implementation under test explains a missing fingerprint:
// asked of the plainest case, an empty message.
bool gives_reasons() {
  static const bool gives = !run({}, [](ContentFingerprinter&) {}).fingerprint.unfingerprintable.empty();
  return gives;
}

void expect_sound(const Outcome& outcome, std::string_view what,
                  std::chrono::milliseconds time_bound = k_time_bound) {
  const ContentFingerprint& fp = outcome.fingerprint;
  EXPECT_LE(outcome.elapsed, time_bound)
      << what << ": took " << outcome.elapsed.count() << " ms, want at most " << time_bound.count();
  if (fp.present) {
    EXPECT_FALSE(fp.method.empty()) << what << ": present, got no method";
    return;
  }
  EXPECT_EQ(fp.digest, 0u) << what << ": not present, got digest " << fp.digest << ", want 0";
  EXPECT_TRUE(fp.bands.empty()) << what << ": not present, got " << fp.bands.size()
                                << " band keys, want none";
  if (gives_reasons()) {
    EXPECT_FALSE(fp.unfingerprintable.empty()) << what << ": not present, got no reason";
  }
}

Headers multipart(std::string_view boundary, std::string_view subtype = "mixed") {
  return {{"MIME-Version", " 1.0"},
          {"Content-Type",
           " multipart/" + std::string(subtype) + "; boundary=\"" + std::string(boundary) + "\""}};
}

Headers text_part(std::string_view encoding) {
  return {{"Content-Type", " text/plain; charset=utf-8"},
          {"Content-Transfer-Encoding", " " + std::string(encoding)}};
}

const std::string k_words =
    "Dear friend, our warehouse clearance ends tonight: every order ships free "
    "and the first hundred buyers get a second pair at no cost. ";

// Peak resident set of this process, from /proc/self/status; -1 if unknown.
std::int64_t peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(MalformedMime, MissingClosingBoundaryStillFingerprintsTheParts) {
  const Outcome outcome = run(multipart("b1"), in_chunks("--b1\r\nContent-Type: text/plain\r\n\r\n" +
                                                         k_words + "\r\n--b1\r\n\r\n" + k_words));
  expect_sound(outcome, "missing closing boundary");
  EXPECT_TRUE(outcome.fingerprint.present) << "got no fingerprint for readable text parts";
}

TEST(MalformedMime, BoundaryDeclaredButNeverUsed) {
  expect_sound(run(multipart("never-seen"), in_chunks(k_words + "\r\n" + k_words)), "unused boundary");
  expect_sound(run(multipart(""), in_chunks("--\r\n" + k_words)), "empty boundary");
  expect_sound(run({{"Content-Type", " multipart/mixed"}}, in_chunks("--x\r\n\r\n" + k_words)),
               "multipart without boundary");
}

TEST(MalformedMime, BadBase64IsDecodedAsFarAsItGoes) {
  const std::pair<std::string_view, std::string> cases[] = {
      {"garbage", "!!!!****@@@@ this is not base64 at all ~~~ \x01\x02\r\n"},
      {"truncated", "RGVhciBmcmllbmQsIG91ciB3YXJlaG91c2UgY2xlYXJhbmNl"},
      {"truncated mid-quantum", "RGVhciBmcmllbmQsIG91ciB3YXJlaG91c2UgY2xlYXJhbmN"},
      {"wrong padding", "RGVh=ciBm==cmll===bmQs====\r\nIG91ciB=3YXJl\r\n="},
      {"padding only", "====\r\n====\r\n"},
      {"one character lines", std::string(5000, 'Q') + "\r\n" + std::string(3000, '=')},
  };
  for (const auto& [what, body] : cases) {
    expect_sound(run(text_part("base64"), in_chunks(body)), what);
  }
}

TEST(MalformedMime, BadQuotedPrintableIsDecodedAsFarAsItGoes) {
  const std::pair<std::string_view, std::string> cases[] = {
      {"bad hex", "Dear =ZZfriend =G1 =4 our =\r\nwarehouse=3"},
      {"soft breaks only", std::string(10000, '=') + "\r\n=\r\n="},
      {"escape at the end", k_words + "="},
      {"escape cut by chunk end", std::string(k_chunk - 1, 'a') + "=C3=A9"},
  };
  for (const auto& [what, body] : cases) {
    expect_sound(run(text_part("quoted-printable"), in_chunks(body)), what);
  }
}

TEST(MalformedMime, TenThousandNestedMultipartsFinishQuickly) {
  constexpr int k_depth = 10'000;
  std::string body;
  for (int i = 0; i < k_depth; ++i) {
    body += "--b" + std::to_string(i) + "\r\nContent-Type: multipart/mixed; boundary=\"b" +
            std::to_string(i + 1) + "\"\r\n\r\n";
  }
  body += "--b" + std::to_string(k_depth) + "\r\nContent-Type: text/plain\r\n\r\n" + k_words + "\r\n";
  for (int i = k_depth; i >= 0; --i) body += "--b" + std::to_string(i) + "--\r\n";
  expect_sound(run(multipart("b0"), in_chunks(body)), "10,000 nested multiparts");
}

TEST(MalformedMime, HundredThousandPartsFinishQuickly) {
  std::string body;
  for (int i = 0; i < 100'000; ++i) {
    body += "--p\r\nContent-Type: text/plain\r\n\r\npart " + std::to_string(i) + "\r\n";
  }
  body += "--p--\r\n";
  expect_sound(run(multipart("p"), in_chunks(body)), "100,000 parts");
}

TEST(MalformedMime, HundredMegabyteLineWithoutNewlineInBoundedTimeAndMemory) {
  constexpr std::size_t k_total = 100 * 1024 * 1024;
  std::string chunk;
  while (chunk.size() < k_chunk) chunk += k_words;
  chunk.resize(k_chunk);
  for (char& c : chunk) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  for (const auto& [what, headers] :
       {std::pair{"text/plain", text_part("8bit")}, std::pair{"multipart", multipart("b")}}) {
    const std::int64_t peak_before = peak_rss_kib();
    const Outcome outcome = run(headers, [&](ContentFingerprinter& fingerprinter) {
      for (std::size_t sent = 0; sent < k_total; sent += chunk.size()) {
        fingerprinter.add_body_chunk(chunk);
      }
    });
    const std::int64_t peak_after = peak_rss_kib();
    expect_sound(outcome, std::string("100 MB line, ") + what, k_time_bound_100_mb);
    std::cout << "100 MB line, " << what << ": " << outcome.elapsed.count() << " ms, peak RSS grew "
              << (peak_after - peak_before) << " KiB\n";
    // ASan's quarantine and shadow memory make RSS meaningless there.
    if (!k_sanitized && peak_before > 0) {
      EXPECT_LE(peak_after - peak_before, k_memory_bound_kib)
          << what << ": peak RSS grew by " << (peak_after - peak_before) << " KiB, want at most "
          << k_memory_bound_kib;
    }
  }
}

TEST(MalformedMime, TenMegabyteHeadersAreCut) {
  const std::string huge(10 * 1024 * 1024, 'x');
  expect_sound(
      run({{"Content-Type", " text/plain; charset=\"" + huge + "\""}, {"Subject", huge}}, in_chunks(k_words)),
      "10 MB message header");
  expect_sound(run({{"Content-Type", " multipart/mixed; boundary=" + huge}}, in_chunks(k_words)),
               "10 MB boundary");
  // Inside the body: a part header of 10 MB, one line and folded.
  std::string folded;
  for (std::size_t i = 0; i < 10 * 1024; ++i) folded += " " + std::string(1022, 'y') + "\r\n";
  for (const auto& [what, part_header] : {std::pair{"10 MB part header line", "X-Junk: " + huge + "\r\n"},
                                          std::pair{"10 MB folded part header", "X-Junk:" + folded}}) {
    expect_sound(run(multipart("b"), in_chunks("--b\r\n" + part_header + "Content-Type: text/plain\r\n\r\n" +
                                               k_words + "\r\n--b--\r\n")),
                 what);
  }
}

TEST(MalformedMime, BinaryGarbageBody) {
  std::mt19937 random(5);
  std::string garbage(4 * 1024 * 1024, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  for (const auto& [what, headers] :
       {std::pair{"text/plain", text_part("8bit")}, std::pair{"base64", text_part("base64")},
        std::pair{"quoted-printable", text_part("quoted-printable")}, std::pair{"multipart", multipart("b")},
        std::pair{"html", Headers{{"Content-Type", " text/html"}}}}) {
    expect_sound(run(headers, in_chunks(garbage)), std::string("binary garbage, ") + what);
  }
}

TEST(MalformedMime, EmptyMessageHasNoFingerprint) {
  const Outcome nothing = run({}, [](ContentFingerprinter&) {});
  expect_sound(nothing, "no headers, no body");
  EXPECT_FALSE(nothing.fingerprint.present) << "got a fingerprint of nothing";
  const Outcome empty_chunk = run(text_part("7bit"), in_chunks(""));
  expect_sound(empty_chunk, "headers, empty body");
  EXPECT_FALSE(empty_chunk.fingerprint.present) << "got a fingerprint of an empty body";
  const Outcome empty_parts = run(multipart("b"), in_chunks("--b\r\n\r\n--b\r\n\r\n--b--\r\n"));
  expect_sound(empty_parts, "empty parts");
  EXPECT_FALSE(empty_parts.fingerprint.present) << "got a fingerprint of empty parts";
}

}  // namespace
}  // namespace floodgate::policy
