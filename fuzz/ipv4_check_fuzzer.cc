// libFuzzer target: the first checks on every packet a link delivers (wire::CheckIpv4).
// A packet it accepts has a whole header and a total length within the bytes read.
#include <cstdlib>

#include "wire/ip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t total = 0;
  if (dpm::wire::CheckIpv4(absl::Span<const uint8_t>(data, size), &total) != dpm::wire::IpCheck::kOk) return 0;
  const size_t header = static_cast<size_t>(data[0] & 0x0f) * 4;
  if ((data[0] >> 4) != 4 || header < 20 || total < header || total > size) std::abort();
  return 0;
}
