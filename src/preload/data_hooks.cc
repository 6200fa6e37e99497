// libdpm-preload.so, the data calls. A dpm TCP socket is a stream socket pair end, so read(),
// write(), send(), recv(), sendfile(), writev() ... work on it as they are and go straight to
// the C library; only an address given to sendto()/sendmsg() on TCP is dropped (Linux ignores
// it on a connected socket, a socket pair would refuse it). A dpm UDP socket carries each
// datagram framed with its address (docs/api.md), so send*/recv*/read/write/readv/writev on it
// go through libdpm's framing (lib/internal.h SendMessage / ReceiveMessage).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <csignal>

#include "dpm/socket.h"
#include "lib/internal.h"
#include "preload/descriptors.h"
#include "preload/hook_state.h"
#include "preload/in_dpm.h"
#include "preload/libc_calls.h"

namespace dpm::preload {
namespace {

// A TCP socket that is neither connected nor connecting: Linux fails reads with ENOTCONN and
// writes with EPIPE (and SIGPIPE, unless MSG_NOSIGNAL). True when `fd` is one; errno is set.
// Called only for a number marked kIdleTcp.
bool Idle(int fd, bool write, int flags) {
  {
    // The mark belongs to the number: the socket may have been connected through another copy
    // (dup, a forked child), or the number closed behind the hook's back and reused. Only a
    // dpm socket that has no peer is idle; anything else loses the mark.
    InDpmScope in_dpm;
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    const int saved = errno;
    const bool idle = lib::IsDpmSocket(fd, nullptr) &&
                      dpm_getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 && errno == ENOTCONN;
    errno = saved;
    if (!idle) {
      SetKind(fd, KindOf(fd) & ~kIdleTcp);
      return false;
    }
  }
  if (!write) {
    errno = ENOTCONN;
    return true;
  }
  if ((flags & MSG_NOSIGNAL) == 0) ::raise(SIGPIPE);
  errno = EPIPE;
  return true;
}

enum class Route { kLibc, kDpm, kFailed };

// Where a data call on `fd` goes, from one look at the table (the whole cost for descriptors
// that are not dpm sockets): the C library (not ours, or a TCP socket's plain bytes), libdpm (a
// UDP socket's datagrams, or any dpm socket when the call names an address), or nowhere (an idle
// TCP socket: errno is set, see Idle).
Route RouteOf(int fd, bool write, int flags, bool has_address) {
  if (InDpm()) return Route::kLibc;
  const uint8_t kind = KindOf(fd);
  if (!IsDpmKind(kind)) return Route::kLibc;
  if ((kind & kIdleTcp) != 0 && Idle(fd, write, flags)) return Route::kFailed;
  return (kind & kUdp) != 0 || has_address ? Route::kDpm : Route::kLibc;
}

msghdr Message(iovec* parts, size_t count, const sockaddr* name = nullptr, socklen_t namelen = 0) {
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(name);
  m.msg_namelen = name != nullptr ? namelen : 0;
  m.msg_iov = parts;
  m.msg_iovlen = count;
  return m;
}

// Sends through libdpm; a number libdpm no longer knows (closed behind the hook's back and
// reused) is dropped from the table and the call goes to the C library. *settled: the fresh
// socket became the kernel's (the caller then calls the C library too).
ssize_t Send(int fd, const msghdr* m, int flags, bool* to_libc) {
  *to_libc = false;
  if (m->msg_name != nullptr) {
    const int settled = SettleFresh(fd, static_cast<const sockaddr*>(m->msg_name), m->msg_namelen, /*bind=*/false);
    if (settled < 0) return -1;
    if (settled > 0) {
      *to_libc = true;
      return 0;
    }
  } else {
    SettleFresh(fd, nullptr, 0, /*bind=*/false);
  }
  InDpmScope in_dpm;
  const int saved = errno;
  ssize_t n = lib::SendMessage(fd, m, flags);
  if (n < 0 && errno == ENOTSOCK) {
    SetKind(fd, kNotOurs);
    errno = saved;
    *to_libc = true;
  }
  return n;
}

ssize_t Receive(int fd, msghdr* m, int flags, bool* to_libc) {
  *to_libc = false;
  InDpmScope in_dpm;
  const int saved = errno;
  ssize_t n = lib::ReceiveMessage(fd, m, flags);
  if (n < 0 && errno == ENOTSOCK) {
    SetKind(fd, kNotOurs);
    errno = saved;
    *to_libc = true;
  }
  return n;
}

// Send / Receive, or `libc_call` when the descriptor turned out to be the kernel's.
template <typename F>
ssize_t SendOr(int fd, const msghdr* m, int flags, F libc_call) {
  bool to_libc;
  const ssize_t n = Send(fd, m, flags, &to_libc);
  return to_libc ? libc_call() : n;
}
template <typename F>
ssize_t ReceiveOr(int fd, msghdr* m, int flags, F libc_call) {
  bool to_libc;
  const ssize_t n = Receive(fd, m, flags, &to_libc);
  return to_libc ? libc_call() : n;
}

// The vector calls' count, as msg_iovlen; EINVAL for a negative one, as the kernel says.
bool VectorCount(int count, size_t* out) {
  if (count < 0) {
    errno = EINVAL;
    return false;
  }
  *out = static_cast<size_t>(count);
  return true;
}

}  // namespace
}  // namespace dpm::preload

using namespace dpm::preload;

extern "C" {

ssize_t sendmsg(int fd, const msghdr* message, int flags) {
  const Route r = RouteOf(fd, true, flags, message != nullptr && message->msg_name != nullptr);
  if (r != Route::kDpm || message == nullptr) {
    return r == Route::kFailed ? -1 : libc::sendmsg(fd, message, flags);
  }
  return SendOr(fd, message, flags, [&] { return libc::sendmsg(fd, message, flags); });
}

ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to, socklen_t tolen) {
  const Route r = RouteOf(fd, true, flags, to != nullptr);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::sendto(fd, buf, len, flags, to, tolen);
  iovec part{const_cast<void*>(buf), len};
  msghdr m = Message(&part, 1, to, tolen);
  return SendOr(fd, &m, flags, [&] { return libc::sendto(fd, buf, len, flags, to, tolen); });
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
  const Route r = RouteOf(fd, true, flags, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::send(fd, buf, len, flags);
  iovec part{const_cast<void*>(buf), len};
  msghdr m = Message(&part, 1);
  return SendOr(fd, &m, flags, [&] { return libc::send(fd, buf, len, flags); });
}

ssize_t write(int fd, const void* buf, size_t len) {
  const Route r = RouteOf(fd, true, 0, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::write(fd, buf, len);
  iovec part{const_cast<void*>(buf), len};
  msghdr m = Message(&part, 1);
  return SendOr(fd, &m, 0, [&] { return libc::write(fd, buf, len); });
}

ssize_t writev(int fd, const iovec* iov, int count) {
  const Route r = RouteOf(fd, true, 0, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::writev(fd, iov, count);
  size_t n;
  if (!VectorCount(count, &n)) return -1;
  msghdr m = Message(const_cast<iovec*>(iov), n);
  return SendOr(fd, &m, 0, [&] { return libc::writev(fd, iov, count); });
}

int sendmmsg(int fd, mmsghdr* messages, unsigned count, int flags) {
  if (InDpm() || !IsDpmKind(KindOf(fd)) || messages == nullptr) return libc::sendmmsg(fd, messages, count, flags);
  unsigned sent = 0;
  for (; sent < count && sent < 1024; ++sent) {
    bool to_libc;
    ssize_t n = Send(fd, &messages[sent].msg_hdr, flags, &to_libc);
    if (to_libc) return sent == 0 ? libc::sendmmsg(fd, messages, count, flags) : static_cast<int>(sent);
    if (n < 0) return sent == 0 ? -1 : static_cast<int>(sent);  // as Linux: the count so far
    messages[sent].msg_len = static_cast<unsigned>(n);
  }
  return static_cast<int>(sent);
}

ssize_t recvmsg(int fd, msghdr* message, int flags) {
  const Route r = RouteOf(fd, false, flags, false);
  if (r != Route::kDpm || message == nullptr) {
    return r == Route::kFailed ? -1 : libc::recvmsg(fd, message, flags);
  }
  return ReceiveOr(fd, message, flags, [&] { return libc::recvmsg(fd, message, flags); });
}

ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from, socklen_t* fromlen) {
  const Route r = RouteOf(fd, false, flags, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::recvfrom(fd, buf, len, flags, from, fromlen);
  iovec part{buf, len};
  msghdr m = Message(&part, 1, from, from != nullptr && fromlen != nullptr ? *fromlen : 0);
  bool to_libc;
  ssize_t n = Receive(fd, &m, flags, &to_libc);
  if (to_libc) return libc::recvfrom(fd, buf, len, flags, from, fromlen);
  if (n >= 0 && from != nullptr && fromlen != nullptr) *fromlen = m.msg_namelen;
  return n;
}

ssize_t recv(int fd, void* buf, size_t len, int flags) {
  const Route r = RouteOf(fd, false, flags, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::recv(fd, buf, len, flags);
  iovec part{buf, len};
  msghdr m = Message(&part, 1);
  return ReceiveOr(fd, &m, flags, [&] { return libc::recv(fd, buf, len, flags); });
}

ssize_t read(int fd, void* buf, size_t len) {
  const Route r = RouteOf(fd, false, 0, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::read(fd, buf, len);
  iovec part{buf, len};
  msghdr m = Message(&part, 1);
  return ReceiveOr(fd, &m, 0, [&] { return libc::read(fd, buf, len); });
}

ssize_t readv(int fd, const iovec* iov, int count) {
  const Route r = RouteOf(fd, false, 0, false);
  if (r != Route::kDpm) return r == Route::kFailed ? -1 : libc::readv(fd, iov, count);
  size_t n;
  if (!VectorCount(count, &n)) return -1;
  msghdr m = Message(const_cast<iovec*>(iov), n);
  return ReceiveOr(fd, &m, 0, [&] { return libc::readv(fd, iov, count); });
}

// Linux blocks (as `flags` say) for the first datagram only when MSG_WAITFORONE is given; the
// hook returns what is queued after the first in every case (the timeout is not used).
int recvmmsg(int fd, mmsghdr* messages, unsigned count, int flags, struct timespec* timeout) {
  if (InDpm() || (KindOf(fd) & kUdp) == 0 || messages == nullptr) {
    return libc::recvmmsg(fd, messages, count, flags, timeout);
  }
  unsigned got = 0;
  int call_flags = flags & ~MSG_WAITFORONE;
  for (; got < count && got < 1024; ++got) {
    bool to_libc;
    ssize_t n = Receive(fd, &messages[got].msg_hdr, call_flags, &to_libc);
    if (to_libc) return got == 0 ? libc::recvmmsg(fd, messages, count, flags, timeout) : static_cast<int>(got);
    if (n < 0) return got == 0 ? -1 : static_cast<int>(got);
    messages[got].msg_len = static_cast<unsigned>(n);
    call_flags |= MSG_DONTWAIT;
  }
  return static_cast<int>(got);
}

}  // extern "C"
