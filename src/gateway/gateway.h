// `dpmd gateway` (docs/design.md §6): the DPM server and the NAT between an inside (private) link
// and an outside (registered) link. Packets are translated by the NAT engine on the fast
// path and never enter lwIP; only traffic for the gateway itself does — the DPM server's UDP
// ports 1080 and 5351 and ICMP echo on the gateway's private address. Nothing from the
// outside link reaches the DPM server: a setup request there creates no state.
#ifndef DPM_GATEWAY_GATEWAY_H_
#define DPM_GATEWAY_GATEWAY_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"
#include "dpm/dpm_server.h"
#include "nat/nat_engine.h"
#include "gateway/gateway_status.h"
#include "stack/clock.h"
#include "stack/link_pump.h"
#include "stack/packet_hooks.h"
#include "stack/stack.h"
#include "tun/link.h"

namespace dpm::gateway {

struct GatewayConfig {
  stack::StackConfig inside;  // the gateway's private address (the DPM server's) and prefix
  nat::NatConfig nat;         // pools, prefixes, timers, quotas
};

class Gateway : private stack::InboundHook {
 public:
  /// Starts the gateway on two links. `clock`: the time of everything in it — the NAT
  /// engine's (session timers, fragments), the sweep timer, the DPM server's epoch, the ICMP
  /// error rate limit — and of the stack on the inside link, which is created on it; it
  /// must outlive the gateway. nullptr: the stack's own SteadyClock. Errors: those of
  /// Stack::Create, and InvalidArgument for an empty registered pool.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(boost::asio::io_context& io,
                                                         std::unique_ptr<tun::Link> inside,
                                                         std::unique_ptr<tun::Link> outside,
                                                         const GatewayConfig& config, stack::Clock* clock = nullptr);
  ~Gateway() override;

  stack::Stack& stack() { return *stack_; }
  const GatewayCounters& counters() const { return counters_; }
  const nat::NatEngine& engine() const { return engine_; }
  /// The gateway's part of `dpmd status`: sessions (internal, external, remote endpoints,
  /// protocol, state, idle time), mappings, drop counters by reason and DPM server results.
  /// On the core thread.
  GatewayStatus CollectStatus() const;

 private:
  Gateway(std::unique_ptr<stack::Stack> stack, std::unique_ptr<tun::Link> outside, const GatewayConfig& config);
  // The NAT fast path on the inside link: an inbound hook of the stack.
  stack::HookAction OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) override;
  // `offload`: the packet's, as read (none without offload); see NormalizeOffload. Returns
  // true when the packet was taken (forwarded or dropped), false to hand it to lwIP.
  bool FromInside(absl::Span<uint8_t> packet, wire::Offload& offload);
  // A batch read from the outside link (LinkPump), translated together, handled in order.
  void FromOutsideBatch(absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload> offloads);
  // One packet from outside (a segment NormalizeOffload cut), translated alone.
  void FromOutside(absl::Span<uint8_t> packet, wire::Offload offload);
  // Translates the batch pending_ collected, then handles each result in order.
  void FlushOutside();
  // The engine call for a batch from outside: one FromOutsideBatch, a partial-checksum flag
  // per packet taken from `offloads`.
  void TranslateFromOutside(uint64_t now, absl::Span<const absl::Span<uint8_t>> packets,
                            absl::Span<const wire::Offload> offloads, absl::Span<nat::Result> results);
  // What the engine said about a packet from outside: sends it inside, or counts it.
  void HandleFromOutside(absl::Span<uint8_t> packet, const wire::Offload& offload, const nat::Result& r);
  // A released fragment from outside (NatEngine::TakeReleasedFragments).
  void HandleReleasedFromOutside(nat::Verdict verdict, absl::Span<uint8_t> fragment);
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

  GatewayConfig config_;
  std::unique_ptr<tun::Link> outside_;
  std::unique_ptr<stack::Stack> stack_;  // before engine_ and server_: the server starts at its clock's now
  std::unique_ptr<stack::LinkPump> pump_;
  nat::NatEngine engine_;
  server::DpmServer server_;
  std::unique_ptr<stack::Timer> sweep_timer_;  // on the stack's clock
  stack::HookHandle inside_hook_;
  // The part of an outside batch that goes to the engine together (FlushOutside).
  std::vector<absl::Span<uint8_t>> pending_packets_;
  std::vector<wire::Offload> pending_offloads_;
  std::vector<nat::Result> results_;
  std::vector<std::pair<nat::Verdict, std::vector<uint8_t>>> released_;  // a batch's released fragments
  GatewayCounters counters_;
  std::vector<void*> udp_pcbs_;
  std::vector<uint8_t> segment_buffer_;  // NormalizeOffload's segments
  static constexpr uint32_t kIcmpErrorsPerSecond = 100;
  uint64_t icmp_window_start_ms_ = 0;  // the current one-second rate-limit window
  uint32_t icmp_window_count_ = 0;
};

}  // namespace dpm::gateway

#endif  // DPM_GATEWAY_GATEWAY_H_
