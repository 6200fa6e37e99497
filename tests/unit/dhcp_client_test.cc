// The per-socket DHCPv4 client (src/dhcp/dhcp_client.h, RFC 2131 §4.4) against a scripted
// server and a manual clock (milliseconds passed in): the full exchange, renewal at T1,
// rebinding at T2 and expiry with the §4.4.5 retransmission times, DHCPNAK in REQUESTING and
// RENEWING, the §4.1 backoff and the documented 16 s give-up, DHCPRELEASE and DHCPDECLINE
// layouts, replies that are not ours, and DhcpClientSet's routing by xid.
#include "dhcp/dhcp_client.h"

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "test_bytes.h"

namespace dpm::dhcp {
namespace {

using dpm::testing::Hex;

constexpr uint32_t kServer = 0x0a4d0001;   // 10.77.0.1
constexpr uint32_t kServer2 = 0x0a4d0002;  // 10.77.0.2
constexpr uint32_t kAddress = 0x0a4d0032;  // 10.77.0.50
constexpr std::array<uint8_t, 6> kMac = {0x02, 0xdd, 0, 0, 0, 1};

std::vector<uint8_t> ClientId(int socket) {
  std::vector<uint8_t> id = {0xff, 0, 0, 0, 1};
  for (char c : absl::StrCat("dpm-socket-", socket)) id.push_back(static_cast<uint8_t>(c));
  return id;
}

// Random numbers r with r % 2001 == 1000: every jitter is 0 and every xid differs.
std::function<uint32_t()> ZeroJitterRandom() {
  auto k = std::make_shared<uint32_t>(0);
  return [k] { return 1000 + 2001 * ++*k; };
}

// Returns the scripted values, then ZeroJitterRandom's.
std::function<uint32_t()> ScriptedRandom(std::deque<uint32_t> values) {
  auto q = std::make_shared<std::deque<uint32_t>>(std::move(values));
  auto rest = ZeroJitterRandom();
  return [q, rest] {
    if (q->empty()) return rest();
    uint32_t v = q->front();
    q->pop_front();
    return v;
  };
}

DhcpClientConfig Config(int socket = 1) {
  DhcpClientConfig c;
  c.chaddr = kMac;
  c.client_identifier = ClientId(socket);
  c.random = ZeroJitterRandom();
  return c;
}

DhcpClient MakeClient(DhcpClientConfig config = Config()) {
  absl::StatusOr<DhcpClient> c = DhcpClient::Create(std::move(config));
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

DhcpMessage Parsed(const DhcpTransmit& t) {
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(t.payload);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : DhcpMessage{};
}

// What dnsmasq answers (lease 3600 s, T1 1800 s, T2 3150 s; see fuzz/make_dhcp_seeds.py).
DhcpMessage ServerReply(MessageType type, uint32_t xid, int socket = 1) {
  DhcpMessage m;
  m.op = kOpBootReply;
  m.xid = xid;
  m.flags = kFlagBroadcast;
  std::copy(kMac.begin(), kMac.end(), m.chaddr.begin());
  m.message_type = type;
  m.server_identifier = kServer;
  m.client_identifier = ClientId(socket);
  if (type == MessageType::kNak) return m;
  m.yiaddr = kAddress;
  m.siaddr = kServer;
  m.lease_time = 3600;
  m.renewal_time = 1800;
  m.rebinding_time = 3150;
  m.subnet_mask = 0xffff0000;
  m.routers = {kServer};
  m.domain_name_servers = {kServer};
  return m;
}

void Deliver(DhcpClient& c, uint64_t now_ms, const DhcpMessage& m, DhcpActions* out) {
  c.OnMessage(now_ms, SerializeDhcpMessage(m), out);
}

// Start at 1000 ms, OFFER at 1500 ms (the REQUEST goes out then), ACK at 1600 ms.
constexpr uint64_t kStart = 1000, kOfferAt = 1500, kAckAt = 1600;
constexpr uint64_t kT1 = kOfferAt + 1'800'000, kT2 = kOfferAt + 3'150'000, kExpiry = kOfferAt + 3'600'000;

DhcpActions Bind(DhcpClient& c) {
  DhcpActions out;
  EXPECT_TRUE(c.Start(kStart, &out).ok());
  Deliver(c, kOfferAt, ServerReply(MessageType::kOffer, c.xid()), &out);
  Deliver(c, kAckAt, ServerReply(MessageType::kAck, c.xid()), &out);
  EXPECT_EQ(c.state(), DhcpState::kBound);
  return out;
}

TEST(DhcpClient, FullExchangeBinds) {
  DhcpClient c = MakeClient();
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_EQ(c.NextDeadline(), std::nullopt);

  DhcpActions out;
  ASSERT_TRUE(c.Start(kStart, &out).ok());
  EXPECT_EQ(c.state(), DhcpState::kSelecting);
  ASSERT_EQ(out.transmits.size(), 1u);
  const DhcpTransmit& discover = out.transmits[0];
  EXPECT_EQ(discover.type, MessageType::kDiscover);
  EXPECT_EQ(discover.source, 0u);
  EXPECT_EQ(discover.destination, kLimitedBroadcast);
  EXPECT_TRUE(discover.broadcast);
  EXPECT_EQ(discover.payload.size(), kMinBootpMessageSize);
  DhcpMessage d = Parsed(discover);
  EXPECT_EQ(d.op, kOpBootRequest);
  EXPECT_EQ(d.xid, c.xid());
  EXPECT_NE(d.xid, 0u);
  EXPECT_EQ(d.secs, 0);
  EXPECT_TRUE(d.broadcast());
  EXPECT_EQ(d.ciaddr, 0u);
  EXPECT_EQ(Hex(d.chaddr), "02dd0000000100000000000000000000");
  EXPECT_EQ(*d.message_type, MessageType::kDiscover);
  EXPECT_EQ(d.client_identifier, ClientId(1));
  EXPECT_EQ(d.parameter_request_list, (std::vector<uint8_t>{1, 3, 6, 51, 58, 59}));
  EXPECT_FALSE(d.requested_ip_address.has_value());
  EXPECT_FALSE(d.server_identifier.has_value());
  EXPECT_EQ(c.NextDeadline(), kStart + 4000);

  out.clear();
  Deliver(c, kOfferAt, ServerReply(MessageType::kOffer, d.xid), &out);
  EXPECT_EQ(c.state(), DhcpState::kRequesting);
  EXPECT_TRUE(out.events.empty());
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].type, MessageType::kRequest);
  EXPECT_EQ(out.transmits[0].source, 0u);
  EXPECT_EQ(out.transmits[0].destination, kLimitedBroadcast);
  DhcpMessage r = Parsed(out.transmits[0]);
  EXPECT_EQ(r.xid, d.xid);  // §4.4.1: the offer's xid
  EXPECT_EQ(r.ciaddr, 0u);
  EXPECT_TRUE(r.broadcast());
  EXPECT_EQ(r.requested_ip_address, kAddress);
  EXPECT_EQ(r.server_identifier, kServer);
  EXPECT_EQ(r.client_identifier, ClientId(1));
  EXPECT_EQ(c.NextDeadline(), kOfferAt + 4000);

  out.clear();
  Deliver(c, kAckAt, ServerReply(MessageType::kAck, d.xid), &out);
  EXPECT_EQ(c.state(), DhcpState::kBound);
  EXPECT_TRUE(out.transmits.empty());
  ASSERT_EQ(out.events.size(), 1u);
  const DhcpEvent& e = out.events[0];
  EXPECT_EQ(e.kind, DhcpEvent::Kind::kBound);
  EXPECT_EQ(e.lease.address, kAddress);
  EXPECT_EQ(e.lease.subnet_mask, 0xffff0000u);
  EXPECT_EQ(e.lease.router, kServer);
  EXPECT_EQ(e.lease.server, kServer);
  EXPECT_EQ(e.lease.lease_s, 3600u);
  EXPECT_EQ(e.lease.t1_s, 1800u);
  EXPECT_EQ(e.lease.t2_s, 3150u);
  EXPECT_EQ(e.lease.start_ms, kOfferAt);  // when the DHCPREQUEST went out
  EXPECT_EQ(e.lease.t1_ms, kT1);
  EXPECT_EQ(e.lease.t2_ms, kT2);
  EXPECT_EQ(e.lease.expiry_ms, kExpiry);
  EXPECT_EQ(c.lease(), e.lease);
  EXPECT_EQ(c.xid(), 0u);  // no transaction open
  EXPECT_EQ(c.NextDeadline(), kT1);
  EXPECT_EQ(c.counters().offers, 1u);
  EXPECT_EQ(c.counters().acks, 1u);
  EXPECT_EQ(c.counters().transmitted, 2u);
  EXPECT_EQ(c.counters().retransmissions, 0u);
}

TEST(DhcpClient, RenewsAtT1) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  c.OnTimer(kT1 - 1, &out);
  EXPECT_TRUE(out.transmits.empty());
  EXPECT_EQ(c.state(), DhcpState::kBound);

  c.OnTimer(kT1, &out);
  EXPECT_EQ(c.state(), DhcpState::kRenewing);
  ASSERT_EQ(out.transmits.size(), 1u);
  const DhcpTransmit& t = out.transmits[0];
  EXPECT_EQ(t.type, MessageType::kRequest);
  EXPECT_EQ(t.source, kAddress);  // unicast from the leased address to the server (§4.4.5)
  EXPECT_EQ(t.destination, kServer);
  EXPECT_FALSE(t.broadcast);
  DhcpMessage r = Parsed(t);
  EXPECT_EQ(r.ciaddr, kAddress);
  EXPECT_FALSE(r.requested_ip_address.has_value());  // MUST NOT (§4.3.2, Table 5)
  EXPECT_FALSE(r.server_identifier.has_value());
  EXPECT_EQ(r.client_identifier, ClientId(1));
  EXPECT_EQ(r.secs, 0);
  EXPECT_EQ(r.xid, c.xid());
  // Half the time until T2, at least 60 s.
  EXPECT_EQ(c.NextDeadline(), kT1 + (kT2 - kT1) / 2);

  out.clear();
  DhcpMessage ack = ServerReply(MessageType::kAck, r.xid);
  ack.ciaddr = kAddress;
  Deliver(c, kT1 + 100, ack, &out);
  EXPECT_EQ(c.state(), DhcpState::kBound);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kRenewed);
  EXPECT_EQ(out.events[0].lease.address, kAddress);
  EXPECT_EQ(out.events[0].lease.start_ms, kT1);
  EXPECT_EQ(out.events[0].lease.expiry_ms, kT1 + 3'600'000);
  EXPECT_EQ(c.NextDeadline(), kT1 + 1'800'000);
}

TEST(DhcpClient, NoAnswerRenewsThenRebindsThenExpires) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  std::vector<uint64_t> times;
  std::vector<DhcpState> states;
  std::vector<uint32_t> destinations;
  std::vector<uint32_t> xids;
  while (std::optional<uint64_t> at = c.NextDeadline()) {
    out.clear();
    c.OnTimer(*at, &out);
    for (const DhcpTransmit& t : out.transmits) {
      times.push_back(*at);
      states.push_back(c.state());
      destinations.push_back(t.destination);
      xids.push_back(Parsed(t).xid);
      EXPECT_EQ(t.source, kAddress);
      EXPECT_EQ(Parsed(t).ciaddr, kAddress);
    }
    if (!out.events.empty()) break;
  }
  // RENEWING: at T1, then half the time left until T2, at least 60 s, never past T2.
  // REBINDING: at T2, then half the time left until expiry, the same way.
  const std::vector<uint64_t> want_times = {kT1,       2'476'500, 2'814'000, 2'982'750, 3'067'125, 3'127'125,
                                            kT2,       3'376'500, 3'489'000, 3'549'000};
  EXPECT_EQ(times, want_times);
  for (size_t i = 0; i < times.size(); ++i) {
    SCOPED_TRACE(i);
    const bool renewing = times[i] < kT2;
    EXPECT_EQ(states[i], renewing ? DhcpState::kRenewing : DhcpState::kRebinding);
    EXPECT_EQ(destinations[i], renewing ? kServer : kLimitedBroadcast);
    EXPECT_EQ(xids[i], renewing ? xids.front() : xids.back());  // one xid per state
  }
  EXPECT_NE(xids.front(), xids.back());
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kLost);
  EXPECT_EQ(out.events[0].reason, LostReason::kExpired);
  EXPECT_EQ(out.events[0].lease.address, kAddress);
  EXPECT_EQ(out.events[0].lease.expiry_ms, kExpiry);
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_FALSE(c.lease().has_value());
  EXPECT_EQ(c.NextDeadline(), std::nullopt);
  EXPECT_EQ(c.counters().retransmissions, 8u);
  EXPECT_STREQ(LostReasonName(LostReason::kExpired), "expired");
}

TEST(DhcpClient, RebindingAckFromAnotherServer) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  c.OnTimer(kT1, &out);
  c.OnTimer(kT2, &out);
  ASSERT_EQ(c.state(), DhcpState::kRebinding);
  out.clear();
  DhcpMessage ack = ServerReply(MessageType::kAck, c.xid());
  ack.server_identifier = kServer2;
  ack.renewal_time.reset();
  ack.rebinding_time.reset();
  Deliver(c, kT2 + 5, ack, &out);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kRenewed);
  EXPECT_EQ(c.lease()->server, kServer2);  // renewals now go to the server that answered
  EXPECT_EQ(c.lease()->start_ms, kT2);
  EXPECT_EQ(c.lease()->t1_ms, kT2 + 1'800'000);  // defaults: 0.5 and 0.875 of 3600 s
  EXPECT_EQ(c.lease()->t2_ms, kT2 + 3'150'000);
}

TEST(DhcpClient, NakWhileRenewingLosesTheLease) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  c.OnTimer(kT1, &out);
  out.clear();
  DhcpMessage nak = ServerReply(MessageType::kNak, c.xid());
  nak.message = "lease not found";
  Deliver(c, kT1 + 10, nak, &out);
  EXPECT_TRUE(out.transmits.empty());
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kLost);
  EXPECT_EQ(out.events[0].reason, LostReason::kNak);
  EXPECT_EQ(out.events[0].server_message, "lease not found");
  EXPECT_EQ(out.events[0].lease.address, kAddress);
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_EQ(c.NextDeadline(), std::nullopt);
  EXPECT_EQ(c.counters().naks, 1u);
}

TEST(DhcpClient, NakWhileRequestingRestartsDiscovery) {
  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(kStart, &out).ok());
  const uint32_t first_xid = c.xid();
  Deliver(c, kOfferAt, ServerReply(MessageType::kOffer, first_xid), &out);
  ASSERT_EQ(c.state(), DhcpState::kRequesting);

  // A NAK naming another server is not the answer to our REQUEST.
  out.clear();
  DhcpMessage other = ServerReply(MessageType::kNak, first_xid);
  other.server_identifier = kServer2;
  Deliver(c, 1700, other, &out);
  EXPECT_EQ(c.state(), DhcpState::kRequesting);
  EXPECT_EQ(c.counters().invalid_lease, 1u);

  Deliver(c, 1800, ServerReply(MessageType::kNak, first_xid), &out);
  EXPECT_EQ(c.state(), DhcpState::kSelecting);
  EXPECT_TRUE(out.events.empty());  // nothing to lose yet
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].type, MessageType::kDiscover);
  EXPECT_NE(c.xid(), first_xid);
  EXPECT_EQ(Parsed(out.transmits[0]).xid, c.xid());
  EXPECT_EQ(Parsed(out.transmits[0]).secs, 0);  // (1800 - 1000) ms since Start()
  EXPECT_EQ(c.counters().naks, 1u);
  // The give-up time still counts from Start().
  out.clear();
  c.OnTimer(1800 + 4000, &out);  // retransmission
  c.OnTimer(kStart + 16'000, &out);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].reason, LostReason::kTimedOut);
}

TEST(DhcpClient, ServerNeverAnswersTimesOutAfter16Seconds) {
  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(0, &out).ok());
  const uint32_t xid = c.xid();
  std::vector<uint64_t> sends = {0};
  std::vector<uint16_t> secs = {Parsed(out.transmits[0]).secs};
  uint64_t lost_at = 0;
  while (std::optional<uint64_t> at = c.NextDeadline()) {
    out.clear();
    c.OnTimer(*at - 1, &out);  // early: nothing
    EXPECT_TRUE(out.transmits.empty() && out.events.empty());
    c.OnTimer(*at, &out);
    for (const DhcpTransmit& t : out.transmits) {
      EXPECT_EQ(t.type, MessageType::kDiscover);
      EXPECT_EQ(Parsed(t).xid, xid);  // retransmissions keep the xid
      sends.push_back(*at);
      secs.push_back(Parsed(t).secs);
    }
    if (!out.events.empty()) lost_at = *at;
  }
  // RFC 2131 §4.1: 4 s, then 8 s (jitter 0 here); given up at 16 s.
  EXPECT_EQ(sends, (std::vector<uint64_t>{0, 4000, 12000}));
  EXPECT_EQ(secs, (std::vector<uint16_t>{0, 4, 12}));
  EXPECT_EQ(lost_at, 16'000u);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kLost);
  EXPECT_EQ(out.events[0].reason, LostReason::kTimedOut);
  EXPECT_EQ(out.events[0].lease.address, 0u);
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_EQ(c.counters().retransmissions, 2u);
  EXPECT_STREQ(LostReasonName(LostReason::kTimedOut), "timed out");
}

TEST(DhcpClient, BackoffDoublesToSixtyFourSecondsWithJitter) {
  DhcpClientConfig config = Config();
  config.acquire_timeout_ms = 1'000'000;
  // xid, then jitter draws: 0 → -1000 ms, 2000 → +1000 ms, then jitter 0 for the rest.
  config.random = ScriptedRandom({77, 0, 2000});
  DhcpClient c = MakeClient(std::move(config));
  DhcpActions out;
  ASSERT_TRUE(c.Start(0, &out).ok());
  EXPECT_EQ(c.xid(), 77u);
  std::vector<uint64_t> deadlines;
  for (int i = 0; i < 7; ++i) {
    deadlines.push_back(*c.NextDeadline());
    c.OnTimer(deadlines.back(), &out);
  }
  // 4 s - 1 s, 8 s + 1 s, 16, 32, 64, 64, 64 s.
  EXPECT_EQ(deadlines, (std::vector<uint64_t>{3000, 12000, 28000, 60000, 124000, 188000, 252000}));
  EXPECT_EQ(c.state(), DhcpState::kSelecting);
}

TEST(DhcpClient, ReleaseSendsDhcpRelease) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  c.Release(kAckAt + 5000, &out);
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_FALSE(c.lease().has_value());
  EXPECT_EQ(c.NextDeadline(), std::nullopt);
  EXPECT_TRUE(out.events.empty());
  ASSERT_EQ(out.transmits.size(), 1u);
  const DhcpTransmit& t = out.transmits[0];
  EXPECT_EQ(t.type, MessageType::kRelease);
  EXPECT_EQ(t.source, kAddress);
  EXPECT_EQ(t.destination, kServer);
  EXPECT_FALSE(t.broadcast);
  DhcpMessage m = Parsed(t);
  // RFC 2131 §4.4.6, Table 5: ciaddr, 54, the same 61; secs 0, flags 0; no 50, no 55.
  EXPECT_EQ(m.op, kOpBootRequest);
  EXPECT_EQ(*m.message_type, MessageType::kRelease);
  EXPECT_EQ(m.ciaddr, kAddress);
  EXPECT_EQ(m.yiaddr, 0u);
  EXPECT_EQ(m.server_identifier, kServer);
  EXPECT_EQ(m.client_identifier, ClientId(1));
  EXPECT_EQ(m.secs, 0);
  EXPECT_EQ(m.flags, 0);
  EXPECT_FALSE(m.requested_ip_address.has_value());
  EXPECT_TRUE(m.parameter_request_list.empty());
  EXPECT_EQ(Hex(m.chaddr), "02dd0000000100000000000000000000");

  // Released: a late ACK is not ours any more; Start() works again.
  out.clear();
  Deliver(c, kAckAt + 6000, ServerReply(MessageType::kAck, m.xid), &out);
  EXPECT_TRUE(out.events.empty());
  EXPECT_TRUE(c.Start(kAckAt + 7000, &out).ok());
}

TEST(DhcpClient, ReleaseWhileSelectingSendsNothing) {
  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(kStart, &out).ok());
  out.clear();
  c.Release(kStart + 10, &out);
  EXPECT_TRUE(out.transmits.empty());
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_EQ(c.NextDeadline(), std::nullopt);
}

TEST(DhcpClient, DeclineThenRestartAfterTenSeconds) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  ASSERT_TRUE(c.Decline(kAckAt + 200, &out).ok());
  ASSERT_EQ(out.transmits.size(), 1u);
  const DhcpTransmit& t = out.transmits[0];
  EXPECT_EQ(t.type, MessageType::kDecline);
  EXPECT_EQ(t.source, 0u);
  EXPECT_EQ(t.destination, kLimitedBroadcast);
  DhcpMessage m = Parsed(t);
  EXPECT_EQ(m.ciaddr, 0u);
  EXPECT_EQ(m.requested_ip_address, kAddress);
  EXPECT_EQ(m.server_identifier, kServer);
  EXPECT_EQ(m.client_identifier, ClientId(1));
  EXPECT_EQ(m.flags, 0);
  EXPECT_EQ(c.state(), DhcpState::kInit);
  EXPECT_EQ(c.NextDeadline(), kAckAt + 200 + 10'000);
  EXPECT_FALSE(c.Decline(kAckAt + 300, &out).ok());  // only from BOUND

  out.clear();
  c.OnTimer(kAckAt + 200 + 10'000, &out);
  EXPECT_EQ(c.state(), DhcpState::kSelecting);
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].type, MessageType::kDiscover);
  EXPECT_EQ(c.NextDeadline(), kAckAt + 200 + 10'000 + 4000);
}

TEST(DhcpClient, IgnoresAndCountsRepliesThatAreNotOurs) {
  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(kStart, &out).ok());
  const uint32_t xid = c.xid();
  out.clear();

  DhcpMessage m = ServerReply(MessageType::kOffer, xid + 1);
  Deliver(c, 1100, m, &out);  // another transaction
  m = ServerReply(MessageType::kOffer, xid);
  m.chaddr[5] = 2;
  Deliver(c, 1100, m, &out);  // another link's client
  m = ServerReply(MessageType::kOffer, xid);
  m.hlen = 16;
  Deliver(c, 1100, m, &out);
  m = ServerReply(MessageType::kOffer, xid, /*socket=*/2);
  Deliver(c, 1100, m, &out);  // another socket's client identifier
  m = ServerReply(MessageType::kOffer, xid);
  m.op = kOpBootRequest;
  Deliver(c, 1100, m, &out);  // another client's DISCOVER, seen on the link
  c.OnMessage(1100, std::vector<uint8_t>(100, 0), &out);  // not a DHCP message
  m = ServerReply(MessageType::kOffer, xid);
  m.message_type.reset();
  Deliver(c, 1100, m, &out);  // BOOTP, no message type
  Deliver(c, 1100, ServerReply(MessageType::kAck, xid), &out);  // ACK while SELECTING
  m = ServerReply(MessageType::kOffer, xid);
  m.yiaddr = 0;
  Deliver(c, 1100, m, &out);
  m = ServerReply(MessageType::kOffer, xid);
  m.lease_time.reset();
  Deliver(c, 1100, m, &out);
  m = ServerReply(MessageType::kOffer, xid);
  m.server_identifier.reset();
  Deliver(c, 1100, m, &out);

  EXPECT_TRUE(out.transmits.empty());
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(c.state(), DhcpState::kSelecting);
  DhcpClientCounters want;
  want.transmitted = 1;
  want.wrong_xid = 1;
  want.wrong_chaddr = 2;
  want.wrong_client_id = 1;
  want.not_reply = 1;
  want.malformed = 1;
  want.unexpected_type = 2;
  want.invalid_lease = 3;
  EXPECT_EQ(c.counters(), want);

  // A reply that does not echo the client identifier is fine (RFC 6842 is newer than some
  // servers).
  m = ServerReply(MessageType::kOffer, xid);
  m.client_identifier.clear();
  Deliver(c, 1200, m, &out);
  EXPECT_EQ(c.state(), DhcpState::kRequesting);
  // Another server's late OFFER for the same DISCOVER is not an answer to the REQUEST.
  Deliver(c, 1300, ServerReply(MessageType::kOffer, xid), &out);
  EXPECT_EQ(c.counters().unexpected_type, 3u);
  // An ACK from a server we did not select.
  m = ServerReply(MessageType::kAck, xid);
  m.server_identifier = kServer2;
  Deliver(c, 1300, m, &out);
  EXPECT_EQ(c.counters().invalid_lease, 4u);
  EXPECT_EQ(c.state(), DhcpState::kRequesting);

  // BOUND: no transaction open, so even the right xid is dropped.
  Deliver(c, 1400, ServerReply(MessageType::kAck, xid), &out);
  ASSERT_EQ(c.state(), DhcpState::kBound);
  Deliver(c, 1500, ServerReply(MessageType::kAck, xid), &out);
  EXPECT_EQ(c.counters().wrong_xid, 2u);
}

TEST(DhcpClient, RenewalAckForAnotherAddressIsIgnored) {
  DhcpClient c = MakeClient();
  Bind(c);
  DhcpActions out;
  c.OnTimer(kT1, &out);
  out.clear();
  DhcpMessage ack = ServerReply(MessageType::kAck, c.xid());
  ack.yiaddr = kAddress + 1;
  Deliver(c, kT1 + 10, ack, &out);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(c.state(), DhcpState::kRenewing);
  EXPECT_EQ(c.counters().invalid_lease, 1u);
}

TEST(DhcpClient, T1T2DefaultsAndRepairs) {
  struct Case {
    std::optional<uint32_t> t1, t2;
    uint64_t want_t1_ms, want_t2_ms;
  };
  const std::vector<Case> cases = {
      {std::nullopt, std::nullopt, 1'800'000, 3'150'000},  // §4.4.5 defaults
      {100, 200, 100'000, 200'000},                        // the server's, kept
      {std::nullopt, 3000, 1'800'000, 3'000'000},
      {2000, std::nullopt, 2'000'000, 3'150'000},
      {3200, 3100, 1'800'000, 3'150'000},                  // T1 > T2: both defaults
      {100, 4000, 1'800'000, 3'150'000},                   // T2 > lease: both defaults
      {3500, std::nullopt, 1'800'000, 3'150'000},          // T1 > default T2
      {3600, 3600, 3'600'000, 3'600'000},                  // equal is allowed
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(absl::StrCat(k.t1.value_or(0), " ", k.t2.value_or(0)));
    DhcpClient c = MakeClient();
    DhcpActions out;
    ASSERT_TRUE(c.Start(0, &out).ok());
    Deliver(c, 0, ServerReply(MessageType::kOffer, c.xid()), &out);
    DhcpMessage ack = ServerReply(MessageType::kAck, c.xid());
    ack.renewal_time = k.t1;
    ack.rebinding_time = k.t2;
    Deliver(c, 10, ack, &out);
    ASSERT_TRUE(c.lease().has_value());
    EXPECT_EQ(c.lease()->t1_ms, k.want_t1_ms);
    EXPECT_EQ(c.lease()->t2_ms, k.want_t2_ms);
    EXPECT_EQ(c.lease()->t1_s, k.want_t1_ms / 1000);
    EXPECT_EQ(c.lease()->expiry_ms, 3'600'000u);
  }
}

TEST(DhcpClient, InfiniteLeaseHasNoDeadline) {
  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(0, &out).ok());
  Deliver(c, 0, ServerReply(MessageType::kOffer, c.xid()), &out);
  DhcpMessage ack = ServerReply(MessageType::kAck, c.xid());
  ack.lease_time = kInfiniteLease;
  Deliver(c, 10, ack, &out);
  ASSERT_EQ(c.state(), DhcpState::kBound);
  EXPECT_EQ(c.NextDeadline(), std::nullopt);
  EXPECT_EQ(c.lease()->t1_s, kInfiniteLease);
  c.OnTimer(UINT64_MAX - 1, &out);
  EXPECT_EQ(c.state(), DhcpState::kBound);
}

TEST(DhcpClient, ConfigChecksAndStartTwice) {
  DhcpClientConfig config = Config();
  config.client_identifier = {1};
  EXPECT_EQ(DhcpClient::Create(config).status().code(), absl::StatusCode::kInvalidArgument);
  config = Config();
  config.random = nullptr;
  EXPECT_EQ(DhcpClient::Create(config).status().code(), absl::StatusCode::kInvalidArgument);
  config = Config();
  config.first_retransmit_ms = 100'000;
  EXPECT_EQ(DhcpClient::Create(config).status().code(), absl::StatusCode::kInvalidArgument);

  DhcpClient c = MakeClient();
  DhcpActions out;
  ASSERT_TRUE(c.Start(0, &out).ok());
  EXPECT_EQ(c.Start(1, &out).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_STREQ(DhcpStateName(c.state()), "SELECTING");
}

TEST(DhcpClient, OptionalOptionsInRequests) {
  DhcpClientConfig config = Config();
  config.requested_lease_s = 600;
  config.maximum_message_size = 1500;
  DhcpClient c = MakeClient(std::move(config));
  DhcpActions out;
  ASSERT_TRUE(c.Start(0, &out).ok());
  DhcpMessage d = Parsed(out.transmits[0]);
  EXPECT_EQ(d.lease_time, 600u);
  EXPECT_EQ(d.maximum_message_size, 1500);
}

// ---- DhcpClientSet ----------------------------------------------------------------------

TEST(DhcpClientSet, RoutesRepliesByXid) {
  DhcpClientSet set;
  // Client 10 draws xid 5000 and jitter 0 (1000 % 2001 = 1000); client 20 draws 5000 too and
  // must draw again (xid_in_use), getting 6000.
  auto shared = std::make_shared<std::deque<uint32_t>>(std::deque<uint32_t>{5000, 1000, 5000, 6000});
  auto scripted = [shared, rest = ZeroJitterRandom()]() mutable {
    if (shared->empty()) return rest();
    uint32_t v = shared->front();
    shared->pop_front();
    return v;
  };
  DhcpClientConfig a = Config(1), b = Config(2);
  a.random = scripted;
  b.random = scripted;
  ASSERT_TRUE(set.Add(10, a).ok());
  ASSERT_TRUE(set.Add(20, b).ok());
  EXPECT_EQ(set.Add(20, Config(3)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(set.NextDeadline(), std::nullopt);

  DhcpActions out;
  ASSERT_TRUE(set.Start(10, 0, &out).ok());
  ASSERT_TRUE(set.Start(20, 500, &out).ok());
  EXPECT_EQ(set.Start(30, 0, &out).code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(out.transmits.size(), 2u);
  EXPECT_EQ(out.transmits[0].tag, 10u);
  EXPECT_EQ(out.transmits[1].tag, 20u);
  const uint32_t xid_a = Parsed(out.transmits[0]).xid, xid_b = Parsed(out.transmits[1]).xid;
  EXPECT_EQ(xid_a, 5000u);
  EXPECT_EQ(xid_b, 6000u);
  EXPECT_EQ(set.NextDeadline(), 4000u);

  // The OFFER for socket 2 reaches client 20 only.
  out.clear();
  EXPECT_EQ(set.OnMessage(600, SerializeDhcpMessage(ServerReply(MessageType::kOffer, xid_b, 2)), &out), 20u);
  EXPECT_EQ(set.Find(20)->state(), DhcpState::kRequesting);
  EXPECT_EQ(set.Find(10)->state(), DhcpState::kSelecting);
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].tag, 20u);
  EXPECT_EQ(out.transmits[0].type, MessageType::kRequest);

  EXPECT_EQ(set.OnMessage(600, SerializeDhcpMessage(ServerReply(MessageType::kOffer, 1234)), &out), std::nullopt);
  EXPECT_EQ(set.unrouted(), 1u);
  EXPECT_EQ(set.OnMessage(600, std::vector<uint8_t>(10, 0), &out), std::nullopt);
  EXPECT_EQ(set.malformed(), 1u);

  out.clear();
  EXPECT_EQ(set.OnMessage(700, SerializeDhcpMessage(ServerReply(MessageType::kAck, xid_b, 2)), &out), 20u);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].tag, 20u);
  EXPECT_EQ(out.events[0].kind, DhcpEvent::Kind::kBound);
  // Bound: the xid is no longer routed.
  EXPECT_EQ(set.OnMessage(800, SerializeDhcpMessage(ServerReply(MessageType::kAck, xid_b, 2)), &out), std::nullopt);

  // Timers: only client 10 is due at 4000 ms (client 20 renews at T1).
  out.clear();
  set.OnTimer(4000, &out);
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].tag, 10u);
  EXPECT_EQ(set.NextDeadline(), 12000u);
  out.clear();
  set.OnTimer(16000, &out);  // client 10 gives up
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].tag, 10u);
  EXPECT_EQ(out.events[0].reason, LostReason::kTimedOut);
  EXPECT_EQ(set.NextDeadline(), 600 + 1'800'000u);

  // Release and remove.
  out.clear();
  set.Release(20, 20000, &out);
  ASSERT_EQ(out.transmits.size(), 1u);
  EXPECT_EQ(out.transmits[0].type, MessageType::kRelease);
  EXPECT_EQ(out.transmits[0].tag, 20u);
  EXPECT_EQ(set.NextDeadline(), std::nullopt);
  set.Remove(20);
  set.Remove(10);
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.Find(10), nullptr);
}

}  // namespace
}  // namespace dpm::dhcp
