#include "nat/nat_engine.h"

#include <algorithm>

#include "absl/base/attributes.h"
#include "nat/engine_packet.h"
#include "nat/port_allocator.h"
#include "nat/rewrite.h"
#include "nat/table_memory.h"
#include "nat/tcp_tracking.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

// The data path: parsing, the translation of whole packets both ways, batches, and the
// per-packet timers. ICMP errors, fragments, the session bookkeeping and the control
// operations are in nat_engine_icmp.cc, nat_engine_fragments.cc, nat_engine_sessions.cc and
// nat_engine_control.cc.

namespace dpm::nat {

using wire::ChecksumDelta;
using wire::IcmpView;
using wire::Ipv4View;

// ---- Construction ------------------------------------------------------------------------

NatEngine::NatEngine(NatConfig config)
    : config_(std::move(config)),
      inside_mask_(config_.inside_prefix <= 0    ? 0
                   : config_.inside_prefix >= 32 ? 0xffffffffu
                                                 : ~(0xffffffffu >> config_.inside_prefix)),
      table_(std::make_unique<SessionTable>(
          config_.gateway_inside_address, config_.table_memory ? *config_.table_memory : HeapTableMemory())),
      ports_(std::make_unique<PortAllocator>(config_.external_addresses, config_.port_min, config_.port_max,
                                             config_.seed)),
      fragments_(std::make_unique<FragmentTracker>(FragmentLimits{
          config_.fragment_timeout_ms, config_.max_fragment_records, config_.max_held_datagrams,
          config_.max_held_fragments_per_datagram, config_.max_held_fragment_bytes})) {
  for (uint16_t port : config_.gateway_reserved_ports) reserved_gateway_ports_.insert(port);
  if (config_.reserve_sessions > 0) table_->Reserve(std::min(config_.reserve_sessions, config_.max_sessions));
}

NatEngine::~NatEngine() = default;

size_t NatEngine::session_count() const { return table_->session_count(); }
size_t NatEngine::mapping_count() const { return table_->mapping_count(); }
size_t NatEngine::index_slots() const { return table_->index_slots(); }
size_t NatEngine::fragment_record_count() const { return fragments_->record_count(); }
size_t NatEngine::held_fragment_count() const { return fragments_->held_fragment_count(); }
size_t NatEngine::held_datagram_count() const { return fragments_->held_datagram_count(); }
size_t NatEngine::held_fragment_bytes() const { return fragments_->held_bytes(); }
size_t NatEngine::released_fragment_count() const { return fragments_->released_count(); }
bool NatEngine::IsExternalAddress(uint32_t address) const { return ports_->IndexOf(address).has_value(); }

bool NatEngine::InInsideNetwork(uint32_t address) const {
  return (address & inside_mask_) == (config_.inside_network & inside_mask_);
}

bool NatEngine::IsInsideHost(uint32_t address) const {
  return InInsideNetwork(address) && address != config_.gateway_inside_address;
}

bool NatEngine::IsOutsideUnicast(uint32_t address) const {
  const uint32_t first = address >> 24;
  return !InInsideNetwork(address) && first != 0 && first != 127 && (address >> 28) < 0xe &&
         address != config_.gateway_inside_address;
}

Result NatEngine::Drop(DropReason reason) {
  ++drops_[static_cast<size_t>(reason)];
  return Result{Verdict::kDrop, reason};
}

Result NatEngine::ToGateway() {
  ++counters_.to_gateway;
  return Result{Verdict::kToGateway};
}


// ---- Parsing -----------------------------------------------------------------------------

DropReason NatEngine::ParseTransport(Packet& p, bool from_inside) {
  p.l4 = p.ip.payload();
  p.source = Endpoint{p.ip.source(), 0};
  p.destination = Endpoint{p.ip.destination(), 0};
  switch (p.ip.protocol()) {
    case wire::ipv4::kProtocolTcp: {
      std::optional<wire::TcpView> tcp = wire::TcpView::Parse(p.l4);
      if (!tcp || tcp->source_port() == 0 || tcp->destination_port() == 0) return DropReason::kMalformed;
      p.protocol = Protocol::kTcp;
      p.source.port = tcp->source_port();
      p.destination.port = tcp->destination_port();
      p.tcp_flags = tcp->flags();
      return DropReason::kNone;
    }
    case wire::ipv4::kProtocolUdp: {
      std::optional<wire::UdpView> udp = wire::UdpView::Parse(p.l4);
      if (!udp || udp->source_port() == 0 || udp->destination_port() == 0) return DropReason::kMalformed;
      p.protocol = Protocol::kUdp;
      p.source.port = udp->source_port();
      p.destination.port = udp->destination_port();
      return DropReason::kNone;
    }
    case wire::ipv4::kProtocolIcmp: {
      std::optional<IcmpView> icmp = IcmpView::Parse(p.l4);
      if (!icmp) return DropReason::kMalformed;
      p.protocol = Protocol::kIcmp;
      p.icmp_type = icmp->type();
      if (wire::icmp::IsTranslatedError(p.icmp_type)) {
        p.icmp_error = true;
      } else if (wire::icmp::IsQuery(p.icmp_type)) {
        p.id_at_source = from_inside;
        (from_inside ? p.source : p.destination).port = icmp->identifier();
      }
      return DropReason::kNone;
    }
    default:
      return DropReason::kUnsupportedProtocol;
  }
}


// ---- Rewriting (nat/rewrite.h) -----------------------------------------------------------

void NatEngine::RewriteIp(Packet& p, uint32_t source, uint32_t destination, bool decrement_ttl,
                          ChecksumDelta* pseudo_header) {
  RewriteIpv4Header(p.ip, source, destination, decrement_ttl, pseudo_header);
  p.source.address = source;
  p.destination.address = destination;
}

void NatEngine::Rewrite(Packet& p, Endpoint source, Endpoint destination, bool decrement_ttl) {
  const bool icmp = p.protocol == Protocol::kIcmp;  // ICMPv4 has no pseudo-header
  ChecksumDelta pseudo_header;
  RewriteIpv4Header(p.ip, source.address, destination.address, decrement_ttl, icmp ? nullptr : &pseudo_header);
  if (icmp) {
    RewriteIcmpQuery(p.l4, p.id_at_source ? source.port : destination.port);
  } else {
    RewriteTcpUdp(p.l4, p.protocol == Protocol::kUdp, source.port, destination.port, pseudo_header,
                  p.partial_checksum);
  }
  p.source = source;
  p.destination = destination;
}

// ---- Batches -------------------------------------------------------------------------------

Result NatEngine::FromInside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum) {
  return FromInsideHinted(now_ms, packet, kNoIndex, partial_checksum);
}

Result NatEngine::FromOutside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum) {
  return FromOutsideHinted(now_ms, packet, kNoIndex, partial_checksum);
}

void NatEngine::FromInsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                absl::Span<Result> results) {
  FromInsideBatch(now_ms, packets, {}, results);
}

void NatEngine::FromOutsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                 absl::Span<Result> results) {
  FromOutsideBatch(now_ms, packets, {}, results);
}

void NatEngine::FromInsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                absl::Span<const bool> partial_checksum, absl::Span<Result> results) {
  TranslateBatch(now_ms, packets, partial_checksum, results, /*from_inside=*/true);
}

void NatEngine::FromOutsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                 absl::Span<const bool> partial_checksum, absl::Span<Result> results) {
  TranslateBatch(now_ms, packets, partial_checksum, results, /*from_inside=*/false);
}

void NatEngine::TranslateBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                               absl::Span<const bool> partial_checksum, absl::Span<Result> results,
                               bool from_inside) {
  constexpr size_t kGroup = 32;
  const size_t n = std::min(packets.size(), results.size());
  for (size_t start = 0; start < n; start += kGroup) {
    const size_t count = std::min(kGroup, n - start);
    FlowKey keys[kGroup];
    bool keyed[kGroup] = {};
    uint32_t hints[kGroup];
    // Stage 1: the key of each packet; prefetch the index memory its lookup reads.
    for (size_t i = 0; i < count; ++i) {
      std::optional<Ipv4View> ip = Ipv4View::Parse(packets[start + i]);
      if (!ip || ip->is_fragment()) continue;
      Packet p(*ip);
      if (ParseTransport(p, from_inside) != DropReason::kNone || p.icmp_error) continue;
      keys[i] = from_inside ? FlowKey{p.protocol, p.source, p.destination} : FlowKey{p.protocol, p.destination, p.source};
      keyed[i] = true;
      if (from_inside) {
        table_->PrefetchInside(keys[i]);
      } else {
        table_->PrefetchOutside(keys[i]);
      }
    }
    // Stage 2: from the index lines (arrived meanwhile), the likely session of each packet,
    // without reading session records; prefetch those.
    for (size_t i = 0; i < count; ++i) {
      hints[i] = kNoIndex;
      if (!keyed[i]) continue;
      hints[i] = from_inside ? table_->GuessInside(keys[i]) : table_->GuessOutside(keys[i]);
      if (hints[i] != kNoIndex) table_->PrefetchSession(hints[i]);
    }
    // Stage 3: translate in order; a hint is re-checked, as earlier packets may have changed
    // the table.
    for (size_t i = 0; i < count; ++i) {
      const size_t k = start + i;
      const bool partial = k < partial_checksum.size() && partial_checksum[k];
      results[k] = from_inside ? FromInsideHinted(now_ms, packets[k], hints[i], partial)
                               : FromOutsideHinted(now_ms, packets[k], hints[i], partial);
    }
  }
}


// ---- Data path: from inside --------------------------------------------------------------

// The rest of the data path, once the transport header was parsed: shared by whole packets
// and first fragments, and inlined into the fast path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Result NatEngine::InsideParsed(uint64_t now_ms, Packet& p, bool for_gateway,
                                                                   uint32_t hint) {
  if (p.icmp_error) return InsideIcmpError(now_ms, p);
  if (p.protocol == Protocol::kIcmp && !wire::icmp::IsQueryRequest(p.icmp_type)) {
    // Replies to queries from outside (not forwarded in) and other types: the gateway's own.
    if (for_gateway) return ToGateway();
    return Drop(wire::icmp::IsQuery(p.icmp_type) ? DropReason::kNoMapping : DropReason::kIcmpNotTranslated);
  }
  const FlowKey key{p.protocol, p.source, p.destination};
  const bool hinted = hint != kNoIndex && table_->session(hint).live() && table_->InsideKey(hint) == key;
  const uint32_t session = Live(hinted ? hint : table_->FindInside(key), now_ms);
  if (session != kNoIndex) return Outbound(now_ms, p, session, /*fresh=*/false);
  return InsideMiss(now_ms, p);
}

Result NatEngine::TranslateParsed(uint64_t now_ms, Packet& p, bool from_inside, bool for_gateway) {
  return from_inside ? InsideParsed(now_ms, p, for_gateway, kNoIndex) : OutsideParsed(now_ms, p, for_gateway, kNoIndex);
}

Result NatEngine::FromInsideHinted(uint64_t now_ms, absl::Span<uint8_t> bytes, uint32_t hint,
                                   bool partial_checksum) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(bytes);
  if (!ip) return Drop(DropReason::kMalformed);
  if (!ip->ChecksumValid()) return Drop(DropReason::kBadChecksum);
  if (!IsInsideHost(ip->source())) return Drop(DropReason::kNotFromInside);
  const uint32_t dst = ip->destination();
  const bool for_gateway = dst == config_.gateway_inside_address || dst == config_.gateway_outside_address;
  // The only test fragments cost the fast path.
  if (ip->is_fragment()) return OnFragment(now_ms, *ip, /*from_inside=*/true, for_gateway);
  Packet p(*ip);
  p.partial_checksum = partial_checksum;
  if (DropReason why = ParseTransport(p, /*from_inside=*/true); why != DropReason::kNone) {
    if (why == DropReason::kUnsupportedProtocol && for_gateway) return ToGateway();
    return Drop(why);
  }
  return InsideParsed(now_ms, p, for_gateway, hint);
}

Result NatEngine::InsideMiss(uint64_t now_ms, Packet& p) {
  const uint32_t dst = p.destination.address;
  if (dst == config_.gateway_inside_address) return ToGateway();
  const bool to_gateway_outside = dst == config_.gateway_outside_address;
  if (!ports_->IndexOf(dst)) {
    if (to_gateway_outside) return ToGateway();
    if (!IsOutsideUnicast(dst)) return Drop(DropReason::kNoRoute);
  } else if (p.protocol == Protocol::kIcmp ||
             LiveMapping(table_->FindMappingByExternal(EndpointKey{p.protocol, p.destination}), now_ms) == kNoIndex) {
    // Hairpinning (RFC 4787 REQ-9): only toward an external endpoint somebody holds.
    return to_gateway_outside ? ToGateway() : Drop(DropReason::kNoMapping);
  }
  TcpState state = TcpState::kClosed;
  if (p.protocol == Protocol::kTcp) {
    if (p.tcp_flags & wire::tcp::kRst) return Drop(DropReason::kNoMapping);  // nothing to reset
    state = TcpStateOpenedFromInside(p.tcp_flags);
  }
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  DropReason why = DropReason::kNone;
  const uint32_t session = CreateOutbound(now_ms, p.protocol, p.source, p.destination, state, &why);
  if (session == kNoIndex) return Drop(why);
  return Outbound(now_ms, p, session, /*fresh=*/true);
}

Result NatEngine::Outbound(uint64_t now_ms, Packet& p, uint32_t session, bool fresh) {
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  if (!fresh) OnPacket(now_ms, session, /*from_inside=*/true, p.tcp_flags);
  const Session& s = table_->session(session);
  // Claim 6: source -> registered address:port; a DPM session's destination (the gateway
  // endpoint) -> the true destination.
  const Endpoint destination = s.dpm() ? s.remote() : p.destination;
  const bool hairpin = s.flags & kSessionHairpin;
  Rewrite(p, s.external(), destination, /*decrement_ttl=*/true);
  if (hairpin) return HairpinInbound(now_ms, p);
  ++counters_.translated_out;
  return Result{Verdict::kForwardOutside};
}

Result NatEngine::HairpinInbound(uint64_t now_ms, Packet& p) {
  // RFC 4787 REQ-9a / RFC 5382 REQ-8: the packet now comes from the sender's external
  // endpoint; deliver it as if it had arrived from outside.
  const uint32_t session = Live(table_->FindOutside(FlowKey{p.protocol, p.destination, p.source}), now_ms);
  if (session == kNoIndex) return OutsideMiss(now_ms, p, /*hairpin=*/true);
  ++counters_.hairpinned;
  return Inbound(now_ms, p, session, /*decrement_ttl=*/false, /*fresh=*/false);
}

// ---- Data path: from outside -------------------------------------------------------------

// The rest of the data path, once the transport header was parsed: shared by whole packets
// and first fragments, and inlined into the fast path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Result NatEngine::OutsideParsed(uint64_t now_ms, Packet& p, bool for_gateway,
                                                                    uint32_t hint) {
  if (p.icmp_error) return OutsideIcmpError(now_ms, p, /*hairpin=*/false);
  if (p.protocol == Protocol::kIcmp && !wire::icmp::IsQueryReply(p.icmp_type)) {
    // Queries from outside are not forwarded in (RFC 5508 REQ-1 covers those from inside).
    if (for_gateway) return ToGateway();
    return Drop(wire::icmp::IsQuery(p.icmp_type) ? DropReason::kNoMapping : DropReason::kIcmpNotTranslated);
  }
  const FlowKey key{p.protocol, p.destination, p.source};
  const bool hinted = hint != kNoIndex && table_->session(hint).live() && table_->OutsideKey(hint) == key;
  const uint32_t session = Live(hinted ? hint : table_->FindOutside(key), now_ms);
  if (session != kNoIndex) return Inbound(now_ms, p, session, /*decrement_ttl=*/true, /*fresh=*/false);
  return OutsideMiss(now_ms, p, /*hairpin=*/false);
}

Result NatEngine::FromOutsideHinted(uint64_t now_ms, absl::Span<uint8_t> bytes, uint32_t hint,
                                   bool partial_checksum) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(bytes);
  if (!ip) return Drop(DropReason::kMalformed);
  if (!ip->ChecksumValid()) return Drop(DropReason::kBadChecksum);
  const bool for_gateway = ip->destination() == config_.gateway_outside_address;
  if (ip->is_fragment()) return OnFragment(now_ms, *ip, /*from_inside=*/false, for_gateway);
  Packet p(*ip);
  p.partial_checksum = partial_checksum;
  if (DropReason why = ParseTransport(p, /*from_inside=*/false); why != DropReason::kNone) {
    if (why == DropReason::kUnsupportedProtocol && for_gateway) return ToGateway();
    return Drop(why);
  }
  return OutsideParsed(now_ms, p, for_gateway, hint);
}

Result NatEngine::OutsideMiss(uint64_t now_ms, Packet& p, bool hairpin) {
  const uint32_t dst = p.destination.address;
  const bool to_gateway_outside = !hairpin && dst == config_.gateway_outside_address;
  if (!ports_->IndexOf(dst)) return to_gateway_outside ? ToGateway() : Drop(DropReason::kNoRoute);
  auto refuse = [&](DropReason why) { return to_gateway_outside ? ToGateway() : Drop(why); };
  if (p.protocol == Protocol::kIcmp) return refuse(DropReason::kNoMapping);  // replies need their session
  // Endpoint-independent filtering (RFC 4787 REQ-8, RFC 5382 REQ-3): any remote may reach an
  // endpoint-independent mapping. A DPM mapping only serves its sessions' remotes.
  const uint32_t mapping =
      LiveMapping(table_->FindMappingByExternal(EndpointKey{p.protocol, p.destination}), now_ms);
  if (mapping == kNoIndex || table_->mapping(mapping).kind != MappingKind::kEndpointIndependent) {
    return refuse(DropReason::kNoMapping);
  }
  // RFC 6887 §13.3: an explicit mapping with FILTERs lets in only the remotes they allow.
  if (!filters_.empty()) {
    if (auto it = filters_.find(mapping); it != filters_.end() &&
        std::none_of(it->second.begin(), it->second.end(),
                     [&](const RemoteFilter& f) { return f.Matches(p.source); })) {
      return refuse(DropReason::kFiltered);
    }
  }
  if (p.protocol == Protocol::kTcp &&
      (p.tcp_flags & (wire::tcp::kSyn | wire::tcp::kAck | wire::tcp::kRst)) != wire::tcp::kSyn) {
    return refuse(DropReason::kNoMapping);  // only a SYN opens a connection from outside
  }
  if (!hairpin && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  DropReason why = DropReason::kNone;
  const uint32_t session = CreateInbound(now_ms, mapping, p.source, &why);
  if (session == kNoIndex) return Drop(why);
  if (hairpin) ++counters_.hairpinned;
  return Inbound(now_ms, p, session, /*decrement_ttl=*/!hairpin, /*fresh=*/true);
}

Result NatEngine::Inbound(uint64_t now_ms, Packet& p, uint32_t session, bool decrement_ttl, bool fresh) {
  if (decrement_ttl && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  if (!fresh) OnPacket(now_ms, session, /*from_inside=*/false, p.tcp_flags);
  const Session& s = table_->session(session);
  // A DPM reply must look as if the gateway endpoint had sent it (claims 5-6, reversed).
  const Endpoint source = s.dpm() ? Endpoint{config_.gateway_inside_address, s.gateway_port} : p.source;
  Rewrite(p, source, s.internal(), decrement_ttl);
  ++counters_.translated_in;
  return Result{Verdict::kForwardInside};
}


// ---- Timers (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2, RFC 7857 §2) ------------------

uint64_t NatEngine::Timeout(const Session& s) const {
  switch (s.protocol) {
    case Protocol::kUdp: return config_.udp_timeout_ms;
    case Protocol::kIcmp: return config_.icmp_timeout_ms;
    case Protocol::kTcp: break;
  }
  return UsesEstablishedTimer(s.tcp_state) ? config_.tcp_established_ms : config_.tcp_transitory_ms;
}

uint64_t NatEngine::Deadline(const Session& s) const {
  // A DPM session is a PCP mapping: it lives until its lifetime ends, idle or not
  // (RFC 6887 §15); the driver renews it while the socket lives.
  if (s.dpm()) return uint64_t{s.expires_s} * 1000;
  return uint64_t{s.last_used_s} * 1000 + Timeout(s);
}

void NatEngine::OnPacket(uint64_t now_ms, uint32_t session, bool from_inside, uint8_t flags) {
  Session& s = table_->session(session);
  if (s.protocol != Protocol::kTcp) {
    // RFC 4787 REQ-6 (outbound refresh) and REQ-6a (inbound refresh, chosen here).
    s.last_used_s = Seconds(now_ms);
    return;
  }
  // RFC 6146 §3.5.2.2 as RFC 7857 §2.1 recommends for NAT44 (nat/tcp_tracking.h): "refresh"
  // sets the lifetime of the new state from now; states that do not refresh keep their old
  // deadline.
  const TcpState before = s.tcp_state;
  const TcpTransition t = TrackTcp(before, flags, from_inside);
  s.tcp_state = t.next;
  if (t.refresh) s.last_used_s = Seconds(now_ms);
  if (t.next != before) NoteDeadline(session, Deadline(s));
}

void NatEngine::NoteDeadline(uint32_t session, uint64_t deadline_ms) { session_sweep_.Note(session, deadline_ms); }

uint32_t NatEngine::Live(uint32_t session, uint64_t now_ms) {
  if (session == kNoIndex || Deadline(table_->session(session)) > now_ms) return session;
  RemoveSession(session, /*expired=*/true);
  return kNoIndex;
}

uint32_t NatEngine::Seconds(uint64_t now_ms) {
  // Rounded up: a timer or lifetime counted from it never runs short.
  return static_cast<uint32_t>((now_ms + 999) / 1000);
}

}  // namespace dpm::nat
