// The on-disk form of one spool entry, <dir>/<id>.fgq:
//
//   Floodgate-Quarantine: 1\n
//   Metadata-Length: <N>\n
//   \n
//   <N bytes: the entry as JSON, see entry_json.hpp>\n
//   <the message, byte for byte; nothing in hold mode>
//
// The length prefix lets a reader take the metadata without scanning the
// message, and find the message without parsing it. A reader checks the
// version, the length, the JSON, that the id inside matches the file name,
// and that the message is exactly size_bytes long (spool mode) — so a
// truncated or foreign file is reported, never half-used.
//
// SECURITY: files are opened O_NOFOLLOW and must be regular files; the
// metadata length is capped (k_max_metadata_bytes) before anything is
// allocated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "quarantine/entry.hpp"

namespace floodgate::quarantine {

inline constexpr std::string_view k_entry_suffix = ".fgq";
// 5000 recipients of 300 bytes in base64 still fit many times over.
inline constexpr std::uint64_t k_max_metadata_bytes = 64ull * 1024 * 1024;

// Owns a file descriptor; closes it once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return m_fd; }
  int release() {
    const int fd = m_fd;
    m_fd = -1;
    return fd;
  }
  void reset();

 private:
  int m_fd = -1;
};

// Everything before the message: preamble, JSON, newline. Fails only if
// the entry cannot be serialised (never for well-formed entries).
tl::expected<std::string, std::string> format_entry_head(const QuarantineEntry& entry);

struct OpenedEntry {
  QuarantineEntry entry;
  UniqueFd fd;                      // open for reading, for the message
  std::uint64_t message_offset = 0;
  std::uint64_t file_size = 0;
};

// Opens and checks <path>; `expected_id` is the id the file name claims.
// Errors say what is wrong without the path (the caller adds it).
tl::expected<OpenedEntry, std::string> open_entry_file(const std::string& path, std::string_view expected_id);

}  // namespace floodgate::quarantine
