// libdpm's own descriptor table, for the preload hook (src/preload/), which is built from the
// same sources: it must learn of descriptors that dup()/dup2()/fcntl(F_DUPFD) made and of
// descriptors the kernel reuses, which libdpm's public calls never see.
#ifndef DPM_LIB_INTERNAL_H_
#define DPM_LIB_INTERNAL_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

namespace dpm::lib {

/// True when `fd` is a dpm socket of this process (its descriptor, checked by inode, so a
/// number closed behind libdpm's back and reused is not). *tcp (if not null) gets its kind.
/// errno is left as it was.
bool IsDpmSocket(int fd, bool* tcp);
/// `to` now names the same dpm socket as `from` (after dup and friends); nothing if `from` is
/// not one.
void CopyEntry(int from, int to);
/// accept4(2) on a dpm listener: `flags` SOCK_NONBLOCK / SOCK_CLOEXEC set on the new descriptor,
/// which is close-on-exec from its arrival when SOCK_CLOEXEC asks (no fork+exec in another thread
/// can take it meanwhile). Errors as dpm_accept(), and EINVAL (other flags), EINTR (a signal).
int Accept(int fd, sockaddr* addr, socklen_t* addrlen, int flags);
/// sendmsg(2) on a dpm socket: TCP sends the bytes (an address is ignored once connected,
/// ENOTCONN before); UDP sends one datagram to msg_name, or to the connected peer when it is
/// null (EDESTADDRREQ if none), framed as docs/api.md says. Returns payload bytes taken.
/// msg_control is not sent. Errors: EBADF, ENOTSOCK, EAFNOSUPPORT, EINVAL, EMSGSIZE (over
/// 65507 bytes), EAGAIN, EPIPE.
ssize_t SendMessage(int fd, const msghdr* message, int flags);
/// recvmsg(2) on a dpm socket: TCP receives bytes; UDP one datagram, its sender in msg_name
/// (msg_namelen set as recvmsg sets it), MSG_TRUNC in msg_flags when it was cut. No control
/// messages (msg_controllen 0). Returns payload bytes (0 at TCP end-of-file).
ssize_t ReceiveMessage(int fd, msghdr* message, int flags);
/// `fd` no longer names a dpm socket (it was closed, or dup2() replaced it).
void ForgetEntry(int fd);
/// The pseudo IPv4 address of DNS name `name` (NUL-terminated), asked of the daemon in one
/// RESOLVE request (api/protocol.h ResolveRequest; a `dpmd redirector` answers it, the
/// tunneling patent, Fig. 6 step 615) on the thread's control connection. *address_be gets
/// the address in network byte order. Returns 0 or the errno: ENOENT (not a name the daemon resolves, or
/// longer than 253 bytes), ENOSPC (the daemon has no address left), ENETDOWN / EACCES (no
/// daemon, or one refusing this user), EINVAL (a daemon without RESOLVE), EPROTO (a reply
/// that is not an IPv4 endpoint). errno itself is left as it was.
int Resolve(const char* name, uint32_t* address_be);

}  // namespace dpm::lib

#endif  // DPM_LIB_INTERNAL_H_
