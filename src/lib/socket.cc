// libdpm: the program side of the modified socket API (include/dpm/socket.h, docs/api.md).
#include "dpm/socket.h"
#include "lib/internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "os/fd_passing.h"

namespace {

using dpm::api::Endpoint;
using dpm::api::Opcode;
using dpm::api::SocketRef;

// ---- where the daemon is ----
std::mutex g_path_mu;
// Empty: DPM_SOCKET or the default. Made on first use, so a call from another library's
// constructor (the preload hook's) never meets it unconstructed.
std::string& SetPath() {
  static auto* path = new std::string();
  return *path;
}
std::atomic<uint64_t> g_path_generation{0};  // bumped by dpm_set_daemon_path()

std::string DaemonPath() {
  std::lock_guard<std::mutex> lock(g_path_mu);
  if (!SetPath().empty()) return SetPath();
  const char* env = std::getenv("DPM_SOCKET");
  return env != nullptr && *env != '\0' ? env : DPM_DEFAULT_DAEMON_PATH;
}

// ---- one control connection per thread (reentrant without locks) ----
struct Control {
  int fd = -1;
  pid_t pid = 0;
  uint64_t generation = 0;  // of the daemon path it was opened for
  // So a number the program closed and reused is never taken for it, nor closed here.
  dev_t dev = 0;
  ino_t ino = 0;
  ~Control();
};

// True while `c`'s number still names the control connection it opened.
bool StillControl(const Control& c) {
  struct stat st {};
  return c.fd >= 0 && ::fstat(c.fd, &st) == 0 && st.st_ino == c.ino && st.st_dev == c.dev;
}

// Closes the control connection `c` names if the number still names it.
void CloseControl(Control& c) {
  if (StillControl(c)) ::close(c.fd);
  c.fd = -1;
}

Control::~Control() {
  if (pid == ::getpid()) CloseControl(*this);
}
thread_local Control t_control;

int ConnectControl() {
  uint64_t generation = g_path_generation.load(std::memory_order_acquire);
  if (t_control.fd >= 0 && t_control.pid == ::getpid() && t_control.generation == generation && StillControl(t_control)) {
    return t_control.fd;
  }
  // Inherited across fork (the parent's), or opened for a daemon path since replaced.
  CloseControl(t_control);
  absl::StatusOr<dpm::api::UnixAddress> where = dpm::api::ParseUnixAddress(DaemonPath());
  if (!where.ok()) {
    errno = ENETDOWN;
    return -1;
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, where->sockaddr_ptr(), where->length) != 0) {
    // A socket file this user may not open says so (a program that changed its user, such as
    // nginx's workers, needs `dpmd client --api-group`); anything else: no daemon there.
    const int e = errno == EACCES || errno == EPERM ? EACCES : ENETDOWN;
    ::close(fd);
    errno = e;
    return -1;
  }
  struct stat st {};
  ::fstat(fd, &st);
  t_control.fd = fd;
  t_control.dev = st.st_dev;
  t_control.ino = st.st_ino;
  t_control.pid = ::getpid();
  t_control.generation = generation;
  return fd;
}

void DropControl() { CloseControl(t_control); }

// Sends one request and waits for its reply. Returns the reply's errno (0 on success) or
// ENETDOWN when the daemon cannot be reached. *received_fd gets a descriptor passed back.
// `pass_fd` (>= 0) goes with the request in SCM_RIGHTS (a non-blocking connect's own descriptor).
int Transact(const dpm::api::Request& request, dpm::api::Reply* reply, int* received_fd = nullptr,
             int pass_fd = -1) {
  std::vector<uint8_t> bytes = dpm::api::EncodeRequest(request);
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ConnectControl();
    if (fd < 0) return errno;
    iovec v{bytes.data(), bytes.size()};
    ssize_t sent = dpm::os::SendWithFd(fd, &v, 1, pass_fd);
    if (sent < 0) {
      DropControl();  // the daemon restarted: reconnect once
      continue;
    }
    uint8_t buf[dpm::api::kMaxMessage];
    int passed = -1;
    ssize_t n = dpm::os::RecvWithFd(fd, buf, sizeof(buf), 0, &passed);
    if (n <= 0) {
      if (passed >= 0) ::close(passed);
      DropControl();
      return ENETDOWN;
    }
    absl::StatusOr<dpm::api::Reply> parsed = dpm::api::ParseReply(absl::MakeConstSpan(buf, static_cast<size_t>(n)));
    if (!parsed.ok()) {
      if (passed >= 0) ::close(passed);
      DropControl();
      return EPROTO;
    }
    *reply = std::move(*parsed);
    if (received_fd != nullptr) {
      *received_fd = passed;
    } else if (passed >= 0) {
      ::close(passed);
    }
    return reply->error;
  }
  return ENETDOWN;
}

// ---- which descriptors are dpm sockets ----
struct Entry {
  SocketRef ref;
  dev_t dev = 0;
  ino_t ino = 0;
  bool tcp = true;
  bool listening = false;
  bool connected = false;
};

std::mutex g_table_mu;
absl::flat_hash_map<int, Entry>& Table() {
  static auto* table = new absl::flat_hash_map<int, Entry>();
  return *table;
}

// fork() while another thread holds the table's lock would leave the child's copy locked
// for good: hold it across the fork, so both sides start with it free.
[[maybe_unused]] const int g_atfork = [] {
  return pthread_atfork([] { g_table_mu.lock(); }, [] { g_table_mu.unlock(); }, [] { g_table_mu.unlock(); });
}();

void Register(int fd, const SocketRef& ref, bool tcp) {
  struct stat st {};
  ::fstat(fd, &st);
  std::lock_guard<std::mutex> lock(g_table_mu);
  Table()[fd] = Entry{ref, st.st_dev, st.st_ino, tcp, false, false};
}

// Finds the dpm socket behind fd. A descriptor closed with close(2) and reused for something
// else is recognised by its inode. Sets errno (EBADF, ENOTSOCK) and returns false otherwise.
bool Lookup(int fd, Entry* out) {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    errno = EBADF;
    return false;
  }
  std::lock_guard<std::mutex> lock(g_table_mu);
  auto it = Table().find(fd);
  if (it == Table().end() || it->second.ino != st.st_ino || it->second.dev != st.st_dev) {
    errno = ENOTSOCK;
    return false;
  }
  *out = it->second;
  return true;
}

void Update(int fd, void (*change)(Entry&)) {
  std::lock_guard<std::mutex> lock(g_table_mu);
  auto it = Table().find(fd);
  if (it != Table().end()) change(it->second);
}

int Fail(int err) {
  errno = err;
  return -1;
}

// Options of the program's own descriptor (buffer sizes, timeouts): they act on the socket
// pair, which is where the program's reads and writes wait.
bool LocalOption(int level, int name) {
  return level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF || name == SO_RCVTIMEO ||
                                 name == SO_SNDTIMEO || name == SO_RCVLOWAT);
}

int ToEndpoint(const sockaddr* sa, socklen_t len, Endpoint* e) {
  if (sa != nullptr && len >= static_cast<socklen_t>(sizeof(sa_family_t)) && sa->sa_family == AF_UNSPEC) {
    *e = Endpoint{};
    return 0;
  }
  return Endpoint::FromSockaddr(sa, len, e);
}

int NameCall(int fd, bool peer, sockaddr* addr, socklen_t* len) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  if (addr == nullptr || len == nullptr) return Fail(EFAULT);
  dpm::api::Reply reply;
  if (int e = Transact(dpm::api::NameRequest{entry.ref, peer}, &reply)) return Fail(e);
  absl::StatusOr<Endpoint> endpoint = dpm::api::ParseEndpoint(reply.body);
  if (!endpoint.ok()) return Fail(EPROTO);
  endpoint->ToSockaddr(addr, len);
  return 0;
}

}  // namespace

extern "C" {

void dpm_set_daemon_path(const char* path) {
  std::lock_guard<std::mutex> lock(g_path_mu);
  SetPath() = path != nullptr ? path : "";
  g_path_generation.fetch_add(1, std::memory_order_acq_rel);
}

size_t dpm_daemon_path(char* buf, size_t size) {
  const std::string path = DaemonPath();
  if (buf != nullptr && size > 0) {
    const size_t n = std::min(path.size(), size - 1);
    std::memcpy(buf, path.data(), n);
    buf[n] = '\0';
  }
  return path.size();
}

int dpm_socket(int domain, int type, int protocol, int tuple) {
  dpm::api::Reply reply;
  int fd = -1;
  if (int e = Transact(dpm::api::SocketRequest{domain, type, protocol, tuple}, &reply, &fd)) {
    if (fd >= 0) ::close(fd);
    return Fail(e);
  }
  absl::StatusOr<SocketRef> ref = dpm::api::ParseSocketRef(reply.body);
  if (!ref.ok() || fd < 0) {
    if (fd >= 0) ::close(fd);
    return Fail(EPROTO);
  }
  if ((type & SOCK_CLOEXEC) == 0) ::fcntl(fd, F_SETFD, 0);  // passed descriptors arrive close-on-exec
  Register(fd, *ref, (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM);
  return fd;
}

int dpm_bind(int fd, const sockaddr* addr, socklen_t addrlen) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  Endpoint local;
  if (int e = Endpoint::FromSockaddr(addr, addrlen, &local)) return Fail(e);
  dpm::api::Reply reply;
  if (int e = Transact(dpm::api::BindRequest{entry.ref, local}, &reply)) return Fail(e);
  return 0;
}

int dpm_listen(int fd, int backlog) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  dpm::api::Reply reply;
  if (int e = Transact(dpm::api::ListenRequest{entry.ref, backlog}, &reply)) return Fail(e);
  Update(fd, [](Entry& e) { e.listening = true; });
  return 0;
}

int dpm_accept(int fd, sockaddr* addr, socklen_t* addrlen) { return dpm::lib::Accept(fd, addr, addrlen, 0); }

int dpm_connect(int fd, const sockaddr* addr, socklen_t addrlen) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  Endpoint remote;
  if (int e = ToEndpoint(addr, addrlen, &remote)) return Fail(e);
  if (entry.tcp && remote.family == AF_UNSPEC) return Fail(EAFNOSUPPORT);
  dpm::api::ConnectRequest request{entry.ref, remote};
  // Non-blocking (docs/api.md "Non-blocking connect"): the daemon answers EINPROGRESS at once
  // and closes the descriptor's way out until the handshake ends; it needs the descriptor for
  // that, so it goes along.
  const int status_flags = ::fcntl(fd, F_GETFL);
  const bool nonblocking = entry.tcp && status_flags >= 0 && (status_flags & O_NONBLOCK) != 0;
  if (nonblocking) request.flags |= dpm::api::ConnectRequest::kConnectNonBlocking;
  dpm::api::Reply reply;
  if (int e = Transact(request, &reply, nullptr, nonblocking ? fd : -1)) {
    if (e == EINPROGRESS) Update(fd, [](Entry& x) { x.connected = true; });
    return Fail(e);
  }
  if (remote.family == AF_UNSPEC) {
    Update(fd, [](Entry& e) { e.connected = false; });
  } else {
    Update(fd, [](Entry& e) { e.connected = true; });
  }
  return 0;
}

int dpm_getsockname(int fd, sockaddr* addr, socklen_t* addrlen) { return NameCall(fd, false, addr, addrlen); }

int dpm_getpeername(int fd, sockaddr* addr, socklen_t* addrlen) { return NameCall(fd, true, addr, addrlen); }

int dpm_shutdown(int fd, int how) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  dpm::api::Reply reply;
  if (int e = Transact(dpm::api::ShutdownRequest{entry.ref, how}, &reply)) return Fail(e);
  // Shutting down this end keeps the order: the daemon sees end-of-file after the data.
  return ::shutdown(fd, how);
}

int dpm_vpm_configure(const char* json, size_t length, char* why, size_t why_size) {
  if (why != nullptr && why_size > 0) why[0] = '\0';
  if (json == nullptr && length > 0) return Fail(EFAULT);
  if (length > dpm::api::kMaxVpmConfig) return Fail(EMSGSIZE);
  dpm::api::Reply reply;
  const int e = Transact(dpm::api::VpmConfigureRequest{std::string(json == nullptr ? "" : json, length)}, &reply);
  if (e == 0) return 0;
  if (why != nullptr && why_size > 0) {
    const size_t n = std::min(reply.body.size(), why_size - 1);
    std::memcpy(why, reply.body.data(), n);
    why[n] = '\0';
  }
  return Fail(e);
}

int dpm_close(int fd) {
  {
    std::lock_guard<std::mutex> lock(g_table_mu);
    Table().erase(fd);
  }
  return ::close(fd);
}

int dpm_setsockopt(int fd, int level, int optname, const void* optval, socklen_t optlen) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  if (LocalOption(level, optname)) return ::setsockopt(fd, level, optname, optval, optlen);
  if (optval == nullptr && optlen > 0) return Fail(EFAULT);
  if (optlen > dpm::api::kMaxOptionValue) return Fail(EINVAL);
  dpm::api::SetSockOptRequest request{entry.ref, level, optname, {}};
  const auto* p = static_cast<const uint8_t*>(optval);
  request.value.assign(p, p + optlen);
  dpm::api::Reply reply;
  if (int e = Transact(request, &reply)) return Fail(e);
  return 0;
}

int dpm_getsockopt(int fd, int level, int optname, void* optval, socklen_t* optlen) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  if (optval == nullptr || optlen == nullptr) return Fail(EFAULT);
  if (static_cast<int>(*optlen) < 0) return Fail(EINVAL);  // as the kernel reads a socklen_t
  if (LocalOption(level, optname)) return ::getsockopt(fd, level, optname, optval, optlen);
  dpm::api::Reply reply;
  if (int e = Transact(dpm::api::GetSockOptRequest{entry.ref, level, optname}, &reply)) return Fail(e);
  if (reply.body.empty() || reply.body.size() > dpm::api::kMaxOptionReply) return Fail(EPROTO);
  socklen_t n = std::min<socklen_t>(*optlen, static_cast<socklen_t>(reply.body.size()));
  std::memcpy(optval, reply.body.data(), n);
  *optlen = n;
  return 0;
}

ssize_t dpm_sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* dest, socklen_t destlen) {
  iovec part{const_cast<void*>(buf), len};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(dest);
  m.msg_namelen = dest != nullptr ? destlen : 0;
  m.msg_iov = &part;
  m.msg_iovlen = 1;
  return dpm::lib::SendMessage(fd, &m, flags);
}

ssize_t dpm_recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* src, socklen_t* srclen) {
  iovec part{buf, len};
  msghdr m{};
  m.msg_name = src;
  m.msg_namelen = src != nullptr && srclen != nullptr ? *srclen : 0;
  m.msg_iov = &part;
  m.msg_iovlen = 1;
  ssize_t n = dpm::lib::ReceiveMessage(fd, &m, flags);
  if (n >= 0 && src != nullptr && srclen != nullptr) *srclen = m.msg_namelen;
  return n;
}

ssize_t dpm_send(int fd, const void* buf, size_t len, int flags) {
  return dpm_sendto(fd, buf, len, flags, nullptr, 0);
}

ssize_t dpm_recv(int fd, void* buf, size_t len, int flags) {
  return dpm_recvfrom(fd, buf, len, flags, nullptr, nullptr);
}

}  // extern "C"

namespace dpm::lib {

bool IsDpmSocket(int fd, bool* tcp) {
  const int saved = errno;
  Entry entry;
  const bool found = Lookup(fd, &entry);
  errno = saved;
  if (found && tcp != nullptr) *tcp = entry.tcp;
  return found;
}

void CopyEntry(int from, int to) {
  std::lock_guard<std::mutex> lock(g_table_mu);
  auto it = Table().find(from);
  if (it == Table().end()) return;
  Entry copy = it->second;
  Table()[to] = copy;
}

ssize_t SendMessage(int fd, const msghdr* message, int flags) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  const auto* dest = static_cast<const sockaddr*>(message->msg_name);
  if (entry.tcp) {
    if (dest != nullptr && !entry.connected) return Fail(ENOTCONN);
    msghdr bytes_only = *message;  // a connected TCP socket ignores the address, as Linux's does
    bytes_only.msg_name = nullptr;
    bytes_only.msg_namelen = 0;
    return ::sendmsg(fd, &bytes_only, flags);
  }
  Endpoint to;
  if (dest != nullptr) {
    if (int e = Endpoint::FromSockaddr(dest, message->msg_namelen, &to)) return Fail(e);
    if (to.family != AF_INET) return Fail(EAFNOSUPPORT);
  } else if (!entry.connected) {
    return Fail(EDESTADDRREQ);
  }
  size_t len = 0;
  for (size_t i = 0; i < message->msg_iovlen; ++i) len += message->msg_iov[i].iov_len;
  if (len > 65507) return Fail(EMSGSIZE);
  if (message->msg_iovlen > 1023) return Fail(EMSGSIZE);  // IOV_MAX, counting the header's
  std::vector<uint8_t> header = dpm::api::EncodeEndpoint(to);
  iovec parts[1024];
  parts[0] = {header.data(), header.size()};
  for (size_t i = 0; i < message->msg_iovlen; ++i) parts[i + 1] = message->msg_iov[i];
  msghdr m{};
  m.msg_iov = parts;
  m.msg_iovlen = message->msg_iovlen + 1;
  ssize_t n = ::sendmsg(fd, &m, flags | MSG_NOSIGNAL);
  if (n < 0) return -1;
  return static_cast<ssize_t>(len);
}

ssize_t ReceiveMessage(int fd, msghdr* message, int flags) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  // No error queue: the pair would hand over the next data instead (IP_RECVERR is only kept).
  if ((flags & MSG_ERRQUEUE) != 0) return Fail(EAGAIN);
  if (entry.tcp) {
    message->msg_namelen = 0;
    message->msg_controllen = 0;
    return ::recvmsg(fd, message, flags & ~MSG_CMSG_CLOEXEC);
  }
  if (message->msg_iovlen > 1023) return Fail(EMSGSIZE);
  uint8_t header[dpm::api::kDatagramHeaderSize];
  iovec parts[1024];
  parts[0] = {header, sizeof(header)};
  for (size_t i = 0; i < message->msg_iovlen; ++i) parts[i + 1] = message->msg_iov[i];
  msghdr m{};
  m.msg_iov = parts;
  m.msg_iovlen = message->msg_iovlen + 1;
  ssize_t n = ::recvmsg(fd, &m, flags & ~MSG_CMSG_CLOEXEC);
  message->msg_flags = m.msg_flags & (MSG_TRUNC | MSG_EOR);
  message->msg_controllen = 0;  // no control messages: options that ask for them are refused
  if (n <= 0) {
    message->msg_namelen = 0;
    return n;
  }
  if (static_cast<size_t>(n) < sizeof(header)) return Fail(EPROTO);
  absl::StatusOr<Endpoint> from = dpm::api::ParseEndpoint(absl::MakeConstSpan(header, sizeof(header)));
  if (from.ok() && message->msg_name != nullptr) {
    socklen_t len = message->msg_namelen;
    from->ToSockaddr(static_cast<sockaddr*>(message->msg_name), &len);
    message->msg_namelen = len;
  } else {
    message->msg_namelen = 0;
  }
  return n - static_cast<ssize_t>(sizeof(header));
}

int Accept(int fd, sockaddr* addr, socklen_t* addrlen, int flags) {
  Entry entry;
  if (!Lookup(fd, &entry)) return -1;
  if (!entry.tcp) return Fail(EOPNOTSUPP);
  if (!entry.listening) return Fail(EINVAL);
  if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return Fail(EINVAL);
  uint8_t buf[dpm::api::AcceptRecord::kWireSize];
  int conn = -1;
  // A signal that does not restart calls interrupts the wait, as it does accept(2)'s.
  ssize_t n = dpm::os::RecvWithFd(fd, buf, sizeof(buf), MSG_WAITALL, &conn, /*retry_interrupted=*/false);
  if (n < 0) return -1;  // EAGAIN for a non-blocking listener, EINTR
  absl::StatusOr<dpm::api::AcceptRecord> record =
      dpm::api::ParseAcceptRecord(absl::MakeConstSpan(buf, static_cast<size_t>(n)));
  if (n == 0) return Fail(ECONNABORTED);  // the daemon closed the listener
  if (!record.ok() || conn < 0) {
    if (conn >= 0) ::close(conn);
    return Fail(EPROTO);
  }
  // It arrived close-on-exec (no fork+exec elsewhere can take it meanwhile); accept(2) gives
  // it without, unless SOCK_CLOEXEC asked otherwise.
  if ((flags & SOCK_CLOEXEC) == 0) ::fcntl(conn, F_SETFD, 0);
  if ((flags & SOCK_NONBLOCK) != 0) ::fcntl(conn, F_SETFL, ::fcntl(conn, F_GETFL) | O_NONBLOCK);
  Register(conn, record->ref, true);
  Update(conn, [](Entry& e) { e.connected = true; });
  if (addr != nullptr && addrlen != nullptr) record->peer.ToSockaddr(addr, addrlen);
  return conn;
}

void ForgetEntry(int fd) {
  std::lock_guard<std::mutex> lock(g_table_mu);
  Table().erase(fd);
}

int Resolve(const char* name, uint32_t* address_be) {
  const int saved = errno;
  const size_t len = std::strlen(name);
  if (len > dpm::api::kMaxResolveName) return ENOENT;  // no DNS name is that long
  dpm::api::Reply reply;
  int e = Transact(dpm::api::ResolveRequest{std::string(name, len)}, &reply);
  if (e == 0) {
    absl::StatusOr<Endpoint> endpoint = dpm::api::ParseEndpoint(reply.body);
    if (endpoint.ok() && endpoint->family == AF_INET) {
      std::memcpy(address_be, endpoint->address, 4);
    } else {
      e = EPROTO;
    }
  }
  errno = saved;
  return e;
}

}  // namespace dpm::lib
