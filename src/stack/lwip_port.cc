#include "stack/lwip_port.h"

#include <pthread.h>

#include <array>
#include <atomic>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "lwip/def.h"
#include "lwip/init.h"
#include "lwip/ip_addr.h"
#include "lwip/sys.h"
#include "stack/clock.h"
#include "stack/isn.h"

namespace dpm::stack {
namespace {

std::atomic<bool> g_core_claimed{false};
pthread_t g_core_thread;
const Clock* g_clock = nullptr;  // the Stack's; core thread only
// Added to the clock's time so that lwIP's time never jumps when the clock is changed: lwIP
// keeps its cyclic timeouts as absolute sys_now() values from lwip_init() on.
int64_t g_offset_us = 0;

uint64_t RawMicros(const Clock* clock) {
  if (clock != nullptr) return clock->NowUs();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t NowMicros() { return RawMicros(g_clock) + static_cast<uint64_t>(g_offset_us); }

// Per-socket addresses (design §7): address (host order) -> sockets holding it. Core thread only.
absl::flat_hash_map<uint32_t, uint32_t>& ExtraAddresses() {
  static auto* addresses = new absl::flat_hash_map<uint32_t, uint32_t>();
  return *addresses;
}

const IsnGenerator& Isn() {
  static const IsnGenerator generator(IsnGenerator::RandomKey());  // RFC 6528: key per boot
  return generator;
}

}  // namespace

void SetLwipClock(const Clock* clock) {
  const uint64_t before = NowMicros();
  g_clock = clock;
  g_offset_us = static_cast<int64_t>(before - RawMicros(clock));
}

void ClaimLwipCore() {
  g_core_thread = pthread_self();
  g_core_claimed.store(true, std::memory_order_release);
}

void InitLwipOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // LWIP_RAND() is random(): seed it so the first ephemeral port (RFC 6056) and other
    // random choices differ between runs.
    unsigned seed = 0;
    std::array<uint8_t, 32> key = IsnGenerator::RandomKey();
    std::memcpy(&seed, key.data(), sizeof(seed));
    srandom(seed);
    lwip_init();
  });
}

void AcceptAddress(uint32_t address) { ExtraAddresses()[address]++; }

void StopAcceptingAddress(uint32_t address) {
  auto it = ExtraAddresses().find(address);
  if (it != ExtraAddresses().end() && --it->second == 0) ExtraAddresses().erase(it);
}

bool AcceptsAddress(uint32_t address) { return ExtraAddresses().contains(address); }

size_t AcceptedAddressCount() { return ExtraAddresses().size(); }

}  // namespace dpm::stack

extern "C" {

int dpm_lwip_accept_address(const struct netif* /*netif*/, const ip4_addr_t* dest) {
  return dpm::stack::AcceptsAddress(lwip_ntohl(ip4_addr_get_u32(dest))) ? 1 : 0;
}

u32_t sys_now(void) {
  return static_cast<u32_t>(dpm::stack::NowMicros() / 1000);
}

void dpm_lwip_assert_core_locked(void) {
  if (dpm::stack::g_core_claimed.load(std::memory_order_acquire) &&
      !pthread_equal(pthread_self(), dpm::stack::g_core_thread)) {
    std::fprintf(stderr, "dpm: lwIP called from a thread that is not the core thread\n");
    std::abort();
  }
}

u32_t dpm_lwip_tcp_isn(const ip_addr_t* local_ip, u16_t local_port, const ip_addr_t* remote_ip,
                       u16_t remote_port) {
  // IPv4 only in this build (LWIP_IPV6 0): addresses are 4 bytes in network byte order.
  const auto* l = reinterpret_cast<const uint8_t*>(&ip_2_ip4(local_ip)->addr);
  const auto* r = reinterpret_cast<const uint8_t*>(&ip_2_ip4(remote_ip)->addr);
  return dpm::stack::Isn().Generate(l, r, 4, local_port, remote_port, dpm::stack::NowMicros());
}

}  // extern "C"
