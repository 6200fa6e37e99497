#include "tun/link.h"

#include <cstring>

namespace dpm::tun {

absl::Status Link::WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload) {
  if (offload.none()) return Write(parts);
  // The device would have finished this packet; here it is done in software (a contiguous
  // copy: rare — packets for a link without offload, or for lwIP).
  software_offload_.resize(TotalLength(parts));
  size_t at = 0;
  for (const iovec& v : parts) {
    if (v.iov_len > 0) std::memcpy(software_offload_.data() + at, v.iov_base, v.iov_len);
    at += v.iov_len;
  }
  absl::Span<uint8_t> packet = absl::MakeSpan(software_offload_);
  if (offload.tcp_segmentation) {
    absl::Status status = absl::OkStatus();
    size_t n = wire::SegmentTcpV4(packet, offload, segment_, [&](absl::Span<const uint8_t> segment) {
      if (absl::Status s = WritePacket(segment); !s.ok() && status.ok()) status = s;
    });
    if (n == 0) {
      counters_.tx_dropped++;
      return absl::InvalidArgumentError("malformed TCP super-packet");
    }
    counters_.tx_segmented_in_software++;
    return status;
  }
  if (!wire::CompleteChecksum(packet, offload)) {
    counters_.tx_dropped++;
    return absl::InvalidArgumentError("partial checksum outside the packet");
  }
  counters_.checksums_in_software++;
  return WritePacket(packet);
}

}  // namespace dpm::tun
