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
#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dpm::tun {
namespace {

constexpr size_t kMaxParts = 128;  // iovecs per write, the virtio-net header included

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

absl::Status ValidateInterfaceName(std::string_view name) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", absl::CHexEscape(absl::string_view(name.data(), name.size())), "' ", why));
  };
  if (name.empty() || name.size() >= IFNAMSIZ) return bad(absl::StrCat("must be 1..", IFNAMSIZ - 1, " characters"));
  if (name == "." || name == "..") return bad("is not an interface name");
  for (const char c : name) {
    // The kernel's dev_valid_name refuses '/', ':' and white space; '%' would be taken as a
    // name template ("dpm%d"); anything outside printable ASCII would be unreadable in `ip
    // link` and logs.
    if (c == '/' || c == ':' || c == '%' || c <= ' ' || c > '~') {
      return bad("may hold only printable ASCII without white space, '/', ':' or '%'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TunLink>> TunLink::Open(const TunOptions& o) {
  const bool tap = o.mode == TunMode::kTap;
  const char* kind = tap ? "tap" : "tun";
  if (tap && o.offload) {
    // The virtio-net offload path (wire/offload.h) parses IP packets, not frames.
    return absl::InvalidArgumentError("offload is for TUN devices only: a TAP link has no offload");
  }
  if (absl::Status valid = ValidateInterfaceName(o.name); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad ", kind, " device name: ", valid.message()));
  }
  if (o.mtu < 68 || o.mtu > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MTU ", o.mtu, " is outside 68..65535"));
  }
  if (!o.create && ::if_nametoindex(o.name.c_str()) == 0) {
    return absl::NotFoundError(absl::StrCat(kind, " device ", o.name, " does not exist"));
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError("/dev/net/tun does not exist (no TUN support)");
    return Errno("open /dev/net/tun", errno);
  }
  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>((tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (o.offload ? IFF_VNET_HDR : 0));
  std::memcpy(ifr.ifr_name, o.name.c_str(), o.name.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    ::close(fd);
    if (err == EBUSY) return absl::AlreadyExistsError(absl::StrCat(kind, " device ", o.name, " is busy (held by another process)"));
    if (err == EINVAL && ::if_nametoindex(o.name.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(o.name, " exists and is not a ", tap ? "TAP" : "TUN", " device"));
    }
    return Errno(absl::StrCat("attach ", kind, " device ", o.name), err);
  }
  std::string ifname(ifr.ifr_name);
  if (o.offload) {
    // The header little-endian whatever the host (wire/offload.h parses it so); the kernel
    // may then hand us, and take, partial checksums and TCPv4 super-packets — nothing else.
    int header_size = static_cast<int>(wire::kVirtioNetHeaderSize);
    unsigned int little_endian = 1;
    if (::ioctl(fd, TUNSETVNETHDRSZ, &header_size) < 0 || ::ioctl(fd, TUNSETVNETLE, &little_endian) < 0 ||
        ::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) {
      int err = errno;
      ::close(fd);
      return Errno(absl::StrCat("enable offload on ", ifname, " (try without offload)"), err);
    }
  }
  if (absl::Status s = Configure(ifname, o); !s.ok()) {
    ::close(fd);
    return s;
  }
  return std::unique_ptr<TunLink>(new TunLink(fd, ifname, o.mtu, o.offload, tap));
}

TunLink::~TunLink() { ::close(fd_); }

absl::StatusOr<size_t> TunLink::Read(absl::Span<uint8_t> packet) {
  if (offload_) {
    wire::Offload offload;
    absl::StatusOr<size_t> n = ReadOffloaded(packet, &offload);
    if (n.ok() && *n <= packet.size() && offload.partial_checksum &&
        wire::CompleteChecksum(packet.first(*n), offload)) {
      counters_.checksums_in_software++;
    }
    return n;
  }
  ssize_t n = ::read(fd_, packet.data(), packet.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return absl::UnavailableError("empty");
    return Errno("read " + ifname_, errno);
  }
  counters_.rx_packets++;
  counters_.rx_bytes += static_cast<size_t>(n);
  return static_cast<size_t>(n);
}

absl::StatusOr<size_t> TunLink::ReadOffloaded(absl::Span<uint8_t> packet, wire::Offload* offload) {
  if (!offload_) return Link::ReadOffloaded(packet, offload);
  for (;;) {
    uint8_t header[wire::kVirtioNetHeaderSize];
    iovec parts[2] = {{header, sizeof(header)}, {packet.data(), packet.size()}};
    ssize_t n = ::readv(fd_, parts, 2);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return absl::UnavailableError("empty");
      return Errno("read " + ifname_, errno);
    }
    std::optional<wire::Offload> parsed =
        wire::ParseVirtioNetHeader(absl::MakeConstSpan(header, std::min(sizeof(header), static_cast<size_t>(n))));
    if (!parsed) {
      counters_.rx_offload_dropped++;
      continue;
    }
    *offload = *parsed;
    const size_t length = static_cast<size_t>(n) - sizeof(header);
    counters_.rx_packets++;
    counters_.rx_bytes += length;
    if (offload->tcp_segmentation) counters_.rx_segmentation++;
    return length;
  }
}

absl::Status TunLink::WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload) {
  if (!offload_) return Link::WriteOffloaded(parts, offload);  // finished in software
  return WriteWithHeader(parts, offload);
}

absl::Status TunLink::WriteWithHeader(absl::Span<const iovec> parts, const wire::Offload& offload) {
  const size_t total = TotalLength(parts);
  // A super-packet may exceed the MTU; its segments may not.
  const size_t largest = offload.tcp_segmentation ? size_t{offload.header_length} + offload.segment_size : total;
  if (largest > mtu_ + link_header_length() || total > wire::kMaxOffloadedPacket || parts.size() >= kMaxParts) {
    counters_.tx_dropped++;
    return absl::InvalidArgumentError(
        absl::StrCat(tap_ ? "frame" : "packet", " of ", largest, " bytes over MTU ", mtu_));
  }
  uint8_t header[wire::kVirtioNetHeaderSize];
  iovec all[kMaxParts];
  size_t count = 0;
  if (offload_) {  // every packet has the header then, "none" included
    wire::SerializeVirtioNetHeader(offload, header);
    all[count++] = {header, sizeof(header)};
  }
  std::copy(parts.begin(), parts.end(), all + count);
  count += parts.size();
  ssize_t n = ::writev(fd_, all, static_cast<int>(count));
  if (n < 0) {
    counters_.tx_dropped++;
    if (errno == EAGAIN || errno == ENOBUFS) return absl::UnavailableError("tun queue full");
    return Errno("write " + ifname_, errno);
  }
  counters_.tx_packets++;
  counters_.tx_bytes += total;
  if (offload.tcp_segmentation) counters_.tx_segmentation++;
  return absl::OkStatus();
}

absl::Status TunLink::Write(absl::Span<const iovec> parts) { return WriteWithHeader(parts, wire::Offload{}); }

}  // namespace dpm::tun
