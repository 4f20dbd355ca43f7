#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <string>

#include "quarantine/message_buffer.hpp"
#include "quarantine_test_support.hpp"

namespace floodgate::quarantine {
namespace {

using testing::names_in;
using testing::ScratchDirectory;

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// Feeds `message` in chunks of varying size, as a milter's body callbacks do.
void append_in_chunks(MessageBuffer& buffer, std::string_view message, unsigned seed) {
  std::mt19937 random(seed);
  while (!message.empty()) {
    const std::size_t chunk = std::min<std::size_t>(message.size(), 1 + random() % 70000);
    buffer.append(message.substr(0, chunk));
    message.remove_prefix(chunk);
  }
}

std::string read_back(MessageBuffer& buffer, std::size_t* largest_piece = nullptr) {
  std::string out;
  const bool ok = buffer.for_each_piece([&](std::string_view piece) {
    if (largest_piece != nullptr) *largest_piece = std::max(*largest_piece, piece.size());
    out.append(piece);
    return true;
  });
  EXPECT_TRUE(ok) << buffer.error();
  return out;
}

TEST(MessageBuffer, SmallMessageStaysInMemory) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 1024, 1 << 20);
  buffer.append("Subject: hi\r\n\r\n");
  buffer.append("body\r\n");
  EXPECT_FALSE(buffer.spilled());
  EXPECT_EQ(buffer.size(), 21u);
  EXPECT_EQ(read_back(buffer), "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(MessageBuffer, ExactlyAtTheMemoryLimitDoesNotSpill) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 10, 100);
  buffer.append("0123456789");
  EXPECT_FALSE(buffer.spilled());
  buffer.append("a");
  EXPECT_TRUE(buffer.spilled());
  EXPECT_EQ(read_back(buffer), "0123456789a");
}

TEST(MessageBuffer, LargeMessageSpillsAndReadsBackByteExactInBoundedPieces) {
  ScratchDirectory dir;
  const std::string message = random_bytes(3 * 1024 * 1024 + 17, 1);
  MessageBuffer buffer(dir.path(), 256 * 1024, 50ull << 20);
  append_in_chunks(buffer, message, 2);
  EXPECT_TRUE(buffer.spilled());
  EXPECT_FALSE(buffer.failed()) << buffer.error();
  EXPECT_EQ(buffer.size(), message.size());
  std::size_t largest = 0;
  EXPECT_TRUE(read_back(buffer, &largest) == message);
  EXPECT_LE(largest, 64u * 1024);
  // Reading twice works: pread does not move a file offset.
  EXPECT_TRUE(read_back(buffer) == message);
  // The spill file has no name (O_TMPFILE, or unlinked at once).
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(MessageBuffer, ZeroMemoryLimitSpillsFromTheFirstByte) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 0, 100);
  buffer.append("x");
  EXPECT_TRUE(buffer.spilled());
  EXPECT_EQ(read_back(buffer), "x");
}

TEST(MessageBuffer, OverMaxBytesOverflowsKeepsNothingAndRefusesToReadBack) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 4, 10);
  buffer.append("0123456789");
  EXPECT_FALSE(buffer.overflowed());
  buffer.append("a");
  EXPECT_TRUE(buffer.overflowed());
  EXPECT_FALSE(buffer.spilled());  // the spill file was let go
  buffer.append("more");
  EXPECT_EQ(buffer.size(), 15u);   // still counts, for the log line
  bool called = false;
  EXPECT_FALSE(buffer.for_each_piece([&](std::string_view) { return called = true; }));
  EXPECT_FALSE(called);
  EXPECT_NE(buffer.error().find("larger than 10 bytes"), std::string::npos) << buffer.error();
}

TEST(MessageBuffer, SpillDirectoryMissingIsAStickyError) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path() + "/absent", 4, 1000);
  buffer.append("abc");
  EXPECT_FALSE(buffer.failed());
  buffer.append("defgh");
  ASSERT_TRUE(buffer.failed());
  EXPECT_EQ(buffer.error(), "create spill file in " + dir.path() + "/absent: No such file or directory");
  ASSERT_EQ(::mkdir((dir.path() + "/absent").c_str(), 0700), 0);
  buffer.append("ijk");  // the directory exists now; the error stays
  EXPECT_TRUE(buffer.failed());
  EXPECT_FALSE(buffer.for_each_piece([](std::string_view) { return true; }));
}

TEST(MessageBuffer, SpillDirectoryThatIsAFileIsAnError) {
  ScratchDirectory dir;
  const std::string file = dir.path() + "/file";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0600));
  MessageBuffer buffer(file, 0, 1000);
  buffer.append("a");
  EXPECT_TRUE(buffer.failed());
  EXPECT_NE(buffer.error().find("Not a directory"), std::string::npos) << buffer.error();
}

TEST(MessageBuffer, SinkReturningFalseStopsTheWalkWithoutAnError) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 0, 1 << 20);
  buffer.append(random_bytes(200000, 3));
  int pieces = 0;
  EXPECT_FALSE(buffer.for_each_piece([&](std::string_view) { return ++pieces < 2; }));
  EXPECT_EQ(pieces, 2);
  EXPECT_FALSE(buffer.failed());
}

TEST(MessageBuffer, EmptyMessageHasNoPieces) {
  ScratchDirectory dir;
  MessageBuffer buffer(dir.path(), 10, 10);
  buffer.append("");
  int pieces = 0;
  EXPECT_TRUE(buffer.for_each_piece([&](std::string_view) { return ++pieces > 0; }));
  EXPECT_EQ(pieces, 0);
  EXPECT_EQ(buffer.size(), 0u);
}

}  // namespace
}  // namespace floodgate::quarantine
