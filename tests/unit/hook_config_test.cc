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

TEST(HookTunnelConfig, OffByDefaultWithTheDefaultSuffixAndNet) {
  absl::StatusOr<HookConfig> c = ParseHookConfig(nullptr, nullptr, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tunnel.enabled);
  EXPECT_EQ(c->tunnel.suffix, "dpm.internal");
  EXPECT_EQ(c->tunnel.net.address, Ip("100.64.0.0"));
  EXPECT_EQ(c->tunnel.net.length, 10);
  EXPECT_TRUE(c->tunnel.net.Contains(Ip("100.127.255.254")));
  EXPECT_FALSE(c->tunnel.net.Contains(Ip("100.128.0.1")));
}

TEST(HookTunnelConfig, TunnelTakesOneOrZeroAndNamesOtherValues) {
  EXPECT_TRUE(ParseHookConfig(nullptr, nullptr, nullptr, "1", nullptr, nullptr)->tunnel.enabled);
  EXPECT_FALSE(ParseHookConfig(nullptr, nullptr, nullptr, "0", nullptr, nullptr)->tunnel.enabled);
  EXPECT_FALSE(ParseHookConfig(nullptr, nullptr, nullptr, "", nullptr, nullptr)->tunnel.enabled);
  absl::StatusOr<HookConfig> bad = ParseHookConfig(nullptr, nullptr, nullptr, "on", nullptr, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "DPM_TUNNEL: 'on' is not 0 or 1");
}

TEST(HookTunnelConfig, SuffixAndNetReplaceTheDefaults) {
  absl::StatusOr<TunnelConfig> t = ParseTunnelConfig("1", "svc.corp-1.example", "10.200.0.0/16");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->suffix, "svc.corp-1.example");
  EXPECT_TRUE(t->net.Contains(Ip("10.200.3.4")));
  EXPECT_FALSE(t->net.Contains(Ip("100.64.0.2")));
}

TEST(HookTunnelConfig, SuffixMustBeLowerCaseDnsLabelsJoinedByDots) {
  for (const char* bad : {"a..b", ".dpm.internal", "dpm.internal.", "DPM.internal", "-a.b", "a-.b", "a_b.c",
                          "a b", "dpm.inte\x01rnal"}) {
    absl::StatusOr<TunnelConfig> t = ParseTunnelConfig("1", bad, nullptr);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().message(), std::string("DPM_TUNNEL_SUFFIX: '") + bad +
                                        "' is not a DNS suffix (labels of a-z, 0-9, '-' joined by dots)");
  }
  EXPECT_TRUE(ValidTunnelSuffix(std::string(63, 'a')));
  EXPECT_FALSE(ValidTunnelSuffix(std::string(64, 'a'))) << "a label is at most 63 bytes";
  std::string long_suffix;
  while (long_suffix.size() < 200) long_suffix += "abcdefghi.";
  long_suffix.pop_back();  // 199 bytes
  EXPECT_TRUE(ValidTunnelSuffix(long_suffix));
  EXPECT_FALSE(ValidTunnelSuffix(long_suffix + "ab")) << "201 bytes leave no room for service.proxy.";
  EXPECT_TRUE(ValidTunnelSuffix("internal"));
  EXPECT_TRUE(ValidTunnelSuffix("0.9-z"));
}

TEST(HookTunnelConfig, NetMustBeExactlyOnePrefix) {
  for (const char* bad : {"100.64.0.0/33", "10.0.0.0/8,10.1.0.0/16", "example", "::/0", ","}) {
    absl::StatusOr<TunnelConfig> t = ParseTunnelConfig(nullptr, nullptr, bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().message(), std::string("DPM_TUNNEL_NET: '") + bad + "' is not one IPv4 prefix A.B.C.D/LEN");
  }
  absl::StatusOr<HookConfig> c = ParseHookConfig(nullptr, nullptr, nullptr, nullptr, nullptr, "100.64.0.0/40");
  ASSERT_FALSE(c.ok()) << "the tunnel variables are checked when the mode is off too";
}

TEST(HookTunnelConfig, NamesUnderTheSuffixInAnyCaseWithOneTrailingDot) {
  TunnelConfig t;
  EXPECT_TRUE(t.UnderSuffix("web.alpha.dpm.internal"));
  EXPECT_TRUE(t.UnderSuffix("WEB.Alpha.DPM.Internal"));
  EXPECT_TRUE(t.UnderSuffix("web.alpha.dpm.internal."));
  EXPECT_TRUE(t.UnderSuffix("x.dpm.internal")) << "valid or not, the redirector answers for it";
  EXPECT_FALSE(t.UnderSuffix("dpm.internal")) << "the suffix itself is no pseudo name";
  EXPECT_FALSE(t.UnderSuffix("dpm.internal."));
  EXPECT_FALSE(t.UnderSuffix(".dpm.internal")) << "nothing before the dot";
  EXPECT_FALSE(t.UnderSuffix("web.alphadpm.internal")) << "the suffix starts at a label";
  EXPECT_FALSE(t.UnderSuffix("web.alpha.dpm.internal.."));
  EXPECT_FALSE(t.UnderSuffix("web.alpha.dpm.internal.example"));
  EXPECT_FALSE(t.UnderSuffix("example.com"));
  EXPECT_FALSE(t.UnderSuffix(""));
}

TEST(HookTunnelConfig, CanonicalNameIsLowerCaseWithoutTheTrailingDot) {
  EXPECT_EQ(CanonicalHostName("Web.Alpha.DPM.internal."), "web.alpha.dpm.internal");
  EXPECT_EQ(CanonicalHostName("web.alpha.dpm.internal"), "web.alpha.dpm.internal");
  EXPECT_EQ(CanonicalHostName("."), "");
}

}  // namespace
}  // namespace dpm::preload
