#include "wire/ip.h"

namespace dpm::wire {

const char* IpCheckName(IpCheck c) {
  switch (c) {
    case IpCheck::kOk: return "ok";
    case IpCheck::kTooShort: return "too_short";
    case IpCheck::kBadVersion: return "not_ipv4";
    case IpCheck::kBadHeaderLength: return "bad_header_length";
    case IpCheck::kBadTotalLength: return "bad_total_length";
    case IpCheck::kOversize: return "oversize";
    case IpCheck::kCount: break;
  }
  return "unknown";
}

IpCheck CheckIpv4(absl::Span<const uint8_t> packet, size_t* total_length) {
  constexpr size_t kMinHeader = 20;
  if (packet.empty()) return IpCheck::kTooShort;
  if ((packet[0] >> 4) != 4) return IpCheck::kBadVersion;
  if (packet.size() < kMinHeader) return IpCheck::kTooShort;
  size_t ihl = static_cast<size_t>(packet[0] & 0x0f) * 4;
  if (ihl < kMinHeader || ihl > packet.size()) return IpCheck::kBadHeaderLength;
  size_t total = (static_cast<size_t>(packet[2]) << 8) | packet[3];
  if (total < ihl || total > packet.size()) return IpCheck::kBadTotalLength;
  *total_length = total;
  return IpCheck::kOk;
}

}  // namespace dpm::wire
