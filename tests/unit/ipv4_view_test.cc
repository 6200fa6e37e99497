// src/wire/ipv4: checked views over IPv4, TCP, UDP and ICMP (RFC 791, 9293, 768, 792), the
// header emitter and the ICMP error builder.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::wire {
namespace {

// 10.77.1.10:40000 -> 198.51.100.10:53, UDP, 4 bytes of data, TTL 64, DF, id 0x1c46.
std::vector<uint8_t> UdpFixture() {
  std::vector<uint8_t> p = {
      0x45, 0x00, 0x00, 0x20, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,  // ver/ihl .. checksum
      10,   77,   1,    10,   198,  51,   100,  10,                          // src, dst
      0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00,                        // UDP header
      'd',  'a',  't',  'a'};
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ip->FillChecksum();
  FillTransportChecksum(*ip);
  return p;
}

TEST(Ipv4View, ReadsTheFixedHeader) {
  std::vector<uint8_t> p = UdpFixture();
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->header_length(), 20u);
  EXPECT_EQ(ip->total_length(), 32);
  EXPECT_EQ(ip->identification(), 0x1c46);
  EXPECT_TRUE(ip->dont_fragment());
  EXPECT_FALSE(ip->more_fragments());
  EXPECT_FALSE(ip->is_fragment());
  EXPECT_EQ(ip->ttl(), 64);
  EXPECT_EQ(ip->protocol(), ipv4::kProtocolUdp);
  EXPECT_EQ(ip->source(), 0x0a4d010au);
  EXPECT_EQ(ip->destination(), 0xc633640au);
  EXPECT_TRUE(ip->ChecksumValid());
  EXPECT_EQ(ip->payload().size(), 12u);
  EXPECT_TRUE(TransportChecksumValid(*ip));
}

TEST(Ipv4View, SettersWriteBigEndian) {
  std::vector<uint8_t> p = UdpFixture();
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ip->set_source(0xcb007101);
  ip->set_destination(0x01020304);
  ip->set_ttl(7);
  EXPECT_EQ((std::vector<uint8_t>{p[12], p[13], p[14], p[15]}), (std::vector<uint8_t>{203, 0, 113, 1}));
  EXPECT_EQ((std::vector<uint8_t>{p[16], p[17], p[18], p[19]}), (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(p[8], 7);
  EXPECT_FALSE(ip->ChecksumValid());
  ip->FillChecksum();
  EXPECT_TRUE(ip->ChecksumValid());
}

TEST(Ipv4View, RejectsEachMalformation) {
  Ipv4Error error = Ipv4Error::kOk;
  std::vector<uint8_t> p = UdpFixture();
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(p.data(), 19), &error));
  EXPECT_EQ(error, Ipv4Error::kTooShort);

  std::vector<uint8_t> v6 = p;
  v6[0] = 0x65;
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(v6), &error));
  EXPECT_EQ(error, Ipv4Error::kBadVersion);

  std::vector<uint8_t> ihl4 = p;
  ihl4[0] = 0x44;
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(ihl4), &error));
  EXPECT_EQ(error, Ipv4Error::kBadHeaderLength);

  std::vector<uint8_t> ihl15 = p;
  ihl15[0] = 0x4f;  // 60 bytes of header in a 32-byte packet
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(ihl15), &error));
  EXPECT_EQ(error, Ipv4Error::kBadHeaderLength);

  std::vector<uint8_t> short_total = p;
  StoreBe16(&short_total[2], 19);
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(short_total), &error));
  EXPECT_EQ(error, Ipv4Error::kBadTotalLength);

  std::vector<uint8_t> long_total = p;
  StoreBe16(&long_total[2], 33);
  EXPECT_FALSE(Ipv4View::Parse(absl::MakeSpan(long_total), &error));
  EXPECT_EQ(error, Ipv4Error::kBadTotalLength);
}

TEST(Ipv4View, TrailingBytesAreOutsideTheView) {
  std::vector<uint8_t> p = UdpFixture();
  p.resize(p.size() + 14, 0xee);  // link padding
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->bytes().size(), 32u);
  EXPECT_EQ(ip->payload().size(), 12u);
  EXPECT_TRUE(TransportChecksumValid(*ip));
}

TEST(Ipv4View, OptionsMoveThePayload) {
  std::vector<uint8_t> p = UdpFixture();
  p.insert(p.begin() + 20, {0x01, 0x01, 0x01, 0x00});  // NOP NOP NOP EOL
  p[0] = 0x46;
  StoreBe16(&p[2], 36);
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(p));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->header_length(), 24u);
  EXPECT_EQ(ip->payload()[0], 0x9c) << "payload starts after the options";
  ip->FillChecksum();
  EXPECT_TRUE(ip->ChecksumValid());
}

TEST(Ipv4View, Fragments) {
  std::vector<uint8_t> p = UdpFixture();
  StoreBe16(&p[6], ipv4::kFlagMoreFragments);
  EXPECT_TRUE(Ipv4View::Parse(absl::MakeSpan(p))->is_fragment()) << "first fragment";
  StoreBe16(&p[6], 185);
  std::optional<Ipv4View> later = Ipv4View::Parse(absl::MakeSpan(p));
  EXPECT_TRUE(later->is_fragment());
  EXPECT_EQ(later->fragment_offset(), 185);
}

TEST(Ipv4View, QuotedHeaderMayBeCutShort) {
  std::vector<uint8_t> p = UdpFixture();
  std::optional<Ipv4View> quoted = Ipv4View::ParseQuoted(absl::MakeSpan(p.data(), 28));
  ASSERT_TRUE(quoted);
  EXPECT_EQ(quoted->total_length(), 32) << "the original length is kept";
  EXPECT_EQ(quoted->payload().size(), 8u);
  EXPECT_FALSE(Ipv4View::ParseQuoted(absl::MakeSpan(p.data(), 19)));
  p[0] = 0x46;  // header longer than the quote
  EXPECT_FALSE(Ipv4View::ParseQuoted(absl::MakeSpan(p.data(), 23)));
}

TEST(Ipv4View, TcpDataOffsetIsChecked) {
  std::vector<uint8_t> segment(24, 0);
  StoreBe16(&segment[0], 40000);
  StoreBe16(&segment[2], 80);
  segment[tcp::kDataOffsetOffset] = 0x60;  // 24 bytes: one option word
  segment[tcp::kFlagsOffset] = tcp::kSyn | tcp::kAck;
  std::optional<TcpView> tcp = TcpView::Parse(absl::MakeSpan(segment));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->source_port(), 40000);
  EXPECT_EQ(tcp->destination_port(), 80);
  EXPECT_EQ(tcp->header_length(), 24u);
  EXPECT_EQ(tcp->flags(), tcp::kSyn | tcp::kAck);
  segment[tcp::kDataOffsetOffset] = 0x40;  // 16 < 20
  EXPECT_FALSE(TcpView::Parse(absl::MakeSpan(segment)));
  segment[tcp::kDataOffsetOffset] = 0x70;  // 28 > 24
  EXPECT_FALSE(TcpView::Parse(absl::MakeSpan(segment)));
  EXPECT_FALSE(TcpView::Parse(absl::MakeSpan(segment.data(), 19)));
}

TEST(Ipv4View, UdpLengthIsChecked) {
  std::vector<uint8_t> datagram(12, 0);
  StoreBe16(&datagram[udp::kLengthOffset], 12);
  ASSERT_TRUE(UdpView::Parse(absl::MakeSpan(datagram)));
  EXPECT_EQ(UdpView::Parse(absl::MakeSpan(datagram))->bytes().size(), 12u);
  StoreBe16(&datagram[udp::kLengthOffset], 7);
  EXPECT_FALSE(UdpView::Parse(absl::MakeSpan(datagram)));
  StoreBe16(&datagram[udp::kLengthOffset], 13);
  EXPECT_FALSE(UdpView::Parse(absl::MakeSpan(datagram)));
  StoreBe16(&datagram[udp::kLengthOffset], 8);
  EXPECT_EQ(UdpView::Parse(absl::MakeSpan(datagram))->bytes().size(), 8u) << "bytes after the length are not UDP's";
  EXPECT_FALSE(UdpView::Parse(absl::MakeSpan(datagram.data(), 7)));
}

TEST(Ipv4View, IcmpFieldsAndChecksum) {
  std::vector<uint8_t> message = {icmp::kEchoRequest, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, 'p', 'i', 'n', 'g'};
  std::optional<IcmpView> icmp = IcmpView::Parse(absl::MakeSpan(message));
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->identifier(), 0x1234);
  EXPECT_EQ(icmp->sequence(), 7);
  EXPECT_EQ(icmp->body().size(), 4u);
  icmp->FillChecksum();
  EXPECT_TRUE(icmp->ChecksumValid());
  EXPECT_FALSE(IcmpView::Parse(absl::MakeSpan(message.data(), 7)));
  EXPECT_TRUE(icmp::IsQueryRequest(icmp::kEchoRequest));
  EXPECT_TRUE(icmp::IsQueryReply(icmp::kTimestampReply));
  EXPECT_TRUE(icmp::IsTranslatedError(icmp::kTimeExceeded));
  EXPECT_FALSE(icmp::IsTranslatedError(icmp::kRedirect));
}

TEST(Ipv4View, QuotedTransportKnowsWhatItHolds) {
  std::vector<uint8_t> tcp8 = {0x9c, 0x40, 0x00, 0x50, 1, 2, 3, 4};
  std::optional<QuotedTransport> t = QuotedTransport::Parse(absl::MakeSpan(tcp8), ipv4::kProtocolTcp);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->source_port(), 40000);
  EXPECT_EQ(t->destination_port(), 80);
  EXPECT_FALSE(t->checksum_offset()) << "8 bytes of TCP do not reach the checksum";
  std::optional<QuotedTransport> u = QuotedTransport::Parse(absl::MakeSpan(tcp8), ipv4::kProtocolUdp);
  EXPECT_EQ(u->checksum_offset(), std::optional<size_t>(6));
  std::vector<uint8_t> echo = {8, 0, 0xab, 0xcd, 0x00, 0x2a, 0, 1};
  std::optional<QuotedTransport> e = QuotedTransport::Parse(absl::MakeSpan(echo), ipv4::kProtocolIcmp);
  EXPECT_EQ(e->source_port(), 42) << "an ICMP query's identifier";
  EXPECT_EQ(e->destination_port(), 0);
  EXPECT_FALSE(QuotedTransport::Parse(absl::MakeSpan(tcp8.data(), 7), ipv4::kProtocolTcp));
  EXPECT_FALSE(QuotedTransport::Parse(absl::MakeSpan(tcp8), 47)) << "GRE is not translated";
}

TEST(Ipv4View, ReprEmitsAValidHeader) {
  Ipv4Repr repr;
  repr.source = 0x0a4d010a;
  repr.destination = 0xc633640a;
  repr.protocol = ipv4::kProtocolTcp;
  repr.ttl = 3;
  repr.flags_fragment = ipv4::kFlagDontFragment;
  repr.payload_length = 20;
  std::vector<uint8_t> out(repr.buffer_len());
  ASSERT_TRUE(repr.Emit(absl::MakeSpan(out)));
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(out));
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->ChecksumValid());
  EXPECT_EQ(ip->total_length(), 40);
  EXPECT_EQ(ip->ttl(), 3);
  EXPECT_TRUE(ip->dont_fragment());
  std::vector<uint8_t> tiny(19);
  EXPECT_FALSE(repr.Emit(absl::MakeSpan(tiny)));
  repr.payload_length = 0xffff;
  EXPECT_FALSE(repr.Emit(absl::MakeSpan(out))) << "total length over 65535";
}

TEST(Ipv4View, IcmpErrorQuotesAtMost576Bytes) {
  std::vector<uint8_t> big(1500, 0);
  Ipv4Repr repr;
  repr.source = 0x0a4d010a;
  repr.destination = 0xc633640a;
  repr.protocol = ipv4::kProtocolUdp;
  repr.payload_length = 1480;
  repr.Emit(absl::MakeSpan(big));
  StoreBe16(&big[20 + udp::kLengthOffset], 1480);
  std::vector<uint8_t> error =
      BuildIcmpError(0x0a4d0001, icmp::kDestinationUnreachable, icmp::kCodeFragmentationNeeded, 1400, big);
  ASSERT_EQ(error.size(), 576u);
  std::optional<Ipv4View> ip = Ipv4View::Parse(absl::MakeSpan(error));
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->destination(), 0x0a4d010au);
  EXPECT_EQ(ip->source(), 0x0a4d0001u);
  EXPECT_TRUE(ip->ChecksumValid());
  EXPECT_TRUE(TransportChecksumValid(*ip));
  EXPECT_EQ(LoadBe32(&error[20 + icmp::kRestOfHeaderOffset]), 1400u) << "next-hop MTU";
  EXPECT_EQ(std::vector<uint8_t>(error.begin() + 28, error.begin() + 48), std::vector<uint8_t>(big.begin(), big.begin() + 20));

  std::vector<uint8_t> small = UdpFixture();
  EXPECT_EQ(BuildIcmpError(1, icmp::kTimeExceeded, 0, 0, small).size(), 28u + small.size());
}

TEST(Ipv4View, NoIcmpErrorAboutErrorsOrLaterFragments) {
  std::vector<uint8_t> p = UdpFixture();
  std::vector<uint8_t> error = BuildIcmpError(1, icmp::kTimeExceeded, 0, 0, p);
  ASSERT_FALSE(error.empty());
  EXPECT_TRUE(BuildIcmpError(1, icmp::kTimeExceeded, 0, 0, error).empty()) << "RFC 1812 §4.3.2.7";
  StoreBe16(&p[6], 10);
  std::optional<Ipv4View>(Ipv4View::Parse(absl::MakeSpan(p)))->FillChecksum();
  EXPECT_TRUE(BuildIcmpError(1, icmp::kTimeExceeded, 0, 0, p).empty());
  EXPECT_TRUE(BuildIcmpError(1, icmp::kTimeExceeded, 0, 0, absl::MakeSpan(p.data(), 10)).empty());
}

}  // namespace
}  // namespace dpm::wire

namespace dpm::wire {
namespace {

TEST(FormatIpv4, WritesDottedQuadFromHostOrder) {
  EXPECT_EQ(FormatIpv4(0xc633640a), "198.51.100.10");
  EXPECT_EQ(FormatIpv4(0), "0.0.0.0");
  EXPECT_EQ(FormatIpv4(0xffffffff), "255.255.255.255");
}

}  // namespace
}  // namespace dpm::wire
