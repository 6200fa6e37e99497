// Moving a socket between the dpm stack and the kernel at the same descriptor number.
//
// Hand-over to the kernel: socket() cannot know where a socket will go, so every AF_INET
// TCP/UDP socket starts in the dpm stack; when its first bind(), connect() or sendto() names an
// address the kernel keeps (DPM_KERNEL_NETS, loopback by default), the hook puts a kernel
// socket of the same type, status flags (O_NONBLOCK), close-on-exec flag and socket options at
// the same descriptor number (dup3), and lets the dpm socket go.
//
// Tunnel mode, the reverse (the tunneling patent, Fig. 5): sockets are the kernel's, and a TCP
// socket whose first connect() names a pseudo address (DPM_TUNNEL_NET) gets a dpm socket of
// the redirector in its place, with the same status flags, close-on-exec flag and options,
// then connected.
//
// Options set while a socket may still move are kept here for that replay. An epoll
// registration made meanwhile (nginx registers an upstream socket before connecting it)
// belonged to the replaced socket and goes with it, so those are kept too and made again for
// the new one.
#ifndef DPM_PRELOAD_HANDOVER_H_
#define DPM_PRELOAD_HANDOVER_H_

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstdint>

namespace dpm::preload {

/// Keeps an option the program set on movable socket `fd` (value of `len` bytes, at most 64).
void KeepOption(int fd, int level, int name, const void* value, socklen_t len);
/// Keeps what epoll_ctl(epfd, op, fd, event) did for movable socket `fd` (ADD, MOD, DEL).
void KeepEpoll(int epfd, int op, int fd, const epoll_event* event);
/// Forgets what was kept for `fd` (it can no longer move, or is closed).
void DropKept(int fd);
/// Puts a kernel socket in place of fresh dpm socket `fd` (kind: kTcp or kUdp). Returns 0, or
/// -1 with the errno of the kernel's socket() or dup3() (fd is then unchanged).
int HandToKernel(int fd, uint8_t kind);
/// connect() of tunnel mode kernel socket `fd` (kind kTunnel) to pseudo address `addr`: makes
/// a TCP dpm socket at the daemon (DPM_SOCKET, the redirector: SOCKET request with type
/// SOCK_STREAM | SOCK_CLOEXEC, plus SOCK_NONBLOCK when fd is non-blocking), replays the kept
/// options on it (SETSOCKOPT for those the daemon keeps), puts it at fd's number (dup3, with
/// fd's close-on-exec flag), connects it (dpm_connect: blocking, or non-blocking with the gate
/// when fd is O_NONBLOCK), then makes the kept epoll registrations again. Returns what that
/// connect returns (0, or -1 with errno: EINPROGRESS, ECONNREFUSED, ...). When no dpm socket
/// can be had (no daemon, or it refuses), -1 with ECONNREFUSED and fd is left as it was.
int TunnelConnect(int fd, const sockaddr* addr, socklen_t len);

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_HANDOVER_H_
