#include "stack/dpm_driver_host.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <vector>

#include <boost/asio/post.hpp>

#include "lwip/pbuf.h"
#include "os/entropy.h"
#include "stack/socket_base.h"
#include "stack/socket_service.h"
#include "stack/stack.h"

namespace dpm::stack {

DpmDriverHost::DpmDriverHost(Stack& stack, const DpmDriverSettings& settings)
    : stack_(stack),
      clock_(stack.clock()),
      private_network_(settings.private_network),
      private_prefix_(settings.private_prefix),
      timer_(stack.clock().NewTimer()) {
  driver::DriverConfig dc;
  dc.server_address = settings.server_address;
  dc.server_port = settings.server_port;
  dc.client_address = stack_.config().address;
  dc.lifetime_s = settings.lifetime_s;
  driver_ = std::make_unique<driver::Driver>(dc, os::RandomU64());
  pcb_ = udp_new();
  udp_bind(pcb_, IP4_ADDR_ANY, 0);
  ip_addr_t server;
  ip_addr_set_ip4_u32(&server, htonl(dc.server_address));
  udp_connect(pcb_, &server, dc.server_port);
  udp_recv(
      pcb_,
      [](void* arg, udp_pcb*, pbuf* p, const ip_addr_t*, u16_t) {
        auto* self = static_cast<DpmDriverHost*>(arg);
        std::vector<uint8_t> bytes(p->tot_len);
        pbuf_copy_partial(p, bytes.data(), p->tot_len, 0);
        pbuf_free(p);
        self->driver_->OnReply(self->clock_.NowMs(), bytes);
        self->Work();
      },
      this);
}

DpmDriverHost::~DpmDriverHost() {
  *alive_ = false;
  if (pcb_ != nullptr) udp_remove(pcb_);
}

bool DpmDriverHost::Applies(const api::Endpoint& remote) const {
  if (remote.family != AF_INET) return false;
  uint32_t mask = private_prefix_ == 0 ? 0 : ~uint32_t{0} << (32 - private_prefix_);
  return (remote.ipv4_host() & mask) != (private_network_ & mask);
}

void DpmDriverHost::PostWork() {
  boost::asio::post(stack_.io(), [this, alive = alive_] {
    if (*alive) Work();
  });
}

uint64_t DpmDriverHost::Begin(std::weak_ptr<Socket> owner, const DpmSetupRequest& r) {
  uint64_t id = driver_->Begin(clock_.NowMs(), r.protocol, r.internal_port, {r.remote.ipv4_host(), r.remote.port_host()},
                               r.port_fixed, r.internal_address);
  sessions_[id] = std::move(owner);
  setups_++;
  PostWork();
  return id;
}

void DpmDriverHost::Release(uint64_t id) {
  sessions_.erase(id);
  driver_->Release(clock_.NowMs(), id);
  PostWork();
}

void DpmDriverHost::Work() {
  std::vector<driver::Outgoing> out;
  std::vector<driver::Event> events;
  driver_->Poll(clock_.NowMs(), &out, &events);
  for (const driver::Outgoing& o : out) {
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(o.payload.size()), PBUF_RAM);
    if (p == nullptr) continue;
    pbuf_take(p, o.payload.data(), static_cast<u16_t>(o.payload.size()));
    // From the session's internal address: the host's, or the socket's own.
    ip_addr_t source;
    ip_addr_set_ip4_u32(&source, htonl(o.source));
    udp_sendto_if_src(pcb_, p, &pcb_->remote_ip, pcb_->remote_port, stack_.lwip_netif(), &source);
    pbuf_free(p);
  }
  for (const driver::Event& e : events) {
    auto it = sessions_.find(e.id);
    if (it == sessions_.end()) continue;
    std::shared_ptr<Socket> s = it->second.lock();
    if (e.kind != driver::Event::Kind::kGranted && e.kind != driver::Event::Kind::kLost) {
      sessions_.erase(it);
      failures_++;
    }
    if (s) s->OnDpmEvent(e);
  }
  if (std::optional<uint64_t> next = driver_->NextDeadline()) {
    timer_->Start(*next, [this] { Work(); });
  }
  stack_.AfterCoreWork();
}

DpmDriverStatus DpmDriverHost::status() const {
  return DpmDriverStatus{driver_->session_count(), setups_, failures_, driver_->gateway_restarts(),
                         driver_->ignored_replies()};
}

}  // namespace dpm::stack

