#include "stack/stack.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"
#include "stack/lwip_port.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::stack {
namespace {

std::atomic<bool> g_stack_exists{false};
constexpr int kMaxGather = 64;  // pbuf chain parts written with one writev
constexpr int kReadBatch = 1024;  // packets read per wake-up before yielding to other work
// RFC 5227 §1.1: ANNOUNCE_NUM 2 announcements, ANNOUNCE_INTERVAL 2 s apart.
constexpr uint64_t kAnnounceIntervalMs = 2000;
// lwIP keeps ETH_PAD_SIZE bytes in front of every Ethernet frame (lwipopts.h).
constexpr size_t kEthPad = ETH_PAD_SIZE;

}  // namespace

absl::StatusOr<std::unique_ptr<Stack>> Stack::Create(boost::asio::io_context& io,
                                                     std::unique_ptr<tun::Link> link,
                                                     const StackConfig& config, Clock* clock) {
  if (config.address == 0) return absl::InvalidArgumentError("stack address must be set");
  if (config.prefix < 1 || config.prefix > 32) return absl::InvalidArgumentError("prefix must be 1..32");
  StackConfig effective = config;
  if (link->ethernet()) {
    if (effective.mac == wire::MacAddress{}) effective.mac = wire::MacForIpv4(config.address);
    if (wire::IsMulticast(effective.mac)) {
      return absl::InvalidArgumentError("MAC address " + wire::FormatMac(effective.mac) + " is multicast");
    }
  }
  if (g_stack_exists.exchange(true)) {
    return absl::FailedPreconditionError("one lwIP stack per process: another Stack exists");
  }
  InitLwipOnce();
  ClaimLwipCore();
  auto stack = std::unique_ptr<Stack>(new Stack(io, std::move(link), effective, clock));
  stack->WaitReadable();
  stack->ArmTimer();
  return stack;
}

Stack::Stack(boost::asio::io_context& io, std::unique_ptr<tun::Link> link, const StackConfig& config, Clock* clock)
    : io_(io),
      own_clock_(clock == nullptr ? std::make_unique<SteadyClock>(io) : nullptr),
      clock_(clock == nullptr ? own_clock_.get() : clock),
      link_(std::move(link)),
      config_(config),
      link_fd_(io, link_->fd()),
      timer_(clock_->NewTimer()),
      announce_timer_(clock_->NewTimer()) {
  SetLwipClock(clock_);
  ip4_addr_t addr, mask, gw;
  ip4_addr_set_u32(&addr, htonl(config.address));
  ip4_addr_set_u32(&mask, htonl(config.prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> config.prefix)));
  ip4_addr_set_u32(&gw, htonl(config.gateway));
  // netif_set_up below sends lwIP's gratuitous ARP for the address on an Ethernet link.
  netif_add(&netif_, &addr, &mask, &gw, this, &Stack::NetifInit, link_->ethernet() ? ethernet_input : ip_input);
  netif_set_default(&netif_);
  netif_set_link_up(&netif_);
  netif_set_up(&netif_);
}

Stack::~Stack() {
  timer_->Cancel();
  announce_timer_->Cancel();
  link_fd_.release();  // the link owns its descriptor
  netif_set_down(&netif_);
  netif_remove(&netif_);
  if (spare_ != nullptr) pbuf_free(spare_);
  SetLwipClock(nullptr);
  g_stack_exists.store(false);
}

err_t Stack::NetifInit(netif* nif) {
  auto* self = static_cast<Stack*>(nif->state);
  nif->name[0] = 'd';
  nif->name[1] = 'p';
  nif->mtu = static_cast<u16_t>(self->link_->mtu());
  if (self->link_->ethernet()) {
    // lwIP's Ethernet netif: IP output resolves the next hop by ARP (etharp_output), which
    // hands whole frames to linkoutput.
    nif->hwaddr_len = ETH_HWADDR_LEN;
    std::copy(self->config_.mac.begin(), self->config_.mac.end(), nif->hwaddr);
    nif->output = etharp_output;
    nif->linkoutput = &Stack::LinkOutput;
    nif->flags = NETIF_FLAG_ETHARP | NETIF_FLAG_BROADCAST | NETIF_FLAG_LINK_UP;
  } else {
    nif->output = &Stack::Output;  // an L3 link: no ARP, lwIP calls output directly
    nif->flags = NETIF_FLAG_LINK_UP;
  }
  return ERR_OK;
}

err_t Stack::Output(netif* nif, pbuf* p, const ip4_addr_t* /*next_hop*/) {
  return static_cast<Stack*>(nif->state)->WriteChain(p, 0);
}

err_t Stack::LinkOutput(netif* nif, pbuf* p) {
  // The frame starts after lwIP's ETH_PAD_SIZE bytes of padding.
  return static_cast<Stack*>(nif->state)->WriteChain(p, kEthPad);
}

err_t Stack::WriteChain(pbuf* p, size_t skip) {
  if (p->len < skip) {
    counters_.tx_errors++;
    return ERR_IF;
  }
  iovec parts[kMaxGather];
  int n = 0;
  pbuf* q = p;
  for (size_t from = skip; q != nullptr && n < kMaxGather; q = q->next, from = 0) {
    if (q->len == from) continue;
    parts[n++] = iovec{static_cast<uint8_t*>(q->payload) + from, q->len - from};
  }
  std::vector<uint8_t> flat;
  if (q != nullptr) {  // a chain longer than one writev takes: send it from one copy
    flat.resize(p->tot_len - skip);
    pbuf_copy_partial(p, flat.data(), static_cast<u16_t>(flat.size()), static_cast<u16_t>(skip));
    parts[0] = iovec{flat.data(), flat.size()};
    n = 1;
  }
  if (!outbound_hooks_.empty() && n > 0 && RunOutboundHooks(parts, n, p, skip, flat)) {
    return ERR_OK;  // taken: the hook forwarded or dropped it
  }
  absl::Status s = link_->Write(absl::MakeConstSpan(parts, static_cast<size_t>(n)));
  if (!s.ok()) {
    counters_.tx_errors++;
    return ERR_IF;
  }
  return ERR_OK;
}

bool Stack::RunOutboundHooks(iovec* parts, int& n, pbuf* p, size_t skip, std::vector<uint8_t>& flat) {
  // lwIP puts the Ethernet header in front of the IP header, in the same pbuf (ethernet_output).
  const size_t link_header = link_->link_header_length();
  const size_t frame_length = p->tot_len - skip;
  if (frame_length < link_header + wire::ipv4::kMinHeaderLength) return false;  // ARP: not for the hooks
  auto gather = [&] {  // the whole packet in one buffer, so that the head is contiguous
    flat.resize(frame_length);
    pbuf_copy_partial(p, flat.data(), static_cast<u16_t>(frame_length), static_cast<u16_t>(skip));
    parts[0] = iovec{flat.data(), flat.size()};
    n = 1;
  };
  if (parts[0].iov_len < link_header + wire::ipv4::kMinHeaderLength) gather();
  auto* frame = static_cast<uint8_t*>(parts[0].iov_base);
  if (link_header != 0 &&
      wire::LoadBe16(frame + wire::ethernet::kEtherTypeOffset) != wire::ethernet::kTypeIpv4) {
    return false;  // ARP and other EtherTypes pass the hooks by
  }
  const size_t total = frame_length - link_header;
  if ((frame[link_header] >> 4) != 4) return false;
  const size_t head = std::min(OutboundHeadLength(frame + link_header), total);
  if (parts[0].iov_len < link_header + head) {
    gather();  // lwIP's IP fragmentation: the first fragment's transport header is in a second pbuf
    frame = static_cast<uint8_t*>(parts[0].iov_base);
  }
  // The hooks see the IP packet: parts[0] moved past the link header for the call.
  const iovec first = parts[0];
  parts[0] = iovec{frame + link_header, first.iov_len - link_header};
  const OutboundPacket packet{absl::MakeSpan(frame + link_header, parts[0].iov_len), total,
                              absl::MakeConstSpan(parts, static_cast<size_t>(n))};
  const HookAction action = outbound_hooks_.Run([&](OutboundHook& hook) { return hook.OnOutbound(packet); });
  parts[0] = first;
  return action == HookAction::kTake;
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
  const bool copy_to_lwip = link_->offload();
  // Ethernet: lwIP wants ETH_PAD_SIZE bytes in front of the frame (so the IP header behind
  // the 14-byte Ethernet header is aligned); the frame is read after them.
  const bool ethernet = link_->ethernet();
  const size_t pad = ethernet ? kEthPad : 0;
  if (copy_to_lwip && read_buffer_.size() < capacity) read_buffer_.resize(capacity);
  bool drained = false;
  // A bounded batch per wake-up: a busy link (each ACK we write lets the sender queue more
  // before the write returns) must not starve timers, API requests and other descriptors.
  for (int i = 0; i < kReadBatch; ++i) {
    uint8_t* data = read_buffer_.data();
    if (!copy_to_lwip) {
      if (spare_ == nullptr) {
        spare_ = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(pad + capacity), PBUF_RAM);
        if (spare_ == nullptr) break;  // out of memory: try again on the next wake-up
      }
      data = static_cast<uint8_t*>(spare_->payload) + pad;
    }
    wire::Offload offload;
    absl::StatusOr<size_t> n = link_->ReadOffloaded(absl::MakeSpan(data, capacity), &offload);
    if (!n.ok()) {
      if (!absl::IsUnavailable(n.status())) counters_.read_errors++;
      drained = true;
      break;
    }
    if (ethernet) {  // no offload on Ethernet links; DeliverFrame runs the inbound hooks
      if (*n > capacity) {
        counters_.ip_drops[static_cast<size_t>(wire::IpCheck::kOversize)]++;
      } else {
        DeliverFrame(spare_, *n);  // on a drop the buffer stays spare_, reused
      }
      continue;
    }
    size_t total = 0;
    wire::IpCheck check = *n > capacity ? wire::IpCheck::kOversize
                                        : wire::CheckIpv4(absl::MakeConstSpan(data, *n), &total);
    if (check != wire::IpCheck::kOk) {
      counters_.ip_drops[static_cast<size_t>(check)]++;
      continue;  // the buffer is reused for the next packet
    }
    if (!inbound_hooks_.empty() &&
        inbound_hooks_.Run([&](InboundHook& hook) { return hook.OnInbound(absl::MakeSpan(data, total), offload); }) ==
            HookAction::kTake) {
      continue;  // taken: the buffer is reused
    }
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

void Stack::DeliverFrame(pbuf* p, size_t length) {
  const auto* frame = static_cast<const uint8_t*>(p->payload) + kEthPad;
  wire::FrameCheck check = wire::CheckFrame(absl::MakeConstSpan(frame, length), config_.mac);
  if (check != wire::FrameCheck::kOk) {
    counters_.frame_drops[static_cast<size_t>(check)]++;
    return;
  }
  std::optional<wire::EthernetView> eth = wire::EthernetView::Parse(absl::MakeConstSpan(frame, length));
  if (eth->ether_type() == wire::ethernet::kTypeIpv4) {
    // The same first checks as on an L3 link, so drop counters mean the same on both.
    size_t total = 0;
    wire::IpCheck ip = wire::CheckIpv4(eth->payload(), &total);
    if (ip != wire::IpCheck::kOk) {
      counters_.ip_drops[static_cast<size_t>(ip)]++;
      return;
    }
    length = wire::ethernet::kHeaderLength + total;  // Ethernet padding after the IP packet goes
    if (!inbound_hooks_.empty()) {
      auto ip = absl::MakeSpan(static_cast<uint8_t*>(p->payload) + kEthPad + wire::ethernet::kHeaderLength, total);
      wire::Offload none;  // Ethernet links have no offload
      if (inbound_hooks_.Run([&](InboundHook& hook) { return hook.OnInbound(ip, none); }) == HookAction::kTake) {
        return;  // taken: the buffer stays spare_, reused
      }
    }
  } else {
    length = wire::ethernet::kHeaderLength + wire::arp::kPacketLength;  // CheckFrame saw it whole
  }
  spare_ = nullptr;
  pbuf_realloc(p, static_cast<u16_t>(kEthPad + length));
  Deliver(p);  // ethernet_input
}

void Stack::DeliverPacket(absl::Span<const uint8_t> packet) {
  pbuf* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
  if (p == nullptr) {
    counters_.rx_no_memory++;
    return;
  }
  pbuf_take(p, packet.data(), static_cast<u16_t>(packet.size()));
  counters_.delivered++;
  // The IP layer directly: on an Ethernet link netif_.input would want a frame.
  if (ip_input(p, &netif_) != ERR_OK) pbuf_free(p);
}

void Stack::AnnounceAddress(uint32_t address) {
  if (!link_->ethernet()) return;
  SendAnnouncement(address);
  const bool idle = announce_due_.empty();
  announce_due_.emplace_back(clock_->NowMs() + kAnnounceIntervalMs, address);
  if (idle) ArmAnnounceTimer();
}

void Stack::SendAnnouncement(uint32_t address) {
  auto frame = wire::ArpAnnouncement(config_.mac, address);
  if (link_->WritePacket(frame).ok()) {
    counters_.arp_announcements++;
  } else {
    counters_.tx_errors++;
  }
}

void Stack::ArmAnnounceTimer() {
  announce_timer_->Start(announce_due_.front().first, [this] {
    const uint64_t now = clock_->NowMs();
    while (!announce_due_.empty() && announce_due_.front().first <= now) {
      const uint32_t address = announce_due_.front().second;
      announce_due_.pop_front();
      // Given up in the meantime: announcing it again would claim an address no longer ours.
      if (address == config_.address || AcceptsAddress(address)) SendAnnouncement(address);
    }
    if (!announce_due_.empty()) ArmAnnounceTimer();
  });
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
  const uint64_t deadline = clock_->NowMs() + ms;
  if (timer_->pending() && deadline >= timer_->deadline_ms()) return;
  timer_->Start(deadline, [this] {  // replaces an earlier, later wait
    sys_check_timeouts();
    ArmTimer();
  });
}

}  // namespace dpm::stack
