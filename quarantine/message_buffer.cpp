#include "quarantine/message_buffer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace floodgate::quarantine {
namespace {

// Pieces handed to for_each_piece: large enough to keep syscalls few, small
// enough that reading a spilled 50 MB message costs 64 KiB of heap.
constexpr std::size_t k_piece_size = 64 * 1024;

std::string errno_text(int error) { return std::strerror(error); }

}  // namespace

MessageBuffer::MessageBuffer(std::string spill_directory, std::size_t memory_limit, std::uint64_t max_bytes)
    : m_spill_directory(std::move(spill_directory)), m_memory_limit(memory_limit), m_max_bytes(max_bytes) {}

MessageBuffer::~MessageBuffer() {
  if (m_spill_fd >= 0) ::close(m_spill_fd);
}

void MessageBuffer::append(std::string_view bytes) {
  if (bytes.empty()) return;
  // size() keeps counting past the cap so the caller can log how big the
  // message was; the counter saturates rather than wraps.
  const std::uint64_t new_size =
      m_size > UINT64_MAX - bytes.size() ? UINT64_MAX : m_size + bytes.size();
  if (m_overflowed || failed()) {
    m_size = new_size;
    return;
  }
  if (new_size > m_max_bytes) {
    // Nothing more is kept and what was kept is useless: free it now rather
    // than hold up to max_bytes until the message ends.
    m_overflowed = true;
    m_size = new_size;
    std::string().swap(m_memory);
    if (m_spill_fd >= 0) {
      ::close(m_spill_fd);
      m_spill_fd = -1;
    }
    return;
  }
  m_size = new_size;
  if (m_spill_fd < 0 && m_memory.size() + bytes.size() <= m_memory_limit) {
    m_memory.append(bytes);
    return;
  }
  if (m_spill_fd < 0 && !spill()) return;
  const char* data = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(m_spill_fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      m_error = "write spill file in " + m_spill_directory + ": " + errno_text(written < 0 ? errno : EIO);
      return;
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

// Moves what is in memory to a new temporary file. O_TMPFILE gives a file
// with no name, so a crash cannot leave it behind; where the filesystem
// lacks it, mkstemp + unlink leaves a name for a moment only (and
// SpoolStore::open_spool removes "spill-*" leftovers).
bool MessageBuffer::spill() {
  int fd = -1;
#ifdef O_TMPFILE
  fd = ::open(m_spill_directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    m_error = "create spill file in " + m_spill_directory + ": " + errno_text(errno);
    return false;
  }
#endif
  if (fd < 0) {
    std::string path = m_spill_directory + "/spill-XXXXXX";
    std::vector<char> name(path.begin(), path.end());
    name.push_back('\0');
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) {
      m_error = "create spill file in " + m_spill_directory + ": " + errno_text(errno);
      return false;
    }
    ::unlink(name.data());
  }
  m_spill_fd = fd;
  const char* data = m_memory.data();
  std::size_t left = m_memory.size();
  while (left > 0) {
    const ssize_t written = ::write(m_spill_fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      m_error = "write spill file in " + m_spill_directory + ": " + errno_text(written < 0 ? errno : EIO);
      return false;
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  std::string().swap(m_memory);
  return true;
}

// A sink returning false stops the walk: the result is false but error()
// is left alone, since the failure is the sink's to report.
bool MessageBuffer::for_each_piece(const std::function<bool(std::string_view)>& sink) {
  if (failed()) return false;
  if (m_overflowed) {
    m_error = "message larger than " + std::to_string(m_max_bytes) + " bytes was not kept";
    return false;
  }
  if (m_spill_fd < 0) {
    for (std::size_t at = 0; at < m_memory.size(); at += k_piece_size) {
      if (!sink(std::string_view(m_memory).substr(at, k_piece_size))) return false;
    }
    return true;
  }
  std::vector<char> piece(static_cast<std::size_t>(std::min<std::uint64_t>(k_piece_size, m_size)));
  std::uint64_t offset = 0;
  while (offset < m_size) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), m_size - offset));
    const ssize_t got = ::pread(m_spill_fd, piece.data(), want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      m_error = "read spill file: " + errno_text(errno);
      return false;
    }
    if (got == 0) {
      m_error = "read spill file: ended at byte " + std::to_string(offset) + " of " + std::to_string(m_size);
      return false;
    }
    if (!sink(std::string_view(piece.data(), static_cast<std::size_t>(got)))) return false;
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

}  // namespace floodgate::quarantine
