#include "stack/stack.h"

#include <arpa/inet.h>

#include <atomic>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <vector>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "stack/lwip_port.h"

namespace dpm::stack {
namespace {

std::atomic<bool> g_stack_exists{false};
constexpr int kMaxGather = 64;  // pbuf chain parts written with one writev
constexpr int kReadBatch = 1024;  // packets read per wake-up before yielding to other work

}  // namespace

absl::StatusOr<std::unique_ptr<Stack>> Stack::Create(boost::asio::io_context& io,
                                                     std::unique_ptr<tun::Link> link,
                                                     const StackConfig& config) {
  if (config.address == 0) return absl::InvalidArgumentError("stack address must be set");
  if (config.prefix < 1 || config.prefix > 32) return absl::InvalidArgumentError("prefix must be 1..32");
  if (g_stack_exists.exchange(true)) {
    return absl::FailedPreconditionError("one lwIP stack per process: another Stack exists");
  }
  InitLwipOnce();
  ClaimLwipCore();
  auto stack = std::unique_ptr<Stack>(new Stack(io, std::move(link), config));
  stack->WaitReadable();
  stack->ArmTimer();
  return stack;
}

Stack::Stack(boost::asio::io_context& io, std::unique_ptr<tun::Link> link, const StackConfig& config)
    : io_(io), link_(std::move(link)), config_(config), link_fd_(io, link_->fd()), timer_(io) {
  ip4_addr_t addr, mask, gw;
  ip4_addr_set_u32(&addr, htonl(config.address));
  ip4_addr_set_u32(&mask, htonl(config.prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> config.prefix)));
  ip4_addr_set_u32(&gw, htonl(config.gateway));
  netif_add(&netif_, &addr, &mask, &gw, this, &Stack::NetifInit, ip_input);
  netif_set_default(&netif_);
  netif_set_link_up(&netif_);
  netif_set_up(&netif_);
}

Stack::~Stack() {
  timer_.cancel();
  link_fd_.release();  // the link owns its descriptor
  netif_set_down(&netif_);
  netif_remove(&netif_);
  if (spare_ != nullptr) pbuf_free(spare_);
  g_stack_exists.store(false);
}

err_t Stack::NetifInit(netif* nif) {
  auto* self = static_cast<Stack*>(nif->state);
  nif->name[0] = 'd';
  nif->name[1] = 'p';
  nif->mtu = static_cast<u16_t>(self->link_->mtu());
  nif->output = &Stack::Output;  // an L3 link: no ARP, lwIP calls output directly
  nif->flags = NETIF_FLAG_LINK_UP;
  return ERR_OK;
}

err_t Stack::Output(netif* nif, pbuf* p, const ip4_addr_t* /*next_hop*/) {
  auto* self = static_cast<Stack*>(nif->state);
  iovec parts[kMaxGather];
  int n = 0;
  pbuf* q = p;
  for (; q != nullptr && n < kMaxGather; q = q->next) {
    if (q->len == 0) continue;
    parts[n++] = iovec{q->payload, q->len};
  }
  std::vector<uint8_t> flat;
  if (q != nullptr) {  // a chain longer than one writev takes: send it from one copy
    flat.resize(p->tot_len);
    pbuf_copy_partial(p, flat.data(), p->tot_len, 0);
    parts[0] = iovec{flat.data(), flat.size()};
    n = 1;
  }
  absl::Status s = self->link_->Write(absl::MakeConstSpan(parts, static_cast<size_t>(n)));
  if (!s.ok()) {
    self->counters_.tx_errors++;
    return ERR_IF;
  }
  return ERR_OK;
}

void Stack::WaitReadable() {
  link_fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (ec) return;  // cancelled: the stack is going away
                        OnReadable();
                      });
}

void Stack::OnReadable() {
  const size_t capacity = link_->max_read_size();
  // With offload the read buffer is 64 KiB: packets for lwIP are then copied into a pbuf of
  // their own size (they are few — the gateway's own traffic) instead of keeping the buffer.
  const bool copy_to_lwip = capacity > link_->mtu();
  if (copy_to_lwip && read_buffer_.size() < capacity) read_buffer_.resize(capacity);
  bool drained = false;
  // A bounded batch per wake-up: a busy link (each ACK we write lets the sender queue more
  // before the write returns) must not starve timers, API requests and other descriptors.
  for (int i = 0; i < kReadBatch; ++i) {
    uint8_t* data = read_buffer_.data();
    if (!copy_to_lwip) {
      if (spare_ == nullptr) {
        spare_ = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(capacity), PBUF_RAM);
        if (spare_ == nullptr) break;  // out of memory: try again on the next wake-up
      }
      data = static_cast<uint8_t*>(spare_->payload);
    }
    wire::Offload offload;
    absl::StatusOr<size_t> n = link_->ReadOffloaded(absl::MakeSpan(data, capacity), &offload);
    if (!n.ok()) {
      if (!absl::IsUnavailable(n.status())) counters_.read_errors++;
      drained = true;
      break;
    }
    size_t total = 0;
    wire::IpCheck check = *n > capacity ? wire::IpCheck::kOversize
                                        : wire::CheckIpv4(absl::MakeConstSpan(data, *n), &total);
    if (check != wire::IpCheck::kOk) {
      counters_.ip_drops[static_cast<size_t>(check)]++;
      continue;  // the buffer is reused for the next packet
    }
    if (input_filter_ && input_filter_(absl::MakeSpan(data, total), offload)) continue;  // buffer reused
    if (!copy_to_lwip) {
      pbuf* p = spare_;
      spare_ = nullptr;
      pbuf_realloc(p, static_cast<u16_t>(total));
      Deliver(p);
    } else {
      DeliverOffloaded(absl::MakeSpan(data, total), offload);
    }
  }
  AfterCoreWork();
  if (drained) {
    WaitReadable();
  } else {
    // Not drained: descriptors are edge-triggered, so come back by post, after whatever
    // else is ready has run.
    boost::asio::post(io_, [this] { OnReadable(); });
  }
}

void Stack::Deliver(pbuf* p) {
  counters_.delivered++;
  if (netif_.input(p, &netif_) != ERR_OK) pbuf_free(p);
}

void Stack::DeliverPacket(absl::Span<const uint8_t> packet) {
  pbuf* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
  if (p == nullptr) {
    counters_.rx_no_memory++;
    return;
  }
  pbuf_take(p, packet.data(), static_cast<u16_t>(packet.size()));
  Deliver(p);
}

void Stack::DeliverOffloaded(absl::Span<uint8_t> packet, const wire::Offload& offload) {
  if (offload.tcp_segmentation) {
    // lwIP takes MSS-sized segments, with their checksums.
    if (wire::SegmentTcpV4(packet, offload, segment_buffer_, [this](absl::Span<const uint8_t> s) { DeliverPacket(s); }) ==
        0) {
      counters_.offload_malformed++;
    }
    return;
  }
  if (offload.partial_checksum && !wire::CompleteChecksum(packet, offload)) {
    counters_.offload_malformed++;
    return;
  }
  DeliverPacket(packet);
}

void Stack::AfterCoreWork() { ArmTimer(); }

void Stack::ArmTimer() {
  u32_t ms = sys_timeouts_sleeptime();
  if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  if (timer_armed_ && deadline >= timer_deadline_) return;
  timer_armed_ = true;
  timer_deadline_ = deadline;
  timer_.expires_at(deadline);  // cancels an earlier wait, whose handler sees operation_aborted
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    timer_armed_ = false;
    sys_check_timeouts();
    ArmTimer();
  });
}

}  // namespace dpm::stack
