// Packet hooks (src/stack/packet_hooks.h): the chain itself (order, take, removal by handle),
// then the Stack's inbound and outbound hooks on an in-memory link, L3 (TUN) and Ethernet
// (TAP) alike — what lwIP sees after an inbound hook, and that outbound hooks see every IPv4
// packet lwIP sends with the head they are promised.
//
// lwIP keeps global state: one Stack per test, everything on the test thread, time on a
// ManualClock (nothing here waits for lwIP's timers).
#include "stack/packet_hooks.h"

#include <arpa/inet.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "stack/clock.h"
#include "stack/lwip_port.h"
#include "stack/stack.h"
#include "tun/memory_link.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::stack {
namespace {

// ---- the chain -------------------------------------------------------------------------

// Records its name when called; takes the packet when told to.
class NamedHook : public InboundHook {
 public:
  NamedHook(std::string name, std::vector<std::string>* calls, HookAction action = HookAction::kPass)
      : name_(std::move(name)), calls_(calls), action_(action) {}
  HookAction OnInbound(absl::Span<uint8_t>, wire::Offload&) override {
    calls_->push_back(name_);
    if (on_call) on_call();
    return action_;
  }
  std::function<void()> on_call;

 private:
  std::string name_;
  std::vector<std::string>* calls_;
  HookAction action_;
};

HookAction RunOnce(HookChain<InboundHook>& chain) {
  uint8_t byte = 0;
  wire::Offload offload;
  return chain.Run([&](InboundHook& h) { return h.OnInbound(absl::MakeSpan(&byte, 1), offload); });
}

TEST(StackHookChain, RunsHooksByOrderThenByAddingOrderUntilOneTakes) {
  HookChain<InboundHook> chain;
  std::vector<std::string> calls;
  NamedHook late("late", &calls), first("first", &calls), second("second", &calls);
  NamedHook taker("taker", &calls, HookAction::kTake), never("never", &calls);
  HookHandle h1 = chain.Add(10, &late);
  HookHandle h2 = chain.Add(-5, &first);
  HookHandle h3 = chain.Add(0, &second);
  EXPECT_EQ(RunOnce(chain), HookAction::kPass);
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second", "late"}));

  calls.clear();
  HookHandle h4 = chain.Add(0, &taker);  // same order as "second": after it
  HookHandle h5 = chain.Add(20, &never);
  EXPECT_EQ(RunOnce(chain), HookAction::kTake);
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second", "taker"})) << "nothing after the taker";
  EXPECT_EQ(chain.size(), 5u);
}

TEST(StackHookChain, ResettingOrDestroyingTheHandleRemovesTheHook) {
  HookChain<InboundHook> chain;
  std::vector<std::string> calls;
  NamedHook a("a", &calls), b("b", &calls);
  HookHandle ha = chain.Add(0, &a);
  EXPECT_TRUE(ha);
  {
    HookHandle hb = chain.Add(1, &b);
    RunOnce(chain);
  }
  ha.reset();
  EXPECT_FALSE(ha);
  RunOnce(chain);
  EXPECT_EQ(calls, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(chain.empty());

  // A moved handle keeps the hook; the moved-from one holds nothing.
  HookHandle moved;
  {
    HookHandle original = chain.Add(0, &a);
    moved = std::move(original);
  }
  calls.clear();
  RunOnce(chain);
  EXPECT_EQ(calls, (std::vector<std::string>{"a"}));
}

TEST(StackHookChain, HooksRemovedWhileTheChainRunsAreSkippedAndAddedOnesRunFromTheNextPacket) {
  HookChain<InboundHook> chain;
  std::vector<std::string> calls;
  NamedHook remover("remover", &calls), victim("victim", &calls), newcomer("newcomer", &calls);
  HookHandle h_victim, h_new;
  HookHandle h_remover = chain.Add(0, &remover);
  h_victim = chain.Add(1, &victim);
  remover.on_call = [&] {
    h_victim.reset();
    h_remover.reset();  // itself, too
    h_new = chain.Add(2, &newcomer);
  };
  RunOnce(chain);
  EXPECT_EQ(calls, (std::vector<std::string>{"remover"}));
  calls.clear();
  RunOnce(chain);
  EXPECT_EQ(calls, (std::vector<std::string>{"newcomer"}));
  EXPECT_EQ(chain.size(), 1u);
}

TEST(StackHookChain, AHandleMayOutliveItsChain) {
  std::vector<std::string> calls;
  NamedHook a("a", &calls);
  HookHandle handle;
  {
    HookChain<InboundHook> chain;
    handle = chain.Add(0, &a);
  }
  handle.reset();  // no chain any more: nothing to do, nothing touched
  EXPECT_FALSE(handle);
}

// ---- on the Stack ----------------------------------------------------------------------

constexpr uint32_t kStackAddress = 0x0a4d0102;  // 10.77.1.2, as in the fixtures
constexpr uint32_t kPeerAddress = 0x0a4d0101;   // 10.77.1.1
constexpr uint8_t kStackMac[6] = {0x02, 0x64, 0x0a, 0x4d, 0x01, 0x02};
constexpr uint8_t kPeerMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr size_t kEth = 14;

std::vector<uint8_t> Fixture(const std::string& name) {
  std::ifstream in(std::string(DPM_UNIT_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << "missing fixture " << name;
  return bytes;
}

// Sets a 16-bit word of an IPv4 header and updates the header checksum (RFC 1624).
void SetHeaderWord(absl::Span<uint8_t> ip, size_t offset, uint16_t value) {
  const uint16_t old_word = wire::LoadBe16(&ip[offset]);
  wire::StoreBe16(&ip[offset], value);
  uint8_t* checksum = &ip[wire::ipv4::kChecksumOffset];
  wire::StoreBe16(checksum, wire::ChecksumReplace16(wire::LoadBe16(checksum), old_word, value));
}

bool HeaderChecksumOk(absl::Span<const uint8_t> ip) {
  return wire::InternetChecksum(ip.subspan(0, static_cast<size_t>(ip[0] & 0x0f) * 4)) == 0;
}
bool TransportChecksumOk(absl::Span<const uint8_t> ip) {
  const size_t header = static_cast<size_t>(ip[0] & 0x0f) * 4;
  return wire::TransportChecksum(wire::LoadBe32(&ip[12]), wire::LoadBe32(&ip[16]), ip[9], ip.subspan(header)) == 0;
}

// Records every outbound packet whole, with how much of it was in the head.
class RecordingOutbound : public OutboundHook {
 public:
  HookAction OnOutbound(const OutboundPacket& packet) override {
    std::vector<uint8_t> copy;
    packet.CopyTo(copy);
    packets.push_back(copy);
    heads.push_back(packet.head.size());
    tos.push_back(packet.head[wire::ipv4::kTosOffset]);
    return action;
  }
  HookAction action = HookAction::kPass;
  std::vector<std::vector<uint8_t>> packets;
  std::vector<size_t> heads;
  std::vector<uint8_t> tos;
};

// Rewrites the destination of packets to `from` into the stack's address, and counts.
class RedirectInbound : public InboundHook {
 public:
  explicit RedirectInbound(uint32_t from) : from_(from) {}
  HookAction OnInbound(absl::Span<uint8_t> packet, wire::Offload&) override {
    seen++;
    if (wire::LoadBe32(&packet[16]) == from_) {
      SetHeaderWord(packet, 16, static_cast<uint16_t>(kStackAddress >> 16));
      SetHeaderWord(packet, 18, static_cast<uint16_t>(kStackAddress));
    }
    return HookAction::kPass;
  }
  int seen = 0;

 private:
  uint32_t from_;
};

// RFC 826: the peer (10.77.1.1) asks, by broadcast, who has the stack's address.
std::vector<uint8_t> PeerArpRequest() {
  std::vector<uint8_t> arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  arp.insert(arp.end(), kPeerMac, kPeerMac + 6);
  arp.insert(arp.end(), {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1});  // Ethernet, IPv4, request
  arp.insert(arp.end(), kPeerMac, kPeerMac + 6);
  arp.insert(arp.end(), {0x0a, 0x4d, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0x0a, 0x4d, 0x01, 0x02});
  return arp;
}

class PacketHooksTest : public ::testing::TestWithParam<bool> {
 protected:
  bool ethernet() const { return GetParam(); }

  void SetUp() override {
    auto link = std::make_unique<tun::MemoryLink>(1500, ethernet());
    link_ = link.get();
    StackConfig config;
    config.address = kStackAddress;
    config.prefix = 24;
    auto stack = Stack::Create(io_, std::move(link), config, &clock_);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    Poll();
    std::vector<uint8_t> frame;
    while (link_->TakeOutbound(&frame)) {
    }  // lwIP's gratuitous ARP on Ethernet
    if (ethernet()) {
      // The peer asks for our MAC, so lwIP learns the peer's and sends IP at once (no ARP wait).
      link_->InjectInbound(PeerArpRequest());
      Poll();
      while (link_->TakeOutbound(&frame)) {
      }  // the ARP reply
    }
  }
  void TearDown() override {
    if (listener_ != nullptr) tcp_close(listener_);
    if (udp_ != nullptr) udp_remove(udp_);
    stack_.reset();
  }

  // Runs what is ready on the io_context until nothing is.
  void Poll() {
    for (int i = 0; i < 100; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }

  // An IPv4 packet into the link, framed on Ethernet.
  void Inject(const std::vector<uint8_t>& ip) {
    std::vector<uint8_t> bytes;
    if (ethernet()) {
      bytes.insert(bytes.end(), kStackMac, kStackMac + 6);
      bytes.insert(bytes.end(), kPeerMac, kPeerMac + 6);
      bytes.insert(bytes.end(), {0x08, 0x00});
    }
    bytes.insert(bytes.end(), ip.begin(), ip.end());
    link_->InjectInbound(bytes);
    Poll();
  }
  // The IPv4 packets the stack wrote (frames unwrapped; non-IPv4 frames skipped).
  std::vector<std::vector<uint8_t>> Sent() {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> bytes;
    while (link_->TakeOutbound(&bytes)) {
      if (!ethernet()) {
        out.push_back(bytes);
      } else if (bytes.size() > kEth && bytes[12] == 0x08 && bytes[13] == 0x00) {
        out.emplace_back(bytes.begin() + kEth, bytes.end());
      }
    }
    return out;
  }

  void Listen(uint16_t port) {
    tcp_pcb* pcb = tcp_new();
    ASSERT_EQ(tcp_bind(pcb, IP4_ADDR_ANY, port), ERR_OK);
    listener_ = tcp_listen(pcb);
    ASSERT_NE(listener_, nullptr);
  }
  // Sends a UDP datagram of `size` bytes from port 7000 to the peer's port 9000.
  void SendUdp(size_t size) {
    if (udp_ == nullptr) {
      udp_ = udp_new();
      ASSERT_EQ(udp_bind(udp_, IP4_ADDR_ANY, 7000), ERR_OK);
    }
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(size), PBUF_RAM);
    ASSERT_NE(p, nullptr);
    std::vector<uint8_t> data(size);
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i);
    pbuf_take(p, data.data(), static_cast<u16_t>(size));
    ip_addr_t peer;
    ip_addr_set_ip4_u32(&peer, htonl(kPeerAddress));
    ASSERT_EQ(udp_sendto(udp_, p, &peer, 9000), ERR_OK);
    pbuf_free(p);
    Poll();
  }

  boost::asio::io_context io_;
  ManualClock clock_;
  tun::MemoryLink* link_ = nullptr;  // owned by stack_
  std::unique_ptr<Stack> stack_;
  tcp_pcb* listener_ = nullptr;
  udp_pcb* udp_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(StackHooks, PacketHooksTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Tap" : "Tun"; });

TEST_P(PacketHooksTest, InboundHooksRunInOrderAndATakenPacketNeverReachesLwip) {
  std::vector<std::string> calls;
  NamedHook second("second", &calls), first("first", &calls), taker("taker", &calls, HookAction::kTake);
  HookHandle h2 = stack_->AddInboundHook(5, &second);
  HookHandle h1 = stack_->AddInboundHook(1, &first);
  const uint64_t delivered = stack_->counters().delivered;  // on Ethernet, SetUp's ARP too
  Inject(Fixture("icmp_echo_request.bin"));
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(Sent().size(), 1u) << "passed by both: lwIP answered";
  EXPECT_EQ(stack_->counters().delivered, delivered + 1);

  calls.clear();
  HookHandle h3 = stack_->AddInboundHook(3, &taker);
  Inject(Fixture("icmp_echo_request.bin"));
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "taker"}));
  EXPECT_TRUE(Sent().empty()) << "taken: lwIP never saw it";
  EXPECT_EQ(stack_->counters().delivered, delivered + 1);

  // Removed by its handle: the packet reaches lwIP again.
  h3.reset();
  calls.clear();
  Inject(Fixture("icmp_echo_request.bin"));
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(Sent().size(), 1u);
}

TEST_P(PacketHooksTest, InboundRewriteIsWhatLwipSees) {
  // An echo request to 10.77.1.99, not ours: unanswered, until a hook rewrites it to us.
  std::vector<uint8_t> request = Fixture("icmp_echo_request.bin");
  SetHeaderWord(absl::MakeSpan(request), 18, 0x0163);
  Inject(request);
  EXPECT_TRUE(Sent().empty());
  RedirectInbound redirect(0x0a4d0163);
  HookHandle h = stack_->AddInboundHook(0, &redirect);
  Inject(request);
  std::vector<std::vector<uint8_t>> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(wire::LoadBe32(&sent[0][12]), kStackAddress) << "answered from the rewritten destination";
  EXPECT_EQ(sent[0][20], 0) << "echo reply";
  EXPECT_EQ(redirect.seen, 1);
}

// ARP is on Ethernet links only.
class PacketHooksEthernetTest : public PacketHooksTest {};
INSTANTIATE_TEST_SUITE_P(StackHooks, PacketHooksEthernetTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "Tap"; });

TEST_P(PacketHooksEthernetTest, ArpPassesTheHooksBy) {
  std::vector<std::string> calls;
  NamedHook in("in", &calls);
  RecordingOutbound out;
  HookHandle hi = stack_->AddInboundHook(0, &in);
  HookHandle ho = stack_->AddOutboundHook(0, &out);
  link_->InjectInbound(PeerArpRequest());
  Poll();
  std::vector<uint8_t> frame;
  ASSERT_TRUE(link_->TakeOutbound(&frame)) << "lwIP answered the ARP request";
  EXPECT_EQ(wire::LoadBe16(&frame[12]), 0x0806) << "an ARP reply";
  EXPECT_TRUE(calls.empty()) << "the request passed the inbound hooks by";
  EXPECT_TRUE(out.packets.empty()) << "the reply passed the outbound hooks by";
}

TEST_P(PacketHooksTest, OutboundHookSeesEveryPacketLwipSendsWithItsTransportHeaderInTheHead) {
  RecordingOutbound hook;
  HookHandle h = stack_->AddOutboundHook(0, &hook);
  Listen(8080);
  Inject(Fixture("tcp_syn_8080_ws.bin"));  // -> SYN-ACK
  SendUdp(100);                            // -> a UDP datagram
  Inject(Fixture("icmp_echo_request.bin"));  // -> echo reply
  std::vector<std::vector<uint8_t>> sent = Sent();
  ASSERT_EQ(sent.size(), 3u);
  ASSERT_EQ(hook.packets.size(), 3u);
  EXPECT_EQ(hook.packets, sent) << "the hook saw exactly what went out";
  const uint8_t protocols[] = {wire::ipv4::kProtocolTcp, wire::ipv4::kProtocolUdp, wire::ipv4::kProtocolIcmp};
  const size_t transport[] = {20, 8, 8};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(sent[i][9], protocols[i]);
    EXPECT_GE(hook.heads[i], 20 + transport[i]) << "IPv4 header and the fixed transport header";
    EXPECT_TRUE(HeaderChecksumOk(sent[i]));
  }
  EXPECT_EQ(sent[0][20 + 13], 0x12) << "SYN-ACK";
  EXPECT_EQ(sent[2][20], 0) << "echo reply";

  // Removed: not called any more.
  h.reset();
  SendUdp(10);
  EXPECT_EQ(Sent().size(), 1u);
  EXPECT_EQ(hook.packets.size(), 3u);
}

// lwIP's own fragmentation puts a first fragment's UDP header in a second pbuf; the hook
// still gets it in the head.
TEST_P(PacketHooksTest, FirstFragmentOfADatagramLwipCutHasItsUdpHeaderInTheHead) {
  RecordingOutbound hook;
  HookHandle h = stack_->AddOutboundHook(0, &hook);
  SendUdp(3000);
  std::vector<std::vector<uint8_t>> sent = Sent();
  ASSERT_GE(sent.size(), 3u) << "cut for the 1500-byte MTU";
  ASSERT_EQ(hook.packets, sent);
  EXPECT_EQ(wire::LoadBe16(&sent[0][6]) & 0x1fff, 0) << "first fragment";
  EXPECT_GE(hook.heads[0], 28u) << "IPv4 header + UDP header";
  EXPECT_EQ(wire::LoadBe16(&sent[0][20]), 7000) << "UDP source port";
  EXPECT_GE(hook.heads[1], 20u) << "a later fragment: the IPv4 header";
}

TEST_P(PacketHooksTest, OutboundHookThatTakesAPacketKeepsItOffTheLink) {
  RecordingOutbound hook;
  hook.action = HookAction::kTake;
  HookHandle h = stack_->AddOutboundHook(0, &hook);
  SendUdp(50);
  EXPECT_EQ(hook.packets.size(), 1u);
  EXPECT_TRUE(Sent().empty());
  EXPECT_EQ(stack_->counters().tx_errors, 0u) << "taken is not a send error";
}

// What a port multiplexer does: rewrite the UDP source port in the head and update the UDP
// checksum incrementally (RFC 1624); the packet on the link carries it, checksum valid.
class PortRewriter : public OutboundHook {
 public:
  HookAction OnOutbound(const OutboundPacket& packet) override {
    uint8_t* ip = packet.head.data();
    if (ip[9] != wire::ipv4::kProtocolUdp) return HookAction::kPass;
    uint8_t* udp = ip + static_cast<size_t>(ip[0] & 0x0f) * 4;
    const uint16_t old_port = wire::LoadBe16(udp);
    wire::StoreBe16(udp, 40123);
    const uint16_t checksum = wire::LoadBe16(udp + 6);
    wire::StoreBe16(udp + 6, wire::UdpChecksumOnWire(wire::ChecksumReplace16(checksum, old_port, 40123)));
    return HookAction::kPass;
  }
};

TEST_P(PacketHooksTest, OutboundPortRewriteWithAnIncrementalChecksumReachesTheLink) {
  PortRewriter rewriter;
  HookHandle h = stack_->AddOutboundHook(0, &rewriter);
  SendUdp(100);
  std::vector<std::vector<uint8_t>> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(wire::LoadBe16(&sent[0][20]), 40123);
  EXPECT_TRUE(TransportChecksumOk(sent[0])) << "UDP checksum";
}

// DSCP marking is an outbound hook at hook_order::kDscpMarking: a hook before it sees the
// packet unmarked, one after it marked; the header checksum stays valid.
TEST_P(PacketHooksTest, DscpMarkingIsAnOutboundHookBetweenEarlierAndLaterOnes) {
  RecordingOutbound before, after;
  HookHandle hb = stack_->AddOutboundHook(hook_order::kDscpMarking - 1, &before);
  HookHandle ha = stack_->AddOutboundHook(hook_order::kDscpMarking + 1, &after);
  stack_->SetAddressDscp(kStackAddress, 46);  // EF
  Inject(Fixture("icmp_echo_request.bin"));
  std::vector<std::vector<uint8_t>> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0][1], 46 << 2);
  EXPECT_TRUE(HeaderChecksumOk(sent[0]));
  ASSERT_EQ(before.tos.size(), 1u);
  ASSERT_EQ(after.tos.size(), 1u);
  EXPECT_EQ(before.tos[0], 0);
  EXPECT_EQ(after.tos[0], 46 << 2);
  EXPECT_EQ(stack_->dscp_marked(), 1u);
  stack_->SetAddressDscp(kStackAddress, -1);
  Inject(Fixture("icmp_echo_request.bin"));
  sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0][1], 0) << "cleared";
}

}  // namespace
}  // namespace dpm::stack
