#include "stack/udp_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "lwip/pbuf.h"
#include "stack/api_listener.h"
#include "stack/service_status.h"
#include "stack/stack.h"

namespace dpm::stack {

UdpSocket::UdpSocket(SocketHost& host, int near_fd, udp_pcb* pcb)
    : Socket(host, near_fd, false), pcb_(pcb), dpm_client_(nat::Protocol::kUdp, DpmCalls()) {
  udp_recv(pcb_, &UdpSocket::OnRecv, this);
}

void UdpSocket::Start() { WaitAppReadable(); }

void UdpSocket::PresetLocalAddress(const ip_addr_t& address) {
  if (!bound_ && pcb_->local_port == 0) ip_addr_copy(pcb_->local_ip, address);
}

int UdpSocket::Bind(const api::Endpoint& local) {
  if (int e = CheckLocal(local)) return e;
  if (bound_) return EINVAL;
  return BindLocal(local);
}

int UdpSocket::BindLwip(const ip_addr_t& ip, uint16_t port) {
  // The sockets of one virtual stream share its hidden port (lwIP hands a datagram to the one
  // that bound last; each may send).
  if (virtual_port_ != 0) ip_set_option(pcb_, SOF_REUSEADDR);
  err_t err = udp_bind(pcb_, &ip, port);
  if (err != ERR_OK) return ErrnoOf(err);
  bound_ = true;
  return 0;
}

bool UdpSocket::DpmSource(DpmSessionSource* source) {
  if (pcb_->local_port == 0) {
    if (TakeOwnAddress() != 0 || udp_bind(pcb_, AnyOrOwn(), 0) != ERR_OK) return false;
    bound_ = true;
  }
  *source = DpmSessionSource{pcb_->local_port, dpm_port_fixed, own_address_};
  return true;
}

int UdpSocket::Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) {
  if (pending_connect_) return EALREADY;
  if (remote.family == AF_UNSPEC) {  // connect(AF_UNSPEC) dissolves the association
    udp_disconnect(pcb_);
    state_ = State::kOpen;
    dpm_client_.Disconnect();
    return 0;
  }
  if (remote.family != AF_INET) return EAFNOSUPPORT;
  if (!Routable(remote)) return ENETUNREACH;
  if (int e = TakeOwnAddress()) return e;
  if (DpmApplies(remote)) {
    // DPM patent, claims 1-5, for a datagram session: the setup exchange first; connect() answers
    // when the grant names the gateway endpoint, and the pcb is connected to that endpoint.
    DpmSessionSource source;
    if (!dpm_client_.HasPeer(remote) && !DpmSource(&source)) return ENOBUFS;
    DpmClientActions actions;
    const int result = dpm_client_.Connect(remote, source, &actions);
    if (result < 0) pending_connect_ = conn;
    Apply(actions);
    return result;
  }
  dpm_client_.Disconnect();
  // Cooperative VPM (docs/vpm.md): the association's hidden port is negotiated first, and
  // connect() answers when it is known.
  std::string aid;
  if (const int c = CooperativeAid(remote, &aid); c != kNotCooperative) {
    if (c != 0) return c;
    if (pcb_->local_port == 0) {
      if (udp_bind(pcb_, AnyOrOwn(), 0) != ERR_OK) return ENOBUFS;  // the port the negotiation names
      bound_ = true;
    }
    pending_connect_ = conn;
    Negotiate(remote, aid, pcb_->local_ip, pcb_->local_port);
    return -1;
  }
  ip_addr_t ip;
  ToIpAddr(remote, &ip);
  err_t err = udp_connect(pcb_, &ip, remote.port_host());
  if (err != ERR_OK) return ErrnoOf(err);
  bound_ = true;
  state_ = State::kConnected;
  return 0;
}

void UdpSocket::OnNegotiated(int error, const api::Endpoint& remote) {
  if (pcb_ == nullptr || !pending_connect_) return;  // closed meanwhile
  if (error == 0) {
    ip_addr_t ip;
    ToIpAddr(remote, &ip);  // the virtual port: the client flow takes it to the hidden one
    const err_t err = udp_connect(pcb_, &ip, remote.port_host());
    if (err == ERR_OK) {
      bound_ = true;
      state_ = State::kConnected;
    } else {
      error = ErrnoOf(err);
    }
  }
  pending_connect_->Reply(api::Opcode::kConnect, error);
  pending_connect_.reset();
}

int UdpSocket::Name(bool peer, api::Endpoint* out) const {
  if (peer) {
    if (state_ != State::kConnected) return ENOTCONN;
    // claim 11: a DPM session shows its true destination, not the gateway endpoint
    const api::Endpoint* remote = dpm_client_.connected_remote();
    *out = remote != nullptr ? *remote : ToEndpoint(pcb_->remote_ip, pcb_->remote_port);
    return 0;
  }
  if (const api::Endpoint* external = dpm_client_.connected_external()) {  // claim 11: the registered endpoint
    *out = *external;
    return 0;
  }
  *out = ToEndpoint(pcb_->local_ip, ShownLocalPort(pcb_->local_port));
  // connect(2) on a kernel UDP socket picks the source address; lwIP leaves the pcb bound
  // to "any" and chooses per datagram, so report the address it will use.
  if (state_ == State::kConnected && ip_addr_isany(&pcb_->local_ip)) {
    *out = api::Endpoint::Ipv4(host_.stack().config().address, pcb_->local_port);
  }
  return 0;
}

int UdpSocket::Shutdown(int how) {
  if (how < SHUT_RD || how > SHUT_RDWR) return EINVAL;
  return state_ == State::kConnected ? 0 : ENOTCONN;
}

int UdpSocket::SetOption(int level, int name, const std::vector<uint8_t>& value) {
  int v = 0;
  if (!ReadInt(value, &v)) return EINVAL;
  if (level == SOL_SOCKET && name == SO_REUSEADDR) {
    v ? ip_set_option(pcb_, SOF_REUSEADDR) : ip_reset_option(pcb_, SOF_REUSEADDR);
    return 0;
  }
  if (level == SOL_SOCKET && name == SO_BROADCAST) {
    v ? ip_set_option(pcb_, SOF_BROADCAST) : ip_reset_option(pcb_, SOF_BROADCAST);
    return 0;
  }
  if (level == IPPROTO_IP && name == IP_TOS) {
    if (v < 0 || v > 255) return EINVAL;
    pcb_->tos = static_cast<u8_t>(v);
    return 0;
  }
  if (level == IPPROTO_IP && name == IP_TTL) {
    if (v < 1 || v > 255) return EINVAL;
    pcb_->ttl = static_cast<u8_t>(v);
    return 0;
  }
  return ENOPROTOOPT;
}

int UdpSocket::GetOption(int level, int name, int* value) {
  if (level == SOL_SOCKET && name == SO_ERROR) { *value = last_error_; last_error_ = 0; return 0; }
  if (level == SOL_SOCKET && name == SO_TYPE) { *value = SOCK_DGRAM; return 0; }
  if (level == SOL_SOCKET && name == SO_REUSEADDR) { *value = ip_get_option(pcb_, SOF_REUSEADDR) ? 1 : 0; return 0; }
  if (level == SOL_SOCKET && name == SO_BROADCAST) { *value = ip_get_option(pcb_, SOF_BROADCAST) ? 1 : 0; return 0; }
  if (level == IPPROTO_IP && name == IP_TOS) { *value = pcb_->tos; return 0; }
  if (level == IPPROTO_IP && name == IP_TTL) { *value = pcb_->ttl; return 0; }
  return ENOPROTOOPT;
}

void UdpSocket::Destroy() {
  if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, ECONNABORTED);
  pending_connect_.reset();
  dpm_client_.ReleaseAll();  // lifetime 0 for every grant
  if (pcb_ != nullptr) {
    udp_recv(pcb_, nullptr, nullptr);
    udp_remove(pcb_);
    pcb_ = nullptr;
  }
  boost::system::error_code ignored;
  sd_.close(ignored);
}

SocketRow UdpSocket::Describe() const {
  api::Endpoint local, peer;
  Name(false, &local);
  Name(true, &peer);
  return Row(dpm_client_.empty() ? "udp" : "udp*", local, peer, 0, 0);
}

void UdpSocket::OnDpmEvent(const driver::Event& e) {
  DpmClientActions actions;
  dpm_client_.OnEvent(e, &actions);
  Apply(actions, /*report_send_errors=*/false);  // held datagrams go as they can, unreported
}

void UdpSocket::Apply(DpmClientActions& actions, bool report_send_errors) {
  if (actions.connect) ConnectTo(*actions.connect);
  for (const DpmDatagram& d : actions.send) {
    err_t err = SendTo(d.to, d.payload.data(), d.payload.size());
    if (err != ERR_OK && report_send_errors) last_error_ = ErrnoOf(err);
  }
  if (actions.connect_result && pending_connect_) {
    pending_connect_->Reply(api::Opcode::kConnect, *actions.connect_result);
    pending_connect_.reset();
  }
  if (actions.error != 0) last_error_ = actions.error;
  host_.counters().udp_dpm_dropped += actions.dropped;
}

void UdpSocket::ConnectTo(const api::Endpoint& gateway_endpoint) {
  ip_addr_t ip;
  ToIpAddr(gateway_endpoint, &ip);
  udp_connect(pcb_, &ip, gateway_endpoint.port_host());  // claim 5
  bound_ = true;
  state_ = State::kConnected;
}

err_t UdpSocket::SendTo(const api::Endpoint& to, const uint8_t* data, size_t size) {
  pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(size), PBUF_RAM);
  if (p == nullptr) return ERR_MEM;
  pbuf_take(p, data, static_cast<u16_t>(size));
  ip_addr_t ip;
  ToIpAddr(to, &ip);
  err_t err = udp_sendto(pcb_, p, &ip, to.port_host());
  pbuf_free(p);
  return err;
}

void UdpSocket::WaitAppReadable() {
  Await(Wait::wait_read, &read_waiting_, [this] {
    if (OnAppReadable()) WaitAppReadable();
  });
}

bool UdpSocket::OnAppReadable() {
  std::vector<uint8_t>& buf = host_.scratch();
  SocketServiceCounters& counters = host_.counters();
  for (;;) {
    ssize_t n = ::recv(sd_.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) {  // every message has a header, so 0 bytes is end-of-file
      ReleaseSelf();
      return false;
    }
    size_t len = static_cast<size_t>(n);
    if (len < api::kDatagramHeaderSize) {
      counters.udp_tx_malformed++;
      continue;
    }
    absl::StatusOr<api::Endpoint> to = api::ParseEndpoint(absl::MakeConstSpan(buf.data(), api::kDatagramHeaderSize));
    if (!to.ok() || (to->family == 0 && state_ != State::kConnected) ||
        (to->family != 0 && to->family != AF_INET)) {
      counters.udp_tx_malformed++;
      continue;
    }
    size_t payload = len - api::kDatagramHeaderSize;
    if (int e = TakeOwnAddress()) {  // the first send of an unbound socket (deferred embodiment)
      last_error_ = e;
      counters.udp_tx_no_address++;
      continue;
    }
    const bool to_connected_peer = to->family != 0 && dpm_client_.IsConnectedPeer(*to);
    if (to->family != 0 && DpmApplies(*to) && !to_connected_peer) {
      // A datagram for a peer outside the private network from an unconnected socket: sent
      // to the peer's gateway endpoint once granted, held (bounded) while the setup runs.
      DpmSessionSource source;
      if (!dpm_client_.HasPeer(*to) && !DpmSource(&source)) {
        last_error_ = ENOBUFS;
        counters.udp_dpm_dropped++;
        continue;
      }
      DpmClientActions actions;
      dpm_client_.Send(*to, absl::MakeConstSpan(buf.data() + api::kDatagramHeaderSize, payload), source, &actions);
      Apply(actions);
      continue;
    }
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(payload), PBUF_RAM);
    if (p == nullptr) continue;
    pbuf_take(p, buf.data() + api::kDatagramHeaderSize, static_cast<u16_t>(payload));
    err_t err;
    if (to->family == 0 || to_connected_peer) {
      err = udp_send(pcb_, p);
    } else {
      ip_addr_t ip;
      ToIpAddr(*to, &ip);
      err = udp_sendto(pcb_, p, &ip, to->port_host());
    }
    if (err != ERR_OK) last_error_ = ErrnoOf(err);
    pbuf_free(p);
  }
}

void UdpSocket::OnRecv(void* arg, udp_pcb* /*pcb*/, pbuf* p, const ip_addr_t* addr, u16_t port) {
  auto* s = static_cast<UdpSocket*>(arg);
  if (s == nullptr) {
    pbuf_free(p);
    return;
  }
  // claim 11: a DPM peer's datagrams show its true address
  const api::Endpoint from = s->dpm_client_.TrueSource(ToEndpoint(*addr, port));
  std::vector<uint8_t> header = api::EncodeEndpoint(from);
  iovec parts[64];
  size_t count = 0;
  parts[count++] = iovec{header.data(), header.size()};
  for (pbuf* q = p; q != nullptr && count < 64; q = q->next) parts[count++] = iovec{q->payload, q->len};
  msghdr m{};
  m.msg_iov = parts;
  m.msg_iovlen = count;
  if (::sendmsg(s->sd_.native_handle(), &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    s->host_.counters().udp_rx_dropped++;
  }
  pbuf_free(p);
}

}  // namespace dpm::stack
