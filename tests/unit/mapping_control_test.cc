// Explicit mappings through the DPM server with a pool of several addresses: what NAT-PMP
// announces (RFC 6886 §3.2 with RFC 4787 REQ-2 paired pooling), who made each mapping, and
// PCP FILTERs (RFC 6887 §13.3) — answered, applied on the data path, listed.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dpm/dpm_server.h"
#include "nat/nat_engine.h"
#include "dpm/natpmp.h"
#include "dpm/pcp.h"
#include "test_bytes.h"
#include "wire/checksum.h"

namespace dpm {
namespace {

using testing::Ip;
constexpr uint32_t kGateway = Ip(10, 77, 0, 1);
constexpr uint32_t kHost = Ip(10, 77, 1, 2);
constexpr uint32_t kRemote = Ip(198, 51, 100, 10);
constexpr uint32_t kOtherRemote = Ip(198, 51, 100, 77);

nat::NatConfig EightAddressPool() {
  nat::NatConfig c;
  for (int i = 1; i <= 8; ++i) c.external_addresses.push_back(Ip(203, 0, 113, i));
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = kGateway;
  c.seed = 11;
  return c;
}

// A UDP/IPv4 datagram with valid checksums.
std::vector<uint8_t> Udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  std::vector<uint8_t> p(28 + 4, 0);
  p[0] = 0x45;
  p[3] = static_cast<uint8_t>(p.size());
  p[8] = 64;
  p[9] = 17;
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put32(12, src);
  put32(16, dst);
  p[20] = sport >> 8;
  p[21] = sport & 255;
  p[22] = dport >> 8;
  p[23] = dport & 255;
  p[25] = static_cast<uint8_t>(p.size() - 20);
  const uint16_t ip_sum = wire::InternetChecksum(absl::MakeConstSpan(p.data(), 20));
  p[10] = ip_sum >> 8;
  p[11] = ip_sum & 255;
  return p;  // UDP checksum 0: none (RFC 768)
}

struct Gateway {
  nat::NatEngine engine{EightAddressPool()};
  server::DpmServer server{engine, /*start_ms=*/0};
  uint64_t now = 1000;

  absl::StatusOr<natpmp::Response> NatPmp(const natpmp::Request& q, uint32_t client = kHost) {
    return natpmp::ParseResponse(server.Handle(now, {client, 5350}, pcp::kServerPort, natpmp::EncodeRequest(q)));
  }
  absl::StatusOr<pcp::Response> Pcp(const pcp::Request& q, uint32_t client = kHost) {
    return pcp::ParseResponse(server.Handle(now, {client, 5350}, pcp::kServerPort, pcp::EncodeRequest(q)));
  }
  nat::Result Inbound(uint32_t remote, uint16_t rport, nat::Endpoint external) {
    std::vector<uint8_t> p = Udp(remote, rport, external.address, external.port);
    return engine.FromOutside(now, absl::MakeSpan(p));
  }
  std::vector<nat::NatEngine::MappingInfo> Mappings() {
    std::vector<nat::NatEngine::MappingInfo> out;
    engine.ForEachMapping(now, [&](const nat::NatEngine::MappingInfo& m) { out.push_back(m); });
    return out;
  }
};

pcp::Request PcpMap(uint16_t internal_port, std::vector<pcp::Filter> filters = {}) {
  pcp::Request q;
  q.opcode = pcp::Opcode::kMap;
  q.lifetime = 600;
  q.client_address = pcp::Address::FromIpv4(kHost);
  pcp::MapBody body;
  body.nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  body.protocol = 17;
  body.internal_port = internal_port;
  body.external_address = pcp::Address::FromIpv4(0);
  q.map = body;
  q.filters = std::move(filters);
  return q;
}

pcp::Filter Allow(uint32_t remote, int ipv4_prefix, uint16_t port) {
  return pcp::Filter{static_cast<uint8_t>(96 + ipv4_prefix), port, pcp::Address::FromIpv4(remote)};
}

TEST(MappingControl, NatPmpAnnouncesTheAddressTheClientIsPairedWithBeforeAndAfterTraffic) {
  Gateway g;
  auto before = g.NatPmp({natpmp::kOpPublicAddress, 0, 0, 0});
  ASSERT_TRUE(before.ok()) << before.status();
  // The client's outbound traffic gets a mapping on its paired address...
  std::vector<uint8_t> out = Udp(kHost, 40000, kRemote, 53);
  ASSERT_EQ(g.engine.FromInside(g.now, absl::MakeSpan(out)).verdict, nat::Verdict::kForwardOutside);
  const uint32_t used = (uint32_t(out[12]) << 24) | (uint32_t(out[13]) << 16) | (uint32_t(out[14]) << 8) | out[15];
  // ...which is what NAT-PMP announced before there was any, and still announces.
  EXPECT_EQ(before->external_address, used);
  auto after = g.NatPmp({natpmp::kOpPublicAddress, 0, 0, 0});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->external_address, used);
  // A NAT-PMP mapping is made on that address: an outside host sending to the announced
  // address and the mapped port reaches the client.
  auto map = g.NatPmp({natpmp::kOpMapUdp, 5000, 5000, 3600});
  ASSERT_TRUE(map.ok());
  ASSERT_EQ(map->result, natpmp::kSuccess);
  EXPECT_EQ(g.Inbound(kRemote, 1234, {before->external_address, map->external_port}).verdict,
            nat::Verdict::kForwardInside);
}

TEST(MappingControl, ClientsPairedWithDifferentAddressesAreEachToldTheirOwn) {
  Gateway g;
  std::vector<uint32_t> announced;
  for (int host = 2; host < 40; ++host) {
    const uint32_t client = Ip(10, 77, 1, host);
    auto r = g.NatPmp({natpmp::kOpPublicAddress, 0, 0, 0}, client);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->external_address, g.engine.ExternalAddressFor(client));
    announced.push_back(r->external_address);
  }
  std::sort(announced.begin(), announced.end());
  announced.erase(std::unique(announced.begin(), announced.end()), announced.end());
  EXPECT_GT(announced.size(), 1u) << "38 clients all paired with one of 8 addresses";
}

TEST(MappingControl, MappingsListWhoMadeThem) {
  Gateway g;
  ASSERT_EQ(g.NatPmp({natpmp::kOpMapTcp, 8080, 8080, 3600})->result, natpmp::kSuccess);
  ASSERT_EQ(g.Pcp(PcpMap(9000))->result, pcp::ResultCode::kSuccess);
  std::vector<uint8_t> out = Udp(kHost, 40000, kRemote, 53);
  ASSERT_EQ(g.engine.FromInside(g.now, absl::MakeSpan(out)).verdict, nat::Verdict::kForwardOutside);
  int seen = 0;
  for (const auto& m : g.Mappings()) {
    if (m.internal.port == 8080) {
      EXPECT_EQ(m.origin, nat::MappingOrigin::kNatPmp);
      EXPECT_EQ(m.protocol, nat::Protocol::kTcp);
      ASSERT_TRUE(m.lifetime_left_ms);
      EXPECT_EQ(*m.lifetime_left_ms, 3600'000u);
    } else if (m.internal.port == 9000) {
      EXPECT_EQ(m.origin, nat::MappingOrigin::kPcp);
    } else {
      EXPECT_EQ(m.internal.port, 40000);
      EXPECT_EQ(m.origin, nat::MappingOrigin::kTraffic);
      EXPECT_FALSE(m.lifetime_left_ms);
    }
    ++seen;
  }
  EXPECT_EQ(seen, 3);
  EXPECT_STREQ(nat::MappingOriginName(nat::MappingOrigin::kNatPmp), "nat-pmp");
}

TEST(MappingControl, PcpFilterLetsInOnlyTheRemotesItAllowsAndIsEchoed) {
  Gateway g;
  auto r = g.Pcp(PcpMap(9000, {Allow(kRemote, 32, 0)}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->result, pcp::ResultCode::kSuccess);
  ASSERT_EQ(r->filters.size(), 1u);  // §13.3: the server echoes the filters it applied
  EXPECT_EQ(r->filters[0], Allow(kRemote, 32, 0));
  const nat::Endpoint external{r->map->external_address.ipv4(), r->map->external_port};
  EXPECT_EQ(g.Inbound(kRemote, 1234, external).verdict, nat::Verdict::kForwardInside);
  nat::Result other = g.Inbound(kOtherRemote, 1234, external);
  EXPECT_EQ(other.verdict, nat::Verdict::kDrop);
  EXPECT_EQ(other.reason, nat::DropReason::kFiltered);
  EXPECT_EQ(g.engine.drops()[static_cast<size_t>(nat::DropReason::kFiltered)], 1u);
  auto listed = g.Mappings();
  ASSERT_EQ(listed.size(), 1u);
  ASSERT_EQ(listed[0].filters.size(), 1u);
  EXPECT_EQ(listed[0].filters[0], (nat::RemoteFilter{kRemote, 32, 0}));
}

TEST(MappingControl, PcpFilterPrefixAndPortAreHonoured) {
  Gateway g;
  auto r = g.Pcp(PcpMap(9000, {Allow(Ip(198, 51, 100, 0), 24, 53)}));
  ASSERT_EQ(r->result, pcp::ResultCode::kSuccess);
  const nat::Endpoint external{r->map->external_address.ipv4(), r->map->external_port};
  EXPECT_EQ(g.Inbound(kOtherRemote, 53, external).verdict, nat::Verdict::kForwardInside);
  EXPECT_EQ(g.Inbound(kOtherRemote, 54, external).reason, nat::DropReason::kFiltered);
  EXPECT_EQ(g.Inbound(Ip(192, 0, 2, 1), 53, external).reason, nat::DropReason::kFiltered);
}

TEST(MappingControl, FiltersAddUpAndPrefixLengthZeroRemovesThem) {
  Gateway g;
  ASSERT_EQ(g.Pcp(PcpMap(9000, {Allow(kRemote, 32, 0)}))->result, pcp::ResultCode::kSuccess);
  ASSERT_EQ(g.Pcp(PcpMap(9000, {Allow(kOtherRemote, 32, 0)}))->result, pcp::ResultCode::kSuccess);
  ASSERT_EQ(g.Mappings()[0].filters.size(), 2u);
  // A renewal without FILTERs keeps them.
  ASSERT_EQ(g.Pcp(PcpMap(9000))->result, pcp::ResultCode::kSuccess);
  ASSERT_EQ(g.Mappings()[0].filters.size(), 2u);
  auto cleared = g.Pcp(PcpMap(9000, {pcp::Filter{0, 0, pcp::Address::FromIpv4(0)}}));
  ASSERT_EQ(cleared->result, pcp::ResultCode::kSuccess);
  EXPECT_TRUE(g.Mappings()[0].filters.empty());
  const nat::Endpoint external{cleared->map->external_address.ipv4(), cleared->map->external_port};
  EXPECT_EQ(g.Inbound(Ip(192, 0, 2, 1), 7, external).verdict, nat::Verdict::kForwardInside);
}

TEST(MappingControl, TooManyFiltersIsExcessiveRemotePeersAndChangesNothing) {
  Gateway g;
  std::vector<pcp::Filter> many;
  for (size_t i = 0; i <= nat::kMaxFiltersPerMapping; ++i) many.push_back(Allow(Ip(198, 51, 100, 1 + i), 32, 0));
  auto r = g.Pcp(PcpMap(9000, many));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result, pcp::ResultCode::kExcessiveRemotePeers);
  EXPECT_EQ(g.engine.mapping_count(), 0u);
  many.pop_back();
  EXPECT_EQ(g.Pcp(PcpMap(9000, many))->result, pcp::ResultCode::kSuccess);
  EXPECT_EQ(g.Pcp(PcpMap(9000, {Allow(Ip(192, 0, 2, 9), 32, 0)}))->result, pcp::ResultCode::kExcessiveRemotePeers);
  EXPECT_EQ(g.Mappings()[0].filters.size(), nat::kMaxFiltersPerMapping);
}

TEST(MappingControl, AFilterThatCannotApplyIsMalformedOption) {
  Gateway g;
  // An IPv4-mapped prefix shorter than the 96-bit ::ffff:0:0/96 prefix.
  auto r = g.Pcp(PcpMap(9000, {pcp::Filter{50, 0, pcp::Address::FromIpv4(kRemote)}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result, pcp::ResultCode::kMalformedOption);
  EXPECT_EQ(g.engine.mapping_count(), 0u);
}

TEST(MappingControl, DeletingTheMappingDropsItsFilters) {
  Gateway g;
  ASSERT_EQ(g.Pcp(PcpMap(9000, {Allow(kRemote, 32, 0)}))->result, pcp::ResultCode::kSuccess);
  pcp::Request del = PcpMap(9000);
  del.lifetime = 0;
  ASSERT_EQ(g.Pcp(del)->result, pcp::ResultCode::kSuccess);
  EXPECT_EQ(g.engine.mapping_count(), 0u);
  auto again = g.Pcp(PcpMap(9000));
  ASSERT_EQ(again->result, pcp::ResultCode::kSuccess);
  EXPECT_TRUE(g.Mappings()[0].filters.empty());
}

}  // namespace
}  // namespace dpm
