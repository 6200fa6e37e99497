// An in-process link for tests (gVisor's link/channel): the test injects inbound packets
// and takes the packets the stack sent. fd() is an eventfd that polls readable while inbound
// packets wait.
#ifndef DPM_TUN_MEMORY_LINK_H_
#define DPM_TUN_MEMORY_LINK_H_

#include <deque>
#include <vector>

#include "tun/link.h"

namespace dpm::tun {

class MemoryLink : public Link {
 public:
  /// `ethernet`: the link carries Ethernet II frames (up to mtu + 14 bytes), as a TAP device.
  explicit MemoryLink(size_t mtu, bool ethernet = false);
  ~MemoryLink() override;

  /// Queues a packet for the stack to read.
  void InjectInbound(std::vector<uint8_t> packet);
  /// Takes the oldest packet the stack wrote, if any.
  bool TakeOutbound(std::vector<uint8_t>* packet);
  size_t outbound_size() const { return outbound_.size(); }

  int fd() const override { return event_fd_; }
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> packet) override;
  absl::Status Write(absl::Span<const iovec> parts) override;
  size_t mtu() const override { return mtu_; }
  std::string name() const override { return ethernet_ ? "memory-ethernet" : "memory"; }
  bool ethernet() const override { return ethernet_; }

 private:
  int event_fd_;
  size_t mtu_;
  bool ethernet_;
  std::deque<std::vector<uint8_t>> inbound_, outbound_;
};

}  // namespace dpm::tun

#endif  // DPM_TUN_MEMORY_LINK_H_
