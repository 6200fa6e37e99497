// libdpm-preload.so, the C library's syscall(). Some libraries reach the kernel's batched
// datagram calls through syscall(SYS_sendmmsg / SYS_recvmmsg, ...) rather than through the C
// library's sendmmsg()/recvmmsg() — libuv does, and with it bind9's dig — which would pass
// by the hook and write an unframed datagram into a dpm UDP socket's pair. Those two
// numbers go to the hook's own sendmmsg()/recvmmsg() (data_hooks.cc), which hand anything
// that is not a dpm socket on to the C library; every other number goes on to the C
// library's syscall() with the same six arguments.
#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <ctime>

namespace {

using SyscallFn = long (*)(long, ...);

SyscallFn NextSyscall() {
  static std::atomic<void*> slot{nullptr};
  void* f = slot.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = ::dlsym(RTLD_NEXT, "syscall");
    slot.store(f, std::memory_order_release);
  }
  return reinterpret_cast<SyscallFn>(f);
}

}  // namespace

extern "C" long syscall(long number, ...) {
  // The kernel takes at most six arguments; reading six is what the C library's syscall()
  // does too, whatever the caller passed.
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  switch (number) {
    case SYS_sendmmsg:
      return sendmmsg(static_cast<int>(a[0]), reinterpret_cast<mmsghdr*>(a[1]), static_cast<unsigned>(a[2]),
                      static_cast<int>(a[3]));
    case SYS_recvmmsg:
      return recvmmsg(static_cast<int>(a[0]), reinterpret_cast<mmsghdr*>(a[1]), static_cast<unsigned>(a[2]),
                      static_cast<int>(a[3]), reinterpret_cast<struct timespec*>(a[4]));
    default:
      break;
  }
  SyscallFn next = NextSyscall();
  if (next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
