// RFC 6528 §3 initial sequence numbers: ISN = M + F(localip, localport, remoteip, remoteport,
// secretkey), M a 4-microsecond timer.
#include "stack/isn.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>

#include "gtest/gtest.h"

namespace dpm::stack {
namespace {

std::array<uint8_t, 32> Key(uint8_t seed) {
  std::array<uint8_t, 32> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(seed + 7 * i);
  return key;
}

constexpr uint8_t kLocal[4] = {10, 77, 1, 2};
constexpr uint8_t kRemote[4] = {198, 51, 100, 10};
constexpr uint64_t kNow = 1'000'000'000'004;  // a multiple of 4 microseconds

TEST(IsnGenerator, SameKeyTupleAndTimeGiveTheSameIsn) {
  IsnGenerator a(Key(1)), b(Key(1));
  EXPECT_EQ(a.Generate(kLocal, kRemote, 4, 80, 40000, kNow), a.Generate(kLocal, kRemote, 4, 80, 40000, kNow));
  EXPECT_EQ(a.Generate(kLocal, kRemote, 4, 80, 40000, kNow), b.Generate(kLocal, kRemote, 4, 80, 40000, kNow));
}

TEST(IsnGenerator, EachTupleFieldChangesTheIsn) {
  IsnGenerator g(Key(1));
  const uint32_t base = g.Generate(kLocal, kRemote, 4, 80, 40000, kNow);
  const uint8_t other_local[4] = {10, 77, 1, 3};
  const uint8_t other_remote[4] = {198, 51, 100, 11};
  EXPECT_NE(g.Generate(other_local, kRemote, 4, 80, 40000, kNow), base) << "local address";
  EXPECT_NE(g.Generate(kLocal, other_remote, 4, 80, 40000, kNow), base) << "remote address";
  EXPECT_NE(g.Generate(kLocal, kRemote, 4, 81, 40000, kNow), base) << "local port";
  EXPECT_NE(g.Generate(kLocal, kRemote, 4, 80, 40001, kNow), base) << "remote port";
  // The tuple is ordered: the reverse direction is a different connection.
  EXPECT_NE(g.Generate(kRemote, kLocal, 4, 40000, 80, kNow), base) << "reversed tuple";
}

TEST(IsnGenerator, DifferentKeysGiveDifferentIsns) {
  IsnGenerator a(Key(1)), b(Key(2));
  std::array<uint8_t, 32> one_bit = Key(1);
  one_bit[31] ^= 1;
  IsnGenerator c(one_bit);
  const uint32_t isn_a = a.Generate(kLocal, kRemote, 4, 80, 40000, kNow);
  EXPECT_NE(b.Generate(kLocal, kRemote, 4, 80, 40000, kNow), isn_a);
  EXPECT_NE(c.Generate(kLocal, kRemote, 4, 80, 40000, kNow), isn_a);
}

TEST(IsnGenerator, AdvancesByExactlyOnePerFourMicroseconds) {
  IsnGenerator g(Key(3));
  const uint32_t base = g.Generate(kLocal, kRemote, 4, 443, 50000, kNow);
  for (uint64_t dt = 1; dt < 4; ++dt) {
    EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + dt), base) << dt << " us";
  }
  EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + 4), base + 1);
  EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + 7), base + 1);
  EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + 8), base + 2);
  EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + 4'000'000), base + 1'000'000);
  // The 32-bit sequence space wraps (RFC 9293 §3.4): 2^32 ticks later it is back where it was.
  EXPECT_EQ(g.Generate(kLocal, kRemote, 4, 443, 50000, kNow + (uint64_t{4} << 32)), base);
}

TEST(IsnGenerator, DistinctPortsGiveDistinctIsns) {
  IsnGenerator g(Key(4));
  std::set<uint32_t> seen;
  for (uint16_t port = 32768; port < 32768 + 2000; ++port) {
    seen.insert(g.Generate(kLocal, kRemote, 4, 80, port, kNow));
  }
  EXPECT_EQ(seen.size(), 2000u);
  // Neighbouring ports are not neighbouring ISNs (F is a keyed hash, not a counter).
  const uint32_t a = g.Generate(kLocal, kRemote, 4, 80, 40000, kNow);
  const uint32_t b = g.Generate(kLocal, kRemote, 4, 80, 40001, kNow);
  const uint32_t distance = std::min(a - b, b - a);
  EXPECT_GT(distance, 1u << 16);
}

TEST(IsnGenerator, AcceptsIpv6Addresses) {
  IsnGenerator g(Key(5));
  uint8_t local[16] = {0x20, 0x01, 0x0d, 0xb8};
  uint8_t remote[16] = {0x20, 0x01, 0x0d, 0xb8};
  local[15] = 1;
  remote[15] = 2;
  const uint32_t isn = g.Generate(local, remote, 16, 80, 40000, kNow);
  EXPECT_EQ(g.Generate(local, remote, 16, 80, 40000, kNow), isn);
  remote[8] = 1;  // beyond the first four bytes: all 16 count
  EXPECT_NE(g.Generate(local, remote, 16, 80, 40000, kNow), isn);
}

TEST(IsnGenerator, RandomKeysDiffer) {
  EXPECT_NE(IsnGenerator::RandomKey(), IsnGenerator::RandomKey());
}

}  // namespace
}  // namespace dpm::stack
