#include "stack/link_pump.h"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace dpm::stack {
namespace {
constexpr size_t kReadLimit = 1024;  // packets per wake-up before other work runs
}

LinkPump::LinkPump(boost::asio::io_context& io, tun::Link& link, BatchHandler handler,
                   std::function<void()> after_batch, size_t batch_size)
    : io_(io), link_(link), handler_(std::move(handler)), after_batch_(std::move(after_batch)), fd_(io, link.fd()),
      batch_size_(std::clamp<size_t>(batch_size, 1, kMaxBatch)), slot_size_(link.max_read_size()),
      buffers_(batch_size_ * slot_size_) {
  packets_in_batch_.reserve(batch_size_);
  offloads_.resize(batch_size_);
}

LinkPump::~LinkPump() {
  *alive_ = false;
  fd_.release();  // the link owns its descriptor
}

void LinkPump::Start() { Wait(); }

void LinkPump::Wait() {
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this, alive = alive_](const boost::system::error_code& ec) {
                   if (ec || !*alive) return;
                   OnReadable();
                 });
}

size_t LinkPump::ReadBatch(bool& drained, size_t& reads) {
  packets_in_batch_.clear();
  while (packets_in_batch_.size() < batch_size_ && reads < kReadLimit) {
    reads++;
    const size_t slot = packets_in_batch_.size();
    auto buffer = absl::MakeSpan(buffers_.data() + slot * slot_size_, slot_size_);
    wire::Offload& offload = offloads_[slot];
    absl::StatusOr<size_t> n = link_.ReadOffloaded(buffer, &offload);
    if (!n.ok()) {
      if (!absl::IsUnavailable(n.status())) read_errors_++;
      drained = true;
      break;
    }
    size_t total = 0;
    wire::IpCheck check =
        *n > buffer.size() ? wire::IpCheck::kOversize : wire::CheckIpv4(buffer.subspan(0, *n), &total);
    if (check != wire::IpCheck::kOk) {
      drops_[static_cast<size_t>(check)]++;
      continue;  // the slot is reused
    }
    packets_in_batch_.push_back(buffer.subspan(0, total));
  }
  return packets_in_batch_.size();
}

void LinkPump::OnReadable() {
  bool drained = false;
  size_t reads = 0;  // packets read, good or not: a flood of bad ones must yield too
  while (!drained && reads < kReadLimit) {
    const size_t n = ReadBatch(drained, reads);
    if (n == 0) continue;
    batches_++;
    packets_ += n;
    handler_(packets_in_batch_, absl::MakeSpan(offloads_.data(), n));
    if (after_batch_) after_batch_();
  }
  if (drained) {
    Wait();
  } else {
    boost::asio::post(io_, [this, alive = alive_] {
      if (*alive) OnReadable();
    });
  }
}

}  // namespace dpm::stack
