#include "tun/tun_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpm::tun {
namespace {

absl::Status Errno(const std::string& what, int err) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == EPERM || err == EACCES) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

// Configures the kernel side of the device through an AF_INET control socket.
absl::Status Configure(const std::string& ifname, const TunOptions& o) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno("socket", errno);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  absl::Status status;
  ifr.ifr_mtu = static_cast<int>(o.mtu);
  if (::ioctl(s, SIOCSIFMTU, &ifr) < 0) status = Errno(absl::StrCat("set MTU ", o.mtu, " on ", ifname), errno);
  if (status.ok() && o.host_address) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(*o.host_address);
    if (::ioctl(s, SIOCSIFADDR, &ifr) < 0) status = Errno("set host address on " + ifname, errno);
    uint32_t mask = o.host_prefix == 0 ? 0 : ~uint32_t{0} << (32 - o.host_prefix);
    sin->sin_addr.s_addr = htonl(mask);
    if (status.ok() && ::ioctl(s, SIOCSIFNETMASK, &ifr) < 0) status = Errno("set netmask on " + ifname, errno);
  }
  if (status.ok()) {
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
      status = Errno("get flags of " + ifname, errno);
    } else {
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      if (::ioctl(s, SIOCSIFFLAGS, &ifr) < 0) status = Errno("bring up " + ifname, errno);
    }
  }
  ::close(s);
  return status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TunLink>> TunLink::Open(const TunOptions& o) {
  if (o.name.empty() || o.name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("tun device name '", o.name, "' must be 1..15 characters"));
  }
  if (o.mtu < 68 || o.mtu > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MTU ", o.mtu, " is outside 68..65535"));
  }
  if (!o.create && ::if_nametoindex(o.name.c_str()) == 0) {
    return absl::NotFoundError(absl::StrCat("tun device ", o.name, " does not exist"));
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError("/dev/net/tun does not exist (no TUN support)");
    return Errno("open /dev/net/tun", errno);
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, o.name.c_str(), o.name.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    ::close(fd);
    if (err == EBUSY) return absl::AlreadyExistsError(absl::StrCat("tun device ", o.name, " is busy (held by another process)"));
    if (err == EINVAL) return absl::InvalidArgumentError(absl::StrCat(o.name, " exists and is not a TUN device"));
    return Errno(absl::StrCat("attach tun device ", o.name), err);
  }
  std::string ifname(ifr.ifr_name);
  if (absl::Status s = Configure(ifname, o); !s.ok()) {
    ::close(fd);
    return s;
  }
  return std::unique_ptr<TunLink>(new TunLink(fd, ifname, o.mtu));
}

TunLink::~TunLink() { ::close(fd_); }

absl::StatusOr<size_t> TunLink::Read(absl::Span<uint8_t> packet) {
  ssize_t n = ::read(fd_, packet.data(), packet.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return absl::UnavailableError("empty");
    return Errno("read " + ifname_, errno);
  }
  counters_.rx_packets++;
  counters_.rx_bytes += static_cast<size_t>(n);
  return static_cast<size_t>(n);
}

absl::Status TunLink::Write(absl::Span<const iovec> parts) {
  size_t total = TotalLength(parts);
  if (total > mtu_) {
    counters_.tx_dropped++;
    return absl::InvalidArgumentError(absl::StrCat("packet of ", total, " bytes over MTU ", mtu_));
  }
  ssize_t n = ::writev(fd_, parts.data(), static_cast<int>(parts.size()));
  if (n < 0) {
    counters_.tx_dropped++;
    if (errno == EAGAIN || errno == ENOBUFS) return absl::UnavailableError("tun queue full");
    return Errno("write " + ifname_, errno);
  }
  counters_.tx_packets++;
  counters_.tx_bytes += total;
  return absl::OkStatus();
}

}  // namespace dpm::tun
