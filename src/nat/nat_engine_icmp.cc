// ICMP error translation (RFC 5508 §4): an error about a translated flow is translated with
// it — its outer header, the packet it quotes, and the checksums of both — and an error about
// nothing of ours is dropped (or, addressed to the gateway, left to its stack).
#include <optional>

#include "nat/engine_packet.h"
#include "nat/nat_engine.h"
#include "nat/rewrite.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::nat {

using wire::ChecksumDelta;
using wire::IcmpView;
using wire::Ipv4View;
using wire::QuotedTransport;

namespace {

// Checks an ICMP error message (`message`, already at least 8 bytes) and finds its quote.
std::optional<DropReason> ParseIcmpError(absl::Span<uint8_t> message, std::optional<Ipv4View>* quoted,
                                         std::optional<QuotedTransport>* transport) {
  std::optional<IcmpView> icmp = IcmpView::Parse(message);
  // REQ-3: a bad ICMP checksum, or (REQ-3a) a bad quoted IP checksum, drops the error.
  if (!icmp->ChecksumValid()) return DropReason::kBadChecksum;
  *quoted = Ipv4View::ParseQuoted(icmp->body());
  if (!*quoted) return DropReason::kMalformed;
  if (!(*quoted)->ChecksumValid()) return DropReason::kBadChecksum;
  const uint8_t protocol = (*quoted)->protocol();
  if (protocol != wire::ipv4::kProtocolTcp && protocol != wire::ipv4::kProtocolUdp &&
      protocol != wire::ipv4::kProtocolIcmp) {
    return DropReason::kNoMapping;  // nothing of ours
  }
  if ((*quoted)->fragment_offset() != 0) return DropReason::kNoMapping;  // no transport header quoted
  // REQ-3b: the view skips the quoted IP options; RFC 792 guarantees 8 bytes after them.
  *transport = QuotedTransport::Parse((*quoted)->payload(), protocol);
  if (!*transport) return DropReason::kMalformed;
  if (protocol == wire::ipv4::kProtocolIcmp && !wire::icmp::IsQuery((*transport)->icmp_type())) {
    return DropReason::kNoMapping;  // an error about an error is never sent (RFC 1122 §3.2.2)
  }
  return std::nullopt;
}

}  // namespace

Result NatEngine::InsideIcmpError(uint64_t now_ms, Packet& p) {
  // REQ-5: an inside host reports on a packet it received, so the quote runs from the remote
  // (or, for DPM, the gateway endpoint) to the internal endpoint.
  const bool for_gateway = p.destination.address == config_.gateway_inside_address ||
                           p.destination.address == config_.gateway_outside_address;
  std::optional<Ipv4View> quoted;
  std::optional<QuotedTransport> transport;
  if (std::optional<DropReason> why = ParseIcmpError(p.l4, &quoted, &transport)) {
    return *why == DropReason::kNoMapping && for_gateway ? ToGateway() : Drop(*why);
  }
  const Protocol protocol = static_cast<Protocol>(quoted->protocol());
  // An ICMP query's identifier is the internal endpoint's "port" (here the destination's).
  const bool icmp_quote = protocol == Protocol::kIcmp;
  const Endpoint q_source{quoted->source(), icmp_quote ? uint16_t{0} : transport->source_port()};
  const Endpoint q_destination{quoted->destination(),
                               icmp_quote ? transport->source_port() : transport->destination_port()};
  const uint32_t session = Live(table_->FindInside(FlowKey{protocol, q_destination, q_source}), now_ms);
  if (session == kNoIndex) return for_gateway ? ToGateway() : Drop(DropReason::kNoMapping);
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  const Session& s = table_->session(session);  // REQ-6: an error refreshes nothing
  ChecksumDelta icmp;
  RewriteQuoted(*quoted, *transport, s.dpm() ? s.remote() : q_source, s.external(), /*id_at_source=*/false, &icmp);
  uint8_t* m = p.l4.data();
  Put16(m + wire::icmp::kChecksumOffset, icmp.Apply(wire::LoadBe16(m + wire::icmp::kChecksumOffset)), {});
  // REQ-5c: a NAPT sends it from its own public address, the host's external address here;
  // a DPM host addressed the gateway endpoint, which stands for the remote.
  const uint32_t destination =
      s.dpm() && p.destination.address == config_.gateway_inside_address ? s.remote_address : p.destination.address;
  const bool hairpin = s.flags & kSessionHairpin;
  RewriteIp(p, s.external_address, destination, /*decrement_ttl=*/true, nullptr);
  ++counters_.icmp_errors_translated;
  // REQ-7: a hairpinned error goes on to the other inside host.
  if (hairpin) return OutsideIcmpError(now_ms, p, /*hairpin=*/true);
  ++counters_.translated_out;
  return Result{Verdict::kForwardOutside};
}

Result NatEngine::OutsideIcmpError(uint64_t now_ms, Packet& p, bool hairpin) {
  // REQ-4: the quote is a packet the NAT sent out: from the external endpoint to the remote.
  const bool for_gateway = !hairpin && p.destination.address == config_.gateway_outside_address;
  if (!for_gateway && !IsExternalAddress(p.destination.address)) return Drop(DropReason::kNoRoute);
  std::optional<Ipv4View> quoted;
  std::optional<QuotedTransport> transport;
  if (std::optional<DropReason> why = ParseIcmpError(p.l4, &quoted, &transport)) {
    return *why == DropReason::kNoMapping && for_gateway ? ToGateway() : Drop(*why);
  }
  const Protocol protocol = static_cast<Protocol>(quoted->protocol());
  const Endpoint q_source{quoted->source(), transport->source_port()};
  const Endpoint q_destination{quoted->destination(),
                               protocol == Protocol::kIcmp ? uint16_t{0} : transport->destination_port()};
  const uint32_t session = Live(table_->FindOutside(FlowKey{protocol, q_source, q_destination}), now_ms);
  if (session == kNoIndex) return for_gateway ? ToGateway() : Drop(DropReason::kNoMapping);
  if (!hairpin && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  const Session& s = table_->session(session);  // REQ-6: an error refreshes nothing
  ChecksumDelta icmp;
  const Endpoint q_new_destination = s.dpm() ? Endpoint{config_.gateway_inside_address, s.gateway_port} : q_destination;
  RewriteQuoted(*quoted, *transport, s.internal(), q_new_destination, /*id_at_source=*/true, &icmp);
  uint8_t* m = p.l4.data();
  Put16(m + wire::icmp::kChecksumOffset, icmp.Apply(wire::LoadBe16(m + wire::icmp::kChecksumOffset)), {});
  // REQ-4c: to the quoted packet's (translated) source. A DPM host only knows the gateway
  // endpoint, so an error the remote itself sent comes from the gateway's address.
  const uint32_t source =
      s.dpm() && p.source.address == s.remote_address ? config_.gateway_inside_address : p.source.address;
  RewriteIp(p, source, s.internal_address, /*decrement_ttl=*/!hairpin, nullptr);
  if (hairpin) {
    ++counters_.hairpinned;
  } else {
    ++counters_.icmp_errors_translated;
  }
  ++counters_.translated_in;
  return Result{Verdict::kForwardInside};
}


}  // namespace dpm::nat
