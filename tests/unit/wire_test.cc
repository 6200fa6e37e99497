// src/wire: the bounds-checked cursor and the first IPv4 checks (RFC 791 §3.1).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "wire/cursor.h"
#include "wire/ip.h"

namespace dpm::wire {
namespace {

// ---- Reader / Writer -----------------------------------------------------------------

TEST(WireReader, ShortReadsFailWithoutAdvancing) {
  const std::vector<uint8_t> bytes = {0x01, 0x02, 0x03};
  Reader r(bytes);
  uint32_t u32 = 0xdeadbeef;
  EXPECT_FALSE(r.ReadBe32(&u32));
  EXPECT_EQ(u32, 0xdeadbeefu) << "output written on a failed read";
  EXPECT_EQ(r.offset(), 0u);
  EXPECT_EQ(r.remaining(), 3u);

  uint64_t u64 = 0;
  EXPECT_FALSE(r.ReadHost(&u64));
  EXPECT_EQ(r.offset(), 0u);

  uint8_t four[4];
  EXPECT_FALSE(r.ReadBytes(four, sizeof(four)));
  EXPECT_EQ(r.offset(), 0u);

  uint16_t u16 = 0;
  ASSERT_TRUE(r.ReadBe16(&u16));
  EXPECT_EQ(u16, 0x0102);
  EXPECT_EQ(r.offset(), 2u);

  // One byte left: a 16-bit read fails and leaves it there for an 8-bit read.
  EXPECT_FALSE(r.ReadBe16(&u16));
  EXPECT_EQ(r.offset(), 2u);
  uint8_t u8 = 0;
  ASSERT_TRUE(r.ReadU8(&u8));
  EXPECT_EQ(u8, 0x03);
  EXPECT_EQ(r.remaining(), 0u);

  EXPECT_FALSE(r.ReadU8(&u8));
  EXPECT_EQ(r.offset(), 3u);
  EXPECT_TRUE(r.ReadBytes(nullptr, 0)) << "a zero-length read always succeeds";
}

TEST(WireReader, ReadsBigEndianAndHostOrderAndTheRest) {
  const std::vector<uint8_t> bytes = {0x12, 0x34, 0x56, 0x78, 0xaa, 0xbb, 0xcc};
  Reader r(bytes);
  uint32_t be = 0;
  ASSERT_TRUE(r.ReadBe32(&be));
  EXPECT_EQ(be, 0x12345678u);
  uint16_t host = 0;
  ASSERT_TRUE(r.ReadHost(&host));
  uint16_t expected;
  std::memcpy(&expected, &bytes[4], 2);
  EXPECT_EQ(host, expected);
  absl::Span<const uint8_t> rest = r.ReadRest();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], 0xcc);
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(r.ReadRest().empty());
}

TEST(WireWriter, WritesBigEndianAndAppends) {
  std::vector<uint8_t> out = {0xff};
  Writer w(&out);
  w.WriteBe16(0x0102);
  w.WriteBe32(0x03040506);
  w.WriteU8(0x07);
  const uint8_t tail[] = {0x08, 0x09};
  w.WriteBytes(tail, sizeof(tail));
  EXPECT_EQ(out, (std::vector<uint8_t>{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9}));

  // What the writer writes, the reader reads back.
  std::vector<uint8_t> buf;
  Writer w2(&buf);
  w2.WriteHost<uint64_t>(0x1122334455667788ull);
  w2.WriteBe32(0xcafef00d);
  Reader r(buf);
  uint64_t h = 0;
  uint32_t b = 0;
  ASSERT_TRUE(r.ReadHost(&h));
  ASSERT_TRUE(r.ReadBe32(&b));
  EXPECT_EQ(h, 0x1122334455667788ull);
  EXPECT_EQ(b, 0xcafef00du);
}

// ---- CheckIpv4 -----------------------------------------------------------------------

// A 28-byte IPv4/ICMP header pair (checksums are not CheckIpv4's business).
std::vector<uint8_t> Ipv4Packet(size_t total = 28) {
  std::vector<uint8_t> p(total, 0);
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(total >> 8);
  p[3] = static_cast<uint8_t>(total);
  p[8] = 64;
  p[9] = 1;
  p[12] = 10, p[13] = 77, p[14] = 1, p[15] = 1;
  p[16] = 10, p[17] = 77, p[18] = 1, p[19] = 2;
  return p;
}

IpCheck Check(const std::vector<uint8_t>& p, size_t* total = nullptr) {
  size_t ignored = 0;
  return CheckIpv4(p, total != nullptr ? total : &ignored);
}

TEST(WireCheckIpv4, AcceptsAValidPacketAndReportsItsTotalLength) {
  size_t total = 0;
  EXPECT_EQ(Check(Ipv4Packet(28), &total), IpCheck::kOk);
  EXPECT_EQ(total, 28u);
  EXPECT_EQ(Check(Ipv4Packet(20), &total), IpCheck::kOk);
  EXPECT_EQ(total, 20u);
}

TEST(WireCheckIpv4, AcceptsEthernetPaddingAfterTheTotalLength) {
  std::vector<uint8_t> p = Ipv4Packet(28);
  p.resize(46, 0);  // padded to the Ethernet minimum payload
  size_t total = 0;
  EXPECT_EQ(Check(p, &total), IpCheck::kOk);
  EXPECT_EQ(total, 28u) << "the caller trims to the total length, not the bytes read";
}

TEST(WireCheckIpv4, AcceptsOptionsWithinTheHeaderLength) {
  std::vector<uint8_t> p = Ipv4Packet(32);
  p[0] = 0x46;  // IHL 6: four bytes of options
  size_t total = 0;
  EXPECT_EQ(Check(p, &total), IpCheck::kOk);
  EXPECT_EQ(total, 32u);
}

TEST(WireCheckIpv4, TooShort) {
  EXPECT_EQ(Check({}), IpCheck::kTooShort);
  std::vector<uint8_t> p = Ipv4Packet(28);
  for (size_t n = 1; n < 20; ++n) {
    EXPECT_EQ(Check(std::vector<uint8_t>(p.begin(), p.begin() + n)), IpCheck::kTooShort) << n;
  }
}

TEST(WireCheckIpv4, BadVersion) {
  for (uint8_t version : {0, 1, 5, 6, 15}) {
    std::vector<uint8_t> p = Ipv4Packet();
    p[0] = static_cast<uint8_t>((version << 4) | 5);
    EXPECT_EQ(Check(p), IpCheck::kBadVersion) << int{version};
  }
  // An IPv6 packet (40-byte header) is not IPv4.
  std::vector<uint8_t> v6(40, 0);
  v6[0] = 0x60;
  EXPECT_EQ(Check(v6), IpCheck::kBadVersion);
}

TEST(WireCheckIpv4, BadHeaderLength) {
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    std::vector<uint8_t> p = Ipv4Packet();
    p[0] = static_cast<uint8_t>(0x40 | ihl);
    EXPECT_EQ(Check(p), IpCheck::kBadHeaderLength) << "IHL " << int{ihl};
  }
  // IHL 15 (60 bytes) in a 28-byte packet: the header runs past the end.
  std::vector<uint8_t> p = Ipv4Packet();
  p[0] = 0x4f;
  EXPECT_EQ(Check(p), IpCheck::kBadHeaderLength);
}

TEST(WireCheckIpv4, BadTotalLength) {
  std::vector<uint8_t> p = Ipv4Packet(28);
  p[3] = 29;  // one byte more than was read
  EXPECT_EQ(Check(p), IpCheck::kBadTotalLength);
  p[2] = 0xff;
  p[3] = 0xff;
  EXPECT_EQ(Check(p), IpCheck::kBadTotalLength);
  p[2] = 0;
  p[3] = 19;  // shorter than the header
  EXPECT_EQ(Check(p), IpCheck::kBadTotalLength);
  p[3] = 0;
  EXPECT_EQ(Check(p), IpCheck::kBadTotalLength);
}

TEST(WireCheckIpv4, EveryReasonHasAName) {
  EXPECT_STREQ(IpCheckName(IpCheck::kOk), "ok");
  EXPECT_STREQ(IpCheckName(IpCheck::kTooShort), "too_short");
  EXPECT_STREQ(IpCheckName(IpCheck::kBadVersion), "not_ipv4");
  EXPECT_STREQ(IpCheckName(IpCheck::kBadHeaderLength), "bad_header_length");
  EXPECT_STREQ(IpCheckName(IpCheck::kBadTotalLength), "bad_total_length");
  EXPECT_STREQ(IpCheckName(IpCheck::kOversize), "oversize");
}

}  // namespace
}  // namespace dpm::wire
