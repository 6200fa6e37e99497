// The lwIP glue (src/stack/stack.h) on an in-memory link: packets made with Scapy
// (fixtures/make_fixtures.py) go in, and what the stack sends back is checked field by field.
//
// lwIP keeps global state, so one Stack exists at a time per process; each test creates its
// own and destroys it. Stack::Create claims lwIP's core thread, so everything here (the raw
// API calls included) runs on the test thread, which also runs the io_context.
#include "stack/stack.h"
#include "stack/lwip_port.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lwip/ip4_addr.h"
#include "lwip/pbuf.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "tun/memory_link.h"
#include "wire/ip.h"

namespace dpm::stack {
namespace {

constexpr uint32_t kStackAddress = 0x0a4d0102;  // 10.77.1.2, as in the fixtures
constexpr uint32_t kPeerAddress = 0x0a4d0101;   // 10.77.1.1
constexpr uint32_t kFixtureSynSeq = 0x11223344;

std::vector<uint8_t> Fixture(const std::string& name) {
  std::ifstream in(std::string(DPM_UNIT_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << "missing fixture " << name << " (run fixtures/make_fixtures.py)";
  return bytes;
}

// ---- a minimal reader of what the stack sends (independent of the code under test) ------

uint16_t Be16(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
uint32_t Be32(const std::vector<uint8_t>& b, size_t off) {
  return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}

// RFC 1071 Internet checksum accumulation (not folded, not inverted).
uint32_t SumWords(const uint8_t* data, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>((data[i] << 8) | data[i + 1]);
  if (len % 2 != 0) sum += static_cast<uint32_t>(data[len - 1] << 8);
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
// A received header or segment whose checksum field is right sums to 0xffff.
bool ChecksumOk(const uint8_t* data, size_t len, uint32_t pseudo = 0) {
  return Fold(SumWords(data, len, pseudo)) == 0xffff;
}

struct Ipv4 {
  uint32_t src = 0, dst = 0;
  uint8_t protocol = 0, ttl = 0, tos = 0;
  size_t header_length = 0, total_length = 0;
  std::vector<uint8_t> payload;
};

// Parses an IPv4 packet the stack sent, checking its header and header checksum.
::testing::AssertionResult ParseIpv4(const std::vector<uint8_t>& p, Ipv4* out) {
  if (p.size() < 20) return ::testing::AssertionFailure() << "packet of " << p.size() << " bytes";
  if ((p[0] >> 4) != 4) return ::testing::AssertionFailure() << "version " << (p[0] >> 4);
  out->header_length = static_cast<size_t>(p[0] & 0x0f) * 4;
  out->total_length = Be16(p, 2);
  if (out->header_length < 20 || out->total_length != p.size()) {
    return ::testing::AssertionFailure() << "IHL " << out->header_length << ", total length "
                                         << out->total_length << ", packet " << p.size();
  }
  if (!ChecksumOk(p.data(), out->header_length)) return ::testing::AssertionFailure() << "bad IP header checksum";
  out->tos = p[1];
  out->ttl = p[8];
  out->protocol = p[9];
  out->src = Be32(p, 12);
  out->dst = Be32(p, 16);
  out->payload.assign(p.begin() + static_cast<ptrdiff_t>(out->header_length), p.end());
  return ::testing::AssertionSuccess();
}

struct Tcp {
  uint16_t src_port = 0, dst_port = 0, window = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  std::map<uint8_t, std::vector<uint8_t>> options;  // kind -> value bytes
};
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr uint8_t kOptMss = 2, kOptWindowScale = 3, kOptSackPermitted = 4;

// Parses a TCP segment, checking its checksum over the RFC 9293 §3.1 pseudo-header.
::testing::AssertionResult ParseTcp(const Ipv4& ip, Tcp* out) {
  const std::vector<uint8_t>& s = ip.payload;
  if (ip.protocol != IPPROTO_TCP) return ::testing::AssertionFailure() << "protocol " << int{ip.protocol};
  if (s.size() < 20) return ::testing::AssertionFailure() << "segment of " << s.size() << " bytes";
  uint8_t pseudo[12];
  for (int i = 0; i < 4; ++i) {
    pseudo[i] = static_cast<uint8_t>(ip.src >> (24 - 8 * i));
    pseudo[4 + i] = static_cast<uint8_t>(ip.dst >> (24 - 8 * i));
  }
  pseudo[8] = 0;
  pseudo[9] = IPPROTO_TCP;
  pseudo[10] = static_cast<uint8_t>(s.size() >> 8);
  pseudo[11] = static_cast<uint8_t>(s.size());
  if (!ChecksumOk(s.data(), s.size(), SumWords(pseudo, sizeof(pseudo)))) {
    return ::testing::AssertionFailure() << "bad TCP checksum";
  }
  out->src_port = Be16(s, 0);
  out->dst_port = Be16(s, 2);
  out->seq = Be32(s, 4);
  out->ack = Be32(s, 8);
  const size_t data_offset = static_cast<size_t>(s[12] >> 4) * 4;
  out->flags = s[13];
  out->window = Be16(s, 14);
  if (data_offset < 20 || data_offset > s.size()) return ::testing::AssertionFailure() << "data offset " << data_offset;
  for (size_t i = 20; i < data_offset;) {
    const uint8_t kind = s[i];
    if (kind == 0) break;  // end of option list
    if (kind == 1) {       // no-operation
      ++i;
      continue;
    }
    if (i + 1 >= data_offset || s[i + 1] < 2 || i + s[i + 1] > data_offset) {
      return ::testing::AssertionFailure() << "malformed option at " << i;
    }
    out->options[kind].assign(s.begin() + static_cast<ptrdiff_t>(i + 2),
                              s.begin() + static_cast<ptrdiff_t>(i + s[i + 1]));
    i += s[i + 1];
  }
  return ::testing::AssertionSuccess();
}

// ---- fixture -------------------------------------------------------------------------

class StackTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (tcp_pcb* listener : listeners_) tcp_close(listener);
    listeners_.clear();
    stack_.reset();
  }

  void CreateStack(size_t mtu) {
    auto link = std::make_unique<tun::MemoryLink>(mtu);
    link_ = link.get();
    StackConfig config;
    config.address = kStackAddress;
    config.prefix = 24;
    auto stack = Stack::Create(io_, std::move(link), config);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
  }

  // A listening pcb made with lwIP's raw API (closed in TearDown).
  void Listen(uint16_t port) {
    tcp_pcb* pcb = tcp_new();
    ASSERT_NE(pcb, nullptr);
    ASSERT_EQ(tcp_bind(pcb, IP4_ADDR_ANY, port), ERR_OK);
    tcp_pcb* listener = tcp_listen(pcb);
    ASSERT_NE(listener, nullptr);
    listeners_.push_back(listener);
    stack_->AfterCoreWork();
  }

  // Runs the io_context until the stack has sent something, for at most two seconds.
  bool RunUntilSent() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (link_->outbound_size() == 0 && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(2));
    }
    return link_->outbound_size() > 0;
  }

  // Runs the io_context for `ms` milliseconds (for checks that nothing is sent).
  void RunFor(int ms) { io_.run_for(std::chrono::milliseconds(ms)); }

  // Injects `packet` and returns the first packet the stack sends in answer, parsed.
  ::testing::AssertionResult Exchange(const std::vector<uint8_t>& packet, Ipv4* reply) {
    link_->InjectInbound(packet);
    if (!RunUntilSent()) return ::testing::AssertionFailure() << "the stack sent nothing";
    std::vector<uint8_t> out;
    link_->TakeOutbound(&out);
    return ParseIpv4(out, reply);
  }

  ::testing::AssertionResult SynAck(const std::string& fixture, Tcp* tcp) {
    Ipv4 ip;
    if (auto r = Exchange(Fixture(fixture), &ip); !r) return r;
    if (ip.src != kStackAddress || ip.dst != kPeerAddress) return ::testing::AssertionFailure() << "addresses";
    return ParseTcp(ip, tcp);
  }

  uint64_t Drops(wire::IpCheck reason) const { return stack_->counters().ip_drops[static_cast<size_t>(reason)]; }

  boost::asio::io_context io_;
  tun::MemoryLink* link_ = nullptr;  // owned by stack_
  std::unique_ptr<Stack> stack_;
  std::vector<tcp_pcb*> listeners_;
};

// ---- creation ------------------------------------------------------------------------

TEST_F(StackTest, SecondStackInTheSameProcessIsFailedPrecondition) {
  CreateStack(1500);
  StackConfig config;
  config.address = 0x0a4d0203;
  auto second = Stack::Create(io_, std::make_unique<tun::MemoryLink>(1500), config);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();

  // Once the first is gone, a new one may be made.
  stack_.reset();
  CreateStack(1500);
}

TEST_F(StackTest, MissingAddressOrBadPrefixIsInvalidArgument) {
  StackConfig config;
  config.address = 0;
  EXPECT_EQ(Stack::Create(io_, std::make_unique<tun::MemoryLink>(1500), config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.address = kStackAddress;
  for (int prefix : {0, 33, -1}) {
    config.prefix = prefix;
    EXPECT_EQ(Stack::Create(io_, std::make_unique<tun::MemoryLink>(1500), config).status().code(),
              absl::StatusCode::kInvalidArgument)
        << prefix;
  }
  // The failures above did not leave a stack claimed.
  CreateStack(1500);
}

// ---- ICMP echo (RFC 792) -------------------------------------------------------------

void ExpectEchoReply(const Ipv4& ip, const std::vector<uint8_t>& request) {
  EXPECT_EQ(ip.src, kStackAddress);
  EXPECT_EQ(ip.dst, kPeerAddress);
  ASSERT_EQ(ip.protocol, IPPROTO_ICMP);
  const std::vector<uint8_t>& icmp = ip.payload;
  ASSERT_EQ(icmp.size(), request.size() - 20);
  EXPECT_EQ(icmp[0], 0) << "type: echo reply";
  EXPECT_EQ(icmp[1], 0) << "code";
  EXPECT_TRUE(ChecksumOk(icmp.data(), icmp.size())) << "ICMP checksum";
  EXPECT_EQ(Be16(icmp, 4), 0x1234) << "identifier";
  EXPECT_EQ(Be16(icmp, 6), 7) << "sequence number";
  EXPECT_TRUE(std::equal(icmp.begin() + 8, icmp.end(), request.begin() + 28)) << "payload";
}

TEST_F(StackTest, EchoRequestGetsAnEchoReplyWithTheSameIdSequenceAndPayload) {
  CreateStack(1500);
  const std::vector<uint8_t> request = Fixture("icmp_echo_request.bin");
  Ipv4 reply;
  ASSERT_TRUE(Exchange(request, &reply));
  ExpectEchoReply(reply, request);
  EXPECT_EQ(stack_->counters().delivered, 1u);
  EXPECT_EQ(link_->outbound_size(), 0u) << "exactly one reply";
}

TEST_F(StackTest, EchoRequestWithEthernetPaddingIsAnsweredWithoutThePadding) {
  CreateStack(1500);
  const std::vector<uint8_t> request = Fixture("icmp_echo_request.bin");
  std::vector<uint8_t> padded = request;
  padded.resize(request.size() + 18, 0);
  Ipv4 reply;
  ASSERT_TRUE(Exchange(padded, &reply));
  ExpectEchoReply(reply, request);
}

// ---- malformed packets are dropped by reason before lwIP -----------------------------

TEST_F(StackTest, MalformedPacketsAreDroppedAndCountedByReasonAndNothingIsSent) {
  CreateStack(1500);
  const std::vector<uint8_t> good = Fixture("icmp_echo_request.bin");
  struct Case {
    std::string label;
    std::vector<uint8_t> packet;
    wire::IpCheck reason;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", {}, wire::IpCheck::kTooShort});
  cases.push_back({"19 bytes", std::vector<uint8_t>(good.begin(), good.begin() + 19), wire::IpCheck::kTooShort});
  std::vector<uint8_t> v6 = good;
  v6[0] = 0x65;
  cases.push_back({"version 6", v6, wire::IpCheck::kBadVersion});
  std::vector<uint8_t> v5 = good;
  v5[0] = 0x55;
  cases.push_back({"version 5", v5, wire::IpCheck::kBadVersion});
  std::vector<uint8_t> ihl4 = good;
  ihl4[0] = 0x44;
  cases.push_back({"IHL 4", ihl4, wire::IpCheck::kBadHeaderLength});
  std::vector<uint8_t> long_total = good;
  long_total[3] = static_cast<uint8_t>(good.size() + 1);
  cases.push_back({"total length past the end", long_total, wire::IpCheck::kBadTotalLength});
  std::vector<uint8_t> oversize = good;
  oversize.resize(1501, 0);
  cases.push_back({"larger than the MTU", oversize, wire::IpCheck::kOversize});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    const uint64_t before = Drops(c.reason);
    link_->InjectInbound(c.packet);
    RunFor(20);
    EXPECT_EQ(Drops(c.reason), before + 1);
    EXPECT_EQ(link_->outbound_size(), 0u);
  }
  uint64_t total_drops = 0;
  for (uint64_t n : stack_->counters().ip_drops) total_drops += n;
  EXPECT_EQ(total_drops, cases.size()) << "each packet counted once, under its own reason";
  EXPECT_EQ(stack_->counters().delivered, 0u);

  // The stack is unharmed: a good packet after them is answered.
  Ipv4 reply;
  ASSERT_TRUE(Exchange(good, &reply));
  ExpectEchoReply(reply, good);
}

TEST_F(StackTest, BadIpHeaderChecksumIsDroppedByLwip) {
  CreateStack(1500);
  std::vector<uint8_t> packet = Fixture("icmp_echo_request.bin");
  packet[10] ^= 0x01;
  const STAT_COUNTER chkerr_before = lwip_stats.ip.chkerr;
  link_->InjectInbound(packet);
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  EXPECT_EQ(stack_->counters().delivered, 1u) << "the header checksum is lwIP's to check";
  EXPECT_EQ(lwip_stats.ip.chkerr, chkerr_before + 1);
}

TEST_F(StackTest, BadIcmpChecksumIsDroppedByLwip) {
  CreateStack(1500);
  std::vector<uint8_t> packet = Fixture("icmp_echo_request.bin");
  packet.back() ^= 0x01;  // payload changed, ICMP checksum not
  const STAT_COUNTER chkerr_before = lwip_stats.icmp.chkerr;
  link_->InjectInbound(packet);
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  EXPECT_EQ(lwip_stats.icmp.chkerr, chkerr_before + 1);
}

// The echo request fixture sent to 10.77.1.LAST instead, with the header checksum updated
// incrementally (RFC 1624).
// Sets one byte of an IPv4 header and updates the header checksum (RFC 1624 eqn. 3).
void PatchHeaderByte(std::vector<uint8_t>& packet, size_t offset, uint8_t value) {
  const size_t word = offset & ~size_t{1};
  const uint16_t old_word = Be16(packet, word);
  packet[offset] = value;
  const uint16_t new_word = Be16(packet, word);
  uint16_t checksum = Be16(packet, 10);
  const uint16_t updated = static_cast<uint16_t>(~Fold(uint32_t{static_cast<uint16_t>(~checksum)} +
                                                       static_cast<uint16_t>(~old_word) + new_word));
  packet[10] = static_cast<uint8_t>(updated >> 8);
  packet[11] = static_cast<uint8_t>(updated);
  EXPECT_TRUE(ChecksumOk(packet.data(), 20));
}

// The echo request fixture sent to 10.77.1.<last>, with TOS `tos`.
std::vector<uint8_t> EchoRequestTo(uint8_t last, uint8_t tos = 0) {
  std::vector<uint8_t> packet = Fixture("icmp_echo_request.bin");
  PatchHeaderByte(packet, 19, last);
  PatchHeaderByte(packet, 1, tos);
  return packet;
}

TEST_F(StackTest, PacketForAnotherAddressIsNotAnswered) {
  CreateStack(1500);
  link_->InjectInbound(EchoRequestTo(99));
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
}

// Per-socket addresses (design §7) through lwIP's accept hook (third_party/lwip/patches/0001):
// an extra address is ours exactly while something holds it.
TEST_F(StackTest, PerSocketAddressIsAcceptedOnlyWhileHeld) {
  CreateStack(1500);
  const uint32_t extra = (kStackAddress & 0xffffff00u) | 99;
  AcceptAddress(extra);
  AcceptAddress(extra);  // two sockets hold it
  Ipv4 reply;
  ASSERT_TRUE(Exchange(EchoRequestTo(99), &reply));
  EXPECT_EQ(reply.src, extra) << "answered from the address it was sent to";
  EXPECT_EQ(reply.dst, kPeerAddress);
  StopAcceptingAddress(extra);
  ASSERT_TRUE(Exchange(EchoRequestTo(99), &reply)) << "still held once";
  StopAcceptingAddress(extra);
  EXPECT_FALSE(AcceptsAddress(extra));
  link_->InjectInbound(EchoRequestTo(99));
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u) << "released: not ours any more";
  EXPECT_EQ(AcceptedAddressCount(), 0u);
}

// QoS per address (docs/design.md §7): packets from a marked address leave with its DSCP, the
// ECN bits kept and the header checksum right; other addresses' packets are untouched.
TEST_F(StackTest, AddressDscpMarksPacketsFromThatAddressOnlyAndKeepsEcn) {
  CreateStack(1500);
  const uint32_t extra = (kStackAddress & 0xffffff00u) | 99;
  AcceptAddress(extra);
  stack_->SetAddressDscp(extra, 46);  // EF
  EXPECT_EQ(stack_->AddressDscp(extra), 46);
  Ipv4 reply;
  ASSERT_TRUE(Exchange(EchoRequestTo(99, /*tos=*/0x01), &reply));  // ParseIpv4 checks the checksum
  EXPECT_EQ(reply.src, extra);
  EXPECT_EQ(reply.tos, (46 << 2) | 0x01) << "DSCP EF, ECT(1) kept";
  ASSERT_TRUE(Exchange(EchoRequestTo(2, /*tos=*/0x01 | (10 << 2)), &reply));
  EXPECT_EQ(reply.src, kStackAddress);
  EXPECT_EQ(reply.tos, 0x01 | (10 << 2)) << "the common address is not marked";
  EXPECT_EQ(stack_->dscp_marked(), 1u);
  stack_->SetAddressDscp(extra, -1);
  EXPECT_EQ(stack_->AddressDscp(extra), -1);
  ASSERT_TRUE(Exchange(EchoRequestTo(99, /*tos=*/0x01), &reply));
  EXPECT_EQ(reply.tos, 0x01) << "cleared";
  StopAcceptingAddress(extra);
}

// ---- output ----------------------------------------------------------------------------

// lwIP hands the netif a pbuf chain; the link must get the whole packet or an error, never a
// shortened packet whose IP total length no longer matches.
TEST_F(StackTest, OutputOfALongPbufChainIsSentWholeOrRefused) {
  CreateStack(1500);
  const std::vector<uint8_t> packet = Fixture("icmp_echo_request.bin");  // 55 bytes
  std::vector<uint8_t> padded = packet;
  padded.resize(100, 0);
  padded[2] = 0;
  padded[3] = 100;  // total length 100 (the IP header checksum does not matter to the link)
  pbuf* chain = nullptr;
  for (uint8_t byte : padded) {  // one pbuf per byte: a 100-part chain
    pbuf* part = pbuf_alloc(PBUF_RAW, 1, PBUF_RAM);
    ASSERT_NE(part, nullptr);
    *static_cast<uint8_t*>(part->payload) = byte;
    if (chain == nullptr) {
      chain = part;
    } else {
      pbuf_cat(chain, part);
    }
  }
  ASSERT_EQ(pbuf_clen(chain), 100);
  ip4_addr_t peer;
  ip4_addr_set_u32(&peer, htonl(kPeerAddress));
  netif* nif = stack_->lwip_netif();
  const err_t err = nif->output(nif, chain, &peer);
  pbuf_free(chain);

  std::vector<uint8_t> sent;
  if (err != ERR_OK) {
    EXPECT_FALSE(link_->TakeOutbound(&sent)) << "refused, yet something was sent";
    return;
  }
  ASSERT_TRUE(link_->TakeOutbound(&sent));
  EXPECT_EQ(sent, padded);
}

// ---- TCP handshake -------------------------------------------------------------------

class StackMssTest : public StackTest, public ::testing::WithParamInterface<size_t> {};

// RFC 9293 §3.7.1: the MSS option is the link MTU minus the IP and TCP headers.
TEST_P(StackMssTest, SynAckCarriesMssFromTheLinkMtuAndWindowScaleSix) {
  const size_t mtu = GetParam();
  CreateStack(mtu);
  Listen(8080);
  Tcp tcp;
  ASSERT_TRUE(SynAck("tcp_syn_8080_ws.bin", &tcp));
  EXPECT_EQ(tcp.src_port, 8080);
  EXPECT_EQ(tcp.dst_port, 40000);
  EXPECT_EQ(tcp.flags, kSyn | kAck);
  EXPECT_EQ(tcp.ack, kFixtureSynSeq + 1);
  ASSERT_EQ(tcp.options.count(kOptMss), 1u);
  ASSERT_EQ(tcp.options[kOptMss].size(), 2u);
  EXPECT_EQ((tcp.options[kOptMss][0] << 8) | tcp.options[kOptMss][1], static_cast<int>(mtu - 40));
  // RFC 7323 §2: the SYN offered window scaling, so the SYN-ACK answers with our shift.
  ASSERT_EQ(tcp.options.count(kOptWindowScale), 1u);
  ASSERT_EQ(tcp.options[kOptWindowScale].size(), 1u);
  EXPECT_EQ(tcp.options[kOptWindowScale][0], TCP_RCV_SCALE);
  EXPECT_EQ(TCP_RCV_SCALE, 6);
  EXPECT_GT(tcp.window, 0);
}

INSTANTIATE_TEST_SUITE_P(Mtus, StackMssTest, ::testing::Values(size_t{1500}, size_t{9000}, size_t{1280}),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return absl::StrCat("Mtu", info.param);
                         });

TEST_F(StackTest, SynAckHasNoWindowScaleWhenTheSynDidNotOfferIt) {
  CreateStack(1500);
  Listen(8080);
  Tcp tcp;
  ASSERT_TRUE(SynAck("tcp_syn_8080_nows.bin", &tcp));
  EXPECT_EQ(tcp.flags, kSyn | kAck);
  EXPECT_EQ(tcp.dst_port, 40002);
  EXPECT_EQ(tcp.options.count(kOptWindowScale), 0u) << "RFC 7323 §2.2: only if the SYN had it";
  EXPECT_EQ(tcp.options.count(kOptMss), 1u);
}

TEST_F(StackTest, SynAckAllowsSackWhenTheSynOfferedIt) {
  CreateStack(1500);
  Listen(8080);
  Tcp tcp;
  ASSERT_TRUE(SynAck("tcp_syn_8080_ws.bin", &tcp));
  EXPECT_EQ(tcp.options.count(kOptSackPermitted), 1u);
}

// RFC 6528: ISNs come from a keyed hash of the 4-tuple plus a 4-microsecond clock, so two
// connections opened moments apart are not a predictable distance apart (lwIP's default ISN
// is a counter).
TEST_F(StackTest, SynAcksForDifferentSourcePortsHaveUnrelatedIsns) {
  CreateStack(1500);
  Listen(8080);
  const auto start = std::chrono::steady_clock::now();
  Tcp first, second;
  ASSERT_TRUE(SynAck("tcp_syn_8080_ws.bin", &first));
  ASSERT_TRUE(SynAck("tcp_syn_8080_ws_port2.bin", &second));
  const auto elapsed_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(first.dst_port, 40000);
  ASSERT_EQ(second.dst_port, 40001);
  EXPECT_NE(first.seq, second.seq);
  // Were the ISN the clock alone (or a counter), the two would be at most the elapsed time
  // (in 4 us ticks) apart; with the keyed hash they are almost surely much further.
  const uint32_t distance = std::min(first.seq - second.seq, second.seq - first.seq);
  EXPECT_GT(distance, static_cast<uint32_t>(elapsed_us / 4 + 1024))
      << "ISNs " << first.seq << " and " << second.seq << " after " << elapsed_us << " us";
}

// RFC 9293 §3.10.7.1: a SYN to a CLOSED port gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
TEST_F(StackTest, SynToAClosedPortGetsReset) {
  CreateStack(1500);
  Tcp tcp;
  ASSERT_TRUE(SynAck("tcp_syn_9999.bin", &tcp));
  EXPECT_EQ(tcp.src_port, 9999);
  EXPECT_EQ(tcp.dst_port, 40003);
  EXPECT_EQ(tcp.flags & (kRst | kAck | kSyn | kFin), kRst | kAck);
  EXPECT_EQ(tcp.seq, 0u);
  EXPECT_EQ(tcp.ack, kFixtureSynSeq + 1);
}

}  // namespace
}  // namespace dpm::stack
