// Checksum and segmentation offload of one packet, as Linux TUN devices opened with
// IFF_VNET_HDR exchange it: a 10-byte virtio-net header before each packet (the virtio 1.x
// specification §5.1.6 "struct virtio_net_hdr"; Linux include/uapi/linux/virtio_net.h).
//
// With offload the kernel hands a TUN reader TCP "super-packets" of up to 64 KiB whose TCP
// checksum field holds only the pseudo-header sum, and takes such packets back on write,
// cutting them into MTU-sized segments only if and where a link needs it. A forwarder then
// does its per-packet work once per 64 KiB instead of once per 1500 bytes. These functions
// are sans-I/O: they parse and build the header, and finish the offloaded work in software
// when a packet must go somewhere that cannot take it (lwIP, a link without offload).
#ifndef DPM_WIRE_OFFLOAD_H_
#define DPM_WIRE_OFFLOAD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"

namespace dpm::wire {

/// Bytes of the virtio-net header (struct virtio_net_hdr, without num_buffers).
inline constexpr size_t kVirtioNetHeaderSize = 10;
/// Largest packet a read may return with offload on: an IPv4 datagram's limit, bytes.
inline constexpr size_t kMaxOffloadedPacket = 65535;

/// The offload state of one IPv4 packet. All offsets are bytes from the start of the IP
/// header, in host order. The default value means "nothing offloaded": a complete packet.
struct Offload {
  /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the transport checksum is not computed yet. The 16-bit
  /// field at checksum_start + checksum_offset holds the pseudo-header sum (folded, not
  /// inverted); whoever completes it sums from checksum_start to the end and stores ~sum.
  bool partial_checksum = false;
  /// VIRTIO_NET_HDR_GSO_TCPV4: a TCP/IPv4 super-packet to be cut into segments of at most
  /// segment_size payload bytes each (requires partial_checksum).
  bool tcp_segmentation = false;
  uint16_t header_length = 0;    // hdr_len: bytes of IP + TCP headers (a hint; 0 = unknown)
  uint16_t segment_size = 0;     // gso_size: TCP payload bytes per segment (the MSS)
  uint16_t checksum_start = 0;   // csum_start: where the summed bytes begin (the L4 header)
  uint16_t checksum_offset = 0;  // csum_offset: the checksum field, from checksum_start

  bool none() const { return !partial_checksum && !tcp_segmentation; }
};

/// Parses a virtio-net header (fields little-endian: the TUN link sets TUNSETVNETLE).
/// Returns nullopt when `bytes` is shorter than kVirtioNetHeaderSize, or the header asks for
/// what dpm does not take: a GSO type other than none and TCPv4 (UDP, TCPv6, the ECN bit —
/// not enabled by the link, so the kernel never sends them), or segmentation without a
/// partial checksum (virtio spec: GSO requires NEEDS_CSUM).
std::optional<Offload> ParseVirtioNetHeader(absl::Span<const uint8_t> bytes);

/// Writes `offload` as a virtio-net header into out[0..9], little-endian.
void SerializeVirtioNetHeader(const Offload& offload, uint8_t (&out)[kVirtioNetHeaderSize]);

/// True when `packet` is a whole (unfragmented) IPv4 TCP or UDP packet whose partial
/// checksum is its own transport checksum (checksum_start = the IP header length, offset 16
/// for TCP, 6 for UDP) and, with segmentation, a TCP packet: the layout the NAT engine can
/// update in place (docs/nat.md "Offload"). False for anything else the kernel might
/// offload, which the caller then completes in software first.
bool IsTransportOffload(absl::Span<const uint8_t> packet, const Offload& offload);

/// Computes a partial checksum in software (what the device would do): the one's-complement
/// sum from checksum_start to the end of `packet`, inverted, stored at checksum_start +
/// checksum_offset (a result of 0 is stored as 0xffff, as Linux's skb_checksum_help does).
/// Returns false, leaving the packet alone, when the field is not inside the packet.
bool CompleteChecksum(absl::Span<uint8_t> packet, const Offload& offload);

/// Cuts a TCP/IPv4 super-packet into segments of at most offload.segment_size payload
/// bytes, each a complete packet (what TSO does, Linux tcp_gso_segment): IP total length,
/// identification (+1 per segment) and header checksum; TCP sequence number advanced by the
/// bytes before it; CWR only on the first, FIN and PSH only on the last; full TCP checksum.
/// Each segment is built in `scratch` and handed to `emit` before the next one is built.
/// Returns the number of segments, or 0 (nothing emitted) when the packet is not a
/// well-formed TCP/IPv4 packet that fits that description or segment_size is 0.
size_t SegmentTcpV4(absl::Span<const uint8_t> packet, const Offload& offload, std::vector<uint8_t>& scratch,
                    absl::FunctionRef<void(absl::Span<const uint8_t>)> emit);

}  // namespace dpm::wire

#endif  // DPM_WIRE_OFFLOAD_H_
