// Where the API listens and who may use it: "@name" abstract sockets and file paths
// (api/unix_address.h), the credential rule (stack/api_access.h), and what SocketService::Create
// does with each: a name in use is refused, a path's directory must exist, a file-path socket
// is made owner-only, a program whose credentials are refused gets EACCES for every request.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/strings/str_cat.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "gtest/gtest.h"
#include "stack/api_access.h"
#include "stack/socket_service.h"
#include "stack/stack.h"
#include "tun/memory_link.h"

namespace dpm {
namespace {

TEST(UnixAddress, AtNameIsAnAbstractSocketWithoutTheNul) {
  auto a = api::ParseUnixAddress("@dpm/dpmd");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->abstract);
  EXPECT_EQ(a->addr.sun_path[0], '\0');
  EXPECT_EQ(std::string(a->addr.sun_path + 1, 8), "dpm/dpmd");
  EXPECT_EQ(a->length, offsetof(sockaddr_un, sun_path) + 1 + 8);
}

TEST(UnixAddress, AnythingElseIsAFilePath) {
  auto a = api::ParseUnixAddress("/tmp/x.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->abstract);
  EXPECT_STREQ(a->addr.sun_path, "/tmp/x.sock");
}

TEST(UnixAddress, EmptyAndTooLongAreRefusedWithTheLimit) {
  EXPECT_FALSE(api::ParseUnixAddress("").ok());
  EXPECT_FALSE(api::ParseUnixAddress("@").ok());
  EXPECT_TRUE(api::ParseUnixAddress("@" + std::string(107, 'x')).ok());
  auto too_long = api::ParseUnixAddress("@" + std::string(108, 'x'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("1..107"), std::string::npos) << too_long.status();
  EXPECT_TRUE(api::ParseUnixAddress("/" + std::string(106, 'x')).ok());
  EXPECT_FALSE(api::ParseUnixAddress("/" + std::string(107, 'x')).ok());
}

TEST(ApiAccess, OwnerAndRootOnlyWithoutAGroup) {
  stack::ApiAccessPolicy policy{1000, std::nullopt};
  EXPECT_TRUE(stack::PeerAllowed(policy, {1, 1000, 1000}, {}));
  EXPECT_TRUE(stack::PeerAllowed(policy, {1, 0, 0}, {}));
  EXPECT_FALSE(stack::PeerAllowed(policy, {1, 1001, 1000}, {1000}));
}

TEST(ApiAccess, AGroupLetsInItsMembersByPrimaryOrSupplementaryGroup) {
  stack::ApiAccessPolicy policy{1000, 500};
  EXPECT_TRUE(stack::PeerAllowed(policy, {1, 1001, 500}, {}));
  const std::vector<gid_t> groups = {20, 500};
  EXPECT_TRUE(stack::PeerAllowed(policy, {1, 1001, 1001}, groups));
  const std::vector<gid_t> others = {20, 501};
  EXPECT_FALSE(stack::PeerAllowed(policy, {1, 1001, 1001}, others));
}

TEST(ApiAccess, CheckPeerReadsTheKernelsCredentials) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
  stack::PeerCredentials peer;
  auto mine = stack::CheckPeer({::geteuid(), std::nullopt}, pair[0], &peer);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_TRUE(*mine);
  EXPECT_EQ(peer.pid, ::getpid());
  EXPECT_EQ(peer.uid, ::geteuid());
  // The same peer against a policy for another owner, when this test is not root.
  auto other = stack::CheckPeer({::geteuid() + 1, std::nullopt}, pair[0], &peer);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, ::geteuid() == 0);
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(ApiAccess, GroupsResolveByNameOrNumber) {
  auto number = stack::ResolveGroup("4242");
  ASSERT_TRUE(number.ok());
  EXPECT_EQ(*number, 4242u);
  auto root = stack::ResolveGroup("root");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, 0u);
  auto none = stack::ResolveGroup("no-such-group-dpm");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no-such-group-dpm"), std::string::npos);
}

// ---- SocketService::Create on a stack over an in-memory link ------------------------------

class ApiSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack::StackConfig config;
    config.address = (10u << 24) | (77u << 16) | (9u << 8) | 1u;
    config.prefix = 24;
    auto s = stack::Stack::Create(io_, std::make_unique<tun::MemoryLink>(1500), config);
    ASSERT_TRUE(s.ok()) << s.status();
    stack_ = std::move(*s);
    char dir[] = "/tmp/dpm-api-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    services_.clear();
    stack_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }
  absl::Status Listen(const std::string& where, std::optional<gid_t> group = std::nullopt) {
    stack::SocketServiceConfig c;
    c.path = where;
    c.api_group = group;
    auto s = stack::SocketService::Create(io_, *stack_, c);
    if (!s.ok()) return s.status();
    services_.push_back(std::move(*s));
    return absl::OkStatus();
  }
  std::string UniqueName() { return absl::StrCat("@dpm-test/", ::getpid(), "/", ++serial_); }

  boost::asio::io_context io_;
  std::unique_ptr<stack::Stack> stack_;
  std::vector<std::unique_ptr<stack::SocketService>> services_;
  std::string dir_;
  int serial_ = 0;
};

TEST_F(ApiSocketTest, AnAbstractNameInUseIsRefusedAndFreedWhenItsDaemonGoes) {
  const std::string name = UniqueName();
  ASSERT_TRUE(Listen(name).ok());
  absl::Status second = Listen(name);
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(second.message().find("in this network namespace"), std::string::npos) << second;
  services_.clear();  // the kernel frees an abstract name with its socket: no stale file
  EXPECT_TRUE(Listen(name).ok());
}

TEST_F(ApiSocketTest, APathInADirectoryThatDoesNotExistIsRefusedAndNothingIsCreated) {
  const std::string path = dir_ + "/no/such/dir/d.sock";
  absl::Status s = Listen(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(dir_ + "/no/such/dir does not exist"), std::string::npos) << s;
  struct stat st {};
  EXPECT_NE(::stat((dir_ + "/no").c_str(), &st), 0) << "a directory was created";
}

TEST_F(ApiSocketTest, AFilePathSocketIsOwnerOnlyOrOwnerAndGroup) {
  ASSERT_TRUE(Listen(dir_ + "/a.sock").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/a.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(Listen(dir_ + "/b.sock", ::getegid()).ok());
  ASSERT_EQ(::stat((dir_ + "/b.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, ::getegid());
}

}  // namespace
}  // namespace dpm
