// The lwIP glue: one lwIP instance per process, driven by a Boost.Asio io_context
// (docs/design.md §4.2). Reads the link's descriptor until it is drained on each wake-up, hands IPv4
// packets that pass the first checks to lwIP, sends what lwIP outputs through the link, and
// runs lwIP's timers from sys_timeouts_sleeptime() on a Timer of its Clock (stack/clock.h).
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
#include <functional>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "lwip/netif.h"
#include "stack/clock.h"
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

  /// Sees every packet that passed the first checks before lwIP does; returns true when it
  /// took the packet (forwarded it elsewhere, or dropped it), false to hand it to lwIP. The
  /// gateway's NAT fast path uses it so that only traffic for the gateway itself enters lwIP.
  /// `packet` may be rewritten in place. On a link with offload, `offload` is the packet's
  /// (tun::Link::ReadOffloaded); what the filter leaves to lwIP is finished in software
  /// first (checksum completed, super-packets cut into segments). A filter that finishes
  /// the offload itself sets `offload` to none. L3 links only: on an Ethernet link the filter
  /// is not called (the NAT gateway runs on TUN; it would need ARP of its own on TAP).
  using InputFilter = std::function<bool(absl::Span<uint8_t> packet, wire::Offload& offload)>;
  void set_input_filter(InputFilter filter) { input_filter_ = std::move(filter); }

  /// Writes a packet to the link (the filter's way out). Errors as tun::Link::WriteOffloaded.
  absl::Status SendPacket(absl::Span<const uint8_t> packet, const wire::Offload& offload = {}) {
    iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
    return link_->WriteOffloaded(absl::MakeConstSpan(&v, 1), offload);
  }

  /// Hands one whole IPv4 packet to lwIP's IP layer (copied), as if the filter had passed it.
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
  /// Marking happens at the link, so it covers every packet of the address — data, SYN-ACKs,
  /// RSTs and ICMP replies alike — whatever the pcb's IP_TOS says. `dscp` < 0 clears it.
  void SetAddressDscp(uint32_t address, int dscp);
  /// The DSCP marked on packets from `address`, or -1.
  int AddressDscp(uint32_t address) const;
  /// Packets whose DSCP was rewritten (counter for status and tests).
  uint64_t dscp_marked() const { return dscp_marked_; }

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
  InputFilter input_filter_;
  StackCounters counters_;
  // Marks the IPv4 header at `ip` (`length` bytes available) if its source has a DSCP.
  void MarkDscp(uint8_t* ip, size_t length);
  absl::flat_hash_map<uint32_t, uint8_t> address_dscp_;  // source (host order) -> DSCP
  uint64_t dscp_marked_ = 0;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_STACK_H_
