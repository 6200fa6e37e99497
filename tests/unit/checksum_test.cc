// src/wire/checksum: RFC 1071 full computation and RFC 1624 incremental update. The property
// the NAT engine relies on: after any change to covered fields, the incrementally updated
// checksum equals a full recomputation bit for bit.
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::wire {
namespace {

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with end-around carry).
  const std::vector<uint8_t> bytes = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(FoldSum(OnesComplementSum(bytes)), 0xddf2);
  EXPECT_EQ(InternetChecksum(bytes), static_cast<uint16_t>(~0xddf2));
}

TEST(Checksum, KnownIpv4Header) {
  // A UDP packet 192.168.0.1 -> 192.168.0.199 whose header checksum is 0xb861.
  std::vector<uint8_t> header = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(InternetChecksum(header), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  EXPECT_EQ(InternetChecksum(header), 0) << "a header with its checksum sums to -0";
}

TEST(Checksum, OddLengthPadsWithZero) {
  const std::vector<uint8_t> odd = {0x12, 0x34, 0x56};
  const std::vector<uint8_t> padded = {0x12, 0x34, 0x56, 0x00};
  EXPECT_EQ(InternetChecksum(odd), InternetChecksum(padded));
  EXPECT_EQ(OnesComplementSum({}), 0u);
}

TEST(Checksum, Rfc1624Eqn3AvoidsMinusZero) {
  // RFC 1624 §4: the other header words sum to 0xcd7a, a field changes 0x5555 -> 0x3285.
  // Recomputing gives 0x0000; RFC 1141's eqn. 2 gave 0xffff, eqn. 3 must give 0x0000.
  const uint16_t before = static_cast<uint16_t>(~FoldSum(0xcd7a + 0x5555));
  EXPECT_EQ(before, 0xdd2f);
  EXPECT_EQ(ChecksumReplace16(before, 0x5555, 0x3285), 0x0000);
  EXPECT_EQ(ChecksumReplace16(0x1234, 0xabcd, 0xabcd), 0x1234) << "no change, no update";
}

TEST(Checksum, PseudoHeaderMatchesLayout) {
  // The pseudo-header is 12 bytes: src, dst, zero, protocol, length (RFC 768).
  const std::vector<uint8_t> pseudo = {10, 77, 1, 2, 203, 0, 113, 9, 0, 17, 0x01, 0x02};
  EXPECT_EQ(FoldSum(PseudoHeaderSum(0x0a4d0102, 0xcb007109, 17, 0x0102)), FoldSum(OnesComplementSum(pseudo)));
}

// Random packets: change addresses and ports incrementally, compare with full recomputation.
class ChecksumRandom : public ::testing::TestWithParam<uint8_t> {};

TEST_P(ChecksumRandom, IncrementalEqualsFullRecomputation) {
  const uint8_t protocol = GetParam();
  std::mt19937 rng(protocol * 7919u);
  for (int round = 0; round < 2000; ++round) {
    const size_t l4_header = protocol == ipv4::kProtocolTcp ? 20 : 8;
    const size_t payload = rng() % 64;  // odd lengths too
    Ipv4Repr repr;
    repr.source = rng();
    repr.destination = rng();
    repr.protocol = protocol;
    repr.ttl = static_cast<uint8_t>(2 + rng() % 250);
    repr.identification = static_cast<uint16_t>(rng());
    repr.payload_length = l4_header + payload;
    std::vector<uint8_t> packet(repr.buffer_len());
    ASSERT_TRUE(repr.Emit(absl::MakeSpan(packet)));
    for (size_t i = 20; i < packet.size(); ++i) packet[i] = static_cast<uint8_t>(rng());
    if (protocol == ipv4::kProtocolTcp) packet[20 + tcp::kDataOffsetOffset] = 0x50;
    if (protocol == ipv4::kProtocolUdp) StoreBe16(&packet[20 + udp::kLengthOffset], static_cast<uint16_t>(8 + payload));
    std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(packet));
    ASSERT_TRUE(ip);
    FillTransportChecksum(*ip);
    ASSERT_TRUE(TransportChecksumValid(*ip));

    // The NAT's rewrite: new source address and port (and sometimes destination), TTL - 1.
    const size_t l4_checksum = 20 + (protocol == ipv4::kProtocolTcp ? tcp::kChecksumOffset
                                     : protocol == ipv4::kProtocolUdp ? udp::kChecksumOffset
                                                                      : icmp::kChecksumOffset);
    ChecksumDelta ip_delta;
    ChecksumDelta l4_delta;
    const uint32_t new_source = rng();
    ip_delta.Replace32(ip->source(), new_source);
    if (protocol != ipv4::kProtocolIcmp) l4_delta.Replace32(ip->source(), new_source);
    ip->set_source(new_source);
    if (rng() % 2) {
      const uint32_t new_destination = rng();
      ip_delta.Replace32(ip->destination(), new_destination);
      if (protocol != ipv4::kProtocolIcmp) l4_delta.Replace32(ip->destination(), new_destination);
      ip->set_destination(new_destination);
    }
    const uint16_t ttl_word = LoadBe16(&packet[ipv4::kTtlOffset]);
    ip_delta.Replace16(ttl_word, static_cast<uint16_t>(ttl_word - 0x100));
    ip->set_ttl(static_cast<uint8_t>(ip->ttl() - 1));
    const size_t port_offset = 20 + (protocol == ipv4::kProtocolIcmp ? icmp::kIdentifierOffset : 0);
    const uint16_t new_port = static_cast<uint16_t>(rng());
    l4_delta.Replace16(LoadBe16(&packet[port_offset]), new_port);
    StoreBe16(&packet[port_offset], new_port);

    ip->set_checksum(ip_delta.Apply(ip->checksum()));
    uint16_t l4 = l4_delta.Apply(LoadBe16(&packet[l4_checksum]));
    if (protocol == ipv4::kProtocolUdp) l4 = UdpChecksumOnWire(l4);
    StoreBe16(&packet[l4_checksum], l4);

    std::vector<uint8_t> expected = packet;
    std::optional<Ipv4View> full = Ipv4View::Parse(absl::MakeSpan(expected));
    full->FillChecksum();
    FillTransportChecksum(*full);
    ASSERT_EQ(packet, expected) << "round " << round << ": incremental != full recomputation";
  }
}

INSTANTIATE_TEST_SUITE_P(Checksum, ChecksumRandom,
                         ::testing::Values(ipv4::kProtocolTcp, ipv4::kProtocolUdp, ipv4::kProtocolIcmp),
                         [](const ::testing::TestParamInfo<uint8_t>& info) {
                           return info.param == ipv4::kProtocolTcp   ? std::string("Tcp")
                                  : info.param == ipv4::kProtocolUdp ? std::string("Udp")
                                                                     : std::string("Icmp");
                         });

TEST(Checksum, UdpZeroComputedIsSentAsAllOnes) {
  EXPECT_EQ(UdpChecksumOnWire(0), 0xffff);
  EXPECT_EQ(UdpChecksumOnWire(0x1234), 0x1234);
}

TEST(Checksum, DeltaAddFoldsAnotherDelta) {
  ChecksumDelta a;
  a.Replace16(0x1111, 0x2222);
  ChecksumDelta b;
  b.Replace32(0x0a000001, 0xcb007101);
  ChecksumDelta both;
  both.Add(a);
  both.Add(b);
  EXPECT_EQ(both.Apply(0xbeef), b.Apply(a.Apply(0xbeef)));
  EXPECT_TRUE(ChecksumDelta().empty());
  EXPECT_EQ(ChecksumDelta().Apply(0xffff), 0xffff) << "an empty delta leaves even 0xffff alone";
}

}  // namespace
}  // namespace dpm::wire
