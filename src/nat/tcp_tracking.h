// TCP connection tracking for the NAT's session timers: RFC 6146 §3.5.2's state machine as
// RFC 7857 §2.1 adapts it to NAT44 ("V6" is the inside here, "V4" the outside), with the
// RST handling of RFC 7857 §2.3 and the timers of RFC 5382 REQ-5. A pure function of
// (state, TCP flags, direction): the engine applies the new state and, when asked, refreshes
// the session's last-used time.
#ifndef DPM_NAT_TCP_TRACKING_H_
#define DPM_NAT_TCP_TRACKING_H_

#include <cstdint>

namespace dpm::nat {

/// TCP session states for timers.
enum class TcpState : uint8_t {
  kClosed = 0,     // no segment seen yet (a DPM session set up before its first SYN)
  kInsideInit,     // SYN from inside seen (V6 INIT): transitory timer
  kOutsideInit,    // SYN from outside seen (V4 INIT): transitory timer
  kEstablished,    // SYN seen both ways: established timer
  kInsideFinRcv,   // FIN from inside (V6 FIN RCV): established timer
  kOutsideFinRcv,  // FIN from outside (V4 FIN RCV): established timer
  kBothFinRcv,     // FIN both ways: transitory timer, not refreshed
  kTrans,          // after a RST, or picked up mid-stream: transitory timer
};
/// "CLOSED", "INSIDE_INIT", "OUTSIDE_INIT", "ESTABLISHED", "INSIDE_FIN", "OUTSIDE_FIN",
/// "BOTH_FIN", "TRANS".
const char* TcpStateName(TcpState state);

/// Whether `state` runs the established timer (RFC 5382 REQ-5: >= 2 h 4 min) rather than the
/// transitory one (>= 4 min): ESTABLISHED and the two one-way FIN states. Inline: every TCP
/// packet's session deadline asks it.
inline bool UsesEstablishedTimer(TcpState state) {
  return state == TcpState::kEstablished || state == TcpState::kInsideFinRcv || state == TcpState::kOutsideFinRcv;
}

/// What one translated segment does to its session.
struct TcpTransition {
  TcpState next;  // the state after the segment (== the old one when it changes nothing)
  /// RFC 6146 §3.5.2.2 "refresh": the session's timer restarts from now, with the timeout of
  /// `next`; false: the old deadline stays (a retransmitted SYN in INIT, anything in
  /// BOTH_FIN_RCV but a new SYN, a RST outside the established states).
  bool refresh;
  friend bool operator==(const TcpTransition&, const TcpTransition&) = default;
};

/// The transition of a session in `state` on a segment with `tcp_flags` (the flags byte of the
/// TCP header, wire::tcp::kSyn etc.) travelling from inside (`from_inside`) or from outside.
///   - RST (RFC 7857 §2.3): translated; from ESTABLISHED or a one-way FIN state the session
///     goes to TRANS (4 minutes) with a refresh, otherwise nothing changes.
///   - CLOSED: a SYN opens (INSIDE_INIT / OUTSIDE_INIT by direction); anything else is a
///     connection picked up mid-way: ESTABLISHED.
///   - INSIDE_INIT / OUTSIDE_INIT: a SYN from the other side (SYN-ACK, or a simultaneous open)
///     establishes; only a SYN refreshes.
///   - ESTABLISHED: a FIN goes to that side's FIN state.
///   - INSIDE_FIN / OUTSIDE_FIN: a FIN from the other side goes to BOTH_FIN.
///   - BOTH_FIN: not refreshed, unless a new connection reuses the 4-tuple (a SYN without ACK
///     after TIME-WAIT), which goes to that side's INIT state.
///   - TRANS: any segment establishes again.
/// Every other case keeps the state and refreshes.
TcpTransition TrackTcp(TcpState state, uint8_t tcp_flags, bool from_inside);

/// The state of a session a segment from inside creates (RFC 6146 V6 INIT on a SYN without
/// ACK): INSIDE_INIT; any other segment is a connection the NAT lost (a restart, an expiry),
/// picked up as TRANS, established once it sees more traffic. (A RST creates nothing: the
/// engine drops it before.)
TcpState TcpStateOpenedFromInside(uint8_t tcp_flags);

}  // namespace dpm::nat

#endif  // DPM_NAT_TCP_TRACKING_H_
