// libFuzzer target: the NAT-PMP codec (dpm::natpmp) on untrusted bytes, as a request (what the
// gateway reads on UDP 5351) and as a response (what a client reads). Requests and success
// responses that parse encode to bytes that parse back to the same value; error replies parse.
#include <cstdlib>

#include "dpm/natpmp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace natpmp = dpm::natpmp;
  const absl::Span<const uint8_t> input(data, size);

  const natpmp::ParsedRequest parsed = natpmp::ParseRequest(input);
  if (parsed.ok()) {
    if (!natpmp::IsNatPmp(input)) std::abort();
    const natpmp::ParsedRequest again = natpmp::ParseRequest(natpmp::EncodeRequest(*parsed.request));
    if (!again.ok() || *again.request != *parsed.request) std::abort();
  } else if (!parsed.drop) {
    const std::vector<uint8_t> reply = natpmp::EncodeErrorResponse(input, parsed.result, 7);
    if (reply.empty()) std::abort();
    absl::StatusOr<natpmp::Response> seen = natpmp::ParseResponse(reply);
    if (!seen.ok() || seen->result != parsed.result) std::abort();
  }

  absl::StatusOr<natpmp::Response> response = natpmp::ParseResponse(input);
  if (response.ok() && response->result == natpmp::ResultCode::kSuccess) {
    const std::vector<uint8_t> encoded =
        response->opcode == natpmp::kOpPublicAddress
            ? natpmp::EncodePublicAddressResponse(response->result, response->epoch,
                                                  response->external_address)
            : natpmp::EncodeMapResponse(response->opcode, response->result, response->epoch,
                                        response->internal_port, response->external_port,
                                        response->lifetime);
    absl::StatusOr<natpmp::Response> again = natpmp::ParseResponse(encoded);
    if (!again.ok() || *again != *response) std::abort();
  }
  return 0;
}
