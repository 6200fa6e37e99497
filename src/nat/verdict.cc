#include "nat/verdict.h"

namespace dpm::nat {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kBadChecksum: return "bad_checksum";
    case DropReason::kFragment: return "fragment";
    case DropReason::kTtlExceeded: return "ttl_exceeded";
    case DropReason::kNoMapping: return "no_mapping";
    case DropReason::kQuota: return "quota";
    case DropReason::kNoResources: return "no_resources";
    case DropReason::kUnsupportedProtocol: return "unsupported_protocol";
    case DropReason::kNotFromInside: return "not_from_inside";
    case DropReason::kNoRoute: return "no_route";
    case DropReason::kIcmpNotTranslated: return "icmp_not_translated";
    case DropReason::kFragmentTimeout: return "fragment_timeout";
    case DropReason::kFragmentLimit: return "fragment_limit";
    case DropReason::kFiltered: return "filtered";
    case DropReason::kCount: break;
  }
  return "unknown";
}

}  // namespace dpm::nat
