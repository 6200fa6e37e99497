// lwIP's arch port for dpm: the clock lwIP reads (sys_now), the owner-thread check behind
// LWIP_ASSERT_CORE_LOCKED(), the RFC 6528 ISN hook and the per-socket address hook. The port
// is the only place lwIP meets the operating system; protocol cores never read the clock.
#ifndef DPM_STACK_LWIP_PORT_H_
#define DPM_STACK_LWIP_PORT_H_

#include <cstddef>
#include <cstdint>

namespace dpm::stack {

class Clock;

/// The clock lwIP reads (sys_now, in milliseconds) and the RFC 6528 ISN timer (microseconds):
/// the Stack's, set while it exists. nullptr (no stack): the steady clock. lwIP's time goes on
/// from where it was (an offset is kept), so its pending timeouts keep their meaning.
void SetLwipClock(const Clock* clock);

/// Makes the calling thread the lwIP core thread: lwIP raw API calls from any other thread
/// abort with a message (docs/design.md §4.2: other threads only post to the io_context).
void ClaimLwipCore();
/// Initialises lwIP once per process (later calls do nothing).
void InitLwipOnce();

/// Per-socket addresses (docs/design.md §7; third_party/lwip/patches/0001): lwIP accepts unicast
/// packets for these (host byte order) besides its netif's own address, and on an Ethernet
/// link answers ARP requests for them (patches/0002), looked up in constant time. Counted: an address added twice stays until removed twice. Core thread only.
void AcceptAddress(uint32_t address);
void StopAcceptingAddress(uint32_t address);
bool AcceptsAddress(uint32_t address);
size_t AcceptedAddressCount();

}  // namespace dpm::stack

#endif  // DPM_STACK_LWIP_PORT_H_
