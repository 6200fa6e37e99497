// The lwIP glue on an Ethernet link (a MemoryLink carrying frames, as a TAP device does): ARP
// for the stack's address and for per-socket addresses (third_party/lwip/patches/0002), IPv4
// in frames, the checks before lwIP, and RFC 5227 announcements. Frames the stack sends are
// read here byte by byte, independently of src/wire/ethernet.h.
//
// lwIP keeps global state: one Stack per test, everything on the test thread.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "stack/lwip_port.h"
#include "stack/stack.h"
#include "tun/memory_link.h"
#include "wire/ethernet.h"
#include "wire/ip.h"

namespace dpm::stack {
namespace {

using Mac = std::array<uint8_t, 6>;

constexpr uint32_t kStackAddress = 0x0a4d0102;  // 10.77.1.2, as in the fixtures
constexpr uint32_t kPeerAddress = 0x0a4d0101;   // 10.77.1.1
constexpr uint32_t kHeldAddress = 0x0a4d0164;   // 10.77.1.100: a per-socket address
constexpr Mac kStackMac = {0x02, 0x64, 0x0a, 0x4d, 0x01, 0x02};  // the default: 02:64 + address
constexpr Mac kPeerMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

std::vector<uint8_t> Fixture(const std::string& name) {
  std::ifstream in(std::string(DPM_UNIT_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << "missing fixture " << name;
  return bytes;
}

uint16_t Be16(const std::vector<uint8_t>& b, size_t off) { return static_cast<uint16_t>((b[off] << 8) | b[off + 1]); }
uint32_t Be32(const std::vector<uint8_t>& b, size_t off) {
  return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}
Mac MacAt(const std::vector<uint8_t>& b, size_t off) {
  Mac m;
  std::copy(b.begin() + static_cast<ptrdiff_t>(off), b.begin() + static_cast<ptrdiff_t>(off + 6), m.begin());
  return m;
}
void Put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Put32(std::vector<uint8_t>& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
void PutMac(std::vector<uint8_t>& b, const Mac& m) { b.insert(b.end(), m.begin(), m.end()); }

std::vector<uint8_t> Frame(const Mac& dst, const Mac& src, uint16_t type, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f;
  PutMac(f, dst);
  PutMac(f, src);
  Put16(f, type);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// RFC 826: an ARP packet for IPv4 over Ethernet, in a frame.
std::vector<uint8_t> ArpFrame(const Mac& dst, uint16_t op, const Mac& sha, uint32_t spa, const Mac& tha,
                              uint32_t tpa) {
  std::vector<uint8_t> a;
  Put16(a, 1);
  Put16(a, 0x0800);
  a.push_back(6);
  a.push_back(4);
  Put16(a, op);
  PutMac(a, sha);
  Put32(a, spa);
  PutMac(a, tha);
  Put32(a, tpa);
  return Frame(dst, sha, 0x0806, a);
}
std::vector<uint8_t> ArpRequestFor(uint32_t target) {
  return ArpFrame(kBroadcast, 1, kPeerMac, kPeerAddress, Mac{}, target);
}

struct Arp {
  Mac eth_dst{}, eth_src{};
  uint16_t op = 0;
  Mac sha{}, tha{};
  uint32_t spa = 0, tpa = 0;
};

::testing::AssertionResult ParseArp(const std::vector<uint8_t>& f, Arp* out) {
  if (f.size() < 42) return ::testing::AssertionFailure() << "frame of " << f.size() << " bytes";
  if (Be16(f, 12) != 0x0806) return ::testing::AssertionFailure() << "EtherType " << Be16(f, 12);
  if (Be16(f, 14) != 1 || Be16(f, 16) != 0x0800 || f[18] != 6 || f[19] != 4) {
    return ::testing::AssertionFailure() << "not IPv4 over Ethernet";
  }
  out->eth_dst = MacAt(f, 0);
  out->eth_src = MacAt(f, 6);
  out->op = Be16(f, 20);
  out->sha = MacAt(f, 22);
  out->spa = Be32(f, 28);
  out->tha = MacAt(f, 32);
  out->tpa = Be32(f, 38);
  return ::testing::AssertionSuccess();
}

class StackEthernetTest : public ::testing::Test {
 protected:
  void TearDown() override { stack_.reset(); }

  void CreateStack(Mac mac = {}) {
    auto link = std::make_unique<tun::MemoryLink>(1500, /*ethernet=*/true);
    link_ = link.get();
    StackConfig config;
    config.address = kStackAddress;
    config.prefix = 24;
    config.mac = mac;
    auto stack = Stack::Create(io_, std::move(link), config);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    RunFor(5);
    std::vector<uint8_t> frame;
    while (link_->TakeOutbound(&frame)) initial_.push_back(frame);  // lwIP's gratuitous ARP
  }

  bool RunUntilSent(int ms = 2000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (link_->outbound_size() == 0 && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(2));
    }
    return link_->outbound_size() > 0;
  }
  void RunFor(int ms) { io_.run_for(std::chrono::milliseconds(ms)); }

  // Injects a frame and returns the first frame sent in answer.
  ::testing::AssertionResult Exchange(const std::vector<uint8_t>& frame, std::vector<uint8_t>* reply) {
    link_->InjectInbound(frame);
    if (!RunUntilSent()) return ::testing::AssertionFailure() << "the stack sent nothing";
    link_->TakeOutbound(reply);
    return ::testing::AssertionSuccess();
  }

  // The peer asks for the stack's address, so lwIP learns the peer's MAC from the request.
  void LearnPeer() {
    std::vector<uint8_t> reply;
    ASSERT_TRUE(Exchange(ArpRequestFor(kStackAddress), &reply));
  }

  uint64_t FrameDrops(wire::FrameCheck c) const { return stack_->counters().frame_drops[static_cast<size_t>(c)]; }
  uint64_t AllDrops() const {
    uint64_t n = 0;
    for (uint64_t d : stack_->counters().frame_drops) n += d;
    for (uint64_t d : stack_->counters().ip_drops) n += d;
    return n;
  }

  boost::asio::io_context io_;
  tun::MemoryLink* link_ = nullptr;  // owned by stack_
  std::unique_ptr<Stack> stack_;
  std::vector<std::vector<uint8_t>> initial_;
};

// The echo request fixture (10.77.1.1 -> 10.77.1.2) in a frame to `dst`.
std::vector<uint8_t> EchoFrame(const Mac& dst) { return Frame(dst, kPeerMac, 0x0800, Fixture("icmp_echo_request.bin")); }

TEST_F(StackEthernetTest, ComingUpAnnouncesTheAddressWithTheDefaultMac) {
  CreateStack();
  EXPECT_TRUE(stack_->ethernet());
  EXPECT_EQ(stack_->mac(), kStackMac);
  ASSERT_EQ(initial_.size(), 1u);
  Arp arp;
  ASSERT_TRUE(ParseArp(initial_[0], &arp));
  EXPECT_EQ(arp.eth_dst, kBroadcast);
  EXPECT_EQ(arp.eth_src, kStackMac);
  EXPECT_EQ(arp.op, 1);
  EXPECT_EQ(arp.spa, kStackAddress);
  EXPECT_EQ(arp.tpa, kStackAddress);
}

TEST_F(StackEthernetTest, AMulticastMacIsInvalidArgument) {
  StackConfig config;
  config.address = kStackAddress;
  config.mac = {0x03, 0, 0, 0, 0, 1};
  auto stack = Stack::Create(io_, std::make_unique<tun::MemoryLink>(1500, true), config);
  EXPECT_EQ(stack.status().code(), absl::StatusCode::kInvalidArgument) << stack.status();
}

TEST_F(StackEthernetTest, ArpRequestForTheStackAddressIsAnsweredWithItsMac) {
  const Mac mac = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  CreateStack(mac);
  std::vector<uint8_t> frame;
  ASSERT_TRUE(Exchange(ArpRequestFor(kStackAddress), &frame));
  Arp arp;
  ASSERT_TRUE(ParseArp(frame, &arp));
  EXPECT_EQ(arp.eth_dst, kPeerMac) << "unicast to the asker";
  EXPECT_EQ(arp.eth_src, mac);
  EXPECT_EQ(arp.op, 2) << "reply";
  EXPECT_EQ(arp.sha, mac);
  EXPECT_EQ(arp.spa, kStackAddress);
  EXPECT_EQ(arp.tha, kPeerMac);
  EXPECT_EQ(arp.tpa, kPeerAddress);
  EXPECT_EQ(link_->outbound_size(), 0u) << "one reply";
}

// The per-socket-address patent on a shared Ethernet: a per-socket address is reachable only if its neighbours
// learn where it is, so the stack answers ARP for it while a socket holds it.
TEST_F(StackEthernetTest, ArpRequestForAHeldAddressIsAnsweredFromThatAddressWhileHeld) {
  CreateStack();
  AcceptAddress(kHeldAddress);
  std::vector<uint8_t> frame;
  ASSERT_TRUE(Exchange(ArpRequestFor(kHeldAddress), &frame));
  Arp arp;
  ASSERT_TRUE(ParseArp(frame, &arp));
  EXPECT_EQ(arp.op, 2);
  EXPECT_EQ(arp.sha, kStackMac);
  EXPECT_EQ(arp.spa, kHeldAddress) << "sender protocol address: the address asked for, not the netif's";
  EXPECT_EQ(arp.tpa, kPeerAddress);
  EXPECT_EQ(arp.eth_dst, kPeerMac);

  StopAcceptingAddress(kHeldAddress);
  link_->InjectInbound(ArpRequestFor(kHeldAddress));
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u) << "released: no longer answered";
  EXPECT_EQ(AcceptedAddressCount(), 0u);
}

TEST_F(StackEthernetTest, ArpRequestForAnotherAddressIsNotAnswered) {
  CreateStack();
  AcceptAddress(kHeldAddress);
  link_->InjectInbound(ArpRequestFor(0x0a4d0163));
  link_->InjectInbound(ArpRequestFor(kPeerAddress));
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  StopAcceptingAddress(kHeldAddress);
}

void ExpectEchoReplyFrame(const std::vector<uint8_t>& f, uint32_t from) {
  ASSERT_GE(f.size(), 14u + 28u);
  EXPECT_EQ(MacAt(f, 0), kPeerMac) << "to the peer's MAC";
  EXPECT_EQ(MacAt(f, 6), kStackMac) << "from ours";
  ASSERT_EQ(Be16(f, 12), 0x0800);
  std::vector<uint8_t> ip(f.begin() + 14, f.end());
  size_t total = 0;
  ASSERT_EQ(wire::CheckIpv4(ip, &total), wire::IpCheck::kOk);
  EXPECT_EQ(total, ip.size()) << "no padding added";
  EXPECT_EQ(Be32(ip, 12), from);
  EXPECT_EQ(Be32(ip, 16), kPeerAddress);
  EXPECT_EQ(ip[9], 1) << "ICMP";
  EXPECT_EQ(ip[20], 0) << "echo reply";
}

TEST_F(StackEthernetTest, EchoReplyWaitsForArpThenGoesToThePeerMac) {
  CreateStack();
  std::vector<uint8_t> frame;
  // lwIP does not learn MACs from IP packets: it asks first and queues the reply (ARP_QUEUEING).
  ASSERT_TRUE(Exchange(EchoFrame(kStackMac), &frame));
  Arp arp;
  ASSERT_TRUE(ParseArp(frame, &arp));
  EXPECT_EQ(arp.op, 1);
  EXPECT_EQ(arp.eth_dst, kBroadcast);
  EXPECT_EQ(arp.spa, kStackAddress);
  EXPECT_EQ(arp.tpa, kPeerAddress);
  ASSERT_TRUE(Exchange(ArpFrame(kStackMac, 2, kPeerMac, kPeerAddress, kStackMac, kStackAddress), &frame));
  ExpectEchoReplyFrame(frame, kStackAddress);
  EXPECT_EQ(stack_->counters().delivered, 2u);
}

TEST_F(StackEthernetTest, EchoRequestsWithAndWithoutEthernetPaddingAreAnswered) {
  CreateStack();
  LearnPeer();
  std::vector<uint8_t> frame;
  ASSERT_TRUE(Exchange(EchoFrame(kStackMac), &frame));
  ExpectEchoReplyFrame(frame, kStackAddress);
  std::vector<uint8_t> padded = EchoFrame(kStackMac);
  padded.resize(padded.size() + 20, 0);
  ASSERT_TRUE(Exchange(padded, &frame));
  ExpectEchoReplyFrame(frame, kStackAddress);
}

TEST_F(StackEthernetTest, PacketsForAHeldAddressAreAnsweredFromIt) {
  CreateStack();
  LearnPeer();
  AcceptAddress(kHeldAddress);
  std::vector<uint8_t> ip = Fixture("icmp_echo_request.bin");
  // Destination 10.77.1.100; the header checksum adjusted by the one changed word (RFC 1624).
  const uint32_t old_word = Be16(ip, 18), new_word = 0x0164;
  uint32_t sum = static_cast<uint16_t>(~Be16(ip, 10)) + static_cast<uint16_t>(~old_word) + new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[18] = 0x01;
  ip[19] = 0x64;
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  std::vector<uint8_t> frame;
  ASSERT_TRUE(Exchange(Frame(kStackMac, kPeerMac, 0x0800, ip), &frame));
  ExpectEchoReplyFrame(frame, kHeldAddress);
  StopAcceptingAddress(kHeldAddress);
}

TEST_F(StackEthernetTest, FrameForAnotherMacIsDroppedAndCounted) {
  CreateStack();
  LearnPeer();
  const uint64_t delivered = stack_->counters().delivered;
  link_->InjectInbound(EchoFrame({0x02, 0x64, 0x0a, 0x4d, 0x01, 0x03}));
  link_->InjectInbound(ArpFrame(kPeerMac, 1, kPeerMac, kPeerAddress, Mac{}, kStackAddress));
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  EXPECT_EQ(FrameDrops(wire::FrameCheck::kNotForUs), 2u);
  EXPECT_EQ(stack_->counters().delivered, delivered);
}

TEST_F(StackEthernetTest, OtherEtherTypesAndOversizeFramesAreDroppedAndCounted) {
  CreateStack();
  link_->InjectInbound(Frame(kBroadcast, kPeerMac, 0x86dd, std::vector<uint8_t>(40, 0x60)));
  std::vector<uint8_t> big = EchoFrame(kStackMac);
  big.resize(1515, 0);  // one byte over MTU + header
  link_->InjectInbound(big);
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  EXPECT_EQ(FrameDrops(wire::FrameCheck::kUnsupportedType), 1u);
  EXPECT_EQ(stack_->counters().ip_drops[static_cast<size_t>(wire::IpCheck::kOversize)], 1u);
}

// Every cut of a valid ARP request and IPv4 frame is dropped before lwIP (lwIP's etharp_input
// would read a whole ARP header from a short one), each counted once, and nothing is sent.
TEST_F(StackEthernetTest, TruncatedFramesAtEveryLengthAreDroppedAndCounted) {
  CreateStack();
  size_t cuts = 0;
  for (const std::vector<uint8_t>& whole : {ArpRequestFor(kStackAddress), EchoFrame(kStackMac)}) {
    for (size_t cut = 0; cut < whole.size(); ++cut) {
      link_->InjectInbound(std::vector<uint8_t>(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(cut)));
      ++cuts;
    }
  }
  RunFor(50);
  EXPECT_EQ(link_->outbound_size(), 0u);
  EXPECT_EQ(stack_->counters().delivered, 0u);
  EXPECT_EQ(AllDrops(), cuts) << "each cut counted once";
  EXPECT_EQ(FrameDrops(wire::FrameCheck::kTooShort), 28u) << "0..13 bytes, twice";
  EXPECT_EQ(FrameDrops(wire::FrameCheck::kBadArp), 28u) << "14..41 bytes of ARP";
  // The stack is unharmed.
  std::vector<uint8_t> frame;
  ASSERT_TRUE(Exchange(ArpRequestFor(kStackAddress), &frame));
}

// RFC 5227 §3: an announcement now and one ANNOUNCE_INTERVAL (2 s) later, the second only if
// the address is still held.
TEST_F(StackEthernetTest, AnnounceAddressSendsTwoAnnouncementsWhileHeld) {
  CreateStack();
  const uint32_t released = 0x0a4d0165;
  AcceptAddress(kHeldAddress);
  AcceptAddress(released);
  stack_->AnnounceAddress(kHeldAddress);
  stack_->AnnounceAddress(released);
  std::vector<std::vector<uint8_t>> sent;
  std::vector<uint8_t> frame;
  while (link_->TakeOutbound(&frame)) sent.push_back(frame);
  ASSERT_EQ(sent.size(), 2u) << "sent at once";
  for (size_t i = 0; i < 2; ++i) {
    Arp arp;
    ASSERT_TRUE(ParseArp(sent[i], &arp));
    const uint32_t address = i == 0 ? kHeldAddress : released;
    EXPECT_EQ(arp.eth_dst, kBroadcast);
    EXPECT_EQ(arp.op, 1);
    EXPECT_EQ(arp.sha, kStackMac);
    EXPECT_EQ(arp.spa, address);
    EXPECT_EQ(arp.tpa, address);
    EXPECT_EQ(arp.tha, Mac{});
  }
  StopAcceptingAddress(released);
  ASSERT_TRUE(RunUntilSent(3000));
  RunFor(100);
  ASSERT_TRUE(link_->TakeOutbound(&frame));
  Arp arp;
  ASSERT_TRUE(ParseArp(frame, &arp));
  EXPECT_EQ(arp.spa, kHeldAddress);
  EXPECT_EQ(link_->outbound_size(), 0u) << "nothing for the released address";
  EXPECT_EQ(stack_->counters().arp_announcements, 3u);
  StopAcceptingAddress(kHeldAddress);
}

TEST(StackL3LinkTest, AnnounceAddressIsANoOpOnAnL3Link) {
  boost::asio::io_context io;
  auto link = std::make_unique<tun::MemoryLink>(1500);
  tun::MemoryLink* raw = link.get();
  StackConfig config;
  config.address = kStackAddress;
  auto stack = Stack::Create(io, std::move(link), config);
  ASSERT_TRUE(stack.ok());
  EXPECT_FALSE((*stack)->ethernet());
  (*stack)->AnnounceAddress(kHeldAddress);
  io.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(raw->outbound_size(), 0u) << "no gratuitous ARP, no announcement";
}

}  // namespace
}  // namespace dpm::stack
