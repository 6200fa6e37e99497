#include "stack/socket_base.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/post.hpp>

#include "lwip/netif.h"
#include "os/entropy.h"
#include "stack/address_ownership.h"
#include "stack/dpm_driver_host.h"
#include "stack/port_multiplexer.h"
#include "stack/stack.h"

namespace dpm::stack {
namespace {

constexpr int kPairBuffer = 1024 * 1024;  // bytes of kernel buffer on the daemon's end

}  // namespace

int ErrnoOf(err_t err) {
  switch (err) {
    case ERR_OK: return 0;
    case ERR_MEM: return ENOBUFS;
    case ERR_BUF: return ENOBUFS;
    case ERR_TIMEOUT: return ETIMEDOUT;
    case ERR_RTE: return ENETUNREACH;
    case ERR_INPROGRESS: return EINPROGRESS;
    case ERR_VAL: return EINVAL;
    case ERR_WOULDBLOCK: return EWOULDBLOCK;
    case ERR_USE: return EADDRINUSE;
    case ERR_ALREADY: return EALREADY;
    case ERR_ISCONN: return EISCONN;
    case ERR_CONN: return ENOTCONN;
    case ERR_IF: return ENETDOWN;
    case ERR_ABRT: return ECONNABORTED;
    case ERR_RST: return ECONNRESET;
    case ERR_CLSD: return ENOTCONN;
    case ERR_ARG: return EINVAL;
    default: return EIO;
  }
}

api::Endpoint ToEndpoint(const ip_addr_t& ip, uint16_t port_host) {
  return api::Endpoint::Ipv4(ntohl(ip4_addr_get_u32(ip_2_ip4(&ip))), port_host);
}

void ToIpAddr(const api::Endpoint& e, ip_addr_t* ip) { ip_addr_set_ip4_u32(ip, htonl(e.ipv4_host())); }

bool ReadInt(const std::vector<uint8_t>& v, int* out) {
  if (v.size() < sizeof(int)) return false;
  std::memcpy(out, v.data(), sizeof(int));
  return true;
}

bool PeerHungUp(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

void SetPairBuffers(int fd) {
  // SO_*BUFFORCE lets root go past net.core.[rw]mem_max; fall back to the capped option.
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kPairBuffer, sizeof(kPairBuffer)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kPairBuffer, sizeof(kPairBuffer));
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kPairBuffer, sizeof(kPairBuffer)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kPairBuffer, sizeof(kPairBuffer));
  }
}

const char* Socket::StateName(State s) {
  switch (s) {
    case State::kOpen: return "open";
    case State::kConnecting: return "connecting";
    case State::kConnected: return "connected";
    case State::kListening: return "listening";
    case State::kClosed: return "closed";
  }
  return "?";
}

Socket::Socket(SocketHost& host, int near_fd, bool tcp)
    : host_(host), sd_(host.io(), near_fd), tcp_(tcp), cookie_(os::RandomU64()) {}

void Socket::LoseAddress(int error) {
  own_address_ = 0;
  DropPcbForLostAddress();
  last_error_ = error;
  state_ = State::kClosed;
  // The program reads end-of-file and finds `error` in SO_ERROR; the socket stays until it
  // closes its descriptor.
  ::shutdown(sd_.native_handle(), SHUT_WR);
}

void Socket::ReleaseSelf() {
  if (releasing_) return;
  releasing_ = true;
  boost::asio::post(host_.io(), [self = shared_from_this()] {
    self->host_.Release(self->id_);
    self->AfterCoreWork();
  });
}

void Socket::AfterCoreWork() { host_.stack().AfterCoreWork(); }

int Socket::CheckLocal(const api::Endpoint& e) {
  if (e.family != AF_INET) return EAFNOSUPPORT;
  uint32_t a = e.ipv4_host();
  if (tuple_ != DPM_TUPLE_COMMON) {
    if (int err = TakeOwnAddress()) return err;
    return a == 0 || a == own_address_ ? 0 : EADDRNOTAVAIL;
  }
  if (a != 0 && !host_.stack().IsLocalAddress(a)) return EADDRNOTAVAIL;
  return 0;
}

int Socket::VirtualBind(uint16_t port, const ip_addr_t& ip, uint16_t* lwip_port) {
  *lwip_port = port;
  PortMultiplexer* vpm = host_.vpm();
  const vpm::PortKey key{tcp_ ? vpm::Protocol::kTcp : vpm::Protocol::kUdp, port};
  if (bind_queued_) return EINVAL;  // bound already, as far as the program knows
  if (vpm == nullptr || port == 0 || virtual_port_ != 0 || !vpm->Multiplexed(key)) return 0;
  std::string aid;
  if (int e = vpm->ChooseAid(key, aid_request, creator_pid, creator_uid, &aid)) return e;
  const int e = vpm->Bind(key, aid, id_, lwip_port,
                          [weak = std::weak_ptr<Socket>(shared_from_this())](int error, uint16_t hidden) {
                            if (auto self = weak.lock()) self->OnVirtualPortGranted(error, hidden);
                          });
  if (e == PortMultiplexer::kQueued) {
    bind_queued_ = true;
    queued_port_ = port;
    queued_aid_ = std::move(aid);
    queued_ip_ = ip;
    return kBindQueued;
  }
  if (e != 0) return e;
  virtual_port_ = port;
  vpm_aid_ = std::move(aid);
  return 0;
}

int Socket::BindLocal(const api::Endpoint& local) {
  ip_addr_t ip;
  ToIpAddr(local, &ip);
  if (own_address_ != 0) ip = own_ip_;
  uint16_t port = local.port_host();
  int e = VirtualBind(local.port_host(), ip, &port);  // docs/vpm.md: the hidden port
  if (e == 0) {
    e = BindLwip(ip, port);
    if (e != 0) ReleaseVirtualPort();
  }
  // An explicitly bound port is not replaceable (a queued one too, once it is granted).
  if ((e == 0 || e == kBindQueued) && local.port_be != 0) dpm_port_fixed = true;
  return e;
}

void Socket::OnVirtualPortGranted(int error, uint16_t hidden) {
  bind_queued_ = false;
  std::function<void(int)> done = std::move(bind_done);
  bind_done = nullptr;
  if (error == 0) {
    virtual_port_ = queued_port_;
    vpm_aid_ = queued_aid_;
    error = BindLwip(queued_ip_, hidden);
    if (error != 0) ReleaseVirtualPort();
  }
  if (done) done(error);
  AfterCoreWork();
}

void Socket::InheritVirtualPort(const Socket& listener) {
  PortMultiplexer* vpm = host_.vpm();
  if (vpm == nullptr || listener.virtual_port_ == 0) return;
  virtual_port_ = listener.virtual_port_;
  vpm_aid_ = listener.vpm_aid_;
  vpm->Hold(vpm::PortKey{tcp_ ? vpm::Protocol::kTcp : vpm::Protocol::kUdp, virtual_port_}, vpm_aid_);
}

void Socket::ReleaseVirtualPort() {
  PortMultiplexer* vpm = host_.vpm();
  if (vpm != nullptr) vpm->CancelNegotiation(id_);  // closed while its connect negotiated
  if (vpm != nullptr && bind_queued_) {
    bind_queued_ = false;
    vpm->Cancel(id_);
    if (std::function<void(int)> done = std::move(bind_done)) done(EBADF);  // closed while it waited
    bind_done = nullptr;
  }
  if (vpm == nullptr || virtual_port_ == 0) return;
  vpm->Release(vpm::PortKey{tcp_ ? vpm::Protocol::kTcp : vpm::Protocol::kUdp, virtual_port_}, vpm_aid_);
  virtual_port_ = 0;
}

int Socket::CooperativeAid(const api::Endpoint& remote, std::string* aid) const {
  PortMultiplexer* vpm = host_.vpm();
  if (vpm == nullptr) return kNotCooperative;
  const vpm::PortKey key{tcp_ ? vpm::Protocol::kTcp : vpm::Protocol::kUdp, remote.port_host()};
  const vpm::CooperativePeer* peer = vpm->PeerFor(key, remote.ipv4_host());
  if (peer == nullptr) return kNotCooperative;
  return vpm->ChooseConnectAid(key, *peer, aid_request, creator_pid, creator_uid, aid);
}

void Socket::Negotiate(const api::Endpoint& remote, const std::string& aid, const ip_addr_t& local_ip,
                       uint16_t local_port) {
  // The source of the connection the negotiation names: the socket's own address, the one
  // it is bound to, or the stack's.
  const uint32_t bound = ntohl(ip4_addr_get_u32(ip_2_ip4(&local_ip)));
  const uint32_t local = own_address_ != 0 ? own_address_ : bound != 0 ? bound : host_.stack().config().address;
  const vpm::PortKey key{tcp_ ? vpm::Protocol::kTcp : vpm::Protocol::kUdp, remote.port_host()};
  host_.vpm()->Negotiate(id_, key, aid, local, local_port, remote.ipv4_host(),
                         [weak = std::weak_ptr<Socket>(shared_from_this()), remote](int error, uint16_t) {
                           if (auto self = weak.lock()) {
                             self->OnNegotiated(error, remote);
                             self->AfterCoreWork();
                           }
                         });
}

bool Socket::DpmApplies(const api::Endpoint& remote) const {
  return host_.dpm() != nullptr && host_.dpm()->Applies(remote);
}

bool Socket::Routable(const api::Endpoint& remote) {
  const netif* nif = netif_default;
  if (nif == nullptr) return false;
  if (!ip4_addr_isany_val(*netif_ip4_gw(nif))) return true;
  ip4_addr_t to;
  ip4_addr_set_u32(&to, htonl(remote.ipv4_host()));
  return ip4_addr_netcmp(&to, netif_ip4_addr(nif), netif_ip4_netmask(nif)) || ip4_addr_isbroadcast(&to, nif);
}

DpmSetupCalls Socket::DpmCalls() {
  return DpmSetupCalls{
      [this](const DpmSetupRequest& request) { return host_.dpm()->Begin(weak_from_this(), request); },
      [this](uint64_t id) { host_.dpm()->Release(id); }};
}

SocketRow Socket::Row(const char* proto, const api::Endpoint& local, const api::Endpoint& peer, size_t to_app,
                      size_t from_app) const {
  return SocketRow{id_, proto, StateName(state_), local, peer, to_app, from_app};
}

int Socket::TakeOwnAddress() {
  if (tuple_ == DPM_TUPLE_COMMON || own_address_ != 0) return 0;
  if (tuple_ == DPM_TUPLE_DYNAMIC) return EADDRNOTAVAIL;  // its lease is gone (LoseAddress)
  std::optional<uint32_t> a = host_.addresses().Take();
  if (!a) return EADDRNOTAVAIL;
  AdoptAddress(*a);
  return 0;
}

void Socket::AdoptAddress(uint32_t address) {
  own_address_ = address;
  ip_addr_set_ip4_u32(&own_ip_, htonl(address));
  PresetLocalAddress(own_ip_);
  if (dscp_ >= 0) host_.stack().SetAddressDscp(own_address_, dscp_);
}

int Socket::SetAddressDscp(int dscp) {
  if (dscp < -1 || dscp > 63 || tuple_ == DPM_TUPLE_COMMON) return EINVAL;
  dscp_ = dscp;
  if (own_address_ != 0) host_.stack().SetAddressDscp(own_address_, dscp);
  return 0;
}

int Socket::AddressDscp() const {
  return own_address_ != 0 ? host_.stack().AddressDscp(own_address_) : dscp_;
}

void Socket::ShareOwnAddress(const Socket& listener) {
  if (listener.own_address_ == 0) return;
  tuple_ = listener.tuple_;
  own_address_ = listener.own_address_;
  own_ip_ = listener.own_ip_;
  host_.addresses().Hold(own_address_);
}

}  // namespace dpm::stack
