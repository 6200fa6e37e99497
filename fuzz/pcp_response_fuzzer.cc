// libFuzzer target: dpm::pcp::ParseResponse on untrusted bytes (what the DPM driver reads from
// the gateway). A response that parses encodes to bytes that parse to the same response.
#include <cstdlib>

#include "dpm/pcp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace pcp = dpm::pcp;
  absl::StatusOr<pcp::Response> parsed = pcp::ParseResponse(absl::Span<const uint8_t>(data, size));
  if (!parsed.ok()) return 0;
  const std::vector<uint8_t> encoded = pcp::EncodeResponse(*parsed);
  absl::StatusOr<pcp::Response> again = pcp::ParseResponse(encoded);
  if (!again.ok() || *again != *parsed) std::abort();
  if (pcp::EncodeResponse(*again) != encoded) std::abort();
  return 0;
}
