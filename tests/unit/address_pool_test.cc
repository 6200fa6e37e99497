// src/stack/address_pool: the static pool of per-socket addresses (docs/design.md §7):
// ranges, O(1) allocation and release in FIFO order, exhaustion, bad configuration.
#include "stack/address_pool.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace dpm::stack {
namespace {

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }

TEST(ParseAddressRange, SingleDashAndPrefix) {
  auto one = ParseAddressRange("10.77.9.10");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->first, Ip(10, 77, 9, 10));
  EXPECT_EQ(one->last, Ip(10, 77, 9, 10));
  auto dash = ParseAddressRange("10.77.9.10-10.77.9.20");
  ASSERT_TRUE(dash.ok());
  EXPECT_EQ(dash->last - dash->first, 10u);
  auto net = ParseAddressRange("10.77.9.0/24");  // .1 to .254: not the network nor broadcast
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->first, Ip(10, 77, 9, 1));
  EXPECT_EQ(net->last, Ip(10, 77, 9, 254));
  auto host = ParseAddressRange("10.77.9.7/32");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->first, host->last);
  auto pair = ParseAddressRange("10.77.9.6/31");  // RFC 3021: both usable
  ASSERT_TRUE(pair.ok());
  EXPECT_EQ(pair->first, Ip(10, 77, 9, 6));
  EXPECT_EQ(pair->last, Ip(10, 77, 9, 7));
  for (const char* bad : {"", "10.77.9", "10.77.9.20-10.77.9.10", "10.77.9.0/33", "10.77.9.0/", "10.77.9.0/x",
                          "10.77.9.1-", "x-10.77.9.1", "300.1.1.1"}) {
    EXPECT_FALSE(ParseAddressRange(bad).ok()) << bad;
  }
}

TEST(AddressPool, HandsOutEveryAddressOnceThenRefuses) {
  auto pool = AddressPool::Create({{Ip(10, 77, 9, 10), Ip(10, 77, 9, 14)}, {Ip(10, 77, 10, 1), Ip(10, 77, 10, 2)}});
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(pool->size(), 7u);
  std::set<uint32_t> seen;
  for (int i = 0; i < 7; ++i) {
    std::optional<uint32_t> a = pool->Allocate();
    ASSERT_TRUE(a);
    EXPECT_TRUE(pool->Contains(*a));
    EXPECT_TRUE(pool->IsAllocated(*a));
    EXPECT_TRUE(seen.insert(*a).second) << "handed out twice";
  }
  EXPECT_EQ(pool->available(), 0u);
  EXPECT_FALSE(pool->Allocate()) << "exhausted: no address, never a shared one";
  EXPECT_TRUE(pool->Release(Ip(10, 77, 10, 1)));
  EXPECT_EQ(pool->Allocate(), Ip(10, 77, 10, 1));
}

TEST(AddressPool, ReleaseIsFifoAndChecked) {
  auto pool = AddressPool::Create({{Ip(10, 0, 0, 1), Ip(10, 0, 0, 4)}});
  ASSERT_TRUE(pool.ok());
  std::vector<uint32_t> taken;
  for (int i = 0; i < 3; ++i) taken.push_back(*pool->Allocate());  // .1 .2 .3; .4 still free
  EXPECT_TRUE(pool->Release(taken[1]));
  EXPECT_TRUE(pool->Release(taken[0]));
  EXPECT_FALSE(pool->Release(taken[0])) << "released twice";
  EXPECT_FALSE(pool->Release(Ip(10, 0, 0, 9))) << "not a pool address";
  EXPECT_FALSE(pool->IsAllocated(taken[0]));
  // The one free longest comes first: .4 (never used), then .2, then .1.
  EXPECT_EQ(pool->Allocate(), Ip(10, 0, 0, 4));
  EXPECT_EQ(pool->Allocate(), taken[1]);
  EXPECT_EQ(pool->Allocate(), taken[0]);
  EXPECT_FALSE(pool->Allocate());
}

TEST(AddressPool, ChurnAtScaleKeepsCountsExact) {
  auto pool = AddressPool::Create({{Ip(10, 80, 0, 1), Ip(10, 80, 39, 16)}});  // 10,000 addresses
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(pool->size(), 10000u);
  std::vector<uint32_t> held;
  for (int i = 0; i < 10000; ++i) held.push_back(*pool->Allocate());
  EXPECT_FALSE(pool->Allocate());
  for (int round = 0; round < 5; ++round) {
    for (size_t i = round; i < held.size(); i += 7) ASSERT_TRUE(pool->Release(held[i]));
    for (size_t i = round; i < held.size(); i += 7) held[i] = *pool->Allocate();
    EXPECT_EQ(pool->available(), 0u);
  }
  EXPECT_EQ(std::set<uint32_t>(held.begin(), held.end()).size(), 10000u);
}

TEST(AddressPool, RefusesBadRanges) {
  EXPECT_FALSE(AddressPool::Create({}).ok());
  EXPECT_FALSE(AddressPool::Create({{Ip(10, 0, 0, 5), Ip(10, 0, 0, 1)}}).ok()) << "reversed";
  EXPECT_FALSE(AddressPool::Create({{Ip(10, 0, 0, 1), Ip(10, 0, 0, 9)}, {Ip(10, 0, 0, 9), Ip(10, 0, 0, 12)}}).ok())
      << "overlap";
  EXPECT_FALSE(AddressPool::Create({{0, 5}}).ok()) << "0.0.0.0";
  EXPECT_FALSE(AddressPool::Create({{Ip(224, 0, 0, 1), Ip(224, 0, 0, 2)}}).ok()) << "multicast";
  EXPECT_FALSE(AddressPool::Create({{Ip(10, 0, 0, 0), Ip(10, 255, 255, 255)}}).ok()) << "too many";
}

}  // namespace
}  // namespace dpm::stack
