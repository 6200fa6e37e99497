// The gateway (src/gateway/gateway.h) on two in-memory links and a ManualClock, no root:
// translation both ways with valid checksums, the DPM server answering PCP MAP (RFC 6887 §11)
// and a DPM setup (PCP PEER on the DPM port, claims 1-5) on the gateway's private address,
// and session expiry through the clock's sweep timer. Packets are built and read here byte
// by byte; checksums are checked with wire/checksum.h.
//
// lwIP keeps global state: one Gateway (one Stack) per test, everything on the test thread.
#include "gateway/gateway.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "dpm/pcp.h"
#include "gtest/gtest.h"
#include "stack/clock.h"
#include "tun/memory_link.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::gateway {
namespace {

constexpr uint32_t Ip(int a, int b, int c, int d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d);
}
constexpr uint32_t kGatewayInside = Ip(10, 77, 0, 1);
constexpr uint32_t kHost = Ip(10, 77, 0, 5);
constexpr uint32_t kPool = Ip(203, 0, 113, 1);
constexpr uint32_t kRemote = Ip(198, 51, 100, 7);
constexpr uint8_t kUdp = wire::ipv4::kProtocolUdp, kTcp = wire::ipv4::kProtocolTcp;

// An IPv4 packet with `transport` (its checksum field zeroed) behind a 20-byte header; the
// header and transport checksums filled in.
std::vector<uint8_t> Ipv4(uint32_t src, uint32_t dst, uint8_t protocol, std::vector<uint8_t> transport) {
  std::vector<uint8_t> p(20);
  p[0] = 0x45;
  wire::StoreBe16(&p[2], static_cast<uint16_t>(20 + transport.size()));
  wire::StoreBe16(&p[4], 0x1234);
  p[8] = 64;
  p[9] = protocol;
  wire::StoreBe32(&p[12], src);
  wire::StoreBe32(&p[16], dst);
  wire::StoreBe16(&p[10], wire::InternetChecksum(p));
  const size_t checksum_at = protocol == kTcp ? 16 : 6;
  uint16_t sum = wire::TransportChecksum(src, dst, protocol, transport);
  wire::StoreBe16(&transport[checksum_at], protocol == kUdp ? wire::UdpChecksumOnWire(sum) : sum);
  p.insert(p.end(), transport.begin(), transport.end());
  return p;
}

std::vector<uint8_t> Udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, std::vector<uint8_t> payload) {
  std::vector<uint8_t> u(8);
  wire::StoreBe16(&u[0], sport);
  wire::StoreBe16(&u[2], dport);
  wire::StoreBe16(&u[4], static_cast<uint16_t>(8 + payload.size()));
  u.insert(u.end(), payload.begin(), payload.end());
  return Ipv4(src, dst, kUdp, u);
}

std::vector<uint8_t> TcpSyn(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  std::vector<uint8_t> t(20);
  wire::StoreBe16(&t[0], sport);
  wire::StoreBe16(&t[2], dport);
  wire::StoreBe32(&t[4], 0x11223344);
  t[12] = 5 << 4;
  t[13] = wire::tcp::kSyn;
  wire::StoreBe16(&t[14], 65535);
  return Ipv4(src, dst, kTcp, t);
}

// Bytes [offset, offset + length) of `packet`'s payload as an IPv4 fragment (RFC 791 §3.2):
// the header copied, fragment offset and MF set, total length and header checksum redone.
std::vector<uint8_t> Fragment(const std::vector<uint8_t>& packet, size_t offset, size_t length, bool more) {
  std::vector<uint8_t> f(packet.begin(), packet.begin() + 20);
  f.insert(f.end(), packet.begin() + 20 + static_cast<ptrdiff_t>(offset),
           packet.begin() + 20 + static_cast<ptrdiff_t>(offset + length));
  wire::StoreBe16(&f[2], static_cast<uint16_t>(f.size()));
  wire::StoreBe16(&f[6], static_cast<uint16_t>((more ? wire::ipv4::kFlagMoreFragments : 0) | (offset / 8)));
  wire::StoreBe16(&f[10], 0);
  wire::StoreBe16(&f[10], wire::InternetChecksum(absl::MakeConstSpan(f).subspan(0, 20)));
  return f;
}

// What a packet on a link says.
struct Seen {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t protocol = 0;
  std::vector<uint8_t> payload;  // after the UDP header
};

::testing::AssertionResult Read(const std::vector<uint8_t>& p, Seen* out) {
  if (p.size() < 28 || (p[0] >> 4) != 4) return ::testing::AssertionFailure() << "not IPv4: " << p.size() << " bytes";
  const size_t header = static_cast<size_t>(p[0] & 0x0f) * 4;
  if (wire::LoadBe16(&p[2]) != p.size()) return ::testing::AssertionFailure() << "total length";
  if (wire::InternetChecksum(absl::MakeConstSpan(p).subspan(0, header)) != 0) {
    return ::testing::AssertionFailure() << "bad IPv4 header checksum";
  }
  out->src = wire::LoadBe32(&p[12]);
  out->dst = wire::LoadBe32(&p[16]);
  out->protocol = p[9];
  auto transport = absl::MakeConstSpan(p).subspan(header);
  if (wire::TransportChecksum(out->src, out->dst, out->protocol, transport) != 0) {
    return ::testing::AssertionFailure() << "bad transport checksum";
  }
  out->sport = wire::LoadBe16(&transport[0]);
  out->dport = wire::LoadBe16(&transport[2]);
  if (out->protocol == kUdp) out->payload.assign(transport.begin() + 8, transport.end());
  return ::testing::AssertionSuccess();
}

// A PCP request from the host: the client address is its source (RFC 6887 §8.1).
pcp::Request FromHost(pcp::Opcode opcode, uint32_t lifetime_s) {
  pcp::Request request;
  request.opcode = opcode;
  request.lifetime = lifetime_s;
  request.client_address = pcp::Address::FromIpv4(kHost);
  return request;
}
// A MAP (or PEER's MAP part) body for UDP from `internal_port`, the nonce all `nonce_byte`.
pcp::MapBody UdpBody(uint8_t nonce_byte, uint16_t internal_port) {
  pcp::MapBody body;
  body.nonce.fill(nonce_byte);
  body.protocol = kUdp;
  body.internal_port = internal_port;
  return body;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto inside = std::make_unique<tun::MemoryLink>(1500);
    auto outside = std::make_unique<tun::MemoryLink>(1500);
    inside_ = inside.get();
    outside_ = outside.get();
    GatewayConfig config;
    config.inside.address = kGatewayInside;
    config.inside.prefix = 16;
    config.nat.inside_network = Ip(10, 77, 0, 0);
    config.nat.inside_prefix = 16;
    config.nat.gateway_inside_address = kGatewayInside;
    config.nat.external_addresses = {kPool};
    config.nat.seed = 42;
    auto gw = Gateway::Create(io_, std::move(inside), std::move(outside), config, &clock_);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = std::move(*gw);
  }
  void TearDown() override { gateway_.reset(); }

  void Poll() {
    for (int i = 0; i < 100; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }
  // Injects `packet` on `from` and returns the one packet that came out on `to`.
  ::testing::AssertionResult Through(tun::MemoryLink* from, tun::MemoryLink* to, const std::vector<uint8_t>& packet,
                                     Seen* seen) {
    from->InjectInbound(packet);
    Poll();
    std::vector<uint8_t> out;
    if (!to->TakeOutbound(&out)) return ::testing::AssertionFailure() << "nothing came out";
    if (to->outbound_size() != 0) return ::testing::AssertionFailure() << "more than one packet came out";
    return Read(out, seen);
  }
  uint64_t Drops(nat::DropReason reason) const {
    return gateway_->engine().drops()[static_cast<size_t>(reason)];
  }
  std::string StatusJson() const {
    stack::StatusReport report;
    report.Add<GatewayStatus>(gateway_->CollectStatus());
    return report.Json();
  }

  // A PCP request from the host to the gateway's `port`; returns the parsed response.
  ::testing::AssertionResult Ask(uint16_t port, const pcp::Request& request, pcp::Response* response) {
    Seen reply;
    auto r = Through(inside_, inside_, Udp(kHost, 5350, kGatewayInside, port, pcp::EncodeRequest(request)), &reply);
    if (!r) return r;
    if (reply.src != kGatewayInside || reply.sport != port || reply.dst != kHost || reply.dport != 5350) {
      return ::testing::AssertionFailure() << "reply not from the server to the client";
    }
    absl::StatusOr<pcp::Response> parsed = pcp::ParseResponse(reply.payload);
    if (!parsed.ok()) return ::testing::AssertionFailure() << parsed.status();
    *response = *parsed;
    return ::testing::AssertionSuccess();
  }

  boost::asio::io_context io_;
  stack::ManualClock clock_;
  tun::MemoryLink* inside_ = nullptr;   // owned by the gateway's stack
  tun::MemoryLink* outside_ = nullptr;  // owned by the gateway
  std::unique_ptr<Gateway> gateway_;
};

// ---- (a) translation -------------------------------------------------------------------

TEST_F(GatewayTest, UdpFromInsideLeavesFromThePoolAddressAndTheReplyComesBackTranslated) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 40000, kRemote, 53, {1, 2, 3, 4}), &out));
  EXPECT_EQ(out.src, kPool);
  EXPECT_EQ(out.dst, kRemote);
  EXPECT_EQ(out.dport, 53);
  EXPECT_GE(out.sport, 1024) << "a mapped dynamic port";
  EXPECT_EQ(out.payload, (std::vector<uint8_t>{1, 2, 3, 4}));

  Seen in;
  ASSERT_TRUE(Through(outside_, inside_, Udp(kRemote, 53, kPool, out.sport, {9, 8}), &in));
  EXPECT_EQ(in.src, kRemote);
  EXPECT_EQ(in.sport, 53);
  EXPECT_EQ(in.dst, kHost);
  EXPECT_EQ(in.dport, 40000);
  EXPECT_EQ(in.payload, (std::vector<uint8_t>{9, 8}));
  EXPECT_EQ(gateway_->counters().forwarded_out, 1u);
  EXPECT_EQ(gateway_->counters().forwarded_in, 1u);
}

TEST_F(GatewayTest, TcpSynFromInsideLeavesFromThePoolAddressWithAValidChecksum) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, TcpSyn(kHost, 40001, kRemote, 443), &out));  // Read checks the checksum
  EXPECT_EQ(out.protocol, kTcp);
  EXPECT_EQ(out.src, kPool);
  EXPECT_EQ(out.dst, kRemote);
  EXPECT_EQ(out.dport, 443);
  EXPECT_NE(out.sport, 0);
  EXPECT_NE(StatusJson().find("\"session_count\":1"), std::string::npos) << StatusJson();
}

TEST_F(GatewayTest, PacketFromOutsideWithNoSessionIsDroppedAndCounted) {
  const uint64_t before = Drops(nat::DropReason::kNoMapping);
  outside_->InjectInbound(Udp(kRemote, 53, kPool, 40000, {1}));
  Poll();
  EXPECT_EQ(inside_->outbound_size(), 0u);
  EXPECT_EQ(Drops(nat::DropReason::kNoMapping), before + 1);
  EXPECT_EQ(gateway_->counters().forwarded_in, 0u);
}

TEST_F(GatewayTest, ABatchFromOutsideIsTranslatedInOrder) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 40000, kRemote, 53, {0}), &out));
  for (uint8_t i = 0; i < 40; ++i) outside_->InjectInbound(Udp(kRemote, 53, kPool, out.sport, {i}));
  outside_->InjectInbound(Udp(kRemote, 53, kPool, static_cast<uint16_t>(out.sport + 1), {99}));  // no session
  Poll();
  ASSERT_EQ(inside_->outbound_size(), 40u);
  for (uint8_t i = 0; i < 40; ++i) {
    std::vector<uint8_t> p;
    ASSERT_TRUE(inside_->TakeOutbound(&p));
    Seen in;
    ASSERT_TRUE(Read(p, &in));
    EXPECT_EQ(in.dst, kHost);
    ASSERT_EQ(in.payload.size(), 1u);
    EXPECT_EQ(in.payload[0], i) << "in the order read";
  }
  EXPECT_EQ(gateway_->counters().forwarded_in, 40u);
  EXPECT_EQ(Drops(nat::DropReason::kNoMapping), 1u);
}

// RFC 4787 REQ-14: a later fragment that comes first is held; its first fragment, later in
// the same batch, releases it, and it goes inside just before that first fragment, both
// translated — as when each packet is translated alone.
TEST_F(GatewayTest, AFragmentReleasedInsideABatchGoesInJustBeforeItsFirstFragment) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 40000, kRemote, 53, {0}), &out));
  const std::vector<uint8_t> datagram = Udp(kRemote, 53, kPool, out.sport, std::vector<uint8_t>(24, 0xab));
  outside_->InjectInbound(Fragment(datagram, 16, 16, /*more=*/false));  // held
  outside_->InjectInbound(Fragment(datagram, 0, 16, /*more=*/true));    // UDP header + 8 bytes
  outside_->InjectInbound(Udp(kRemote, 53, kPool, out.sport, {7}));     // after them
  Poll();
  std::vector<std::vector<uint8_t>> in(3);
  for (auto& p : in) ASSERT_TRUE(inside_->TakeOutbound(&p));
  EXPECT_EQ(inside_->outbound_size(), 0u);
  for (const auto& p : in) {
    EXPECT_EQ(wire::LoadBe32(&p[16]), kHost) << "translated";
    EXPECT_EQ(wire::InternetChecksum(absl::MakeConstSpan(p).subspan(0, 20)), 0) << "IPv4 header checksum";
  }
  EXPECT_EQ(wire::LoadBe16(&in[0][6]) & wire::ipv4::kFragmentOffsetMask, 2) << "the released fragment first";
  EXPECT_EQ(wire::LoadBe16(&in[1][6]), wire::ipv4::kFlagMoreFragments) << "then its first fragment";
  EXPECT_EQ(wire::LoadBe16(&in[1][22]), 40000) << "the first fragment's UDP header translated";
  Seen last;
  ASSERT_TRUE(Read(in[2], &last));
  EXPECT_EQ(last.payload, (std::vector<uint8_t>{7}));
  EXPECT_EQ(gateway_->counters().forwarded_in, 3u);
}

TEST_F(GatewayTest, TtlExceededFromOutsideGetsAnIcmpTimeExceededBackOutside) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 40000, kRemote, 53, {0}), &out));
  std::vector<uint8_t> reply = Udp(kRemote, 53, kPool, out.sport, {1});
  const uint16_t old_word = wire::LoadBe16(&reply[8]);
  reply[8] = 1;  // TTL 1
  wire::StoreBe16(&reply[10], wire::ChecksumReplace16(wire::LoadBe16(&reply[10]), old_word, wire::LoadBe16(&reply[8])));
  outside_->InjectInbound(reply);
  Poll();
  EXPECT_EQ(inside_->outbound_size(), 0u);
  std::vector<uint8_t> error;
  ASSERT_TRUE(outside_->TakeOutbound(&error));
  EXPECT_EQ(error[9], wire::ipv4::kProtocolIcmp);
  EXPECT_EQ(error[20], 11) << "time exceeded";
  EXPECT_EQ(wire::LoadBe32(&error[16]), kRemote);
  EXPECT_EQ(gateway_->counters().icmp_errors_sent, 1u);
}

// ---- (b) the DPM server ----------------------------------------------------------------

TEST_F(GatewayTest, PcpMapGrantsAnExternalEndpointThatThenReachesTheHost) {
  pcp::Request map = FromHost(pcp::Opcode::kMap, 600);
  map.map = UdpBody(1, 6000);
  pcp::Response response;
  ASSERT_TRUE(Ask(pcp::kServerPort, map, &response));
  ASSERT_EQ(response.result, pcp::ResultCode::kSuccess);
  ASSERT_TRUE(response.map.has_value());
  EXPECT_EQ(response.map->nonce, map.map->nonce);
  ASSERT_TRUE(response.map->external_address.is_ipv4());
  EXPECT_EQ(response.map->external_address.ipv4(), kPool);
  EXPECT_EQ(response.lifetime, 600u);
  const uint16_t external_port = response.map->external_port;
  ASSERT_NE(external_port, 0);
  EXPECT_EQ(gateway_->counters().to_gateway, 1u) << "the request went to lwIP, not out";
  EXPECT_EQ(outside_->outbound_size(), 0u);

  // Any remote may now reach the host through the mapping (endpoint-independent, §11).
  Seen in;
  ASSERT_TRUE(Through(outside_, inside_, Udp(kRemote, 7777, kPool, external_port, {5}), &in));
  EXPECT_EQ(in.dst, kHost);
  EXPECT_EQ(in.dport, 6000);
  EXPECT_EQ(in.src, kRemote);
}

TEST_F(GatewayTest, DpmSetupOnTheDpmPortGrantsAGatewayEndpointThatLeavesAsTheExternalOne) {
  pcp::Request peer = FromHost(pcp::Opcode::kPeer, 300);
  peer.peer = pcp::PeerBody{};
  static_cast<pcp::MapBody&>(*peer.peer) = UdpBody(7, 41000);
  peer.peer->remote_port = 53;
  peer.peer->remote_address = pcp::Address::FromIpv4(kRemote);
  pcp::Response response;
  ASSERT_TRUE(Ask(pcp::kDpmPort, peer, &response));
  ASSERT_EQ(response.result, pcp::ResultCode::kSuccess);
  ASSERT_TRUE(response.peer.has_value());
  ASSERT_TRUE(response.dpm_session_endpoint.has_value());
  const uint32_t endpoint_address = response.dpm_session_endpoint->first.ipv4();
  const uint16_t endpoint_port = response.dpm_session_endpoint->second;
  EXPECT_EQ(endpoint_address, kGatewayInside) << "the driver aims at the gateway (claim 5)";
  EXPECT_EQ(response.peer->external_address.ipv4(), kPool);

  // The driver's packet to the gateway endpoint leaves as external -> remote.
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 41000, endpoint_address, endpoint_port, {3}), &out));
  EXPECT_EQ(out.src, kPool);
  EXPECT_EQ(out.sport, response.peer->external_port);
  EXPECT_EQ(out.dst, kRemote);
  EXPECT_EQ(out.dport, 53);
}

// ---- (c) expiry through the clock ------------------------------------------------------

TEST_F(GatewayTest, AnIdleUdpSessionExpiresOnTheSweepAsTheClockPassesItsTimeout) {
  Seen out;
  ASSERT_TRUE(Through(inside_, outside_, Udp(kHost, 40000, kRemote, 53, {0}), &out));
  EXPECT_EQ(gateway_->engine().session_count(), 1u);

  clock_.Advance(nat::NatConfig{}.udp_timeout_ms - 5000);
  EXPECT_EQ(gateway_->engine().session_count(), 1u) << "not yet idle for the timeout";

  clock_.Advance(10000);  // past the timeout; the sweep timer runs every second
  EXPECT_EQ(gateway_->engine().session_count(), 0u);
  EXPECT_NE(StatusJson().find("\"session_count\":0"), std::string::npos) << StatusJson();
  EXPECT_EQ(StatusJson().find("\"remote\":\"198.51.100.7:53\""), std::string::npos) << "not listed";

  const uint64_t before = Drops(nat::DropReason::kNoMapping);
  outside_->InjectInbound(Udp(kRemote, 53, kPool, out.sport, {1}));
  Poll();
  EXPECT_EQ(inside_->outbound_size(), 0u) << "a late reply is dropped";
  EXPECT_EQ(Drops(nat::DropReason::kNoMapping), before + 1);
}

TEST_F(GatewayTest, TheDpmServerEpochCountsSecondsOfTheGatewaysClock) {
  EXPECT_NE(StatusJson().find("\"epoch\":0,"), std::string::npos) << StatusJson();
  clock_.Advance(42000);
  EXPECT_NE(StatusJson().find("\"epoch\":42,"), std::string::npos) << StatusJson();
}

}  // namespace
}  // namespace dpm::gateway
