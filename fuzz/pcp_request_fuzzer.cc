// libFuzzer target: dpm::pcp::ParseRequest on untrusted bytes (anything on UDP 5351/1080 of the
// gateway's private address). A request that parses encodes to bytes that parse to the same
// request; a refused one gets an error reply no larger than itself (none exactly when the
// refusal is silent) that the client's parser reads back with the same result code.
#include <cstdlib>

#include "dpm/pcp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace pcp = dpm::pcp;
  const absl::Span<const uint8_t> input(data, size);
  const pcp::ParsedRequest parsed = pcp::ParseRequest(input);
  if (parsed.ok()) {
    const std::vector<uint8_t> encoded = pcp::EncodeRequest(*parsed.request);
    const pcp::ParsedRequest again = pcp::ParseRequest(encoded);
    if (!again.ok() || *again.request != *parsed.request) std::abort();
    if (encoded.size() > input.size()) std::abort();  // unknown options and padding only shrink
    return 0;
  }
  const std::vector<uint8_t> reply = pcp::EncodeErrorResponse(input, parsed.error.result, 1800, 42);
  if (reply.size() > input.size()) std::abort();
  if (reply.empty() != parsed.error.silent) std::abort();
  if (!reply.empty()) {
    absl::StatusOr<pcp::Response> seen = pcp::ParseResponse(reply);
    if (!seen.ok() || seen->result != parsed.error.result || seen->epoch != 42) std::abort();
  }
  return 0;
}
