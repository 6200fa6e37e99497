// The preload hook's configuration from dpm-run's environment (preload/hook_config.h): which
// tuple sockets get, whether ports are fixed, and which IPv4 prefixes stay with the kernel.
#include "preload/hook_config.h"

#include <arpa/inet.h>

#include "dpm/socket.h"
#include "gtest/gtest.h"

namespace dpm::preload {
namespace {

uint32_t Ip(const char* text) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
  return ntohl(a.s_addr);
}

TEST(HookConfig, UnsetVariablesGiveCommonAddressesReplaceablePortsAndLoopbackForTheKernel) {
  absl::StatusOr<HookConfig> c = ParseHookConfig(nullptr, nullptr, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tuple, DPM_TUPLE_COMMON);
  EXPECT_FALSE(c->fixed_ports);
  EXPECT_TRUE(c->ForKernel(Ip("127.0.0.1")));
  EXPECT_TRUE(c->ForKernel(Ip("127.255.255.254")));
  EXPECT_FALSE(c->ForKernel(Ip("128.0.0.1")));
  EXPECT_FALSE(c->ForKernel(Ip("198.51.100.10")));
  EXPECT_FALSE(c->ForKernel(Ip("0.0.0.0"))) << "INADDR_ANY binds stay in the stack";
}

TEST(HookConfig, TupleNamesMapToTheApisValuesAndOthersAreNamedInTheError) {
  EXPECT_EQ(ParseHookConfig("common", nullptr, nullptr)->tuple, DPM_TUPLE_COMMON);
  EXPECT_EQ(ParseHookConfig("static", nullptr, nullptr)->tuple, DPM_TUPLE_STATIC);
  EXPECT_EQ(ParseHookConfig("dynamic", nullptr, nullptr)->tuple, DPM_TUPLE_DYNAMIC);
  absl::StatusOr<HookConfig> bad = ParseHookConfig("sometimes", nullptr, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "DPM_TUPLE: 'sometimes' is not common, static or dynamic");
}

TEST(HookConfig, FixedPortsTakesOneOrZero) {
  EXPECT_TRUE(ParseHookConfig(nullptr, "1", nullptr)->fixed_ports);
  EXPECT_FALSE(ParseHookConfig(nullptr, "0", nullptr)->fixed_ports);
  EXPECT_FALSE(ParseHookConfig(nullptr, "", nullptr)->fixed_ports);
  EXPECT_FALSE(ParseHookConfig(nullptr, "2", nullptr).ok());
}

TEST(HookConfig, KernelNetsListReplacesTheDefaultAndAnEmptyOneKeepsEverythingInTheStack) {
  absl::StatusOr<HookConfig> c = ParseHookConfig(nullptr, nullptr, " 10.1.0.0/16 ,192.0.2.7");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->ForKernel(Ip("10.1.200.3")));
  EXPECT_FALSE(c->ForKernel(Ip("10.2.0.1")));
  EXPECT_TRUE(c->ForKernel(Ip("192.0.2.7"))) << "a bare address is a /32";
  EXPECT_FALSE(c->ForKernel(Ip("192.0.2.8")));
  EXPECT_FALSE(c->ForKernel(Ip("127.0.0.1"))) << "the list replaces the default";
  absl::StatusOr<HookConfig> none = ParseHookConfig(nullptr, nullptr, "");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->kernel_nets.empty());
  EXPECT_FALSE(none->ForKernel(Ip("127.0.0.1")));
  absl::StatusOr<HookConfig> all = ParseHookConfig(nullptr, nullptr, "0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->ForKernel(Ip("203.0.113.9")));
}

TEST(HookConfig, BadPrefixesAreNamed) {
  for (const char* text : {"10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "::1/128", "10.0.0.0/-1"}) {
    absl::StatusOr<HookConfig> c = ParseHookConfig(nullptr, nullptr, text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().message(), std::string("DPM_KERNEL_NETS: bad prefix '") + text + "'");
  }
}

}  // namespace
}  // namespace dpm::preload
