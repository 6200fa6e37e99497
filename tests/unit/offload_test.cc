// src/wire/offload and tun::Link::WriteOffloaded: the virtio-net header of TUN offload, and
// finishing offloaded packets in software (checksum completion, TCP segmentation) exactly as
// the kernel would.
#include "wire/offload.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tun/memory_link.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::wire {
namespace {

constexpr uint32_t kSource = 0x0a4d010a;       // 10.77.1.10
constexpr uint32_t kDestination = 0xc6336420;  // 198.51.100.32

// A TCP/IPv4 packet with `payload` bytes and full, correct checksums.
std::vector<uint8_t> TcpPacket(size_t payload, uint8_t flags, uint16_t identification = 0x1000) {
  Ipv4Repr repr;
  repr.source = kSource;
  repr.destination = kDestination;
  repr.protocol = ipv4::kProtocolTcp;
  repr.identification = identification;
  repr.flags_fragment = ipv4::kFlagDontFragment;
  repr.payload_length = 20 + payload;
  std::vector<uint8_t> p(repr.buffer_len());
  EXPECT_TRUE(repr.Emit(absl::MakeSpan(p)));
  uint8_t* t = &p[20];
  StoreBe16(t, 40000);
  StoreBe16(t + 2, 80);
  StoreBe32(t + tcp::kSequenceOffset, 0xfffff000);  // wraps inside the super-packet
  StoreBe32(t + tcp::kAcknowledgmentOffset, 0x01020304);
  t[tcp::kDataOffsetOffset] = 0x50;
  t[tcp::kFlagsOffset] = flags;
  StoreBe16(t + tcp::kWindowOffset, 512);
  for (size_t i = 0; i < payload; ++i) p[40 + i] = static_cast<uint8_t>(i * 13 + i / 251);
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  FillTransportChecksum(*ip);
  return p;
}

// The same packet as the kernel hands it over with offload: the TCP checksum field holds
// the pseudo-header sum.
std::vector<uint8_t> Partial(std::vector<uint8_t> p, Offload* o) {
  o->partial_checksum = true;
  o->checksum_start = 20;
  o->checksum_offset = tcp::kChecksumOffset;
  o->header_length = 40;
  StoreBe16(&p[20 + tcp::kChecksumOffset],
            FoldSum(PseudoHeaderSum(kSource, kDestination, ipv4::kProtocolTcp, static_cast<uint16_t>(p.size() - 20))));
  return p;
}

bool ChecksumsValid(absl::Span<const uint8_t> p) {
  std::vector<uint8_t> copy(p.begin(), p.end());
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(copy));
  if (!ip || !ip->ChecksumValid()) return false;
  return TransportChecksum(ip->source(), ip->destination(), ip->protocol(), ip->payload()) == 0;
}

TEST(VirtioNetHeader, RoundTripsEveryOffloadWeTake) {
  Offload gso;
  gso.partial_checksum = gso.tcp_segmentation = true;
  gso.header_length = 52;
  gso.segment_size = 1448;
  gso.checksum_start = 20;
  gso.checksum_offset = 16;
  Offload csum;
  csum.partial_checksum = true;
  csum.checksum_start = 24;
  csum.checksum_offset = 6;
  for (const Offload& o : {Offload{}, csum, gso}) {
    uint8_t bytes[kVirtioNetHeaderSize];
    SerializeVirtioNetHeader(o, bytes);
    std::optional<Offload> back = ParseVirtioNetHeader(bytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->partial_checksum, o.partial_checksum);
    EXPECT_EQ(back->tcp_segmentation, o.tcp_segmentation);
    EXPECT_EQ(back->segment_size, o.segment_size);
    EXPECT_EQ(back->checksum_start, o.checksum_start);
    EXPECT_EQ(back->checksum_offset, o.checksum_offset);
    if (o.tcp_segmentation) EXPECT_EQ(back->header_length, o.header_length);
  }
}

TEST(VirtioNetHeader, LayoutIsLittleEndianVirtio) {
  // flags NEEDS_CSUM, gso TCPV4, hdr_len 54, gso_size 1448 (0x05a8), csum 34 / 16.
  const uint8_t bytes[] = {1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0};
  std::optional<Offload> o = ParseVirtioNetHeader(bytes);
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->partial_checksum && o->tcp_segmentation);
  EXPECT_EQ(o->header_length, 54);
  EXPECT_EQ(o->segment_size, 1448);
  EXPECT_EQ(o->checksum_start, 34);
  EXPECT_EQ(o->checksum_offset, 16);
  uint8_t again[kVirtioNetHeaderSize];
  SerializeVirtioNetHeader(*o, again);
  EXPECT_EQ(std::vector<uint8_t>(again, again + 10), std::vector<uint8_t>(bytes, bytes + 10));
}

TEST(VirtioNetHeader, RefusesWhatIsNotEnabledAndCutHeaders) {
  const uint8_t ok[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t n = 0; n < sizeof(ok); ++n) EXPECT_FALSE(ParseVirtioNetHeader(absl::MakeConstSpan(ok, n))) << n;
  EXPECT_TRUE(ParseVirtioNetHeader(ok));
  for (uint8_t gso : {3, 4, 5, 0x81}) {  // UDP, TCPv6, UDP_L4, TCPv4 with ECN
    const uint8_t h[] = {1, gso, 40, 0, 0xa8, 5, 20, 0, 16, 0};
    EXPECT_FALSE(ParseVirtioNetHeader(h)) << int{gso};
  }
  const uint8_t gso_without_csum[] = {0, 1, 40, 0, 0xa8, 5, 20, 0, 16, 0};
  EXPECT_FALSE(ParseVirtioNetHeader(gso_without_csum));
  const uint8_t data_valid[] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // nothing to do for us
  std::optional<Offload> o = ParseVirtioNetHeader(data_valid);
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->none());
}

TEST(CompleteChecksum, GivesTheFullChecksum) {
  for (size_t payload : {0, 1, 2, 999, 1460, 65000}) {
    std::vector<uint8_t> full = TcpPacket(payload, tcp::kAck);
    Offload o;
    std::vector<uint8_t> p = Partial(full, &o);
    EXPECT_FALSE(ChecksumsValid(p));
    ASSERT_TRUE(CompleteChecksum(absl::MakeSpan(p), o));
    EXPECT_EQ(p, full) << payload;
  }
}

TEST(CompleteChecksum, RefusesAFieldOutsideThePacket) {
  std::vector<uint8_t> p = TcpPacket(0, tcp::kAck);
  Offload o;
  o.partial_checksum = true;
  o.checksum_start = 30;
  o.checksum_offset = 9;  // field at 39..40, the packet is 40 bytes
  std::vector<uint8_t> before = p;
  EXPECT_FALSE(CompleteChecksum(absl::MakeSpan(p), o));
  EXPECT_EQ(p, before);
  EXPECT_FALSE(CompleteChecksum(absl::MakeSpan(p), Offload{}));
}

TEST(IsTransportOffload, OnlyTheLayoutTheNatUpdates) {
  Offload o;
  std::vector<uint8_t> p = Partial(TcpPacket(100, tcp::kAck), &o);
  EXPECT_TRUE(IsTransportOffload(p, o));
  EXPECT_FALSE(IsTransportOffload(p, Offload{}));
  Offload wrong = o;
  wrong.checksum_offset = 6;  // UDP's, on TCP
  EXPECT_FALSE(IsTransportOffload(p, wrong));
  wrong = o;
  wrong.checksum_start = 24;
  EXPECT_FALSE(IsTransportOffload(p, wrong));
  std::vector<uint8_t> fragment = p;
  StoreBe16(&fragment[ipv4::kFlagsFragmentOffset], ipv4::kFlagMoreFragments);
  EXPECT_FALSE(IsTransportOffload(fragment, o));
  for (size_t n = 0; n < 40; ++n) EXPECT_FALSE(IsTransportOffload(absl::MakeConstSpan(p.data(), n), o)) << n;
}

TEST(SegmentTcpV4, CutsLikeTso) {
  constexpr size_t kMss = 1000;
  const uint8_t flags = tcp::kAck | tcp::kPsh | tcp::kFin | tcp::kCwr;
  std::vector<uint8_t> whole = TcpPacket(3 * kMss + 500, flags, /*identification=*/0xfffe);
  Offload o;
  o.tcp_segmentation = true;
  o.segment_size = kMss;
  std::vector<uint8_t> super = Partial(whole, &o);
  std::vector<std::vector<uint8_t>> segments;
  std::vector<uint8_t> scratch;
  ASSERT_EQ(SegmentTcpV4(super, o, scratch, [&](absl::Span<const uint8_t> s) { segments.emplace_back(s.begin(), s.end()); }),
            4u);
  ASSERT_EQ(segments.size(), 4u);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::vector<uint8_t>& s = segments[i];
    EXPECT_TRUE(ChecksumsValid(s)) << i;
    EXPECT_EQ(s.size(), 40 + (i < 3 ? kMss : 500));
    EXPECT_EQ(LoadBe16(&s[ipv4::kTotalLengthOffset]), s.size());
    EXPECT_EQ(LoadBe16(&s[ipv4::kIdentificationOffset]), static_cast<uint16_t>(0xfffe + i));
    EXPECT_EQ(LoadBe32(&s[20 + tcp::kSequenceOffset]), static_cast<uint32_t>(0xfffff000 + i * kMss));
    const uint8_t f = s[20 + tcp::kFlagsOffset];
    EXPECT_EQ((f & tcp::kCwr) != 0, i == 0) << i;
    EXPECT_EQ((f & tcp::kFin) != 0, i == 3) << i;
    EXPECT_EQ((f & tcp::kPsh) != 0, i == 3) << i;
    EXPECT_TRUE(f & tcp::kAck);
    joined.insert(joined.end(), s.begin() + 40, s.end());
  }
  EXPECT_EQ(joined, std::vector<uint8_t>(whole.begin() + 40, whole.end()));
}

TEST(SegmentTcpV4, PureAckIsOneSegmentAndBadInputNone) {
  Offload o;
  o.tcp_segmentation = true;
  o.segment_size = 1448;
  std::vector<uint8_t> ack = Partial(TcpPacket(0, tcp::kAck), &o);
  std::vector<uint8_t> scratch;
  size_t emitted = 0;
  auto count = [&](absl::Span<const uint8_t> s) {
    EXPECT_TRUE(ChecksumsValid(s));
    emitted++;
  };
  EXPECT_EQ(SegmentTcpV4(ack, o, scratch, count), 1u);
  // Every cut of a valid super-packet is refused, and nothing is emitted.
  std::vector<uint8_t> super = Partial(TcpPacket(3000, tcp::kAck), &o);
  emitted = 0;
  for (size_t n = 0; n < super.size(); n += (n < 80 ? 1 : 97)) {
    EXPECT_EQ(SegmentTcpV4(absl::MakeConstSpan(super.data(), n), o, scratch, count), 0u) << n;
  }
  EXPECT_EQ(emitted, 0u);
  Offload zero = o;
  zero.segment_size = 0;
  EXPECT_EQ(SegmentTcpV4(super, zero, scratch, count), 0u);
  std::vector<uint8_t> udp = super;
  udp[ipv4::kProtocolOffset] = ipv4::kProtocolUdp;
  EXPECT_EQ(SegmentTcpV4(udp, o, scratch, count), 0u);
  std::vector<uint8_t> bad_offset = super;
  bad_offset[20 + tcp::kDataOffsetOffset] = 0x40;  // 16-byte TCP header
  EXPECT_EQ(SegmentTcpV4(bad_offset, o, scratch, count), 0u);
  EXPECT_EQ(emitted, 0u);
}

// A link without offload finishes what it is given in software.
TEST(LinkWriteOffloaded, WithoutOffloadSegmentsAndCompletes) {
  tun::MemoryLink link(1500);
  Offload o;
  o.tcp_segmentation = true;
  o.segment_size = 1460;
  std::vector<uint8_t> whole = TcpPacket(10000, tcp::kAck);
  std::vector<uint8_t> super = Partial(whole, &o);
  iovec v{super.data(), super.size()};
  ASSERT_TRUE(link.WriteOffloaded(absl::MakeConstSpan(&v, 1), o).ok());
  EXPECT_EQ(link.outbound_size(), 7u);  // ceil(10000 / 1460)
  std::vector<uint8_t> s;
  size_t bytes = 0;
  while (link.TakeOutbound(&s)) {
    EXPECT_TRUE(ChecksumsValid(s));
    EXPECT_LE(s.size(), 1500u);
    bytes += s.size() - 40;
  }
  EXPECT_EQ(bytes, 10000u);
  EXPECT_EQ(link.counters().tx_segmented_in_software, 1u);

  Offload csum;
  std::vector<uint8_t> partial = Partial(TcpPacket(500, tcp::kAck), &csum);
  v = {partial.data(), partial.size()};
  ASSERT_TRUE(link.WriteOffloaded(absl::MakeConstSpan(&v, 1), csum).ok());
  ASSERT_TRUE(link.TakeOutbound(&s));
  EXPECT_EQ(s, TcpPacket(500, tcp::kAck));
  EXPECT_EQ(link.counters().checksums_in_software, 1u);

  std::vector<uint8_t> cut(super.begin(), super.begin() + 30);
  v = {cut.data(), cut.size()};
  EXPECT_EQ(link.WriteOffloaded(absl::MakeConstSpan(&v, 1), o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(link.outbound_size(), 0u);
}

}  // namespace
}  // namespace dpm::wire
