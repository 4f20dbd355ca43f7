// Fuzzes what the milter hands a MessageSession from the SMTP client:
// client address and name, sender, recipients, header names and values,
// macros and body, then the decision and its log line, with the shipped
// config and the in-process counters. Aborts if a log line could carry a
// control character (a forged log line).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "milter/session.hpp"
#include "policy/config_loader.hpp"
#include "ratelimit/memory_counter_store.hpp"

namespace {

using namespace floodgate;

std::vector<std::string_view> split_fields(std::string_view input) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start <= input.size() && fields.size() < 64) {
    const std::size_t end = input.find('\0', start);
    fields.push_back(input.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return fields;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto config = policy::load_config_file(FLOODGATE_SOURCE_DIR "/conf/floodgate.yaml");
  static ratelimit::MemoryCounterStore counters;

  const auto fields = split_fields(std::string_view(reinterpret_cast<const char*>(data), size));
  auto field = [&](std::size_t i) { return i < fields.size() ? fields[i] : std::string_view{}; };

  milter::ConnectionInfo connection;
  connection.client_address = std::string(field(0));
  connection.client_name = std::string(field(1));
  milter::MessageSession session(config, connection);
  session.set_macro("{auth_authen}", field(2));
  session.set_sender(field(3));
  // Then alternating recipient / header name / header value, the last field is the body.
  for (std::size_t i = 4; i + 1 < fields.size(); i += 3) {
    session.add_recipient(field(i), (field(i).size() & 1) != 0);
    session.add_header(field(i + 1), field(i + 2));
  }
  session.add_body_chunk(fields.empty() ? std::string_view{} : fields.back());
  const auto decision = session.decide(counters, ratelimit::TimePoint(std::chrono::milliseconds(1'800'000'000'000)));
  const std::string line = milter::format_decision_log(session, decision, std::chrono::microseconds(1));
  for (const char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
  return 0;
}
