#include "gateway/gateway.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "wire/ipv4.h"

namespace dpm::gateway {
namespace {

constexpr size_t kSweepBatch = 65536;  // entries examined per sweep tick (bounded work)

constexpr uint64_t kSweepIntervalMs = 1000;

absl::Status WriteTo(tun::Link& link, absl::Span<const uint8_t> packet, const wire::Offload& offload) {
  iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
  return link.WriteOffloaded(absl::MakeConstSpan(&v, 1), offload);
}

}  // namespace

uint64_t Gateway::NowMs() const { return stack_->clock().NowMs(); }

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(boost::asio::io_context& io,
                                                         std::unique_ptr<tun::Link> inside,
                                                         std::unique_ptr<tun::Link> outside,
                                                         const GatewayConfig& config, stack::Clock* clock) {
  if (config.nat.external_addresses.empty()) return absl::InvalidArgumentError("the registered address pool is empty");
  auto stack = stack::Stack::Create(io, std::move(inside), config.inside, clock);
  if (!stack.ok()) return stack.status();
  auto gw = std::unique_ptr<Gateway>(new Gateway(std::move(*stack), std::move(outside), config));
  Gateway* self = gw.get();
  gw->inside_hook_ = gw->stack_->AddInboundHook(stack::hook_order::kNatFastPath, self);
  gw->pump_ = std::make_unique<stack::LinkPump>(
      io, *gw->outside_, [self](absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload> offloads) {
        self->FromOutsideBatch(packets, offloads);
      });
  gw->pump_->Start();
  gw->StartServer(pcp::kDpmPort);
  gw->StartServer(pcp::kServerPort);
  gw->stack_->AfterCoreWork();
  gw->ArmSweep();
  return gw;
}

Gateway::Gateway(std::unique_ptr<stack::Stack> stack, std::unique_ptr<tun::Link> outside, const GatewayConfig& config)
    : config_(config), outside_(std::move(outside)), stack_(std::move(stack)), engine_(config.nat),
      server_(engine_, stack_->clock().NowMs()), sweep_timer_(stack_->clock().NewTimer()) {
  pending_packets_.reserve(stack::LinkPump::kMaxBatch);
  pending_offloads_.reserve(stack::LinkPump::kMaxBatch);
}

Gateway::~Gateway() {
  sweep_timer_.reset();  // before the stack, whose clock it may be on
  inside_hook_.reset();
  for (void* p : udp_pcbs_) udp_remove(static_cast<udp_pcb*>(p));
  pump_.reset();
  stack_.reset();
}

bool Gateway::NormalizeOffload(absl::Span<uint8_t> packet, wire::Offload& offload,
                               absl::FunctionRef<void(absl::Span<uint8_t>)> each) {
  if (offload.none() || wire::IsTransportOffload(packet, offload)) return true;
  if (offload.tcp_segmentation) {
    // Our own buffer: the segments may be rewritten in place.
    if (wire::SegmentTcpV4(packet, offload, segment_buffer_, [&](absl::Span<const uint8_t> segment) {
          each(absl::MakeSpan(const_cast<uint8_t*>(segment.data()), segment.size()));
        }) == 0) {
      counters_.offload_malformed++;
    } else {
      counters_.offload_finished++;
    }
    return false;
  }
  if (!wire::CompleteChecksum(packet, offload)) {
    counters_.offload_malformed++;
    return false;
  }
  counters_.offload_finished++;
  offload = wire::Offload{};
  return true;
}

stack::HookAction Gateway::OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) {
  return FromInside(packet, offload) ? stack::HookAction::kTake : stack::HookAction::kPass;
}

bool Gateway::FromInside(absl::Span<uint8_t> packet, wire::Offload& offload) {
  if (!NormalizeOffload(packet, offload, [this](absl::Span<uint8_t> segment) {
        wire::Offload none;
        if (!FromInside(segment, none)) stack_->DeliverPacket(segment);
      })) {
    return true;
  }
  nat::Result r = engine_.FromInside(NowMs(), packet, offload.partial_checksum);
  if (r.released > 0) {
    // Fragments held until this one, their datagram's first, came (RFC 4787 REQ-14): sent
    // ahead of it, which the receiver's reassembly does not mind.
    engine_.TakeReleasedFragments([this](nat::Verdict v, absl::Span<uint8_t> f) {
      if (v == nat::Verdict::kToGateway) return;
      const bool out = v == nat::Verdict::kForwardOutside;
      if ((out ? outside_->WritePacket(f) : stack_->SendPacket(f)).ok()) {
        ++(out ? counters_.forwarded_out : counters_.hairpinned);
      } else {
        counters_.write_errors++;
      }
    });
  }
  switch (r.verdict) {
    case nat::Verdict::kToGateway:
      counters_.to_gateway++;
      return false;  // lwIP: the DPM server, ICMP echo
    case nat::Verdict::kForwardOutside:
      if (WriteTo(*outside_, packet, offload).ok()) {
        counters_.forwarded_out++;
      } else {
        counters_.write_errors++;
      }
      return true;
    case nat::Verdict::kForwardInside:  // hairpinning
      if (stack_->SendPacket(packet, offload).ok()) {
        counters_.hairpinned++;
      } else {
        counters_.write_errors++;
      }
      return true;
    case nat::Verdict::kDrop:
      if (r.reason == nat::DropReason::kTtlExceeded) SendTimeExceeded(packet, /*from_inside=*/true);
      return true;  // counted by the engine, by reason
    case nat::Verdict::kHeld:  // a fragment before its first: copied, comes back as released
      return true;
  }
  return true;
}

void Gateway::FromOutsideBatch(absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload> offloads) {
  for (size_t i = 0; i < packets.size(); ++i) {
    wire::Offload& offload = offloads[i];
    // A super-packet the engine cannot take is cut into segments: what came before it in
    // the batch goes first, so the packets keep their order.
    if (NormalizeOffload(packets[i], offload, [this](absl::Span<uint8_t> segment) {
          FlushOutside();
          FromOutside(segment, {});
        })) {
      pending_packets_.push_back(packets[i]);
      pending_offloads_.push_back(offload);
    }
  }
  FlushOutside();
}

void Gateway::TranslateFromOutside(uint64_t now, absl::Span<const absl::Span<uint8_t>> packets,
                                   absl::Span<const wire::Offload> offloads, absl::Span<nat::Result> results) {
  // One batch call with a partial-checksum flag per packet (offloaded packets from a link
  // with IFF_VNET_HDR), so the table prefetch covers offloaded traffic too.
  absl::InlinedVector<bool, 64> partial(offloads.size());
  for (size_t i = 0; i < offloads.size(); ++i) partial[i] = offloads[i].partial_checksum;
  engine_.FromOutsideBatch(now, packets, absl::MakeConstSpan(partial.data(), partial.size()), results);
}

void Gateway::FlushOutside() {
  const size_t n = pending_packets_.size();
  if (n == 0) return;
  results_.resize(n);
  TranslateFromOutside(NowMs(), pending_packets_, pending_offloads_, absl::MakeSpan(results_));
  // Fragments released by packets of the batch are sent just before the packet that released
  // them, as the single path does (the engine hands them over oldest first).
  released_.clear();
  if (engine_.released_fragment_count() > 0) {
    engine_.TakeReleasedFragments([this](nat::Verdict v, absl::Span<uint8_t> f) {
      released_.emplace_back(v, std::vector<uint8_t>(f.begin(), f.end()));
    });
  }
  size_t next_released = 0;
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t k = 0; k < results_[i].released && next_released < released_.size(); ++k, ++next_released) {
      HandleReleasedFromOutside(released_[next_released].first, absl::MakeSpan(released_[next_released].second));
    }
    HandleFromOutside(pending_packets_[i], pending_offloads_[i], results_[i]);
  }
  for (; next_released < released_.size(); ++next_released) {  // a count that saturated
    HandleReleasedFromOutside(released_[next_released].first, absl::MakeSpan(released_[next_released].second));
  }
  pending_packets_.clear();
  pending_offloads_.clear();
}

void Gateway::FromOutside(absl::Span<uint8_t> packet, wire::Offload offload) {
  if (!NormalizeOffload(packet, offload, [this](absl::Span<uint8_t> segment) { FromOutside(segment, {}); })) return;
  nat::Result r = engine_.FromOutside(NowMs(), packet, offload.partial_checksum);
  if (r.released > 0) {
    engine_.TakeReleasedFragments(
        [this](nat::Verdict v, absl::Span<uint8_t> f) { HandleReleasedFromOutside(v, f); });
  }
  HandleFromOutside(packet, offload, r);
}

void Gateway::HandleReleasedFromOutside(nat::Verdict verdict, absl::Span<uint8_t> fragment) {
  if (verdict != nat::Verdict::kForwardInside) {
    counters_.outside_to_gateway++;
  } else if (stack_->SendPacket(fragment).ok()) {
    counters_.forwarded_in++;
  } else {
    counters_.write_errors++;
  }
}

void Gateway::HandleFromOutside(absl::Span<uint8_t> packet, const wire::Offload& offload, const nat::Result& r) {
  switch (r.verdict) {
    case nat::Verdict::kForwardInside:
      if (stack_->SendPacket(packet, offload).ok()) {
        counters_.forwarded_in++;
      } else {
        counters_.write_errors++;
      }
      return;
    case nat::Verdict::kToGateway:
      counters_.outside_to_gateway++;  // the DPM server does not listen outside
      return;
    case nat::Verdict::kDrop:
      if (r.reason == nat::DropReason::kTtlExceeded) SendTimeExceeded(packet, /*from_inside=*/false);
      return;
    case nat::Verdict::kForwardOutside:
    case nat::Verdict::kHeld:
      return;
  }
}

void Gateway::SendTimeExceeded(absl::Span<const uint8_t> packet, bool from_inside) {
  const uint64_t now = NowMs();
  if (now - icmp_window_start_ms_ >= 1000) {
    icmp_window_start_ms_ = now;
    icmp_window_count_ = 0;
  }
  if (icmp_window_count_ >= kIcmpErrorsPerSecond) {
    counters_.icmp_errors_limited++;
    return;
  }
  // From the interface the packet arrived on (RFC 1812 §4.3.2.4): inside, the gateway's
  // private address; outside, its outside address, or else the registered address the
  // packet was sent to (the only address of ours the sender knows).
  uint32_t source = config_.inside.address;
  if (!from_inside) {
    source = config_.nat.gateway_outside_address;
    if (source == 0 && packet.size() >= 20) {
      source = (uint32_t{packet[16]} << 24) | (uint32_t{packet[17]} << 16) | (uint32_t{packet[18]} << 8) | packet[19];
    }
  }
  std::vector<uint8_t> error = wire::BuildIcmpError(source, wire::icmp::kTimeExceeded, 0, 0, packet);
  if (error.empty()) return;  // RFC 1812 §4.3.2.7: no error about an error or a later fragment
  icmp_window_count_++;
  if ((from_inside ? stack_->SendPacket(error) : outside_->WritePacket(error)).ok()) {
    counters_.icmp_errors_sent++;
  } else {
    counters_.write_errors++;
  }
}

void Gateway::StartServer(uint16_t port) {
  udp_pcb* pcb = udp_new();
  ip_addr_t addr;
  ip_addr_set_ip4_u32(&addr, htonl(config_.inside.address));
  udp_bind(pcb, &addr, port);
  udp_recv(
      pcb,
      [](void* arg, udp_pcb* upcb, pbuf* p, const ip_addr_t* from, u16_t from_port) {
        auto* self = static_cast<Gateway*>(arg);
        uint8_t buf[1100 + 4];
        size_t n = pbuf_copy_partial(p, buf, sizeof(buf), 0);
        if (p->tot_len > 1100) n = p->tot_len > sizeof(buf) ? sizeof(buf) : p->tot_len;  // oversize: MALFORMED
        pbuf_free(p);
        nat::Endpoint client{ntohl(ip4_addr_get_u32(ip_2_ip4(from))), from_port};
        std::vector<uint8_t> reply = self->server_.Handle(self->NowMs(), client, upcb->local_port,
                                                          absl::MakeConstSpan(buf, n));
        if (reply.empty()) return;
        pbuf* out = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(reply.size()), PBUF_RAM);
        if (out == nullptr) return;
        pbuf_take(out, reply.data(), static_cast<u16_t>(reply.size()));
        udp_sendto(upcb, out, from, from_port);
        pbuf_free(out);
      },
      this);
  udp_pcbs_.push_back(pcb);
}

void Gateway::ArmSweep() {
  sweep_timer_->Start(NowMs() + kSweepIntervalMs, [this] {
    engine_.Sweep(NowMs(), kSweepBatch);
    ArmSweep();
  });
}

GatewayStatus Gateway::CollectStatus() const {
  const uint64_t now = NowMs();
  GatewayStatus s;
  s.epoch_s = server_.Epoch(now);
  s.counters = counters_;
  s.inside = GatewayStatus::Offload::From(stack_->link());
  s.outside = GatewayStatus::Offload::From(*outside_);
  s.nat_drops = engine_.drops();
  s.pcp_results = server_.counters().pcp_results;
  s.natpmp_requests = server_.counters().natpmp_requests;
  s.session_count = engine_.session_count();
  s.mapping_count = engine_.mapping_count();
  engine_.ForEachSession(now, [&](const nat::NatEngine::SessionInfo& info) { s.AddSession(info); });
  engine_.ForEachMapping(now, [&](const nat::NatEngine::MappingInfo& info) { s.AddMapping(info); });
  return s;
}

}  // namespace dpm::gateway
