#include "tun/memory_link.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace dpm::tun {

MemoryLink::MemoryLink(size_t mtu, bool ethernet)
    : event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), mtu_(mtu), ethernet_(ethernet) {}

MemoryLink::~MemoryLink() { ::close(event_fd_); }

void MemoryLink::InjectInbound(std::vector<uint8_t> packet) {
  inbound_.push_back(std::move(packet));
  uint64_t one = 1;
  (void)::write(event_fd_, &one, sizeof(one));
}

bool MemoryLink::TakeOutbound(std::vector<uint8_t>* packet) {
  if (outbound_.empty()) return false;
  *packet = std::move(outbound_.front());
  outbound_.pop_front();
  return true;
}

absl::StatusOr<size_t> MemoryLink::Read(absl::Span<uint8_t> packet) {
  if (inbound_.empty()) {
    uint64_t drain;
    (void)::read(event_fd_, &drain, sizeof(drain));
    return absl::UnavailableError("empty");
  }
  std::vector<uint8_t> p = std::move(inbound_.front());
  inbound_.pop_front();
  if (!p.empty()) std::memcpy(packet.data(), p.data(), std::min(p.size(), packet.size()));
  counters_.rx_packets++;
  counters_.rx_bytes += p.size();
  return p.size();
}

absl::Status MemoryLink::Write(absl::Span<const iovec> parts) {
  std::vector<uint8_t> p;
  for (const iovec& v : parts) {
    const auto* b = static_cast<const uint8_t*>(v.iov_base);
    p.insert(p.end(), b, b + v.iov_len);
  }
  if (p.size() > mtu_ + link_header_length()) {
    counters_.tx_dropped++;
    return absl::InvalidArgumentError("over MTU");
  }
  counters_.tx_packets++;
  counters_.tx_bytes += p.size();
  outbound_.push_back(std::move(p));
  return absl::OkStatus();
}

}  // namespace dpm::tun
