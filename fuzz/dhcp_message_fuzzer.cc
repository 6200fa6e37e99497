// libFuzzer target: the DHCPv4 codec and client (src/dhcp) on untrusted bytes — what a dpm
// instance reads on UDP port 68 of a shared Ethernet link. A message that parses encodes to
// bytes that parse back to the same value; the bytes are also fed, unchanged and with the xid
// of the open transaction patched in, to clients in SELECTING, REQUESTING and BOUND/RENEWING.
#include <cstdlib>
#include <cstring>

#include "dhcp/dhcp_client.h"
#include "dhcp/dhcp_message.h"

namespace {

using namespace dpm::dhcp;

DhcpClient NewClient() {
  DhcpClientConfig config;
  config.chaddr = {0x02, 0xdd, 0, 0, 0, 1};
  config.client_identifier = {0xff, 0, 0, 0, 1, 'd', 'p', 'm'};
  uint32_t state = 12345;
  config.random = [state]() mutable { return state = state * 1103515245u + 12345u; };
  absl::StatusOr<DhcpClient> c = DhcpClient::Create(config);
  if (!c.ok()) std::abort();
  return *std::move(c);
}

DhcpMessage Reply(MessageType type, uint32_t xid) {
  DhcpMessage m;
  m.op = kOpBootReply;
  m.xid = xid;
  m.chaddr = {0x02, 0xdd, 0, 0, 0, 1};
  m.message_type = type;
  m.yiaddr = 0x0a4d0032;
  m.server_identifier = 0x0a4d0001;
  m.lease_time = 120;
  return m;
}

// Feeds `input` as is and with the open transaction's xid, then runs the timers to the end;
// the client must stay consistent (a lease exactly when BOUND/RENEWING/REBINDING).
void Feed(DhcpClient& c, const uint8_t* data, size_t size, uint64_t now) {
  DhcpActions out;
  c.OnMessage(now, absl::MakeConstSpan(data, size), &out);
  if (size >= kOffsetXid + 4 && c.xid() != 0) {
    std::vector<uint8_t> patched(data, data + size);
    const uint32_t xid = c.xid();
    const uint8_t b[4] = {uint8_t(xid >> 24), uint8_t(xid >> 16), uint8_t(xid >> 8), uint8_t(xid)};
    std::memcpy(patched.data() + kOffsetXid, b, 4);
    if (patched.size() >= kOffsetChaddr + 6) std::memcpy(patched.data() + kOffsetChaddr, c.config().chaddr.data(), 6);
    c.OnMessage(now + 1, patched, &out);
  }
  for (int i = 0; i < 64; ++i) {
    std::optional<uint64_t> at = c.NextDeadline();
    if (!at) break;
    c.OnTimer(*at, &out);
  }
  const bool holds = c.state() == DhcpState::kBound || c.state() == DhcpState::kRenewing ||
                     c.state() == DhcpState::kRebinding;
  if (holds != c.lease().has_value()) std::abort();
  for (const DhcpTransmit& t : out.transmits) {
    if (!ParseDhcpMessage(t.payload).ok()) std::abort();  // what we send must parse
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> input(data, size);
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(input);
  if (m.ok()) {
    const std::vector<uint8_t> bytes = SerializeDhcpMessage(*m);
    absl::StatusOr<DhcpMessage> again = ParseDhcpMessage(bytes);
    if (!again.ok() || *again != *m) std::abort();
    if (SerializeDhcpMessage(*again) != bytes) std::abort();
  }

  DhcpActions out;
  DhcpClient selecting = NewClient();
  if (!selecting.Start(0, &out).ok()) std::abort();
  Feed(selecting, data, size, 100);

  DhcpClient requesting = NewClient();
  (void)requesting.Start(0, &out);
  requesting.OnMessage(10, SerializeDhcpMessage(Reply(MessageType::kOffer, requesting.xid())), &out);
  Feed(requesting, data, size, 100);

  DhcpClient renewing = NewClient();
  (void)renewing.Start(0, &out);
  renewing.OnMessage(10, SerializeDhcpMessage(Reply(MessageType::kOffer, renewing.xid())), &out);
  renewing.OnMessage(20, SerializeDhcpMessage(Reply(MessageType::kAck, renewing.xid())), &out);
  if (renewing.state() != DhcpState::kBound) std::abort();
  renewing.OnTimer(10 + 60'000, &out);  // T1 of a 120 s lease
  if (renewing.state() != DhcpState::kRenewing) std::abort();
  Feed(renewing, data, size, 10 + 60'001);
  return 0;
}
