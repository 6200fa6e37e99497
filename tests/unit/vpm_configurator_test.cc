// src/vpm/configurator: the configurator file (every error names its place) and the
// dispatcher's longest-prefix match, port ranges, defaults, refusals and socket rules.
#include "vpm/configurator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dpm::vpm {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
const PortKey kWeb{Protocol::kTcp, 80};
const PortKey kDns{Protocol::kUdp, 53};

constexpr char kExample[] = R"({
  "hidden_ports": "41000-41009",
  "queue_timeout_ms": 2000,
  "ports": { "tcp/80": { "default": "blue" }, "udp/53": { "default": "refuse" } },
  "applications": [
    { "aid": "green", "ports": ["tcp/80", "udp/53"], "programs": ["/usr/sbin/nginx"],
      "users": ["1001"], "sources": ["10.77.1.0/24", "10.77.2.5/32:1024-2047"] },
    { "aid": "red", "ports": ["tcp/80"], "users": ["www"], "sources": ["10.77.1.128/25:2000-2999", "10.77.0.0/16"] }
  ]
})";

std::optional<uid_t> FakeUsers(absl::string_view name) {
  if (name == "www") return 33;
  return std::nullopt;
}

Dispatcher Example() {
  absl::StatusOr<ConfiguratorConfig> c = ParseConfigurator(kExample, &FakeUsers);
  EXPECT_TRUE(c.ok()) << c.status();
  return Dispatcher(*c);
}

std::string Aid(const Dispatcher::Decision& d) {
  switch (d.kind) {
    case Dispatcher::Decision::kNotMultiplexed: return "not-multiplexed";
    case Dispatcher::Decision::kRefuse: return "refuse";
    case Dispatcher::Decision::kDefault: return absl::StrCat("default:", d.aid);
    case Dispatcher::Decision::kRule: return std::string(d.aid);
  }
  return "?";
}

TEST(VpmConfigurator, ParsesTheExample) {
  absl::StatusOr<ConfiguratorConfig> c = ParseConfigurator(kExample, &FakeUsers);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_min, 41000);
  EXPECT_EQ(c->hidden_max, 41009);
  EXPECT_EQ(c->queue_timeout_ms, 2000u);
  ASSERT_EQ(c->ports.size(), 2u);
  ASSERT_EQ(c->applications.size(), 2u);
  EXPECT_EQ(c->applications[0].sources[1].prefix, Ip(10, 77, 2, 5));
  EXPECT_EQ(c->applications[0].sources[1].port_min, 1024);
  EXPECT_EQ(c->applications[0].sources[1].port_max, 2047);
  EXPECT_EQ(c->applications[1].users, std::vector<uid_t>{33});
}

TEST(VpmConfigurator, ErrorsNameTheirPlace) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"ports": {"tcp/80": {"default": "x y"}}})", "ports.tcp/80: default 'x y' is not an AID"},
      {R"({"ports": {"tcp/0": {"default": "a"}}})", "ports.tcp/0: not PROTOCOL/PORT"},
      {R"({"ports": {"sctp/80": {"default": "a"}}})", "ports.sctp/80: not PROTOCOL/PORT"},
      {R"({"ports": {"tcp/80": {}}})", "ports.tcp/80: default (an AID or \"refuse\") missing"},
      {R"({"ports": {"tcp/80": {"default": "a", "x": 1}}})", "ports.tcp/80: unknown key 'x'"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["udp/53"]}]})",
       "applications[0]: port udp/53 is not in ports"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["tcp/80"], "sources": ["10.0.0.0/33"]}]})",
       "applications[0].sources[0]: '10.0.0.0/33' is not a prefix"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["tcp/80"], "sources": ["10.0.0.1/24"]}]})",
       "applications[0].sources[0]: '10.0.0.1/24' has bits set past its prefix length"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["tcp/80"], "sources": ["10.0.0.0/8:9-1"]}]})",
       "the port part is not PORT or LOW-HIGH"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["tcp/80"], "users": ["nobody2"]}]})",
       "applications[0].users[0]: no user 'nobody2'"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["tcp/80"], "programs": ["nginx"]}]})",
       "applications[0].programs[0]: not an absolute path"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"ports": ["tcp/80"]}]})", "applications[0]: aid missing"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "refuse", "ports": ["tcp/80"]}]})",
       "applications[0]: 'refuse' is not an AID"},
      {R"({"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g"}]})", "applications[0]: ports missing"},
      {R"({"hidden_ports": "9-1", "ports": {}})", "hidden_ports: '9-1' is not LOW-HIGH"},
      {R"({"hidden_ports": "70-90", "ports": {"tcp/80": {"default": "a"}}})", "ports.tcp/80: inside hidden_ports"},
      {R"({"queue_timeout_ms": 0, "ports": {}})", "queue_timeout_ms is not a positive integer"},
      {R"({"ports": {}, "extra": 1})", "the file: unknown key 'extra'"},
      {R"({"ports": {}, "ports": {}})", "key 'ports' given twice"},
      {R"({})", "ports: missing"},
      {R"({"cooperative": {"peers": [{"destinations": ["10.0.0.2/32:80"], "ports": ["tcp/9000"]}]}})",
       "cooperative.peers[0].destinations[0]: a prefix takes no port part"},
      {R"({"cooperative": {"peers": [{"destinations": ["10.0.0.2/32"], "ports": ["sctp/9000"]}]}})",
       "cooperative.peers[0]: 'sctp/9000' is not PROTOCOL/PORT"},
      {R"({"cooperative": {"peers": [{"ports": ["tcp/9000"]}]}})", "cooperative.peers[0]: destinations missing"},
      {R"({"cooperative": {"port": 70000}})", "port"},
      {R"({"cooperative": {"accept": ["10.0.0.0/33"]}})", "cooperative.accept[0]: '10.0.0.0/33' is not a prefix"},
      {R"({"cooperative": {"listen": true}})", "cooperative: unknown key 'listen'"},
      {R"([1])", "not a JSON object"},
      {R"({"ports": )", "not JSON: parse error"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<ConfiguratorConfig> c = ParseConfigurator(text, &FakeUsers);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(message)) << text;
  }
}

TEST(VpmConfigurator, ParsesPortKeysAndSources) {
  EXPECT_EQ(ParsePortKey("udp/65535")->port, 65535);
  EXPECT_FALSE(ParsePortKey("udp/65536"));
  EXPECT_FALSE(ParsePortKey("tcp/+80"));
  EXPECT_FALSE(ParsePortKey("tcp/"));
  EXPECT_EQ(FormatPortKey(kDns), "udp/53");
  absl::StatusOr<SourcePattern> p = ParseSourcePattern("0.0.0.0/0:53");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->length, 0);
  EXPECT_EQ(p->port_min, 53);
  EXPECT_EQ(p->port_max, 53);
  EXPECT_EQ(ParseSourcePattern("10.1.2.3")->length, 32);
  EXPECT_FALSE(ParseSourcePattern("10.1.2/24").ok());
  EXPECT_TRUE(ValidAid("site-a.v2_1"));
  EXPECT_FALSE(ValidAid(""));
  EXPECT_FALSE(ValidAid(std::string(kMaxAidLength + 1, 'a')));
  EXPECT_FALSE(ValidAid("a/b"));
}

TEST(VpmConfigurator, LongestPrefixWinsThenTheNarrowestPortRange) {
  Dispatcher d = Example();
  // 10.77.1.200 is in green's /24 and red's /25 (ports 2000-2999) and red's /16.
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 1, 200), 2500)), "red");    // the /25 rule's range
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 1, 200), 3000)), "green");  // /25 misses the port: /24
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 1, 10), 2500)), "green");   // not in the /25
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 9, 9), 80)), "red");        // only the /16
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 2, 5), 1024)), "green");    // the /32 with its range
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 77, 2, 5), 2048)), "red");      // past it: the /16
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(192, 0, 2, 1), 80)), "default:blue");
  EXPECT_EQ(Aid(d.Dispatch(kDns, Ip(10, 77, 1, 1), 5353)), "green");
  EXPECT_EQ(Aid(d.Dispatch(kDns, Ip(192, 0, 2, 1), 5353)), "refuse");
  EXPECT_EQ(Aid(d.Dispatch(PortKey{Protocol::kTcp, 443}, Ip(10, 77, 1, 1), 1)), "not-multiplexed");
  EXPECT_EQ(Aid(d.Dispatch(PortKey{Protocol::kUdp, 80}, Ip(10, 77, 1, 1), 1)), "not-multiplexed");
  EXPECT_EQ(d.source_rules(), 6u);
}

TEST(VpmConfigurator, SocketRulesByProgramThenUser) {
  Dispatcher d = Example();
  EXPECT_EQ(d.AidForSocket(kWeb, "/usr/sbin/nginx", 0).value_or("none"), "green");
  EXPECT_EQ(d.AidForSocket(kWeb, "/usr/bin/python3", 1001).value_or("none"), "green");
  EXPECT_EQ(d.AidForSocket(kWeb, "/usr/bin/python3", 33).value_or("none"), "red");
  EXPECT_EQ(d.AidForSocket(kWeb, "/usr/bin/python3", 0).value_or("none"), "none");
  EXPECT_EQ(d.AidForSocket(kDns, "/usr/bin/python3", 33).value_or("none"), "none");  // red is not on udp/53
  EXPECT_EQ(d.DefaultAid(kWeb).value_or("none"), "blue");
  EXPECT_FALSE(d.DefaultAid(kDns));
  EXPECT_TRUE(d.Multiplexed(kDns));
  EXPECT_FALSE(Dispatcher().Multiplexed(kWeb));
}

// 10^4 rules, each a /32 of its own with an AID of its own, plus /16 and /24 rules: every
// lookup finds its own rule (the time per lookup is bench/vpm.sh's to measure).
TEST(VpmConfigurator, FormatsSourcePatternsAsTheFileWritesThem) {
  for (const char* text : {"10.0.0.0/8", "10.77.2.5/32:1024-2047", "0.0.0.0/0:7"}) {
    absl::StatusOr<SourcePattern> p = ParseSourcePattern(text);
    ASSERT_TRUE(p.ok()) << text;
    EXPECT_EQ(FormatSourcePattern(*p), text);
  }
  EXPECT_EQ(FormatSourcePattern(*ParseSourcePattern("10.1.2.3")), "10.1.2.3/32");
}

TEST(VpmConfigurator, CooperativePeersAcceptAndTheConnectingAid) {
  absl::StatusOr<ConfiguratorConfig> c = ParseConfigurator(R"({
    "cooperative": { "port": 5999, "timeout_ms": 900, "accept": ["10.77.9.0/24"],
      "peers": [ { "destinations": ["10.77.9.2/32"], "ports": ["tcp/9000"], "default": "blue" },
                 { "destinations": ["10.77.8.0/24"], "ports": ["tcp/9000", "tcp/9001"] } ] },
    "applications": [ { "aid": "green", "ports": ["tcp/9000"], "users": ["1001"] } ]
  })", &FakeUsers);
  ASSERT_TRUE(c.ok()) << c.status();
  const Dispatcher d(*c);
  EXPECT_EQ(d.cooperative().port, 5999);
  EXPECT_EQ(d.cooperative().timeout_ms, 900u);
  EXPECT_TRUE(d.AcceptsNegotiation(Ip(10, 77, 9, 200)));
  EXPECT_FALSE(d.AcceptsNegotiation(Ip(10, 77, 8, 1)));
  EXPECT_FALSE(d.Multiplexed(PortKey{Protocol::kTcp, 9000})) << "a peer's port is not ours to multiplex";
  const CooperativePeer* one = d.PeerFor(PortKey{Protocol::kTcp, 9000}, Ip(10, 77, 9, 2));
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(d.AidForConnect(PortKey{Protocol::kTcp, 9000}, *one, "/bin/x", 1001), "green") << "the user rule";
  EXPECT_EQ(d.AidForConnect(PortKey{Protocol::kTcp, 9000}, *one, "/bin/x", 7), "blue") << "the entry's default";
  const CooperativePeer* two = d.PeerFor(PortKey{Protocol::kTcp, 9001}, Ip(10, 77, 8, 44));
  ASSERT_NE(two, nullptr);
  EXPECT_FALSE(d.AidForConnect(PortKey{Protocol::kTcp, 9001}, *two, "/bin/x", 7)) << "no rule, no default";
  EXPECT_EQ(d.PeerFor(PortKey{Protocol::kTcp, 9001}, Ip(10, 77, 9, 2)), nullptr);
  EXPECT_EQ(d.PeerFor(PortKey{Protocol::kTcp, 80}, Ip(10, 77, 9, 2)), nullptr);
}

TEST(VpmConfigurator, TenThousandRulesEachFindsItsOwn) {
  ConfiguratorConfig c;
  c.ports.push_back(PortPolicy{kWeb, "fallback"});
  for (uint32_t i = 0; i < 10000; ++i) {
    ApplicationRule app;
    app.aid = absl::StrCat("a", i);
    app.ports = {kWeb};
    app.sources.push_back(SourcePattern{Ip(10, 100, 0, 0) + i, 32, 0, 65535});
    c.applications.push_back(app);
  }
  ApplicationRule wide;
  wide.aid = "wide";
  wide.ports = {kWeb};
  wide.sources.push_back(SourcePattern{Ip(10, 100, 0, 0), 16, 0, 65535});
  c.applications.push_back(wide);
  Dispatcher d(c);
  for (uint32_t i = 0; i < 10000; i += 7) {
    EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 100, 0, 0) + i, 1234)), absl::StrCat("a", i));
  }
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 100, 200, 1), 1)), "wide");
  EXPECT_EQ(Aid(d.Dispatch(kWeb, Ip(10, 101, 0, 1), 1)), "default:fallback");
}

}  // namespace
}  // namespace dpm::vpm
