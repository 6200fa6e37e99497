#include "stack/tcp_socket.h"

#include "stack/connect_gate.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "lwip/priv/tcp_priv.h"
#include "os/fd_passing.h"
#include "stack/address_ownership.h"
#include "stack/port_multiplexer.h"
#include "stack/api_listener.h"
#include "stack/service_status.h"
#include "stack/stack.h"

namespace dpm::stack {
namespace {

constexpr size_t kAppChunk = 65535;  // bytes per read from a program's pair (tcp_write takes u16_t)
// TCP_CONGESTION's answer: lwIP does RFC 5681 slow start and congestion avoidance.
constexpr char kCongestionControl[] = "reno";

}  // namespace

TcpSocket::TcpSocket(SocketHost& host, int near_fd, tcp_pcb* pcb)
    : Socket(host, near_fd, true), pcb_(pcb), dpm_client_(nat::Protocol::kTcp, DpmCalls()) {
  Attach();
}

void TcpSocket::PresetLocalAddress(const ip_addr_t& address) {
  if (pcb_ != nullptr && !bound_) ip_addr_copy(pcb_->local_ip, address);
}

// An accepted connection: already established.
std::shared_ptr<TcpSocket> TcpSocket::Accepted(SocketHost& host, int near_fd, tcp_pcb* pcb) {
  auto s = std::make_shared<TcpSocket>(host, near_fd, pcb);
  s->state_ = State::kConnected;
  s->CacheNames();
  return s;
}

void TcpSocket::Start() {
  if (state_ == State::kConnected) {
    PumpFromApp();
  } else {
    WaitIdle();
  }
}

int TcpSocket::Bind(const api::Endpoint& local) {
  if (int e = CheckLocal(local)) return e;
  if (pcb_ == nullptr || state_ != State::kOpen || bound_) return EINVAL;
  return BindLocal(local);
}

int TcpSocket::BindLwip(const ip_addr_t& ip, uint16_t port) {
  if (pcb_ == nullptr) return EINVAL;
  // A virtual stream's hidden port is shared by its connections (and their TIME-WAITs).
  if (virtual_port_ != 0) ip_set_option(pcb_, SOF_REUSEADDR);
  err_t err = tcp_bind(pcb_, &ip, port);
  if (err != ERR_OK) return ErrnoOf(err);
  bound_ = true;
  return 0;
}

int TcpSocket::Listen(int backlog) {
  if (state_ == State::kListening) return 0;
  if (state_ != State::kOpen || pcb_ == nullptr) return EINVAL;
  if (backlog <= 0 || backlog > 4096) backlog = TCP_DEFAULT_LISTEN_BACKLOG;
  if (int e = TakeOwnAddress()) return e;
  if (!bound_) {
    err_t e = tcp_bind(pcb_, AnyOrOwn(), 0);
    if (e != ERR_OK) return ErrnoOf(e);
    bound_ = true;
  }
  if (virtual_port_ != 0 && !StreamListeners().empty()) {
    // Another socket of this AID listens on the virtual port: share its lwIP listener (docs/vpm.md
    // "Sockets of one AID") instead of a second one on the same hidden port.
    local_ = ToEndpoint(pcb_->local_ip, virtual_port_);
    tcp_close(pcb_);  // bound, never connected: freed at once
    pcb_ = nullptr;
    backlog_ = static_cast<size_t>(backlog);
    state_ = State::kListening;
    host_.vpm()->Listeners(vpm::PortKey{vpm::Protocol::kTcp, virtual_port_}, vpm_aid_).push_back(shared_from_this());
    return 0;
  }
  err_t err = ERR_OK;
  tcp_pcb* lpcb = tcp_listen_with_backlog_and_err(pcb_, static_cast<u8_t>(std::min(backlog, 255)), &err);
  if (lpcb == nullptr) return ErrnoOf(err);
  pcb_ = lpcb;  // lwIP freed the original pcb
  backlog_ = static_cast<size_t>(backlog);
  tcp_arg(pcb_, this);
  tcp_accept(pcb_, &TcpSocket::OnAccept);
  state_ = State::kListening;
  CacheNames();
  if (virtual_port_ != 0) {
    host_.vpm()->Listeners(vpm::PortKey{vpm::Protocol::kTcp, virtual_port_}, vpm_aid_).push_back(shared_from_this());
  }
  return 0;
}

std::vector<std::shared_ptr<TcpSocket>> TcpSocket::StreamListeners() {
  std::vector<std::shared_ptr<TcpSocket>> out;
  PortMultiplexer* vpm = host_.vpm();
  if (vpm == nullptr || virtual_port_ == 0) return out;
  auto& group = vpm->Listeners(vpm::PortKey{vpm::Protocol::kTcp, virtual_port_}, vpm_aid_);
  std::erase_if(group, [](const std::weak_ptr<Socket>& w) {
    auto s = w.lock();
    return s == nullptr || s->state() != State::kListening;
  });
  for (const auto& w : group) out.push_back(std::static_pointer_cast<TcpSocket>(w.lock()));
  return out;
}

TcpSocket* TcpSocket::PickListener() {
  std::vector<std::shared_ptr<TcpSocket>> group = StreamListeners();
  for (size_t i = 0; i < group.size(); ++i) {
    TcpSocket* s = group[(next_listener_ + i) % group.size()].get();
    if (s->accept_queue_.size() < s->backlog_) {
      next_listener_ = (next_listener_ + i + 1) % group.size();
      return s;
    }
  }
  return this;
}

bool TcpSocket::HandOverListener() {
  for (const std::shared_ptr<TcpSocket>& s : StreamListeners()) {
    if (s.get() == this || s->pcb_ != nullptr) continue;
    s->pcb_ = pcb_;
    tcp_arg(pcb_, s.get());
    pcb_ = nullptr;
    return true;
  }
  return false;
}

int TcpSocket::Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) {
  if (remote.family != AF_INET) return EAFNOSUPPORT;
  switch (state_) {
    case State::kConnecting: return EALREADY;
    case State::kConnected: return EISCONN;
    case State::kListening: return EISCONN;  // as Linux answers connect() on a listener
    case State::kClosed: return last_error_ != 0 ? last_error_ : ECONNABORTED;
    case State::kOpen: break;
  }
  if (remote.ipv4_host() == 0 || remote.port_be == 0) return remote.port_be == 0 ? ECONNREFUSED : ENETUNREACH;
  if (!Routable(remote)) return ENETUNREACH;
  if (int e = TakeOwnAddress()) return e;
  if (DpmApplies(remote)) {
    // DPM patent, claims 1-5: agree on the registered address and port with the DPM server first;
    // the handshake starts when the grant names the gateway endpoint to aim at.
    if (!bound_) {
      err_t e = tcp_bind(pcb_, AnyOrOwn(), 0);  // the session's first (ephemeral) port
      if (e != ERR_OK) return ErrnoOf(e);
      bound_ = true;
    }
    dpm_ = true;
    true_remote_ = remote;
    DpmClientActions ignored;  // a new peer: nothing to do before its grant
    dpm_client_.Connect(remote, DpmSessionSource{pcb_->local_port, dpm_port_fixed, own_address_}, &ignored);
    state_ = State::kConnecting;
    pending_connect_ = conn;
    return -1;
  }
  // Cooperative VPM (docs/vpm.md): ask the peer's VPM for the hidden port of our AID first;
  // the handshake starts when it answers, and goes to the hidden port.
  std::string aid;
  if (const int c = CooperativeAid(remote, &aid); c != kNotCooperative) {
    if (c != 0) return c;
    if (!bound_) {
      err_t e = tcp_bind(pcb_, AnyOrOwn(), 0);  // the client port the negotiation names
      if (e != ERR_OK) return ErrnoOf(e);
      bound_ = true;
    }
    state_ = State::kConnecting;
    pending_connect_ = conn;
    Negotiate(remote, aid, pcb_->local_ip, pcb_->local_port);
    return -1;
  }
  ip_addr_t ip;
  ToIpAddr(remote, &ip);
  err_t err = tcp_connect(pcb_, &ip, remote.port_host(), &TcpSocket::OnConnected);
  if (err != ERR_OK) return ErrnoOf(err);
  state_ = State::kConnecting;
  pending_connect_ = conn;
  return -1;
}

int TcpSocket::Name(bool peer, api::Endpoint* out) const {
  if (peer) {
    if (state_ != State::kConnected && !(state_ == State::kClosed && had_peer_)) return ENOTCONN;
    *out = dpm_ ? true_remote_ : peer_;  // claim 11: the true peer stays visible
    return 0;
  }
  if (dpm_ && dpm_external_.family != 0) {  // claim 11: the registered address and port
    *out = dpm_external_;
    return 0;
  }
  if (pcb_ != nullptr) {
    *out = ToEndpoint(pcb_->local_ip, ShownLocalPort(pcb_->local_port));
  } else {
    *out = local_;
  }
  return 0;
}

int TcpSocket::Shutdown(int how) {
  if (how < SHUT_RD || how > SHUT_RDWR) return EINVAL;
  if (state_ != State::kConnected) return ENOTCONN;
  // The program shuts its own end down; the FIN follows the data already in the pair when
  // this side reads end-of-file (order preserved).
  return 0;
}

int TcpSocket::SetOption(int level, int name, const std::vector<uint8_t>& value) {
  if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
    // lwIP's congestion control is RFC 5681's: the one name it answers to, as Linux's "reno".
    const std::string algorithm(value.begin(), std::find(value.begin(), value.end(), uint8_t{0}));
    return algorithm == kCongestionControl ? 0 : ENOENT;
  }
  int v = 0;
  if (!ReadInt(value, &v)) return EINVAL;
  if (level == SOL_SOCKET && name == SO_REUSEADDR) {
    if (pcb_) v ? ip_set_option(pcb_, SOF_REUSEADDR) : ip_reset_option(pcb_, SOF_REUSEADDR);
    return 0;
  }
  if (level == SOL_SOCKET && name == SO_KEEPALIVE) {
    if (pcb_) v ? ip_set_option(pcb_, SOF_KEEPALIVE) : ip_reset_option(pcb_, SOF_KEEPALIVE);
    return 0;
  }
  if (level == IPPROTO_IP && name == IP_TOS) {
    if (v < 0 || v > 255) return EINVAL;
    if (pcb_) pcb_->tos = static_cast<u8_t>(v);
    return 0;
  }
  if (level == IPPROTO_IP && name == IP_TTL) {
    if (v < 1 || v > 255) return EINVAL;
    if (pcb_) pcb_->ttl = static_cast<u8_t>(v);
    return 0;
  }
  if (level == IPPROTO_TCP && name == TCP_NODELAY) {
    if (pcb_ && state_ != State::kListening) {
      if (v) {
        tcp_nagle_disable(pcb_);
      } else {
        tcp_nagle_enable(pcb_);
      }
    }
    return 0;
  }
  if (level == IPPROTO_TCP && (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT)) {
    if (v < 1) return EINVAL;
    if (pcb_ && state_ != State::kListening) {
      if (name == TCP_KEEPIDLE) pcb_->keep_idle = static_cast<u32_t>(v) * 1000;
      if (name == TCP_KEEPINTVL) pcb_->keep_intvl = static_cast<u32_t>(v) * 1000;
      if (name == TCP_KEEPCNT) pcb_->keep_cnt = static_cast<u32_t>(v);
    }
    return 0;
  }
  return ENOPROTOOPT;
}

int TcpSocket::GetOption(int level, int name, int* value) {
  if (level == SOL_SOCKET && name == SO_ERROR) {
    *value = last_error_;
    last_error_ = 0;
    return 0;
  }
  if (level == SOL_SOCKET && name == SO_TYPE) { *value = SOCK_STREAM; return 0; }
  if (level == SOL_SOCKET && name == SO_ACCEPTCONN) { *value = state_ == State::kListening; return 0; }
  if (pcb_ == nullptr) return EINVAL;
  if (level == SOL_SOCKET && name == SO_REUSEADDR) { *value = ip_get_option(pcb_, SOF_REUSEADDR) ? 1 : 0; return 0; }
  if (level == SOL_SOCKET && name == SO_KEEPALIVE) { *value = ip_get_option(pcb_, SOF_KEEPALIVE) ? 1 : 0; return 0; }
  if (level == IPPROTO_IP && name == IP_TOS) { *value = pcb_->tos; return 0; }
  if (level == IPPROTO_IP && name == IP_TTL) { *value = pcb_->ttl; return 0; }
  if (state_ == State::kListening) return ENOPROTOOPT;
  if (level == IPPROTO_TCP && name == TCP_NODELAY) { *value = tcp_nagle_disabled(pcb_) ? 1 : 0; return 0; }
  if (level == IPPROTO_TCP && name == TCP_MAXSEG) { *value = tcp_mss(pcb_); return 0; }
  return ENOPROTOOPT;
}

int TcpSocket::GetBytesOption(int level, int name, std::vector<uint8_t>* out) {
  if (level == IPPROTO_TCP && name == TCP_INFO) {
    tcp_info info;
    Info(&info);
    const auto* p = reinterpret_cast<const uint8_t*>(&info);
    out->assign(p, p + sizeof(info));
    return 0;
  }
  if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
    out->assign(16, 0);  // TCP_CA_NAME_MAX
    std::copy(kCongestionControl, kCongestionControl + sizeof(kCongestionControl) - 1, out->begin());
    return 0;
  }
  return ENOPROTOOPT;
}

void TcpSocket::Info(tcp_info* out) const {
  *out = tcp_info{};
  if (pcb_ == nullptr) {
    out->tcpi_state = TCP_CLOSE;
    return;
  }
  static constexpr uint8_t kLinuxState[] = {TCP_CLOSE,     TCP_LISTEN,    TCP_SYN_SENT, TCP_SYN_RECV,
                                            TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
                                            TCP_CLOSING,   TCP_LAST_ACK,  TCP_TIME_WAIT};
  out->tcpi_state = pcb_->state < sizeof(kLinuxState) ? kLinuxState[pcb_->state] : TCP_CLOSE;
  if (state_ == State::kListening) return;  // a listening pcb keeps nothing more
  constexpr uint32_t kTickUs = TCP_SLOW_INTERVAL * 1000;
  const uint32_t mss = std::max<uint32_t>(pcb_->mss, 1);
  out->tcpi_snd_mss = out->tcpi_rcv_mss = out->tcpi_advmss = pcb_->mss;
  out->tcpi_rto = static_cast<uint32_t>(std::max<int>(pcb_->rto, 0)) * kTickUs;
  out->tcpi_rtt = static_cast<uint32_t>(std::max<int>(pcb_->sa, 0) >> 3) * kTickUs;
  out->tcpi_rttvar = static_cast<uint32_t>(std::max<int>(pcb_->sv, 0) >> 2) * kTickUs;
  out->tcpi_snd_cwnd = pcb_->cwnd / mss;
  out->tcpi_snd_ssthresh = pcb_->ssthresh / mss;
  out->tcpi_retransmits = pcb_->nrtx;
  out->tcpi_total_retrans = pcb_->nrtx;
  out->tcpi_rcv_space = pcb_->rcv_wnd;
  uint32_t unacked = 0;
  for (const tcp_seg* seg = pcb_->unacked; seg != nullptr; seg = seg->next) ++unacked;
  out->tcpi_unacked = unacked;
}

void TcpSocket::Destroy() {
  if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, ECONNABORTED);
  pending_connect_.reset();
  DetachPcb(/*graceful=*/true);
  if (state_ == State::kListening) state_ = State::kClosed;  // out of its stream's listeners
  FreePending();
  for (auto& a : accept_queue_) ::close(a.far_fd);  // their sockets see hang-up and go
  accept_queue_.clear();
  boost::system::error_code ignored;
  sd_.close(ignored);
}

SocketRow TcpSocket::Describe() const {
  api::Endpoint local, peer = peer_;
  Name(false, &local);
  if (dpm_) peer = true_remote_;
  return Row(dpm_ ? "tcp*" : "tcp", local, peer, pending_bytes_, unsent_.size());
}

void TcpSocket::OnDpmEvent(const driver::Event& e) {
  DpmClientActions actions;
  dpm_client_.OnEvent(e, &actions);
  if (e.kind == driver::Event::Kind::kGranted) {
    if (const api::Endpoint* external = dpm_client_.connected_external()) dpm_external_ = *external;
    if (!actions.connect || state_ != State::kConnecting || pcb_ == nullptr || dpm_connecting_) return;  // a renewal
    dpm_connecting_ = true;
    ip_addr_t ip;
    ToIpAddr(*actions.connect, &ip);
    err_t err = tcp_connect(pcb_, &ip, actions.connect->port_host(), &TcpSocket::OnConnected);  // claim 5
    if (err != ERR_OK) FailConnect(ErrnoOf(err));
    return;
  }
  const int error = actions.connect_result.value_or(actions.error);
  if (error != 0 && state_ == State::kConnecting) FailConnect(error);
}

void TcpSocket::OnNegotiated(int error, const api::Endpoint& remote) {
  if (state_ != State::kConnecting || pcb_ == nullptr) return;  // closed meanwhile
  if (error == 0) {
    ip_addr_t ip;
    ToIpAddr(remote, &ip);  // the virtual port: the client flow takes it to the hidden one
    const err_t err = tcp_connect(pcb_, &ip, remote.port_host(), &TcpSocket::OnConnected);
    error = err == ERR_OK ? 0 : ErrnoOf(err);
  }
  if (error != 0) FailConnect(error);
}

void TcpSocket::Flush() {
  if (sd_.is_open() && !write_waiting_) FlushToApp();
}

// Queues a new connection for the program listening here; false if the queue is full.
bool TcpSocket::QueueAccepted(api::AcceptRecord record, int far_fd) {
  if (accept_queue_.size() >= backlog_) return false;
  accept_queue_.push_back(QueuedAccept{record, far_fd});
  SendAccepts();
  return true;
}

void TcpSocket::Attach() {
  tcp_arg(pcb_, this);
  tcp_recv(pcb_, &TcpSocket::OnRecv);
  tcp_sent(pcb_, &TcpSocket::OnSent);
  tcp_err(pcb_, &TcpSocket::OnError);
}

void TcpSocket::CacheNames() {
  if (pcb_ == nullptr) return;
  local_ = ToEndpoint(pcb_->local_ip, ShownLocalPort(pcb_->local_port));
  if (state_ == State::kConnected) {
    peer_ = ToEndpoint(pcb_->remote_ip, pcb_->remote_port);
    had_peer_ = true;
  }
}

int TcpSocket::RaiseGate(int program_fd, bool* raised) {
  *raised = false;
  if (state_ != State::kOpen || pcb_ == nullptr || gate_bytes_ != 0) return 0;
  DropQueued(sd_.native_handle(), SIZE_MAX);  // written before any connect: never going anywhere
  gate_bytes_ = RaiseConnectGate(sd_.native_handle(), program_fd);
  if (gate_bytes_ == 0) return EINVAL;
  *raised = true;
  WaitGateHangUp();
  return 0;
}

void TcpSocket::LowerGate() {
  DropQueued(sd_.native_handle(), gate_bytes_);
  gate_bytes_ = 0;  // what was not there any more was read by no one else: nothing to wait for
}

void TcpSocket::ConnectDone(int error) {
  if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, error);
  pending_connect_.reset();
  if (gate_bytes_ == 0) return;
  LowerGate();  // the program's descriptor turns writable: the connect has ended
  if (error != 0) {
    last_error_ = error;  // SO_ERROR
    ::shutdown(sd_.native_handle(), SHUT_WR);  // reads see end-of-file, as after a failed connect
  }
}

// A connect that cannot go on: answer it, and leave the socket closed with the error.
void TcpSocket::FailConnect(int error) {
  // A blocking connect gets the error as its answer, so SO_ERROR is 0 afterwards, as on Linux;
  // after a non-blocking one SO_ERROR holds it (ConnectDone).
  ConnectDone(error);
  state_ = State::kClosed;
  dpm_client_.ReleaseAll();
  if (pcb_ != nullptr) {
    tcp_pcb* pcb = pcb_;
    pcb_ = nullptr;
    tcp_arg(pcb, nullptr);
    tcp_err(pcb, nullptr);
    tcp_abort(pcb);
  }
  WaitIdle();
}

// How a connection leaves lwIP: FIN (RST if received data was left unread, as tcp_close()
// decides), RST, or without a word (the address is no longer ours to send from).
void TcpSocket::Detach(Leave how) {
  dpm_client_.ReleaseAll();  // the session is over: lifetime 0
  if (pcb_ == nullptr) return;
  tcp_pcb* pcb = pcb_;
  pcb_ = nullptr;
  if (state_ == State::kListening) {
    pcb_ = pcb;
    state_ = State::kClosed;  // out of its stream's listeners
    if (HandOverListener()) return;  // another socket of the AID keeps accepting on it
    pcb_ = nullptr;
    tcp_arg(pcb, nullptr);
    tcp_accept(pcb, nullptr);
    tcp_close(pcb);
    return;
  }
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
  if (how == Leave::kSilent) return tcp_abandon(pcb, 0);
  if (how == Leave::kGraceful && pending_bytes_ == 0 && unsent_.empty()) {
    // tcp_close frees a pcb that never got a connection; others go on to send their FIN.
    const bool handshake = pcb->state == ESTABLISHED || pcb->state == SYN_RCVD || pcb->state == CLOSE_WAIT;
    if (tcp_close(pcb) == ERR_OK) {
      if (handshake && own_address_ != 0) {
        host_.addresses().Linger(pcb, own_address_);
        address_lingers_ = true;
      }
      return;
    }
  }
  tcp_abort(pcb);
}

void TcpSocket::DropPcbForLostAddress() {
  if (state_ == State::kConnecting) ConnectDone(ENETDOWN);
  Detach(Leave::kSilent);
  FreePending();
  unsent_.clear();
  WaitIdle();  // the program's close still releases the socket
}

void TcpSocket::FreePending() {
  for (size_t i = pending_head_; i < pending_.size(); ++i) pbuf_free(pending_[i].p);
  pending_.clear();
  pending_head_ = 0;
  pending_bytes_ = 0;
}

// Before a connection exists the near end is watched only for hang-up.
void TcpSocket::WaitIdle() { Await(Wait::wait_read, &idle_waiting_, [this] { OnIdleReadable(); }); }

void TcpSocket::WaitGateHangUp() {
  // Asio's reactor completes an error wait on EPOLLHUP, not on the gate's EPOLLIN.
  Await(Wait::wait_error, &gate_waiting_, [this] {
    if (gate_bytes_ == 0) return;  // the connect ended meanwhile: the idle or data waits took over
    if (PeerHungUp(sd_.native_handle())) return ReleaseSelf();
    WaitGateHangUp();
  });
}

void TcpSocket::OnIdleReadable() {
  if (state_ == State::kConnected) return PumpFromApp();
  if (gate_bytes_ != 0) return WaitGateHangUp();  // the gate is what is queued
  uint8_t buf[4096];
  ssize_t n = ::recv(sd_.native_handle(), buf, sizeof(buf), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    if (PeerHungUp(sd_.native_handle()) || n < 0) return ReleaseSelf();
    return;  // the program shut its writing side: nothing to send, keep the socket
  }
  // Bytes written before the connection exists are discarded (the kernel would refuse them).
  WaitIdle();
}

// Program → network. Reads from the pair only while lwIP has room to queue the bytes.
void TcpSocket::PumpFromApp() {
  if (pcb_ == nullptr || state_ != State::kConnected) return;
  bool wrote = false;
  while (!app_eof_) {
    if (!unsent_.empty()) {
      if (!WriteUnsent()) break;
      wrote = true;
      continue;
    }
    size_t room = tcp_sndbuf(pcb_);
    if (room == 0 || tcp_sndqueuelen(pcb_) + 8 >= TCP_SND_QUEUELEN) break;  // OnSent resumes
    size_t want = std::min(room, kAppChunk);
    uint8_t* buf = host_.scratch().data();
    ssize_t n = ::recv(sd_.native_handle(), buf, want, MSG_DONTWAIT);
    if (n > 0) {
      err_t err = tcp_write(pcb_, buf, static_cast<u16_t>(n), TCP_WRITE_FLAG_COPY);
      if (err == ERR_MEM) {
        unsent_.assign(buf, buf + n);  // kept until lwIP has room (OnSent)
        break;
      }
      wrote = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      WaitAppReadable();
      break;
    }
    // End of file (or error): the program shut down writing, or closed its descriptor.
    app_eof_ = true;
    if (n == 0 && !PeerHungUp(sd_.native_handle())) {
      tcp_shutdown(pcb_, 0, 1);  // FIN after the queued data; keep receiving
      wrote = true;
      MaybeFinish();
    } else {
      if (pcb_ != nullptr) tcp_output(pcb_);
      ReleaseSelf();
      return;
    }
  }
  if (wrote && pcb_ != nullptr) tcp_output(pcb_);
}

// Hands unsent_ to lwIP; false if lwIP has no room now.
bool TcpSocket::WriteUnsent() {
  size_t room = tcp_sndbuf(pcb_);
  size_t n = std::min(room, unsent_.size());
  if (n == 0) return false;
  err_t err = tcp_write(pcb_, unsent_.data(), static_cast<u16_t>(std::min<size_t>(n, 0xffff)), TCP_WRITE_FLAG_COPY);
  if (err == ERR_MEM) return false;
  if (err != ERR_OK) {
    unsent_.clear();
    return false;
  }
  unsent_.erase(unsent_.begin(), unsent_.begin() + static_cast<ptrdiff_t>(std::min<size_t>(n, 0xffff)));
  if (unsent_.empty()) unsent_.shrink_to_fit();
  return true;
}

void TcpSocket::WaitAppReadable() { Await(Wait::wait_read, &read_waiting_, [this] { PumpFromApp(); }); }

// Network → program. Received bytes are acknowledged to lwIP's window as the pair takes them.
void TcpSocket::FlushToApp() {
  while (pending_head_ < pending_.size()) {
    iovec parts[64];
    size_t count = 0;
    for (size_t i = pending_head_; i < pending_.size() && count < 64; ++i) {
      size_t skip = pending_[i].offset;
      for (pbuf* q = pending_[i].p; q != nullptr && count < 64; q = q->next) {
        if (skip >= q->len) {
          skip -= q->len;
          continue;
        }
        parts[count++] = iovec{static_cast<uint8_t*>(q->payload) + skip, q->len - skip};
        skip = 0;
      }
    }
    msghdr m{};
    m.msg_iov = parts;
    m.msg_iovlen = count;
    ssize_t n = ::sendmsg(sd_.native_handle(), &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        WaitAppWritable();
        return;
      }
      // EPIPE: the program closed its descriptor or shut down reading. Data it will never
      // read is dropped; a closed descriptor is handled on hang-up.
      if (PeerHungUp(sd_.native_handle())) return ReleaseSelf();
      Consume(pending_bytes_);
      return;
    }
    Consume(static_cast<size_t>(n));
  }
  if (remote_fin_ && !fin_to_app_) {
    fin_to_app_ = true;
    ::shutdown(sd_.native_handle(), SHUT_WR);  // the program reads end-of-file
    MaybeFinish();
  }
}

void TcpSocket::Consume(size_t n) {
  size_t acked = n;
  while (n > 0 && pending_head_ < pending_.size()) {
    Chunk& c = pending_[pending_head_];
    size_t left = c.p->tot_len - c.offset;
    if (n >= left) {
      n -= left;
      pbuf_free(c.p);
      pending_head_++;
    } else {
      c.offset += n;
      n = 0;
    }
  }
  if (pending_head_ == pending_.size()) {
    pending_.clear();
    pending_head_ = 0;
    if (pending_.capacity() > 64) pending_.shrink_to_fit();  // an idle connection keeps little
  }
  pending_bytes_ -= acked;
  if (pcb_ != nullptr) {
    while (acked > 0) {
      u16_t step = static_cast<u16_t>(std::min<size_t>(acked, 0xffff));
      tcp_recved(pcb_, step);
      acked -= step;
    }
  }
}

void TcpSocket::WaitAppWritable() { Await(Wait::wait_write, &write_waiting_, [this] { FlushToApp(); }); }

// Both directions finished: leave lwIP (it completes the close) and wait for the program
// to close its descriptor.
void TcpSocket::MaybeFinish() {
  if (!(app_eof_ && fin_to_app_) || pcb_ == nullptr) return;
  CacheNames();
  DetachPcb(/*graceful=*/true);
  state_ = State::kClosed;
  WaitIdle();
}

void TcpSocket::SendAccepts() {
  while (!accept_queue_.empty()) {
    QueuedAccept& a = accept_queue_.front();
    std::vector<uint8_t> bytes = api::EncodeAcceptRecord(a.record);
    iovec v{bytes.data(), bytes.size()};
    ssize_t n = os::SendWithFd(sd_.native_handle(), &v, 1, a.far_fd);
    if (n == -EAGAIN) {
      WaitAcceptWritable();
      return;
    }
    ::close(a.far_fd);  // sent (the program has its copy), or the listener is gone
    accept_queue_.erase(accept_queue_.begin());
  }
}

void TcpSocket::WaitAcceptWritable() { Await(Wait::wait_write, &write_waiting_, [this] { SendAccepts(); }); }

// ---- lwIP callbacks (arg is the TcpSocket, or null once detached) ----
err_t TcpSocket::OnConnected(void* arg, tcp_pcb* /*pcb*/, err_t err) {
  auto* s = static_cast<TcpSocket*>(arg);
  if (s == nullptr) return ERR_OK;
  s->state_ = State::kConnected;
  s->CacheNames();
  s->ConnectDone(ErrnoOf(err));
  s->PumpFromApp();
  return ERR_OK;
}

err_t TcpSocket::OnRecv(void* arg, tcp_pcb* pcb, pbuf* p, err_t /*err*/) {
  auto* s = static_cast<TcpSocket*>(arg);
  if (s == nullptr) {
    if (p != nullptr) {
      tcp_recved(pcb, p->tot_len);
      pbuf_free(p);
    }
    return ERR_OK;
  }
  if (p == nullptr) {
    s->remote_fin_ = true;
  } else {
    s->pending_.push_back(Chunk{p, 0});
    s->pending_bytes_ += p->tot_len;
  }
  s->host_.MarkDirty(s->shared_from_this());
  return ERR_OK;
}

err_t TcpSocket::OnSent(void* arg, tcp_pcb* /*pcb*/, u16_t /*len*/) {
  auto* s = static_cast<TcpSocket*>(arg);
  if (s != nullptr) s->PumpFromApp();
  return ERR_OK;
}

// lwIP has freed the pcb (RST received, retransmissions exhausted, or aborted).
void TcpSocket::OnError(void* arg, err_t err) {
  auto* s = static_cast<TcpSocket*>(arg);
  if (s == nullptr) return;
  s->pcb_ = nullptr;
  s->dpm_client_.ReleaseAll();
  int e = err == ERR_RST ? (s->state_ == State::kConnecting ? ECONNREFUSED : ECONNRESET)
          : err == ERR_ABRT ? (s->state_ == State::kConnecting ? ETIMEDOUT : ECONNABORTED)
                            : ErrnoOf(err);
  const bool gated = s->gate_bytes_ != 0;
  if (s->state_ == State::kConnecting) {
    s->ConnectDone(e);
  } else {
    s->last_error_ = e;
  }
  s->state_ = State::kClosed;
  s->FreePending();
  s->unsent_.clear();
  // The program sees EOF, then EPIPE. After a non-blocking connect it still asks SO_ERROR,
  // so the socket must outlive the hang-up (ConnectDone shut only the way to the program).
  if (!gated) ::shutdown(s->sd_.native_handle(), SHUT_RDWR);
  s->WaitIdle();
}

err_t TcpSocket::OnAccept(void* arg, tcp_pcb* newpcb, err_t err) {
  auto* owner = static_cast<TcpSocket*>(arg);
  if (owner == nullptr || err != ERR_OK || newpcb == nullptr) return ERR_VAL;
  // A virtual stream's listeners share the connections (round robin); else it is the owner's.
  TcpSocket* listener = owner->virtual_port_ != 0 ? owner->PickListener() : owner;
  SocketHost& host = listener->host_;
  int pair[2];
  if (host.Full() || listener->accept_queue_.size() >= listener->backlog_ ||
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    host.counters().accept_overflow++;
    tcp_abort(newpcb);
    return ERR_ABRT;
  }
  SetPairBuffers(pair[0]);
  // The program's end is blocking unless it asks otherwise (O_NONBLOCK is per open file).
  ::fcntl(pair[1], F_SETFL, ::fcntl(pair[1], F_GETFL) & ~O_NONBLOCK);
  auto s = TcpSocket::Accepted(host, pair[0], newpcb);
  s->ShareOwnAddress(*listener);
  s->InheritVirtualPort(*listener);
  s->CacheNames();  // with the virtual port
  host.Register(s);
  api::AcceptRecord record{api::SocketRef{s->id(), s->cookie()}, s->local_, s->peer_};
  listener->QueueAccepted(record, pair[1]);
  s->Start();
  return ERR_OK;
}

// DPM: the grant's registered endpoint (what getsockname shows) and the true peer.
// Network → program.
// Program → network: bytes read from the pair that lwIP had no room for yet.
// Listening.

}  // namespace dpm::stack
