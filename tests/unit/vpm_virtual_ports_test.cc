// src/vpm/virtual_ports: virtual streams (same AID joins, another AID gets its own hidden
// port), the hidden range, and the FIFO bind queue with its deadline, on a manual clock.
#include "vpm/virtual_ports.h"

#include "gtest/gtest.h"

namespace dpm::vpm {
namespace {

const PortKey kWeb{Protocol::kTcp, 80};
const PortKey kSip{Protocol::kUdp, 5060};
using Status = VirtualPortTable::BindStatus;

VirtualPortTable Small(uint16_t ports = 2) {
  VirtualPortTable::Config c;
  c.hidden_min = 40000;
  c.hidden_max = static_cast<uint16_t>(40000 + ports - 1);
  c.queue_timeout_ms = 5000;
  c.max_waiters = 3;
  return VirtualPortTable(c);
}

TEST(VpmVirtualPorts, SameAidJoinsAnotherAidGetsItsOwnHiddenPort) {
  VirtualPortTable t = Small();
  auto a = t.Bind(0, kWeb, "green", 1);
  auto b = t.Bind(0, kWeb, "green", 2);
  auto c = t.Bind(0, kWeb, "blue", 3);
  EXPECT_EQ(a.status, Status::kNew);
  EXPECT_EQ(b.status, Status::kJoined);
  EXPECT_EQ(b.hidden_port, a.hidden_port);
  EXPECT_EQ(c.status, Status::kNew);
  EXPECT_NE(c.hidden_port, a.hidden_port);
  EXPECT_EQ(t.Find(kWeb, "green")->members, 2u);
  EXPECT_EQ(t.FindByHidden(Protocol::kTcp, c.hidden_port)->aid, "blue");
  EXPECT_EQ(t.FindByHidden(Protocol::kUdp, c.hidden_port), nullptr);  // per protocol
  EXPECT_TRUE(t.InUse(kWeb));
  EXPECT_FALSE(t.InUse(kSip));
  // UDP has its own range: the same hidden numbers are free there.
  EXPECT_EQ(t.Bind(0, kSip, "green", 4).hidden_port, 40000);
  EXPECT_EQ(t.hidden_in_use(Protocol::kTcp), 2u);
  EXPECT_EQ(t.hidden_in_use(Protocol::kUdp), 1u);
}

TEST(VpmVirtualPorts, TheLastMemberFreesTheHiddenPort) {
  VirtualPortTable t = Small();
  const uint16_t h = t.Bind(0, kWeb, "green", 1).hidden_port;
  t.Bind(0, kWeb, "green", 2);
  EXPECT_TRUE(t.Release(kWeb, "green"));
  EXPECT_NE(t.FindByHidden(Protocol::kTcp, h), nullptr);
  EXPECT_TRUE(t.Release(kWeb, "green"));
  EXPECT_EQ(t.FindByHidden(Protocol::kTcp, h), nullptr);
  EXPECT_FALSE(t.InUse(kWeb));
  EXPECT_FALSE(t.Release(kWeb, "green"));
}

TEST(VpmVirtualPorts, AFullRangeQueuesInOrderAndAFreedPortGoesToTheFirstWaiter) {
  VirtualPortTable t = Small(2);
  t.Bind(0, kWeb, "a", 1);
  const uint16_t hb = t.Bind(0, kWeb, "b", 2).hidden_port;
  EXPECT_EQ(t.Bind(100, kWeb, "c", 3).status, Status::kQueued);
  EXPECT_EQ(t.Bind(200, kWeb, "d", 4).status, Status::kQueued);
  EXPECT_EQ(t.Bind(300, kWeb, "c", 5).status, Status::kQueued);  // c's stream does not exist yet
  EXPECT_EQ(t.Bind(300, kWeb, "e", 6).status, Status::kQueueFull);
  EXPECT_EQ(t.waiting(), 3u);
  EXPECT_EQ(t.NextDeadline(), 5100u);
  EXPECT_TRUE(t.TakeGranted().empty());
  t.Release(kWeb, "b");
  std::vector<VirtualPortTable::Grant> g = t.TakeGranted();
  // c (the first waiter) takes b's port; the second c joins it; d still waits.
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].waiter, 3u);
  EXPECT_EQ(g[0].hidden_port, hb);
  EXPECT_FALSE(g[0].joined);
  EXPECT_EQ(g[1].waiter, 5u);
  EXPECT_TRUE(g[1].joined);
  EXPECT_EQ(t.Find(kWeb, "c")->members, 2u);
  EXPECT_EQ(t.waiting(), 1u);
  EXPECT_EQ(t.queued_total(), 3u);
}

TEST(VpmVirtualPorts, AQueuedBindFailsAtItsDeadline) {
  VirtualPortTable t = Small(1);
  t.Bind(0, kWeb, "a", 1);
  t.Bind(1000, kWeb, "b", 2);
  t.Bind(2000, kWeb, "c", 3);
  EXPECT_TRUE(t.TakeExpired(5999).empty());
  EXPECT_EQ(t.TakeExpired(6000), std::vector<uint64_t>{2});
  EXPECT_EQ(t.NextDeadline(), 7000u);
  EXPECT_EQ(t.TakeExpired(9000), std::vector<uint64_t>{3});
  EXPECT_FALSE(t.NextDeadline());
  EXPECT_EQ(t.timeouts_total(), 2u);
  EXPECT_EQ(t.queue_by_aid().at("b").queued, 1u);
  EXPECT_EQ(t.queue_by_aid().at("c").timeouts, 1u);
  EXPECT_FALSE(t.queue_by_aid().contains("a")) << "a never waited";
  // A port freed after the deadline goes to nobody.
  t.Release(kWeb, "a");
  EXPECT_TRUE(t.TakeGranted().empty());
}

TEST(VpmVirtualPorts, ACancelledWaiterIsSkipped) {
  VirtualPortTable t = Small(1);
  t.Bind(0, kWeb, "a", 1);
  t.Bind(0, kWeb, "b", 2);
  t.Bind(0, kWeb, "c", 3);
  EXPECT_TRUE(t.Cancel(2));
  EXPECT_FALSE(t.Cancel(2));
  t.Release(kWeb, "a");
  std::vector<VirtualPortTable::Grant> g = t.TakeGranted();
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].waiter, 3u);
  EXPECT_EQ(g[0].aid, "c");
}

TEST(VpmVirtualPorts, JoiningNeedsNoFreePort) {
  VirtualPortTable t = Small(1);
  t.Bind(0, kWeb, "a", 1);
  EXPECT_EQ(t.Bind(0, kWeb, "a", 2).status, Status::kJoined);
  EXPECT_EQ(t.List().size(), 1u);
}

}  // namespace
}  // namespace dpm::vpm
