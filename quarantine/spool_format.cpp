#include "quarantine/spool_format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "quarantine/entry_json.hpp"

namespace floodgate::quarantine {
namespace {

constexpr std::string_view k_magic = "Floodgate-Quarantine: 1\n";
constexpr std::string_view k_length_key = "Metadata-Length: ";
// Preamble: magic + key + at most 20 digits + "\n\n".
constexpr std::size_t k_max_preamble = k_magic.size() + k_length_key.size() + 20 + 2;

// Reads exactly `size` bytes at `offset`, or says why not.
tl::expected<void, std::string> pread_exact(int fd, char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    const ssize_t got = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return tl::unexpected(std::string("read: ") + std::strerror(errno));
    if (got == 0) return tl::unexpected(std::string("truncated metadata"));
    data += got;
    size -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return {};
}

}  // namespace

void UniqueFd::reset() {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = -1;
}

tl::expected<std::string, std::string> format_entry_head(const QuarantineEntry& entry) {
  std::string json;
  try {
    json = entry_to_json(entry).dump();
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(std::string("cannot encode metadata: ") + e.what());
  }
  std::string head;
  head.reserve(json.size() + k_max_preamble + 1);
  head.append(k_magic);
  head.append(k_length_key);
  head.append(std::to_string(json.size()));
  head.append("\n\n");
  head.append(json);
  head.push_back('\n');
  return head;
}

tl::expected<OpenedEntry, std::string> open_entry_file(const std::string& path, std::string_view expected_id) {
  OpenedEntry opened;
  opened.fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (opened.fd.get() < 0) return tl::unexpected(std::string(std::strerror(errno)));
  struct stat st {};
  if (::fstat(opened.fd.get(), &st) != 0) return tl::unexpected(std::string(std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return tl::unexpected(std::string("not a regular file"));
  opened.file_size = static_cast<std::uint64_t>(st.st_size);

  char preamble[k_max_preamble];
  const std::size_t preamble_size = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof preamble, opened.file_size));
  if (auto read = pread_exact(opened.fd.get(), preamble, preamble_size, 0); !read) {
    return tl::unexpected(read.error());
  }
  const std::string_view head(preamble, preamble_size);
  if (!head.starts_with(k_magic)) {
    return tl::unexpected(std::string("not a Floodgate quarantine entry (or an unsupported version)"));
  }
  std::string_view rest = head.substr(k_magic.size());
  if (!rest.starts_with(k_length_key)) return tl::unexpected(std::string("no Metadata-Length line"));
  rest.remove_prefix(k_length_key.size());
  std::uint64_t length = 0;
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 19) {
    length = length * 10 + static_cast<std::uint64_t>(rest[digits] - '0');
    ++digits;
  }
  if (digits == 0 || rest.substr(digits, 2) != "\n\n") return tl::unexpected(std::string("malformed Metadata-Length line"));
  if (length > k_max_metadata_bytes) return tl::unexpected(std::string("metadata too large"));
  const std::uint64_t json_offset = k_magic.size() + k_length_key.size() + digits + 2;
  if (json_offset + length + 1 > opened.file_size) return tl::unexpected(std::string("truncated metadata"));

  std::string json_text(static_cast<std::size_t>(length) + 1, '\0');
  if (auto read = pread_exact(opened.fd.get(), json_text.data(), json_text.size(), json_offset); !read) {
    return tl::unexpected(read.error());
  }
  if (json_text.back() != '\n') return tl::unexpected(std::string("metadata not followed by a newline"));
  json_text.pop_back();
  const nlohmann::json json = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return tl::unexpected(std::string("metadata is not valid JSON"));
  auto entry = entry_from_json(json);
  if (!entry) return tl::unexpected("metadata: " + entry.error());
  if (entry->id != expected_id) return tl::unexpected(std::string("metadata names another entry id"));

  opened.message_offset = json_offset + length + 1;
  const std::uint64_t message_size = opened.file_size - opened.message_offset;
  if (entry->mode == EntryMode::Spool && message_size != entry->size_bytes) {
    return tl::unexpected("message is " + std::to_string(message_size) + " bytes, metadata says " +
                          std::to_string(entry->size_bytes));
  }
  if (entry->mode == EntryMode::Hold && message_size != 0) {
    return tl::unexpected(std::string("hold-mode entry carries message bytes"));
  }
  opened.entry = std::move(*entry);
  return opened;
}

}  // namespace floodgate::quarantine
