#include "wire/offload.h"

#include <algorithm>
#include <cstring>

#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::wire {
namespace {

// virtio 1.x §5.1.6 (struct virtio_net_hdr).
constexpr uint8_t kFlagNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;

uint16_t LoadLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void StoreLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// The IP and TCP header lengths of a whole TCP/IPv4 packet, or false.
bool TcpHeaders(absl::Span<const uint8_t> packet, size_t* ip_length, size_t* tcp_length) {
  if (packet.size() < ipv4::kMinHeaderLength || (packet[0] >> 4) != 4) return false;
  const size_t ihl = size_t{packet[0] & 0x0fu} * 4;
  if (ihl < ipv4::kMinHeaderLength || packet[ipv4::kProtocolOffset] != ipv4::kProtocolTcp) return false;
  const size_t total = LoadBe16(&packet[ipv4::kTotalLengthOffset]);
  if (total > packet.size() || total < ihl + tcp::kMinHeaderLength) return false;
  const size_t thl = static_cast<size_t>(packet[ihl + tcp::kDataOffsetOffset] >> 4) * 4;
  if (thl < tcp::kMinHeaderLength || ihl + thl > total) return false;
  *ip_length = ihl;
  *tcp_length = thl;
  return true;
}

}  // namespace

std::optional<Offload> ParseVirtioNetHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kVirtioNetHeaderSize) return std::nullopt;
  Offload o;
  o.partial_checksum = (bytes[0] & kFlagNeedsCsum) != 0;  // DATA_VALID (2) needs nothing from us
  const uint8_t gso = bytes[1];
  if (gso != kGsoNone && gso != kGsoTcpV4) return std::nullopt;
  o.tcp_segmentation = gso == kGsoTcpV4;
  if (o.tcp_segmentation && !o.partial_checksum) return std::nullopt;
  o.header_length = LoadLe16(&bytes[2]);
  o.segment_size = LoadLe16(&bytes[4]);
  o.checksum_start = LoadLe16(&bytes[6]);
  o.checksum_offset = LoadLe16(&bytes[8]);
  if (!o.partial_checksum) o.checksum_start = o.checksum_offset = 0;
  if (!o.tcp_segmentation) o.segment_size = 0;
  return o;
}

void SerializeVirtioNetHeader(const Offload& offload, uint8_t (&out)[kVirtioNetHeaderSize]) {
  std::memset(out, 0, sizeof(out));
  if (offload.partial_checksum) out[0] = kFlagNeedsCsum;
  if (offload.tcp_segmentation) {
    out[1] = kGsoTcpV4;
    StoreLe16(&out[2], offload.header_length);
    StoreLe16(&out[4], offload.segment_size);
  }
  if (offload.partial_checksum) {
    StoreLe16(&out[6], offload.checksum_start);
    StoreLe16(&out[8], offload.checksum_offset);
  }
}

bool IsTransportOffload(absl::Span<const uint8_t> packet, const Offload& offload) {
  if (!offload.partial_checksum) return false;
  if (packet.size() < ipv4::kMinHeaderLength || (packet[0] >> 4) != 4) return false;
  const size_t ihl = size_t{packet[0] & 0x0fu} * 4;
  const size_t total = LoadBe16(&packet[ipv4::kTotalLengthOffset]);
  if (ihl < ipv4::kMinHeaderLength || total > packet.size() || offload.checksum_start != ihl) return false;
  const uint16_t fragment = LoadBe16(&packet[ipv4::kFlagsFragmentOffset]);
  if ((fragment & (ipv4::kFlagMoreFragments | ipv4::kFragmentOffsetMask)) != 0) return false;
  const uint8_t protocol = packet[ipv4::kProtocolOffset];
  if (protocol == ipv4::kProtocolTcp) {
    return offload.checksum_offset == tcp::kChecksumOffset && total >= ihl + tcp::kMinHeaderLength;
  }
  return protocol == ipv4::kProtocolUdp && !offload.tcp_segmentation &&
         offload.checksum_offset == udp::kChecksumOffset && total >= ihl + 8;
}

bool CompleteChecksum(absl::Span<uint8_t> packet, const Offload& offload) {
  const size_t field = size_t{offload.checksum_start} + offload.checksum_offset;
  if (!offload.partial_checksum || field + 2 > packet.size()) return false;
  // The field holds the pseudo-header sum, so summing over it adds exactly that.
  const uint16_t sum = FoldSum(OnesComplementSum(packet.subspan(offload.checksum_start)));
  const uint16_t checksum = static_cast<uint16_t>(~sum);
  StoreBe16(&packet[field], checksum == 0 ? 0xffff : checksum);
  return true;
}

size_t SegmentTcpV4(absl::Span<const uint8_t> packet, const Offload& offload, std::vector<uint8_t>& scratch,
                    absl::FunctionRef<void(absl::Span<const uint8_t>)> emit) {
  size_t ihl = 0, thl = 0;
  if (offload.segment_size == 0 || !TcpHeaders(packet, &ihl, &thl)) return 0;
  const size_t total = LoadBe16(&packet[ipv4::kTotalLengthOffset]);
  const size_t headers = ihl + thl;
  const size_t payload = total - headers;
  const size_t segments = payload == 0 ? 1 : (payload + offload.segment_size - 1) / offload.segment_size;
  const uint8_t* tcp_in = &packet[ihl];
  const uint32_t sequence = LoadBe32(tcp_in + tcp::kSequenceOffset);
  const uint16_t identification = LoadBe16(&packet[ipv4::kIdentificationOffset]);
  const uint8_t flags = tcp_in[tcp::kFlagsOffset];
  const uint32_t source = LoadBe32(&packet[ipv4::kSourceOffset]);
  const uint32_t destination = LoadBe32(&packet[ipv4::kDestinationOffset]);
  scratch.resize(headers + std::min<size_t>(payload, offload.segment_size));
  for (size_t i = 0; i < segments; ++i) {
    const size_t offset = i * offload.segment_size;
    const size_t length = std::min<size_t>(payload - std::min(payload, offset), offload.segment_size);
    uint8_t* out = scratch.data();
    std::memcpy(out, packet.data(), headers);
    std::memcpy(out + headers, packet.data() + headers + offset, length);
    const size_t size = headers + length;
    StoreBe16(out + ipv4::kTotalLengthOffset, static_cast<uint16_t>(size));
    StoreBe16(out + ipv4::kIdentificationOffset, static_cast<uint16_t>(identification + i));
    StoreBe16(out + ipv4::kChecksumOffset, 0);
    StoreBe16(out + ipv4::kChecksumOffset, InternetChecksum(absl::MakeConstSpan(out, ihl)));
    uint8_t* tcp_out = out + ihl;
    StoreBe32(tcp_out + tcp::kSequenceOffset, static_cast<uint32_t>(sequence + offset));
    uint8_t f = flags;
    if (i > 0) f &= static_cast<uint8_t>(~tcp::kCwr);
    if (i + 1 < segments) f &= static_cast<uint8_t>(~(tcp::kFin | tcp::kPsh));
    tcp_out[tcp::kFlagsOffset] = f;
    StoreBe16(tcp_out + tcp::kChecksumOffset, 0);
    StoreBe16(tcp_out + tcp::kChecksumOffset,
              TransportChecksum(source, destination, ipv4::kProtocolTcp, absl::MakeConstSpan(tcp_out, size - ihl)));
    emit(absl::MakeConstSpan(out, size));
  }
  return segments;
}

}  // namespace dpm::wire
