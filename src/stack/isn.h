// Initial sequence numbers per RFC 6528 §3:  ISN = M + F(localip, localport, remoteip,
// remoteport, secretkey), where M is a timer ticking every 4 microseconds and F is a keyed
// pseudo-random function. F here is HMAC-SHA-256 (OpenSSL) truncated to 32 bits.
// Pure: the caller passes the time, so tests can drive it.
#ifndef DPM_STACK_ISN_H_
#define DPM_STACK_ISN_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace dpm::stack {

class IsnGenerator {
 public:
  /// `key`: 32 secret bytes (RFC 6528 §3 recommends a key of at least 128 bits, chosen at
  /// boot). Use RandomKey() in production.
  explicit IsnGenerator(const std::array<uint8_t, 32>& key) : key_(key) {}
  static std::array<uint8_t, 32> RandomKey();

  /// Addresses are IPv4 in network byte order (4 bytes) or IPv6 (16 bytes); ports in host
  /// byte order; `now_micros` any monotonic clock in microseconds.
  uint32_t Generate(const uint8_t* local_ip, const uint8_t* remote_ip, size_t ip_len,
                    uint16_t local_port, uint16_t remote_port, uint64_t now_micros) const;

 private:
  std::array<uint8_t, 32> key_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_ISN_H_
