#include "nat/rewrite.h"

namespace dpm::nat {

void RewriteQuoted(wire::Ipv4View& quoted, wire::QuotedTransport& transport, Endpoint source, Endpoint destination,
                   bool id_at_source, wire::ChecksumDelta* icmp) {
  uint8_t* h = quoted.header().data();
  uint8_t* t = transport.bytes().data();
  wire::ChecksumDelta ip;
  wire::ChecksumDelta l4;
  const bool pseudo = transport.protocol() != wire::ipv4::kProtocolIcmp;  // ICMP: no pseudo-header
  wire::ChecksumDelta* pseudo_delta = pseudo ? &l4 : nullptr;
  Put32(h + wire::ipv4::kSourceOffset, source.address, {&ip, pseudo_delta, icmp});
  Put32(h + wire::ipv4::kDestinationOffset, destination.address, {&ip, pseudo_delta, icmp});
  Put16(h + wire::ipv4::kChecksumOffset, ip.Apply(wire::LoadBe16(h + wire::ipv4::kChecksumOffset)), {icmp});
  if (pseudo) {
    Put16(t + wire::tcp::kSourcePortOffset, source.port, {&l4, icmp});
    Put16(t + wire::tcp::kDestinationPortOffset, destination.port, {&l4, icmp});
  } else {
    Put16(t + wire::icmp::kIdentifierOffset, id_at_source ? source.port : destination.port, {&l4, icmp});
  }
  if (std::optional<size_t> offset = transport.checksum_offset()) {
    UpdateChecksumField(t + *offset, l4, transport.protocol() == wire::ipv4::kProtocolUdp, icmp);
  }
}

}  // namespace dpm::nat
