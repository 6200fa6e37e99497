// The DPM setup exchange end to end in memory: the driver's datagrams go to the server and
// the server's replies back, with a manual clock (the DPM patent, claims 1-11, 20-23; RFC 6887).
#include <gtest/gtest.h>

#include <deque>
#include <set>
#include <optional>
#include <vector>

#include "dpm/dpm_driver.h"
#include "dpm/dpm_server.h"
#include "nat/nat_engine.h"
#include "dpm/natpmp.h"
#include "dpm/pcp.h"
#include "test_bytes.h"

namespace dpm {
namespace {

using testing::Ip;
constexpr uint32_t kGateway = Ip(10, 77, 0, 1);
constexpr uint32_t kClient1 = Ip(10, 77, 1, 2);
constexpr uint32_t kClient2 = Ip(10, 77, 2, 2);
constexpr uint32_t kPool = Ip(203, 0, 113, 1);
const nat::Endpoint kServerA{Ip(198, 51, 100, 10), 80};
const nat::Endpoint kServerB{Ip(198, 51, 100, 11), 80};

nat::NatConfig Config() {
  nat::NatConfig c;
  c.external_addresses = {kPool};
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = kGateway;
  c.per_host_quota = 4;
  c.seed = 7;
  return c;
}

// One client's driver talking to the server through a lossless in-memory "network" (or a
// lossy one when `drop_requests` is set).
struct Harness {
  nat::NatEngine engine{Config()};
  server::DpmServer server{engine, /*start_ms=*/0};
  uint64_t now = 1000;

  struct Client {
    driver::Driver driver;
    uint32_t address;
    std::vector<driver::Event> events;
    int sent = 0;
  };
  std::deque<Client> clients;  // stable references
  bool drop_requests = false;

  Client& Add(uint32_t address) {
    driver::DriverConfig dc;
    dc.server_address = kGateway;
    dc.client_address = address;
    dc.lifetime_s = 120;
    clients.push_back(Client{driver::Driver(dc, address), address, {}, 0});
    return clients.back();
  }
  // Delivers everything due until quiet.
  void Run(Client& c) {
    for (int round = 0; round < 10; ++round) {
      std::vector<driver::Outgoing> out;
      std::vector<driver::Event> ev;
      c.driver.Poll(now, &out, &ev);
      c.events.insert(c.events.end(), ev.begin(), ev.end());
      if (out.empty()) return;
      for (const auto& o : out) {
        c.sent++;
        if (drop_requests) continue;
        EXPECT_NE(o.source, 0u);
        std::vector<uint8_t> reply = server.Handle(now, {o.source, 5350}, pcp::kDpmPort, o.payload);
        EXPECT_LE(reply.size(), pcp::kMaxMessage);
        if (!reply.empty()) c.driver.OnReply(now, reply);
      }
    }
  }
  std::optional<driver::Event> Last(const Client& c, driver::Event::Kind kind) const {
    for (auto it = c.events.rbegin(); it != c.events.rend(); ++it) {
      if (it->kind == kind) return *it;
    }
    return std::nullopt;
  }
};

TEST(DpmControl, ReplaceablePortIsGrantedARegisteredEndpointAndAGatewayEndpoint) {
  Harness h;
  auto& c = h.Add(kClient1);
  uint64_t id = c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, /*port_fixed=*/false);
  h.Run(c);
  auto granted = h.Last(c, driver::Event::Kind::kGranted);
  ASSERT_TRUE(granted);
  EXPECT_EQ(granted->id, id);
  EXPECT_EQ(granted->external.address, kPool);  // claim 1: a registered address
  EXPECT_NE(granted->external.port, 0);
  EXPECT_EQ(granted->gateway_endpoint.address, kGateway);  // claim 5: aim at the gateway
  EXPECT_NE(granted->gateway_endpoint.port, 1080);
  EXPECT_EQ(h.engine.session_count(), 1u);
}

// Per-socket addresses with DPM (design §7): a host whose sockets have addresses of their own gets
// one mapping per address — each request carries, and comes from, the socket's address.
TEST(DpmControl, SocketsWithAddressesOfTheirOwnGetAMappingPerAddress) {
  Harness h;
  auto& c = h.Add(kClient1);
  const uint32_t own_a = Ip(10, 77, 1, 100), own_b = Ip(10, 77, 1, 101);
  uint64_t a = c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, false, own_a);
  uint64_t b = c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, false, own_b);
  uint64_t common = c.driver.Begin(h.now, nat::Protocol::kTcp, 50001, kServerA, false);
  h.Run(c);
  int granted = 0;
  for (const auto& e : c.events) granted += e.kind == driver::Event::Kind::kGranted ? 1 : 0;
  ASSERT_EQ(granted, 3) << "the server refuses a request whose client address is not its source";
  std::set<uint32_t> internal;
  std::set<uint16_t> external_ports;
  h.engine.ForEachSession(h.now, [&](const nat::NatEngine::SessionInfo& s) {
    internal.insert(s.internal.address);
    external_ports.insert(s.external.port);
  });
  EXPECT_EQ(internal, (std::set<uint32_t>{kClient1, own_a, own_b}));
  EXPECT_EQ(external_ports.size(), 3u) << "three internal endpoints, three registered ports";
  (void)a, (void)b, (void)common;
}

TEST(DpmControl, FixedPortIsKeptAndSharedTowardsDifferentRemotes) {
  Harness h;
  auto& a = h.Add(kClient1);
  auto& b = h.Add(kClient2);
  a.driver.Begin(h.now, nat::Protocol::kTcp, 40000, kServerA, true);
  b.driver.Begin(h.now, nat::Protocol::kTcp, 40000, kServerB, true);
  h.Run(a);
  h.Run(b);
  auto ga = h.Last(a, driver::Event::Kind::kGranted);
  auto gb = h.Last(b, driver::Event::Kind::kGranted);
  ASSERT_TRUE(ga && gb);
  EXPECT_EQ(ga->external.port, 40000);  // claims 8-10: same registered address and port
  EXPECT_EQ(gb->external.port, 40000);
  EXPECT_EQ(ga->external.address, gb->external.address);
}

TEST(DpmControl, FixedPortTowardsTheSameRemoteIsCannotProvideExternal) {
  Harness h;
  auto& a = h.Add(kClient1);
  auto& b = h.Add(kClient2);
  a.driver.Begin(h.now, nat::Protocol::kTcp, 40000, kServerA, true);
  h.Run(a);
  uint64_t id = b.driver.Begin(h.now, nat::Protocol::kTcp, 40000, kServerA, true);
  h.Run(b);
  auto failed = h.Last(b, driver::Event::Kind::kFailed);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->id, id);
  EXPECT_EQ(failed->result, pcp::ResultCode::kCannotProvideExternal);
  EXPECT_EQ(h.engine.session_count(), 1u);  // nothing created for the refused one
}

TEST(DpmControl, ReleaseSendsLifetimeZeroAndTheServerForgetsTheSession) {
  Harness h;
  auto& c = h.Add(kClient1);
  uint64_t id = c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, false);
  h.Run(c);
  ASSERT_EQ(h.engine.session_count(), 1u);
  c.driver.Release(h.now, id);
  h.Run(c);
  EXPECT_EQ(h.engine.session_count(), 0u);
  EXPECT_EQ(c.driver.session_count(), 0u);
}

TEST(DpmControl, GrantIsRenewedAtHalfItsLifetimeWithTheSameEndpoint) {
  Harness h;
  auto& c = h.Add(kClient1);
  c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, false);
  h.Run(c);
  auto first = h.Last(c, driver::Event::Kind::kGranted);
  ASSERT_TRUE(first);
  int sent = c.sent;
  h.now += uint64_t{first->lifetime_s} * 1000 / 2 - 1000;
  h.Run(c);
  EXPECT_EQ(c.sent, sent) << "renewed too early";
  h.now += 2000;
  h.Run(c);
  EXPECT_EQ(c.sent, sent + 1) << "not renewed at half the lifetime";
  // The engine still has exactly one session, with the same external endpoint.
  int same = 0;
  h.engine.ForEachSession(h.now, [&](const nat::NatEngine::SessionInfo& s) {
    if (s.external == first->external) same++;
  });
  EXPECT_EQ(same, 1);
}

TEST(DpmControl, NoAnswerRetransmitsWithBackoffThenTimesOut) {
  Harness h;
  h.drop_requests = true;
  auto& c = h.Add(kClient1);
  uint64_t id = c.driver.Begin(h.now, nat::Protocol::kTcp, 50000, kServerA, false);
  h.Run(c);
  EXPECT_EQ(c.sent, 1);
  h.now += 249;
  h.Run(c);
  EXPECT_EQ(c.sent, 1) << "retransmitted before 250 ms";
  h.now += 1;
  h.Run(c);
  EXPECT_EQ(c.sent, 2);
  for (int i = 0; i < 10; ++i) {
    h.now += 10000;
    h.Run(c);
  }
  EXPECT_EQ(c.sent, 5);  // max_tries
  auto timed_out = h.Last(c, driver::Event::Kind::kTimedOut);
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(timed_out->id, id);
}

TEST(DpmControl, GatewayRestartIsSeenInTheEpochAndGrantsAreAskedForAgain) {
  auto h = std::make_unique<Harness>();
  auto& c = h->Add(kClient1);
  c.driver.Begin(h->now, nat::Protocol::kTcp, 50000, kServerA, false);
  h->Run(c);
  auto first = h->Last(c, driver::Event::Kind::kGranted);
  ASSERT_TRUE(first);
  // Time passes; the gateway restarts with an empty table (a new engine and server whose
  // epoch starts again at 0).
  h->now += 50000;
  nat::NatEngine engine2(Config());
  server::DpmServer server2(engine2, h->now);
  // A second session's setup reaches the new server and carries its epoch back.
  c.driver.Begin(h->now, nat::Protocol::kTcp, 50001, kServerB, false);
  std::vector<driver::Outgoing> out;
  std::vector<driver::Event> ev;
  c.driver.Poll(h->now, &out, &ev);
  ASSERT_EQ(out.size(), 1u);
  c.driver.OnReply(h->now, server2.Handle(h->now, {kClient1, 5350}, pcp::kDpmPort, out[0].payload));
  out.clear();
  ev.clear();
  c.driver.Poll(h->now, &out, &ev);
  bool lost = false;
  for (const auto& e : ev) lost |= e.kind == driver::Event::Kind::kLost && e.id == first->id;
  EXPECT_TRUE(lost) << "the restart was not noticed";
  ASSERT_EQ(out.size(), 1u) << "the lost grant was not asked for again";
  c.driver.OnReply(h->now, server2.Handle(h->now, {kClient1, 5350}, pcp::kDpmPort, out[0].payload));
  EXPECT_EQ(engine2.session_count(), 2u);
}

TEST(DpmControl, RequestWhoseClientAddressIsNotItsSourceGetsAddressMismatchAndNoState) {
  Harness h;
  pcp::Request q;
  q.opcode = pcp::Opcode::kPeer;
  q.lifetime = 120;
  q.client_address = pcp::Address::FromIpv4(kClient2);  // claims to be another host
  pcp::PeerBody body;
  body.protocol = 6;
  body.internal_port = 40000;
  body.remote_port = 80;
  body.remote_address = pcp::Address::FromIpv4(kServerA.address);
  q.peer = body;
  std::vector<uint8_t> bytes = pcp::EncodeRequest(q);
  auto reply = pcp::ParseResponse(h.server.Handle(h.now, {kClient1, 5350}, pcp::kDpmPort, bytes));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->result, pcp::ResultCode::kAddressMismatch);
  EXPECT_EQ(h.engine.session_count(), 0u);
}

// RFC 6887 §8.3, design §6: a malformed or truncated request gets the PCP error reply, never a
// larger reply than the request, and creates no state. (A cut that happens to end exactly
// before the options is a complete request without them and is served normally.)
TEST(DpmControl, EveryCutOfAPeerRequestGetsNoStateAndNoLargerReply) {
  Harness h;
  pcp::Request q;
  q.opcode = pcp::Opcode::kPeer;
  q.lifetime = 120;
  q.client_address = pcp::Address::FromIpv4(kClient1);
  pcp::PeerBody body;
  body.protocol = 6;
  body.internal_port = 40000;
  body.remote_port = 80;
  body.remote_address = pcp::Address::FromIpv4(kServerA.address);
  q.peer = body;
  q.dpm_port_fixed = true;
  std::vector<uint8_t> bytes = pcp::EncodeRequest(q);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(cut));
    if (pcp::ParseRequest(part).ok()) {
      EXPECT_EQ(cut, 24u + 56u) << "only the option-less PEER request is complete";
      continue;
    }
    std::vector<uint8_t> reply = h.server.Handle(h.now, {kClient1, 5350}, pcp::kDpmPort, part);
    EXPECT_LE(reply.size(), part.size()) << "cut at " << cut;
    EXPECT_EQ(h.engine.session_count(), 0u) << "cut at " << cut;
  }
}

TEST(DpmControl, QuotaExceededIsUserExQuota) {
  Harness h;  // per_host_quota = 4
  auto& c = h.Add(kClient1);
  for (uint16_t p = 0; p < 5; ++p) c.driver.Begin(h.now, nat::Protocol::kUdp, 41000 + p, kServerA, false);
  h.Run(c);
  auto failed = h.Last(c, driver::Event::Kind::kFailed);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->result, pcp::ResultCode::kUserExQuota);
  EXPECT_EQ(h.engine.session_count(), 4u);
}

TEST(DpmControl, NatPmpPublicAddressAndMapOnPort5351) {
  Harness h;
  natpmp::Request pub{natpmp::kOpPublicAddress, 0, 0, 0};
  auto r = natpmp::ParseResponse(h.server.Handle(h.now, {kClient1, 5350}, pcp::kServerPort, natpmp::EncodeRequest(pub)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->result, natpmp::kSuccess);
  EXPECT_EQ(r->external_address, kPool);
  natpmp::Request map{natpmp::kOpMapTcp, 8080, 8080, 3600};
  auto m = natpmp::ParseResponse(h.server.Handle(h.now, {kClient1, 5350}, pcp::kServerPort, natpmp::EncodeRequest(map)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->result, natpmp::kSuccess);
  EXPECT_EQ(m->internal_port, 8080);
  EXPECT_NE(m->external_port, 0);
  EXPECT_GT(m->lifetime, 0u);
}

TEST(DpmControl, NatPmpIsNotSpokenOnTheDpmPort) {
  Harness h;
  natpmp::Request pub{natpmp::kOpPublicAddress, 0, 0, 0};
  std::vector<uint8_t> reply = h.server.Handle(h.now, {kClient1, 5350}, pcp::kDpmPort, natpmp::EncodeRequest(pub));
  // Version 0 on the PCP-only port is an unsupported PCP version: never a NAT-PMP answer.
  auto as_natpmp = natpmp::ParseResponse(reply);
  EXPECT_FALSE(as_natpmp.ok() && as_natpmp->external_address == kPool);
}

}  // namespace
}  // namespace dpm
