// src/vpm/negotiation: cooperative VPM. A client side and a server side, each with its own
// table and packet path, negotiate a hidden port with a manual clock; then a connection's
// packets go through both packet paths: the client's program addresses the virtual port, the
// wire carries the hidden port, the server's lwIP gets the hidden port untouched.
#include "vpm/negotiation.h"

#include <cerrno>
#include <vector>

#include "dpm/pcp.h"
#include "gtest/gtest.h"
#include "vpm_test_packets.h"

namespace dpm::vpm {
namespace {

const uint32_t kClient = Ip(10, 77, 9, 1);
const uint32_t kServer = Ip(10, 77, 9, 2);
const uint32_t kStranger = Ip(10, 88, 0, 1);
const PortKey kApp{Protocol::kTcp, 9000};
constexpr uint16_t kClientPort = 50123;
const std::array<uint8_t, 12> kNonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

VirtualPortTable::Config Table() {
  VirtualPortTable::Config c;
  c.hidden_min = 12760;
  c.hidden_max = 12769;
  return c;
}

class VpmNegotiationTest : public ::testing::Test {
 protected:
  VpmNegotiationTest()
      : server_ports_(Table()),
        client_ports_(Table()),
        server_mux_(MultiplexerConfig{}, server_ports_),
        client_mux_(MultiplexerConfig{}, client_ports_),
        client_(3000) {
    ConfiguratorConfig s;
    s.ports = {PortPolicy{kApp, std::nullopt}};
    s.cooperative.present = true;
    s.cooperative.accept = {SourcePattern{Ip(10, 77, 9, 0), 24, 0, 65535}};
    server_rules_ = Dispatcher(s);
    server_mux_.SetDispatcher(&server_rules_);
    green_ = server_ports_.Bind(0, kApp, "green", 1).hidden_port;
    blue_ = server_ports_.Bind(0, kApp, "blue", 2).hidden_port;
  }
  // The client's request through the server; the server's answer.
  std::vector<uint8_t> Ask(uint64_t now, absl::string_view aid, uint32_t from = kClient, uint16_t port = kClientPort) {
    const NegotiationClient::Send send = client_.Start(now, ++next_id_, kApp, aid, from, port, kServer, kNonce);
    EXPECT_EQ(send.peer_address, kServer);
    return AnswerNegotiation(now, 7, send.bytes, from, kServer, server_rules_, server_ports_, server_mux_,
                             &counters_);
  }
  uint8_t ResultOf(const std::vector<uint8_t>& answer) {
    absl::StatusOr<pcp::Response> r = pcp::ParseResponse(answer);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? static_cast<uint8_t>(r->result) : 255;
  }

  VirtualPortTable server_ports_, client_ports_;
  Dispatcher server_rules_;
  Multiplexer server_mux_, client_mux_;
  NegotiationClient client_;
  NegotiationServerCounters counters_;
  uint16_t green_ = 0, blue_ = 0;
  uint64_t next_id_ = 0;
};

TEST_F(VpmNegotiationTest, TheRequestIsAPcpMessageWithThePrivateUseOpcode) {
  const NegotiationClient::Send send = client_.Start(0, 1, kApp, "green", kClient, kClientPort, kServer, kNonce);
  ASSERT_EQ(send.bytes.size(), pcp::kCommonHeaderSize + pcp::kVpmBodySize);
  EXPECT_EQ(send.bytes[0], 2);   // PCP version 2
  EXPECT_EQ(send.bytes[1], 96);  // R = 0, opcode 96: the first of the private-use range
  pcp::ParsedRequest q = pcp::ParseRequest(send.bytes, pcp::Server::kVpm);
  ASSERT_TRUE(q.ok()) << q.error.message;
  EXPECT_EQ(q.request->client_address.ipv4(), kClient);
  EXPECT_EQ(q.request->vpm->protocol, 6);
  EXPECT_EQ(q.request->vpm->virtual_port, 9000);
  EXPECT_EQ(q.request->vpm->client_port, kClientPort);
  EXPECT_EQ(q.request->vpm->hidden_port, 0);
  EXPECT_EQ(q.request->vpm->aid, "green");
  EXPECT_EQ(q.request->vpm->nonce, kNonce);
  // The gateway's DPM server does not serve it, nor the VPM MAP.
  EXPECT_EQ(pcp::ParseRequest(send.bytes).error.result, pcp::ResultCode::kUnsuppOpcode);
  pcp::Request map;
  map.opcode = pcp::Opcode::kMap;
  map.map.emplace();
  EXPECT_EQ(pcp::ParseRequest(pcp::EncodeRequest(map), pcp::Server::kVpm).error.result,
            pcp::ResultCode::kUnsuppOpcode);
}

TEST_F(VpmNegotiationTest, TheServerAnswersTheAidsHiddenPortAndPassesThatConnectionUntouched) {
  const std::vector<uint8_t> answer = Ask(0, "green");
  absl::StatusOr<pcp::Response> r = pcp::ParseResponse(answer);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->result, pcp::ResultCode::kSuccess);
  EXPECT_EQ(r->epoch, 7u);
  EXPECT_EQ(r->lifetime, 10u);  // the client asks for 10 s to open its connection
  ASSERT_TRUE(r->vpm);
  EXPECT_EQ(r->vpm->hidden_port, green_);
  EXPECT_EQ(r->vpm->virtual_port, 9000);
  EXPECT_EQ(server_mux_.flows(), 1u);
  EXPECT_STREQ(server_mux_.List(0)[0].kind, "negotiated");

  // The client side records it and rewrites; the server side lets it through as it is.
  std::optional<NegotiationClient::Outcome> o = client_.OnResponse(answer, kServer);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->error, 0);
  ASSERT_EQ(o->hidden_port, green_);
  ASSERT_TRUE(client_mux_.AddClientFlow(0, Protocol::kTcp, kClient, kClientPort, kServer, 9000, green_, "green").ok());
  auto syn = Packet(ipv4::kProtocolTcp, kClient, kClientPort, kServer, 9000);  // as lwIP builds it
  EXPECT_EQ(client_mux_.Outbound(1, absl::MakeSpan(syn), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(syn), green_) << "the wire carries the hidden port";
  EXPECT_TRUE(ChecksumsValid(syn));
  const auto on_wire = syn;
  EXPECT_EQ(server_mux_.Inbound(1, absl::MakeSpan(syn), false).action, Result::kPass);
  EXPECT_EQ(syn, on_wire) << "the server's lwIP listens on the hidden port: untouched";
  auto synack = Packet(ipv4::kProtocolTcp, kServer, green_, kClient, kClientPort, tcp::kSyn | tcp::kAck);
  const auto from_server = synack;
  EXPECT_EQ(server_mux_.Outbound(2, absl::MakeSpan(synack), false).action, Result::kPass);
  EXPECT_EQ(synack, from_server) << "its answers leave from the hidden port";
  EXPECT_EQ(client_mux_.Inbound(2, absl::MakeSpan(synack), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(synack), 9000) << "the client's program sees the virtual port";
  EXPECT_TRUE(ChecksumsValid(synack));
  EXPECT_EQ(counters_.results[0], 1u);
}

TEST_F(VpmNegotiationTest, AConnectedUdpSocketNegotiatesToo) {
  ConfiguratorConfig s;
  const PortKey dns{Protocol::kUdp, 9053};
  s.ports = {PortPolicy{dns, std::nullopt}};
  s.cooperative.present = true;
  s.cooperative.accept = {SourcePattern{kClient, 32, 0, 65535}};
  const Dispatcher rules(s);
  server_mux_.SetDispatcher(&rules);
  const uint16_t hidden = server_ports_.Bind(0, dns, "green", 3).hidden_port;
  const NegotiationClient::Send send = client_.Start(0, 1, dns, "green", kClient, kClientPort, kServer, kNonce);
  const auto answer =
      AnswerNegotiation(0, 7, send.bytes, kClient, kServer, rules, server_ports_, server_mux_, &counters_);
  std::optional<NegotiationClient::Outcome> o = client_.OnResponse(answer, kServer);
  ASSERT_TRUE(o);
  ASSERT_EQ(o->error, 0);
  ASSERT_EQ(o->hidden_port, hidden);
  ASSERT_TRUE(client_mux_.AddClientFlow(0, Protocol::kUdp, kClient, kClientPort, kServer, 9053, hidden, "green").ok());
  auto query = Packet(ipv4::kProtocolUdp, kClient, kClientPort, kServer, 9053);
  EXPECT_EQ(client_mux_.Outbound(1, absl::MakeSpan(query), false).action, Result::kRewritten);
  EXPECT_EQ(DestinationPort(query), hidden);
  EXPECT_TRUE(ChecksumsValid(query));
  EXPECT_EQ(server_mux_.Inbound(1, absl::MakeSpan(query), false).action, Result::kPass);
  auto reply = Packet(ipv4::kProtocolUdp, kServer, hidden, kClient, kClientPort);
  EXPECT_EQ(server_mux_.Outbound(2, absl::MakeSpan(reply), false).action, Result::kPass);
  EXPECT_EQ(client_mux_.Inbound(2, absl::MakeSpan(reply), false).action, Result::kRewritten);
  EXPECT_EQ(SourcePort(reply), 9053);
  EXPECT_TRUE(ChecksumsValid(reply));
  // Another client port of the same host did not negotiate: ICMP port unreachable.
  auto stray = Packet(ipv4::kProtocolUdp, kClient, kClientPort + 1, kServer, hidden);
  EXPECT_EQ(server_mux_.Inbound(3, absl::MakeSpan(stray), false).action, Result::kRefuse);
  // The association idles out after 2 minutes, as a NAT's UDP mapping does (RFC 4787 REQ-5).
  server_mux_.Sweep(2 + 120 * kSecond, 100);
  EXPECT_EQ(server_mux_.flows(), 0u);
}

TEST_F(VpmNegotiationTest, AHiddenPortWithoutANegotiationIsRefused) {
  ASSERT_EQ(ResultOf(Ask(0, "green")), 0);
  // Another source port of the same client, and another host: neither negotiated.
  auto other_port = Packet(ipv4::kProtocolTcp, kClient, kClientPort + 1, kServer, green_);
  Result r = server_mux_.Inbound(0, absl::MakeSpan(other_port), false);
  EXPECT_EQ(r.action, Result::kRefuse);
  EXPECT_EQ(r.reason, Reason::kHidden);
  auto stranger = Packet(ipv4::kProtocolTcp, kStranger, kClientPort, kServer, blue_);
  EXPECT_EQ(server_mux_.Inbound(0, absl::MakeSpan(stranger), false).action, Result::kRefuse);
  auto rst = Packet(ipv4::kProtocolTcp, kStranger, kClientPort, kServer, blue_, tcp::kRst, 0);
  EXPECT_EQ(server_mux_.Inbound(0, absl::MakeSpan(rst), false).action, Result::kDrop);
  EXPECT_EQ(server_mux_.count(Reason::kHidden), 3u);
}

TEST_F(VpmNegotiationTest, ARetransmittedRequestGetsTheSameAnswerAndOneFlow) {
  const NegotiationClient::Send send = client_.Start(0, 1, kApp, "blue", kClient, kClientPort, kServer, kNonce);
  const auto first = AnswerNegotiation(0, 7, send.bytes, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                       &counters_);
  const auto again = AnswerNegotiation(300, 7, send.bytes, kClient, kServer, server_rules_, server_ports_,
                                       server_mux_, &counters_);
  EXPECT_EQ(first, again);
  EXPECT_EQ(server_mux_.flows(), 1u);
  EXPECT_EQ(pcp::ParseResponse(first)->vpm->hidden_port, blue_);
}

TEST_F(VpmNegotiationTest, AnUnusedNegotiationExpires) {
  ASSERT_EQ(ResultOf(Ask(0, "green")), 0);
  server_mux_.Sweep(9 * kSecond, 100);
  EXPECT_EQ(server_mux_.flows(), 1u);
  server_mux_.Sweep(10 * kSecond, 100);
  EXPECT_EQ(server_mux_.flows(), 0u) << "the 10 s the client asked for passed without a SYN";
}

TEST_F(VpmNegotiationTest, RefusalsNameTheirCauseAndMapToErrno) {
  EXPECT_EQ(ResultOf(Ask(0, "red")), kResultNoListener) << "no socket of AID red on 9000";
  EXPECT_EQ(ResultOf(Ask(0, "green", kStranger)), static_cast<uint8_t>(pcp::ResultCode::kNotAuthorized))
      << "10.88.0.1 is not in accept";
  // The client address in the message is not the packet's source.
  const NegotiationClient::Send send = client_.Start(0, 9, kApp, "green", kClient, kClientPort, kServer, kNonce);
  EXPECT_EQ(ResultOf(AnswerNegotiation(0, 7, send.bytes, Ip(10, 77, 9, 3), kServer, server_rules_, server_ports_,
                                       server_mux_, &counters_)),
            static_cast<uint8_t>(pcp::ResultCode::kAddressMismatch));
  // A virtual port not multiplexed here (TCP 9001, UDP 9000), and SCTP.
  const NegotiationClient::Send other =
      client_.Start(0, 10, PortKey{Protocol::kTcp, 9001}, "green", kClient, kClientPort, kServer, kNonce);
  EXPECT_EQ(ResultOf(AnswerNegotiation(0, 7, other.bytes, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                       &counters_)),
            kResultNoListener);
  const NegotiationClient::Send udp =
      client_.Start(0, 11, PortKey{Protocol::kUdp, 9000}, "green", kClient, kClientPort, kServer, kNonce);
  EXPECT_EQ(ResultOf(AnswerNegotiation(0, 7, udp.bytes, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                       &counters_)),
            kResultNoListener);
  std::vector<uint8_t> sctp = udp.bytes;
  sctp[pcp::kCommonHeaderSize + 12] = 132;
  EXPECT_EQ(ResultOf(AnswerNegotiation(0, 7, sctp, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                       &counters_)),
            static_cast<uint8_t>(pcp::ResultCode::kUnsuppProtocol));
  EXPECT_EQ(server_mux_.flows(), 0u);

  EXPECT_EQ(NegotiationErrno(0), 0);
  EXPECT_EQ(NegotiationErrno(kResultNoListener), ECONNREFUSED);
  EXPECT_EQ(NegotiationErrno(static_cast<uint8_t>(pcp::ResultCode::kNotAuthorized)), EACCES);
  EXPECT_EQ(NegotiationErrno(static_cast<uint8_t>(pcp::ResultCode::kNoResources)), EAGAIN);
  EXPECT_EQ(NegotiationErrno(static_cast<uint8_t>(pcp::ResultCode::kUnsuppOpcode)), EPROTO);
  EXPECT_STREQ(NegotiationResultName(kResultNoListener), "VPM_NO_LISTENER");
}

TEST_F(VpmNegotiationTest, TheClientGetsTheErrnoOfARefusal) {
  const NegotiationClient::Send send = client_.Start(0, 1, kApp, "red", kClient, kClientPort, kServer, kNonce);
  const auto answer = AnswerNegotiation(0, 7, send.bytes, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                        &counters_);
  std::optional<NegotiationClient::Outcome> o = client_.OnResponse(answer, kServer);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->id, 1u);
  EXPECT_EQ(o->error, ECONNREFUSED);
  EXPECT_EQ(o->result, kResultNoListener);
  EXPECT_EQ(client_.in_flight(), 0u);
  // A peer that speaks PCP but no VPM answers UNSUPP_OPCODE: EPROTO.
  const NegotiationClient::Send again = client_.Start(0, 2, kApp, "green", kClient, kClientPort, kServer, kNonce);
  o = client_.OnResponse(pcp::EncodeErrorResponse(again.bytes, pcp::ResultCode::kUnsuppOpcode, 1800, 1), kServer);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->error, EPROTO);
}

TEST_F(VpmNegotiationTest, AnAnswerMustMatchItsRequest) {
  const NegotiationClient::Send send = client_.Start(0, 1, kApp, "green", kClient, kClientPort, kServer, kNonce);
  const auto answer = AnswerNegotiation(0, 7, send.bytes, kClient, kServer, server_rules_, server_ports_, server_mux_,
                                        &counters_);
  EXPECT_FALSE(client_.OnResponse(answer, kStranger)) << "from another host";
  auto wrong_nonce = answer;
  wrong_nonce[pcp::kCommonHeaderSize] ^= 1;
  EXPECT_FALSE(client_.OnResponse(wrong_nonce, kServer));
  EXPECT_FALSE(client_.OnResponse(send.bytes, kServer)) << "a request is no answer";
  EXPECT_EQ(client_.unmatched(), 3u);
  EXPECT_TRUE(client_.OnResponse(answer, kServer));
  EXPECT_FALSE(client_.OnResponse(answer, kServer)) << "answered once";
}

TEST_F(VpmNegotiationTest, TheClientRetransmitsWithDoublingWaitsThenTimesOut) {
  client_.Start(0, 1, kApp, "green", kClient, kClientPort, kServer, kNonce);
  std::vector<NegotiationClient::Send> sends;
  EXPECT_TRUE(client_.Poll(249, &sends).empty());
  EXPECT_TRUE(sends.empty());
  EXPECT_EQ(client_.NextDeadline(), 250u);
  client_.Poll(250, &sends);
  EXPECT_EQ(sends.size(), 1u);
  EXPECT_EQ(client_.NextDeadline(), 750u);  // then 500 ms
  client_.Poll(750, &sends);
  client_.Poll(1750, &sends);  // then 1 s
  EXPECT_EQ(sends.size(), 3u);
  EXPECT_EQ(client_.NextDeadline(), 3000u) << "the timeout comes before the next (3750)";
  std::vector<NegotiationClient::Outcome> ended = client_.Poll(3000, &sends);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].error, ETIMEDOUT);
  EXPECT_EQ(client_.timeouts(), 1u);
  EXPECT_EQ(client_.retransmitted(), 3u);
  EXPECT_FALSE(client_.NextDeadline());
}

TEST_F(VpmNegotiationTest, EveryCutOfARequestIsAnsweredNoLargerOrDropped) {
  const NegotiationClient::Send send = client_.Start(0, 1, kApp, "green", kClient, kClientPort, kServer, kNonce);
  for (size_t n = 0; n < send.bytes.size(); ++n) {
    const std::vector<uint8_t> cut(send.bytes.begin(), send.bytes.begin() + static_cast<ptrdiff_t>(n));
    const auto answer =
        AnswerNegotiation(0, 7, cut, kClient, kServer, server_rules_, server_ports_, server_mux_, &counters_);
    EXPECT_LE(answer.size(), cut.size()) << "cut at " << n;
    if (!answer.empty()) {
      EXPECT_NE(ResultOf(answer), 0) << "cut at " << n;
      EXPECT_FALSE(client_.OnResponse(answer, kServer)) << "an answer without a whole body matches nothing; cut at " << n;
    }
  }
  EXPECT_EQ(server_mux_.flows(), 0u) << "no cut makes a flow";
}

}  // namespace
}  // namespace dpm::vpm
