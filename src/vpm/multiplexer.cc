// The VPM packet path (multiplexer.h).
#include "vpm/multiplexer.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "nat/rewrite.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::vpm {
namespace {

// The transport header bytes a rewrite needs: both ports and the checksum field.
constexpr size_t kTcpNeeded = wire::tcp::kChecksumOffset + 2;
constexpr size_t kUdpNeeded = wire::udp::kHeaderLength;

// The parts of one TCP/UDP packet the path reads.
struct Parsed {
  uint8_t protocol;
  uint32_t source, destination;
  uint16_t source_port, destination_port;
  uint8_t tcp_flags;
  absl::Span<uint8_t> transport;  // at least the bytes a rewrite needs
};

enum class ParseOutcome { kOk, kNotOurs, kMalformed };

// `whole`: `bytes` is the whole packet (inbound); else the start of one (an outbound head).
ParseOutcome Parse(absl::Span<uint8_t> bytes, bool whole, Parsed* out) {
  std::optional<wire::Ipv4View> ip = whole ? wire::Ipv4View::Parse(bytes) : wire::Ipv4View::ParseQuoted(bytes);
  if (!ip) return ParseOutcome::kNotOurs;  // lwIP's own checks deal with it
  const uint8_t protocol = ip->protocol();
  if (protocol != wire::ipv4::kProtocolTcp && protocol != wire::ipv4::kProtocolUdp) return ParseOutcome::kNotOurs;
  // A later fragment has no transport header; reassembled behind a translated first fragment
  // it is right as it is (the ports and the checksum are in the first).
  if (ip->fragment_offset() != 0) return ParseOutcome::kNotOurs;
  absl::Span<uint8_t> t = ip->payload();
  const size_t needed = protocol == wire::ipv4::kProtocolTcp ? kTcpNeeded : kUdpNeeded;
  out->protocol = protocol;
  out->source = ip->source();
  out->destination = ip->destination();
  if (t.size() < 4) return ParseOutcome::kNotOurs;  // no ports: no telling whose it is
  out->source_port = wire::LoadBe16(t.data() + wire::tcp::kSourcePortOffset);
  out->destination_port = wire::LoadBe16(t.data() + wire::tcp::kDestinationPortOffset);
  if (t.size() < needed) return ParseOutcome::kMalformed;
  out->tcp_flags = protocol == wire::ipv4::kProtocolTcp ? t[wire::tcp::kFlagsOffset] : 0;
  out->transport = t;
  return ParseOutcome::kOk;
}

void Rewrite(const Parsed& p, uint16_t source_port, uint16_t destination_port, bool partial_checksum) {
  nat::RewriteTcpUdp(p.transport, p.protocol == wire::ipv4::kProtocolUdp, source_port, destination_port,
                     wire::ChecksumDelta{}, partial_checksum);
}

bool IsSyn(uint8_t flags) { return (flags & (wire::tcp::kSyn | wire::tcp::kAck | wire::tcp::kRst)) == wire::tcp::kSyn; }

}  // namespace

const char* ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kNone: return "none";
    case Reason::kMalformed: return "malformed";
    case Reason::kRefused: return "refused";
    case Reason::kNoListener: return "no_listener";
    case Reason::kNoFlow: return "no_flow";
    case Reason::kFlowLimit: return "flow_limit";
    case Reason::kHidden: return "hidden_port";
    case Reason::kCount: break;
  }
  return "?";
}

Multiplexer::Multiplexer(const MultiplexerConfig& config, const VirtualPortTable& ports)
    : config_(config), ports_(ports) {}

uint32_t Multiplexer::InternAid(absl::string_view aid) {
  auto [it, added] = aid_index_.try_emplace(std::string(aid), static_cast<uint32_t>(aid_names_.size()));
  if (added) {
    aid_names_.emplace_back(aid);
    aid_counters_.emplace_back();
  }
  return it->second;
}

std::optional<uint32_t> Multiplexer::NewFlow(uint64_t now_ms, const Flow& flow) {
  if (live_ >= config_.max_flows) return std::nullopt;
  uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<uint32_t>(flows_.size());
    flows_.emplace_back();
  }
  Flow& f = flows_[id];
  f = flow;
  f.live = true;
  f.last_used_ms = now_ms;
  f.checked_at = ports_.generation();  // made for the stream that holds its hidden port now
  by_wire_[f.wire] = id;
  by_stack_[f.stack] = id;
  ++live_;
  ++aid_counters_[f.aid].flows;
  return id;
}

void Multiplexer::EraseFlow(uint32_t id) {
  Flow& f = flows_[id];
  if (!f.live) return;
  by_wire_.erase(f.wire);
  by_stack_.erase(f.stack);
  f.live = false;
  free_ids_.push_back(id);
  --live_;
}

bool Multiplexer::StillValid(Flow& flow) const {
  if (flow.client || flow.checked_at == ports_.generation()) return true;
  // No stream on the hidden port: the flow's connection is closing after its last socket
  // went (lwIP's FIN handshake, TIME-WAIT) and still leaves from the virtual port. Another
  // stream on it: the port was given again, and this flow is over.
  const VirtualStream* s = ports_.FindByHidden(flow.key.protocol, flow.hidden);
  const bool valid = s == nullptr || (s->key == flow.key && s->aid == aid_names_[flow.aid]);
  if (valid) flow.checked_at = ports_.generation();
  return valid;
}

void Multiplexer::Touch(uint64_t now_ms, Flow& f, uint8_t tcp_flags, bool outbound) {
  uint64_t timeout = config_.udp_timeout_ms;
  if (f.key.protocol == Protocol::kTcp) {
    const nat::TcpTransition t = nat::TrackTcp(f.tcp, tcp_flags, /*from_inside=*/outbound);
    f.tcp = t.next;
    if (!t.refresh) return;
    timeout = nat::UsesEstablishedTimer(f.tcp) ? config_.tcp_established_timeout_ms : config_.tcp_transitory_timeout_ms;
  }
  f.last_used_ms = now_ms;
  f.deadline_ms = now_ms + timeout;
  if (!earliest_deadline_ || f.deadline_ms < *earliest_deadline_) earliest_deadline_ = f.deadline_ms;
}

Result Multiplexer::Refuse(Reason reason, PortKey key) {
  ++counters_[static_cast<size_t>(reason)];
  ++refused_by_port_[key];
  return {Result::kRefuse, reason};
}

Result Multiplexer::Inbound(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum) {
  Parsed p;
  const ParseOutcome outcome = Parse(packet, /*whole=*/true, &p);
  if (outcome == ParseOutcome::kNotOurs) return {};
  const PortKey key{static_cast<Protocol>(p.protocol), p.destination_port};
  if (outcome == ParseOutcome::kMalformed) {
    // Malformed towards a port of ours: dropped here (lwIP would drop it too); anything else
    // is lwIP's to count.
    return ports_.InUse(key) ? Dropped(Reason::kMalformed) : Result{};
  }
  const Tuple wire_tuple{p.protocol, p.destination, p.source, p.destination_port, p.source_port};
  if (auto it = by_wire_.find(wire_tuple); it != by_wire_.end()) {
    Flow& f = flows_[it->second];
    if (StillValid(f)) {
      Touch(now_ms, f, p.tcp_flags, /*outbound=*/false);
      ++aid_counters_[f.aid].packets_in;
      if (f.negotiated) return {};  // on the hidden port both ways
      if (f.client) {
        Rewrite(p, f.key.port, p.destination_port, partial_checksum);  // H → V at the source
      } else {
        Rewrite(p, p.source_port, f.hidden, partial_checksum);  // V → H at the destination
      }
      return {Result::kRewritten};
    }
    EraseFlow(it->second);  // its stream is gone; the packet starts afresh
  }
  if (!ports_.InUse(key)) {
    // Not a virtual port (or nobody on it: lwIP answers) … unless it is a hidden one, which
    // only a negotiation opens (the dispatcher's rules are not gone round).
    const VirtualStream* h = ports_.FindByHidden(key.protocol, p.destination_port);
    if (h == nullptr) return {};
    if (p.protocol == wire::ipv4::kProtocolTcp && (p.tcp_flags & wire::tcp::kRst)) return Dropped(Reason::kHidden);
    return Refuse(Reason::kHidden, h->key);
  }
  if (p.protocol == wire::ipv4::kProtocolTcp && !IsSyn(p.tcp_flags)) {
    if (p.tcp_flags & wire::tcp::kRst) return Dropped(Reason::kNoFlow);
    return Refuse(Reason::kNoFlow, key);
  }
  const Dispatcher::Decision d =
      dispatcher_ != nullptr ? dispatcher_->Dispatch(key, p.source, p.source_port) : Dispatcher::Decision{};
  if (d.kind != Dispatcher::Decision::kRule && d.kind != Dispatcher::Decision::kDefault) {
    return Refuse(Reason::kRefused, key);
  }
  const VirtualStream* s = ports_.Find(key, d.aid);
  if (s == nullptr) {
    ++aid_counters_[InternAid(d.aid)].refused;
    return Refuse(Reason::kNoListener, key);
  }
  Flow f;
  f.wire = wire_tuple;
  f.stack = Tuple{p.protocol, p.destination, p.source, s->hidden_port, p.source_port};
  f.key = key;
  f.hidden = s->hidden_port;
  f.aid = InternAid(d.aid);
  std::optional<uint32_t> id = NewFlow(now_ms, f);
  if (!id) return Dropped(Reason::kFlowLimit);
  if (d.kind == Dispatcher::Decision::kDefault) ++aid_counters_[f.aid].by_default;
  Flow& made = flows_[*id];
  Touch(now_ms, made, p.tcp_flags, /*outbound=*/false);
  ++aid_counters_[made.aid].packets_in;
  Rewrite(p, p.source_port, made.hidden, partial_checksum);
  return {Result::kRewritten};
}

Result Multiplexer::Outbound(uint64_t now_ms, absl::Span<uint8_t> head, bool partial_checksum) {
  Parsed p;
  const ParseOutcome outcome = Parse(head, /*whole=*/false, &p);
  if (outcome != ParseOutcome::kOk) return {};  // lwIP builds its headers whole; nothing of ours
  const Tuple stack_tuple{p.protocol, p.source, p.destination, p.source_port, p.destination_port};
  if (auto it = by_stack_.find(stack_tuple); it != by_stack_.end()) {
    Flow& f = flows_[it->second];
    if (StillValid(f)) {
      Touch(now_ms, f, p.tcp_flags, /*outbound=*/true);
      ++aid_counters_[f.aid].packets_out;
      if (f.negotiated) return {};
      if (f.client) {
        Rewrite(p, p.source_port, f.hidden, partial_checksum);  // V → H at the destination
      } else {
        Rewrite(p, f.key.port, p.destination_port, partial_checksum);  // H → V at the source
      }
      return {Result::kRewritten};
    }
    EraseFlow(it->second);
  }
  // A retransmission lwIP built from a header this already rewrote: it is on the wire form.
  if (auto it = by_wire_.find(stack_tuple); it != by_wire_.end() && flows_[it->second].live) {
    Touch(now_ms, flows_[it->second], p.tcp_flags, /*outbound=*/true);
    ++aid_counters_[flows_[it->second].aid].packets_out;
    return {};
  }
  // From a hidden port with no flow: a UDP socket writing first, a connection whose flow
  // expired while lwIP kept it, a RST. It leaves from the virtual port, and (but for a RST)
  // a flow brings the answers back to the same stream.
  const VirtualStream* s = ports_.FindByHidden(static_cast<Protocol>(p.protocol), p.source_port);
  if (s == nullptr) return {};
  const bool rst = p.protocol == wire::ipv4::kProtocolTcp && (p.tcp_flags & wire::tcp::kRst);
  if (!rst) {
    Flow f;
    f.stack = stack_tuple;
    f.wire = Tuple{p.protocol, p.source, p.destination, s->key.port, p.destination_port};
    f.key = s->key;
    f.hidden = s->hidden_port;
    f.aid = InternAid(s->aid);
    if (by_wire_.contains(f.wire)) return Dropped(Reason::kFlowLimit);  // another flow holds it
    std::optional<uint32_t> id = NewFlow(now_ms, f);
    if (!id) return Dropped(Reason::kFlowLimit);
    Touch(now_ms, flows_[*id], p.tcp_flags, /*outbound=*/true);
    ++aid_counters_[flows_[*id].aid].packets_out;
  }
  Rewrite(p, s->key.port, p.destination_port, partial_checksum);
  return {Result::kRewritten};
}

absl::Status Multiplexer::AddClientFlow(uint64_t now_ms, Protocol protocol, uint32_t local_address,
                                        uint16_t local_port, uint32_t remote_address, uint16_t virtual_port,
                                        uint16_t hidden_port, absl::string_view aid) {
  const uint8_t proto = static_cast<uint8_t>(protocol);
  Flow f;
  f.client = true;
  f.stack = Tuple{proto, local_address, remote_address, local_port, virtual_port};
  f.wire = Tuple{proto, local_address, remote_address, local_port, hidden_port};
  f.key = PortKey{protocol, virtual_port};
  f.hidden = hidden_port;
  // A socket that connects again (UDP) negotiates again: its new flow replaces the old.
  if (auto it = by_stack_.find(f.stack); it != by_stack_.end() && flows_[it->second].client) EraseFlow(it->second);
  if (by_stack_.contains(f.stack) || by_wire_.contains(f.wire)) {
    return absl::AlreadyExistsError("a flow holds that address and port pair");
  }
  f.aid = InternAid(aid);
  std::optional<uint32_t> id = NewFlow(now_ms, f);
  if (!id) return absl::ResourceExhaustedError("the flow table is full");
  // Until its first packet, it lives as long as a connection being opened.
  SetDeadline(flows_[*id], now_ms + config_.tcp_transitory_timeout_ms);
  return absl::OkStatus();
}

absl::Status Multiplexer::AddNegotiatedFlow(uint64_t now_ms, PortKey key, absl::string_view aid,
                                            uint16_t hidden_port, uint32_t local_address, uint32_t remote_address,
                                            uint16_t remote_port, uint64_t wait_ms) {
  const Tuple t{static_cast<uint8_t>(key.protocol), local_address, remote_address, hidden_port, remote_port};
  if (auto it = by_wire_.find(t); it != by_wire_.end()) {
    const Flow& held = flows_[it->second];
    if (held.negotiated && held.key == key && held.hidden == hidden_port && aid_names_[held.aid] == aid) {
      return absl::OkStatus();  // the same negotiation again
    }
    return absl::AlreadyExistsError("a flow holds that address and port pair");
  }
  if (by_stack_.contains(t)) return absl::AlreadyExistsError("a flow holds that address and port pair");
  Flow f;
  f.negotiated = true;
  f.wire = t;
  f.stack = t;
  f.key = key;
  f.hidden = hidden_port;
  f.aid = InternAid(aid);
  std::optional<uint32_t> id = NewFlow(now_ms, f);
  if (!id) return absl::ResourceExhaustedError("the flow table is full");
  SetDeadline(flows_[*id], now_ms + wait_ms);
  return absl::OkStatus();
}

void Multiplexer::SetDeadline(Flow& flow, uint64_t deadline_ms) {
  flow.deadline_ms = deadline_ms;
  if (!earliest_deadline_ || deadline_ms < *earliest_deadline_) earliest_deadline_ = deadline_ms;
}

std::vector<uint8_t> Multiplexer::BuildRefusal(absl::Span<const uint8_t> packet) {
  std::vector<uint8_t> copy(packet.begin(), packet.end());
  std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(absl::MakeSpan(copy));
  if (!ip || ip->fragment_offset() != 0) return {};
  if (ip->protocol() == wire::ipv4::kProtocolUdp) {
    return wire::BuildIcmpError(ip->destination(), wire::icmp::kDestinationUnreachable,
                                wire::icmp::kCodePortUnreachable, 0, packet);
  }
  if (ip->protocol() != wire::ipv4::kProtocolTcp) return {};
  std::optional<wire::TcpView> tcp = wire::TcpView::Parse(ip->payload());
  if (!tcp || (tcp->flags() & wire::tcp::kRst)) return {};
  // RFC 9293 §3.10.7.1: with ACK, <SEQ=SEG.ACK><CTL=RST>; without, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
  // <CTL=RST,ACK>, where SYN and FIN each count one.
  const size_t data = ip->payload().size() - tcp->header_length();
  uint32_t seq = 0, ack = 0;
  uint8_t flags = wire::tcp::kRst;
  if (tcp->flags() & wire::tcp::kAck) {
    seq = tcp->acknowledgment();
  } else {
    ack = tcp->sequence() + static_cast<uint32_t>(data) + ((tcp->flags() & wire::tcp::kSyn) ? 1 : 0) +
          ((tcp->flags() & wire::tcp::kFin) ? 1 : 0);
    flags |= wire::tcp::kAck;
  }
  std::vector<uint8_t> out(wire::ipv4::kMinHeaderLength + wire::tcp::kMinHeaderLength, 0);
  wire::Ipv4Repr repr;
  repr.source = ip->destination();
  repr.destination = ip->source();
  repr.protocol = wire::ipv4::kProtocolTcp;
  repr.flags_fragment = wire::ipv4::kFlagDontFragment;
  repr.payload_length = wire::tcp::kMinHeaderLength;
  repr.Emit(absl::MakeSpan(out));
  uint8_t* t = out.data() + wire::ipv4::kMinHeaderLength;
  wire::StoreBe16(t + wire::tcp::kSourcePortOffset, tcp->destination_port());
  wire::StoreBe16(t + wire::tcp::kDestinationPortOffset, tcp->source_port());
  wire::StoreBe32(t + wire::tcp::kSequenceOffset, seq);
  wire::StoreBe32(t + wire::tcp::kAcknowledgmentOffset, ack);
  t[wire::tcp::kDataOffsetOffset] = (wire::tcp::kMinHeaderLength / 4) << 4;
  t[wire::tcp::kFlagsOffset] = flags;
  wire::StoreBe16(t + wire::tcp::kChecksumOffset,
                  wire::TransportChecksum(repr.source, repr.destination, wire::ipv4::kProtocolTcp,
                                          absl::MakeConstSpan(t, wire::tcp::kMinHeaderLength)));
  return out;
}

size_t Multiplexer::Sweep(uint64_t now_ms, size_t max_flows) {
  if (flows_.empty()) return 0;
  size_t removed = 0;
  const size_t steps = std::min(max_flows, flows_.size());
  for (size_t i = 0; i < steps; ++i) {
    if (sweep_cursor_ >= flows_.size()) sweep_cursor_ = 0;
    const uint32_t id = static_cast<uint32_t>(sweep_cursor_++);
    Flow& f = flows_[id];
    if (f.live && (f.deadline_ms <= now_ms || !StillValid(f))) {
      EraseFlow(id);
      ++removed;
    }
  }
  // After a whole pass, the earliest deadline is known again.
  if (sweep_cursor_ >= flows_.size()) {
    earliest_deadline_.reset();
    for (const Flow& f : flows_) {
      if (f.live && (!earliest_deadline_ || f.deadline_ms < *earliest_deadline_)) earliest_deadline_ = f.deadline_ms;
    }
  }
  return removed;
}

std::optional<uint64_t> Multiplexer::NextDeadline() const { return live_ == 0 ? std::nullopt : earliest_deadline_; }

std::vector<std::pair<std::string, AidCounters>> Multiplexer::aid_counters() const {
  std::vector<std::pair<std::string, AidCounters>> out;
  for (size_t i = 0; i < aid_names_.size(); ++i) out.emplace_back(aid_names_[i], aid_counters_[i]);
  return out;
}

std::vector<FlowInfo> Multiplexer::List(uint64_t now_ms) const {
  std::vector<FlowInfo> out;
  for (const Flow& f : flows_) {
    if (!f.live) continue;
    out.push_back(FlowInfo{f.client ? "client" : f.negotiated ? "negotiated" : "server", f.key.protocol, f.wire.local, f.wire.remote, f.wire.local_port,
                           f.wire.remote_port, f.key.port, f.hidden, aid_names_[f.aid],
                           now_ms >= f.last_used_ms ? now_ms - f.last_used_ms : 0, f.tcp});
  }
  return out;
}

}  // namespace dpm::vpm
