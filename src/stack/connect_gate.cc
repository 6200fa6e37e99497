#include "stack/connect_gate.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace dpm::stack {

size_t RaiseConnectGate(int near_fd, int program_fd) {
  // The kernel takes a write while the sender's queued bytes are below its SO_SNDBUF and
  // reports it writable only below a quarter of that, so writing until EAGAIN closes both.
  static const uint8_t kZeros[16384] = {};
  constexpr size_t kMaxGate = 16u << 20;  // far above any SO_SNDBUF the kernel grants
  size_t total = 0;
  while (total < kMaxGate) {
    ssize_t n = ::send(program_fd, kZeros, sizeof(kZeros), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  int queued = 0;
  pollfd p{program_fd, POLLOUT, 0};
  if (::ioctl(near_fd, FIONREAD, &queued) != 0 || static_cast<size_t>(queued) != total || total == 0 ||
      (::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0)) {
    DropQueued(near_fd, total);  // not our pair's other end, or it will not fill
    return 0;
  }
  return total;
}

size_t DropQueued(int near_fd, size_t limit) {
  uint8_t buf[16384];
  size_t dropped = 0;
  while (dropped < limit) {
    ssize_t n = ::recv(near_fd, buf, std::min(sizeof(buf), limit - dropped), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    dropped += static_cast<size_t>(n);
  }
  return dropped;
}

}  // namespace dpm::stack
