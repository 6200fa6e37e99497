#include "stack/isn.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <cstdlib>

#include "os/entropy.h"

namespace dpm::stack {

std::array<uint8_t, 32> IsnGenerator::RandomKey() {
  std::array<uint8_t, 32> key{};
  os::FillRandom(key.data(), key.size());
  return key;
}

uint32_t IsnGenerator::Generate(const uint8_t* local_ip, const uint8_t* remote_ip, size_t ip_len,
                                uint16_t local_port, uint16_t remote_port, uint64_t now_micros) const {
  uint8_t msg[2 * 16 + 4];
  size_t n = 0;
  if (ip_len > 16) ip_len = 16;  // IPv4 (4) or IPv6 (16) only
  std::memcpy(msg + n, local_ip, ip_len); n += ip_len;
  std::memcpy(msg + n, remote_ip, ip_len); n += ip_len;
  msg[n++] = static_cast<uint8_t>(local_port >> 8);
  msg[n++] = static_cast<uint8_t>(local_port);
  msg[n++] = static_cast<uint8_t>(remote_port >> 8);
  msg[n++] = static_cast<uint8_t>(remote_port);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), msg, n, mac, &mac_len);
  uint32_t f;
  std::memcpy(&f, mac, sizeof(f));
  uint32_t m = static_cast<uint32_t>(now_micros / 4);  // RFC 6528 §3: 4-microsecond timer
  return m + f;
}

}  // namespace dpm::stack
