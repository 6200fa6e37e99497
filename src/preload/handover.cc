#include "preload/handover.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dpm/socket.h"
#include "lib/internal.h"
#include "preload/descriptors.h"
#include "preload/in_dpm.h"
#include "preload/libc_calls.h"

namespace dpm::preload {
namespace {

struct Option {
  int level, name;
  std::vector<uint8_t> value;
};

struct Registration {
  int epfd;
  epoll_event event;
};

// What a movable socket was given: options, and epoll registrations.
struct Kept {
  std::vector<Option> options;
  std::vector<Registration> registrations;
};

std::mutex g_mu;
absl::flat_hash_map<int, Kept>& KeptMap() {
  static auto* kept = new absl::flat_hash_map<int, Kept>();
  return *kept;
}
// A fork() while another thread holds the lock must not leave the child's copy held.
[[maybe_unused]] const int g_atfork = [] {
  return pthread_atfork([] { g_mu.lock(); }, [] { g_mu.unlock(); }, [] { g_mu.unlock(); });
}();

Kept TakeKept(int fd) {
  Kept kept;
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = KeptMap().find(fd);
  if (it != KeptMap().end()) {
    kept = std::move(it->second);
    KeptMap().erase(it);
  }
  return kept;
}

void PutBack(int fd, Kept kept) {
  std::lock_guard<std::mutex> lock(g_mu);
  KeptMap()[fd] = std::move(kept);
}

// fd's status flags (F_GETFL) and descriptor flags (F_GETFD); false with errno (EBADF).
bool ReadFlags(int fd, int* status, int* descriptor) {
  *status = libc::fcntl(fd, F_GETFL, nullptr);
  *descriptor = libc::fcntl(fd, F_GETFD, nullptr);
  return *status >= 0 && *descriptor >= 0;
}

// dup3 of `replacement` onto `fd`, keeping fd's close-on-exec flag: closes what fd named (its
// daemon or the kernel sees it go) and puts the replacement there.
int PutInPlace(int replacement, int fd, int descriptor_flags) {
  return libc::dup3(replacement, fd, (descriptor_flags & FD_CLOEXEC) != 0 ? O_CLOEXEC : 0);
}

// What the replaced socket's registrations were, for the socket now at `fd`.
void Reregister(int fd, std::vector<Registration>& registrations) {
  for (Registration& r : registrations) libc::epoll_ctl(r.epfd, EPOLL_CTL_ADD, fd, &r.event);
}

// True when `fd` still is a kernel IPv4 TCP socket that does not listen (the number may have
// been closed behind the hook's back and reused for something else).
bool KernelTcp(int fd) {
  int domain = 0, type = 0, listening = 1;
  socklen_t len = sizeof(int);
  if (libc::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_INET) return false;
  len = sizeof(int);
  if (libc::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof(int);
  return libc::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 0;
}

// A dpm TCP socket at the daemon, moved to fd's number with fd's flags and kept options. False
// (fd untouched, its kept state too) when the daemon gives none. Runs inside libdpm.
bool MoveToDaemon(int fd, int status, int descriptor, Kept* kept) {
  InDpmScope in_dpm;
  const int nonblock = (status & O_NONBLOCK) != 0 ? SOCK_NONBLOCK : 0;
  const int moved = dpm_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | nonblock, 0, DPM_TUPLE_COMMON);
  if (moved < 0) return false;
  const int flags = ::fcntl(moved, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) != (status & O_NONBLOCK)) {
    ::fcntl(moved, F_SETFL, (flags & ~O_NONBLOCK) | (status & O_NONBLOCK));
  }
  *kept = TakeKept(fd);
  for (const Option& o : kept->options) {
    // The kernel took each of them; what the daemon refuses is dropped, as the program was
    // told it was set.
    dpm_setsockopt(moved, o.level, o.name, o.value.data(), static_cast<socklen_t>(o.value.size()));
  }
  if (PutInPlace(moved, fd, descriptor) < 0) {
    dpm_close(moved);
    PutBack(fd, std::move(*kept));
    return false;
  }
  lib::CopyEntry(moved, fd);
  dpm_close(moved);
  return true;
}

}  // namespace

void KeepOption(int fd, int level, int name, const void* value, socklen_t len) {
  if (value == nullptr || len > 64) return;
  const auto* p = static_cast<const uint8_t*>(value);
  std::lock_guard<std::mutex> lock(g_mu);
  KeptMap()[fd].options.push_back(Option{level, name, std::vector<uint8_t>(p, p + len)});
}

void KeepEpoll(int epfd, int op, int fd, const epoll_event* event) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<Registration>& list = KeptMap()[fd].registrations;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->epfd != epfd) continue;
    if (op == EPOLL_CTL_MOD && event != nullptr) it->event = *event;
    if (op == EPOLL_CTL_DEL) list.erase(it);
    return;
  }
  if (op == EPOLL_CTL_ADD && event != nullptr) list.push_back(Registration{epfd, *event});
}

void DropKept(int fd) {
  std::lock_guard<std::mutex> lock(g_mu);
  KeptMap().erase(fd);
}

int HandToKernel(int fd, uint8_t kind) {
  int status, descriptor;
  if (!ReadFlags(fd, &status, &descriptor)) return -1;
  const int type = (kind & kTcp) != 0 ? SOCK_STREAM : SOCK_DGRAM;
  const int kernel = libc::socket(AF_INET, type | ((status & O_NONBLOCK) != 0 ? SOCK_NONBLOCK : 0), 0);
  if (kernel < 0) return -1;
  Kept kept = TakeKept(fd);
  for (const Option& o : kept.options) {
    // What the kernel refuses it would have refused at the time; the program was told then.
    libc::setsockopt(kernel, o.level, o.name, o.value.data(), static_cast<socklen_t>(o.value.size()));
  }
  if (PutInPlace(kernel, fd, descriptor) < 0) {
    const int e = errno;
    libc::close(kernel);
    errno = e;
    return -1;
  }
  SetKind(fd, kNotOurs);
  {
    InDpmScope in_dpm;
    lib::ForgetEntry(fd);
  }
  Reregister(fd, kept.registrations);
  libc::close(kernel);
  return 0;
}

int TunnelConnect(int fd, const sockaddr* addr, socklen_t len) {
  int status, descriptor;
  if (!ReadFlags(fd, &status, &descriptor)) return -1;
  if (!KernelTcp(fd)) {
    SetKind(fd, kNotOurs);
    DropKept(fd);
    return libc::connect(fd, addr, len);
  }
  Kept kept;
  if (!MoveToDaemon(fd, status, descriptor, &kept)) {
    errno = ECONNREFUSED;  // the redirector is where such a connection would have gone
    return -1;
  }
  SetKind(fd, kTcp | kIdleTcp);
  int r, e;
  {
    InDpmScope in_dpm;
    r = dpm_connect(fd, addr, len);
    e = errno;
  }
  if (r == 0 || e == EINPROGRESS) SetKind(fd, kTcp);
  // Made now, not before the connect: a non-blocking one has filled its gate, so a registration
  // reports the descriptor writable only when the connect has ended, as the kernel's would.
  Reregister(fd, kept.registrations);
  errno = e;
  return r;
}

}  // namespace dpm::preload
