// The Internet checksum: full computation (RFC 1071) and incremental update after a field
// changes (RFC 1624). Values are 16-bit words as read big-endian from the wire; the one's-
// complement sum does not depend on byte order as long as every word is read the same way.
//
// Why incremental updates are exact here: a full computation sums the words with end-around
// carry, which never yields 0x0000 once a non-zero word was added (and the IPv4 header and the
// TCP/UDP pseudo-header always contain one), and RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'),
// keeps a non-zero sum non-zero. Both results are the same residue in [1, 0xffff], so an
// updated checksum equals the one a full recomputation gives, bit for bit. An incorrect
// checksum stays incorrect by the same amount, so the end host still detects the corruption.
#ifndef DPM_WIRE_CHECKSUM_H_
#define DPM_WIRE_CHECKSUM_H_

#include <cstdint>

#include "absl/types/span.h"

namespace dpm::wire {

/// RFC 1071 §4.1: the one's-complement sum of `bytes` as big-endian 16-bit words (an odd last
/// byte is padded with a zero byte), added to `sum`. Neither folded nor inverted.
uint64_t OnesComplementSum(absl::Span<const uint8_t> bytes, uint64_t sum = 0);

/// Folds a wide sum to 16 bits with end-around carries.
uint16_t FoldSum(uint64_t sum);

/// The checksum field value for `bytes` (with their checksum field zeroed): ~fold(sum).
/// Over bytes that include a correct checksum field it returns 0.
uint16_t InternetChecksum(absl::Span<const uint8_t> bytes);

/// The sum of the TCP/UDP pseudo-header (RFC 9293 §3.1, RFC 768): addresses, protocol and
/// the transport length.
uint64_t PseudoHeaderSum(uint32_t source, uint32_t destination, uint8_t protocol, uint16_t length);

/// The TCP or UDP checksum of `segment` (header and data, checksum field zeroed) under the
/// pseudo-header. Returns 0 over a segment whose checksum field is correct. (UDP sends a
/// computed 0x0000 as 0xffff, RFC 768; see UdpChecksumOnWire.)
uint16_t TransportChecksum(uint32_t source, uint32_t destination, uint8_t protocol,
                           absl::Span<const uint8_t> segment);

/// RFC 768: a computed UDP checksum of 0 is transmitted as all ones (0 means "none").
inline uint16_t UdpChecksumOnWire(uint16_t computed) { return computed == 0 ? 0xffff : computed; }

/// RFC 1624 eqn. 3 for one 16-bit word that changed from `old_word` to `new_word`.
uint16_t ChecksumReplace16(uint16_t checksum, uint16_t old_word, uint16_t new_word);
/// The same for a 32-bit field (an IPv4 address): two words.
uint16_t ChecksumReplace32(uint16_t checksum, uint32_t old_value, uint32_t new_value);

/// Several field changes folded once: add each change, then Apply to every checksum that
/// covers those fields (an address change goes into the IP header checksum and, through the
/// pseudo-header, into the TCP/UDP checksum).
class ChecksumDelta {
 public:
  void Replace16(uint16_t old_word, uint16_t new_word) {
    // An unchanged word adds ~m + m = 0xffff ("-0"), which would turn a checksum of 0xffff
    // into 0x0000: record real changes only.
    if (old_word == new_word) return;
    sum_ += static_cast<uint16_t>(~old_word);
    sum_ += new_word;
  }
  void Replace32(uint32_t old_value, uint32_t new_value) {
    Replace16(static_cast<uint16_t>(old_value >> 16), static_cast<uint16_t>(new_value >> 16));
    Replace16(static_cast<uint16_t>(old_value), static_cast<uint16_t>(new_value));
  }
  void Add(const ChecksumDelta& other) { sum_ += FoldSum(other.sum_); }
  bool empty() const { return sum_ == 0; }
  /// HC' = ~(~HC + sum of (~m + m')), RFC 1624 eqn. 3 over all recorded changes.
  uint16_t Apply(uint16_t checksum) const;

 private:
  uint64_t sum_ = 0;  // at most a few dozen words: no overflow
};

}  // namespace dpm::wire

#endif  // DPM_WIRE_CHECKSUM_H_
