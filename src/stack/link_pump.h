// Reads a link on the io_context without lwIP: drains it in bounded batches (like Stack) and
// hands each packet that passes the first IPv4 checks to a handler, which may rewrite it in
// place. The gateway's outside link runs on one: nothing from outside enters lwIP.
#ifndef DPM_STACK_LINK_PUMP_H_
#define DPM_STACK_LINK_PUMP_H_

#include <functional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "tun/link.h"
#include "wire/ip.h"

namespace dpm::stack {

class LinkPump {
 public:
  /// `offload`: the packet's offload state (tun::Link::ReadOffloaded; none without offload).
  using Handler = std::function<void(absl::Span<uint8_t> packet, const wire::Offload& offload)>;
  /// `after_batch` runs once after each batch (flush work the handler queued).
  LinkPump(boost::asio::io_context& io, tun::Link& link, Handler handler, std::function<void()> after_batch = {});
  ~LinkPump();
  void Start();

  const wire::IpDropCounters& drops() const { return drops_; }
  uint64_t read_errors() const { return read_errors_; }

 private:
  void Wait();
  void OnReadable();

  boost::asio::io_context& io_;
  tun::Link& link_;
  Handler handler_;
  std::function<void()> after_batch_;
  boost::asio::posix::stream_descriptor fd_;
  std::vector<uint8_t> buffer_;
  wire::IpDropCounters drops_{};
  uint64_t read_errors_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_LINK_PUMP_H_
