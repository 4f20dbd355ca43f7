// make_spool_entries SPOOL_DIR < entries.json
//
// Test helper for the floodgatectl tests: stores the entries described on
// stdin into the spool with SpoolStore (the daemon's own writer), so the
// CLI is tested against real entry files without a running milter.
//
// Input: a JSON array; each object may set any QuarantineEntry field by
// its name (strings, "recipients"/"reasons" arrays, "score"), plus
// "age_seconds" (how long ago it was quarantined), "mode" ("spool" or
// "hold") and "message" (the stored message). A string may be given as
// {"hex": "..."} for bytes that are not UTF-8. Prints each new id on its
// own line, in input order. Exit 1 with a message on any failure.
#include <iostream>
#include <iterator>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "quarantine/message_buffer.hpp"
#include "quarantine/spool_store.hpp"

namespace {

using floodgate::quarantine::QuarantineEntry;

std::string bytes_of(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  const std::string hex = value.at("hex").get<std::string>();
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_spool_entries SPOOL_DIR < entries.json\n";
    return 2;
  }
  try {
    auto store = floodgate::quarantine::SpoolStore::open_spool(argv[1]);
    if (!store) throw std::runtime_error(store.error().message);
    const std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    const auto input = nlohmann::json::parse(text);
    std::mt19937_64 random(std::random_device{}());
    const auto now = std::chrono::system_clock::now();
    for (const auto& item : input) {
      QuarantineEntry entry;
      entry.time = now - std::chrono::seconds(item.value("age_seconds", 0));
      entry.id = floodgate::quarantine::make_entry_id(entry.time, random());
      entry.mode = item.value("mode", "spool") == "hold" ? floodgate::quarantine::EntryMode::Hold
                                                         : floodgate::quarantine::EntryMode::Spool;
      for (auto [key, field] : {std::pair{"queue_id", &entry.queue_id},
                                {"client_address", &entry.client_address},
                                {"client_name", &entry.client_name},
                                {"helo", &entry.helo},
                                {"sasl_user", &entry.sasl_user},
                                {"sender", &entry.sender},
                                {"subject", &entry.subject},
                                {"cause", &entry.cause},
                                {"fingerprint", &entry.fingerprint},
                                {"frozen_source", &entry.frozen_source}}) {
        if (item.contains(key)) *field = bytes_of(item[key]);
      }
      for (const auto& recipient : item.value("recipients", nlohmann::json::array())) {
        entry.recipients.push_back(bytes_of(recipient));
      }
      for (const auto& reason : item.value("reasons", nlohmann::json::array()))
        entry.reasons.push_back(bytes_of(reason));
      entry.score = item.value("score", 0);

      const std::string message = item.contains("message") ? bytes_of(item["message"]) : std::string();
      floodgate::quarantine::MessageBuffer buffer((*store)->temporary_directory(), 1 << 20, 1ull << 30);
      buffer.append(message);
      entry.size_bytes = message.size();
      const bool held = entry.mode == floodgate::quarantine::EntryMode::Hold;
      if (auto stored = (*store)->store(entry, held ? nullptr : &buffer); !stored) {
        throw std::runtime_error(stored.error().message);
      }
      std::cout << entry.id << "\n";
    }
  } catch (const std::exception& error) {
    std::cerr << "make_spool_entries: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
