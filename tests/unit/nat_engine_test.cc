// src/nat/nat_engine: NAPT (RFC 4787, 5382, 5508, 7857), DPM sessions (the DPM patent) and
// expiry, driven with a manual clock and packets built here. After every translation the
// packet must carry exactly the checksums a full recomputation gives.
#include "nat/nat_engine.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "nat/port_allocator.h"
#include "nat/session_table.h"
#include "gtest/gtest.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"
#include "wire/offload.h"

namespace dpm::nat {
namespace {

using wire::Ipv4View;
using wire::LoadBe16;
using wire::StoreBe16;
using wire::StoreBe32;
namespace ipv4 = wire::ipv4;
namespace tcp = wire::tcp;
namespace icmp = wire::icmp;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
constexpr uint64_t kSecond = 1000;
constexpr uint64_t kMinute = 60 * kSecond;

const uint32_t kGateway = Ip(10, 77, 0, 1);
const uint32_t kGatewayOutside = Ip(192, 0, 2, 1);
const uint32_t kHostA = Ip(10, 77, 1, 10);
const uint32_t kHostB = Ip(10, 77, 1, 11);
const uint32_t kRemote1 = Ip(198, 51, 100, 10);
const uint32_t kRemote2 = Ip(198, 51, 100, 20);
const uint32_t kRouter = Ip(198, 51, 100, 254);

NatConfig TestConfig() {
  NatConfig c;
  for (uint32_t i = 1; i <= 8; ++i) c.external_addresses.push_back(Ip(203, 0, 113, i));
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = kGateway;
  c.gateway_outside_address = kGatewayOutside;
  c.seed = 42;
  return c;
}

// ---- Packet builder and reader -----------------------------------------------------------

std::vector<uint8_t> MakeIp(uint32_t source, uint32_t destination, uint8_t protocol, const std::vector<uint8_t>& l4,
                            uint8_t ttl = 64, uint16_t flags_fragment = 0, size_t option_words = 0) {
  wire::Ipv4Repr repr;
  repr.source = source;
  repr.destination = destination;
  repr.protocol = protocol;
  repr.ttl = ttl;
  repr.identification = 0x4242;
  repr.flags_fragment = flags_fragment;
  repr.payload_length = option_words * 4 + l4.size();
  std::vector<uint8_t> p(repr.buffer_len());
  EXPECT_TRUE(repr.Emit(absl::MakeSpan(p)));
  if (option_words > 0) {
    p[0] = static_cast<uint8_t>(0x40 | (5 + option_words));
    for (size_t i = 0; i < option_words * 4; ++i) p[20 + i] = 0x01;  // NOP
  }
  std::copy(l4.begin(), l4.end(), p.begin() + 20 + option_words * 4);
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  wire::FillTransportChecksum(*ip);
  ip->FillChecksum();
  return p;
}

std::vector<uint8_t> Udp(Endpoint src, Endpoint dst, size_t payload = 5, uint8_t ttl = 64) {
  std::vector<uint8_t> l4(8 + payload);
  StoreBe16(&l4[0], src.port);
  StoreBe16(&l4[2], dst.port);
  StoreBe16(&l4[4], static_cast<uint16_t>(l4.size()));
  for (size_t i = 0; i < payload; ++i) l4[8 + i] = static_cast<uint8_t>('a' + i % 26);
  return MakeIp(src.address, dst.address, ipv4::kProtocolUdp, l4, ttl);
}

std::vector<uint8_t> Tcp(Endpoint src, Endpoint dst, uint8_t flags, size_t payload = 0, uint8_t ttl = 64) {
  std::vector<uint8_t> l4(20 + payload);
  StoreBe16(&l4[0], src.port);
  StoreBe16(&l4[2], dst.port);
  StoreBe32(&l4[4], 0x11223344);
  StoreBe32(&l4[8], (flags & tcp::kAck) ? 0x55667788 : 0);
  l4[tcp::kDataOffsetOffset] = 0x50;
  l4[tcp::kFlagsOffset] = flags;
  StoreBe16(&l4[tcp::kWindowOffset], 64240);
  for (size_t i = 0; i < payload; ++i) l4[20 + i] = static_cast<uint8_t>(i * 7);
  return MakeIp(src.address, dst.address, ipv4::kProtocolTcp, l4, ttl);
}

std::vector<uint8_t> Icmp(uint32_t src, uint32_t dst, uint8_t type, uint16_t id, uint16_t sequence = 1) {
  std::vector<uint8_t> l4 = {type, 0, 0, 0, 0, 0, 0, 0, 'p', 'i', 'n', 'g', '!'};
  StoreBe16(&l4[4], id);
  StoreBe16(&l4[6], sequence);
  return MakeIp(src, dst, ipv4::kProtocolIcmp, l4);
}

// An ICMP error from `src` to `dst` quoting the first `quote` bytes of `offending`.
std::vector<uint8_t> IcmpError(uint32_t src, uint32_t dst, uint8_t type, uint8_t code, const std::vector<uint8_t>& offending,
                               size_t quote, uint32_t rest = 0) {
  std::vector<uint8_t> l4(8);
  l4[0] = type;
  l4[1] = code;
  StoreBe32(&l4[4], rest);
  l4.insert(l4.end(), offending.begin(), offending.begin() + std::min(quote, offending.size()));
  return MakeIp(src, dst, ipv4::kProtocolIcmp, l4);
}

struct Fields {
  Endpoint source;
  Endpoint destination;
  uint8_t ttl = 0;
  uint8_t protocol = 0;
};

// Addresses and ports (ICMP: identifier in both) of a packet.
Fields Read(std::vector<uint8_t>& p) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  EXPECT_TRUE(ip);
  if (!ip) return {};
  Fields f{{ip->source(), 0}, {ip->destination(), 0}, ip->ttl(), ip->protocol()};
  absl::Span<uint8_t> l4 = ip->payload();
  if (ip->protocol() == ipv4::kProtocolIcmp) {
    f.source.port = f.destination.port = LoadBe16(&l4[4]);
  } else {
    f.source.port = LoadBe16(&l4[0]);
    f.destination.port = LoadBe16(&l4[2]);
  }
  return f;
}

// Addresses and ports of the packet quoted in the ICMP error `error` (cut short or not).
Fields ReadQuote(std::vector<uint8_t>& error) {
  std::optional<Ipv4View> outer = Ipv4View::Parse(absl::MakeSpan(error));
  EXPECT_TRUE(outer);
  if (!outer) return {};
  std::optional<Ipv4View> quoted = Ipv4View::ParseQuoted(outer->payload().subspan(8));
  EXPECT_TRUE(quoted);
  if (!quoted || quoted->payload().size() < 8) return {};
  Fields f{{quoted->source(), 0}, {quoted->destination(), 0}, quoted->ttl(), quoted->protocol()};
  absl::Span<uint8_t> l4 = quoted->payload();
  if (quoted->protocol() == ipv4::kProtocolIcmp) {
    f.source.port = f.destination.port = LoadBe16(&l4[4]);
  } else {
    f.source.port = LoadBe16(&l4[0]);
    f.destination.port = LoadBe16(&l4[2]);
  }
  return f;
}

// The packet's IP and transport checksums equal a full recomputation, bit for bit.
void ExpectExactChecksums(const std::vector<uint8_t>& p) {
  std::vector<uint8_t> expected = p;
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(expected));
  ASSERT_TRUE(ip);
  ip->FillChecksum();
  wire::FillTransportChecksum(*ip);
  EXPECT_EQ(p, expected) << "incrementally updated checksums differ from a full recomputation";
}

class NatTest : public ::testing::Test {
 protected:
  NatEngine& engine() {
    if (!engine_) engine_ = std::make_unique<NatEngine>(config_);
    return *engine_;
  }
  Result In(std::vector<uint8_t>& p, uint64_t now = 0) { return engine().FromInside(now, absl::MakeSpan(p)); }
  Result Out(std::vector<uint8_t>& p, uint64_t now = 0) { return engine().FromOutside(now, absl::MakeSpan(p)); }
  uint64_t drops(DropReason r) { return engine().drops()[static_cast<size_t>(r)]; }
  // The external endpoint a UDP flow from `internal` to `remote` leaves with.
  Endpoint UdpOut(Endpoint internal, Endpoint remote, uint64_t now = 0) {
    std::vector<uint8_t> p = Udp(internal, remote);
    Result r = In(p, now);
    EXPECT_EQ(r.verdict, Verdict::kForwardOutside) << DropReasonName(r.reason);
    return Read(p).source;
  }
  size_t Sessions() { return engine().session_count(); }
  // The state of the one TCP session of `internal` (to `remote`, when given).
  std::string StateOf(Endpoint internal, Endpoint remote = {}) {
    std::string state = "none";
    engine().ForEachSession(0, [&](const NatEngine::SessionInfo& s) {
      if (s.protocol == Protocol::kTcp && s.internal == internal && (remote.address == 0 || s.remote == remote)) {
        state = s.state;
      }
    });
    return state;
  }
  DpmGrant Grant(const DpmRequest& request, uint64_t now = 0) {
    auto result = engine().RequestDpm(now, request);
    EXPECT_TRUE(std::holds_alternative<DpmGrant>(result))
        << GrantErrorName(std::holds_alternative<GrantError>(result) ? std::get<GrantError>(result) : GrantError::kNone);
    return std::holds_alternative<DpmGrant>(result) ? std::get<DpmGrant>(result) : DpmGrant{};
  }
  GrantError Refusal(const DpmRequest& request, uint64_t now = 0) {
    auto result = engine().RequestDpm(now, request);
    return std::holds_alternative<GrantError>(result) ? std::get<GrantError>(result) : GrantError::kNone;
  }

  NatConfig config_ = TestConfig();
  std::unique_ptr<NatEngine> engine_;
};

bool InPool(uint32_t a) { return a >= Ip(203, 0, 113, 1) && a <= Ip(203, 0, 113, 8); }

// ---- Plain NAPT ------------------------------------------------------------------------------

TEST_F(NatTest, UdpOutAndBack) {
  std::vector<uint8_t> p = Udp({kHostA, 40000}, {kRemote1, 53});
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  Fields out = Read(p);
  EXPECT_TRUE(InPool(out.source.address));
  EXPECT_GE(out.source.port, 1024);
  EXPECT_EQ(out.source.port % 2, 0) << "RFC 4787 REQ-4: parity kept";
  EXPECT_EQ(out.destination, (Endpoint{kRemote1, 53}));
  EXPECT_EQ(out.ttl, 63);
  ExpectExactChecksums(p);

  std::vector<uint8_t> reply = Udp({kRemote1, 53}, out.source, 77);
  ASSERT_EQ(Out(reply).verdict, Verdict::kForwardInside);
  Fields back = Read(reply);
  EXPECT_EQ(back.source, (Endpoint{kRemote1, 53}));
  EXPECT_EQ(back.destination, (Endpoint{kHostA, 40000}));
  EXPECT_EQ(back.ttl, 63);
  ExpectExactChecksums(reply);
  EXPECT_EQ(engine().counters().translated_out, 1u);
  EXPECT_EQ(engine().counters().translated_in, 1u);
}

// A random flow from an inside host of 10.77.SUBNET.0/24 to an outside one; TCP or UDP.
struct Flow {
  Endpoint internal, remote;
  bool tcp;
};
Flow RandomFlow(std::mt19937& rng, uint32_t subnet) {
  const Endpoint internal{Ip(10, 77, subnet, 1 + rng() % 50), static_cast<uint16_t>(1 + rng() % 65535)};
  const Endpoint remote{Ip(198, 51, 100, 1 + rng() % 200), static_cast<uint16_t>(1 + rng() % 65535)};
  return {internal, remote, rng() % 2 == 1};
}

TEST_F(NatTest, ChecksumsMatchFullRecomputationOverRandomTraffic) {
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    const auto [internal, remote, use_tcp] = RandomFlow(rng, 2);
    const size_t payload = rng() % 200;
    std::vector<uint8_t> p = use_tcp ? Tcp(internal, remote, tcp::kSyn, payload) : Udp(internal, remote, payload);
    if (rng() % 4 == 0) {  // IP options move the transport header
      std::vector<uint8_t> l4(p.begin() + 20, p.end());
      p = MakeIp(internal.address, remote.address, p[9], l4, 64, 0, 1 + rng() % 10);
    }
    ASSERT_EQ(In(p, i).verdict, Verdict::kForwardOutside);
    ExpectExactChecksums(p);
    const Endpoint external = Read(p).source;
    std::vector<uint8_t> reply = use_tcp ? Tcp(remote, external, tcp::kSyn | tcp::kAck, rng() % 100)
                                         : Udp(remote, external, rng() % 100);
    ASSERT_EQ(Out(reply, i).verdict, Verdict::kForwardInside);
    ExpectExactChecksums(reply);
    EXPECT_EQ(Read(reply).destination, internal);
  }
}

// Checksum offload (docs/nat.md "Offload"): the transport checksum field holds only the
// pseudo-header sum. After translation, completing it in software must give exactly the full
// checksum of the translated packet — for TCP super-packets larger than any MTU as well.
std::vector<uint8_t> ToPartial(std::vector<uint8_t> p, wire::Offload* offload) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  const bool udp = ip->protocol() == ipv4::kProtocolUdp;
  offload->partial_checksum = true;
  offload->checksum_start = static_cast<uint16_t>(ip->header_length());
  offload->checksum_offset = udp ? wire::udp::kChecksumOffset : tcp::kChecksumOffset;
  const uint16_t length = static_cast<uint16_t>(ip->payload().size());
  StoreBe16(&p[offload->checksum_start + offload->checksum_offset],
            wire::FoldSum(wire::PseudoHeaderSum(ip->source(), ip->destination(), ip->protocol(), length)));
  EXPECT_TRUE(wire::IsTransportOffload(p, *offload));
  return p;
}

void ExpectCompletesExactly(std::vector<uint8_t> p, const wire::Offload& offload) {
  ASSERT_TRUE(wire::CompleteChecksum(absl::MakeSpan(p), offload));
  ExpectExactChecksums(p);
}

TEST_F(NatTest, PartialChecksumsTranslateForTheLinkToComplete) {
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    const auto [internal, remote, use_tcp] = RandomFlow(rng, 3);
    // TCP up to a 64 KiB super-packet; UDP up to a jumbo datagram.
    const size_t payload = use_tcp ? rng() % 65000 : rng() % 9000;
    wire::Offload offload;
    std::vector<uint8_t> p = ToPartial(
        use_tcp ? Tcp(internal, remote, tcp::kAck | tcp::kPsh, payload) : Udp(internal, remote, payload), &offload);
    ASSERT_EQ(engine().FromInside(i, absl::MakeSpan(p), /*partial_checksum=*/true).verdict, Verdict::kForwardOutside);
    const Fields out = Read(p);
    EXPECT_NE(out.source, internal);
    ExpectCompletesExactly(p, offload);

    std::vector<uint8_t> reply = ToPartial(use_tcp ? Tcp(remote, out.source, tcp::kAck, rng() % 65000)
                                                   : Udp(remote, out.source, rng() % 9000),
                                           &offload);
    ASSERT_EQ(engine().FromOutside(i, absl::MakeSpan(reply), /*partial_checksum=*/true).verdict,
              Verdict::kForwardInside);
    EXPECT_EQ(Read(reply).destination, internal);
    ExpectCompletesExactly(reply, offload);
  }
}

TEST_F(NatTest, PartialChecksumTreatedAsCompleteWouldBreak) {
  // The same packet translated without the flag: its field is then wrong for the link to
  // complete (ports counted twice) — the flag is what makes the difference, not luck.
  wire::Offload offload;
  std::vector<uint8_t> p = ToPartial(Tcp({kHostA, 1111}, {kRemote1, 80}, tcp::kSyn, 100), &offload);
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  ASSERT_TRUE(wire::CompleteChecksum(absl::MakeSpan(p), offload));
  std::vector<uint8_t> expected = p;
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(expected));
  wire::FillTransportChecksum(*ip);
  EXPECT_NE(p, expected);
}

TEST_F(NatTest, UdpWithoutChecksumKeepsNone) {
  std::vector<uint8_t> p = Udp({kHostA, 40000}, {kRemote1, 53});
  StoreBe16(&p[26], 0);  // RFC 768: no checksum
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(LoadBe16(&p[26]), 0);
  EXPECT_TRUE(Ipv4View::Parse(absl::MakeSpan(p))->ChecksumValid());
}

TEST_F(NatTest, EndpointIndependentMapping) {
  // RFC 4787 REQ-1: one internal endpoint, one external endpoint, whatever the remote.
  const Endpoint e1 = UdpOut({kHostA, 40000}, {kRemote1, 53});
  const Endpoint e2 = UdpOut({kHostA, 40000}, {kRemote2, 123});
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(Sessions(), 2u);
  EXPECT_EQ(engine().mapping_count(), 1u);
  const Endpoint other = UdpOut({kHostA, 40001}, {kRemote1, 53});
  EXPECT_NE(other.port, e1.port);

  std::vector<uint8_t> tcp1 = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  std::vector<uint8_t> tcp2 = Tcp({kHostA, 40000}, {kRemote2, 443}, tcp::kSyn);
  ASSERT_EQ(In(tcp1).verdict, Verdict::kForwardOutside);
  ASSERT_EQ(In(tcp2).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(Read(tcp1).source, Read(tcp2).source) << "RFC 5382 REQ-1";
}

TEST_F(NatTest, EndpointIndependentFiltering) {
  // RFC 4787 REQ-8 (application transparency): any remote reaches an open mapping.
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  std::vector<uint8_t> stranger = Udp({kRemote2, 9999}, external);
  ASSERT_EQ(Out(stranger).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(stranger).destination, (Endpoint{kHostA, 40000}));

  // TCP through the same mapping: only a SYN opens a connection from outside.
  std::vector<uint8_t> syn_out = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(syn_out).verdict, Verdict::kForwardOutside);
  const Endpoint tcp_external = Read(syn_out).source;
  std::vector<uint8_t> ack = Tcp({kRemote2, 5555}, tcp_external, tcp::kAck);
  EXPECT_EQ(Out(ack).reason, DropReason::kNoMapping);
  std::vector<uint8_t> syn_in = Tcp({kRemote2, 5555}, tcp_external, tcp::kSyn);
  ASSERT_EQ(Out(syn_in).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40000}, {kRemote1, 80}), "INSIDE_INIT");
  EXPECT_EQ(StateOf({kHostA, 40000}, {kRemote2, 5555}), "OUTSIDE_INIT");

  // Nothing open: dropped and counted.
  std::vector<uint8_t> unsolicited = Udp({kRemote1, 53}, {Ip(203, 0, 113, 3), 40000});
  EXPECT_EQ(Out(unsolicited).reason, DropReason::kNoMapping);
  EXPECT_EQ(drops(DropReason::kNoMapping), 2u);
}

TEST_F(NatTest, PairedAddressPoolingAcrossProtocols) {
  // RFC 4787 REQ-2 and RFC 7857 §4: one internal host, one external address.
  std::set<uint32_t> a_addresses;
  for (uint16_t port = 40000; port < 40020; ++port) {
    a_addresses.insert(UdpOut({kHostA, port}, {kRemote1, 53}).address);
    std::vector<uint8_t> syn = Tcp({kHostA, port}, {kRemote2, 80}, tcp::kSyn);
    ASSERT_EQ(In(syn).verdict, Verdict::kForwardOutside);
    a_addresses.insert(Read(syn).source.address);
  }
  std::vector<uint8_t> ping = Icmp(kHostA, kRemote1, icmp::kEchoRequest, 99);
  ASSERT_EQ(In(ping).verdict, Verdict::kForwardOutside);
  a_addresses.insert(Read(ping).source.address);
  EXPECT_EQ(a_addresses.size(), 1u);

  // Different hosts spread over the pool.
  std::set<uint32_t> host_addresses;
  for (uint32_t h = 1; h <= 64; ++h) host_addresses.insert(UdpOut({Ip(10, 77, 3, h), 5000}, {kRemote1, 53}).address);
  EXPECT_GT(host_addresses.size(), 4u);
}

TEST_F(NatTest, PortRangeAndParityPreserved) {
  // RFC 4787 REQ-3a: 0-1023 stays in 1-1023, the rest in [port_min, port_max]; REQ-4 parity.
  for (uint16_t port : {uint16_t{123}, uint16_t{512}, uint16_t{1023}}) {
    const Endpoint e = UdpOut({kHostA, port}, {kRemote1, 123});
    EXPECT_GE(e.port, 1);
    EXPECT_LE(e.port, 1023) << "internal port " << port;
    EXPECT_EQ(e.port % 2, port % 2);
  }
  for (uint16_t port = 1024; port < 1224; ++port) {
    const Endpoint e = UdpOut({kHostA, port}, {kRemote1, 53});
    EXPECT_GE(e.port, 1024);
    EXPECT_EQ(e.port % 2, port % 2) << "internal port " << port;
  }
}

TEST(NatPorts, RandomPortDiffersAcrossSeedsAndRepeatsForOne) {
  auto first_ports = [](uint64_t seed) {
    NatConfig c = TestConfig();
    c.seed = seed;
    NatEngine engine(c);
    std::vector<uint16_t> ports;
    for (uint16_t i = 0; i < 8; ++i) {
      std::vector<uint8_t> p = Udp({kHostA, static_cast<uint16_t>(40000 + i)}, {kRemote1, 53});
      EXPECT_EQ(engine.FromInside(0, absl::MakeSpan(p)).verdict, Verdict::kForwardOutside);
      ports.push_back(Read(p).source.port);
    }
    return ports;
  };
  EXPECT_EQ(first_ports(1), first_ports(1)) << "a fixed seed is reproducible";
  EXPECT_NE(first_ports(1), first_ports(2));
  // Not sequential either (RFC 6056: obfuscated).
  std::vector<uint16_t> ports = first_ports(3);
  int sequential = 0;
  for (size_t i = 1; i < ports.size(); ++i) sequential += std::abs(ports[i] - ports[i - 1]) <= 2;
  EXPECT_LT(sequential, 3);
}

TEST(NatPorts, AllocatorFillsTheRangeExactly) {
  PortAllocator ports({Ip(203, 0, 113, 1)}, 40000, 40099, 5);
  std::set<uint16_t> seen;
  for (int i = 0; i < 100; ++i) {
    std::optional<uint16_t> p = ports.Allocate(0, Protocol::kUdp, static_cast<uint16_t>(2000 + i));
    ASSERT_TRUE(p) << i;
    EXPECT_GE(*p, 40000);
    EXPECT_LE(*p, 40099);
    EXPECT_TRUE(seen.insert(*p).second) << "port " << *p << " handed out twice";
  }
  EXPECT_FALSE(ports.Allocate(0, Protocol::kUdp, 2000)) << "range full";
  EXPECT_TRUE(ports.Allocate(0, Protocol::kTcp, 2000)) << "TCP ports are separate";
  ports.Release(0, Protocol::kUdp, 40050);
  std::optional<uint16_t> low = ports.Allocate(0, Protocol::kUdp, 7);
  ASSERT_TRUE(low) << "the low range is separate from [port_min, port_max]";
  EXPECT_LE(*low, 1023);
  EXPECT_EQ(*low % 2, 1);
  EXPECT_EQ(ports.Allocate(0, Protocol::kUdp, 2001), std::optional<uint16_t>(40050));
  EXPECT_EQ(ports.used(0, Protocol::kUdp), 101u);  // 100 dynamic + the low one above
}

TEST_F(NatTest, HairpinningUdp) {
  // RFC 4787 REQ-9: A reaches B through B's external endpoint, and sees B's external
  // endpoint as the source of the reply; B sees A's external endpoint (REQ-9a).
  const Endpoint b_external = UdpOut({kHostB, 6000}, {kRemote1, 53});
  std::vector<uint8_t> p = Udp({kHostA, 7000}, b_external);
  Result r = In(p);
  ASSERT_EQ(r.verdict, Verdict::kForwardInside) << DropReasonName(r.reason);
  Fields at_b = Read(p);
  EXPECT_EQ(at_b.destination, (Endpoint{kHostB, 6000}));
  EXPECT_TRUE(InPool(at_b.source.address));
  EXPECT_EQ(at_b.ttl, 63) << "one hop";
  ExpectExactChecksums(p);
  const Endpoint a_external = at_b.source;

  std::vector<uint8_t> reply = Udp({kHostB, 6000}, a_external);
  ASSERT_EQ(In(reply).verdict, Verdict::kForwardInside);
  Fields at_a = Read(reply);
  EXPECT_EQ(at_a.source, b_external);
  EXPECT_EQ(at_a.destination, (Endpoint{kHostA, 7000}));
  ExpectExactChecksums(reply);
  EXPECT_EQ(engine().counters().hairpinned, 2u);

  // To an external endpoint nobody holds: dropped.
  std::vector<uint8_t> nowhere = Udp({kHostA, 7000}, {Ip(203, 0, 113, 5), 1});
  EXPECT_EQ(In(nowhere).reason, DropReason::kNoMapping);
}

TEST_F(NatTest, HairpinningTcp) {
  // RFC 5382 REQ-8.
  std::vector<uint8_t> listen = Tcp({kHostB, 8080}, {kRemote1, 443}, tcp::kSyn);
  ASSERT_EQ(In(listen).verdict, Verdict::kForwardOutside);
  const Endpoint b_external = Read(listen).source;
  std::vector<uint8_t> syn = Tcp({kHostA, 50000}, b_external, tcp::kSyn);
  ASSERT_EQ(In(syn).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(syn).destination, (Endpoint{kHostB, 8080}));
  ExpectExactChecksums(syn);
  std::vector<uint8_t> syn_ack = Tcp({kHostB, 8080}, Read(syn).source, tcp::kSyn | tcp::kAck);
  ASSERT_EQ(In(syn_ack).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(syn_ack).destination, (Endpoint{kHostA, 50000}));
  EXPECT_EQ(StateOf({kHostA, 50000}), "ESTABLISHED");
}

// ---- Timers ----------------------------------------------------------------------------------

TEST_F(NatTest, TcpTransitoryExpiresAtFourMinutes) {
  std::vector<uint8_t> syn = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(syn).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "INSIDE_INIT");
  engine().Sweep(4 * kMinute - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  EXPECT_EQ(engine().NextDeadline(), std::optional<uint64_t>(4 * kMinute));
  EXPECT_EQ(engine().Sweep(4 * kMinute, 1000), 1u);
  EXPECT_EQ(Sessions(), 0u);
  EXPECT_EQ(engine().mapping_count(), 0u) << "the mapping goes with its last session";
  EXPECT_EQ(engine().NextDeadline(), std::nullopt);
}

TEST_F(NatTest, TcpEstablishedKeptTwoHoursFourMinutes) {
  std::vector<uint8_t> syn = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(syn, 0).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(syn).source;
  std::vector<uint8_t> syn_ack = Tcp({kRemote1, 80}, external, tcp::kSyn | tcp::kAck);
  ASSERT_EQ(Out(syn_ack, 1 * kSecond).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "ESTABLISHED");
  const uint64_t established = 124 * kMinute;  // RFC 5382 REQ-5
  engine().Sweep(kSecond + established - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  // An idle established connection past the transitory timer still translates.
  std::vector<uint8_t> data = Tcp({kRemote1, 80}, external, tcp::kAck | tcp::kPsh, 100);
  ASSERT_EQ(Out(data, established).verdict, Verdict::kForwardInside);
  engine().Sweep(2 * established - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  EXPECT_EQ(engine().Sweep(2 * established, 1000), 1u);
}

TEST_F(NatTest, TcpFinBothWaysIsTransitoryAndNotRefreshed) {
  std::vector<uint8_t> p = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(p, 0).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(p).source;
  p = Tcp({kRemote1, 80}, external, tcp::kSyn | tcp::kAck);
  ASSERT_EQ(Out(p, 0).verdict, Verdict::kForwardInside);
  p = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kFin | tcp::kAck);
  ASSERT_EQ(In(p, 10 * kSecond).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "INSIDE_FIN");
  p = Tcp({kRemote1, 80}, external, tcp::kFin | tcp::kAck);
  ASSERT_EQ(Out(p, 20 * kSecond).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "BOTH_FIN");
  p = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kAck);  // the last ACK: no refresh
  ASSERT_EQ(In(p, 3 * kMinute).verdict, Verdict::kForwardOutside);
  engine().Sweep(20 * kSecond + 4 * kMinute - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  engine().Sweep(20 * kSecond + 4 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 0u);
}

TEST_F(NatTest, TcpRstGoesTransitoryThenBackToEstablished) {
  // RFC 7857 §2.3: the RST is translated and the session kept 4 minutes.
  std::vector<uint8_t> p = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(p, 0).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(p).source;
  p = Tcp({kRemote1, 80}, external, tcp::kSyn | tcp::kAck);
  ASSERT_EQ(Out(p, 0).verdict, Verdict::kForwardInside);
  p = Tcp({kRemote1, 80}, external, tcp::kRst);
  ASSERT_EQ(Out(p, kMinute).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "TRANS");
  EXPECT_LE(engine().NextDeadline(), std::optional<uint64_t>(5 * kMinute)) << "never later than the deadline";
  engine().Sweep(kMinute, 1000);  // a full pass makes it exact
  EXPECT_EQ(engine().NextDeadline(), std::optional<uint64_t>(5 * kMinute));
  p = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kAck);  // the RST was lost: the connection lives
  ASSERT_EQ(In(p, 2 * kMinute).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "ESTABLISHED");
  p = Tcp({kRemote1, 80}, external, tcp::kRst);
  ASSERT_EQ(Out(p, 3 * kMinute).verdict, Verdict::kForwardInside);
  engine().Sweep(7 * kMinute - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  engine().Sweep(7 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 0u);
  // A RST for nothing creates nothing.
  p = Tcp({kHostA, 40001}, {kRemote1, 80}, tcp::kRst);
  EXPECT_EQ(In(p, 8 * kMinute).reason, DropReason::kNoMapping);
  EXPECT_EQ(Sessions(), 0u);
}

TEST_F(NatTest, TcpSimultaneousOpenAndMidStreamPickup) {
  // RFC 5382 REQ-2a: simultaneous open (SYN both ways).
  std::vector<uint8_t> p = Tcp({kHostA, 40000}, {kRemote1, 9000}, tcp::kSyn);
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  std::vector<uint8_t> q = Tcp({kRemote1, 9000}, Read(p).source, tcp::kSyn);
  ASSERT_EQ(Out(q).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40000}), "ESTABLISHED");
  // A segment of a connection the NAT does not know: transitory until it sees more.
  p = Tcp({kHostA, 40001}, {kRemote1, 9000}, tcp::kAck, 10);
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(StateOf({kHostA, 40001}), "TRANS");
  q = Tcp({kRemote1, 9000}, Read(p).source, tcp::kAck);
  ASSERT_EQ(Out(q).verdict, Verdict::kForwardInside);
  EXPECT_EQ(StateOf({kHostA, 40001}), "ESTABLISHED");
}

TEST_F(NatTest, UdpTimerDefaultFiveMinutesRefreshedBothWays) {
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53}, 0);
  engine().Sweep(5 * kMinute - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  std::vector<uint8_t> in = Udp({kRemote1, 53}, external);
  ASSERT_EQ(Out(in, 4 * kMinute).verdict, Verdict::kForwardInside);  // RFC 4787 REQ-6a
  engine().Sweep(9 * kMinute - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  engine().Sweep(9 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 0u);
}

TEST(NatConfigTest, RejectsTimersBelowTheRfcMinimums) {
  EXPECT_TRUE(ValidateNatConfig(TestConfig()).ok());
  NatConfig c = TestConfig();
  c.udp_timeout_ms = 119999;  // RFC 4787 REQ-5: >= 2 min
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.tcp_established_ms = 124 * kMinute - 1;
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.tcp_transitory_ms = 4 * kMinute - 1;
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.icmp_timeout_ms = 59999;
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.external_addresses.clear();
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.port_min = 2000;
  c.port_max = 1999;
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.gateway_inside_address = Ip(192, 168, 0, 1);
  EXPECT_FALSE(ValidateNatConfig(c).ok());
  c = TestConfig();
  c.external_addresses.push_back(Ip(10, 77, 9, 9));
  EXPECT_FALSE(ValidateNatConfig(c).ok());
}

TEST_F(NatTest, IcmpEchoByIdentifierExpiresAtSixtySeconds) {
  // RFC 5508 REQ-1, REQ-1a (identifier mapping), REQ-2 (>= 60 s).
  std::vector<uint8_t> ping = Icmp(kHostA, kRemote1, icmp::kEchoRequest, 0x1234, 1);
  ASSERT_EQ(In(ping, 0).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(ping).source;
  EXPECT_TRUE(InPool(external.address));
  ExpectExactChecksums(ping);
  std::vector<uint8_t> pong = Icmp(kRemote1, external.address, icmp::kEchoReply, external.port, 1);
  ASSERT_EQ(Out(pong, 1 * kSecond).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(pong).destination, (Endpoint{kHostA, 0x1234}));
  ExpectExactChecksums(pong);
  // The same identifier toward another host: the same external identifier.
  std::vector<uint8_t> ping2 = Icmp(kHostA, kRemote2, icmp::kEchoRequest, 0x1234, 1);
  ASSERT_EQ(In(ping2, 2 * kSecond).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(Read(ping2).source, external);
  engine().Sweep(kSecond + 60 * kSecond - 1, 1000);
  EXPECT_EQ(Sessions(), 2u);
  engine().Sweep(2 * kSecond + 60 * kSecond, 1000);
  EXPECT_EQ(Sessions(), 0u);
  // An echo request from outside is not forwarded in; to the gateway's address it is its own.
  std::vector<uint8_t> probe = Icmp(kRemote1, external.address, icmp::kEchoRequest, external.port);
  EXPECT_EQ(Out(probe).reason, DropReason::kNoMapping);
  std::vector<uint8_t> to_gateway = Icmp(kRemote1, kGatewayOutside, icmp::kEchoRequest, 1);
  EXPECT_EQ(Out(to_gateway).verdict, Verdict::kToGateway);
}

// ---- ICMP errors (RFC 5508 §4) -----------------------------------------------------------------

// Checks an ICMP error as translated: outer checksums exact, the quoted IP header checksum
// right, and the quoted transport checksum (when quoted whole) right too.
void ExpectTranslatedError(std::vector<uint8_t>& error, bool whole_quote) {
  ExpectExactChecksums(error);
  std::optional<Ipv4View> outer = Ipv4View::Parse(absl::MakeSpan(error));
  ASSERT_TRUE(outer);
  absl::Span<uint8_t> quote = outer->payload().subspan(8);
  std::optional<Ipv4View> quoted = Ipv4View::ParseQuoted(quote);
  ASSERT_TRUE(quoted);
  EXPECT_TRUE(quoted->ChecksumValid()) << "quoted IP header checksum";
  if (whole_quote) {
    std::optional<Ipv4View> whole = Ipv4View::Parse(quote);
    ASSERT_TRUE(whole);
    EXPECT_TRUE(wire::TransportChecksumValid(*whole)) << "quoted transport checksum";
  }
}

TEST_F(NatTest, IcmpErrorFromOutsideAboutUdp) {
  std::vector<uint8_t> p = Udp({kHostA, 40000}, {kRemote1, 53}, 21);
  ASSERT_EQ(In(p, 0).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(p).source;
  // Port unreachable from the remote, quoting all of the translated datagram.
  std::vector<uint8_t> error = IcmpError(kRemote1, external.address, icmp::kDestinationUnreachable,
                                         icmp::kCodePortUnreachable, p, p.size());
  ASSERT_EQ(Out(error, kSecond).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(error, /*whole_quote=*/true);
  Fields outer = Read(error);
  EXPECT_EQ(outer.source.address, kRemote1);
  EXPECT_EQ(outer.destination.address, kHostA) << "REQ-4c";
  const Fields q = ReadQuote(error);
  EXPECT_EQ(q.source, (Endpoint{kHostA, 40000})) << "REQ-4a: the quote as the host sent it";
  EXPECT_EQ(q.destination, (Endpoint{kRemote1, 53}));
  EXPECT_EQ(error[20], icmp::kDestinationUnreachable) << "REQ-4b: type and code unchanged";
  EXPECT_EQ(error[21], icmp::kCodePortUnreachable);
  EXPECT_EQ(engine().counters().icmp_errors_translated, 1u);
}

TEST_F(NatTest, IcmpTimeExceededAndFragNeededFromARouter) {
  std::vector<uint8_t> syn = Tcp({kHostA, 40000}, {kRemote1, 80}, tcp::kSyn, 0, 5);
  ASSERT_EQ(In(syn).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(syn).source;
  // RFC 792 minimum quote: the IP header and 8 bytes (no TCP checksum in it).
  std::vector<uint8_t> ttl = IcmpError(kRouter, external.address, icmp::kTimeExceeded, 0, syn, 28);
  ASSERT_EQ(Out(ttl).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(ttl, false);
  EXPECT_EQ(Read(ttl).source.address, kRouter) << "the router's address stays (traceroute)";
  const Fields q = ReadQuote(ttl);
  EXPECT_EQ(q.source, (Endpoint{kHostA, 40000}));

  // Fragmentation needed (RFC 5508 REQ-10, path MTU discovery): the MTU field is kept.
  std::vector<uint8_t> frag = IcmpError(kRouter, external.address, icmp::kDestinationUnreachable,
                                        icmp::kCodeFragmentationNeeded, syn, 576, 1280);
  ASSERT_EQ(Out(frag).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(frag, true);
  EXPECT_EQ(wire::LoadBe32(&frag[24]), 1280u);
}

TEST_F(NatTest, IcmpErrorFromInsideAboutUdp) {
  // REQ-5: the inside host refuses a datagram that came in through its mapping.
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  std::vector<uint8_t> in = Udp({kRemote1, 53}, external, 30);
  ASSERT_EQ(Out(in).verdict, Verdict::kForwardInside);
  std::vector<uint8_t> error =
      IcmpError(kHostA, kRemote1, icmp::kDestinationUnreachable, icmp::kCodePortUnreachable, in, in.size());
  ASSERT_EQ(In(error).verdict, Verdict::kForwardOutside);
  ExpectTranslatedError(error, true);
  Fields outer = Read(error);
  EXPECT_EQ(outer.source.address, external.address) << "REQ-5c: from the host's external address";
  EXPECT_EQ(outer.destination.address, kRemote1);
  const Fields q = ReadQuote(error);
  EXPECT_EQ(q.destination, external) << "REQ-5a: the quote as the remote sent it";
}

TEST_F(NatTest, IcmpErrorAboutAnEchoRequest) {
  std::vector<uint8_t> ping = Icmp(kHostA, kRemote1, icmp::kEchoRequest, 7);
  ASSERT_EQ(In(ping).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(ping).source;
  std::vector<uint8_t> error = IcmpError(kRouter, external.address, icmp::kTimeExceeded, 0, ping, ping.size());
  ASSERT_EQ(Out(error).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(error, true);
  const Fields q = ReadQuote(error);
  EXPECT_EQ(q.source, (Endpoint{kHostA, 7})) << "the quoted identifier is the host's again";
}

TEST_F(NatTest, IcmpErrorsRefreshNothingAndBadOnesAreDropped) {
  std::vector<uint8_t> p = Udp({kHostA, 40000}, {kRemote1, 53});
  ASSERT_EQ(In(p, 0).verdict, Verdict::kForwardOutside);
  std::vector<uint8_t> error = IcmpError(kRemote1, Read(p).source.address, icmp::kDestinationUnreachable, 3, p, 28);
  std::vector<uint8_t> bad_icmp = error;
  bad_icmp[22] ^= 0x01;  // ICMP checksum (REQ-3)
  std::optional<Ipv4View>(Ipv4View::Parse(absl::MakeSpan(bad_icmp)))->FillChecksum();
  EXPECT_EQ(Out(bad_icmp).reason, DropReason::kBadChecksum);
  std::vector<uint8_t> bad_quote = error;
  bad_quote[28 + 10] ^= 0x01;  // quoted IP checksum (REQ-3a)
  {
    std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(bad_quote));
    wire::FillTransportChecksum(*ip);
  }
  EXPECT_EQ(Out(bad_quote).reason, DropReason::kBadChecksum);
  std::vector<uint8_t> copy = error;
  ASSERT_EQ(Out(copy, 4 * kMinute).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Sessions(), 1u) << "RFC 4787 REQ-12: an error does not end a mapping";
  engine().Sweep(5 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 0u) << "REQ-6: nor does it refresh one";
  // About a flow that no longer exists.
  std::vector<uint8_t> stale = error;
  EXPECT_EQ(Out(stale, 6 * kMinute).reason, DropReason::kNoMapping);
  // Not addressed to one of ours.
  std::vector<uint8_t> astray = IcmpError(kRemote1, Ip(198, 51, 100, 77), icmp::kDestinationUnreachable, 3, p, 28);
  EXPECT_EQ(Out(astray).reason, DropReason::kNoRoute);
}

TEST_F(NatTest, HairpinnedIcmpError) {
  // RFC 5508 REQ-7: B reports on a hairpinned datagram from A; A gets the error.
  const Endpoint b_external = UdpOut({kHostB, 6000}, {kRemote1, 53});
  std::vector<uint8_t> p = Udp({kHostA, 7000}, b_external);
  ASSERT_EQ(In(p).verdict, Verdict::kForwardInside);
  const Endpoint a_external = Read(p).source;
  std::vector<uint8_t> error =
      IcmpError(kHostB, a_external.address, icmp::kDestinationUnreachable, 3, p, p.size());
  ASSERT_EQ(In(error).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(error, true);
  EXPECT_EQ(Read(error).destination.address, kHostA) << "REQ-7a";
  const Fields q = ReadQuote(error);
  EXPECT_EQ(q.source, (Endpoint{kHostA, 7000}));
  EXPECT_EQ(q.destination, b_external) << "as A sent it";
}

// ---- Bad input ---------------------------------------------------------------------------------

TEST_F(NatTest, EveryCutOfAValidPacketIsMalformed) {
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  std::vector<uint8_t> echo_out = Icmp(kHostA, kRemote1, icmp::kEchoRequest, 5);
  std::vector<std::vector<uint8_t>> inside = {Udp({kHostA, 40000}, {kRemote1, 53}, 12),
                                              Tcp({kHostA, 40001}, {kRemote1, 80}, tcp::kSyn, 9), echo_out};
  std::vector<uint8_t> reply = Udp({kRemote1, 53}, external, 12);
  std::vector<std::vector<uint8_t>> outside = {
      reply, IcmpError(kRemote1, external.address, icmp::kDestinationUnreachable, 3, reply, 36)};
  uint64_t cuts = 0;
  for (bool from_inside : {true, false}) {
    for (const std::vector<uint8_t>& whole : from_inside ? inside : outside) {
      for (size_t n = 0; n < whole.size(); ++n) {
        std::vector<uint8_t> cut(whole.begin(), whole.begin() + n);
        Result r = from_inside ? In(cut) : Out(cut);
        EXPECT_EQ(r.reason, DropReason::kMalformed) << "cut at " << n << " of " << whole.size();
        ++cuts;
        // The same cut with the IP length fixed up: headers cut short are still malformed.
        if (n >= 20) {
          std::vector<uint8_t> fixed(whole.begin(), whole.begin() + n);
          StoreBe16(&fixed[2], static_cast<uint16_t>(n));
          std::optional<Ipv4View>(Ipv4View::Parse(absl::MakeSpan(fixed)))->FillChecksum();
          const uint8_t protocol = fixed[9];
          const size_t headers = 20 + (protocol == ipv4::kProtocolTcp ? 20 : 8);
          Result fr = from_inside ? In(fixed) : Out(fixed);
          if (n < headers || protocol == ipv4::kProtocolUdp) {  // UDP: the length field says more
            EXPECT_EQ(fr.reason, DropReason::kMalformed) << "header cut at " << n;
            ++cuts;
          }
        }
      }
    }
  }
  EXPECT_EQ(drops(DropReason::kMalformed), cuts);
}

TEST_F(NatTest, BadIpChecksumTtlAndSpoofedSources) {
  std::vector<uint8_t> p = Udp({kHostA, 40000}, {kRemote1, 53});
  p[10] ^= 0xff;
  EXPECT_EQ(In(p).reason, DropReason::kBadChecksum);

  std::vector<uint8_t> last_hop = Udp({kHostA, 40000}, {kRemote1, 53}, 5, /*ttl=*/1);
  const std::vector<uint8_t> untouched = last_hop;
  EXPECT_EQ(In(last_hop).reason, DropReason::kTtlExceeded);
  EXPECT_EQ(last_hop, untouched) << "left for the caller's ICMP time exceeded";
  EXPECT_EQ(Sessions(), 0u) << "no session for a packet that dies here";

  std::vector<uint8_t> spoofed = Udp({Ip(8, 8, 8, 8), 40000}, {kRemote1, 53});
  EXPECT_EQ(In(spoofed).reason, DropReason::kNotFromInside);
  std::vector<uint8_t> inside_to_inside = Udp({kHostA, 40000}, {kHostB, 53});
  EXPECT_EQ(In(inside_to_inside).reason, DropReason::kNoRoute);
  std::vector<uint8_t> multicast = Udp({kHostA, 5353}, {Ip(224, 0, 0, 251), 5353});
  EXPECT_EQ(In(multicast).reason, DropReason::kNoRoute);
  std::vector<uint8_t> elsewhere = Udp({kRemote1, 53}, {Ip(198, 51, 100, 99), 53});
  EXPECT_EQ(Out(elsewhere).reason, DropReason::kNoRoute);
}

TEST_F(NatTest, FragmentsForTheGatewayAndUnknownProtocols) {
  std::vector<uint8_t> l4(8 + 16, 0);
  StoreBe16(&l4[0], 40000);
  StoreBe16(&l4[2], 53);
  StoreBe16(&l4[4], 200);
  // ICMP (a big ping) to the gateway, or anything to its outside address (not a pool address
  // here): its own, untouched; its stack reassembles them.
  std::vector<uint8_t> ping = MakeIp(kHostA, kGateway, ipv4::kProtocolIcmp, l4, 64, 3);
  const std::vector<uint8_t> untouched = ping;
  EXPECT_EQ(In(ping).verdict, Verdict::kToGateway) << "the gateway's stack reassembles its own";
  EXPECT_EQ(ping, untouched);
  std::vector<uint8_t> outside_to_gateway = MakeIp(kRemote1, kGatewayOutside, ipv4::kProtocolUdp, l4, 64, 3);
  EXPECT_EQ(Out(outside_to_gateway).verdict, Verdict::kToGateway);
  EXPECT_EQ(engine().held_fragment_count(), 0u);
  // TCP/UDP to its inside address may be a DPM session's (its gateway endpoint): the first
  // fragment decides. A miss (here PCP's port) is the gateway's, and so is the rest.
  std::vector<uint8_t> pcp_later =
      MakeIp(kHostA, kGateway, ipv4::kProtocolUdp, std::vector<uint8_t>(16, 0), 64, ipv4::kFlagMoreFragments | 3);
  EXPECT_EQ(In(pcp_later).verdict, Verdict::kHeld);
  StoreBe16(&l4[2], 5351);
  std::vector<uint8_t> pcp_first = MakeIp(kHostA, kGateway, ipv4::kProtocolUdp, l4, 64, ipv4::kFlagMoreFragments);
  Result r = In(pcp_first);
  EXPECT_EQ(r.verdict, Verdict::kToGateway);
  EXPECT_EQ(r.released, 1u);
  engine().TakeReleasedFragments([](Verdict v, absl::Span<uint8_t>) { EXPECT_EQ(v, Verdict::kToGateway); });
  std::vector<uint8_t> pcp_more = MakeIp(kHostA, kGateway, ipv4::kProtocolUdp, std::vector<uint8_t>(16, 0), 64, 5);
  EXPECT_EQ(In(pcp_more).verdict, Verdict::kToGateway) << "as its first fragment";
  EXPECT_EQ(engine().fragment_record_count(), 0u) << "all 56 bytes came";

  std::vector<uint8_t> gre = MakeIp(kHostA, kRemote1, 47, std::vector<uint8_t>(8, 0));
  EXPECT_EQ(In(gre).reason, DropReason::kUnsupportedProtocol);
  std::vector<uint8_t> gre_in = MakeIp(kRemote1, Ip(203, 0, 113, 1), 47, std::vector<uint8_t>(8, 0));
  EXPECT_EQ(Out(gre_in).reason, DropReason::kUnsupportedProtocol);
  std::vector<uint8_t> gre_gw = MakeIp(kHostA, kGateway, 47, std::vector<uint8_t>(8, 0));
  EXPECT_EQ(In(gre_gw).verdict, Verdict::kToGateway);
  std::vector<uint8_t> redirect = Icmp(kHostA, kRemote1, icmp::kRedirect, 0);
  EXPECT_EQ(In(redirect).reason, DropReason::kIcmpNotTranslated);
  EXPECT_EQ(drops(DropReason::kUnsupportedProtocol), 2u);
}

TEST_F(NatTest, TrafficForTheGatewayItself) {
  std::vector<uint8_t> pcp = Udp({kHostA, 40000}, {kGateway, 5351});
  EXPECT_EQ(In(pcp).verdict, Verdict::kToGateway);
  std::vector<uint8_t> ping = Icmp(kHostA, kGateway, icmp::kEchoRequest, 1);
  EXPECT_EQ(In(ping).verdict, Verdict::kToGateway);
  std::vector<uint8_t> outside = Udp({kRemote1, 53}, {kGatewayOutside, 53});
  EXPECT_EQ(Out(outside).verdict, Verdict::kToGateway);
  EXPECT_EQ(engine().counters().to_gateway, 3u);
  EXPECT_EQ(Sessions(), 0u);
}

TEST_F(NatTest, QuotaAndSessionLimitForPlainHosts) {
  config_.per_host_quota = 3;
  for (uint16_t port = 1; port <= 3; ++port) UdpOut({kHostA, static_cast<uint16_t>(40000 + port)}, {kRemote1, 53});
  std::vector<uint8_t> fourth = Udp({kHostA, 40100}, {kRemote1, 53});
  EXPECT_EQ(In(fourth).reason, DropReason::kQuota);
  UdpOut({kHostB, 40000}, {kRemote1, 53});  // another host is not affected

  NatConfig small = TestConfig();
  small.max_sessions = 2;
  NatEngine limited(small);
  for (uint16_t port = 1; port <= 3; ++port) {
    std::vector<uint8_t> p = Udp({kHostA, static_cast<uint16_t>(40000 + port)}, {kRemote1, 53});
    Result r = limited.FromInside(0, absl::MakeSpan(p));
    EXPECT_EQ(r.reason, port <= 2 ? DropReason::kNone : DropReason::kNoResources);
  }
}

// ---- DPM sessions (the DPM patent) ---------------------------------------------------------------

DpmRequest Dpm(Endpoint internal, Endpoint remote, bool fixed, uint32_t lifetime = 3600, Endpoint suggested = {}) {
  return DpmRequest{Protocol::kUdp, internal, remote, suggested, fixed, lifetime};
}

TEST_F(NatTest, DpmSessionRewritesBothEndsBothWays) {
  // Claims 5-7: the driver aims at the gateway endpoint; the gateway rewrites source ->
  // registered address:port and destination -> the true destination, and back.
  const DpmGrant grant = Grant(Dpm({kHostA, 5000}, {kRemote1, 53}, /*fixed=*/false));
  EXPECT_TRUE(InPool(grant.external.address));
  EXPECT_EQ(grant.gateway_endpoint.address, kGateway);
  EXPECT_EQ(grant.lifetime_s, 3600u);
  std::vector<uint8_t> p = Udp({kHostA, 5000}, grant.gateway_endpoint, 33);
  ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(Read(p).source, grant.external);
  EXPECT_EQ(Read(p).destination, (Endpoint{kRemote1, 53}));
  ExpectExactChecksums(p);
  std::vector<uint8_t> reply = Udp({kRemote1, 53}, grant.external, 44);
  ASSERT_EQ(Out(reply).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(reply).source, grant.gateway_endpoint) << "the client sees the gateway endpoint answer";
  EXPECT_EQ(Read(reply).destination, (Endpoint{kHostA, 5000}));
  ExpectExactChecksums(reply);
  // Another remote cannot use a DPM session's external endpoint.
  std::vector<uint8_t> stranger = Udp({kRemote2, 53}, grant.external);
  EXPECT_EQ(Out(stranger).reason, DropReason::kNoMapping);
  bool listed = false;
  engine().ForEachSession(0, [&](const NatEngine::SessionInfo& s) {
    listed = s.dpm && s.internal == Endpoint{kHostA, 5000} && s.remote == Endpoint{kRemote1, 53} &&
             s.gateway_endpoint == grant.gateway_endpoint && s.external == grant.external;
  });
  EXPECT_TRUE(listed);
}

TEST_F(NatTest, DpmTcpSessionAndItsErrors) {
  DpmRequest request = Dpm({kHostA, 5001}, {kRemote1, 80}, false);
  request.protocol = Protocol::kTcp;
  const DpmGrant grant = Grant(request);
  std::vector<uint8_t> syn = Tcp({kHostA, 5001}, grant.gateway_endpoint, tcp::kSyn);
  ASSERT_EQ(In(syn).verdict, Verdict::kForwardOutside);
  ExpectExactChecksums(syn);
  EXPECT_EQ(StateOf({kHostA, 5001}), "INSIDE_INIT");
  // The remote refuses: the error reaches the client as if the gateway endpoint sent it.
  std::vector<uint8_t> error = IcmpError(kRemote1, grant.external.address, icmp::kDestinationUnreachable,
                                         icmp::kCodePortUnreachable, syn, syn.size());
  ASSERT_EQ(Out(error).verdict, Verdict::kForwardInside);
  ExpectTranslatedError(error, true);
  EXPECT_EQ(Read(error).source.address, kGateway);
  EXPECT_EQ(Read(error).destination.address, kHostA);
  const Fields q = ReadQuote(error);
  EXPECT_EQ(q.source, (Endpoint{kHostA, 5001}));
  EXPECT_EQ(q.destination, grant.gateway_endpoint);
}

TEST_F(NatTest, DpmFixedPortSharedByTwoRemotes) {
  // Claims 8-10, 22 (RFC 7857 §3): the same registered address and fixed port for two
  // sessions, told apart by their remotes.
  const uint32_t shared = Ip(203, 0, 113, 2);
  const DpmGrant a = Grant(Dpm({kHostA, 5060}, {kRemote1, 5060}, true, 3600, {shared, 0}));
  const DpmGrant b = Grant(Dpm({kHostB, 5060}, {kRemote2, 5060}, true, 3600, {shared, 0}));
  EXPECT_EQ(a.external, (Endpoint{shared, 5060}));
  EXPECT_EQ(b.external, (Endpoint{shared, 5060}));
  std::vector<uint8_t> from1 = Udp({kRemote1, 5060}, a.external);
  ASSERT_EQ(Out(from1).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(from1).destination, (Endpoint{kHostA, 5060}));
  std::vector<uint8_t> from2 = Udp({kRemote2, 5060}, b.external);
  ASSERT_EQ(Out(from2).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(from2).destination, (Endpoint{kHostB, 5060}));
  // The same client's fixed port toward two remotes: two gateway endpoints.
  const DpmGrant a2 = Grant(Dpm({kHostA, 5060}, {kRemote2, 5061}, true, 3600, {shared, 0}));
  EXPECT_EQ(a2.external, (Endpoint{shared, 5060}));
  EXPECT_NE(a2.gateway_endpoint, a.gateway_endpoint);
  std::vector<uint8_t> out2 = Udp({kHostA, 5060}, a2.gateway_endpoint);
  ASSERT_EQ(In(out2).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(Read(out2).destination, (Endpoint{kRemote2, 5061}));
  EXPECT_EQ(engine().mapping_count(), 1u) << "one shared external endpoint";
}

TEST_F(NatTest, DpmFixedPortSameRemoteIsRefused) {
  config_.external_addresses = {Ip(203, 0, 113, 1)};
  Grant(Dpm({kHostA, 5060}, {kRemote1, 5060}, true));
  EXPECT_EQ(Refusal(Dpm({kHostB, 5060}, {kRemote1, 5060}, true)), GrantError::kCannotProvideExternal);
  // Claim 23: a replaceable port in the same position gets a port of its own.
  const DpmGrant replaced = Grant(Dpm({kHostB, 5060}, {kRemote1, 5060}, false));
  EXPECT_NE(replaced.external.port, 5060);
  EXPECT_GE(replaced.external.port, 1024);
  // A fixed port cannot share with a replaceable session's or a NAPT mapping's port.
  EXPECT_EQ(Refusal(Dpm({Ip(10, 77, 1, 12), replaced.external.port}, {kRemote2, 1}, true)),
            GrantError::kCannotProvideExternal);
  const Endpoint napt = UdpOut({Ip(10, 77, 1, 13), 30000}, {kRemote1, 53});
  EXPECT_EQ(Refusal(Dpm({Ip(10, 77, 1, 14), napt.port}, {kRemote2, 1}, true)), GrantError::kCannotProvideExternal);
}

TEST_F(NatTest, DpmRenewReleaseAndLifetimes) {
  const DpmRequest request = Dpm({kHostA, 5000}, {kRemote1, 53}, false, 600);
  const DpmGrant first = Grant(request, 0);
  const DpmGrant renewed = Grant(request, 500 * kSecond);
  EXPECT_EQ(renewed.external, first.external);
  EXPECT_EQ(renewed.gateway_endpoint, first.gateway_endpoint);
  EXPECT_EQ(Sessions(), 1u);
  // A PCP mapping lives to its lifetime even if idle (RFC 6887 §15), past the UDP timer.
  engine().Sweep(500 * kSecond + 600 * kSecond - 1, 1000);
  EXPECT_EQ(Sessions(), 1u);
  engine().Sweep(500 * kSecond + 600 * kSecond, 1000);
  EXPECT_EQ(Sessions(), 0u);

  const DpmGrant again = Grant(request, 2000 * kSecond);
  DpmRequest release = request;
  release.lifetime_s = 0;
  const DpmGrant released = Grant(release, 2001 * kSecond);
  EXPECT_EQ(released.lifetime_s, 0u);
  EXPECT_EQ(released.external, again.external);
  EXPECT_EQ(Sessions(), 0u);
  EXPECT_EQ(engine().mapping_count(), 0u);
  std::vector<uint8_t> late = Udp({kHostA, 5000}, again.gateway_endpoint);
  EXPECT_EQ(In(late, 2002 * kSecond).verdict, Verdict::kToGateway) << "nothing maps the gateway endpoint now";
  EXPECT_EQ(Grant(release).lifetime_s, 0u) << "releasing nothing succeeds (RFC 6887 §15)";

  // Clamped to [min_lifetime_s, max_lifetime_s].
  EXPECT_EQ(Grant(Dpm({kHostA, 5001}, {kRemote1, 53}, false, 10)).lifetime_s, 120u);
  EXPECT_EQ(Grant(Dpm({kHostA, 5002}, {kRemote1, 53}, false, 1000000)).lifetime_s, 86400u);
}

TEST_F(NatTest, DpmQuota) {
  config_.per_host_quota = 3;
  for (uint16_t port = 1; port <= 3; ++port) Grant(Dpm({kHostA, port}, {kRemote1, 53}, false));
  EXPECT_EQ(Refusal(Dpm({kHostA, 4}, {kRemote1, 53}, false)), GrantError::kUserExQuota);
  std::vector<uint8_t> plain = Udp({kHostA, 9}, {kRemote1, 53});
  EXPECT_EQ(In(plain).reason, DropReason::kQuota) << "plain traffic counts toward the same quota";
  Grant(Dpm({kHostB, 4}, {kRemote1, 53}, false));
  DpmRequest release = Dpm({kHostA, 1}, {kRemote1, 53}, false, 0);
  Grant(release);
  Grant(Dpm({kHostA, 4}, {kRemote1, 53}, false));
}

TEST_F(NatTest, DpmExhaustionNeverEvicts) {
  config_.external_addresses = {Ip(203, 0, 113, 1)};
  config_.port_min = 40000;
  config_.port_max = 40003;
  std::vector<DpmGrant> grants;
  for (uint16_t i = 0; i < 4; ++i) grants.push_back(Grant(Dpm({Ip(10, 77, 1, 20 + i), 5000}, {kRemote1, 53}, false)));
  EXPECT_EQ(Refusal(Dpm({Ip(10, 77, 1, 30), 5000}, {kRemote1, 53}, false)), GrantError::kNoResources);
  std::vector<uint8_t> plain = Udp({Ip(10, 77, 1, 31), 5000}, {kRemote1, 53});
  EXPECT_EQ(In(plain).reason, DropReason::kNoResources);
  EXPECT_EQ(Sessions(), 4u) << "no live session was evicted";
  for (uint16_t i = 0; i < 4; ++i) {
    std::vector<uint8_t> p = Udp({Ip(10, 77, 1, 20 + i), 5000}, grants[i].gateway_endpoint);
    ASSERT_EQ(In(p).verdict, Verdict::kForwardOutside);
    EXPECT_EQ(Read(p).source, grants[i].external);
  }
  Grant(Dpm({Ip(10, 77, 1, 20), 5000}, {kRemote1, 53}, false, 0));
  const DpmGrant reused = Grant(Dpm({Ip(10, 77, 1, 30), 5000}, {kRemote1, 53}, false));
  EXPECT_EQ(reused.external, grants[0].external) << "the released port is the only free one";
}

TEST_F(NatTest, DpmSuggestedExternalHonoured) {
  const DpmGrant exact = Grant(Dpm({kHostA, 5000}, {kRemote1, 53}, false, 3600, {Ip(203, 0, 113, 5), 45000}));
  EXPECT_EQ(exact.external, (Endpoint{Ip(203, 0, 113, 5), 45000}));
  // The port taken: the address is still honoured, with another port.
  const DpmGrant other = Grant(Dpm({kHostB, 5000}, {kRemote1, 53}, false, 3600, {Ip(203, 0, 113, 5), 45000}));
  EXPECT_EQ(other.external.address, Ip(203, 0, 113, 5));
  EXPECT_NE(other.external.port, 45000);
  // Not a pool address: the host's paired address instead.
  const DpmGrant fallback = Grant(Dpm({kHostA, 5001}, {kRemote1, 53}, false, 3600, {Ip(8, 8, 8, 8), 45001}));
  EXPECT_TRUE(InPool(fallback.external.address));
}

TEST_F(NatTest, DpmRefusesWhatItCannotServe) {
  DpmRequest icmp_request = Dpm({kHostA, 1}, {kRemote1, 1}, false);
  icmp_request.protocol = Protocol::kIcmp;
  EXPECT_EQ(Refusal(icmp_request), GrantError::kUnsupportedProtocol);
  EXPECT_EQ(Refusal(Dpm({Ip(8, 8, 8, 8), 5000}, {kRemote1, 53}, false)), GrantError::kNotAuthorized);
  EXPECT_EQ(Refusal(Dpm({kGateway, 5000}, {kRemote1, 53}, false)), GrantError::kNotAuthorized);
  EXPECT_EQ(Refusal(Dpm({kHostA, 5000}, {kHostB, 53}, false)), GrantError::kNotAuthorized) << "inside remote";
  EXPECT_EQ(Refusal(Dpm({kHostA, 5000}, {kRemote1, 0}, false)), GrantError::kNotAuthorized);
  EXPECT_EQ(Sessions(), 0u);
}

// ---- Explicit mappings (PCP MAP, NAT-PMP) ------------------------------------------------------

TEST_F(NatTest, ExplicitMappingLivesUntilItsLifetimeAndServesAnyRemote) {
  auto result = engine().RequestMap(0, Protocol::kTcp, {kHostA, 8080}, {Ip(203, 0, 113, 7), 8080}, 600);
  ASSERT_TRUE(std::holds_alternative<DpmGrant>(result));
  const DpmGrant grant = std::get<DpmGrant>(result);
  EXPECT_EQ(grant.external, (Endpoint{Ip(203, 0, 113, 7), 8080}));
  std::vector<uint8_t> syn = Tcp({kRemote2, 40000}, grant.external, tcp::kSyn);
  ASSERT_EQ(Out(syn, kMinute).verdict, Verdict::kForwardInside);
  EXPECT_EQ(Read(syn).destination, (Endpoint{kHostA, 8080}));
  std::vector<uint8_t> out = Tcp({kHostA, 8080}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(out, kMinute).verdict, Verdict::kForwardOutside);
  EXPECT_EQ(Read(out).source, grant.external) << "outbound traffic uses the same mapping";
  EXPECT_EQ(engine().NextDeadline(), std::optional<uint64_t>(5 * kMinute)) << "the transitory sessions first";
  engine().Sweep(5 * kMinute, 1000);  // both half-open sessions time out; the mapping stays
  EXPECT_EQ(Sessions(), 0u);
  EXPECT_EQ(engine().mapping_count(), 1u);
  EXPECT_EQ(engine().Sweep(600 * kSecond, 1000), 1u);
  EXPECT_EQ(engine().mapping_count(), 0u);
  std::vector<uint8_t> late = Tcp({kRemote2, 40001}, grant.external, tcp::kSyn);
  EXPECT_EQ(Out(late, 601 * kSecond).reason, DropReason::kNoMapping);
}

TEST_F(NatTest, ExplicitMappingDeleteKeepsActiveFlows) {
  auto made = engine().RequestMap(0, Protocol::kUdp, {kHostA, 9000}, {}, 600);
  const Endpoint external = std::get<DpmGrant>(made).external;
  EXPECT_EQ(UdpOut({kHostA, 9000}, {kRemote1, 53}), external);
  auto deleted = engine().RequestMap(kSecond, Protocol::kUdp, {kHostA, 9000}, {}, 0);
  EXPECT_EQ(std::get<DpmGrant>(deleted).lifetime_s, 0u);
  std::vector<uint8_t> reply = Udp({kRemote1, 53}, external);
  EXPECT_EQ(Out(reply, 2 * kSecond).verdict, Verdict::kForwardInside) << "the flow keeps its mapping";
  engine().Sweep(2 * kSecond + 5 * kMinute, 1000);
  EXPECT_EQ(engine().mapping_count(), 0u);
  auto bad = engine().RequestMap(0, Protocol::kIcmp, {kHostA, 1}, {}, 600);
  EXPECT_EQ(std::get<GrantError>(bad), GrantError::kUnsupportedProtocol);
}

TEST_F(NatTest, ExpiredExplicitMappingOfTheOnlyFlowIsReplacedCleanly) {
  // The host's only state is an explicit mapping that has expired, unswept: a new flow from
  // that endpoint, or a DPM request for that fixed port, first drops it (and with it the host
  // record) and then makes new state.
  auto made = engine().RequestMap(0, Protocol::kUdp, {kHostA, 9000}, {Ip(203, 0, 113, 3), 9000}, 120);
  ASSERT_TRUE(std::holds_alternative<DpmGrant>(made));
  const Endpoint external = UdpOut({kHostA, 9000}, {kRemote1, 53}, 200 * kSecond);
  EXPECT_TRUE(InPool(external.address));
  EXPECT_EQ(Sessions(), 1u);
  auto again = engine().RequestMap(400 * kSecond, Protocol::kUdp, {kHostB, 9001}, {Ip(203, 0, 113, 3), 9001}, 120);
  ASSERT_TRUE(std::holds_alternative<DpmGrant>(again));
  const DpmGrant fixed = Grant(Dpm({kHostB, 9001}, {kRemote1, 9001}, true, 120, {Ip(203, 0, 113, 3), 0}), 600 * kSecond);
  EXPECT_EQ(fixed.external, (Endpoint{Ip(203, 0, 113, 3), 9001}));
}

// ---- Sweep -----------------------------------------------------------------------------------------

TEST_F(NatTest, SweepIsBounded) {
  for (uint16_t i = 0; i < 100; ++i) Grant(Dpm({kHostA, static_cast<uint16_t>(1000 + i)}, {kRemote1, 53}, false, 120));
  EXPECT_EQ(engine().NextDeadline(), std::optional<uint64_t>(120 * kSecond));
  EXPECT_EQ(engine().Sweep(119 * kSecond, 1000), 0u);
  size_t calls = 0;
  size_t total = 0;
  while (Sessions() > 0) {
    const size_t removed = engine().Sweep(120 * kSecond, 10);
    EXPECT_LE(removed, 10u);
    total += removed;
    ASSERT_LT(++calls, 100u);
  }
  EXPECT_EQ(total, 100u);
  EXPECT_GE(calls, 10u);
  EXPECT_EQ(engine().NextDeadline(), std::nullopt);
}

TEST_F(NatTest, TimersCountWholeSecondsAndNeverRunShort) {
  // Timestamps are kept in seconds, rounded up: a flow seen at 0.4 s lives until 300 s + 1 s.
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53}, 400);
  engine().Sweep(400 + 5 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 1u) << "never shorter than the timer";
  engine().Sweep(kSecond + 5 * kMinute, 1000);
  EXPECT_EQ(Sessions(), 0u);
  (void)external;
}

TEST_F(NatTest, ExpiredSessionsAreGoneBeforeAnySweep) {
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53}, 0);
  std::vector<uint8_t> late = Udp({kRemote1, 53}, external);
  EXPECT_EQ(Out(late, 5 * kMinute).reason, DropReason::kNoMapping) << "deterministic, whatever the sweep did";
  EXPECT_EQ(engine().counters().sessions_expired, 1u);
}


// ---- Fragments (RFC 4787 REQ-14) ---------------------------------------------------------------

// `p` with IP identification `id` (its header checksum refilled).
std::vector<uint8_t> WithId(std::vector<uint8_t> p, uint16_t id) {
  StoreBe16(&p[ipv4::kIdentificationOffset], id);
  Ipv4View::Parse(absl::MakeSpan(p))->FillChecksum();
  return p;
}

// RFC 791 §3.2: `whole` (an unfragmented packet without options) cut into fragments of at most
// `chunk` payload bytes (a multiple of 8), all with its identification.
std::vector<std::vector<uint8_t>> Fragment(const std::vector<uint8_t>& whole, size_t chunk) {
  std::vector<std::vector<uint8_t>> out;
  const size_t payload = whole.size() - 20;
  for (size_t at = 0; at < payload; at += chunk) {
    const size_t n = std::min(chunk, payload - at);
    std::vector<uint8_t> f(whole.begin(), whole.begin() + 20);
    f.insert(f.end(), whole.begin() + 20 + at, whole.begin() + 20 + at + n);
    StoreBe16(&f[ipv4::kTotalLengthOffset], static_cast<uint16_t>(20 + n));
    StoreBe16(&f[ipv4::kFlagsFragmentOffset],
              static_cast<uint16_t>((at + n < payload ? ipv4::kFlagMoreFragments : 0) | at / 8));
    Ipv4View::Parse(absl::MakeSpan(f))->FillChecksum();
    out.push_back(f);
  }
  return out;
}

// What a receiver reassembles from `fragments` (any order; RFC 791 §3.2), its IP header
// checksum filled; empty when they do not make one datagram.
std::vector<uint8_t> Reassemble(std::vector<std::vector<uint8_t>> fragments) {
  std::sort(fragments.begin(), fragments.end(), [](const auto& a, const auto& b) {
    return (LoadBe16(&a[ipv4::kFlagsFragmentOffset]) & ipv4::kFragmentOffsetMask) <
           (LoadBe16(&b[ipv4::kFlagsFragmentOffset]) & ipv4::kFragmentOffsetMask);
  });
  if (fragments.empty()) return {};
  std::vector<uint8_t> whole(fragments[0].begin(), fragments[0].begin() + 20);
  for (size_t i = 0; i < fragments.size(); ++i) {
    const std::vector<uint8_t>& f = fragments[i];
    const uint16_t flags = LoadBe16(&f[ipv4::kFlagsFragmentOffset]);
    // Same source, destination, protocol and identification (RFC 791 §3.2).
    if (!std::equal(f.begin() + 12, f.begin() + 20, whole.begin() + 12) || f[9] != whole[9] ||
        LoadBe16(&f[4]) != LoadBe16(&whole[4])) {
      ADD_FAILURE() << "fragment " << i << " names another datagram";
      return {};
    }
    if (static_cast<size_t>(flags & ipv4::kFragmentOffsetMask) * 8 != whole.size() - 20) {
      ADD_FAILURE() << "a hole or an overlap before fragment " << i;
      return {};
    }
    if (((flags & ipv4::kFlagMoreFragments) != 0) != (i + 1 < fragments.size())) {
      ADD_FAILURE() << "MF wrong on fragment " << i;
      return {};
    }
    whole.insert(whole.end(), f.begin() + 20, f.end());
  }
  StoreBe16(&whole[ipv4::kTotalLengthOffset], static_cast<uint16_t>(whole.size()));
  StoreBe16(&whole[ipv4::kFlagsFragmentOffset], 0);
  Ipv4View::Parse(absl::MakeSpan(whole))->FillChecksum();
  return whole;
}

// An ICMP query of `size` data bytes (echo request / reply).
std::vector<uint8_t> BigEcho(uint32_t src, uint32_t dst, uint8_t type, uint16_t id, size_t size) {
  std::vector<uint8_t> l4(8 + size);
  l4[0] = type;
  StoreBe16(&l4[4], id);
  StoreBe16(&l4[6], 1);
  for (size_t i = 0; i < size; ++i) l4[8 + i] = static_cast<uint8_t>(i * 13);
  return MakeIp(src, dst, ipv4::kProtocolIcmp, l4);
}

class NatFragmentTest : public NatTest {
 protected:
  // Sends the fragments of one datagram in `order` (indexes; 0 is the first fragment) and
  // returns the translated fragments in the order they leave the engine, released ones after
  // the first fragment. Fragments before the first must be held (and left untouched), the
  // others get `expected`.
  std::vector<std::vector<uint8_t>> Pass(std::vector<std::vector<uint8_t>> fragments, const std::vector<size_t>& order,
                                         bool from_outside, Verdict expected, uint64_t now = 0) {
    std::vector<std::vector<uint8_t>> out;
    bool first_seen = false;
    for (size_t i : order) {
      std::vector<uint8_t>& f = fragments[i];
      const std::vector<uint8_t> before = f;
      const Result r = from_outside ? Out(f, now) : In(f, now);
      if (i == 0) {
        EXPECT_EQ(r.verdict, expected) << DropReasonName(r.reason);
        first_seen = true;
        out.push_back(f);
        const size_t taken = engine().TakeReleasedFragments([&](Verdict v, absl::Span<uint8_t> packet) {
          EXPECT_EQ(v, expected);
          out.emplace_back(packet.begin(), packet.end());
        });
        EXPECT_EQ(taken, r.released);
        EXPECT_EQ(engine().released_fragment_count(), 0u);
      } else if (first_seen) {
        EXPECT_EQ(r.verdict, expected) << "fragment " << i << ": " << DropReasonName(r.reason);
        EXPECT_EQ(r.released, 0u);
        out.push_back(f);
      } else {
        EXPECT_EQ(r.verdict, Verdict::kHeld) << "fragment " << i << ": " << DropReasonName(r.reason);
        EXPECT_EQ(f, before) << "a held fragment is copied, the caller's buffer untouched";
      }
    }
    return out;
  }

  // Every fragment: from `source` to `destination` (addresses), one identification, TTL 63,
  // exact IP checksum; together they reassemble into a datagram with an exact transport
  // checksum, which is returned.
  std::vector<uint8_t> CheckFragments(const std::vector<std::vector<uint8_t>>& out, size_t count, uint32_t source,
                                      uint32_t destination, uint16_t id) {
    EXPECT_EQ(out.size(), count);
    for (const std::vector<uint8_t>& f : out) {
      std::vector<uint8_t> copy = f;
      std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(copy));
      EXPECT_TRUE(ip && ip->is_fragment());
      if (!ip) continue;
      EXPECT_EQ(ip->source(), source);
      EXPECT_EQ(ip->destination(), destination);
      EXPECT_EQ(ip->identification(), id) << "IP identification kept (RFC 7857 §11 SHOULD not met, docs/nat.md)";
      EXPECT_EQ(ip->ttl(), 63);
      ExpectExactChecksums(f);
    }
    std::vector<uint8_t> whole = Reassemble(out);
    EXPECT_FALSE(whole.empty());
    if (!whole.empty()) {
      EXPECT_TRUE(wire::TransportChecksumValid(*Ipv4View::Parse(absl::MakeSpan(whole))));
      ExpectExactChecksums(whole);
    }
    return whole;
  }
};

TEST_F(NatFragmentTest, UdpInOrderOutAndBack) {
  std::vector<uint8_t> whole = WithId(Udp({kHostA, 40000}, {kRemote1, 5000}, 3000), 0x1001);
  std::vector<std::vector<uint8_t>> fragments = Fragment(whole, 1000);
  ASSERT_EQ(fragments.size(), 4u);
  std::vector<std::vector<uint8_t>> out = Pass(fragments, {0, 1, 2, 3}, false, Verdict::kForwardOutside);
  EXPECT_EQ(engine().fragment_record_count(), 0u) << "the last byte came: the record is gone";
  EXPECT_EQ(engine().held_fragment_count(), 0u);
  const Endpoint external = Read(out[0]).source;
  EXPECT_TRUE(InPool(external.address));
  std::vector<uint8_t> sent = CheckFragments(out, 4, external.address, kRemote1, 0x1001);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(Read(sent).source, external);
  EXPECT_EQ(Read(sent).destination, (Endpoint{kRemote1, 5000}));
  EXPECT_TRUE(std::equal(sent.begin() + 28, sent.end(), whole.begin() + 28)) << "the payload is not touched";
  EXPECT_EQ(engine().counters().translated_out, 4u);
  EXPECT_EQ(engine().counters().fragments_translated, 3u);

  // The answer, fragmented, in order.
  std::vector<uint8_t> answer = WithId(Udp({kRemote1, 5000}, external, 2500), 0x2002);
  out = Pass(Fragment(answer, 1480), {0, 1}, true, Verdict::kForwardInside);
  std::vector<uint8_t> got = CheckFragments(out, 2, kRemote1, kHostA, 0x2002);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(Read(got).destination, (Endpoint{kHostA, 40000}));
  EXPECT_EQ(Read(got).source, (Endpoint{kRemote1, 5000}));
  EXPECT_EQ(engine().fragment_record_count(), 0u);
  EXPECT_EQ(engine().counters().translated_in, 2u);
}

TEST_F(NatFragmentTest, UdpOutOfOrderOutAndBack) {
  // The last fragment first, then the first (RFC 4787 REQ-14: "Received Fragment Out of Order").
  std::vector<uint8_t> whole = WithId(Udp({kHostA, 40000}, {kRemote1, 5000}, 3000), 0x1003);
  std::vector<std::vector<uint8_t>> out = Pass(Fragment(whole, 1000), {3, 0, 2, 1}, false, Verdict::kForwardOutside);
  EXPECT_EQ(engine().counters().fragments_held, 1u);
  EXPECT_EQ(engine().counters().fragments_released, 1u);
  const Endpoint external = Read(out[0]).source;
  CheckFragments(out, 4, external.address, kRemote1, 0x1003);
  EXPECT_EQ(engine().fragment_record_count(), 0u);
  EXPECT_EQ(engine().held_fragment_bytes(), 0u);

  // All but the first held; the first releases them all.
  std::vector<uint8_t> answer = WithId(Udp({kRemote1, 5000}, external, 3000), 0x1004);
  std::vector<std::vector<uint8_t>> fragments = Fragment(answer, 800);
  ASSERT_EQ(fragments.size(), 4u);
  for (size_t i : {3, 1, 2}) ASSERT_EQ(Out(fragments[i]).verdict, Verdict::kHeld);
  EXPECT_EQ(engine().held_fragment_count(), 3u);
  EXPECT_EQ(engine().held_datagram_count(), 1u);
  Result r = Out(fragments[0]);
  ASSERT_EQ(r.verdict, Verdict::kForwardInside);
  EXPECT_EQ(r.released, 3u);
  EXPECT_EQ(engine().held_fragment_count(), 0u);
  EXPECT_EQ(engine().released_fragment_count(), 3u);
  out = {fragments[0]};
  engine().TakeReleasedFragments([&](Verdict v, absl::Span<uint8_t> packet) {
    EXPECT_EQ(v, Verdict::kForwardInside);
    out.emplace_back(packet.begin(), packet.end());
  });
  EXPECT_EQ(engine().TakeReleasedFragments([](Verdict, absl::Span<uint8_t>) { ADD_FAILURE(); }), 0u);
  std::vector<uint8_t> got = CheckFragments(out, 4, kRemote1, kHostA, 0x1004);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(Read(got).destination, (Endpoint{kHostA, 40000}));
  EXPECT_EQ(engine().fragment_record_count(), 0u);
  EXPECT_EQ(engine().held_fragment_bytes(), 0u);
}

TEST_F(NatFragmentTest, NewFlowOpenedByAHeldDatagram) {
  // No session yet: the first fragment, coming last, creates it as an unfragmented packet would.
  std::vector<uint8_t> whole = WithId(Udp({kHostB, 41000}, {kRemote2, 4500}, 4000), 7);
  std::vector<std::vector<uint8_t>> out = Pass(Fragment(whole, 1480), {2, 1, 0}, false, Verdict::kForwardOutside);
  EXPECT_EQ(Sessions(), 1u);
  CheckFragments(out, 3, Read(out[0]).source.address, kRemote2, 7);
}

TEST_F(NatFragmentTest, TcpOutOfOrderBothWays) {
  std::vector<uint8_t> syn = Tcp({kHostA, 50000}, {kRemote1, 80}, tcp::kSyn);
  ASSERT_EQ(In(syn).verdict, Verdict::kForwardOutside);
  const Endpoint external = Read(syn).source;
  std::vector<uint8_t> syn_ack = Tcp({kRemote1, 80}, external, tcp::kSyn | tcp::kAck);
  ASSERT_EQ(Out(syn_ack).verdict, Verdict::kForwardInside);

  std::vector<uint8_t> data = WithId(Tcp({kHostA, 50000}, {kRemote1, 80}, tcp::kAck | tcp::kPsh, 3000), 0x3001);
  std::vector<std::vector<uint8_t>> out = Pass(Fragment(data, 1480), {2, 1, 0}, false, Verdict::kForwardOutside);
  std::vector<uint8_t> sent = CheckFragments(out, 3, external.address, kRemote1, 0x3001);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(Read(sent).source, external);

  std::vector<uint8_t> back = WithId(Tcp({kRemote1, 80}, external, tcp::kAck, 2000), 0x3002);
  out = Pass(Fragment(back, 1480), {1, 0}, true, Verdict::kForwardInside);
  std::vector<uint8_t> got = CheckFragments(out, 2, kRemote1, kHostA, 0x3002);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(Read(got).destination, (Endpoint{kHostA, 50000}));
  EXPECT_EQ(StateOf({kHostA, 50000}), "ESTABLISHED");
}

TEST_F(NatFragmentTest, IcmpEchoOutOfOrderBothWays) {
  // A big ping: the identifier is in the first fragment, the ICMP checksum covers all of them.
  std::vector<uint8_t> ping = WithId(BigEcho(kHostA, kRemote1, icmp::kEchoRequest, 77, 3000), 0x4001);
  std::vector<std::vector<uint8_t>> out = Pass(Fragment(ping, 1480), {2, 0, 1}, false, Verdict::kForwardOutside);
  std::vector<uint8_t> sent = CheckFragments(out, 3, Read(out[0]).source.address, kRemote1, 0x4001);
  ASSERT_FALSE(sent.empty());
  const Endpoint external = Read(sent).source;  // the identifier as the port
  std::vector<uint8_t> pong = WithId(BigEcho(kRemote1, external.address, icmp::kEchoReply, external.port, 3000), 0x4002);
  out = Pass(Fragment(pong, 1480), {1, 2, 0}, true, Verdict::kForwardInside);
  std::vector<uint8_t> got = CheckFragments(out, 3, kRemote1, kHostA, 0x4002);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(Read(got).destination.port, 77) << "the identifier back to the host's";
}

TEST_F(NatFragmentTest, HairpinnedAndDpmFragments) {
  // Hairpinning (RFC 4787 REQ-9): translated out, then in, once per fragment, as the first.
  const Endpoint b_external = UdpOut({kHostB, 6000}, {kRemote1, 53});
  std::vector<uint8_t> to_b = WithId(Udp({kHostA, 7000}, b_external, 2000), 0x5001);
  std::vector<std::vector<uint8_t>> out = Pass(Fragment(to_b, 1480), {1, 0}, false, Verdict::kForwardInside);
  ASSERT_EQ(out.size(), 2u);
  const uint32_t a_external = Read(out[0]).source.address;
  EXPECT_TRUE(InPool(a_external));
  std::vector<uint8_t> at_b = CheckFragments(out, 2, a_external, kHostB, 0x5001);
  ASSERT_FALSE(at_b.empty());
  EXPECT_EQ(Read(at_b).destination, (Endpoint{kHostB, 6000}));
  EXPECT_EQ(engine().counters().hairpinned, 2u);

  // A DPM session (claim 6): the destination, the gateway endpoint, becomes the remote.
  const DpmGrant grant = Grant(Dpm({kHostA, 5000}, {kRemote1, 53}, /*fixed=*/false));
  std::vector<uint8_t> dpm = WithId(Udp({kHostA, 5000}, grant.gateway_endpoint, 2000), 0x5002);
  out = Pass(Fragment(dpm, 1480), {1, 0}, false, Verdict::kForwardOutside);
  std::vector<uint8_t> sent = CheckFragments(out, 2, grant.external.address, kRemote1, 0x5002);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(Read(sent).destination, (Endpoint{kRemote1, 53}));
  std::vector<uint8_t> reply = WithId(Udp({kRemote1, 53}, grant.external, 2000), 0x5003);
  out = Pass(Fragment(reply, 1480), {1, 0}, true, Verdict::kForwardInside);
  std::vector<uint8_t> got = CheckFragments(out, 2, kGateway, kHostA, 0x5003);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(Read(got).source, grant.gateway_endpoint);
}

TEST_F(NatFragmentTest, LoneFragmentsExpireAndAreCounted) {
  // Later fragments of datagrams whose first fragment never comes: held, then dropped and
  // counted after fragment_timeout_ms, by a sweep or by the next fragment.
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  std::vector<std::vector<uint8_t>> in_frags = Fragment(WithId(Udp({kRemote1, 53}, external, 3000), 9), 1480);
  std::vector<std::vector<uint8_t>> out_frags = Fragment(WithId(Udp({kHostA, 40000}, {kRemote1, 53}, 3000), 9), 1480);
  ASSERT_EQ(Out(in_frags[1], 1000).verdict, Verdict::kHeld);
  ASSERT_EQ(Out(in_frags[2], 1000).verdict, Verdict::kHeld);
  ASSERT_EQ(In(out_frags[2], 2000).verdict, Verdict::kHeld);
  EXPECT_EQ(engine().held_fragment_count(), 3u);
  EXPECT_EQ(engine().held_datagram_count(), 2u) << "one per direction: the key has the side";
  EXPECT_EQ(engine().held_fragment_bytes(), 1500u + 68u + 68u) << "whole packets: 1480 + 48 + 48 payload bytes";
  ASSERT_TRUE(engine().NextDeadline());
  EXPECT_LE(*engine().NextDeadline(), 1000 + 30 * kSecond);

  engine().Sweep(1000 + 30 * kSecond - 1, 100);
  EXPECT_EQ(drops(DropReason::kFragmentTimeout), 0u);
  engine().Sweep(1000 + 30 * kSecond, 100);
  EXPECT_EQ(drops(DropReason::kFragmentTimeout), 2u) << "the two held from outside";
  EXPECT_EQ(engine().held_fragment_count(), 1u);
  // The first fragment after the timeout: translated, but nothing left to release.
  Result r = In(out_frags[0], 2000 + 30 * kSecond);
  EXPECT_EQ(r.verdict, Verdict::kForwardOutside);
  EXPECT_EQ(r.released, 0u);
  EXPECT_EQ(drops(DropReason::kFragmentTimeout), 3u) << "expired on sight, without a sweep";
  EXPECT_EQ(engine().held_fragment_count(), 0u);
  EXPECT_EQ(engine().held_datagram_count(), 0u);
  EXPECT_EQ(engine().held_fragment_bytes(), 0u);
  EXPECT_EQ(engine().counters().fragments_released, 0u);

  // A record expires too: a fragment after it is held like one of an unknown datagram.
  EXPECT_EQ(engine().fragment_record_count(), 1u);
  engine().Sweep(2000 + 60 * kSecond, 100);
  EXPECT_EQ(engine().fragment_record_count(), 0u);
  EXPECT_EQ(In(out_frags[1], 2000 + 60 * kSecond).verdict, Verdict::kHeld);
}

TEST_F(NatFragmentTest, LimitsAreEnforced) {
  config_.max_held_fragments_per_datagram = 2;
  config_.max_held_datagrams = 2;
  config_.max_held_fragment_bytes = 3 * 1500;
  config_.max_fragment_records = 2;
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  auto frags = [&](uint16_t id, size_t size = 6000) {
    return Fragment(WithId(Udp({kRemote1, 53}, external, size), id), 1480);
  };
  // Per datagram.
  std::vector<std::vector<uint8_t>> a = frags(1);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(Out(a[4]).verdict, Verdict::kHeld);
  EXPECT_EQ(Out(a[3]).verdict, Verdict::kHeld);
  EXPECT_EQ(Out(a[2]).reason, DropReason::kFragmentLimit);
  // Held datagrams.
  std::vector<std::vector<uint8_t>> b = frags(2);
  std::vector<std::vector<uint8_t>> c = frags(3);
  EXPECT_EQ(Out(b[1]).verdict, Verdict::kHeld);
  EXPECT_EQ(Out(c[1]).reason, DropReason::kFragmentLimit);
  // Bytes: three packets of ~1500 bytes are held; one more does not fit.
  EXPECT_EQ(engine().held_fragment_count(), 3u);
  EXPECT_EQ(Out(b[2]).reason, DropReason::kFragmentLimit);
  EXPECT_LE(engine().held_fragment_bytes(), config_.max_held_fragment_bytes);
  EXPECT_EQ(drops(DropReason::kFragmentLimit), 3u);
  // The first fragment of `a` releases what was held of it; the datagram misses a[2] (dropped).
  Result r = Out(a[0]);
  EXPECT_EQ(r.verdict, Verdict::kForwardInside);
  EXPECT_EQ(r.released, 2u);
  EXPECT_EQ(engine().TakeReleasedFragments([](Verdict, absl::Span<uint8_t>) {}), 2u);

  // Records: a third datagram's first fragment replaces the oldest record.
  std::vector<std::vector<uint8_t>> d = frags(4);
  std::vector<std::vector<uint8_t>> e = frags(5);
  EXPECT_EQ(Out(d[0]).verdict, Verdict::kForwardInside);  // records: a, d
  EXPECT_EQ(engine().fragment_record_count(), 2u);
  EXPECT_EQ(Out(e[0]).verdict, Verdict::kForwardInside);  // records: d, e
  EXPECT_EQ(engine().fragment_record_count(), 2u);
  EXPECT_EQ(engine().counters().fragment_records_evicted, 1u);
  EXPECT_EQ(Out(d[1]).verdict, Verdict::kForwardInside) << "d kept its record";
  EXPECT_EQ(Out(a[1]).verdict, Verdict::kHeld) << "a's record was evicted";
}

TEST_F(NatFragmentTest, AFloodOfUnmatchedFragmentsStaysBounded) {
  // RFC 4787 REQ-14a: fragments must not take away the NAT's ability to translate whole
  // packets and in-order fragments.
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> junk = Fragment(WithId(Udp({kRemote1, 53}, external, 1600), static_cast<uint16_t>(rng())), 1480)[1];
    Result r = Out(junk, i);
    ASSERT_TRUE(r.verdict == Verdict::kHeld || r.reason == DropReason::kFragmentLimit);
    ASSERT_LE(engine().held_datagram_count(), engine().config().max_held_datagrams);
    ASSERT_LE(engine().held_fragment_bytes(), engine().config().max_held_fragment_bytes);
  }
  EXPECT_GT(drops(DropReason::kFragmentLimit), 0u);
  // Still serving: a whole packet and an in-order fragmented datagram.
  std::vector<uint8_t> reply = Udp({kRemote1, 53}, external);
  EXPECT_EQ(Out(reply, 20000).verdict, Verdict::kForwardInside);
  std::vector<std::vector<uint8_t>> out =
      Pass(Fragment(WithId(Udp({kRemote1, 53}, external, 3000), 0xbeef), 1480), {0, 1, 2}, true,
           Verdict::kForwardInside, 20000);
  CheckFragments(out, 3, kRemote1, kHostA, 0xbeef);
  // And all of it goes after the timeout.
  engine().Sweep(20000 + 30 * kSecond, 1 << 20);
  EXPECT_EQ(engine().held_fragment_count(), 0u);
  EXPECT_EQ(engine().held_fragment_bytes(), 0u);
}

TEST_F(NatFragmentTest, FragmentsThatCannotBeTranslated) {
  const Endpoint external = UdpOut({kHostA, 40000}, {kRemote1, 53});
  // The first fragment dropped (no mapping): its later fragments are dropped too, not held,
  // whichever came first.
  std::vector<std::vector<uint8_t>> stray = Fragment(WithId(Udp({kRemote1, 53}, {Ip(203, 0, 113, 5), 9}, 3000), 1), 1480);
  EXPECT_EQ(Out(stray[2]).verdict, Verdict::kHeld);
  Result r = Out(stray[0]);
  EXPECT_EQ(r.reason, DropReason::kNoMapping);
  EXPECT_EQ(r.released, 0u);
  EXPECT_EQ(Out(stray[1]).reason, DropReason::kFragment);
  EXPECT_EQ(drops(DropReason::kFragment), 2u) << "the held one and the later one";
  EXPECT_EQ(engine().held_fragment_count(), 0u);

  // A first fragment must hold the whole transport header (RFC 1858 §3.2).
  std::vector<uint8_t> whole = WithId(Udp({kHostA, 40000}, {kRemote1, 53}, 100), 2);
  std::vector<std::vector<uint8_t>> tiny = Fragment(whole, 8);
  std::vector<uint8_t> cut = tiny[0];
  cut.resize(24);  // 4 bytes of UDP header
  StoreBe16(&cut[ipv4::kTotalLengthOffset], 24);
  Ipv4View::Parse(absl::MakeSpan(cut))->FillChecksum();
  EXPECT_EQ(In(cut).reason, DropReason::kMalformed);
  std::vector<uint8_t> tcp_whole = WithId(Tcp({kHostA, 40001}, {kRemote1, 80}, tcp::kAck, 100), 3);
  EXPECT_EQ(In(Fragment(tcp_whole, 16)[0]).reason, DropReason::kMalformed) << "16 of 20 header bytes";
  // RFC 1858 §4: TCP at offset 8 bytes.
  EXPECT_EQ(In(Fragment(tcp_whole, 8)[1]).reason, DropReason::kFragment);
  // RFC 791: not a multiple of 8 bytes before the last; past 65535 bytes.
  std::vector<uint8_t> odd = Fragment(whole, 16)[1];
  odd.pop_back();
  StoreBe16(&odd[ipv4::kTotalLengthOffset], static_cast<uint16_t>(odd.size()));
  Ipv4View::Parse(absl::MakeSpan(odd))->FillChecksum();
  EXPECT_EQ(In(odd).reason, DropReason::kMalformed);
  std::vector<uint8_t> far = Fragment(whole, 16)[1];
  StoreBe16(&far[ipv4::kFlagsFragmentOffset], 0x1fff);
  Ipv4View::Parse(absl::MakeSpan(far))->FillChecksum();
  EXPECT_EQ(In(far).reason, DropReason::kMalformed) << "the ping of death";

  // A fragmented ICMP error cannot have its checksum verified (RFC 5508 REQ-3).
  std::vector<uint8_t> sent = Udp({kHostA, 40000}, {kRemote1, 53});
  ASSERT_EQ(In(sent).verdict, Verdict::kForwardOutside);
  std::vector<uint8_t> error = WithId(IcmpError(kRouter, external.address, icmp::kDestinationUnreachable,
                                                icmp::kCodePortUnreachable, sent, sent.size()),
                                      4);
  EXPECT_EQ(Out(Fragment(error, 16)[0]).reason, DropReason::kFragment);

  // A later fragment whose TTL runs out: kTtlExceeded, untouched.
  std::vector<std::vector<uint8_t>> f = Fragment(WithId(Udp({kHostA, 40000}, {kRemote1, 53}, 3000), 5), 1480);
  ASSERT_EQ(In(f[0]).verdict, Verdict::kForwardOutside);
  f[1][ipv4::kTtlOffset] = 1;
  Ipv4View::Parse(absl::MakeSpan(f[1]))->FillChecksum();
  const std::vector<uint8_t> before = f[1];
  EXPECT_EQ(In(f[1]).reason, DropReason::kTtlExceeded);
  EXPECT_EQ(f[1], before);
  // Not held when it could not be ours.
  std::vector<uint8_t> inside = Fragment(WithId(Udp({kHostA, 1}, {kHostB, 2}, 3000), 6), 1480)[1];
  EXPECT_EQ(In(inside).reason, DropReason::kNoRoute);
  std::vector<uint8_t> elsewhere = Fragment(WithId(Udp({kRemote1, 1}, {kRemote2, 2}, 3000), 6), 1480)[1];
  EXPECT_EQ(Out(elsewhere).reason, DropReason::kNoRoute);
  std::vector<uint8_t> gre = MakeIp(kRemote1, external.address, 47, std::vector<uint8_t>(16, 0), 64, 3);
  EXPECT_EQ(Out(gre).reason, DropReason::kUnsupportedProtocol);
}

TEST(NatConfigTest, ReserveSessionsSizesTheIndexesAtConstruction) {
  // reserve_sessions = N: every index has its slots for N at construction, and N sessions (with
  // their mappings: replaceable ports, one mapping each) do not make any of them grow.
  NatConfig c = TestConfig();
  EXPECT_EQ(NatEngine(c).index_slots(), 0u) << "default: grow on demand";
  constexpr uint32_t kCount = 3000;
  c.reserve_sessions = kCount;
  NatEngine engine(c);
  const size_t slots = engine.index_slots();
  EXPECT_EQ(slots, 5 * HashIndex::SlotsFor(kCount));
  for (uint32_t i = 0; i < kCount; ++i) {
    const Endpoint internal{Ip(10, 77, 2, 1 + i / 1000), static_cast<uint16_t>(10000 + i % 1000)};
    auto grant = engine.RequestDpm(0, Dpm(internal, {kRemote1, 443}, /*fixed=*/false));
    ASSERT_TRUE(std::holds_alternative<DpmGrant>(grant)) << i;
    ASSERT_EQ(engine.index_slots(), slots) << "after " << i + 1 << " sessions";
  }
  EXPECT_EQ(engine.session_count(), kCount);
  EXPECT_EQ(engine.mapping_count(), kCount);
  // More than max_sessions is not reserved.
  c.max_sessions = 100;
  EXPECT_EQ(NatEngine(c).index_slots(), 5 * HashIndex::SlotsFor(100));
}

TEST(NatConfigTest, FragmentTimeoutAtLeastTwoSeconds) {
  NatConfig c = TestConfig();
  EXPECT_TRUE(ValidateNatConfig(c).ok());
  c.fragment_timeout_ms = 1999;
  EXPECT_FALSE(ValidateNatConfig(c).ok()) << "RFC 6146 §4 FRAGMENT_MIN";
}

// ---- Batches -----------------------------------------------------------------------------------

TEST(NatBatch, SameResultsAndBytesAsOneByOne) {
  // Two engines, the same traffic: one packet at a time, and in batches of 1-40. The batch's
  // prefetch stage guesses sessions before earlier packets of the batch have run (which
  // create, refresh and expire sessions), so its guesses must be re-checked.
  NatConfig config = TestConfig();
  config.external_addresses = {Ip(203, 0, 113, 1)};
  config.port_min = 40000;
  config.port_max = 40031;  // collisions and exhaustion
  NatEngine single(config);
  NatEngine batched(config);
  for (NatEngine* e : {&single, &batched}) {
    e->RequestDpm(0, Dpm({kHostA, 5060}, {kRemote1, 5060}, true, 120));
    e->RequestMap(0, Protocol::kUdp, {kHostB, 7000}, {Ip(203, 0, 113, 1), 7000}, 600);
  }
  std::mt19937 rng(11);
  std::vector<std::vector<uint8_t>> sent_out;  // translated packets, to answer
  uint64_t now = 0;
  for (int round = 0; round < 300; ++round) {
    now += (rng() % 8 == 0) ? 61 * kSecond : 100;
    const size_t n = 1 + rng() % 40;
    const bool from_outside = rng() % 2 && !sent_out.empty();
    std::vector<std::vector<uint8_t>> a, b;
    for (size_t i = 0; i < n; ++i) {
      std::vector<uint8_t> p;
      if (from_outside) {
        p = sent_out[rng() % sent_out.size()];  // a reply: swap the ends
        std::swap_ranges(p.begin() + 12, p.begin() + 16, p.begin() + 16);
        if (p[9] != ipv4::kProtocolIcmp) std::swap_ranges(p.begin() + 20, p.begin() + 22, p.begin() + 22);
        if (p[9] == ipv4::kProtocolIcmp) p[20] = icmp::kEchoReply;
        p[8] = 64;
        std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
        wire::FillTransportChecksum(*ip);
        ip->FillChecksum();
        if (rng() % 10 == 0) p.resize(rng() % p.size());  // junk too
      } else {
        const Endpoint internal{Ip(10, 77, 1, 10 + rng() % 4), static_cast<uint16_t>(5058 + rng() % 4)};
        const Endpoint remote{rng() % 2 ? kRemote1 : kRemote2, static_cast<uint16_t>(5060 + rng() % 2)};
        switch (rng() % 4) {
          case 0: p = Udp(internal, remote); break;
          case 1: p = Tcp(internal, remote, rng() % 2 ? tcp::kSyn : tcp::kAck | tcp::kFin); break;
          case 2: p = Icmp(internal.address, remote.address, icmp::kEchoRequest, internal.port); break;
          default: p = Udp({kHostA, 5060}, {kGateway, 5060}); break;  // the DPM session, while it lives
        }
      }
      a.push_back(p);
      b.push_back(p);
    }
    std::vector<Result> one(n), many(n);
    for (size_t i = 0; i < n; ++i) {
      one[i] = from_outside ? single.FromOutside(now, absl::MakeSpan(a[i])) : single.FromInside(now, absl::MakeSpan(a[i]));
    }
    std::vector<absl::Span<uint8_t>> spans;
    for (auto& p : b) spans.push_back(absl::MakeSpan(p));
    if (from_outside) {
      batched.FromOutsideBatch(now, spans, absl::MakeSpan(many));
    } else {
      batched.FromInsideBatch(now, spans, absl::MakeSpan(many));
    }
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(one[i].verdict, many[i].verdict) << "round " << round << " packet " << i;
      ASSERT_EQ(one[i].reason, many[i].reason) << "round " << round << " packet " << i;
      ASSERT_EQ(a[i], b[i]) << "round " << round << " packet " << i;
      if (!from_outside && one[i].verdict == Verdict::kForwardOutside) sent_out.push_back(a[i]);
    }
    if (sent_out.size() > 200) sent_out.erase(sent_out.begin(), sent_out.begin() + 100);
    if (rng() % 5 == 0) {
      single.Sweep(now, 7);
      batched.Sweep(now, 7);
    }
    ASSERT_EQ(single.session_count(), batched.session_count()) << "round " << round;
  }
  EXPECT_EQ(single.drops(), batched.drops());
  EXPECT_GT(single.counters().translated_in, 100u);
  EXPECT_GT(single.counters().translated_out, 100u);
}

TEST(NatBatch, PartialChecksumFlagsAsOneByOne) {
  // The batch form with offload flags: partial_checksum[i] is FromInside's flag for
  // packets[i]. Mixed batches of partial-checksum TCP (super-packets up to 64 KiB, past any
  // MTU) and UDP packets and complete ones, out and back: the same verdicts and bytes as one
  // call per packet with its flag, and the partial ones complete to exact checksums.
  NatConfig config = TestConfig();
  NatEngine single(config);
  NatEngine batched(config);
  std::mt19937 rng(17);
  size_t partial_seen = 0, super_packets = 0;
  for (int round = 0; round < 60; ++round) {
    const bool from_outside = round % 2 == 1;
    const size_t n = 1 + rng() % 40;
    std::vector<std::vector<uint8_t>> a;
    std::vector<wire::Offload> offloads(n);
    std::unique_ptr<bool[]> flags(new bool[n]);
    for (size_t i = 0; i < n; ++i) {
      // Flows of subnet 4, each answered from outside in the next round.
      const uint32_t k = static_cast<uint32_t>((round / 2) * 40 + i);
      const Endpoint internal{Ip(10, 77, 4, 1 + k % 50), static_cast<uint16_t>(20000 + k)};
      const Endpoint remote{Ip(198, 51, 100, 1 + k % 200), 443};
      const bool use_tcp = k % 2 == 0;
      const size_t payload = use_tcp ? rng() % 65000 : rng() % 9000;
      Endpoint from = internal, to = remote;
      if (from_outside) {
        from = remote;
        to = {Ip(203, 0, 113, 1), 0};  // replaced below with the flow's external endpoint
        std::vector<uint8_t> probe = use_tcp ? Tcp(internal, remote, tcp::kAck) : Udp(internal, remote);
        ASSERT_EQ(single.FromInside(round, absl::MakeSpan(probe)).verdict, Verdict::kForwardOutside);
        to = Read(probe).source;
        std::vector<uint8_t> probe2 = use_tcp ? Tcp(internal, remote, tcp::kAck) : Udp(internal, remote);
        ASSERT_EQ(batched.FromInside(round, absl::MakeSpan(probe2)).verdict, Verdict::kForwardOutside);
        ASSERT_EQ(Read(probe2).source, to);
      }
      std::vector<uint8_t> p = use_tcp ? Tcp(from, to, tcp::kAck | tcp::kPsh, payload) : Udp(from, to, payload);
      flags[i] = rng() % 3 != 0;
      if (flags[i]) p = ToPartial(std::move(p), &offloads[i]);
      partial_seen += flags[i];
      super_packets += flags[i] && p.size() > 1500;
      a.push_back(std::move(p));
    }
    std::vector<std::vector<uint8_t>> b = a;
    std::vector<Result> one(n), many(n);
    for (size_t i = 0; i < n; ++i) {
      one[i] = from_outside ? single.FromOutside(round, absl::MakeSpan(a[i]), flags[i])
                            : single.FromInside(round, absl::MakeSpan(a[i]), flags[i]);
    }
    std::vector<absl::Span<uint8_t>> spans;
    for (auto& p : b) spans.push_back(absl::MakeSpan(p));
    const absl::Span<const bool> partial(flags.get(), n);
    if (from_outside) {
      batched.FromOutsideBatch(round, spans, partial, absl::MakeSpan(many));
    } else {
      batched.FromInsideBatch(round, spans, partial, absl::MakeSpan(many));
    }
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(one[i].verdict, from_outside ? Verdict::kForwardInside : Verdict::kForwardOutside)
          << "round " << round << " packet " << i << ": " << DropReasonName(one[i].reason);
      ASSERT_EQ(one[i].verdict, many[i].verdict) << "round " << round << " packet " << i;
      ASSERT_EQ(a[i], b[i]) << "round " << round << " packet " << i;
      if (flags[i]) {
        ExpectCompletesExactly(b[i], offloads[i]);
      } else {
        ExpectExactChecksums(b[i]);
      }
    }
  }
  EXPECT_EQ(single.drops(), batched.drops());
  EXPECT_GT(partial_seen, 300u);
  EXPECT_GT(super_packets, 100u) << "TCP super-packets larger than an MTU were in the batches";
}

TEST(NatBatch, PartialChecksumFlagMattersInABatch) {
  // The flag reaches the packet it belongs to: the same partial-checksum packet translated in a
  // batch with its flag completes exactly, with the flag of its neighbour (false) it does not.
  NatEngine engine(TestConfig());
  wire::Offload offload;
  std::vector<uint8_t> partial = ToPartial(Tcp({kHostA, 1111}, {kRemote1, 80}, tcp::kSyn, 3000), &offload);
  std::vector<uint8_t> complete = Udp({kHostA, 2222}, {kRemote1, 53});
  std::vector<uint8_t> wrong = partial;
  std::vector<absl::Span<uint8_t>> spans = {absl::MakeSpan(complete), absl::MakeSpan(partial)};
  const bool flags[] = {false, true};
  Result results[2];
  engine.FromInsideBatch(0, spans, flags, absl::MakeSpan(results));
  ASSERT_EQ(results[1].verdict, Verdict::kForwardOutside);
  ExpectCompletesExactly(partial, offload);
  ExpectExactChecksums(complete);

  std::vector<uint8_t> other = Udp({kHostA, 2223}, {kRemote1, 53});
  spans = {absl::MakeSpan(wrong), absl::MakeSpan(other)};
  const bool shifted[] = {false, true};  // the flags one packet off
  engine.FromInsideBatch(0, spans, shifted, absl::MakeSpan(results));
  ASSERT_EQ(results[0].verdict, Verdict::kForwardOutside);
  ASSERT_TRUE(wire::CompleteChecksum(absl::MakeSpan(wrong), offload));
  std::vector<uint8_t> expected = wrong;
  wire::FillTransportChecksum(*Ipv4View::Parse(absl::MakeSpan(expected)));
  EXPECT_NE(wrong, expected) << "a partial checksum translated as complete is wrong";
}

TEST(NatBatch, FragmentsInBatchesAsOneByOne) {
  // Out-of-order fragments of several datagrams, both ways, in batches: the same verdicts,
  // bytes and released fragments as one at a time.
  NatConfig config = TestConfig();
  NatEngine single(config);
  NatEngine batched(config);
  std::vector<uint8_t> open = Udp({kHostA, 40000}, {kRemote1, 53});
  std::vector<uint8_t> open2 = open;
  single.FromInside(0, absl::MakeSpan(open));
  batched.FromInside(0, absl::MakeSpan(open2));
  const Endpoint external = Read(open).source;
  std::mt19937 rng(3);
  for (int round = 0; round < 50; ++round) {
    const bool from_outside = round % 2;
    std::vector<std::vector<uint8_t>> packets;
    for (uint16_t d = 0; d < 3; ++d) {
      const uint16_t id = static_cast<uint16_t>(round * 8 + d);
      std::vector<uint8_t> whole = from_outside ? Udp({kRemote1, 53}, external, 1000 + rng() % 3000)
                                                : Udp({kHostA, 40000}, {kRemote1, 53}, 1000 + rng() % 3000);
      for (auto& f : Fragment(WithId(whole, id), 480)) packets.push_back(f);
    }
    std::shuffle(packets.begin(), packets.end(), rng);
    std::vector<std::vector<uint8_t>> a = packets, b = packets;
    std::vector<Result> one(a.size()), many(b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      one[i] = from_outside ? single.FromOutside(round, absl::MakeSpan(a[i])) : single.FromInside(round, absl::MakeSpan(a[i]));
    }
    std::vector<absl::Span<uint8_t>> spans;
    for (auto& p : b) spans.push_back(absl::MakeSpan(p));
    if (from_outside) {
      batched.FromOutsideBatch(round, spans, absl::MakeSpan(many));
    } else {
      batched.FromInsideBatch(round, spans, absl::MakeSpan(many));
    }
    size_t forwarded = 0, released = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(one[i].verdict, many[i].verdict) << "round " << round << " packet " << i;
      ASSERT_EQ(one[i].released, many[i].released);
      ASSERT_EQ(a[i], b[i]);
      forwarded += one[i].verdict == (from_outside ? Verdict::kForwardInside : Verdict::kForwardOutside);
      released += one[i].released;
    }
    std::vector<std::vector<uint8_t>> ra, rb;
    single.TakeReleasedFragments([&](Verdict, absl::Span<uint8_t> p) { ra.emplace_back(p.begin(), p.end()); });
    batched.TakeReleasedFragments([&](Verdict, absl::Span<uint8_t> p) { rb.emplace_back(p.begin(), p.end()); });
    EXPECT_EQ(ra, rb);
    EXPECT_EQ(ra.size(), released);
    EXPECT_EQ(forwarded + released, packets.size()) << "every fragment of every datagram leaves";
  }
  EXPECT_EQ(single.drops(), batched.drops());
  EXPECT_EQ(single.held_fragment_count(), 0u);
  EXPECT_EQ(single.fragment_record_count(), 0u);
}

// ---- The table ----------------------------------------------------------------------------------

TEST(NatSessionTable, IndexesBothDirectionsAndReusesSlots) {
  SessionTable table(kGateway);
  Session s;
  s.protocol = Protocol::kUdp;
  s.internal_address = kHostA;
  s.internal_port = 1;
  s.external_address = Ip(203, 0, 113, 1);
  s.external_port = 2;
  s.remote_address = kRemote1;
  s.remote_port = 3;
  const uint32_t i = table.AddSession(s);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kUdp, {kHostA, 1}, {kRemote1, 3}}), i);
  EXPECT_EQ(table.FindOutside(FlowKey{Protocol::kUdp, {Ip(203, 0, 113, 1), 2}, {kRemote1, 3}}), i);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kTcp, {kHostA, 1}, {kRemote1, 3}}), kNoIndex);
  EXPECT_EQ(table.FindDpm(FlowKey{Protocol::kUdp, {kHostA, 1}, {kRemote1, 3}}), kNoIndex) << "not a DPM session";
  Session d = s;
  d.internal_port = 9;
  d.external_port = 10;
  d.gateway_port = 11;
  d.flags = kSessionDpm;
  const uint32_t j = table.AddSession(d);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kUdp, {kHostA, 9}, {kGateway, 11}}), j) << "keyed by the gateway endpoint";
  EXPECT_EQ(table.FindDpm(FlowKey{Protocol::kUdp, {kHostA, 9}, {kRemote1, 3}}), j);
  table.RemoveSession(i);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kUdp, {kHostA, 1}, {kRemote1, 3}}), kNoIndex);
  EXPECT_EQ(table.session_count(), 1u);
  EXPECT_EQ(table.AddSession(s), i) << "the freed slot first";
}

TEST(NatSessionTable, ManyChunksAndHugeBlocks) {
  // 300,000 sessions: slab chunks of 4096 up to 131072 records (4 MiB, a huge-page block)
  // and indexes past 2 MiB; every session found both ways, then half removed and reused.
  SessionTable table(kGateway);
  constexpr uint32_t kCount = 300000;
  auto make = [](uint32_t i) {
    Session s;
    s.protocol = Protocol::kTcp;
    s.internal_address = Ip(10, 77, 0, 0) + (i >> 12);
    s.internal_port = static_cast<uint16_t>(1024 + (i & 4095));
    s.external_address = Ip(203, 0, 113, 1 + (i >> 16));
    s.external_port = static_cast<uint16_t>(i & 0xffff);
    s.remote_address = kRemote1;
    s.remote_port = 443;
    return s;
  };
  for (uint32_t i = 0; i < kCount; ++i) ASSERT_EQ(table.AddSession(make(i)), i);
  uint32_t checked = 0, guessed = 0;
  for (uint32_t i = 0; i < kCount; i += 7) {
    const Session s = make(i);
    ASSERT_EQ(table.FindInside(FlowKey{Protocol::kTcp, s.internal(), s.remote()}), i);
    ASSERT_EQ(table.FindOutside(FlowKey{Protocol::kTcp, s.external(), s.remote()}), i);
    ++checked;
    // A guess reads the index only (7-bit hash tags): usually right, checked by its user.
    guessed += table.GuessOutside(FlowKey{Protocol::kTcp, s.external(), s.remote()}) == i;
  }
  EXPECT_GT(guessed, checked * 9 / 10);
  for (uint32_t i = 0; i < kCount; i += 2) table.RemoveSession(i);
  EXPECT_EQ(table.session_count(), kCount / 2);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kTcp, make(4).internal(), make(4).remote()}), kNoIndex);
  EXPECT_EQ(table.FindInside(FlowKey{Protocol::kTcp, make(5).internal(), make(5).remote()}), 5u);
  EXPECT_LT(table.AddSession(make(4)), kCount) << "a freed slot";
  EXPECT_EQ(table.session_slots(), kCount);
}

// A DPM session (in all three session indexes) and an endpoint-independent mapping (in both
// mapping indexes), each with keys of its own for every `i` below 2^20.
Session DpmSessionNumber(uint32_t i) {
  Session s;
  s.protocol = Protocol::kUdp;
  s.internal_address = Ip(10, 77, 0, 0) + (i >> 8);
  s.internal_port = static_cast<uint16_t>(1024 + (i & 255));
  s.external_address = Ip(203, 0, 113, 1 + (i >> 16));
  s.external_port = static_cast<uint16_t>(i & 0xffff);
  s.remote_address = kRemote1;
  s.remote_port = 443;
  s.gateway_port = static_cast<uint16_t>(2000 + (i & 255));
  s.flags = kSessionDpm;
  return s;
}

Mapping MappingNumber(uint32_t i) {
  Mapping m;
  m.protocol = Protocol::kTcp;
  m.internal_address = Ip(10, 77, 0, 0) + (i >> 8);
  m.internal_port = static_cast<uint16_t>(1024 + (i & 255));
  m.external_address = Ip(203, 0, 113, 1 + (i >> 16));
  m.external_port = static_cast<uint16_t>(i & 0xffff);
  return m;
}

TEST(NatSessionTable, ReserveKeepsEveryIndexFromGrowing) {
  constexpr uint32_t kCount = 20000;
  // Without a reservation the same entries make every index grow (the indexes start empty).
  SessionTable grown(kGateway);
  EXPECT_EQ(grown.index_slots(), 0u);
  bool grew = false;
  for (uint32_t i = 0; i < kCount; ++i) {
    grown.AddSession(DpmSessionNumber(i));
    grown.AddMapping(MappingNumber(i));
    grew |= grown.index_growing();
  }
  EXPECT_TRUE(grew);

  SessionTable reserved(kGateway);
  reserved.Reserve(kCount);
  const size_t slots = reserved.index_slots();
  EXPECT_EQ(slots, 5 * HashIndex::SlotsFor(kCount)) << "all five indexes, allocated now";
  for (uint32_t i = 0; i < kCount; ++i) {
    reserved.AddSession(DpmSessionNumber(i));
    reserved.AddMapping(MappingNumber(i));
    ASSERT_FALSE(reserved.index_growing()) << "after " << i + 1 << " sessions";
    ASSERT_EQ(reserved.index_slots(), slots) << "after " << i + 1 << " sessions";
  }
  for (uint32_t i = 0; i < kCount; i += 97) {
    const Session s = DpmSessionNumber(i);
    EXPECT_EQ(reserved.FindInside(FlowKey{s.protocol, s.internal(), {kGateway, s.gateway_port}}), i);
    EXPECT_EQ(reserved.FindDpm(FlowKey{s.protocol, s.internal(), s.remote()}), i);
    EXPECT_EQ(reserved.FindMappingByInternal(EndpointKey{Protocol::kTcp, MappingNumber(i).internal()}), i);
  }
  // Beyond the reservation the indexes grow as usual.
  for (uint32_t i = kCount; !reserved.index_growing(); ++i) {
    ASSERT_LE(i, HashIndex::GrowthThreshold(HashIndex::SlotsFor(kCount)));
    reserved.AddSession(DpmSessionNumber(i));
  }
  EXPECT_GT(reserved.index_slots(), slots);
}

TEST(NatSessionTable, IndexesStayExactThroughGrowthAndChurn) {
  // Sessions added and removed at random while the table grows to 60,000 and churns there:
  // every live session is found by all three of its keys and every removed one by none, also
  // while an index is part-way through moving into a bigger array.
  SessionTable table(kGateway);
  std::mt19937 rng(7);
  std::vector<uint32_t> live;  // record indices
  std::vector<uint32_t> key_of(table.session_slots());
  std::vector<uint32_t> gone;  // keys removed
  uint32_t next_key = 0;
  size_t checked_while_growing = 0;
  auto found = [&](uint32_t key) {
    const Session s = DpmSessionNumber(key);
    const uint32_t a = table.FindInside(FlowKey{s.protocol, s.internal(), {kGateway, s.gateway_port}});
    const uint32_t b = table.FindOutside(FlowKey{s.protocol, s.external(), s.remote()});
    const uint32_t c = table.FindDpm(FlowKey{s.protocol, s.internal(), s.remote()});
    EXPECT_TRUE(a == b && b == c) << "key " << key;
    return a;
  };
  for (int op = 0; op < 150000; ++op) {
    const bool add = live.size() < 60000 ? rng() % 4 != 0 : rng() % 2 == 0;
    if (add || live.empty()) {
      const uint32_t index = table.AddSession(DpmSessionNumber(next_key));
      if (index >= key_of.size()) key_of.resize(index + 1);
      key_of[index] = next_key++;
      live.push_back(index);
    } else {
      const size_t k = rng() % live.size();
      const uint32_t index = live[k];
      table.RemoveSession(index);
      gone.push_back(key_of[index]);
      live[k] = live.back();
      live.pop_back();
    }
    const uint32_t probe = live[rng() % live.size()];
    ASSERT_EQ(found(key_of[probe]), probe);
    if (!gone.empty()) {
      ASSERT_EQ(found(gone[rng() % gone.size()]), kNoIndex);
    }
    if (table.index_growing() && op % 101 == 0) {
      for (uint32_t index : live) ASSERT_EQ(found(key_of[index]), index) << "op " << op;
      ++checked_while_growing;
    }
  }
  EXPECT_GT(checked_while_growing, 0u);
  EXPECT_EQ(table.session_count(), live.size());
  for (uint32_t index : live) ASSERT_EQ(found(key_of[index]), index);
}

TEST(NatSessionTable, AdvanceGrowthFinishesAGrowthLeftHalfDone) {
  // One session past 11/16 of 8192 slots: the bigger arrays are populated at once (small),
  // then entries move a few per insert; with no more inserts the sweep's AdvanceGrowth ends it.
  SessionTable table(kGateway);
  const uint32_t count = static_cast<uint32_t>(HashIndex::GrowthThreshold(8192)) + 1;
  for (uint32_t i = 0; i < count; ++i) table.AddSession(DpmSessionNumber(i));
  ASSERT_TRUE(table.index_growing());
  EXPECT_EQ(table.index_slots(), 3 * (8192 + 16384)) << "old and new arrays of the three session indexes";
  table.AdvanceGrowth(1000);
  EXPECT_TRUE(table.index_growing()) << "a bounded step";
  table.AdvanceGrowth(count);
  EXPECT_FALSE(table.index_growing());
  EXPECT_EQ(table.index_slots(), 3 * 16384) << "the old arrays freed";
  for (uint32_t i = 0; i < count; ++i) {
    const Session s = DpmSessionNumber(i);
    ASSERT_EQ(table.FindOutside(FlowKey{s.protocol, s.external(), s.remote()}), i);
  }
}

TEST(NatSessionTable, HashIndexSurvivesKeysMadeToCollide) {
  // Every value hashes to the last slot (so the cluster wraps round to slot 0) with one of 4
  // tags: probes past 254 slots spill into the overflow list; finds, erases and growth must
  // stay exact.
  auto hash_of = [](const void*, uint32_t value) -> uint64_t { return ~uint64_t{0} ^ (uint64_t{value % 4} << 56); };
  HashIndex index(hash_of, nullptr);
  auto find = [&](uint32_t value) {
    return index.Find(hash_of(nullptr, value), [value](uint32_t v) { return v == value; });
  };
  constexpr uint32_t kCount = 1000;
  for (uint32_t v = 0; v < kCount; ++v) index.Insert(hash_of(nullptr, v), v);
  EXPECT_EQ(index.size(), kCount);
  for (uint32_t v = 0; v < kCount; ++v) ASSERT_EQ(find(v), v);
  EXPECT_EQ(find(kCount), kNoIndex);
  for (uint32_t v = 0; v < kCount; v += 2) index.Erase(hash_of(nullptr, v), v);
  EXPECT_EQ(index.size(), kCount / 2);
  for (uint32_t v = 0; v < kCount; ++v) ASSERT_EQ(find(v), v % 2 ? v : kNoIndex) << v;
  for (uint32_t v = kCount; v < 2 * kCount; ++v) index.Insert(hash_of(nullptr, v), v);
  for (uint32_t v = 0; v < 2 * kCount; ++v) ASSERT_EQ(find(v), v % 2 || v >= kCount ? v : kNoIndex) << v;
  for (uint32_t v = 1; v < 2 * kCount; ++v) {
    if (v % 2 || v >= kCount) index.Erase(hash_of(nullptr, v), v);
  }
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(find(7), kNoIndex);
}

}  // namespace
}  // namespace dpm::nat
