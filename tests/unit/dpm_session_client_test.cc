// The DPM driver's client side for one socket (stack/dpm_session_client.h), sans-I/O: a real
// driver::Driver and server::DpmServer exchange their datagrams in memory, time is a
// ManualClock, and the client's actions (aim, send, answer connect, count) are checked — the
// DPM patent, claims 1-5 and 11, ¶33 for datagram sessions.
#include "stack/dpm_session_client.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "dpm/dpm_driver.h"
#include "dpm/dpm_server.h"
#include "nat/nat_engine.h"
#include "dpm/pcp.h"
#include "stack/clock.h"
#include "test_bytes.h"

namespace dpm::stack {
namespace {

using dpm::testing::Ip;
constexpr uint32_t kGateway = Ip(10, 77, 0, 1);
constexpr uint32_t kClient = Ip(10, 77, 1, 2);
constexpr uint32_t kPool = Ip(203, 0, 113, 1);
const api::Endpoint kPeerA = api::Endpoint::Ipv4(Ip(198, 51, 100, 10), 5000);
const api::Endpoint kPeerB = api::Endpoint::Ipv4(Ip(198, 51, 100, 11), 5000);
constexpr uint16_t kLocalPort = 40000;

nat::NatConfig Config(int quota) {
  nat::NatConfig c;
  c.external_addresses = {kPool};
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = kGateway;
  c.per_host_quota = quota;
  c.seed = 7;
  return c;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// One socket's client, its driver and the gateway's DPM server on one manual clock.
struct Harness {
  explicit Harness(nat::Protocol protocol = nat::Protocol::kUdp, int quota = 4)
      : engine(Config(quota)),
        server(engine, /*start_ms=*/0),
        driver(DriverConfig(), /*nonce_seed=*/1),
        client(protocol, DpmSetupCalls{[this](const DpmSetupRequest& r) {
                                         begun++;
                                         return last_id = driver.Begin(clock.NowMs(), r.protocol, r.internal_port,
                                                             {r.remote.ipv4_host(), r.remote.port_host()},
                                                             r.port_fixed, r.internal_address);
                                       },
                                       [this](uint64_t id) {
                                         released++;
                                         driver.Release(clock.NowMs(), id);
                                       }}) {}

  static driver::DriverConfig DriverConfig() {
    driver::DriverConfig dc;
    dc.server_address = kGateway;
    dc.client_address = kClient;
    dc.lifetime_s = 120;
    return dc;
  }

  // Runs the exchange until quiet; every event goes to the client, its actions are summed.
  DpmClientActions Run() {
    DpmClientActions sum;
    for (int round = 0; round < 10; ++round) {
      std::vector<driver::Outgoing> out;
      std::vector<driver::Event> events;
      driver.Poll(clock.NowMs(), &out, &events);
      for (const driver::Event& e : events) {
        DpmClientActions a;
        client.OnEvent(e, &a);
        if (a.connect) sum.connect = a.connect;
        for (DpmDatagram& d : a.send) sum.send.push_back(std::move(d));
        if (a.connect_result) sum.connect_result = a.connect_result;
        if (a.error != 0) sum.error = a.error;
        sum.dropped += a.dropped;
      }
      if (out.empty()) break;
      for (const driver::Outgoing& o : out) {
        sent++;
        if (drop_requests) continue;
        std::vector<uint8_t> reply = server.Handle(clock.NowMs(), {o.source, 5350}, pcp::kDpmPort, o.payload);
        if (!reply.empty()) driver.OnReply(clock.NowMs(), reply);
      }
    }
    return sum;
  }

  nat::NatEngine engine;
  server::DpmServer server;
  ManualClock clock;
  driver::Driver driver;
  DpmSessionClient client;
  DpmSessionSource source{kLocalPort, false, 0};
  bool drop_requests = false;
  int begun = 0, released = 0, sent = 0;
  uint64_t last_id = 0;  // the session id of the last setup begun
};

TEST(DpmSession, UdpConnectWaitsForTheGrantThenAimsAtTheGatewayEndpointAndAnswers) {
  Harness h;
  DpmClientActions now;
  EXPECT_EQ(h.client.Connect(kPeerA, h.source, &now), -1) << "the answer waits for the grant";
  EXPECT_FALSE(now.connect);
  EXPECT_TRUE(h.client.waiting());
  DpmClientActions later = h.Run();
  ASSERT_TRUE(later.connect);
  EXPECT_EQ(later.connect->ipv4_host(), kGateway) << "claim 5: aimed at the gateway endpoint";
  EXPECT_NE(later.connect->port_host(), 0);
  ASSERT_TRUE(later.connect_result);
  EXPECT_EQ(*later.connect_result, 0);
  EXPECT_FALSE(h.client.waiting());
  ASSERT_NE(h.client.connected_remote(), nullptr);
  EXPECT_EQ(*h.client.connected_remote(), kPeerA) << "claim 11: the true peer stays visible";
  ASSERT_NE(h.client.connected_external(), nullptr);
  EXPECT_EQ(h.client.connected_external()->ipv4_host(), kPool) << "claim 11: the registered address";
  // Connecting again to the granted peer is answered at once.
  DpmClientActions again;
  EXPECT_EQ(h.client.Connect(kPeerA, h.source, &again), 0);
  ASSERT_TRUE(again.connect);
  EXPECT_EQ(*again.connect, *later.connect);
  EXPECT_EQ(h.begun, 1) << "one setup per peer";
}

TEST(DpmSession, TcpConnectIsAimedAtTheGrantButAnsweredByTheHandshakeNotTheGrant) {
  Harness h(nat::Protocol::kTcp);
  DpmClientActions now;
  EXPECT_EQ(h.client.Connect(kPeerA, h.source, &now), -1);
  DpmClientActions later = h.Run();
  ASSERT_TRUE(later.connect);
  EXPECT_EQ(later.connect->ipv4_host(), kGateway);
  EXPECT_FALSE(later.connect_result) << "TCP: connect() is answered when the handshake ends";
  EXPECT_EQ(h.engine.session_count(), 1u);
}

TEST(DpmSession, DatagramsToAPeerAreHeldUntilItsGrantThenSentInOrder) {
  Harness h;
  for (const char* text : {"one", "two", "three"}) {
    DpmClientActions a;
    h.client.Send(kPeerA, Bytes(text), h.source, &a);
    EXPECT_TRUE(a.send.empty()) << "nothing leaves before the grant";
  }
  EXPECT_EQ(h.client.queued(kPeerA), 3u);
  DpmClientActions granted = h.Run();
  ASSERT_EQ(granted.send.size(), 3u);
  EXPECT_EQ(granted.send[0].payload, Bytes("one"));
  EXPECT_EQ(granted.send[1].payload, Bytes("two"));
  EXPECT_EQ(granted.send[2].payload, Bytes("three"));
  for (const DpmDatagram& d : granted.send) EXPECT_EQ(d.to.ipv4_host(), kGateway);
  EXPECT_FALSE(granted.connect) << "an unconnected socket is not aimed";
  EXPECT_FALSE(granted.connect_result);
  EXPECT_EQ(h.client.queued(kPeerA), 0u);
  // Granted: the next datagram goes at once, to the same gateway endpoint.
  DpmClientActions next;
  h.client.Send(kPeerA, Bytes("four"), h.source, &next);
  ASSERT_EQ(next.send.size(), 1u);
  EXPECT_EQ(next.send[0].to, granted.send[0].to);
  // Its replies come from the gateway endpoint and show the true peer (claim 11).
  EXPECT_EQ(h.client.TrueSource(granted.send[0].to), kPeerA);
  const api::Endpoint stranger = api::Endpoint::Ipv4(Ip(10, 77, 0, 9), 53);
  EXPECT_EQ(h.client.TrueSource(stranger), stranger);
}

TEST(DpmSession, TheHeldQueueIsBoundedAndTheRestIsDroppedAndCounted) {
  Harness h;
  uint64_t dropped = 0;
  for (size_t i = 0; i < DpmSessionClient::kMaxQueuedPerPeer + 6; ++i) {
    DpmClientActions a;
    h.client.Send(kPeerA, Bytes(std::to_string(i)), h.source, &a);
    dropped += a.dropped;
  }
  EXPECT_EQ(h.client.queued(kPeerA), DpmSessionClient::kMaxQueuedPerPeer);
  EXPECT_EQ(dropped, 6u);
  DpmClientActions granted = h.Run();
  ASSERT_EQ(granted.send.size(), DpmSessionClient::kMaxQueuedPerPeer);
  EXPECT_EQ(granted.send.front().payload, Bytes("0")) << "the oldest are kept";
  EXPECT_EQ(granted.send.back().payload, Bytes(std::to_string(DpmSessionClient::kMaxQueuedPerPeer - 1)));
}

TEST(DpmSession, PeersBeyondTheLimitAreRefusedWithEnobufs) {
  Harness h;
  for (size_t i = 0; i < DpmSessionClient::kMaxPeers; ++i) {
    DpmClientActions a;
    h.client.Send(api::Endpoint::Ipv4(Ip(198, 51, 100, 10), static_cast<uint16_t>(1000 + i)), Bytes("x"), h.source,
                  &a);
    ASSERT_EQ(a.error, 0);
  }
  DpmClientActions over;
  h.client.Send(api::Endpoint::Ipv4(Ip(198, 51, 100, 10), 60000), Bytes("x"), h.source, &over);
  EXPECT_EQ(over.error, ENOBUFS);
  EXPECT_EQ(over.dropped, 1u);
  DpmClientActions connect;
  EXPECT_EQ(h.client.Connect(api::Endpoint::Ipv4(Ip(198, 51, 100, 12), 1), h.source, &connect), ENOBUFS);
  EXPECT_EQ(h.client.peer_count(), DpmSessionClient::kMaxPeers);
}

// Per-peer grants are independent: peer B's refusal (the host's quota, USER_EX_QUOTA) fails
// the connect waiting for B with EDQUOT and drops B's datagrams, while A keeps its grant.
TEST(DpmSession, ARefusedGrantFailsTheWaitingConnectWithTheMappedErrnoAndSparesOtherPeers) {
  Harness h(nat::Protocol::kUdp, /*quota=*/1);
  DpmClientActions a;
  h.client.Send(kPeerA, Bytes("to a"), h.source, &a);
  h.Run();  // A is granted and uses the quota
  DpmClientActions b;
  EXPECT_EQ(h.client.Connect(kPeerB, h.source, &b), -1);
  DpmClientActions failed = h.Run();
  ASSERT_TRUE(failed.connect_result);
  EXPECT_EQ(*failed.connect_result, EDQUOT) << "USER_EX_QUOTA (RFC 6887 §7.4) is EDQUOT";
  EXPECT_FALSE(failed.connect);
  EXPECT_FALSE(h.client.HasPeer(kPeerB)) << "the next datagram asks again";
  EXPECT_EQ(h.client.connected_remote(), nullptr);
  EXPECT_TRUE(h.client.HasPeer(kPeerA));
  DpmClientActions to_a;
  h.client.Send(kPeerA, Bytes("still"), h.source, &to_a);
  EXPECT_EQ(to_a.send.size(), 1u) << "A's grant is untouched";
  // A datagram for B while its setup runs is dropped when the setup fails, and becomes SO_ERROR.
  DpmClientActions held;
  h.client.Send(kPeerB, Bytes("to b"), h.source, &held);
  DpmClientActions failed_again = h.Run();
  EXPECT_EQ(failed_again.dropped, 1u);
  EXPECT_EQ(failed_again.error, EDQUOT) << "no connect waits: the error is the socket's SO_ERROR";
}

TEST(DpmSession, NoAnswerFailsTheWaitingConnectWithEtimedoutAfterTheDriversRetries) {
  Harness h;
  h.drop_requests = true;
  DpmClientActions a;
  ASSERT_EQ(h.client.Connect(kPeerA, h.source, &a), -1);
  std::optional<int> result;
  for (int step = 0; step < 40 && !result; ++step) {
    result = h.Run().connect_result;
    h.clock.Advance(500);
  }
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, ETIMEDOUT);
  EXPECT_FALSE(h.client.HasPeer(kPeerA));
}

// Renewal is the driver's (at half the lifetime) and a renewal with the same endpoints is no
// news; a re-grant naming a new gateway endpoint (the gateway restarted) re-aims the connected
// socket, and replies from the new endpoint show the true peer.
TEST(DpmSession, ARenewalIsQuietAndAReGrantToANewEndpointReaimsTheConnectedSocket) {
  Harness h;
  DpmClientActions a;
  h.client.Connect(kPeerA, h.source, &a);
  DpmClientActions first = h.Run();
  ASSERT_TRUE(first.connect);
  const uint64_t id = h.last_id;
  const api::Endpoint external = *h.client.connected_external();
  const int sent = h.sent;
  h.clock.Advance(61'000);  // past half of the 120 s lifetime
  DpmClientActions renewed = h.Run();
  EXPECT_GT(h.sent, sent) << "the driver renewed the grant";
  EXPECT_FALSE(renewed.connect) << "same endpoints: nothing to do";
  EXPECT_FALSE(renewed.connect_result);
  EXPECT_EQ(*h.client.connected_external(), external);
  const nat::Endpoint moved{kGateway, static_cast<uint16_t>(first.connect->port_host() + 1)};
  driver::Event regrant{driver::Event::Kind::kGranted, id, {kPool, external.port_host()}, moved, 120,
                        pcp::ResultCode::kSuccess};
  DpmClientActions reaimed;
  h.client.OnEvent(regrant, &reaimed);
  ASSERT_TRUE(reaimed.connect);
  EXPECT_EQ(reaimed.connect->port_host(), moved.port);
  EXPECT_EQ(h.client.TrueSource(*reaimed.connect), kPeerA);
  EXPECT_EQ(h.client.TrueSource(*first.connect), *first.connect) << "the old endpoint is no longer the peer's";
  h.client.Disconnect();
  EXPECT_EQ(h.client.connected_remote(), nullptr);
  DpmClientActions elsewhere;
  h.client.OnEvent(regrant, &elsewhere);
  EXPECT_FALSE(elsewhere.connect) << "a socket connected elsewhere is not re-aimed";
}

TEST(DpmSession, LostIsIgnoredAndReleaseAllEndsEverySession) {
  Harness h;
  DpmClientActions a;
  h.client.Send(kPeerA, Bytes("a"), h.source, &a);
  h.client.Send(kPeerB, Bytes("b"), h.source, &a);
  h.Run();
  ASSERT_EQ(h.engine.session_count(), 2u);
  DpmClientActions lost;
  driver::Event e{driver::Event::Kind::kLost, /*id=*/1, {}, {}, 0, pcp::ResultCode::kSuccess};
  h.client.OnEvent(e, &lost);
  EXPECT_TRUE(h.client.HasPeer(kPeerA)) << "the driver asks the restarted gateway again";
  EXPECT_FALSE(lost.connect_result);
  h.client.ReleaseAll();
  EXPECT_EQ(h.released, 2);
  EXPECT_TRUE(h.client.empty());
  h.Run();
  EXPECT_EQ(h.engine.session_count(), 0u) << "lifetime 0 reached the server for both";
}

}  // namespace
}  // namespace dpm::stack
