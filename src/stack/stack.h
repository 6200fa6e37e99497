// The lwIP glue: one lwIP instance per process, driven by a Boost.Asio io_context
// (SPEC.md §2). Reads the link's descriptor until it is drained on each wake-up, hands IPv4
// packets that pass the first checks to lwIP, sends what lwIP outputs through the link, and
// runs lwIP's timers from sys_timeouts_sleeptime() on a steady_timer.
#ifndef DPM_STACK_STACK_H_
#define DPM_STACK_STACK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/status/statusor.h"
#include "lwip/netif.h"
#include "tun/link.h"
#include "wire/ip.h"

namespace dpm::stack {

struct StackConfig {
  uint32_t address = 0;  // the stack's IPv4 address, host byte order
  int prefix = 24;       // prefix length of the link's subnet
  uint32_t gateway = 0;  // next hop for other destinations, host byte order; 0 = none
};

/// Counters of the glue (lwIP's own drop counters are in lwip_stats, reported beside them).
struct StackCounters {
  wire::IpDropCounters ip_drops{};  // dropped before lwIP, by reason (wire::IpCheck)
  uint64_t delivered = 0;           // packets handed to lwIP
  uint64_t tx_errors = 0;           // lwIP output the link refused
  uint64_t read_errors = 0;         // link read failures other than "empty"
  uint64_t rx_no_memory = 0;        // packets for lwIP dropped: no pbuf
  uint64_t offload_malformed = 0;   // offloaded packets for lwIP that could not be finished
};

class Stack {
 public:
  /// Creates the process's lwIP instance on `link`. Only one Stack may exist at a time
  /// (lwIP keeps global state): a second gives FailedPrecondition. Errors: InvalidArgument
  /// (address 0, prefix outside 1..32).
  static absl::StatusOr<std::unique_ptr<Stack>> Create(boost::asio::io_context& io,
                                                       std::unique_ptr<tun::Link> link,
                                                       const StackConfig& config);
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  /// Sees every packet that passed the first checks before lwIP does; returns true when it
  /// took the packet (forwarded it elsewhere, or dropped it), false to hand it to lwIP. The
  /// gateway's NAT fast path uses it so that only traffic for the gateway itself enters lwIP.
  /// `packet` may be rewritten in place. On a link with offload, `offload` is the packet's
  /// (tun::Link::ReadOffloaded); what the filter leaves to lwIP is finished in software
  /// first (checksum completed, super-packets cut into segments). A filter that finishes
  /// the offload itself sets `offload` to none.
  using InputFilter = std::function<bool(absl::Span<uint8_t> packet, wire::Offload& offload)>;
  void set_input_filter(InputFilter filter) { input_filter_ = std::move(filter); }

  /// Writes a packet to the link (the filter's way out). Errors as tun::Link::WriteOffloaded.
  absl::Status SendPacket(absl::Span<const uint8_t> packet, const wire::Offload& offload = {}) {
    iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
    return link_->WriteOffloaded(absl::MakeConstSpan(&v, 1), offload);
  }

  /// Hands one whole IPv4 packet to lwIP (copied), as if the filter had passed it.
  void DeliverPacket(absl::Span<const uint8_t> packet);

  /// Call after using lwIP's raw API from outside the Stack's own handlers: lwIP may have
  /// added a timeout, so the timer is re-armed if the next deadline moved earlier.
  void AfterCoreWork();

  const tun::Link& link() const { return *link_; }
  const StackConfig& config() const { return config_; }
  const StackCounters& counters() const { return counters_; }
  netif* lwip_netif() { return &netif_; }
  /// True if `address_host` (host byte order) is this stack's address.
  bool IsLocalAddress(uint32_t address_host) const { return address_host == config_.address; }

 private:
  Stack(boost::asio::io_context& io, std::unique_ptr<tun::Link> link, const StackConfig& config);
  void WaitReadable();
  void OnReadable();
  void ArmTimer();
  static err_t Output(netif* nif, pbuf* p, const ip4_addr_t* next_hop);
  static err_t NetifInit(netif* nif);

  boost::asio::io_context& io_;
  std::unique_ptr<tun::Link> link_;
  StackConfig config_;
  netif netif_{};
  boost::asio::posix::stream_descriptor link_fd_;
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;
  std::chrono::steady_clock::time_point timer_deadline_;
  void Deliver(pbuf* p);
  void DeliverOffloaded(absl::Span<uint8_t> packet, const wire::Offload& offload);
  std::vector<uint8_t> read_buffer_;     // with offload: reads land here (64 KiB)
  std::vector<uint8_t> segment_buffer_;  // with offload: one segment for lwIP
  pbuf* spare_ = nullptr;  // a buffer for the next read, reused when a packet is dropped
  InputFilter input_filter_;
  StackCounters counters_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_STACK_H_
