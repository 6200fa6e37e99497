#include "preload/libc_calls.h"

#include <dlfcn.h>
#include <netdb.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace dpm::preload::libc {
namespace {

// The next definition of `name` after the hook's; a program without it (a C library too old
// for close_range, say) gets ENOSYS from the call.
template <typename F>
F Next(std::atomic<void*>& slot, const char* name) {
  void* f = slot.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = ::dlsym(RTLD_NEXT, name);
    slot.store(f, std::memory_order_release);
  }
  return reinterpret_cast<F>(f);
}

}  // namespace

// Each call: the C library's function of the same name, or `missing` (an expression giving
// the failure result) when there is none.
#define DPM_LIBC_CALL_OR(missing, ret, name, params, args) \
  ret name params {                                        \
    static std::atomic<void*> slot{nullptr};               \
    auto f = Next<ret(*) params>(slot, #name);             \
    if (f == nullptr) return missing;                      \
    return f args;                                         \
  }
// The socket calls fail with ENOSYS when there is none.
#define DPM_LIBC_CALL(ret, name, params, args) DPM_LIBC_CALL_OR((errno = ENOSYS, -1), ret, name, params, args)

DPM_LIBC_CALL(int, socket, (int domain, int type, int protocol), (domain, type, protocol))
DPM_LIBC_CALL(int, bind, (int fd, const sockaddr* addr, socklen_t len), (fd, addr, len))
DPM_LIBC_CALL(int, listen, (int fd, int backlog), (fd, backlog))
DPM_LIBC_CALL(int, accept, (int fd, sockaddr* addr, socklen_t* len), (fd, addr, len))
DPM_LIBC_CALL(int, accept4, (int fd, sockaddr* addr, socklen_t* len, int flags), (fd, addr, len, flags))
DPM_LIBC_CALL(int, connect, (int fd, const sockaddr* addr, socklen_t len), (fd, addr, len))
DPM_LIBC_CALL(int, getsockname, (int fd, sockaddr* addr, socklen_t* len), (fd, addr, len))
DPM_LIBC_CALL(int, getpeername, (int fd, sockaddr* addr, socklen_t* len), (fd, addr, len))
DPM_LIBC_CALL(int, setsockopt, (int fd, int level, int name, const void* value, socklen_t len),
              (fd, level, name, value, len))
DPM_LIBC_CALL(int, getsockopt, (int fd, int level, int name, void* value, socklen_t* len),
              (fd, level, name, value, len))
DPM_LIBC_CALL(int, shutdown, (int fd, int how), (fd, how))
DPM_LIBC_CALL(int, close, (int fd), (fd))
DPM_LIBC_CALL(int, close_range, (unsigned first, unsigned last, int flags), (first, last, flags))
DPM_LIBC_CALL(int, dup, (int fd), (fd))
DPM_LIBC_CALL(int, dup2, (int fd, int to), (fd, to))
DPM_LIBC_CALL(int, dup3, (int fd, int to, int flags), (fd, to, flags))
DPM_LIBC_CALL(int, fcntl, (int fd, int cmd, void* arg), (fd, cmd, arg))
DPM_LIBC_CALL(int, fcntl64, (int fd, int cmd, void* arg), (fd, cmd, arg))
DPM_LIBC_CALL(ssize_t, send, (int fd, const void* buf, size_t len, int flags), (fd, buf, len, flags))
DPM_LIBC_CALL(ssize_t, sendto, (int fd, const void* buf, size_t len, int flags, const sockaddr* to, socklen_t tolen),
              (fd, buf, len, flags, to, tolen))
DPM_LIBC_CALL(ssize_t, sendmsg, (int fd, const msghdr* message, int flags), (fd, message, flags))
DPM_LIBC_CALL(int, sendmmsg, (int fd, mmsghdr* messages, unsigned count, int flags), (fd, messages, count, flags))
DPM_LIBC_CALL(ssize_t, recv, (int fd, void* buf, size_t len, int flags), (fd, buf, len, flags))
DPM_LIBC_CALL(ssize_t, recvfrom, (int fd, void* buf, size_t len, int flags, sockaddr* from, socklen_t* fromlen),
              (fd, buf, len, flags, from, fromlen))
DPM_LIBC_CALL(ssize_t, recvmsg, (int fd, msghdr* message, int flags), (fd, message, flags))
DPM_LIBC_CALL(int, recvmmsg, (int fd, mmsghdr* messages, unsigned count, int flags, struct timespec* timeout),
              (fd, messages, count, flags, timeout))
DPM_LIBC_CALL(ssize_t, read, (int fd, void* buf, size_t len), (fd, buf, len))
DPM_LIBC_CALL(ssize_t, write, (int fd, const void* buf, size_t len), (fd, buf, len))
DPM_LIBC_CALL(ssize_t, readv, (int fd, const iovec* iov, int count), (fd, iov, count))
DPM_LIBC_CALL(ssize_t, writev, (int fd, const iovec* iov, int count), (fd, iov, count))

DPM_LIBC_CALL(int, epoll_ctl, (int epfd, int op, int fd, epoll_event* event), (epfd, op, fd, event))

// The resolver's calls, as a resolver that cannot work at all fails.
DPM_LIBC_CALL_OR((errno = ENOSYS, EAI_SYSTEM), int, getaddrinfo,
                 (const char* node, const char* service, const addrinfo* hints, addrinfo** res),
                 (node, service, hints, res))
DPM_LIBC_CALL_OR((h_errno = NO_RECOVERY, nullptr), hostent*, gethostbyname, (const char* name), (name))
DPM_LIBC_CALL_OR((h_errno = NO_RECOVERY, nullptr), hostent*, gethostbyname2, (const char* name, int af), (name, af))
DPM_LIBC_CALL_OR((*h_errnop = NO_RECOVERY, *result = nullptr, ENOSYS), int, gethostbyname_r,
                 (const char* name, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop),
                 (name, ret, buf, buflen, result, h_errnop))
DPM_LIBC_CALL_OR((*h_errnop = NO_RECOVERY, *result = nullptr, ENOSYS), int, gethostbyname2_r,
                 (const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop),
                 (name, af, ret, buf, buflen, result, h_errnop))

#undef DPM_LIBC_CALL
#undef DPM_LIBC_CALL_OR

}  // namespace dpm::preload::libc
