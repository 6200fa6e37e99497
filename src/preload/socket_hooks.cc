// libdpm-preload.so, the socket calls: socket(), bind(), listen(), accept(), accept4(),
// connect(), getsockname(), getpeername(), setsockopt(), getsockopt(), shutdown(), close(),
// close_range(), dup(), dup2(), dup3(), fcntl(F_DUPFD*), epoll_ctl() of an unmodified dynamically linked
// program, mapped onto the dpm instance through libdpm (docs/preload.md). What is not an IPv4
// TCP/UDP socket goes to the C library unchanged; so does every call made while libdpm itself
// runs (in_dpm.h). The data calls are in data_hooks.cc, the name resolver's in
// resolver_hooks.cc.
//
// Tunnel mode (DPM_TUNNEL=1; the tunneling patent, Fig. 5): sockets are the kernel's; a TCP
// one is marked kTunnel until it connects, and a connect to a pseudo address (DPM_TUNNEL_NET)
// moves it to the redirector (handover.h TunnelConnect), after which it is a dpm socket like
// any other.
//
// Source: the tunneling patent's socket API hooking component, and the per-socket-address
// patent's modified socket functions applied to programs that were never rewritten.
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dpm/socket.h"
#include "lib/internal.h"
#include "preload/descriptors.h"
#include "preload/handover.h"
#include "preload/hook_config.h"
#include "preload/hook_state.h"
#include "preload/in_dpm.h"
#include "preload/libc_calls.h"

namespace dpm::preload {

const HookConfig* Config() {
  static const HookConfig* config = [] {
    absl::StatusOr<HookConfig> c =
        ParseHookConfig(std::getenv("DPM_TUPLE"), std::getenv("DPM_FIXED_PORTS"), std::getenv("DPM_KERNEL_NETS"),
                        std::getenv("DPM_TUNNEL"), std::getenv("DPM_TUNNEL_SUFFIX"), std::getenv("DPM_TUNNEL_NET"),
                        std::getenv("DPM_AID"));
    if (!c.ok()) {
      std::fprintf(stderr, "libdpm-preload: %s; IPv4 sockets are refused (EINVAL)\n",
                   std::string(c.status().message()).c_str());
      return static_cast<const HookConfig*>(nullptr);
    }
    return static_cast<const HookConfig*>(new HookConfig(std::move(*c)));
  }();
  return config;
}

namespace {

// At load, before the program runs: the environment is read while it is dpm-run's. Programs
// that clear their environment for their children (nginx's workers keep only TZ) still reach
// the daemon and keep the configuration.
// In tunnel mode the daemon is a redirector, at its own default socket unless DPM_SOCKET says.
__attribute__((constructor)) void ReadEnvironment() {
  const HookConfig* config = Config();
  const char* path = std::getenv("DPM_SOCKET");
  if (path == nullptr || *path == '\0') {
    path = config != nullptr && config->tunnel.enabled ? kDefaultRedirectorSocket : nullptr;
  }
  if (path != nullptr) {
    InDpmScope in_dpm;
    dpm_set_daemon_path(path);
  }
}

}  // namespace

bool ForKernel(const sockaddr* addr, socklen_t len, bool bind) {
  const HookConfig* c = Config();
  if (c == nullptr || addr == nullptr || len < static_cast<socklen_t>(sizeof(sockaddr_in)) ||
      addr->sa_family != AF_INET) {
    return false;
  }
  uint32_t to = ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr);
  // Linux takes a connect or send to 0.0.0.0 as one to this host (127.0.0.1); a bind to it is
  // "any address" and stays in the stack.
  if (to == INADDR_ANY && !bind) to = INADDR_LOOPBACK;
  return c->ForKernel(to);
}

int SettleFresh(int fd, const sockaddr* addr, socklen_t len, bool bind) {
  const uint8_t kind = KindOf(fd);
  if ((kind & kFresh) == 0) return 0;
  if (ForKernel(addr, len, bind)) return HandToKernel(fd, kind) == 0 ? 1 : -1;
  SetKind(fd, kind & ~kFresh);
  DropKept(fd);
  return 0;
}

namespace {

// True when `fd` is a dpm socket the hook should handle. An entry whose number the program
// closed behind the hook's back (fclose of an fdopen'ed socket, a raw close syscall) and the
// kernel gave to something else is dropped here, so that descriptor's calls reach the C library.
bool Ours(int fd) {
  if (InDpm() || !IsDpmKind(KindOf(fd))) return false;
  InDpmScope in_dpm;
  if (lib::IsDpmSocket(fd, nullptr)) return true;
  SetKind(fd, kNotOurs);
  DropKept(fd);
  lib::ForgetEntry(fd);
  return false;
}

// True when `fd` is a tunnel mode kernel socket that may still move to the redirector.
bool Movable(int fd) { return !InDpm() && KindOf(fd) == kTunnel; }

// `fd`'s entry says nothing any more: a kernel socket, whatever an old entry of its number said
// (or a tunnel mode one that can no longer move: connected elsewhere, listening, duplicated).
void Unmark(int fd) {
  if (fd >= 0 && KindOf(fd) != kNotOurs) {
    SetKind(fd, kNotOurs);
    DropKept(fd);
  }
}

// A descriptor the C library made is not a dpm socket, whatever an old entry of its number says.
int Kernels(int fd) {
  Unmark(fd);
  return fd;
}

bool InTunnelNet(const HookConfig& config, const sockaddr* addr, socklen_t len) {
  if (addr == nullptr || len < static_cast<socklen_t>(sizeof(sockaddr_in)) || addr->sa_family != AF_INET) return false;
  return config.tunnel.net.Contains(ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr));
}

// socket() in tunnel mode: the kernel's, and an IPv4 TCP one may still move.
int TunnelModeSocket(int domain, int type, int protocol, bool tcp) {
  const int fd = Kernels(libc::socket(domain, type, protocol));
  if (fd >= 0 && fd < kMaxTracked && domain == AF_INET && tcp) SetKind(fd, kTunnel);
  return fd;
}

// connect() of a kTunnel socket: to a pseudo address through the redirector, elsewhere the
// kernel's, after which the socket stays the kernel's.
int TunnelModeConnect(const HookConfig& config, int fd, const sockaddr* addr, socklen_t len) {
  if (InTunnelNet(config, addr, len)) return TunnelConnect(fd, addr, len);
  const int r = libc::connect(fd, addr, len);
  const int e = errno;
  if (r == 0 || e == EINPROGRESS) Unmark(fd);
  errno = e;
  return r;
}

// After a dup: `to` names the dpm socket `from` names. Neither may be handed to the kernel
// any more (the other number would keep the dpm socket).
void Duplicated(int from, int to) {
  const uint8_t kind = KindOf(from) & ~kFresh;
  if (to >= kMaxTracked) return;  // cannot happen for numbers the kernel gives below the limit
  SetKind(from, kind);
  DropKept(from);
  InDpmScope in_dpm;
  lib::CopyEntry(from, to);
  SetKind(to, kind);
}

// `fd` is about to stop naming what it named (close, or dup2/dup3 onto it).
void Forget(int fd) {
  if (KindOf(fd) == kNotOurs) return;
  SetKind(fd, kNotOurs);
  DropKept(fd);
  InDpmScope in_dpm;
  lib::ForgetEntry(fd);
}

// After dup2/dup3(fd, to) succeeded: `to` names what `fd` names.
// A tunnel mode socket with two numbers cannot move (the other would keep the kernel socket).
void Replaced(int fd, int to) {
  Forget(to);
  if (Ours(fd)) {
    Duplicated(fd, to);
  } else if (Movable(fd)) {
    Unmark(fd);
  }
}

int DupCommand(int fd, int cmd, void* arg, int (*call)(int, int, void*)) {
  const bool dup = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;  // F_GETFL & co: no lookup
  const bool ours = dup && Ours(fd);
  const int r = call(fd, cmd, arg);
  if (ours && r >= 0) Duplicated(fd, r);
  if (dup && r >= 0 && Movable(fd)) Unmark(fd);
  return r;
}

}  // namespace
}  // namespace dpm::preload

using namespace dpm::preload;

extern "C" {

int socket(int domain, int type, int protocol) {
  if (InDpm()) return Kernels(libc::socket(domain, type, protocol));  // libdpm's own
  const int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  const bool tcp = base == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
  const bool udp = base == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP);
  if (const HookConfig* c = Config(); c != nullptr && c->tunnel.enabled) {
    return TunnelModeSocket(domain, type, protocol, tcp);
  }
  if (domain == AF_INET6) {
    errno = EAFNOSUPPORT;  // an IPv4-only host: programs fall back to IPv4
    return -1;
  }
  if (domain != AF_INET || (!tcp && !udp)) return Kernels(libc::socket(domain, type, protocol));
  const HookConfig* config = Config();
  if (config == nullptr) {
    errno = EINVAL;
    return -1;
  }
  InDpmScope in_dpm;
  const int fd = dpm_socket(AF_INET, type, protocol, config->tuple);
  if (fd < 0) return -1;
  if (fd >= kMaxTracked) {
    dpm_close(fd);
    errno = EMFILE;
    return -1;
  }
  if (config->fixed_ports) {
    const int one = 1;
    dpm_setsockopt(fd, DPM_SOL, DPM_PORT_FIXED, &one, sizeof(one));
  }
  if (!config->aid.empty()) {
    dpm_setsockopt(fd, DPM_SOL, DPM_AID, config->aid.data(), static_cast<socklen_t>(config->aid.size()));
  }
  SetKind(fd, (tcp ? kTcp | kIdleTcp : kUdp) | (config->kernel_nets.empty() ? 0 : kFresh));
  return fd;
}

int bind(int fd, const sockaddr* addr, socklen_t len) {
  if (!Ours(fd)) return libc::bind(fd, addr, len);
  if (int settled = SettleFresh(fd, addr, len, /*bind=*/true)) return settled < 0 ? -1 : libc::bind(fd, addr, len);
  InDpmScope in_dpm;
  return dpm_bind(fd, addr, len);
}

int listen(int fd, int backlog) {
  if (Movable(fd)) Unmark(fd);  // a listener never connects
  if (!Ours(fd)) return libc::listen(fd, backlog);
  SettleFresh(fd, nullptr, 0, /*bind=*/true);
  InDpmScope in_dpm;
  return dpm_listen(fd, backlog);
}

int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  if (!Ours(fd)) return Kernels(libc::accept4(fd, addr, len, flags));
  InDpmScope in_dpm;
  const int conn = dpm::lib::Accept(fd, addr, len, flags);
  if (conn < 0) return -1;
  if (conn >= kMaxTracked) {
    dpm_close(conn);
    errno = EMFILE;
    return -1;
  }
  SetKind(conn, kTcp);
  return conn;
}

int accept(int fd, sockaddr* addr, socklen_t* len) {
  if (!Ours(fd)) return Kernels(libc::accept(fd, addr, len));
  return accept4(fd, addr, len, 0);
}

int connect(int fd, const sockaddr* addr, socklen_t len) {
  if (Movable(fd)) return TunnelModeConnect(*Config(), fd, addr, len);  // kTunnel only in tunnel mode
  if (!Ours(fd)) return libc::connect(fd, addr, len);
  if (int settled = SettleFresh(fd, addr, len, /*bind=*/false)) return settled < 0 ? -1 : libc::connect(fd, addr, len);
  int r;
  {
    InDpmScope in_dpm;
    r = dpm_connect(fd, addr, len);
  }
  const uint8_t kind = KindOf(fd);
  if ((kind & kIdleTcp) != 0 && (r == 0 || errno == EINPROGRESS)) SetKind(fd, kind & ~kIdleTcp);
  return r;
}

int getsockname(int fd, sockaddr* addr, socklen_t* len) {
  if (!Ours(fd)) return libc::getsockname(fd, addr, len);
  InDpmScope in_dpm;
  return dpm_getsockname(fd, addr, len);
}

int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  if (!Ours(fd)) return libc::getpeername(fd, addr, len);
  InDpmScope in_dpm;
  return dpm_getpeername(fd, addr, len);
}

int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  if (Movable(fd)) {
    const int r = libc::setsockopt(fd, level, name, value, len);
    if (r == 0) KeepOption(fd, level, name, value, len);
    return r;
  }
  if (!Ours(fd)) return libc::setsockopt(fd, level, name, value, len);
  int r;
  {
    InDpmScope in_dpm;
    r = dpm_setsockopt(fd, level, name, value, len);
  }
  if (r == 0 && (KindOf(fd) & kFresh) != 0) KeepOption(fd, level, name, value, len);
  return r;
}

int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  if (!Ours(fd)) return libc::getsockopt(fd, level, name, value, len);
  InDpmScope in_dpm;
  return dpm_getsockopt(fd, level, name, value, len);
}

int shutdown(int fd, int how) {
  if (!Ours(fd)) return libc::shutdown(fd, how);
  InDpmScope in_dpm;
  return dpm_shutdown(fd, how);
}

int close(int fd) {
  if (!InDpm()) Forget(fd);
  return libc::close(fd);
}

int close_range(unsigned first, unsigned last, int flags) {
  if (!InDpm() && (flags & CLOSE_RANGE_CLOEXEC) == 0) {
    const unsigned end = last < static_cast<unsigned>(kMaxTracked) ? last : static_cast<unsigned>(kMaxTracked) - 1;
    for (unsigned fd = first; fd <= end && fd >= first; ++fd) Forget(static_cast<int>(fd));
  }
  return libc::close_range(first, last, flags);
}

int dup(int fd) {
  const int r = libc::dup(fd);
  if (r >= 0 && Ours(fd)) Duplicated(fd, r);
  if (r >= 0 && Movable(fd)) Unmark(fd);
  return r;
}

// dup2/dup3: only a call that succeeded replaced what `to` named (a failed one left it).
int dup3(int fd, int to, int flags) {
  if (InDpm()) return libc::dup3(fd, to, flags);
  const int r = libc::dup3(fd, to, flags);
  if (r >= 0) Replaced(fd, r);
  return r;
}

int dup2(int fd, int to) {
  if (InDpm() || fd == to) return libc::dup2(fd, to);
  const int r = libc::dup2(fd, to);
  if (r >= 0) Replaced(fd, r);
  return r;
}

int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  const int r = libc::epoll_ctl(epfd, op, fd, event);
  if (r == 0 && !InDpm() && (KindOf(fd) & (kFresh | kTunnel)) != 0) KeepEpoll(epfd, op, fd, event);
  return r;
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return DupCommand(fd, cmd, arg, &libc::fcntl);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return DupCommand(fd, cmd, arg, &libc::fcntl64);
}

}  // extern "C"
