// `dpmd gateway` (docs/design.md §6): the DPM server and the NAT between an inside (private) link
// and an outside (registered) link. Packets are translated by the NAT engine on the fast
// path and never enter lwIP; only traffic for the gateway itself does — the DPM server's UDP
// ports 1080 and 5351 and ICMP echo on the gateway's private address. Nothing from the
// outside link reaches the DPM server: a setup request there creates no state.
#ifndef DPM_GATEWAY_GATEWAY_H_
#define DPM_GATEWAY_GATEWAY_H_

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/status/statusor.h"
#include "dpm/dpm_server.h"
#include "nat/nat_engine.h"
#include "stack/link_pump.h"
#include "stack/stack.h"
#include "tun/link.h"

namespace dpm::gateway {

struct GatewayConfig {
  stack::StackConfig inside;  // the gateway's private address (the DPM server's) and prefix
  nat::NatConfig nat;         // pools, prefixes, timers, quotas
};

struct GatewayCounters {
  uint64_t forwarded_out = 0, forwarded_in = 0, hairpinned = 0, to_gateway = 0;
  uint64_t outside_to_gateway = 0;  // addressed to the gateway from outside: dropped
  uint64_t write_errors = 0;
  uint64_t icmp_errors_sent = 0;     // ICMP time exceeded for TTL drops (RFC 1812 §5.3.1)
  uint64_t icmp_errors_limited = 0;  // not sent: over the rate limit (RFC 1812 §4.3.2.8)
  uint64_t offload_finished = 0;     // offloaded packets finished in software (NormalizeOffload)
  uint64_t offload_malformed = 0;    // offloaded packets that could not be, dropped
};

class Gateway {
 public:
  /// Starts the gateway on two links. Errors: those of Stack::Create, and InvalidArgument
  /// for an empty registered pool.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(boost::asio::io_context& io,
                                                         std::unique_ptr<tun::Link> inside,
                                                         std::unique_ptr<tun::Link> outside,
                                                         const GatewayConfig& config);
  ~Gateway();

  stack::Stack& stack() { return *stack_; }
  /// Sessions (internal, external, remote endpoints, protocol, state, idle time), drop
  /// counters by reason and DPM server results: a table, or JSON members for `dpmd status`.
  std::string Status(bool json) const;

 private:
  Gateway(boost::asio::io_context& io, std::unique_ptr<tun::Link> outside, const GatewayConfig& config);
  // `offload`: the packet's, as read (none without offload); see NormalizeOffload.
  bool FromInside(absl::Span<uint8_t> packet, wire::Offload& offload);
  void FromOutside(absl::Span<uint8_t> packet, wire::Offload offload);
  // Offloaded packets the NAT engine cannot update in place (wire::IsTransportOffload:
  // never seen from Linux, but possible) are finished in software: a checksum is completed
  // and `offload` becomes none (returns true), a super-packet is cut into segments, each
  // handed to `each` with no offload (returns false: the caller is done with the packet).
  bool NormalizeOffload(absl::Span<uint8_t> packet, wire::Offload& offload,
                        absl::FunctionRef<void(absl::Span<uint8_t>)> each);
  // ICMP time exceeded (type 11, code 0) back to the source of `packet`, which the engine
  // dropped with kTtlExceeded; sent on the link it came from, at most kIcmpErrorsPerSecond.
  void SendTimeExceeded(absl::Span<const uint8_t> packet, bool from_inside);
  void StartServer(uint16_t port);
  void ArmSweep();
  uint64_t NowMs() const;

  boost::asio::io_context& io_;
  GatewayConfig config_;
  std::unique_ptr<tun::Link> outside_;
  std::unique_ptr<stack::Stack> stack_;
  std::unique_ptr<stack::LinkPump> pump_;
  nat::NatEngine engine_;
  server::DpmServer server_;
  boost::asio::steady_timer sweep_timer_;
  GatewayCounters counters_;
  std::vector<void*> udp_pcbs_;
  std::vector<uint8_t> segment_buffer_;  // NormalizeOffload's segments
  static constexpr uint32_t kIcmpErrorsPerSecond = 100;
  uint64_t icmp_window_start_ms_ = 0;  // the current one-second rate-limit window
  uint32_t icmp_window_count_ = 0;
};

}  // namespace dpm::gateway

#endif  // DPM_GATEWAY_GATEWAY_H_
