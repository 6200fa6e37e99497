#include "tun/virtual_link.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpm::tun {
namespace {

bool MakeAddress(const std::string& path, sockaddr_un* out) {
  *out = sockaddr_un{};
  out->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(out->sun_path)) return false;
  std::memcpy(out->sun_path, path.c_str(), path.size());
  return true;
}

// A path is in use unless a datagram connect there is refused (a socket file nobody holds)
// or finds nothing. EPROTOTYPE means a live stream or seqpacket socket (e.g. an API socket).
bool InUse(const sockaddr_un& addr) {
  int probe = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  bool used = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
              (errno != ECONNREFUSED && errno != ENOENT);
  ::close(probe);
  return used;
}

}  // namespace

VirtualLink::VirtualLink(int fd, std::string local, std::string peer, size_t mtu)
    : fd_(fd), local_path_(std::move(local)), peer_path_(std::move(peer)), mtu_(mtu) {}

absl::StatusOr<std::unique_ptr<VirtualLink>> VirtualLink::Open(const std::string& local_path,
                                                               const std::string& peer_path,
                                                               size_t mtu) {
  sockaddr_un local, peer;
  if (!MakeAddress(local_path, &local) || !MakeAddress(peer_path, &peer)) {
    return absl::InvalidArgumentError("virtual link paths must be 1..107 bytes");
  }
  if (mtu < 68 || mtu > 65535) return absl::InvalidArgumentError(absl::StrCat("MTU ", mtu, " is outside 68..65535"));
  struct stat st {};
  if (::lstat(local_path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("virtual link path ", local_path, " exists and is not a socket"));
  }
  if (InUse(local)) {
    return absl::AlreadyExistsError(absl::StrCat("virtual link address ", local_path, " in use by another process"));
  }
  ::unlink(local_path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) < 0) {
    int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("bind ", local_path, ": ", std::strerror(err)));
  }
  // Room for a few hundred full-size packets each way, so bursts are not dropped.
  int buf = 8 * 1024 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  // Not connect()ed: the peer may start later or restart, and each write names it.
  return std::unique_ptr<VirtualLink>(new VirtualLink(fd, local_path, peer_path, mtu));
}

VirtualLink::~VirtualLink() {
  ::close(fd_);
  ::unlink(local_path_.c_str());
}

absl::StatusOr<size_t> VirtualLink::Read(absl::Span<uint8_t> packet) {
  iovec v{packet.data(), packet.size()};
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  ssize_t n = ::recvmsg(fd_, &m, MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return absl::UnavailableError("empty");
    return absl::InternalError(absl::StrCat("read ", local_path_, ": ", std::strerror(errno)));
  }
  counters_.rx_packets++;
  counters_.rx_bytes += static_cast<size_t>(n);
  return static_cast<size_t>(n);
}

absl::Status VirtualLink::Write(absl::Span<const iovec> parts) {
  size_t total = TotalLength(parts);
  if (total > mtu_) {
    counters_.tx_dropped++;
    return absl::InvalidArgumentError(absl::StrCat("packet of ", total, " bytes over MTU ", mtu_));
  }
  sockaddr_un peer;
  MakeAddress(peer_path_, &peer);
  msghdr m{};
  m.msg_name = &peer;
  m.msg_namelen = sizeof(peer);
  m.msg_iov = const_cast<iovec*>(parts.data());
  m.msg_iovlen = parts.size();
  ssize_t n = ::sendmsg(fd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    counters_.tx_dropped++;
    if (errno == EAGAIN || errno == ENOBUFS) return absl::UnavailableError("virtual link queue full");
    if (errno == ENOENT || errno == ECONNREFUSED) return absl::FailedPreconditionError("virtual link peer absent");
    return absl::InternalError(absl::StrCat("send ", peer_path_, ": ", std::strerror(errno)));
  }
  counters_.tx_packets++;
  counters_.tx_bytes += total;
  return absl::OkStatus();
}

}  // namespace dpm::tun
