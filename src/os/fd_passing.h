// Descriptor passing over a UNIX socket (SCM_RIGHTS, unix(7)): the one sender and the one
// receiver of the tree. dpmd sends each new dpm socket's far end (the SOCKET reply, the
// AcceptRecord of a listener) and libdpm receives it; both use these two calls.
#ifndef DPM_OS_FD_PASSING_H_
#define DPM_OS_FD_PASSING_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace dpm::os {

/// Sends one message of the `iovcnt` parts at `iov` on `fd` with sendmsg(2), flags
/// MSG_DONTWAIT | MSG_NOSIGNAL (never blocks, never raises SIGPIPE). `pass_fd` >= 0 travels
/// with it in one SCM_RIGHTS control message; the caller keeps its own copy and closes it when
/// it likes. Returns the bytes sent, or -errno (-EAGAIN: no room now; -EPIPE: the peer is gone).
ssize_t SendWithFd(int fd, const iovec* iov, size_t iovcnt, int pass_fd);

/// Receives one message of at most `len` bytes into `buf` on `fd` with recvmsg(2), `flags`
/// plus MSG_CMSG_CLOEXEC (a received descriptor is close-on-exec until the caller says
/// otherwise); interrupted calls (EINTR) are retried unless `retry_interrupted` is false (then
/// -1 with EINTR, as accept(2) gives a program whose signal handler does not restart calls).
/// `*passed` gets the one descriptor that
/// came in SCM_RIGHTS, or -1. Descriptors beyond the first, and every descriptor of a control
/// message the kernel truncated (MSG_CTRUNC: more than one was sent), are closed and refused,
/// so none leaks into the process. Returns recvmsg's result: bytes received, 0 at end of
/// file, or -1 with errno set (EAGAIN on a non-blocking socket with nothing to read).
ssize_t RecvWithFd(int fd, void* buf, size_t len, int flags, int* passed, bool retry_interrupted = true);

/// Closes the descriptor it holds (if >= 0) when it goes out of scope: a descriptor that came
/// with a message and is used, at most, during its handling. release() gives it up.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace dpm::os

#endif  // DPM_OS_FD_PASSING_H_
