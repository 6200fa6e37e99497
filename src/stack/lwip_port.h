// lwIP's arch port for dpm: the clock lwIP reads (sys_now), the owner-thread check behind
// LWIP_ASSERT_CORE_LOCKED(), and the RFC 6528 ISN hook. The port is the only place lwIP meets
// the operating system; protocol cores never read the clock.
#ifndef DPM_STACK_LWIP_PORT_H_
#define DPM_STACK_LWIP_PORT_H_

namespace dpm::stack {

/// Makes the calling thread the lwIP core thread: lwIP raw API calls from any other thread
/// abort with a message (SPEC.md §2: other threads only post to the io_context).
void ClaimLwipCore();
/// Initialises lwIP once per process (later calls do nothing).
void InitLwipOnce();

}  // namespace dpm::stack

#endif  // DPM_STACK_LWIP_PORT_H_
