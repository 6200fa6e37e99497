// Internal to the NAT engine's source files (nat_engine*.cc), not for its users: the packet
// as the data path has parsed it.
#ifndef DPM_NAT_ENGINE_PACKET_H_
#define DPM_NAT_ENGINE_PACKET_H_

#include <cstdint>

#include "absl/types/span.h"
#include "nat/nat_engine.h"
#include "wire/ipv4.h"

namespace dpm::nat {

struct NatEngine::Packet {
  explicit Packet(wire::Ipv4View view) : ip(view) {}

  wire::Ipv4View ip;
  Protocol protocol = Protocol::kUdp;
  absl::Span<uint8_t> l4;  // the IP payload
  // Addresses and ports as the packet has them now. ICMP query: the identifier is the port of
  // the endpoint on the inside side of the NAT (the source going out, the destination coming
  // in); the other port is 0.
  Endpoint source;
  Endpoint destination;
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0;
  bool icmp_error = false;
  bool id_at_source = false;
  bool partial_checksum = false;  // TCP/UDP checksum field holds the pseudo-header sum (offload)
};


}  // namespace dpm::nat

#endif  // DPM_NAT_ENGINE_PACKET_H_
