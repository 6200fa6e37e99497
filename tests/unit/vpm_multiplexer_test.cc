// src/vpm/multiplexer: the packet path both ways on packets built here, with a manual clock.
// After every rewrite the packet must carry exactly the checksums a full recomputation gives,
// and the wire must only ever show the virtual port.
#include "vpm/multiplexer.h"

#include <vector>

#include "gtest/gtest.h"
#include "vpm_test_packets.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::vpm {
namespace {

class VpmMultiplexerTest : public ::testing::Test {
 protected:
  VpmMultiplexerTest() : ports_(TableConfig()), mux_(MultiplexerConfig{}, ports_) {
    ConfiguratorConfig c;
    c.ports = {PortPolicy{kWeb, "blue"}, PortPolicy{kDns, std::nullopt}};
    ApplicationRule green;
    green.aid = "green";
    green.ports = {kWeb, kDns};
    green.sources = {SourcePattern{Ip(10, 77, 5, 0), 24, 0, 65535}};
    c.applications = {green};
    dispatcher_ = Dispatcher(c);
    mux_.SetDispatcher(&dispatcher_);
    green_ = ports_.Bind(0, kWeb, "green", 1).hidden_port;
    blue_ = ports_.Bind(0, kWeb, "blue", 2).hidden_port;
    dns_green_ = ports_.Bind(0, kDns, "green", 3).hidden_port;
  }
  static VirtualPortTable::Config TableConfig() {
    VirtualPortTable::Config c;
    c.hidden_min = 40000;
    c.hidden_max = 40009;
    return c;
  }
  VirtualPortTable ports_;
  Multiplexer mux_;
  Dispatcher dispatcher_;
  uint16_t green_ = 0, blue_ = 0, dns_green_ = 0;
};

TEST_F(VpmMultiplexerTest, NewConnectionsGoToTheirRulesAidAndRepliesLeaveFromTheVirtualPort) {
  auto syn = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80);
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(syn), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(syn), green_);
  EXPECT_TRUE(ChecksumsValid(syn));
  auto syn_b = Packet(ipv4::kProtocolTcp, kBob, 33000, kUs, 80);
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(syn_b), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(syn_b), blue_);
  EXPECT_TRUE(ChecksumsValid(syn_b));

  // lwIP answers from the hidden port; the wire sees 80.
  auto synack = Packet(ipv4::kProtocolTcp, kUs, green_, kAlice, 33000, tcp::kSyn | tcp::kAck);
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(synack), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(synack), 80);
  EXPECT_TRUE(ChecksumsValid(synack));
  // A retransmission lwIP built from the header it kept (already 80) passes untouched.
  auto again = synack;
  EXPECT_EQ(mux_.Outbound(1, absl::MakeSpan(again), false).action, Result::kPass);
  EXPECT_EQ(again, synack);
  // Later segments of the connection follow its flow.
  auto data = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80, tcp::kAck, 100);
  EXPECT_EQ(mux_.Inbound(2, absl::MakeSpan(data), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(data), green_);
  EXPECT_TRUE(ChecksumsValid(data));
  EXPECT_EQ(mux_.flows(), 2u);

  auto counters = mux_.aid_counters();
  ASSERT_EQ(counters.size(), 2u);
  for (const auto& [aid, c] : counters) {
    EXPECT_EQ(c.flows, 1u) << aid;
    EXPECT_EQ(c.by_default, aid == "blue" ? 1u : 0u) << aid;
  }
}

TEST_F(VpmMultiplexerTest, PortsOutsideVpmPassUntouched) {
  auto other = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 443);
  auto copy = other;
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(other), false).action, Result::kPass);
  EXPECT_EQ(other, copy);
  auto out = Packet(ipv4::kProtocolTcp, kUs, 50000, kAlice, 443);
  copy = out;
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(out), false).action, Result::kPass);
  EXPECT_EQ(out, copy);
  auto icmp = Packet(ipv4::kProtocolUdp, kAlice, 1, kUs, 80);
  icmp[9] = ipv4::kProtocolIcmp;
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(icmp), false).action, Result::kPass);
}

TEST_F(VpmMultiplexerTest, ASegmentWithoutAFlowIsRefusedWithARstAndARstIsDropped) {
  auto ack = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80, tcp::kAck, 10, 5000, 777);
  const auto original = ack;
  Result r = mux_.Inbound(0, absl::MakeSpan(ack), false);
  EXPECT_EQ(r.action, Result::kRefuse);
  EXPECT_EQ(r.reason, Reason::kNoFlow);
  EXPECT_EQ(ack, original);  // a refused packet is not rewritten
  std::vector<uint8_t> rst = Multiplexer::BuildRefusal(original);
  ASSERT_EQ(rst.size(), 40u);
  EXPECT_TRUE(ChecksumsValid(rst));
  EXPECT_EQ(LoadBe32(rst.data() + 12), kUs);
  EXPECT_EQ(SourcePort(rst), 80);
  EXPECT_EQ(DestinationPort(rst), 33000);
  EXPECT_EQ(rst[20 + tcp::kFlagsOffset], tcp::kRst);
  EXPECT_EQ(LoadBe32(rst.data() + 20 + tcp::kSequenceOffset), 777u);  // SEQ = SEG.ACK

  auto reset = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80, tcp::kRst, 0);
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(reset), false).action, Result::kDrop);
  EXPECT_TRUE(Multiplexer::BuildRefusal(reset).empty());
  EXPECT_EQ(mux_.count(Reason::kNoFlow), 2u);
  EXPECT_EQ(mux_.refused_by_port().at(kWeb), 1u);
}

TEST_F(VpmMultiplexerTest, ARefusingPortAnswersUdpWithPortUnreachable) {
  auto q = Packet(ipv4::kProtocolUdp, kBob, 5353, kUs, 53);  // no rule for bob on udp/53: refuse
  Result r = mux_.Inbound(0, absl::MakeSpan(q), false);
  EXPECT_EQ(r.action, Result::kRefuse);
  EXPECT_EQ(r.reason, Reason::kRefused);
  std::vector<uint8_t> icmp = Multiplexer::BuildRefusal(q);
  ASSERT_GE(icmp.size(), 28u + q.size());
  EXPECT_EQ(icmp[9], ipv4::kProtocolIcmp);
  EXPECT_EQ(icmp[20], wire::icmp::kDestinationUnreachable);
  EXPECT_EQ(icmp[21], wire::icmp::kCodePortUnreachable);
  EXPECT_EQ(LoadBe32(icmp.data() + 12), kUs);
  // A SYN refused the same way gets RST,ACK acknowledging the SYN and its data.
  auto syn = Packet(ipv4::kProtocolTcp, kAlice, 1, kUs, 80, tcp::kSyn, 3, 100);
  std::vector<uint8_t> rst = Multiplexer::BuildRefusal(syn);
  EXPECT_EQ(rst[20 + tcp::kFlagsOffset], tcp::kRst | tcp::kAck);
  EXPECT_EQ(LoadBe32(rst.data() + 20 + tcp::kSequenceOffset), 0u);
  EXPECT_EQ(LoadBe32(rst.data() + 20 + tcp::kAcknowledgmentOffset), 104u);
}

TEST_F(VpmMultiplexerTest, UdpFlowsBothWaysAndAZeroChecksumStaysZero) {
  auto q = Packet(ipv4::kProtocolUdp, kAlice, 5353, kUs, 53);
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(q), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(q), dns_green_);
  EXPECT_TRUE(ChecksumsValid(q));
  auto answer = Packet(ipv4::kProtocolUdp, kUs, dns_green_, kAlice, 5353);
  wire::StoreBe16(answer.data() + 26, 0);  // no checksum sent (RFC 768)
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(answer), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(answer), 53);
  EXPECT_EQ(LoadBe16(answer.data() + 26), 0);
}

TEST_F(VpmMultiplexerTest, APartialChecksumKeepsItsPseudoHeaderSum) {
  auto syn = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80);
  wire::StoreBe16(syn.data() + 20 + tcp::kChecksumOffset, 0x1234);  // a pseudo-header sum
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(syn), true).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(syn), green_);
  EXPECT_EQ(LoadBe16(syn.data() + 20 + tcp::kChecksumOffset), 0x1234);  // ports are not in it
}

TEST_F(VpmMultiplexerTest, AnAidWithoutASocketIsRefused) {
  ports_.Release(kWeb, "green");
  auto syn = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80);
  Result r = mux_.Inbound(0, absl::MakeSpan(syn), false);
  EXPECT_EQ(r.action, Result::kRefuse);
  EXPECT_EQ(r.reason, Reason::kNoListener);
  bool counted = false;
  for (const auto& [aid, c] : mux_.aid_counters()) counted |= aid == "green" && c.refused == 1 && c.flows == 0;
  EXPECT_TRUE(counted) << "the refusal is counted against green, the AID the rules chose";
}

TEST_F(VpmMultiplexerTest, AFlowOutlivesItsStreamUntilItsHiddenPortIsGivenAgain) {
  auto syn = Packet(ipv4::kProtocolTcp, kBob, 33000, kUs, 80);
  mux_.Inbound(0, absl::MakeSpan(syn), false);
  ports_.Release(kWeb, "blue");  // the last socket closed; lwIP still closes the connection
  auto fin = Packet(ipv4::kProtocolTcp, kUs, blue_, kBob, 33000, tcp::kFin | tcp::kAck);
  EXPECT_EQ(mux_.Outbound(1, absl::MakeSpan(fin), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(fin), 80);  // never the hidden port on the wire
  // The hidden port goes to another AID: the old flow is over; the same tuple starts afresh.
  EXPECT_EQ(ports_.Bind(2, kWeb, "red", 8).hidden_port, blue_);
  const uint16_t blue_again = ports_.Bind(2, kWeb, "blue", 9).hidden_port;
  EXPECT_NE(blue_again, blue_);
  auto again = Packet(ipv4::kProtocolTcp, kBob, 33000, kUs, 80);
  EXPECT_EQ(mux_.Inbound(3, absl::MakeSpan(again), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(again), blue_again);
  EXPECT_EQ(mux_.flows(), 1u);
}

TEST_F(VpmMultiplexerTest, AReloadKeepsExistingFlowsAndDispatchesNewOnesByTheNewRules) {
  auto syn = Packet(ipv4::kProtocolTcp, kBob, 33000, kUs, 80);
  mux_.Inbound(0, absl::MakeSpan(syn), false);
  EXPECT_EQ(DestinationPort(syn), blue_);
  ConfiguratorConfig c;
  c.ports = {PortPolicy{kWeb, "green"}};  // everything to green now
  Dispatcher reloaded(c);
  mux_.SetDispatcher(&reloaded);
  auto more = Packet(ipv4::kProtocolTcp, kBob, 33000, kUs, 80, tcp::kAck);
  mux_.Inbound(1, absl::MakeSpan(more), false);
  EXPECT_EQ(DestinationPort(more), blue_);  // the established flow stays
  auto fresh = Packet(ipv4::kProtocolTcp, kBob, 33001, kUs, 80);
  mux_.Inbound(1, absl::MakeSpan(fresh), false);
  EXPECT_EQ(DestinationPort(fresh), green_);
  mux_.SetDispatcher(&dispatcher_);
}

TEST_F(VpmMultiplexerTest, IdleFlowsExpireUdpAfterTwoMinutesTcpByItsState) {
  auto q = Packet(ipv4::kProtocolUdp, kAlice, 5353, kUs, 53);
  mux_.Inbound(0, absl::MakeSpan(q), false);
  auto syn = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80);
  mux_.Inbound(0, absl::MakeSpan(syn), false);
  auto synack = Packet(ipv4::kProtocolTcp, kUs, green_, kAlice, 33000, tcp::kSyn | tcp::kAck);
  mux_.Outbound(0, absl::MakeSpan(synack), false);
  EXPECT_EQ(mux_.flows(), 2u);
  EXPECT_EQ(mux_.NextDeadline(), 120 * kSecond);
  EXPECT_EQ(mux_.Sweep(120 * kSecond - 1, 100), 0u);
  EXPECT_EQ(mux_.Sweep(120 * kSecond, 100), 1u);  // the UDP flow
  EXPECT_EQ(mux_.flows(), 1u);
  EXPECT_EQ(mux_.Sweep(3600 * kSecond, 100), 0u);  // established: 2 h 4 min
  // FIN both ways: the transitory timer (4 min), not refreshed after.
  auto fin_out = Packet(ipv4::kProtocolTcp, kUs, green_, kAlice, 33000, tcp::kFin | tcp::kAck);
  mux_.Outbound(3600 * kSecond, absl::MakeSpan(fin_out), false);
  auto fin_in = Packet(ipv4::kProtocolTcp, kAlice, 33000, kUs, 80, tcp::kFin | tcp::kAck);
  mux_.Inbound(3600 * kSecond, absl::MakeSpan(fin_in), false);
  EXPECT_EQ(mux_.Sweep(3600 * kSecond + 240 * kSecond - 1, 100), 0u);
  EXPECT_EQ(mux_.Sweep(3600 * kSecond + 240 * kSecond, 100), 1u);
  EXPECT_EQ(mux_.flows(), 0u);
  EXPECT_FALSE(mux_.NextDeadline());
}

TEST_F(VpmMultiplexerTest, AUdpSocketWritingFirstGetsAFlowForItsAnswers) {
  auto out = Packet(ipv4::kProtocolUdp, kUs, dns_green_, kBob, 5353);
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(out), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(out), 53);
  EXPECT_TRUE(ChecksumsValid(out));
  // Bob matches no rule and udp/53 refuses new flows, but this answer has its flow.
  auto answer = Packet(ipv4::kProtocolUdp, kBob, 5353, kUs, 53);
  EXPECT_EQ(mux_.Inbound(1, absl::MakeSpan(answer), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(answer), dns_green_);
}

TEST_F(VpmMultiplexerTest, CooperativeClientFlowsShowTheHiddenPortOnTheWireOnly) {
  const uint32_t server = Ip(10, 77, 9, 9);
  ASSERT_TRUE(mux_.AddClientFlow(0, Protocol::kTcp, kUs, 50000, server, 9000, 12760, "green").ok());
  // The same socket negotiating again replaces its flow; a tuple another kind of flow holds
  // is refused.
  ASSERT_TRUE(mux_.AddClientFlow(0, Protocol::kTcp, kUs, 50000, server, 9000, 12760, "green").ok());
  EXPECT_EQ(mux_.flows(), 1u);
  auto from_peer = Packet(ipv4::kProtocolTcp, Ip(10, 77, 9, 8), 1234, kUs, 80);
  ASSERT_EQ(mux_.Inbound(0, absl::MakeSpan(from_peer), false).action, Result::kRewritten);  // blue's server flow
  EXPECT_EQ(mux_.AddClientFlow(0, Protocol::kTcp, kUs, blue_, Ip(10, 77, 9, 8), 1234, 1234, "green").code(),
            absl::StatusCode::kAlreadyExists);
  auto syn = Packet(ipv4::kProtocolTcp, kUs, 50000, server, 9000);
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(syn), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(syn), 12760);
  EXPECT_TRUE(ChecksumsValid(syn));
  auto synack = Packet(ipv4::kProtocolTcp, server, 12760, kUs, 50000, tcp::kSyn | tcp::kAck);
  EXPECT_EQ(mux_.Inbound(0, absl::MakeSpan(synack), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(synack), 9000);
  EXPECT_TRUE(ChecksumsValid(synack));
  // lwIP's retransmission of the SYN (port already 12760) passes.
  auto retransmitted = syn;
  EXPECT_EQ(mux_.Outbound(1, absl::MakeSpan(retransmitted), false).action, Result::kPass);
  EXPECT_EQ(DestinationPort(retransmitted), 12760);
}

// lwIP's outbound head may end before the packet does (its data in further pbufs): the ports
// and checksum are in the head, and only they change.
TEST_F(VpmMultiplexerTest, AnOutboundHeadShorterThanItsPacketIsRewritten) {
  auto whole = Packet(ipv4::kProtocolTcp, kUs, green_, kAlice, 33000, tcp::kAck, 1000);
  std::vector<uint8_t> head(whole.begin(), whole.begin() + 40);  // IP and TCP headers only
  const std::vector<uint8_t> ip_header(head.begin(), head.begin() + 20);
  EXPECT_EQ(mux_.Outbound(0, absl::MakeSpan(head), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(head), 80);
  EXPECT_TRUE(std::equal(ip_header.begin(), ip_header.end(), head.begin()));
  std::copy(head.begin(), head.end(), whole.begin());  // the rest of the packet behind it
  EXPECT_TRUE(ChecksumsValid(whole));
}

TEST_F(VpmMultiplexerTest, TheFlowLimitDropsAndCounts) {
  VirtualPortTable ports(TableConfig());
  ports.Bind(0, kWeb, "blue", 1);
  MultiplexerConfig config;
  config.max_flows = 2;
  Multiplexer mux(config, ports);
  mux.SetDispatcher(&dispatcher_);
  for (uint16_t port = 1; port <= 3; ++port) {
    auto syn = Packet(ipv4::kProtocolTcp, kBob, port, kUs, 80);
    Result r = mux.Inbound(0, absl::MakeSpan(syn), false);
    EXPECT_EQ(r.action, port <= 2 ? Result::kRewritten : Result::kDrop) << port;
  }
  EXPECT_EQ(mux.count(Reason::kFlowLimit), 1u);
}

// Every cut of a valid packet, both ways: never a crash, never a rewrite past the bytes given,
// and a transport header cut between its ports and its checksum, towards a virtual port, is
// dropped as malformed (one cut before its ports cannot be told apart from any other packet).
TEST_F(VpmMultiplexerTest, EveryCutIsHandled) {
  for (uint8_t protocol : {ipv4::kProtocolTcp, ipv4::kProtocolUdp}) {
    const auto whole = Packet(protocol, kAlice, 33000, kUs, protocol == ipv4::kProtocolTcp ? 80 : 53);
    for (size_t cut = 0; cut < whole.size(); ++cut) {
      std::vector<uint8_t> p(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
      if (cut >= 4) wire::StoreBe16(p.data() + 2, static_cast<uint16_t>(cut));  // the IP length says the cut
      Result in = mux_.Inbound(0, absl::MakeSpan(p), false);
      const size_t needed = 20 + (protocol == ipv4::kProtocolTcp ? 18 : 8);
      if (cut >= 24 && cut < needed) {  // the ports are there, the checksum is not
        EXPECT_EQ(in.action, Result::kDrop) << cut;
        EXPECT_EQ(in.reason, Reason::kMalformed) << cut;
      } else if (cut < 24) {
        EXPECT_EQ(in.action, Result::kPass) << cut;
      }
      mux_.Outbound(0, absl::MakeSpan(p), false);
      EXPECT_TRUE(Multiplexer::BuildRefusal(p).size() <= 576);
    }
  }
}

}  // namespace
}  // namespace dpm::vpm
