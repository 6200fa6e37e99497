// The one source of entropy in dpm: the kernel's random generator, read with getrandom(2).
// Keys (RFC 6528 ISN secret), cookies, DHCP xid seeds and the NAT's port randomisation seed
// (RFC 6056) all come from here; protocol cores take their seeds as parameters and read no
// entropy themselves, so tests can pass fixed ones.
#ifndef DPM_OS_ENTROPY_H_
#define DPM_OS_ENTROPY_H_

#include <cstddef>
#include <cstdint>

namespace dpm::os {

/// Fills `length` bytes at `out` from getrandom(2) (flags 0: blocks only until the kernel's
/// pool is initialised at boot; interrupted and short reads are retried). Never fails on
/// Linux >= 3.17; aborts the process if the call is missing (ENOSYS), since nothing secret
/// could be made without it.
void FillRandom(void* out, size_t length);

/// A uniformly random 32- or 64-bit value from FillRandom.
uint32_t RandomU32();
uint64_t RandomU64();

}  // namespace dpm::os

#endif  // DPM_OS_ENTROPY_H_
