// Linux TUN device link (IFF_TUN | IFF_NO_PI: each read/write is one IP packet), or TAP
// (IFF_TAP | IFF_NO_PI: each read/write is one Ethernet II frame, src/tun/README.md "TAP").
#ifndef DPM_TUN_TUN_LINK_H_
#define DPM_TUN_TUN_LINK_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tun/link.h"

namespace dpm::tun {

/// kTun: an L3 device, IP packets. kTap: an Ethernet device, frames (the stack then runs ARP).
enum class TunMode { kTun, kTap };

struct TunOptions {
  TunMode mode = TunMode::kTun;
  std::string name = "dpm0";  // interface name, at most 15 characters
  size_t mtu = 1500;          // bytes, the IP MTU; set on the device
  bool create = true;         // false: the device must exist already (attach only)
  /// Optional address (host byte order) and prefix length to give the kernel's side of the
  /// device, e.g. 10.77.1.1/24, so the host can route to the stack.
  std::optional<uint32_t> host_address;
  int host_prefix = 24;
  /// Checksum and TCP segmentation offload (src/tun/README.md "Offload"): IFF_VNET_HDR with
  /// TUN_F_CSUM | TUN_F_TSO4, so the kernel hands over and takes TCP/IPv4 super-packets of up
  /// to 64 KiB with partial checksums. Only for readers that use ReadOffloaded. TUN mode only.
  bool offload = false;
};

/// OK when `name` is an interface name the kernel takes as it is (1..15 printable ASCII
/// characters, none of them white space, '/', ':' or '%', and not "." or ".."; the rules of
/// the kernel's dev_valid_name, as iproute2 checks them). Errors: InvalidArgument saying why.
absl::Status ValidateInterfaceName(std::string_view name);

class TunLink : public Link {
 public:
  /// Opens (creating it if needed and allowed) the device, sets its MTU and brings it up.
  /// Errors: NotFound ("tun device X does not exist", attach mode), PermissionDenied (not
  /// root / no CAP_NET_ADMIN), AlreadyExists ("tun device X is busy": another process holds
  /// it), InvalidArgument (name too long, MTU out of 68..65535, offload with TAP, an existing
  /// device of the other kind), Internal (other syscalls).
  static absl::StatusOr<std::unique_ptr<TunLink>> Open(const TunOptions& options);
  ~TunLink() override;

  int fd() const override { return fd_; }
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> packet) override;
  absl::Status Write(absl::Span<const iovec> parts) override;
  size_t mtu() const override { return mtu_; }
  std::string name() const override { return (tap_ ? "tap:" : "tun:") + ifname_; }
  bool ethernet() const override { return tap_; }
  /// With offload, Read() completes a partial checksum in software and returns a
  /// super-packet whole (a valid, larger-than-MTU TCP segment); Write() sends no offload.
  bool offload() const override { return offload_; }
  absl::StatusOr<size_t> ReadOffloaded(absl::Span<uint8_t> packet, wire::Offload* offload) override;
  absl::Status WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload) override;

 private:
  TunLink(int fd, std::string ifname, size_t mtu, bool offload, bool tap)
      : fd_(fd), ifname_(std::move(ifname)), mtu_(mtu), offload_(offload), tap_(tap) {}
  // Every write: with offload, the virtio-net header first.
  absl::Status WriteWithHeader(absl::Span<const iovec> parts, const wire::Offload& offload);
  int fd_;
  std::string ifname_;
  size_t mtu_;
  bool offload_;
  bool tap_;
};

}  // namespace dpm::tun

#endif  // DPM_TUN_TUN_LINK_H_
