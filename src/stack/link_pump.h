// Reads a link on the io_context without lwIP: drains it in bounded batches (like Stack) and
// hands the packets that pass the first IPv4 checks to a handler a batch at a time — up to
// `batch_size` packets, each in a buffer of its own, read one after another on one wake-up —
// so that the handler can translate them together (NatEngine::FromOutsideBatch prefetches
// the table memory of a batch). The gateway's outside link runs on one: nothing from outside
// enters lwIP.
#ifndef DPM_STACK_LINK_PUMP_H_
#define DPM_STACK_LINK_PUMP_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/types/span.h"
#include "tun/link.h"
#include "wire/ip.h"

namespace dpm::stack {

class LinkPump {
 public:
  /// One batch, in the order read: `packets[i]` is exactly an IPv4 packet (its total length,
  /// link padding cut off) that passed wire::CheckIpv4, in the pump's buffers, writable in
  /// place and valid only during the call; `offloads[i]` is its offload state
  /// (tun::Link::ReadOffloaded; none without offload), writable too. Never empty.
  using BatchHandler =
      std::function<void(absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload> offloads)>;
  static constexpr size_t kDefaultBatch = 32;
  static constexpr size_t kMaxBatch = 64;

  /// `after_batch` runs after each call of `handler` (flush work the handler queued).
  /// `batch_size`: packets per batch, clamped to 1..kMaxBatch; the pump keeps that many
  /// buffers of link.max_read_size() bytes (2 MiB for 32 on a link with offload).
  LinkPump(boost::asio::io_context& io, tun::Link& link, BatchHandler handler, std::function<void()> after_batch = {},
           size_t batch_size = kDefaultBatch);
  ~LinkPump();
  void Start();

  const wire::IpDropCounters& drops() const { return drops_; }
  uint64_t read_errors() const { return read_errors_; }
  /// Batches handed to the handler, and the packets in them.
  uint64_t batches() const { return batches_; }
  uint64_t packets() const { return packets_; }

 private:
  void Wait();
  void OnReadable();
  // Reads up to batch_size_ good packets into the buffers, counting every read in `reads`
  // and stopping at the per-wake-up limit; sets `drained` when the link had no more.
  // Returns how many good packets it read.
  size_t ReadBatch(bool& drained, size_t& reads);

  boost::asio::io_context& io_;
  tun::Link& link_;
  BatchHandler handler_;
  std::function<void()> after_batch_;
  boost::asio::posix::stream_descriptor fd_;
  size_t batch_size_;
  size_t slot_size_;
  std::vector<uint8_t> buffers_;               // batch_size_ slots of slot_size_ bytes
  std::vector<absl::Span<uint8_t>> packets_in_batch_;
  std::vector<wire::Offload> offloads_;
  wire::IpDropCounters drops_{};
  uint64_t read_errors_ = 0;
  uint64_t batches_ = 0, packets_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_LINK_PUMP_H_
