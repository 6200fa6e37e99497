// What the NAT engine does with a packet (docs/nat.md): the verdict, and for a drop the
// reason it is counted under.
#ifndef DPM_NAT_VERDICT_H_
#define DPM_NAT_VERDICT_H_

#include <cstdint>

namespace dpm::nat {

/// Where a packet goes.
enum class Verdict : uint8_t {
  kForwardOutside,  // translated: send on the outside link
  kForwardInside,   // translated: send on the inside link (replies, hairpinned packets)
  kToGateway,       // for the gateway itself (untouched): its own stack handles it
  kDrop,            // see the reason; counted in drops()
  kHeld,            // a fragment that came before its datagram's first fragment, copied and kept
                    // (the caller's buffer is untouched and free): it comes back, translated,
                    // through TakeReleasedFragments, or expires (kFragmentTimeout)
};

/// Why a packet was dropped (NatEngine::drops() counts each).
enum class DropReason : uint8_t {
  kNone = 0,
  kMalformed,           // truncated headers, bad IHL / total length / TCP data offset / UDP length
  kBadChecksum,         // IPv4 header; ICMP error and its quoted header (RFC 5508 REQ-3)
  kFragment,            // a fragment that cannot be translated: a later fragment of a datagram
                        // whose first fragment was dropped, a fragmented ICMP error (its checksum
                        // cannot be verified, RFC 5508 REQ-3), a TCP fragment at offset 8 bytes
                        // (RFC 1858 §4)
  kTtlExceeded,         // TTL <= 1 on a packet to forward: the caller may send ICMP time exceeded
  kNoMapping,           // from outside with no session or mapping (filtering), or an error about none
  kQuota,               // the internal host reached per_host_quota
  kNoResources,         // max_sessions reached, or no free external port
  kUnsupportedProtocol, // not TCP, UDP or ICMP
  kNotFromInside,       // a source outside the inside network on the inside link
  kNoRoute,             // a destination that is neither outside nor ours (inside-to-inside,
                        // multicast, loopback), or, from outside, not a pool address
  kIcmpNotTranslated,   // an ICMP type that is neither a query nor a translated error
  kFragmentTimeout,     // a held fragment whose first fragment did not come within fragment_timeout_ms
  kFragmentLimit,       // a fragment not held: max_held_datagrams, max_held_fragments_per_datagram
                        // or max_held_fragment_bytes reached
  kFiltered,            // from a remote no FILTER of the explicit mapping allows (RFC 6887 §13.3)
  kCount
};
/// "malformed", "bad_checksum", ...: names for counters and logs.
const char* DropReasonName(DropReason reason);

/// The outcome of one packet (NatEngine::FromInside / FromOutside).
struct Result {
  Verdict verdict;
  DropReason reason = DropReason::kNone;
  /// Held fragments this packet (their datagram's first fragment) released, translated: take
  /// them with NatEngine::TakeReleasedFragments. Saturates at 65535. Almost always 0.
  uint16_t released = 0;
};

}  // namespace dpm::nat

#endif  // DPM_NAT_VERDICT_H_
