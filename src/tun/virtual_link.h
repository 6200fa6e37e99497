// A point-to-point datagram link over UNIX datagram sockets: each instance binds its own
// path and sends each packet as one datagram to the peer's path. Needs no privileges, so two
// dpmd instances can be joined in tests without root.
#ifndef DPM_TUN_VIRTUAL_LINK_H_
#define DPM_TUN_VIRTUAL_LINK_H_

#include <memory>
#include <string>

#include "tun/link.h"

namespace dpm::tun {

class VirtualLink : public Link {
 public:
  /// Binds `local_path` (a stale socket file left by a dead process is replaced) and sends to
  /// `peer_path`, which need not exist yet (packets sent before the peer binds are dropped
  /// and counted). Errors: AlreadyExists ("address in use": a live process is bound there),
  /// InvalidArgument (path too long, MTU out of range), Internal.
  static absl::StatusOr<std::unique_ptr<VirtualLink>> Open(const std::string& local_path,
                                                           const std::string& peer_path,
                                                           size_t mtu);
  ~VirtualLink() override;

  int fd() const override { return fd_; }
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> packet) override;
  absl::Status Write(absl::Span<const iovec> parts) override;
  size_t mtu() const override { return mtu_; }
  std::string name() const override { return "virtual:" + local_path_; }

 private:
  VirtualLink(int fd, std::string local, std::string peer, size_t mtu);
  int fd_;
  std::string local_path_, peer_path_;
  size_t mtu_;
};

}  // namespace dpm::tun

#endif  // DPM_TUN_VIRTUAL_LINK_H_
