// src/nat/rewrite: the NAT's in-place rewrites. An incremental update (RFC 1624 eqn. 3) must
// give, bit for bit, the checksum a full recomputation gives over the rewritten packet; the
// partial-checksum form must leave exactly the pseudo-header sum of the new addresses.
#include "nat/rewrite.h"

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::nat {
namespace {

using wire::Ipv4View;
using wire::LoadBe16;
using wire::StoreBe16;
namespace ipv4 = wire::ipv4;

// A TCP or UDP packet with random payload (and, when `options`, IP options) and correct
// checksums.
std::vector<uint8_t> RandomPacket(std::mt19937& rng, uint8_t protocol, size_t payload, size_t option_words) {
  const bool udp = protocol == ipv4::kProtocolUdp;
  const size_t l4_header = udp ? 8 : 20;
  wire::Ipv4Repr repr;
  repr.source = rng();
  repr.destination = rng();
  repr.protocol = protocol;
  repr.ttl = static_cast<uint8_t>(2 + rng() % 250);
  repr.identification = static_cast<uint16_t>(rng());
  repr.payload_length = option_words * 4 + l4_header + payload;
  std::vector<uint8_t> p(repr.buffer_len());
  EXPECT_TRUE(repr.Emit(absl::MakeSpan(p)));
  p[0] = static_cast<uint8_t>(0x40 | (5 + option_words));
  for (size_t i = 0; i < option_words * 4; ++i) p[20 + i] = 0x01;  // NOP
  uint8_t* t = p.data() + 20 + option_words * 4;
  for (size_t i = 0; i < l4_header + payload; ++i) t[i] = static_cast<uint8_t>(rng());
  if (udp) {
    StoreBe16(t + 4, static_cast<uint16_t>(l4_header + payload));
  } else {
    t[wire::tcp::kDataOffsetOffset] = 0x50;
  }
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ip->FillChecksum();
  wire::FillTransportChecksum(*ip);
  return p;
}

// `p` with both checksums recomputed from scratch.
std::vector<uint8_t> Recomputed(std::vector<uint8_t> p) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ip->FillChecksum();
  wire::FillTransportChecksum(*ip);
  return p;
}

// Rewrites `p` to the given endpoints as the engine does.
void RewriteTo(std::vector<uint8_t>& p, Endpoint source, Endpoint destination, bool decrement_ttl, bool partial) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  wire::ChecksumDelta pseudo_header;
  RewriteIpv4Header(*ip, source.address, destination.address, decrement_ttl, &pseudo_header);
  RewriteTcpUdp(ip->payload(), ip->protocol() == ipv4::kProtocolUdp, source.port, destination.port, pseudo_header,
                partial);
}

Endpoint RandomEndpoint(std::mt19937& rng) { return {static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())}; }

TEST(NatRewrite, IncrementalUpdateEqualsRecomputationOverRandomPackets) {
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const uint8_t protocol = rng() % 2 ? ipv4::kProtocolTcp : ipv4::kProtocolUdp;
    std::vector<uint8_t> p = RandomPacket(rng, protocol, rng() % 1500, rng() % 4 == 0 ? 1 + rng() % 10 : 0);
    const uint8_t ttl = p[8];
    // Some rewrites change one end only (a reply keeps its remote), some nothing at all.
    Endpoint source = RandomEndpoint(rng), destination = RandomEndpoint(rng);
    std::optional<Ipv4View> before = Ipv4View::Parse(absl::MakeSpan(p));
    if (rng() % 4 == 0) destination = {before->destination(), LoadBe16(before->payload().data() + 2)};
    if (rng() % 16 == 0) source = {before->source(), LoadBe16(before->payload().data())};
    if (protocol == ipv4::kProtocolUdp && rng() % 8 == 0) {
      StoreBe16(before->payload().data() + wire::udp::kChecksumOffset, 0);  // RFC 768: none sent
    }
    const bool udp_without = protocol == ipv4::kProtocolUdp &&
                             LoadBe16(before->payload().data() + wire::udp::kChecksumOffset) == 0;
    const bool decrement = rng() % 2;
    RewriteTo(p, source, destination, decrement, /*partial=*/false);
    std::optional<Ipv4View> after = Ipv4View::Parse(absl::MakeSpan(p));
    EXPECT_EQ(after->source(), source.address);
    EXPECT_EQ(after->destination(), destination.address);
    EXPECT_EQ(LoadBe16(after->payload().data()), source.port);
    EXPECT_EQ(LoadBe16(after->payload().data() + 2), destination.port);
    EXPECT_EQ(after->ttl(), decrement ? ttl - 1 : ttl);
    if (udp_without) {
      EXPECT_EQ(LoadBe16(after->payload().data() + wire::udp::kChecksumOffset), 0) << "no checksum stays none";
      EXPECT_TRUE(after->ChecksumValid());
      continue;
    }
    ASSERT_EQ(p, Recomputed(p)) << "packet " << i;
  }
}

TEST(NatRewrite, PartialChecksumFormLeavesThePseudoHeaderSumOfTheNewAddresses) {
  // Offload: the field holds the pseudo-header sum S (not ~sum). After the rewrite it must be
  // exactly the S of the new addresses — whatever the ports and payload, which the link sums.
  std::mt19937 rng(6);
  for (int i = 0; i < 1000; ++i) {
    const uint8_t protocol = rng() % 2 ? ipv4::kProtocolTcp : ipv4::kProtocolUdp;
    // TCP up to a super-packet far past any MTU.
    std::vector<uint8_t> p = RandomPacket(rng, protocol, protocol == ipv4::kProtocolTcp ? rng() % 65000 : rng() % 9000, 0);
    std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
    const size_t field = protocol == ipv4::kProtocolUdp ? wire::udp::kChecksumOffset : wire::tcp::kChecksumOffset;
    const uint16_t length = static_cast<uint16_t>(ip->payload().size());
    StoreBe16(ip->payload().data() + field,
              wire::FoldSum(wire::PseudoHeaderSum(ip->source(), ip->destination(), protocol, length)));
    const Endpoint source = RandomEndpoint(rng), destination = RandomEndpoint(rng);
    RewriteTo(p, source, destination, /*decrement_ttl=*/true, /*partial=*/true);
    ip = Ipv4View::Parse(absl::MakeSpan(p));
    const uint16_t want = wire::FoldSum(wire::PseudoHeaderSum(source.address, destination.address, protocol, length));
    // One's complement has two zeros: 0x0000 and 0xffff are the same sum.
    const uint16_t got = LoadBe16(ip->payload().data() + field);
    EXPECT_TRUE(got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff))
        << std::hex << got << " != " << want << " (packet " << std::dec << i << ")";
    EXPECT_EQ(LoadBe16(ip->payload().data()), source.port);
    EXPECT_TRUE(ip->ChecksumValid()) << "the IP header checksum is complete either way";
  }
}

TEST(NatRewrite, IcmpQueryIdentifierAndChecksum) {
  std::vector<uint8_t> m = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
  StoreBe16(&m[wire::icmp::kChecksumOffset], wire::InternetChecksum(m));
  RewriteIcmpQuery(absl::MakeSpan(m), 0xbeef);
  EXPECT_EQ(LoadBe16(&m[wire::icmp::kIdentifierOffset]), 0xbeef);
  EXPECT_EQ(wire::InternetChecksum(m), 0) << "the ICMP checksum covers the new identifier";
}

TEST(NatRewrite, QuotedPacketAndTheOuterChecksumFollow) {
  // An ICMP error's body: a quoted UDP packet, rewritten to new endpoints; the quoted IP and UDP
  // checksums and the outer ICMP checksum (updated by the delta) stay exact.
  std::mt19937 rng(8);
  std::vector<uint8_t> offending = RandomPacket(rng, ipv4::kProtocolUdp, 40, 0);
  std::vector<uint8_t> message = {3, 3, 0, 0, 0, 0, 0, 0};
  message.insert(message.end(), offending.begin(), offending.end());
  StoreBe16(&message[wire::icmp::kChecksumOffset], wire::InternetChecksum(message));
  std::optional<Ipv4View> quoted = Ipv4View::ParseQuoted(absl::MakeSpan(message).subspan(8));
  std::optional<wire::QuotedTransport> transport =
      wire::QuotedTransport::Parse(quoted->payload(), ipv4::kProtocolUdp);
  ASSERT_TRUE(transport);
  const Endpoint source{0xcb007101, 4000}, destination{0xc6336414, 53};
  wire::ChecksumDelta icmp;
  RewriteQuoted(*quoted, *transport, source, destination, /*id_at_source=*/false, &icmp);
  uint8_t* outer = &message[wire::icmp::kChecksumOffset];
  Put16(outer, icmp.Apply(LoadBe16(outer)), {});
  EXPECT_EQ(wire::InternetChecksum(message), 0) << "outer ICMP checksum";
  std::vector<uint8_t> quote(message.begin() + 8, message.end());
  EXPECT_EQ(quote, Recomputed(quote)) << "quoted IP and UDP checksums";
  EXPECT_EQ(Ipv4View::Parse(absl::MakeSpan(quote))->source(), source.address);
  EXPECT_EQ(LoadBe16(&quote[22]), destination.port);
}

}  // namespace
}  // namespace dpm::nat
