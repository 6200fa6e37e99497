// libFuzzer target: dpm::tunnel::ControlMessageSize and ParseControl on untrusted bytes (the
// first bytes a tunnel server reads from anyone who completes TLS, and what a proxy or a
// redirector reads back). A message that parses is exactly as long as its header says, and
// encodes to the same bytes (the format is canonical), which parse to the same message.
#include <cstdlib>

#include "tunnel/control.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tunnel = dpm::tunnel;
  const absl::Span<const uint8_t> input(data, size);
  const absl::StatusOr<size_t> whole = tunnel::ControlMessageSize(input);
  const absl::StatusOr<tunnel::ControlMessage> parsed = tunnel::ParseControl(input);
  if (!parsed.ok()) return 0;
  if (!whole.ok() || *whole != size) std::abort();
  const std::vector<uint8_t> encoded = tunnel::EncodeControl(*parsed);
  if (encoded != std::vector<uint8_t>(data, data + size)) std::abort();
  const absl::StatusOr<tunnel::ControlMessage> again = tunnel::ParseControl(encoded);
  if (!again.ok() || *again != *parsed) std::abort();
  return 0;
}
