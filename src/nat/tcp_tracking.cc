#include "nat/tcp_tracking.h"

#include "wire/ipv4.h"

namespace dpm::nat {

const char* TcpStateName(TcpState state) {
  switch (state) {
    case TcpState::kClosed: return "CLOSED";
    case TcpState::kInsideInit: return "INSIDE_INIT";
    case TcpState::kOutsideInit: return "OUTSIDE_INIT";
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kInsideFinRcv: return "INSIDE_FIN";
    case TcpState::kOutsideFinRcv: return "OUTSIDE_FIN";
    case TcpState::kBothFinRcv: return "BOTH_FIN";
    case TcpState::kTrans: return "TRANS";
  }
  return "unknown";
}

TcpTransition TrackTcp(TcpState state, uint8_t tcp_flags, bool from_inside) {
  const bool syn = tcp_flags & wire::tcp::kSyn;
  const bool fin = tcp_flags & wire::tcp::kFin;
  const bool ack = tcp_flags & wire::tcp::kAck;
  const TcpState init_here = from_inside ? TcpState::kInsideInit : TcpState::kOutsideInit;
  if (tcp_flags & wire::tcp::kRst) {
    // RFC 7857 §2.3: translate the RST, keep the session 4 minutes (TRANS).
    if (UsesEstablishedTimer(state)) return {TcpState::kTrans, true};
    return {state, false};
  }
  switch (state) {
    case TcpState::kClosed:
      return {syn ? init_here : TcpState::kEstablished, true};
    case TcpState::kInsideInit:
      // A SYN-ACK, or a simultaneous open.
      return {syn && !from_inside ? TcpState::kEstablished : state, syn};
    case TcpState::kOutsideInit:
      return {syn && from_inside ? TcpState::kEstablished : state, syn};
    case TcpState::kEstablished:
      if (fin) return {from_inside ? TcpState::kInsideFinRcv : TcpState::kOutsideFinRcv, true};
      return {state, true};
    case TcpState::kInsideFinRcv:
      return {fin && !from_inside ? TcpState::kBothFinRcv : state, true};
    case TcpState::kOutsideFinRcv:
      return {fin && from_inside ? TcpState::kBothFinRcv : state, true};
    case TcpState::kBothFinRcv:
      // Closing: the 4-minute timer runs out unrefreshed, unless a new connection reuses the
      // 4-tuple (a SYN after TIME-WAIT).
      if (syn && !ack) return {init_here, true};
      return {state, false};
    case TcpState::kTrans:
      return {TcpState::kEstablished, true};
  }
  return {state, true};
}

TcpState TcpStateOpenedFromInside(uint8_t tcp_flags) {
  const bool syn = (tcp_flags & (wire::tcp::kSyn | wire::tcp::kAck)) == wire::tcp::kSyn;
  return syn ? TcpState::kInsideInit : TcpState::kTrans;
}

}  // namespace dpm::nat
