#include "wire/ip.h"

#include "wire/ipv4.h"

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
  // The version is reported before the length: a short IPv6 packet counts as not_ipv4.
  if (!packet.empty() && (packet[0] >> 4) != 4) return IpCheck::kBadVersion;
  size_t header_length = 0;
  switch (CheckIpv4Header(packet, /*quoted=*/false, &header_length, total_length)) {
    case Ipv4Error::kOk: return IpCheck::kOk;
    case Ipv4Error::kTooShort: return IpCheck::kTooShort;
    case Ipv4Error::kBadVersion: return IpCheck::kBadVersion;
    case Ipv4Error::kBadHeaderLength: return IpCheck::kBadHeaderLength;
    case Ipv4Error::kBadTotalLength: return IpCheck::kBadTotalLength;
  }
  return IpCheck::kTooShort;  // not reached: every Ipv4Error is above
}

}  // namespace dpm::wire
