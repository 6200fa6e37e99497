// The gate of a non-blocking connect through a socket pair (docs/api.md "Non-blocking
// connect"): while the connection is being made, the program's end of the pair is kept
// unwritable by filling it with gate bytes; reading them away at the near end, when the
// connect ends, is what the program's poll/select/epoll sees as "writable". The gate never
// reaches the wire. Used by the socket service's TCP sockets and by the redirector's tunneled
// sockets.
#ifndef DPM_STACK_CONNECT_GATE_H_
#define DPM_STACK_CONNECT_GATE_H_

#include <cstddef>

namespace dpm::stack {

/// Fills `program_fd`, which must be the other end of `near_fd`'s stream pair, until the kernel
/// takes no more and reports it unwritable. Returns the gate's size in bytes, or 0 when
/// `program_fd` is not that other end or will not fill (whatever was written is read away again).
size_t RaiseConnectGate(int near_fd, int program_fd);
/// Reads and drops up to `limit` bytes queued at `near_fd`; returns how many.
size_t DropQueued(int near_fd, size_t limit);

}  // namespace dpm::stack

#endif  // DPM_STACK_CONNECT_GATE_H_
