// MessageBuffer: the message as the milter receives it, kept so that a
// quarantine verdict at end-of-message can store it whole.
//
// The first `memory_limit` bytes stay in memory; past that the buffer
// spills everything to an unlinked-on-close temporary file in
// `spill_directory`, so a 50 MB message costs at most `memory_limit` of heap
// per connection. Appending past `max_bytes` marks the buffer overflowed
// and keeps nothing more (the message is then too big to quarantine, and
// the caller tempfails it rather than lose it).
//
// Failures (cannot create or write the spill file) are sticky and reported
// by failed()/error(); append() never throws for I/O. One buffer per
// message, used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace floodgate::quarantine {

class MessageBuffer {
 public:
  MessageBuffer(std::string spill_directory, std::size_t memory_limit, std::uint64_t max_bytes);
  ~MessageBuffer();
  MessageBuffer(const MessageBuffer&) = delete;
  MessageBuffer& operator=(const MessageBuffer&) = delete;

  void append(std::string_view bytes);

  std::uint64_t size() const { return m_size; }
  bool overflowed() const { return m_overflowed; }
  bool failed() const { return !m_error.empty(); }
  const std::string& error() const { return m_error; }
  bool spilled() const { return m_spill_fd >= 0; }

  // Hands the whole content, in order, to `sink` in pieces; returns false
  // (with error() set) if the spill file cannot be read back.
  bool for_each_piece(const std::function<bool(std::string_view)>& sink);

 private:
  bool spill();

  std::string m_spill_directory;
  std::size_t m_memory_limit;
  std::uint64_t m_max_bytes;
  std::string m_memory;
  int m_spill_fd = -1;
  std::uint64_t m_size = 0;
  bool m_overflowed = false;
  std::string m_error;
};

}  // namespace floodgate::quarantine
