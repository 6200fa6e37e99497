// Handing a fresh dpm socket to the kernel. socket() cannot know where a socket will go, so
// every AF_INET TCP/UDP socket starts in the dpm stack; when its first bind(), connect() or
// sendto() names an address the kernel keeps (DPM_KERNEL_NETS, loopback by default), the hook
// puts a kernel socket of the same type, status flags (O_NONBLOCK), close-on-exec flag and
// socket options at the same descriptor number (dup3), and lets the dpm socket go. Options set
// while it was fresh are kept here for that replay.
//
// An epoll registration made while the socket was fresh (nginx registers an upstream socket
// before connecting it) belonged to the replaced socket and goes with it, so those are kept
// too and made again for the kernel socket.
#ifndef DPM_PRELOAD_HANDOVER_H_
#define DPM_PRELOAD_HANDOVER_H_

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstdint>

namespace dpm::preload {

/// Keeps an option the program set on fresh socket `fd` (value of `len` bytes, at most 64).
void RecordFreshOption(int fd, int level, int name, const void* value, socklen_t len);
/// Keeps what epoll_ctl(epfd, op, fd, event) did for fresh socket `fd` (ADD, MOD, DEL).
void RecordFreshEpoll(int epfd, int op, int fd, const epoll_event* event);
/// Forgets what was kept for `fd` (it is no longer fresh, or closed).
void DropFreshOptions(int fd);
/// Puts a kernel socket in place of fresh dpm socket `fd` (kind: kTcp or kUdp). Returns 0, or
/// -1 with the errno of the kernel's socket() or dup3() (fd is then unchanged).
int HandToKernel(int fd, uint8_t kind);

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_HANDOVER_H_
