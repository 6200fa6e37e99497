#include "gateway/gateway.h"

#include <arpa/inet.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "wire/ipv4.h"

namespace dpm::gateway {
namespace {

constexpr size_t kMaxStatusRows = 1000;
constexpr size_t kSweepBatch = 65536;  // entries examined per sweep tick (bounded work)

uint64_t SteadyMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string Ip(uint32_t a) {
  return absl::StrFormat("%d.%d.%d.%d", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}
std::string Ep(const nat::Endpoint& e) { return absl::StrCat(Ip(e.address), ":", e.port); }
// "198.51.100.0/24 port 53", "198.51.100.10/32 any port".
std::string FilterText(const nat::RemoteFilter& f) {
  return absl::StrCat(Ip(f.address), "/", f.prefix, f.port ? absl::StrCat(" port ", f.port) : " any port");
}
std::string FiltersJson(absl::Span<const nat::RemoteFilter> filters) {
  std::string out = "[";
  for (size_t i = 0; i < filters.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"remote\":\"", Ip(filters[i].address), "/", filters[i].prefix,
                    "\",\"port\":", filters[i].port, "}");
  }
  return out + "]";
}
// A DPM mapping has no one internal endpoint (its sessions have theirs).
std::string MappingInternal(const nat::NatEngine::MappingInfo& m) { return m.dpm ? "-" : Ep(m.internal); }

// The status names protocols as the NAT does.
constexpr auto ProtoName = nat::ProtocolName;

// Offload state and counters of a link, for the status.
std::string OffloadJson(const tun::Link& link) {
  const tun::LinkCounters& c = link.counters();
  return absl::StrCat("{\"enabled\":", link.offload() ? "true" : "false", ",\"rx_super_packets\":", c.rx_segmentation,
                      ",\"tx_super_packets\":", c.tx_segmentation, ",\"tx_segmented_in_software\":",
                      c.tx_segmented_in_software, ",\"checksums_in_software\":", c.checksums_in_software, "}");
}
std::string OffloadText(const tun::Link& link) {
  const tun::LinkCounters& c = link.counters();
  if (!link.offload()) return "off";
  return absl::StrCat("on (super-packets rx ", c.rx_segmentation, ", tx ", c.tx_segmentation, ")");
}

}  // namespace

uint64_t Gateway::NowMs() const { return SteadyMs(); }

namespace {
absl::Status WriteTo(tun::Link& link, absl::Span<const uint8_t> packet, const wire::Offload& offload) {
  iovec v{const_cast<uint8_t*>(packet.data()), packet.size()};
  return link.WriteOffloaded(absl::MakeConstSpan(&v, 1), offload);
}
}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(boost::asio::io_context& io,
                                                         std::unique_ptr<tun::Link> inside,
                                                         std::unique_ptr<tun::Link> outside,
                                                         const GatewayConfig& config) {
  if (config.nat.external_addresses.empty()) return absl::InvalidArgumentError("the registered address pool is empty");
  auto gw = std::unique_ptr<Gateway>(new Gateway(io, std::move(outside), config));
  auto stack = stack::Stack::Create(io, std::move(inside), config.inside);
  if (!stack.ok()) return stack.status();
  gw->stack_ = std::move(*stack);
  Gateway* self = gw.get();
  gw->stack_->set_input_filter([self](absl::Span<uint8_t> p, wire::Offload& o) { return self->FromInside(p, o); });
  gw->pump_ = std::make_unique<stack::LinkPump>(
      io, *gw->outside_, [self](absl::Span<uint8_t> p, const wire::Offload& o) { self->FromOutside(p, o); });
  gw->pump_->Start();
  gw->StartServer(pcp::kDpmPort);
  gw->StartServer(pcp::kServerPort);
  gw->stack_->AfterCoreWork();
  gw->ArmSweep();
  return gw;
}

Gateway::Gateway(boost::asio::io_context& io, std::unique_ptr<tun::Link> outside, const GatewayConfig& config)
    : io_(io), config_(config), outside_(std::move(outside)), engine_(config.nat),
      server_(engine_, SteadyMs()), sweep_timer_(io) {}

Gateway::~Gateway() {
  sweep_timer_.cancel();
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

void Gateway::FromOutside(absl::Span<uint8_t> packet, wire::Offload offload) {
  if (!NormalizeOffload(packet, offload, [this](absl::Span<uint8_t> segment) { FromOutside(segment, {}); })) return;
  nat::Result r = engine_.FromOutside(NowMs(), packet, offload.partial_checksum);
  if (r.released > 0) {
    engine_.TakeReleasedFragments([this](nat::Verdict v, absl::Span<uint8_t> f) {
      if (v != nat::Verdict::kForwardInside) {
        counters_.outside_to_gateway++;
      } else if (stack_->SendPacket(f).ok()) {
        counters_.forwarded_in++;
      } else {
        counters_.write_errors++;
      }
    });
  }
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
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    engine_.Sweep(NowMs(), kSweepBatch);
    ArmSweep();
  });
}

std::string Gateway::Status(bool json) const {
  const uint64_t now = NowMs();
  std::string out;
  size_t rows = 0;
  const auto& drops = engine_.drops();
  if (json) {
    absl::StrAppend(&out, "\"gateway\":{\"epoch\":", server_.Epoch(now), ",\"forwarded_out\":", counters_.forwarded_out,
                    ",\"forwarded_in\":", counters_.forwarded_in, ",\"hairpinned\":", counters_.hairpinned,
                    ",\"to_gateway\":", counters_.to_gateway, ",\"outside_to_gateway\":", counters_.outside_to_gateway,
                    ",\"write_errors\":", counters_.write_errors,
                    ",\"icmp_errors_sent\":", counters_.icmp_errors_sent,
                    ",\"icmp_errors_limited\":", counters_.icmp_errors_limited, ",\"offload\":{\"inside\":",
                    OffloadJson(stack_->link()), ",\"outside\":", OffloadJson(*outside_),
                    ",\"finished_in_software\":", counters_.offload_finished,
                    ",\"malformed\":", counters_.offload_malformed, "},\"nat_drops\":{");
    for (size_t i = 1; i < drops.size(); ++i) {
      absl::StrAppend(&out, i > 1 ? "," : "", "\"", nat::DropReasonName(static_cast<nat::DropReason>(i)), "\":", drops[i]);
    }
    absl::StrAppend(&out, "},\"pcp_results\":{");
    const auto& results = server_.counters().pcp_results;
    for (size_t i = 0; i < results.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", "\"", pcp::ResultName(static_cast<pcp::ResultCode>(i)), "\":", results[i]);
    }
    absl::StrAppend(&out, "},\"natpmp_requests\":", server_.counters().natpmp_requests,
                    ",\"session_count\":", engine_.session_count(), ",\"sessions\":[");
    engine_.ForEachSession(now, [&](const nat::NatEngine::SessionInfo& s) {
      if (rows >= kMaxStatusRows) return;
      absl::StrAppend(&out, rows++ ? "," : "",
                      absl::StrFormat(R"({"proto":"%s","internal":"%s","external":"%s","remote":"%s","gateway_endpoint":"%s","state":"%s","idle_ms":%d,"dpm":%s})",
                                      ProtoName(s.protocol), Ep(s.internal), Ep(s.external), Ep(s.remote),
                                      Ep(s.gateway_endpoint), s.state, s.idle_ms, s.dpm ? "true" : "false"));
    });
    absl::StrAppend(&out, "],\"mapping_count\":", engine_.mapping_count(), ",\"mappings\":[");
    rows = 0;
    engine_.ForEachMapping(now, [&](const nat::NatEngine::MappingInfo& m) {
      if (rows >= kMaxStatusRows) return;
      absl::StrAppend(&out, rows++ ? "," : "",
                      absl::StrFormat(R"({"proto":"%s","internal":"%s","external":"%s","made_by":"%s","explicit":%s,)"
                                      R"("lifetime_left_s":%s,"sessions":%d,"fixed":%s,"filters":%s})",
                                      ProtoName(m.protocol), MappingInternal(m), Ep(m.external),
                                      nat::MappingOriginName(m.origin), m.lifetime_left_ms ? "true" : "false",
                                      m.lifetime_left_ms ? absl::StrCat(*m.lifetime_left_ms / 1000) : "null",
                                      m.sessions, m.fixed ? "true" : "false", FiltersJson(m.filters)));
    });
    absl::StrAppend(&out, "]}");
    return out;
  }
  absl::StrAppend(&out, "gateway  epoch ", server_.Epoch(now), " s; packets forwarded out ", counters_.forwarded_out,
                  ", in ", counters_.forwarded_in, ", hairpinned ", counters_.hairpinned, ", to gateway ",
                  counters_.to_gateway, ", outside-to-gateway dropped ", counters_.outside_to_gateway,
                  "; icmp errors sent ", counters_.icmp_errors_sent, ", rate-limited ", counters_.icmp_errors_limited,
                  "\noffload  inside ", OffloadText(stack_->link()), "; outside ", OffloadText(*outside_),
                  "\nnat drops (packets)");
  for (size_t i = 1; i < drops.size(); ++i) {
    absl::StrAppend(&out, " ", nat::DropReasonName(static_cast<nat::DropReason>(i)), "=", drops[i]);
  }
  absl::StrAppend(&out, "\npcp results (replies)");
  const auto& results = server_.counters().pcp_results;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i]) absl::StrAppend(&out, " ", pcp::ResultName(static_cast<pcp::ResultCode>(i)), "=", results[i]);
  }
  absl::StrAppend(&out, "; nat-pmp requests ", server_.counters().natpmp_requests, "\nsessions ",
                  engine_.session_count(), "\n");
  absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-21s %-21s %-12s %8s %s\n", "PROTO", "INTERNAL", "EXTERNAL",
                                        "REMOTE", "GATEWAY-ENDPOINT", "STATE", "IDLE-S", "KIND"));
  engine_.ForEachSession(now, [&](const nat::NatEngine::SessionInfo& s) {
    if (rows++ >= kMaxStatusRows) return;
    absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-21s %-21s %-12s %8d %s\n", ProtoName(s.protocol),
                                          Ep(s.internal), Ep(s.external), Ep(s.remote), Ep(s.gateway_endpoint), s.state,
                                          s.idle_ms / 1000, s.dpm ? "dpm" : "napt"));
  });
  if (rows > kMaxStatusRows) absl::StrAppend(&out, "... and ", rows - kMaxStatusRows, " more\n");
  // Mappings: the explicit ones a PCP or NAT-PMP client made show here before any connection
  // uses them (RFC 6887 §11, RFC 6886 §3.3), with their filters (RFC 6887 §13.3).
  absl::StrAppend(&out, "mappings ", engine_.mapping_count(), "\n",
                  absl::StrFormat("%-5s %-21s %-21s %-8s %11s %8s %s\n", "PROTO", "INTERNAL", "EXTERNAL", "MADE-BY",
                                  "LIFETIME-S", "SESSIONS", "FILTERS"));
  rows = 0;
  engine_.ForEachMapping(now, [&](const nat::NatEngine::MappingInfo& m) {
    if (rows++ >= kMaxStatusRows) return;
    std::string filters = m.filters.empty() ? (m.dpm ? "dpm sessions' remotes only" : "any remote") : "";
    for (size_t i = 0; i < m.filters.size(); ++i) absl::StrAppend(&filters, i ? ", " : "", FilterText(m.filters[i]));
    absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-8s %11s %8d %s\n", ProtoName(m.protocol),
                                          MappingInternal(m), Ep(m.external), nat::MappingOriginName(m.origin),
                                          m.lifetime_left_ms ? absl::StrCat(*m.lifetime_left_ms / 1000) : "-",
                                          m.sessions, filters));
  });
  if (rows > kMaxStatusRows) absl::StrAppend(&out, "... and ", rows - kMaxStatusRows, " more\n");
  return out;
}

}  // namespace dpm::gateway
