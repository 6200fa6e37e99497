// First checks on a packet read from a link, before lwIP sees it (RFC 791 §3.1). Packets that
// fail are dropped and counted by reason; lwIP then checks checksums and the rest.
#ifndef DPM_WIRE_IP_H_
#define DPM_WIRE_IP_H_

#include <array>
#include <cstddef>
#include <cstdint>


#include "absl/types/span.h"

namespace dpm::wire {

enum class IpCheck : uint8_t {
  kOk = 0,
  kTooShort,          // fewer than 20 bytes, or than the IPv6 fixed header
  kBadVersion,        // version nibble not 4 (or 6 when IPv6 is accepted)
  kBadHeaderLength,   // IHL < 5 or past the end of the packet
  kBadTotalLength,    // total length < IHL*4 or > the bytes read
  kOversize,          // larger than the link MTU (truncated by the read)
  kCount
};

/// Names for counters and logs: "too_short", "not_ipv4" (kBadVersion: IPv6 packets, such as the
/// router solicitations a kernel sends on a new link, count here on an IPv4-only stack), ...
const char* IpCheckName(IpCheck c);

/// Checks the fixed part of an IPv4 header in `packet` (network byte order) with
/// wire::CheckIpv4Header (wire/ipv4.h), except that a version other than 4 is reported first,
/// before a short length (kOversize is the caller's: it knows the MTU). Trailing bytes
/// after the total length (Ethernet padding) are allowed; the caller trims them.
/// `*total_length` gets the IP total length in bytes when the result is kOk.
IpCheck CheckIpv4(absl::Span<const uint8_t> packet, size_t* total_length);

/// Per-reason drop counters.
using IpDropCounters = std::array<uint64_t, static_cast<size_t>(IpCheck::kCount)>;

}  // namespace dpm::wire

#endif  // DPM_WIRE_IP_H_
