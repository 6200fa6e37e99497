// The lwIP glue: one lwIP instance per process, driven by a Boost.Asio io_context
// (docs/design.md §4.2). Reads the link's descriptor until it is drained on each wake-up, hands IPv4
// packets that pass the first checks to lwIP, sends what lwIP outputs through the link, and
// runs lwIP's timers from sys_timeouts_sleeptime() on a Timer of its Clock (stack/clock.h).
// Packet hooks (stack/packet_hooks.h) sit on both ways between the link and lwIP.
//
// Two kinds of link: an L3 link (TUN, virtual, memory) carries IP packets and the netif sets
// `output` itself; an Ethernet link (TAP, tun::Link::ethernet()) carries frames, and the
// netif runs lwIP's Ethernet and ARP (etharp_output, ethernet_input) with the MAC address of
// StackConfig::mac. On an Ethernet link lwIP answers ARP for the stack's address and for
// every per-socket address (AcceptAddress, third_party/lwip/patches/0002).
#ifndef DPM_STACK_STACK_H_
#define DPM_STACK_STACK_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/status/statusor.h"
#include "lwip/netif.h"
#include "stack/clock.h"
#include "stack/dscp_marker.h"
#include "stack/packet_hooks.h"
#include "tun/link.h"
#include "wire/ethernet.h"
#include "wire/ip.h"

namespace dpm::stack {

struct StackConfig {
  uint32_t address = 0;  // the stack's IPv4 address, host byte order
  int prefix = 24;       // prefix length of the link's subnet
  uint32_t gateway = 0;  // next hop for other destinations, host byte order; 0 = none
  /// Ethernet links only: the stack's MAC address. All zero (the default): MacForIpv4(address),
  /// 02:64 followed by the address (wire/ethernet.h). Must be unicast.
  wire::MacAddress mac{};
};

/// Counters of the glue (lwIP's own drop counters are in lwip_stats, reported beside them).
struct StackCounters {
  wire::IpDropCounters ip_drops{};  // dropped before lwIP, by reason (wire::IpCheck)
  uint64_t delivered = 0;           // packets handed to lwIP
  uint64_t tx_errors = 0;           // lwIP output the link refused
  uint64_t read_errors = 0;         // link read failures other than "empty"
  uint64_t rx_no_memory = 0;        // packets for lwIP dropped: no pbuf
  uint64_t offload_malformed = 0;   // offloaded packets for lwIP that could not be finished
  wire::FrameDropCounters frame_drops{};  // Ethernet links: frames dropped before lwIP, by reason
  uint64_t arp_announcements = 0;         // Ethernet links: RFC 5227 announcements sent
};

class Stack {
 public:
  /// Creates the process's lwIP instance on `link`. Only one Stack may exist at a time
  /// (lwIP keeps global state): a second gives FailedPrecondition. Errors: InvalidArgument
  /// (address 0, prefix outside 1..32, a multicast MAC on an Ethernet link).
  /// `clock`: the time of lwIP (sys_now, its timers, the RFC 6528 ISN timer) and of
  /// everything built on this stack (clock()); it must outlive the stack. nullptr: a
  /// SteadyClock of the stack's own on `io`.
  static absl::StatusOr<std::unique_ptr<Stack>> Create(boost::asio::io_context& io,
                                                       std::unique_ptr<tun::Link> link,
                                                       const StackConfig& config, Clock* clock = nullptr);
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  /// Packet hooks (stack/packet_hooks.h): inbound hooks see every IPv4 packet read from the
  /// link that passed the first checks, before lwIP; outbound hooks see every IPv4 packet
  /// lwIP sends, before the link write. On an Ethernet link they see the IPv4 packet inside
  /// the frame (ARP and other EtherTypes pass them by), and inbound offload is always none.
  /// `hook` is not owned and must outlive the returned handle; the hook leaves the chain
  /// when the handle goes (the handle may outlive the Stack). The gateway's NAT fast path
  /// is an inbound hook, so only traffic for the gateway itself enters lwIP.
  HookHandle AddInboundHook(int order, InboundHook* hook) { return inbound_hooks_.Add(order, hook); }
  HookHandle AddOutboundHook(int order, OutboundHook* hook) { return outbound_hooks_.Add(order, hook); }

  /// Writes a packet to the link as it is (an inbound hook's way out: forwarded packets),
  /// past the outbound hooks. Errors as tun::Link::WriteOffloaded.
  absl::Status SendPacket(absl::Span<const uint8_t> packet, const wire::Offload& offload = {}) {
    iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
    return link_->WriteOffloaded(absl::MakeConstSpan(&v, 1), offload);
  }

  /// Hands one whole IPv4 packet to lwIP's IP layer (copied), as if the inbound hooks had
  /// passed it (they do not see it again).
  void DeliverPacket(absl::Span<const uint8_t> packet);

  /// Ethernet links: tells the neighbours that `address` (host order; the stack's own or a
  /// per-socket address) is at this stack's MAC, by an ARP Announcement (RFC 5227 §3),
  /// broadcast now and once more 2 s later (ANNOUNCE_NUM 2, ANNOUNCE_INTERVAL 2 s) unless the
  /// address was given up meanwhile (AcceptsAddress). Neighbours that have the address in
  /// their cache update it; Linux does not add new entries from it (arp_accept 0). No-op on
  /// L3 links. Call after AcceptAddress(), on the core thread.
  void AnnounceAddress(uint32_t address);

  /// Call after using lwIP's raw API from outside the Stack's own handlers: lwIP may have
  /// added a timeout, so the timer is re-armed if the next deadline moved earlier.
  void AfterCoreWork();

  /// The clock this stack and what runs on it read (SocketService, DhcpLeases, Gateway).
  Clock& clock() const { return *clock_; }
  boost::asio::io_context& io() const { return io_; }
  const tun::Link& link() const { return *link_; }
  const StackConfig& config() const { return config_; }
  const StackCounters& counters() const { return counters_; }
  netif* lwip_netif() { return &netif_; }
  /// True on an Ethernet (TAP) link; mac() is then the stack's MAC address.
  bool ethernet() const { return link_->ethernet(); }
  const wire::MacAddress& mac() const { return config_.mac; }
  /// True if `address_host` (host byte order) is this stack's address.
  bool IsLocalAddress(uint32_t address_host) const { return address_host == config_.address; }

  /// QoS per address (the per-socket-address patent's motivation): every IPv4 packet lwIP sends
  /// with source `address` (host byte order) leaves with DSCP `dscp` (0..63) in the upper six
  /// bits of its TOS byte, the two ECN bits kept, the header checksum updated (RFC 1624).
  /// Marking happens at the link (an outbound hook, stack/dscp_marker.h), so it covers every
  /// packet of the address — data, SYN-ACKs, RSTs and ICMP replies alike — whatever the
  /// pcb's IP_TOS says. `dscp` < 0 clears it.
  void SetAddressDscp(uint32_t address, int dscp) { dscp_marker_.Set(address, dscp); }
  /// The DSCP marked on packets from `address`, or -1.
  int AddressDscp(uint32_t address) const { return dscp_marker_.Get(address); }
  /// Packets whose DSCP was rewritten (counter for status and tests).
  uint64_t dscp_marked() const { return dscp_marker_.marked(); }

 private:
  Stack(boost::asio::io_context& io, std::unique_ptr<tun::Link> link, const StackConfig& config, Clock* clock);
  void WaitReadable();
  void OnReadable();
  void ArmTimer();
  static err_t Output(netif* nif, pbuf* p, const ip4_addr_t* next_hop);
  static err_t LinkOutput(netif* nif, pbuf* p);
  static err_t NetifInit(netif* nif);
  // Writes the pbuf chain from byte `skip` of its first pbuf on (gathered, one write).
  err_t WriteChain(pbuf* p, size_t skip);
  // Ethernet links: checks a frame read into a pbuf and hands it to ethernet_input.
  void DeliverFrame(pbuf* p, size_t length);
  void SendAnnouncement(uint32_t address);
  void ArmAnnounceTimer();

  boost::asio::io_context& io_;
  std::unique_ptr<Clock> own_clock_;  // when none was given
  Clock* clock_;
  std::unique_ptr<tun::Link> link_;
  StackConfig config_;
  netif netif_{};
  boost::asio::posix::stream_descriptor link_fd_;
  std::unique_ptr<Timer> timer_;  // lwIP's timeouts (sys_timeouts_sleeptime)
  void Deliver(pbuf* p);
  void DeliverOffloaded(absl::Span<uint8_t> packet, const wire::Offload& offload);
  std::vector<uint8_t> read_buffer_;     // with offload: reads land here (64 KiB)
  std::vector<uint8_t> segment_buffer_;  // with offload: one segment for lwIP
  pbuf* spare_ = nullptr;  // a buffer for the next read, reused when a packet is dropped
  // Second RFC 5227 announcements due, oldest first (all 2 s after the first: in time order).
  std::deque<std::pair<uint64_t, uint32_t>> announce_due_;  // deadline (clock ms), address
  std::unique_ptr<Timer> announce_timer_;
  StackCounters counters_;
  HookChain<InboundHook> inbound_hooks_;
  HookChain<OutboundHook> outbound_hooks_;
  DscpMarker dscp_marker_{outbound_hooks_};
  // Runs the outbound hooks on the frame or packet gathered in `parts` (`n` of them, from
  // byte `skip` of `p` on); may gather the chain into `flat` to give the hooks the head they
  // are promised (OutboundPacket::head). Returns true when a hook took the packet.
  bool RunOutboundHooks(iovec* parts, int& n, pbuf* p, size_t skip, std::vector<uint8_t>& flat);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_STACK_H_
