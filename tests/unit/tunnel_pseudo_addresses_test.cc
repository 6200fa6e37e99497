// The redirector's pseudo addresses (src/tunnel/pseudo_addresses.h): one stable address per
// name, never the range's first or last, and a clean refusal when names or addresses run out.
#include "tunnel/pseudo_addresses.h"

#include <string>

#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

constexpr uint32_t kBase = 0x64400000;  // 100.64.0.0

TEST(TunnelPseudoAddresses, AssignsInOrderFromTheSecondAddress) {
  PseudoAddressTable table(kBase, 10, 100);
  EXPECT_EQ(table.Assign("web.alpha.dpm.internal").value(), kBase + 1);
  EXPECT_EQ(table.Assign("ssh.alpha.dpm.internal").value(), kBase + 2);
  EXPECT_EQ(table.size(), 2u);
}

TEST(TunnelPseudoAddresses, SameNameSameAddress) {
  PseudoAddressTable table(kBase, 10, 100);
  const uint32_t web = table.Assign("web.alpha.dpm.internal").value();
  table.Assign("ssh.alpha.dpm.internal").value();
  EXPECT_EQ(table.Assign("web.alpha.dpm.internal").value(), web);
  EXPECT_EQ(table.Assign("WEB.alpha.dpm.internal.").value(), web);  // the same name in another spelling
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.NameOf(web), "web.alpha.dpm.internal");
  EXPECT_EQ(table.NameOf(kBase + 3), std::nullopt);
  EXPECT_EQ(table.NameOf(kBase), std::nullopt);
}

TEST(TunnelPseudoAddresses, InRange) {
  const PseudoAddressTable table(kBase, 10, 100);
  EXPECT_TRUE(table.InRange(kBase));
  EXPECT_TRUE(table.InRange(0x647fffff));   // 100.127.255.255
  EXPECT_FALSE(table.InRange(0x64800000));  // 100.128.0.0
  EXPECT_FALSE(table.InRange(0x643fffff));
  EXPECT_FALSE(table.InRange(0x0a000001));
}

TEST(TunnelPseudoAddresses, BaseIsTakenToItsPrefix) {
  PseudoAddressTable table(kBase + 77, 24, 10);
  EXPECT_EQ(table.Assign("a").value(), kBase + 1);
  EXPECT_TRUE(table.InRange(kBase + 255));
  EXPECT_FALSE(table.InRange(kBase + 256));
}

TEST(TunnelPseudoAddresses, RangeExhaustionSkipsTheLastAddress) {
  PseudoAddressTable table(kBase, 30, 100);  // 4 addresses: .1 and .2 usable
  EXPECT_EQ(table.Assign("a").value(), kBase + 1);
  EXPECT_EQ(table.Assign("b").value(), kBase + 2);
  const absl::StatusOr<uint32_t> third = table.Assign("c");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(table.Assign("a").value(), kBase + 1);  // names held keep their address
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.NameOf(kBase + 3), std::nullopt);
}

TEST(TunnelPseudoAddresses, MaxNamesExhaustion) {
  PseudoAddressTable table(kBase, 10, 2);
  ASSERT_TRUE(table.Assign("a").ok());
  ASSERT_TRUE(table.Assign("b").ok());
  const absl::StatusOr<uint32_t> third = table.Assign("c");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(table.Assign("b").ok());
}

}  // namespace
}  // namespace dpm::tunnel
