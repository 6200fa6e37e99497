#include "stack/dhcp_leases.h"

#include <arpa/inet.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <string>

#include "absl/strings/str_format.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "os/entropy.h"
#include "stack/stack.h"

namespace dpm::stack {
namespace {

// A client's counters of what it refused (DhcpClientCounters).
uint64_t Refused(const dhcp::DhcpClientCounters& c) {
  return c.malformed + c.not_reply + c.wrong_xid + c.wrong_chaddr + c.wrong_client_id + c.unexpected_type +
         c.invalid_lease;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DhcpLeases>> DhcpLeases::Create(boost::asio::io_context& io, Stack& stack,
                                                               const Config& config) {
  if (!stack.ethernet()) {
    return absl::FailedPreconditionError("DHCP leases need an Ethernet link (dpmd client --link tap)");
  }
  udp_pcb* pcb = udp_new();
  if (pcb == nullptr) return absl::UnavailableError("dhcp: no memory for a UDP pcb");
  ip_set_option(pcb, SOF_BROADCAST);
  if (udp_bind(pcb, IP4_ADDR_ANY, dhcp::kClientPort) != ERR_OK) {
    udp_remove(pcb);
    return absl::UnavailableError("dhcp: UDP port 68 of the stack is taken");
  }
  udp_bind_netif(pcb, stack.lwip_netif());
  auto leases = std::unique_ptr<DhcpLeases>(new DhcpLeases(io, stack, config, pcb));
  udp_recv(
      pcb,
      [](void* arg, udp_pcb*, pbuf* p, const ip_addr_t*, u16_t port) {
        auto* self = static_cast<DhcpLeases*>(arg);
        if (port != dhcp::kServerPort) {  // only servers (and relays) send from port 67
          self->counters_.malformed++;
          pbuf_free(p);
          return;
        }
        self->OnDatagram(p);
      },
      leases.get());
  return leases;
}

DhcpLeases::DhcpLeases(boost::asio::io_context& io, Stack& stack, const Config& config, udp_pcb* pcb)
    : io_(io), stack_(stack), config_(config), pcb_(pcb), timer_(stack.clock().NewTimer()), random_(os::RandomU32()) {}

DhcpLeases::~DhcpLeases() {
  timer_->Cancel();
  udp_remove(pcb_);
}

uint64_t DhcpLeases::NowMs() const { return stack_.clock().NowMs(); }

size_t DhcpLeases::held() const {
  size_t n = 0;
  for (const auto& [id, owner] : owners_) n += owner.holding ? 1 : 0;
  return n;
}

DhcpLeaseCounters DhcpLeases::counters() const {
  DhcpLeaseCounters c = counters_;
  c.malformed += clients_.malformed();
  c.unrouted += clients_.unrouted();
  for (const auto& [id, owner] : owners_) {
    if (const dhcp::DhcpClient* client = clients_.Find(id)) {
      c.ignored += Refused(client->counters());
    }
  }
  return c;
}

void DhcpLeases::Obtain(uint64_t id, Bound bound, Lost lost) {
  counters_.requested++;
  dhcp::DhcpClientConfig config;
  std::copy(stack_.mac().begin(), stack_.mac().end(), config.chaddr.begin());
  // Option 61, type 0 (not a hardware address, RFC 2132 §9.14): unique per socket and
  // readable in the server's lease list.
  const auto& m = stack_.mac();
  std::string identifier = absl::StrFormat("dpm/%02x%02x%02x%02x%02x%02x/%d", m[0], m[1], m[2], m[3], m[4], m[5], id);
  config.client_identifier.push_back(0);
  config.client_identifier.insert(config.client_identifier.end(), identifier.begin(), identifier.end());
  config.random = [this] { return static_cast<uint32_t>(random_()); };
  config.acquire_timeout_ms = config_.acquire_timeout_ms;
  dhcp::DhcpActions actions;
  absl::Status s = clients_.Add(id, std::move(config));
  if (s.ok()) s = clients_.Start(id, NowMs(), &actions);
  if (!s.ok()) {
    clients_.Remove(id);
    boost::asio::post(io_, [lost = std::move(lost)] { lost(EINVAL); });
    return;
  }
  owners_[id] = Owner{std::move(bound), std::move(lost)};
  Apply(actions);
}

void DhcpLeases::Release(uint64_t id) {
  if (!owners_.contains(id)) return;
  dhcp::DhcpActions actions;
  clients_.Release(id, NowMs(), &actions);
  Forget(id);
  for (const auto& t : actions.transmits) {
    if (t.type == dhcp::MessageType::kRelease) counters_.released++;
  }
  actions.events.clear();  // nobody to tell
  Apply(actions);
}

void DhcpLeases::Forget(uint64_t id) {
  if (const dhcp::DhcpClient* client = clients_.Find(id)) counters_.ignored += Refused(client->counters());
  clients_.Remove(id);
  owners_.erase(id);
}

void DhcpLeases::OnDatagram(pbuf* p) {
  std::vector<uint8_t> bytes(p->tot_len);
  pbuf_copy_partial(p, bytes.data(), p->tot_len, 0);
  pbuf_free(p);
  dhcp::DhcpActions actions;
  clients_.OnMessage(NowMs(), bytes, &actions);
  Apply(actions);
}

void DhcpLeases::Apply(dhcp::DhcpActions& actions) {
  for (const dhcp::DhcpTransmit& t : actions.transmits) {
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(t.payload.size()), PBUF_RAM);
    if (p == nullptr) {
      counters_.send_errors++;
      continue;
    }
    pbuf_take(p, t.payload.data(), static_cast<u16_t>(t.payload.size()));
    ip_addr_t destination, source;
    ip_addr_set_ip4_u32(&destination, htonl(t.destination));
    ip_addr_set_ip4_u32(&source, htonl(t.source));  // 0.0.0.0 until a lease is held (§4.1)
    if (udp_sendto_if_src(pcb_, p, &destination, dhcp::kServerPort, stack_.lwip_netif(), &source) != ERR_OK) {
      counters_.send_errors++;
    }
    pbuf_free(p);
  }
  for (const dhcp::DhcpEvent& e : actions.events) {
    auto it = owners_.find(e.tag);
    if (it == owners_.end()) continue;
    Owner& owner = it->second;
    switch (e.kind) {
      case dhcp::DhcpEvent::Kind::kBound:
        counters_.bound++;
        owner.holding = true;
        boost::asio::post(io_, [bound = owner.bound, a = e.lease.address] { bound(a); });
        break;
      case dhcp::DhcpEvent::Kind::kRenewed:
        counters_.renewed++;
        break;
      case dhcp::DhcpEvent::Kind::kLost: {
        int error = ETIMEDOUT;
        if (e.reason == dhcp::LostReason::kTimedOut) counters_.timed_out++;
        if (e.reason == dhcp::LostReason::kExpired) counters_.expired++;
        if (e.reason == dhcp::LostReason::kNak) {
          counters_.naks++;
          error = EADDRNOTAVAIL;
        }
        boost::asio::post(io_, [lost = owner.lost, error] { lost(error); });
        Forget(e.tag);
        break;
      }
    }
  }
  actions.clear();
  ArmTimer();
  stack_.AfterCoreWork();
}

void DhcpLeases::ArmTimer() {
  std::optional<uint64_t> deadline = clients_.NextDeadline();
  if (!deadline) {
    timer_->Cancel();
    return;
  }
  timer_->Start(*deadline, [this] {
    dhcp::DhcpActions actions;
    clients_.OnTimer(NowMs(), &actions);
    Apply(actions);
  });
}

}  // namespace dpm::stack
