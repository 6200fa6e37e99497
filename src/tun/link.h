// Links: where a dpm stack's packets enter and leave (docs/design.md §4.1, src/tun/README.md).
//
// A Link moves whole IP packets (no link-layer header), or, when ethernet() is true, whole
// Ethernet II frames (no FCS). Implementations: TunLink (Linux TUN device, or TAP with
// TunOptions::mode kTap), VirtualLink (a point-to-point datagram link over a UNIX socket, so instances can
// be joined without root), MemoryLink (in-process, for tests), and PcapLink (wraps any link
// and records both directions to a pcap file).
#ifndef DPM_TUN_LINK_H_
#define DPM_TUN_LINK_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "wire/offload.h"

namespace dpm::tun {

/// Counters every link keeps; read by `dpmd status`.
struct LinkCounters {
  uint64_t rx_packets = 0, rx_bytes = 0;
  uint64_t tx_packets = 0, tx_bytes = 0;
  uint64_t tx_dropped = 0;  // write failed (peer gone, queue full, packet too big)
  // Offload (src/tun/README.md "Offload"): super-packets read from / written to the device,
  // and offloaded packets finished in software because they went where offload is not on.
  uint64_t rx_segmentation = 0, tx_segmentation = 0;
  uint64_t tx_segmented_in_software = 0, checksums_in_software = 0;
  uint64_t rx_offload_dropped = 0;  // a virtio-net header we do not take (never enabled)
};

class Link {
 public:
  virtual ~Link() = default;

  /// A descriptor that polls readable when Read() has a packet; -1 if there is none.
  virtual int fd() const = 0;
  /// Reads one packet into `packet`. Returns its length in bytes (truncated packets are
  /// reported at their full length, larger than packet.size(), so the caller can drop them),
  /// or Unavailable when nothing is queued.
  virtual absl::StatusOr<size_t> Read(absl::Span<uint8_t> packet) = 0;
  /// Writes one packet gathered from `parts`. Errors: Unavailable (queue full, dropped),
  /// FailedPrecondition (no peer), InvalidArgument (larger than the MTU), Internal (syscall).
  virtual absl::Status Write(absl::Span<const iovec> parts) = 0;
  /// Largest packet, bytes (the IP MTU; an Ethernet link's frames are up to 14 bytes longer).
  virtual size_t mtu() const = 0;
  /// Human-readable name: "tun:dpm0", "tap:dpm0", "virtual:/tmp/a.sock".
  virtual std::string name() const = 0;
  /// True when Read/Write carry Ethernet II frames (14-byte header, no FCS) instead of IP
  /// packets: TunLink in TAP mode, MemoryLink made with `ethernet`. Such links have no
  /// offload.
  virtual bool ethernet() const { return false; }
  /// Bytes in front of the IP packet on this link: 14 on Ethernet links, else 0.
  size_t link_header_length() const { return ethernet() ? kEthernetHeaderLength : 0; }
  static constexpr size_t kEthernetHeaderLength = 14;

  /// Offload (wire/offload.h): true when ReadOffloaded may return super-packets of up to
  /// wire::kMaxOffloadedPacket bytes and partial checksums, and WriteOffloaded passes them to
  /// the device as they are. Only TunLink with TunOptions::offload has it.
  virtual bool offload() const { return false; }
  /// Reads one packet and its offload state, as Read. Links without offload set *offload to
  /// none.
  virtual absl::StatusOr<size_t> ReadOffloaded(absl::Span<uint8_t> packet, wire::Offload* offload) {
    *offload = wire::Offload{};
    return Read(packet);
  }
  /// Writes one packet with its offload state. A link without offload finishes it in
  /// software first: a super-packet is cut into segments (wire::SegmentTcpV4), each written,
  /// a partial checksum is completed; errors as Write, and InvalidArgument for an offload
  /// the packet does not fit (counted in tx_dropped).
  virtual absl::Status WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload);
  /// Largest packet Read / ReadOffloaded may return, bytes: the MTU (plus the Ethernet header
  /// on an Ethernet link), or wire::kMaxOffloadedPacket.
  size_t max_read_size() const { return offload() ? wire::kMaxOffloadedPacket : mtu() + link_header_length(); }

  absl::Status WritePacket(absl::Span<const uint8_t> packet) {
    iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
    return Write(absl::MakeConstSpan(&v, 1));
  }
  const LinkCounters& counters() const { return counters_; }

 protected:
  LinkCounters counters_;
  std::vector<uint8_t> software_offload_, segment_;  // WriteOffloaded's buffers
};

/// Total bytes of an iovec list.
inline size_t TotalLength(absl::Span<const iovec> parts) {
  size_t n = 0;
  for (const iovec& v : parts) n += v.iov_len;
  return n;
}

}  // namespace dpm::tun

#endif  // DPM_TUN_LINK_H_
