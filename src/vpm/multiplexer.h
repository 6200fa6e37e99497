// The packet path of virtual port multiplexing (docs/vpm.md "Packet path"): per-flow
// translations between the virtual port the wire and the applications see and the hidden port
// lwIP has the socket on, rewritten in place both ways with incremental checksum updates
// (RFC 1624), offload-aware as the NAT is (a partial checksum holds only the pseudo-header
// sum, which no port is part of). The virtual port multiplexing patent, Figs. 7-8: "the
// headers of the packets are rewritten … the VPM further calculates a new checksum".
//
// It sits on the stack's packet hook chain: Inbound for packets from the link to lwIP, Outbound
// for packets from lwIP to the link.
//
//   server flow  a remote opened it to virtual port V of ours; the dispatcher (configurator.h)
//                chose the AID, whose stream is on hidden port H. Inbound: destination port
//                V → H; outbound: source port H → V.
//   negotiated   cooperative mode, server side (negotiation.h): a peer's VPM asked for our
//   flow         AID's hidden port H; its connection comes to H and our answers leave from H,
//                untouched: the wire shows H, our program the virtual port (getsockname).
//   client flow  cooperative mode (docs/vpm.md "Cooperative mode"): our program connects to
//                V at a peer whose VPM told us hidden port H for our AID. Outbound: destination
//                V → H; inbound: source H → V. The wire shows H; both programs see V.
//
// lwIP keeps the header of a TCP segment for retransmission with the ports as this rewrote
// them (stack/packet_hooks.h), so a segment that comes out already translated is passed.
//
// Flows expire by last use (TCP by the NAT's connection tracking, nat/tcp_tracking.h: RFC 5382
// timers; UDP after udp_timeout_ms, RFC 4787 REQ-5), swept in bounded steps. Sans-I/O.
#ifndef DPM_VPM_MULTIPLEXER_H_
#define DPM_VPM_MULTIPLEXER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "nat/tcp_tracking.h"
#include "vpm/configurator.h"
#include "vpm/virtual_ports.h"

namespace dpm::vpm {

struct MultiplexerConfig {
  uint64_t tcp_established_timeout_ms = 7'440'000;  // RFC 5382 REQ-5: 2 h 4 min
  uint64_t tcp_transitory_timeout_ms = 240'000;     // RFC 5382 REQ-5: 4 min
  uint64_t udp_timeout_ms = 120'000;                // RFC 4787 REQ-5: 2 min
  size_t max_flows = 1 << 20;
};

/// Why a packet was dropped or refused (Multiplexer::counters() counts each).
enum class Reason : uint8_t {
  kNone = 0,
  kMalformed,    // a TCP/UDP packet to or from a multiplexed port too short for its header
  kRefused,      // no rule matched and the port refuses (configurator "default": "refuse")
  kNoListener,   // the AID chosen has no socket on the port
  kNoFlow,       // a TCP segment other than a SYN to a virtual port, no flow: refused like a
                 // closed port (a RST is dropped, never answered)
  kFlowLimit,    // max_flows reached, or another flow holds the wire tuple
  kHidden,       // to a hidden port with no flow: only a negotiation opens that way
                 // (refused as a closed port; a RST is dropped)
  kCount
};
/// "malformed", "refused", "no_listener", "no_flow", "flow_limit", "hidden_port".
const char* ReasonName(Reason reason);

/// What to do with a packet.
struct Result {
  enum Action : uint8_t {
    kPass,       // not VPM's, or already as it must be: hand it on untouched
    kRewritten,  // translated in place: hand it on
    kDrop,       // drop it (counted under `reason`)
    kRefuse,     // drop it and answer BuildRefusal(packet) (counted under `reason`)
  } action = kPass;
  Reason reason = Reason::kNone;
};

/// Per-AID counters.
struct AidCounters {
  uint64_t flows = 0;         // flows dispatched to it (connections, UDP conversations)
  uint64_t by_default = 0;    // of those, by the port's default (no rule matched: "unmatched")
  uint64_t packets_in = 0;    // translated towards its sockets
  uint64_t packets_out = 0;   // translated from its sockets
  uint64_t refused = 0;       // new flows dispatched to it refused: it had no socket on the port
};

/// One flow, for status.
struct FlowInfo {
  /// "server", "negotiated" (cooperative, server side), "client" (cooperative, client side).
  const char* kind = "server";
  Protocol protocol;
  uint32_t local_address, remote_address;  // host order
  uint16_t local_port, remote_port;        // as the wire has them
  uint16_t virtual_port, hidden_port;
  std::string aid;
  uint64_t idle_ms;
  nat::TcpState tcp_state;
};

class Multiplexer {
 public:
  /// `ports` is the table the stack's sockets bind through; it must outlive this. No
  /// dispatcher yet: every new inbound flow to a port in use is refused until SetDispatcher.
  Multiplexer(const MultiplexerConfig& config, const VirtualPortTable& ports);

  /// The rules new flows are dispatched by (not owned; must stay alive until replaced). A
  /// reload passes a new one: flows that exist keep their AID.
  void SetDispatcher(const Dispatcher* dispatcher) { dispatcher_ = dispatcher; }

  /// A packet from the link towards lwIP: `packet` is exactly one IPv4 packet (its total
  /// length), rewritable in place. `partial_checksum`: its transport checksum field holds the
  /// pseudo-header sum (wire/offload.h).
  Result Inbound(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum);
  /// A packet from lwIP towards the link: `head` starts at the IPv4 header and holds it and the
  /// fixed transport header (stack::OutboundPacket::head), rewritable in place; what follows
  /// is not needed (ports and checksum are in the fixed header).
  Result Outbound(uint64_t now_ms, absl::Span<uint8_t> head, bool partial_checksum);

  /// Cooperative mode, client side: our socket at `local_address`:`local_port` (what lwIP
  /// uses) connects to `remote_address`:`virtual_port`, which the peer's VPM has on hidden port
  /// `hidden_port` for `aid`. Addresses and ports host order. A client flow on the same tuple
  /// is replaced (a socket that connected again). Error: ResourceExhausted at max_flows;
  /// AlreadyExists when another flow holds that tuple.
  absl::Status AddClientFlow(uint64_t now_ms, Protocol protocol, uint32_t local_address, uint16_t local_port,
                             uint32_t remote_address, uint16_t virtual_port, uint16_t hidden_port,
                             absl::string_view aid);

  /// Cooperative mode, server side: a negotiation (negotiation.h) gave the peer at
  /// `remote_address`:`remote_port` hidden port `hidden_port` of `aid`'s stream on `key` for a
  /// connection to our `local_address`. The flow passes that connection's packets as they are,
  /// and is dropped if no packet comes within `wait_ms`. The same negotiation again (a
  /// retransmitted request) is no error. Error: AlreadyExists when another flow holds the
  /// tuple; ResourceExhausted at max_flows.
  absl::Status AddNegotiatedFlow(uint64_t now_ms, PortKey key, absl::string_view aid, uint16_t hidden_port,
                                 uint32_t local_address, uint32_t remote_address, uint16_t remote_port,
                                 uint64_t wait_ms);

  /// The answer to a packet Inbound refused (`packet` as it was passed, unrewritten): a TCP
  /// RST (RFC 9293 §3.10.7.1, the CLOSED-state rule) or an ICMP port unreachable (RFC 1122
  /// §4.1.3.1, the offending packet quoted as RFC 1812 §4.3.2.3 says), from the address it was
  /// sent to. Empty when none may be sent (a RST, a malformed packet).
  static std::vector<uint8_t> BuildRefusal(absl::Span<const uint8_t> packet);

  /// Removes up to `max_flows` idle flows whose deadline is at or before `now_ms`, resuming
  /// where the last call stopped. Returns how many it removed.
  size_t Sweep(uint64_t now_ms, size_t max_flows);
  /// The earliest flow deadline there may be (never later than the true one).
  std::optional<uint64_t> NextDeadline() const;

  size_t flows() const { return live_; }
  /// Packets dropped or refused, by reason.
  uint64_t count(Reason reason) const { return counters_[static_cast<size_t>(reason)]; }
  /// Refusals per virtual port (kRefused, kNoListener, kNoFlow), keyed like PortKey.
  const absl::flat_hash_map<PortKey, uint64_t>& refused_by_port() const { return refused_by_port_; }
  /// Counters of each AID that ever had a flow.
  std::vector<std::pair<std::string, AidCounters>> aid_counters() const;
  /// Every flow (status); `now_ms` for the idle times.
  std::vector<FlowInfo> List(uint64_t now_ms) const;

 private:
  // A flow's two tuples as the wire and as lwIP have them; ports host order.
  struct Tuple {
    uint8_t protocol;
    uint32_t local, remote;
    uint16_t local_port, remote_port;
    friend bool operator==(const Tuple&, const Tuple&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Tuple& t) {
      return H::combine(std::move(h), t.protocol, t.local, t.remote, t.local_port, t.remote_port);
    }
  };
  struct Flow {
    bool live = false;
    bool client = false;
    bool negotiated = false;  // cooperative, server side: passed untouched
    Tuple wire;   // as on the link
    Tuple stack;  // as lwIP has it
    PortKey key;  // protocol and virtual port
    uint16_t hidden = 0;
    uint32_t aid = 0;  // index into aids_
    uint64_t last_used_ms = 0;
    uint64_t deadline_ms = 0;
    uint64_t checked_at = 0;  // VirtualPortTable::generation() when StillValid last held
    nat::TcpState tcp = nat::TcpState::kClosed;
  };
  uint32_t InternAid(absl::string_view aid);
  std::optional<uint32_t> NewFlow(uint64_t now_ms, const Flow& flow);
  void SetDeadline(Flow& flow, uint64_t deadline_ms);
  void EraseFlow(uint32_t id);
  // No other stream has taken a server flow's hidden port (checked again only after a
  // hidden port changed hands).
  bool StillValid(Flow& flow) const;
  void Touch(uint64_t now_ms, Flow& flow, uint8_t tcp_flags, bool outbound);
  Result Refuse(Reason reason, PortKey key);
  Result Dropped(Reason reason) {
    ++counters_[static_cast<size_t>(reason)];
    return {Result::kDrop, reason};
  }

  const MultiplexerConfig config_;
  const VirtualPortTable& ports_;
  const Dispatcher* dispatcher_ = nullptr;
  std::vector<Flow> flows_;          // slab; ids are indexes
  std::vector<uint32_t> free_ids_;
  size_t live_ = 0;
  absl::flat_hash_map<Tuple, uint32_t> by_wire_;   // inbound lookups
  absl::flat_hash_map<Tuple, uint32_t> by_stack_;  // outbound lookups
  std::vector<std::string> aid_names_;
  std::vector<AidCounters> aid_counters_;
  absl::flat_hash_map<std::string, uint32_t> aid_index_;
  uint64_t counters_[static_cast<size_t>(Reason::kCount)] = {};
  absl::flat_hash_map<PortKey, uint64_t> refused_by_port_;
  size_t sweep_cursor_ = 0;
  std::optional<uint64_t> earliest_deadline_;
};

}  // namespace dpm::vpm

#endif  // DPM_VPM_MULTIPLEXER_H_
