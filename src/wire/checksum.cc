#include "wire/checksum.h"

namespace dpm::wire {

uint64_t OnesComplementSum(absl::Span<const uint8_t> bytes, uint64_t sum) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  // Deferred carries: a 64-bit accumulator takes 2^48 words before it could overflow.
  while (n >= 8) {
    sum += (uint32_t{p[0]} << 8 | p[1]) + (uint32_t{p[2]} << 8 | p[3]) + (uint32_t{p[4]} << 8 | p[5]) +
           (uint32_t{p[6]} << 8 | p[7]);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    sum += uint32_t{p[0]} << 8 | p[1];
    p += 2;
    n -= 2;
  }
  if (n == 1) sum += uint32_t{p[0]} << 8;
  return sum;
}

uint16_t FoldSum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t InternetChecksum(absl::Span<const uint8_t> bytes) {
  return static_cast<uint16_t>(~FoldSum(OnesComplementSum(bytes)));
}

uint64_t PseudoHeaderSum(uint32_t source, uint32_t destination, uint8_t protocol, uint16_t length) {
  return uint64_t{source >> 16} + (source & 0xffff) + (destination >> 16) + (destination & 0xffff) + protocol +
         length;
}

uint16_t TransportChecksum(uint32_t source, uint32_t destination, uint8_t protocol,
                           absl::Span<const uint8_t> segment) {
  const uint64_t sum =
      OnesComplementSum(segment, PseudoHeaderSum(source, destination, protocol, static_cast<uint16_t>(segment.size())));
  return static_cast<uint16_t>(~FoldSum(sum));
}

uint16_t ChecksumReplace16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  ChecksumDelta delta;
  delta.Replace16(old_word, new_word);
  return delta.Apply(checksum);
}

uint16_t ChecksumReplace32(uint16_t checksum, uint32_t old_value, uint32_t new_value) {
  ChecksumDelta delta;
  delta.Replace32(old_value, new_value);
  return delta.Apply(checksum);
}

uint16_t ChecksumDelta::Apply(uint16_t checksum) const {
  if (sum_ == 0) return checksum;
  return static_cast<uint16_t>(~FoldSum(uint64_t{static_cast<uint16_t>(~checksum)} + sum_));
}

}  // namespace dpm::wire
