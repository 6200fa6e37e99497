// The NAT's in-place header rewrites with incremental checksum updates (RFC 1624 eqn. 3):
// every changed 16-bit word goes into each checksum that covers it, once, so a rewrite costs
// a few words whatever the payload size, and a wrong checksum stays wrong (the end host still
// drops a corrupted segment).
//
// Offload-aware (docs/nat.md "Offload"): a TCP/UDP packet whose checksum field holds only the
// pseudo-header sum (CHECKSUM_PARTIAL, to be completed by the link) gets that sum updated for
// the address changes only.
//
// The small per-packet helpers are inline: the data path calls them for every packet.
// All values are host byte order; the bytes are written big-endian.
#ifndef DPM_NAT_REWRITE_H_
#define DPM_NAT_REWRITE_H_

#include <cstdint>
#include <initializer_list>

#include "absl/types/span.h"
#include "nat/session_table.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::nat {

/// Writes the 16-bit field at `at` and records the change in each checksum delta that covers
/// it (null entries: none). Nothing is recorded when the value does not change.
inline void Put16(uint8_t* at, uint16_t value, std::initializer_list<wire::ChecksumDelta*> deltas) {
  const uint16_t old = wire::LoadBe16(at);
  if (old == value) return;
  wire::StoreBe16(at, value);
  for (wire::ChecksumDelta* d : deltas) {
    if (d != nullptr) d->Replace16(old, value);
  }
}

/// The same for a 32-bit field (an IPv4 address: two words).
inline void Put32(uint8_t* at, uint32_t value, std::initializer_list<wire::ChecksumDelta*> deltas) {
  const uint32_t old = wire::LoadBe32(at);
  if (old == value) return;
  wire::StoreBe32(at, value);
  for (wire::ChecksumDelta* d : deltas) {
    if (d != nullptr) d->Replace32(old, value);
  }
}

/// Applies `delta` to the complete transport checksum at `at`. `udp`: RFC 768 — a checksum of
/// 0 means none was sent and stays 0, and a computed 0 is sent as 0xffff. The field's own
/// change goes into `covering` (the outer ICMP checksum of a quote; null: none).
inline void UpdateChecksumField(uint8_t* at, const wire::ChecksumDelta& delta, bool udp,
                                wire::ChecksumDelta* covering) {
  const uint16_t old = wire::LoadBe16(at);
  if (udp && old == 0) return;
  uint16_t updated = delta.Apply(old);
  if (udp) updated = wire::UdpChecksumOnWire(updated);
  Put16(at, updated, {covering});
}

/// The partial-checksum form: the field at `at` holds the pseudo-header sum S, not ~sum, so
/// S' = S + sum of (~m + m') over the changes in `delta` (what Linux's
/// inet_proto_csum_replace4 does for CHECKSUM_PARTIAL). `delta` must hold the pseudo-header
/// (address) changes only: whoever completes the sum adds the ports itself.
inline void UpdatePartialChecksumField(uint8_t* at, const wire::ChecksumDelta& delta) {
  Put16(at, static_cast<uint16_t>(~delta.Apply(static_cast<uint16_t>(~wire::LoadBe16(at)))), {});
}

/// Rewrites the IPv4 header of `ip` to run from `source` to `destination` and, with
/// `decrement_ttl`, takes one off the TTL (which shares a 16-bit word with the protocol,
/// RFC 1624 §5's example); updates the header checksum. The address changes also go into
/// `pseudo_header` (the TCP/UDP pseudo-header's delta; null for ICMP, which has none).
inline void RewriteIpv4Header(wire::Ipv4View& ip, uint32_t source, uint32_t destination, bool decrement_ttl,
                              wire::ChecksumDelta* pseudo_header) {
  uint8_t* h = ip.header().data();
  wire::ChecksumDelta header;
  Put32(h + wire::ipv4::kSourceOffset, source, {&header, pseudo_header});
  Put32(h + wire::ipv4::kDestinationOffset, destination, {&header, pseudo_header});
  if (decrement_ttl) {
    const uint16_t word = wire::LoadBe16(h + wire::ipv4::kTtlOffset);
    Put16(h + wire::ipv4::kTtlOffset, static_cast<uint16_t>(word - 0x100), {&header});
  }
  ip.set_checksum(header.Apply(ip.checksum()));
}

/// Rewrites a TCP or UDP header (`segment`: from the transport header on, at least its
/// checksum field) to the given ports and updates its checksum by `pseudo_header` (the
/// address changes RewriteIpv4Header recorded) and the port changes. `partial_checksum`: the
/// field holds the pseudo-header sum (offload); it is updated for the addresses only.
inline void RewriteTcpUdp(absl::Span<uint8_t> segment, bool udp, uint16_t source_port, uint16_t destination_port,
                          wire::ChecksumDelta pseudo_header, bool partial_checksum) {
  // TCP and UDP both start with the source and destination ports.
  uint8_t* t = segment.data();
  uint8_t* checksum = t + (udp ? wire::udp::kChecksumOffset : wire::tcp::kChecksumOffset);
  if (partial_checksum) {
    Put16(t + wire::tcp::kSourcePortOffset, source_port, {});
    Put16(t + wire::tcp::kDestinationPortOffset, destination_port, {});
    UpdatePartialChecksumField(checksum, pseudo_header);
    return;
  }
  Put16(t + wire::tcp::kSourcePortOffset, source_port, {&pseudo_header});
  Put16(t + wire::tcp::kDestinationPortOffset, destination_port, {&pseudo_header});
  UpdateChecksumField(checksum, pseudo_header, udp, nullptr);
}

/// Rewrites an ICMP query message's identifier (RFC 5508 REQ-1a: translated like a port) and
/// updates the ICMP checksum (no pseudo-header in ICMPv4).
inline void RewriteIcmpQuery(absl::Span<uint8_t> message, uint16_t identifier) {
  uint8_t* m = message.data();
  wire::ChecksumDelta delta;
  Put16(m + wire::icmp::kIdentifierOffset, identifier, {&delta});
  Put16(m + wire::icmp::kChecksumOffset, delta.Apply(wire::LoadBe16(m + wire::icmp::kChecksumOffset)), {});
}

/// Rewrites the packet quoted in an ICMP error (RFC 5508 REQ-4a/5a) to run from `source` to
/// `destination`: the quoted IP addresses and header checksum, the quoted ports (an ICMP
/// query's identifier takes the port of the source with `id_at_source`, else of the
/// destination) and, when the quote holds it, the quoted transport checksum (kept
/// consistent, never verified: the quote is cut short, REQ-3c). Every changed word lies inside
/// the ICMP message, so each also goes into `icmp`, the delta of the outer ICMP checksum.
void RewriteQuoted(wire::Ipv4View& quoted, wire::QuotedTransport& transport, Endpoint source, Endpoint destination,
                   bool id_at_source, wire::ChecksumDelta* icmp);

}  // namespace dpm::nat

#endif  // DPM_NAT_REWRITE_H_
