// Resolving the account to run as, and giving a unix socket and the spool to
// it. Switching user itself is exercised by the packaging and Postfix tests
// (it cannot be undone inside a test process).
#include "milter/privileges.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "tests/support/scratch_directory.hpp"

namespace floodgate::milter {
namespace {

TEST(Privileges, ResolvesAUserWithItsPrimaryGroup) {
  const auto account = resolve_account("root");
  ASSERT_TRUE(account) << account.error();
  EXPECT_EQ(account->uid, 0u);
  EXPECT_EQ(account->gid, 0u);
  EXPECT_EQ(account->user_name, "root");
}

TEST(Privileges, ResolvesUserAndGroupByNameOrNumber) {
  const auto named = resolve_account("nobody:nogroup");
  ASSERT_TRUE(named) << named.error();
  EXPECT_NE(named->uid, 0u);
  const auto numeric = resolve_account("4242:4343");
  ASSERT_TRUE(numeric) << numeric.error();
  EXPECT_EQ(numeric->uid, 4242u);
  EXPECT_EQ(numeric->gid, 4343u);
}

TEST(Privileges, AnUnknownUserOrGroupIsNamedInTheError) {
  EXPECT_EQ(resolve_account("no-such-user-fg").error(), "no such user \"no-such-user-fg\"");
  EXPECT_EQ(resolve_account("root:no-such-group-fg").error(), "no such group \"no-such-group-fg\"");
  EXPECT_NE(resolve_account("4242").error().find("name its group"), std::string::npos);
}

TEST(Privileges, BecomingWhoWeAlreadyAreIsFine) {
  EXPECT_TRUE(become(Account{.uid = ::geteuid(), .gid = ::getegid(), .user_name = ""}));
}

TEST(Privileges, UnixSocketPathsComeFromUnixAndLocalSpecsOnly) {
  EXPECT_EQ(unix_socket_path("unix:/run/fg.sock"), "/run/fg.sock");
  EXPECT_EQ(unix_socket_path("local:/run/fg.sock"), "/run/fg.sock");
  EXPECT_EQ(unix_socket_path("inet:8890@127.0.0.1"), "");
}

TEST(Privileges, ASocketGetsTheConfiguredOwnerGroupAndMode) {
  const floodgate::testing::ScratchDirectory scratch("fg-privileges");
  const std::string path = (std::filesystem::path(scratch.path()) / "milter.sock").string();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);

  const auto set = set_socket_access(path, "nobody", "nogroup", 0660u);
  ASSERT_TRUE(set) << set.error();
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0660u);
  EXPECT_EQ(status.st_uid, resolve_user_id("nobody").value());
  EXPECT_EQ(status.st_gid, resolve_group_id("nogroup").value());
  ::close(fd);
}

TEST(Privileges, AnUnknownSocketGroupIsNamedWithItsSetting) {
  const auto set = set_socket_access("/nonexistent", "", "no-such-group-fg", std::nullopt);
  ASSERT_FALSE(set);
  EXPECT_EQ(set.error(), "milter.socket_group: no such group \"no-such-group-fg\"");
}

TEST(Privileges, AMissingSpoolIsCreatedForTheAccountAndAnExistingOneIsLeftAlone) {
  const floodgate::testing::ScratchDirectory scratch("fg-privileges");
  const std::string spool = (std::filesystem::path(scratch.path()) / "var" / "spool" / "quarantine").string();
  const Account nobody = resolve_account("nobody:nogroup").value();
  ASSERT_TRUE(prepare_directory_for(spool, nobody));
  struct stat status {};
  ASSERT_EQ(::stat(spool.c_str(), &status), 0);
  EXPECT_EQ(status.st_uid, nobody.uid);
  EXPECT_EQ(status.st_mode & 07777, 0700u);

  ASSERT_EQ(::chown(spool.c_str(), 0, 0), 0);
  ASSERT_TRUE(prepare_directory_for(spool, nobody));
  ASSERT_EQ(::stat(spool.c_str(), &status), 0);
  EXPECT_EQ(status.st_uid, 0u) << "an existing spool keeps its owner";
}

}  // namespace
}  // namespace floodgate::milter
