#include "stack/link_pump.h"

#include <boost/asio/post.hpp>

namespace dpm::stack {
namespace {
constexpr int kReadBatch = 1024;  // packets per wake-up before other work runs
}

LinkPump::LinkPump(boost::asio::io_context& io, tun::Link& link, Handler handler, std::function<void()> after_batch)
    : io_(io), link_(link), handler_(std::move(handler)), after_batch_(std::move(after_batch)), fd_(io, link.fd()),
      buffer_(link.max_read_size()) {}

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

void LinkPump::OnReadable() {
  bool drained = false;
  for (int i = 0; i < kReadBatch; ++i) {
    wire::Offload offload;
    absl::StatusOr<size_t> n = link_.ReadOffloaded(absl::MakeSpan(buffer_), &offload);
    if (!n.ok()) {
      if (!absl::IsUnavailable(n.status())) read_errors_++;
      drained = true;
      break;
    }
    size_t total = 0;
    wire::IpCheck check = *n > buffer_.size() ? wire::IpCheck::kOversize
                                              : wire::CheckIpv4(absl::MakeConstSpan(buffer_.data(), *n), &total);
    if (check != wire::IpCheck::kOk) {
      drops_[static_cast<size_t>(check)]++;
      continue;
    }
    handler_(absl::MakeSpan(buffer_.data(), total), offload);
  }
  if (after_batch_) after_batch_();
  if (drained) {
    Wait();
  } else {
    boost::asio::post(io_, [this, alive = alive_] {
      if (*alive) OnReadable();
    });
  }
}

}  // namespace dpm::stack
