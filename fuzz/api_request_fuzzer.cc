// libFuzzer target: ParseRequest on untrusted bytes (any local program may send them).
// A request that parses is canonical: encoding it gives back the input, which parses again.
#include <cstdlib>

#include "api/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> input(data, size);
  absl::StatusOr<dpm::api::Request> parsed = dpm::api::ParseRequest(input);
  if (!parsed.ok()) return 0;
  const std::vector<uint8_t> encoded = dpm::api::EncodeRequest(*parsed);
  absl::StatusOr<dpm::api::Request> again = dpm::api::ParseRequest(encoded);
  if (!again.ok() || dpm::api::EncodeRequest(*again) != encoded) std::abort();
  if (absl::MakeConstSpan(encoded) != input) std::abort();
  return 0;
}
