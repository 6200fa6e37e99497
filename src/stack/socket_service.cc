#include "stack/socket_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "dpm/dpm_driver.h"
#include "dpm/socket.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "os/entropy.h"
#include "stack/api_access.h"
#include "stack/dhcp_leases.h"
#include "stack/lwip_port.h"

namespace dpm::stack {

using boost::asio::posix::stream_descriptor;
using Wait = stream_descriptor::wait_type;

namespace {

constexpr size_t kAppChunk = 65535;  // bytes per read from a program's pair (tcp_write takes u16_t)
constexpr size_t kMaxStatusRows = 1000;  // sockets listed by a status reply (it must fit one message)

// `text` as the inside of a JSON string (RFC 8259 §7): quotes, backslashes and control
// characters escaped (a link or socket name may hold any byte a user gave).
std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  return out;
}
constexpr int kPairBuffer = 1024 * 1024;  // bytes of kernel buffer on the daemon's end

// Sends one message with an optional descriptor. Returns bytes sent or -errno.
ssize_t SendWithFd(int fd, const iovec* iov, size_t iovcnt, int pass_fd) {
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = iovcnt;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    std::memset(control, 0, sizeof(control));
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n = ::sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  return n < 0 ? -errno : n;
}

// True once every descriptor of the far end is closed.
bool PeerHungUp(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

void SetBuffers(int fd) {
  // SO_*BUFFORCE lets root go past net.core.[rw]mem_max; fall back to the capped option.
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kPairBuffer, sizeof(kPairBuffer)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kPairBuffer, sizeof(kPairBuffer));
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kPairBuffer, sizeof(kPairBuffer)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kPairBuffer, sizeof(kPairBuffer));
  }
}

api::Endpoint ToEndpoint(const ip_addr_t& ip, uint16_t port_host) {
  return api::Endpoint::Ipv4(ntohl(ip4_addr_get_u32(ip_2_ip4(&ip))), port_host);
}

void ToIpAddr(const api::Endpoint& e, ip_addr_t* ip) {
  ip_addr_set_ip4_u32(ip, htonl(e.ipv4_host()));
}

// lwIP err_t → the errno a kernel gives for the same failure.
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

// PCP result (RFC 6887 §7.4) of a failed DPM setup → the errno dpm_connect() returns
// (docs/api.md has the table).
int ErrnoForPcp(pcp::ResultCode r) {
  switch (r) {
    case pcp::ResultCode::kCannotProvideExternal: return EADDRINUSE;   // fixed port taken for that peer
    case pcp::ResultCode::kNoResources: return EADDRNOTAVAIL;          // no registered address/port left
    case pcp::ResultCode::kUserExQuota: return EDQUOT;                 // this host's share used up
    case pcp::ResultCode::kNotAuthorized: return EACCES;
    case pcp::ResultCode::kAddressMismatch: return EADDRNOTAVAIL;
    case pcp::ResultCode::kUnsuppProtocol: return EPROTONOSUPPORT;
    case pcp::ResultCode::kUnsuppOption: return EOPNOTSUPP;            // the gateway speaks PCP but not DPM
    case pcp::ResultCode::kNetworkFailure: return ENETUNREACH;
    case pcp::ResultCode::kExcessiveRemotePeers: return ENOBUFS;
    default: return EPROTO;                                           // malformed/unsupported version
  }
}

bool ReadInt(const std::vector<uint8_t>& v, int* out) {
  if (v.size() < sizeof(int)) return false;
  std::memcpy(out, v.data(), sizeof(int));
  return true;
}

}  // namespace

class ControlConn;
class Socket;

// ---------------------------------------------------------------------------------------
class SocketService::Impl {
 public:
  Impl(boost::asio::io_context& io, Stack& stack, SocketServiceConfig config, int listen_fd, bool abstract)
      : io_(io), stack_(stack), config_(std::move(config)), listener_(io, listen_fd), abstract_(abstract) {
    access_.owner = ::geteuid();
    access_.group = config_.api_group;
  }
  ~Impl();

  void StartAccept();
  void Handle(const std::shared_ptr<ControlConn>& conn, const api::Request& request, api::Opcode op);
  void Register(std::shared_ptr<Socket> s);
  void Release(uint64_t id);
  // Seed 004: per-socket addresses from the static pool. TakeAddress allocates one (held
  // once), HoldAddress holds it once more (an accepted connection), DropAddress lets go once;
  // the last drop returns it to the pool and lwIP stops accepting it.
  std::optional<uint32_t> TakeAddress();
  void HoldAddress(uint32_t address);
  void DropAddress(uint32_t address);
  // A closed TCP connection's own address stays held while lwIP finishes the closing
  // handshake (FIN_WAIT/LAST_ACK), so the peer's FIN and ACK still reach it and the last
  // segments keep its DSCP; it is dropped when the peer's FIN arrives or the pcb ends.
  void LingerAddress(tcp_pcb* pcb, uint32_t address);
  struct Linger {
    Impl* service;  // null once the service is gone
    uint32_t address;
  };
  absl::flat_hash_set<Linger*> lingering_;
  std::shared_ptr<Socket> Find(const api::SocketRef& ref) const;
  std::string Status(bool json) const;
  bool Full() const { return sockets_.size() >= config_.max_sockets; }

  boost::asio::io_context& io_;
  Stack& stack_;
  SocketServiceConfig config_;
  stream_descriptor listener_;
  bool abstract_;  // an abstract socket name: nothing to remove from the file system
  ApiAccessPolicy access_;
  uint64_t next_id_ = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Socket>> sockets_;
  std::optional<AddressPool> pool_;                      // set when config_.address_pool is
  struct AddressUse {
    uint32_t holders = 0;   // sockets using it (a listener and its accepted connections)
    uint64_t lease = 0;     // DHCP: the socket id its lease is kept under; 0: the static pool
  };
  absl::flat_hash_map<uint32_t, AddressUse> address_holders_;  // own address -> its use
  std::unique_ptr<DhcpLeases> dhcp_;                          // config_.dhcp
  // DPM_TUPLE_DYNAMIC: obtains the socket's lease, then `done(0)` (the address is the
  // socket's), or `done(errno)` when there is none (ETIMEDOUT: no server answered).
  void ObtainLease(const std::shared_ptr<Socket>& s, std::function<void(int error)> done);
  // A lease ended under its sockets: each is closed with `error` (ETIMEDOUT, EADDRNOTAVAIL).
  void LoseLease(uint32_t address, int error);
  size_t control_connections_ = 0;
  SocketServiceCounters counters_;
  // One buffer for every read from a program's pair: the service is single-threaded, and a
  // buffer per connection would cost 64 KiB for each connection that ever sent data.
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(api::kDatagramHeaderSize + 65536);
  // TCP sockets with received data to hand to their program. Flushed once after the current
  // handler (a batch of link packets) finishes: one write to the program per batch, not one
  // per segment.
  std::vector<std::shared_ptr<Socket>> dirty_;
  bool flush_posted_ = false;
  void MarkDirty(std::shared_ptr<Socket> s);
  void FlushDirty();

  // ---- DPM driver (the DPM patent) ----
  bool DpmApplies(const api::Endpoint& remote) const {
    if (!driver_ || remote.family != AF_INET) return false;
    uint32_t mask = config_.dpm->private_prefix == 0 ? 0 : ~uint32_t{0} << (32 - config_.dpm->private_prefix);
    return (remote.ipv4_host() & mask) != (config_.dpm->private_network & mask);
  }
  void StartDriver();
  void DriverWork();  // sends what the driver has due, delivers its events, re-arms its timer
  uint64_t DpmBegin(Socket* s, nat::Protocol protocol, uint16_t port, const api::Endpoint& remote, bool fixed);
  void DpmRelease(uint64_t id);
  static uint64_t NowMs();
  std::unique_ptr<driver::Driver> driver_;
  udp_pcb* driver_pcb_ = nullptr;
  std::unique_ptr<boost::asio::steady_timer> driver_timer_;
  absl::flat_hash_map<uint64_t, std::weak_ptr<Socket>> dpm_sessions_;
  uint64_t dpm_setups_ = 0, dpm_failures_ = 0;
};

// ---------------------------------------------------------------------------------------
// One client thread's control connection. At most one request is in flight: a request whose
// answer must wait (TCP connect) stops reading until the answer is sent.
class ControlConn : public std::enable_shared_from_this<ControlConn> {
 public:
  /// `refused`: the peer's credentials do not allow it (stack/api_access.h): every request
  /// is answered EACCES.
  ControlConn(SocketService::Impl& service, int fd, bool refused)
      : service_(service), sd_(service.io_, fd), refused_(refused) {}
  ~ControlConn() { service_.control_connections_--; }

  void Start() { WaitRead(); }
  void Reply(api::Opcode op, int error, std::vector<uint8_t> body = {}, int pass_fd = -1) {
    std::vector<uint8_t> bytes = api::EncodeReply(api::Reply{op, error, std::move(body)});
    iovec v{bytes.data(), bytes.size()};
    ssize_t n = SendWithFd(sd_.native_handle(), &v, 1, pass_fd);
    if (n < 0) {
      // The client is gone or not reading: nothing else can be said to it.
      boost::system::error_code ignored;
      sd_.close(ignored);
      return;
    }
    if (waiting_) {
      // Resume reading; requests may already be queued, and descriptors are edge-triggered.
      waiting_ = false;
      boost::asio::post(service_.io_, [self = shared_from_this()] {
        self->OnReadable();
        self->service_.stack_.AfterCoreWork();
      });
    }
  }
  void Defer() { waiting_ = true; }

 private:
  void WaitRead() {
    sd_.async_wait(Wait::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      self->OnReadable();
      self->service_.stack_.AfterCoreWork();
    });
  }
  // Serves requests until the connection is drained (descriptors are edge-triggered) or a
  // request's answer has to wait.
  void OnReadable() {
    while (!waiting_ && sd_.is_open()) {
      if (!ServeOne()) return;
    }
  }
  // False when nothing more can be read now (a wait is armed, or the connection closed).
  bool ServeOne() {
    uint8_t buf[api::kMaxMessage];
    ssize_t n = ::recv(sd_.native_handle(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      WaitRead();
      return false;
    }
    if (n <= 0) {
      boost::system::error_code ignored;
      sd_.close(ignored);
      return false;
    }
    auto bytes = absl::MakeConstSpan(buf, static_cast<size_t>(n));
    uint16_t op = 0;
    if (n >= 4) std::memcpy(&op, buf + 2, sizeof(op));
    if (refused_) {
      Reply(static_cast<api::Opcode>(op), EACCES);
      return true;
    }
    absl::StatusOr<api::Request> request = api::ParseRequest(bytes);
    if (!request.ok()) {
      service_.counters_.bad_requests++;
      Reply(static_cast<api::Opcode>(op), EINVAL);
    } else {
      service_.Handle(shared_from_this(), *request, static_cast<api::Opcode>(op));
    }
    return true;
  }

  SocketService::Impl& service_;
  stream_descriptor sd_;
  bool waiting_ = false;
  bool refused_ = false;
};

// ---------------------------------------------------------------------------------------
// A dpm socket: the daemon's end of the program's socket pair plus an lwIP pcb.
class Socket : public std::enable_shared_from_this<Socket> {
 public:
  enum class State { kOpen, kConnecting, kConnected, kListening, kClosed };

  Socket(SocketService::Impl& service, int near_fd, bool tcp)
      : service_(service), sd_(service.io_, near_fd), tcp_(tcp), cookie_(os::RandomU64()) {}
  virtual ~Socket() = default;

  uint64_t id() const { return id_; }
  uint64_t cookie() const { return cookie_; }
  void set_id(uint64_t id) { id_ = id; }
  bool tcp() const { return tcp_; }
  State state() const { return state_; }

  virtual void Start() = 0;
  virtual int Bind(const api::Endpoint& local) = 0;
  virtual int Listen(int backlog) = 0;
  /// Returns an errno, or -1 when the answer is deferred (sent through `conn` later).
  virtual int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) = 0;
  virtual int Name(bool peer, api::Endpoint* out) const = 0;
  virtual int Shutdown(int how) = 0;
  virtual int SetOption(int level, int name, const std::vector<uint8_t>& value) = 0;
  virtual int GetOption(int level, int name, int* value) = 0;
  /// Detaches from lwIP (FIN or RST as the state requires) and closes the near end.
  virtual void Destroy() = 0;
  virtual std::string Describe(bool json) const = 0;
  /// Hands queued received data to the program (see Impl::MarkDirty).
  virtual void Flush() {}
  /// The DPM driver's news about this socket's session (granted, failed, timed out, lost).
  virtual void OnDpmEvent(const driver::Event& event) {}
  /// Marks the port not replaceable (DPM_PORT_FIXED, or an explicit bind).
  bool dpm_port_fixed = false;
  /// DPM_TUPLE_DYNAMIC: its lease was asked for (once per socket).
  bool lease_requested = false;
  bool dirty = false;

  /// Seed 004: the tuple dpm_socket() was given, and the address of this socket's own (host
  /// order; 0 while deferred or for DPM_TUPLE_COMMON). Released by the service on close.
  int tuple() const { return tuple_; }
  uint32_t own_address() const { return own_address_; }
  void set_tuple(int tuple) { tuple_ = tuple; }
  /// Takes the socket's own address now if it asked for one and has none yet (at socket(),
  /// or deferred to bind/connect/listen/first send: SocketServiceConfig::address_at_socket).
  /// Errors: EADDRNOTAVAIL (pool exhausted).
  int TakeOwnAddress();
  /// An accepted connection shares its listener's address (held once more).
  void ShareOwnAddress(const Socket& listener);
  /// DPM_ADDRESS_DSCP: marks every packet of the socket's own address (now, or when a
  /// deferred address is taken). -1 clears. Errors: EINVAL (outside -1..63, or a socket on
  /// the common address, which other sockets share).
  int SetAddressDscp(int dscp);
  int AddressDscp() const;
  /// After Destroy: the closing handshake holds the address; the service must not drop it.
  bool address_lingers() const { return address_lingers_; }
  /// DPM_TUPLE_DYNAMIC: the leased address becomes the socket's own (the service holds it).
  void AdoptAddress(uint32_t address);
  /// The lease under the socket's address ended: the connection is dropped without a word
  /// to the peer (the address is no longer ours), the program reads end-of-file and finds
  /// `error` in SO_ERROR, and the socket no longer has an address (the service let it go).
  void LoseAddress(int error) {
    own_address_ = 0;
    DropPcbForLostAddress();
    last_error_ = error;
    state_ = State::kClosed;
    // The program reads end-of-file and finds `error` in SO_ERROR; the socket stays until it
    // closes its descriptor.
    ::shutdown(sd_.native_handle(), SHUT_WR);
  }

 protected:
  // Called when the program closed every copy of its descriptor. Posted, never run inside
  // an lwIP callback: releasing closes or aborts the pcb lwIP may be processing.
  void ReleaseSelf() {
    if (releasing_) return;
    releasing_ = true;
    boost::asio::post(service_.io_, [self = shared_from_this()] {
      self->service_.Release(self->id_);
      self->service_.stack_.AfterCoreWork();
    });
  }
  // Checks a local address given to bind(); a socket with an address of its own takes it
  // (deferred embodiment) and may bind only to it or to INADDR_ANY (which means it).
  int CheckLocal(const api::Endpoint& e) {
    if (e.family != AF_INET) return EAFNOSUPPORT;
    uint32_t a = e.ipv4_host();
    if (tuple_ != DPM_TUPLE_COMMON) {
      if (int err = TakeOwnAddress()) return err;
      return a == 0 || a == own_address_ ? 0 : EADDRNOTAVAIL;
    }
    if (a != 0 && !service_.stack_.IsLocalAddress(a)) return EADDRNOTAVAIL;
    return 0;
  }
  // The local address to bind a pcb to: the socket's own, or the stack's (any).
  const ip_addr_t* AnyOrOwn() const { return own_address_ != 0 ? &own_ip_ : IP4_ADDR_ANY; }
  // Sets the pcb's local address before any bind, so that lwIP's implicit binds (connect,
  // first send) use the socket's own address as the source.
  virtual void PresetLocalAddress(const ip_addr_t& address) = 0;
  // LoseAddress: frees the pcb without sending anything (TCP) or leaves it inert (UDP: lwIP
  // accepts nothing for the address any more, and the program's end is shut).
  virtual void DropPcbForLostAddress() {}
  int tuple_ = DPM_TUPLE_COMMON;
  bool address_lingers_ = false;  // the closing pcb holds own_address_ (Impl::LingerAddress)
  int dscp_ = -1;  // DPM_ADDRESS_DSCP asked for before the address was taken
  uint32_t own_address_ = 0;
  ip_addr_t own_ip_{};
  // Waits once for `type` on the near end unless a wait is already armed (`*waiting`), then
  // runs `then` and re-arms lwIP's timer. The handler holds the socket alive.
  template <typename F>
  void Await(Wait type, bool* waiting, F then) {
    if (*waiting || !sd_.is_open()) return;
    *waiting = true;
    sd_.async_wait(type, [self = shared_from_this(), waiting, then](const boost::system::error_code& ec) {
      *waiting = false;
      if (ec) return;
      then();
      self->service_.stack_.AfterCoreWork();
    });
  }
  static const char* StateName(State s) {
    switch (s) {
      case State::kOpen: return "open";
      case State::kConnecting: return "connecting";
      case State::kConnected: return "connected";
      case State::kListening: return "listening";
      case State::kClosed: return "closed";
    }
    return "?";
  }
  std::string DescribeCommon(bool json, const char* proto, const api::Endpoint& local,
                             const api::Endpoint& peer, size_t to_app, size_t from_app) const {
    if (json) {
      return absl::StrFormat(
          R"({"id":%d,"proto":"%s","state":"%s","local":"%s","peer":"%s","queued_to_app":%d,"queued_from_app":%d})",
          id_, proto, StateName(state_), local.ToString(), peer.ToString(), to_app, from_app);
    }
    return absl::StrFormat("%-6d %-5s %-11s %-22s %-22s %10d %10d", id_, proto, StateName(state_),
                           local.ToString(), peer.ToString(), to_app, from_app);
  }

  SocketService::Impl& service_;
  stream_descriptor sd_;
  bool tcp_;
  uint64_t id_ = 0;
  uint64_t cookie_;
  State state_ = State::kOpen;
  int last_error_ = 0;  // SO_ERROR
  bool releasing_ = false;
};

// ---------------------------------------------------------------------------------------
class TcpSocket : public Socket {
 public:
  TcpSocket(SocketService::Impl& service, int near_fd, tcp_pcb* pcb) : Socket(service, near_fd, true), pcb_(pcb) {
    Attach();
  }

  void PresetLocalAddress(const ip_addr_t& address) override {
    if (pcb_ != nullptr && !bound_) ip_addr_copy(pcb_->local_ip, address);
  }

  // An accepted connection: already established.
  static std::shared_ptr<TcpSocket> Accepted(SocketService::Impl& service, int near_fd, tcp_pcb* pcb) {
    auto s = std::make_shared<TcpSocket>(service, near_fd, pcb);
    s->state_ = State::kConnected;
    s->CacheNames();
    return s;
  }

  void Start() override {
    if (state_ == State::kConnected) {
      PumpFromApp();
    } else {
      WaitIdle();
    }
  }

  int Bind(const api::Endpoint& local) override {
    if (int e = CheckLocal(local)) return e;
    if (pcb_ == nullptr || state_ != State::kOpen || bound_) return EINVAL;
    ip_addr_t ip;
    ToIpAddr(local, &ip);
    if (own_address_ != 0) ip = own_ip_;
    err_t err = tcp_bind(pcb_, &ip, local.port_host());
    if (err != ERR_OK) return ErrnoOf(err);
    bound_ = true;
    if (local.port_be != 0) dpm_port_fixed = true;  // an explicitly bound port is not replaceable
    return 0;
  }

  int Listen(int backlog) override {
    if (state_ == State::kListening) return 0;
    if (state_ != State::kOpen || pcb_ == nullptr) return EINVAL;
    if (backlog <= 0 || backlog > 4096) backlog = TCP_DEFAULT_LISTEN_BACKLOG;
    if (int e = TakeOwnAddress()) return e;
    if (!bound_) {
      err_t e = tcp_bind(pcb_, AnyOrOwn(), 0);
      if (e != ERR_OK) return ErrnoOf(e);
      bound_ = true;
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
    return 0;
  }

  int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) override {
    if (remote.family != AF_INET) return EAFNOSUPPORT;
    switch (state_) {
      case State::kConnecting: return EALREADY;
      case State::kConnected: return EISCONN;
      case State::kListening: return EINVAL;
      case State::kClosed: return last_error_ != 0 ? last_error_ : ECONNABORTED;
      case State::kOpen: break;
    }
    if (remote.ipv4_host() == 0 || remote.port_be == 0) return remote.port_be == 0 ? ECONNREFUSED : ENETUNREACH;
    if (int e = TakeOwnAddress()) return e;
    if (service_.DpmApplies(remote)) {
      // DPM patent, claims 1-5: agree on the registered address and port with the DPM server first;
      // the handshake starts when the grant names the gateway endpoint to aim at.
      if (!bound_) {
        err_t e = tcp_bind(pcb_, AnyOrOwn(), 0);  // the session's first (ephemeral) port
        if (e != ERR_OK) return ErrnoOf(e);
        bound_ = true;
      }
      dpm_ = true;
      true_remote_ = remote;
      dpm_id_ = service_.DpmBegin(this, nat::Protocol::kTcp, pcb_->local_port, remote, dpm_port_fixed);
      state_ = State::kConnecting;
      pending_connect_ = conn;
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

  int Name(bool peer, api::Endpoint* out) const override {
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
      *out = ToEndpoint(pcb_->local_ip, pcb_->local_port);
    } else {
      *out = local_;
    }
    return 0;
  }

  int Shutdown(int how) override {
    if (how < SHUT_RD || how > SHUT_RDWR) return EINVAL;
    if (state_ != State::kConnected) return ENOTCONN;
    // The program shuts its own end down; the FIN follows the data already in the pair when
    // this side reads end-of-file (order preserved).
    return 0;
  }

  int SetOption(int level, int name, const std::vector<uint8_t>& value) override {
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

  int GetOption(int level, int name, int* value) override {
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

  void Destroy() override {
    if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, ECONNABORTED);
    pending_connect_.reset();
    DetachPcb(/*graceful=*/true);
    FreePending();
    for (auto& a : accept_queue_) ::close(a.far_fd);  // their sockets see hang-up and go
    accept_queue_.clear();
    boost::system::error_code ignored;
    sd_.close(ignored);
  }

  std::string Describe(bool json) const override {
    api::Endpoint local, peer = peer_;
    Name(false, &local);
    if (dpm_) peer = true_remote_;
    return DescribeCommon(json, dpm_ ? "tcp*" : "tcp", local, peer, pending_bytes_, unsent_.size());
  }

  void OnDpmEvent(const driver::Event& e) override {
    using Kind = driver::Event::Kind;
    if (e.kind == Kind::kLost) return;  // the driver is asking the restarted gateway again
    if (e.kind == Kind::kGranted) {
      dpm_external_ = api::Endpoint::Ipv4(e.external.address, e.external.port);
      if (state_ != State::kConnecting || pcb_ == nullptr || dpm_connecting_) return;  // a renewal
      dpm_connecting_ = true;
      ip_addr_t ip;
      ip_addr_set_ip4_u32(&ip, htonl(e.gateway_endpoint.address));
      err_t err = tcp_connect(pcb_, &ip, e.gateway_endpoint.port, &TcpSocket::OnConnected);  // claim 5
      if (err != ERR_OK) FailConnect(ErrnoOf(err));
      return;
    }
    dpm_id_ = 0;
    if (state_ == State::kConnecting) {
      FailConnect(e.kind == Kind::kTimedOut ? ETIMEDOUT : ErrnoForPcp(e.result));
    }
  }

  void Flush() override {
    if (sd_.is_open() && !write_waiting_) FlushToApp();
  }

  // Queues a new connection for the program listening here; false if the queue is full.
  bool QueueAccepted(api::AcceptRecord record, int far_fd) {
    if (accept_queue_.size() >= backlog_) return false;
    accept_queue_.push_back(QueuedAccept{record, far_fd});
    SendAccepts();
    return true;
  }

 private:
  struct QueuedAccept {
    api::AcceptRecord record;
    int far_fd;
  };
  struct Chunk {
    pbuf* p;
    size_t offset;
  };

  void Attach() {
    tcp_arg(pcb_, this);
    tcp_recv(pcb_, &TcpSocket::OnRecv);
    tcp_sent(pcb_, &TcpSocket::OnSent);
    tcp_err(pcb_, &TcpSocket::OnError);
  }

  void CacheNames() {
    if (pcb_ == nullptr) return;
    local_ = ToEndpoint(pcb_->local_ip, pcb_->local_port);
    if (state_ == State::kConnected) {
      peer_ = ToEndpoint(pcb_->remote_ip, pcb_->remote_port);
      had_peer_ = true;
    }
  }

  // A connect that cannot go on: answer it, and leave the socket closed with the error.
  void FailConnect(int error) {
    if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, error);
    pending_connect_.reset();
    last_error_ = error;
    state_ = State::kClosed;
    if (dpm_id_ != 0) service_.DpmRelease(dpm_id_);
    dpm_id_ = 0;
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
  enum class Leave { kGraceful, kReset, kSilent };
  void DetachPcb(bool graceful) { Detach(graceful ? Leave::kGraceful : Leave::kReset); }

  void Detach(Leave how) {
    if (dpm_id_ != 0) service_.DpmRelease(dpm_id_);  // the session is over: lifetime 0
    dpm_id_ = 0;
    if (pcb_ == nullptr) return;
    tcp_pcb* pcb = pcb_;
    pcb_ = nullptr;
    tcp_arg(pcb, nullptr);
    if (state_ == State::kListening) {
      tcp_accept(pcb, nullptr);
      tcp_close(pcb);
      return;
    }
    tcp_recv(pcb, nullptr);
    tcp_sent(pcb, nullptr);
    tcp_err(pcb, nullptr);
    if (how == Leave::kSilent) return tcp_abandon(pcb, 0);
    if (how == Leave::kGraceful && pending_bytes_ == 0 && unsent_.empty()) {
      // tcp_close frees a pcb that never got a connection; others go on to send their FIN.
      const bool handshake = pcb->state == ESTABLISHED || pcb->state == SYN_RCVD || pcb->state == CLOSE_WAIT;
      if (tcp_close(pcb) == ERR_OK) {
        if (handshake && own_address_ != 0) {
          service_.LingerAddress(pcb, own_address_);
          address_lingers_ = true;
        }
        return;
      }
    }
    tcp_abort(pcb);
  }

  void DropPcbForLostAddress() override {
    if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, ENETDOWN);
    pending_connect_.reset();
    Detach(Leave::kSilent);
    FreePending();
    unsent_.clear();
    WaitIdle();  // the program's close still releases the socket
  }

  void FreePending() {
    for (size_t i = pending_head_; i < pending_.size(); ++i) pbuf_free(pending_[i].p);
    pending_.clear();
    pending_head_ = 0;
    pending_bytes_ = 0;
  }

  // Before a connection exists the near end is watched only for hang-up.
  void WaitIdle() { Await(Wait::wait_read, &idle_waiting_, [this] { OnIdleReadable(); }); }

  void OnIdleReadable() {
    if (state_ == State::kConnected) return PumpFromApp();
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
  void PumpFromApp() {
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
      uint8_t* buf = service_.scratch_.data();
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
  bool WriteUnsent() {
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

  void WaitAppReadable() { Await(Wait::wait_read, &read_waiting_, [this] { PumpFromApp(); }); }

  // Network → program. Received bytes are acknowledged to lwIP's window as the pair takes them.
  void FlushToApp() {
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

  void Consume(size_t n) {
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

  void WaitAppWritable() { Await(Wait::wait_write, &write_waiting_, [this] { FlushToApp(); }); }

  // Both directions finished: leave lwIP (it completes the close) and wait for the program
  // to close its descriptor.
  void MaybeFinish() {
    if (!(app_eof_ && fin_to_app_) || pcb_ == nullptr) return;
    CacheNames();
    DetachPcb(/*graceful=*/true);
    state_ = State::kClosed;
    WaitIdle();
  }

  void SendAccepts() {
    while (!accept_queue_.empty()) {
      QueuedAccept& a = accept_queue_.front();
      std::vector<uint8_t> bytes = api::EncodeAcceptRecord(a.record);
      iovec v{bytes.data(), bytes.size()};
      ssize_t n = SendWithFd(sd_.native_handle(), &v, 1, a.far_fd);
      if (n == -EAGAIN) {
        WaitAcceptWritable();
        return;
      }
      ::close(a.far_fd);  // sent (the program has its copy), or the listener is gone
      accept_queue_.erase(accept_queue_.begin());
    }
  }

  void WaitAcceptWritable() { Await(Wait::wait_write, &write_waiting_, [this] { SendAccepts(); }); }

  // ---- lwIP callbacks (arg is the TcpSocket, or null once detached) ----
  static err_t OnConnected(void* arg, tcp_pcb* /*pcb*/, err_t err) {
    auto* s = static_cast<TcpSocket*>(arg);
    if (s == nullptr) return ERR_OK;
    s->state_ = State::kConnected;
    s->CacheNames();
    if (auto conn = s->pending_connect_) conn->Reply(api::Opcode::kConnect, ErrnoOf(err));
    s->pending_connect_.reset();
    s->PumpFromApp();
    return ERR_OK;
  }

  static err_t OnRecv(void* arg, tcp_pcb* pcb, pbuf* p, err_t /*err*/) {
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
    s->service_.MarkDirty(s->shared_from_this());
    return ERR_OK;
  }

  static err_t OnSent(void* arg, tcp_pcb* /*pcb*/, u16_t /*len*/) {
    auto* s = static_cast<TcpSocket*>(arg);
    if (s != nullptr) s->PumpFromApp();
    return ERR_OK;
  }

  // lwIP has freed the pcb (RST received, retransmissions exhausted, or aborted).
  static void OnError(void* arg, err_t err) {
    auto* s = static_cast<TcpSocket*>(arg);
    if (s == nullptr) return;
    s->pcb_ = nullptr;
    if (s->dpm_id_ != 0) s->service_.DpmRelease(s->dpm_id_);
    s->dpm_id_ = 0;
    int e = err == ERR_RST ? (s->state_ == State::kConnecting ? ECONNREFUSED : ECONNRESET)
            : err == ERR_ABRT ? (s->state_ == State::kConnecting ? ETIMEDOUT : ECONNABORTED)
                              : ErrnoOf(err);
    if (s->state_ == State::kConnecting) {
      if (auto conn = s->pending_connect_) conn->Reply(api::Opcode::kConnect, e);
      s->pending_connect_.reset();
    } else {
      s->last_error_ = e;
    }
    s->state_ = State::kClosed;
    s->FreePending();
    s->unsent_.clear();
    ::shutdown(s->sd_.native_handle(), SHUT_RDWR);  // the program sees EOF, then EPIPE
    s->WaitIdle();
  }

  static err_t OnAccept(void* arg, tcp_pcb* newpcb, err_t err) {
    auto* listener = static_cast<TcpSocket*>(arg);
    if (listener == nullptr || err != ERR_OK || newpcb == nullptr) return ERR_VAL;
    SocketService::Impl& service = listener->service_;
    int pair[2];
    if (service.Full() || listener->accept_queue_.size() >= listener->backlog_ ||
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      service.counters_.accept_overflow++;
      tcp_abort(newpcb);
      return ERR_ABRT;
    }
    SetBuffers(pair[0]);
    // The program's end is blocking unless it asks otherwise (O_NONBLOCK is per open file).
    ::fcntl(pair[1], F_SETFL, ::fcntl(pair[1], F_GETFL) & ~O_NONBLOCK);
    auto s = TcpSocket::Accepted(service, pair[0], newpcb);
    s->ShareOwnAddress(*listener);
    service.Register(s);
    api::AcceptRecord record{api::SocketRef{s->id(), s->cookie()}, s->local_, s->peer_};
    listener->QueueAccepted(record, pair[1]);
    s->Start();
    return ERR_OK;
  }

  tcp_pcb* pcb_;
  bool bound_ = false;
  bool had_peer_ = false;
  // DPM: the grant's registered endpoint (what getsockname shows) and the true peer.
  bool dpm_ = false, dpm_connecting_ = false;
  uint64_t dpm_id_ = 0;
  api::Endpoint dpm_external_, true_remote_;
  api::Endpoint local_, peer_;
  std::shared_ptr<ControlConn> pending_connect_;  // answered when the handshake ends
  // Network → program.
  std::vector<Chunk> pending_;  // chunks before pending_head_ are consumed
  size_t pending_head_ = 0;
  size_t pending_bytes_ = 0;
  bool remote_fin_ = false, fin_to_app_ = false;
  // Program → network: bytes read from the pair that lwIP had no room for yet.
  std::vector<uint8_t> unsent_;
  bool app_eof_ = false;
  bool read_waiting_ = false, write_waiting_ = false, idle_waiting_ = false;
  // Listening.
  size_t backlog_ = TCP_DEFAULT_LISTEN_BACKLOG;
  std::vector<QueuedAccept> accept_queue_;
};

// ---------------------------------------------------------------------------------------
class UdpSocket : public Socket {
 public:
  UdpSocket(SocketService::Impl& service, int near_fd, udp_pcb* pcb) : Socket(service, near_fd, false), pcb_(pcb) {
    udp_recv(pcb_, &UdpSocket::OnRecv, this);
  }

  void Start() override { WaitAppReadable(); }

  void PresetLocalAddress(const ip_addr_t& address) override {
    if (!bound_ && pcb_->local_port == 0) ip_addr_copy(pcb_->local_ip, address);
  }

  int Bind(const api::Endpoint& local) override {
    if (int e = CheckLocal(local)) return e;
    if (bound_) return EINVAL;
    ip_addr_t ip;
    ToIpAddr(local, &ip);
    if (own_address_ != 0) ip = own_ip_;
    err_t err = udp_bind(pcb_, &ip, local.port_host());
    if (err != ERR_OK) return ErrnoOf(err);
    bound_ = true;
    if (local.port_be != 0) dpm_port_fixed = true;  // an explicitly bound port is not replaceable
    return 0;
  }

  int Listen(int) override { return EOPNOTSUPP; }

  int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) override {
    if (pending_connect_) return EALREADY;
    if (remote.family == AF_UNSPEC) {  // connect(AF_UNSPEC) dissolves the association
      udp_disconnect(pcb_);
      state_ = State::kOpen;
      connected_dpm_ = nullptr;
      return 0;
    }
    if (remote.family != AF_INET) return EAFNOSUPPORT;
    if (int e = TakeOwnAddress()) return e;
    if (service_.DpmApplies(remote)) {
      // DPM patent, claims 1-5, for a datagram session: the setup exchange first; connect() answers
      // when the grant names the gateway endpoint, and the pcb is connected to that endpoint.
      DpmPeer* peer = FindOrBeginPeer(remote);
      if (peer == nullptr) return ENOBUFS;
      if (peer->granted) {
        ConnectToGrant(*peer);
        return 0;
      }
      pending_connect_ = conn;
      pending_connect_key_ = Key(remote);
      return -1;
    }
    connected_dpm_ = nullptr;
    ip_addr_t ip;
    ToIpAddr(remote, &ip);
    err_t err = udp_connect(pcb_, &ip, remote.port_host());
    if (err != ERR_OK) return ErrnoOf(err);
    bound_ = true;
    state_ = State::kConnected;
    return 0;
  }

  int Name(bool peer, api::Endpoint* out) const override {
    if (peer) {
      if (state_ != State::kConnected) return ENOTCONN;
      // claim 11: a DPM session shows its true destination, not the gateway endpoint
      *out = connected_dpm_ ? connected_dpm_->remote : ToEndpoint(pcb_->remote_ip, pcb_->remote_port);
      return 0;
    }
    if (connected_dpm_ && connected_dpm_->granted) {  // claim 11: the registered address and port
      *out = connected_dpm_->external;
      return 0;
    }
    *out = ToEndpoint(pcb_->local_ip, pcb_->local_port);
    // connect(2) on a kernel UDP socket picks the source address; lwIP leaves the pcb bound
    // to "any" and chooses per datagram, so report the address it will use.
    if (state_ == State::kConnected && ip_addr_isany(&pcb_->local_ip)) {
      *out = api::Endpoint::Ipv4(service_.stack_.config().address, pcb_->local_port);
    }
    return 0;
  }

  int Shutdown(int how) override {
    if (how < SHUT_RD || how > SHUT_RDWR) return EINVAL;
    return state_ == State::kConnected ? 0 : ENOTCONN;
  }

  int SetOption(int level, int name, const std::vector<uint8_t>& value) override {
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

  int GetOption(int level, int name, int* value) override {
    if (level == SOL_SOCKET && name == SO_ERROR) { *value = last_error_; last_error_ = 0; return 0; }
    if (level == SOL_SOCKET && name == SO_TYPE) { *value = SOCK_DGRAM; return 0; }
    if (level == SOL_SOCKET && name == SO_REUSEADDR) { *value = ip_get_option(pcb_, SOF_REUSEADDR) ? 1 : 0; return 0; }
    if (level == SOL_SOCKET && name == SO_BROADCAST) { *value = ip_get_option(pcb_, SOF_BROADCAST) ? 1 : 0; return 0; }
    if (level == IPPROTO_IP && name == IP_TOS) { *value = pcb_->tos; return 0; }
    if (level == IPPROTO_IP && name == IP_TTL) { *value = pcb_->ttl; return 0; }
    return ENOPROTOOPT;
  }

  void Destroy() override {
    if (pending_connect_) pending_connect_->Reply(api::Opcode::kConnect, ECONNABORTED);
    pending_connect_.reset();
    connected_dpm_ = nullptr;
    for (auto& [key, peer] : dpm_peers_) {
      if (peer->id != 0) service_.DpmRelease(peer->id);  // lifetime 0 for every grant
    }
    dpm_peers_.clear();
    dpm_by_id_.clear();
    dpm_by_gateway_.clear();
    if (pcb_ != nullptr) {
      udp_recv(pcb_, nullptr, nullptr);
      udp_remove(pcb_);
      pcb_ = nullptr;
    }
    boost::system::error_code ignored;
    sd_.close(ignored);
  }

  std::string Describe(bool json) const override {
    api::Endpoint local, peer;
    Name(false, &local);
    Name(true, &peer);
    return DescribeCommon(json, dpm_peers_.empty() ? "udp" : "udp*", local, peer, 0, 0);
  }

  void OnDpmEvent(const driver::Event& e) override {
    using Kind = driver::Event::Kind;
    auto it = dpm_by_id_.find(e.id);
    if (it == dpm_by_id_.end()) return;
    DpmPeer* peer = it->second;
    if (e.kind == Kind::kLost) return;  // the driver is asking the restarted gateway again
    if (e.kind == Kind::kGranted) {
      if (peer->granted) dpm_by_gateway_.erase(Key(peer->gateway_endpoint));
      peer->granted = true;
      peer->external = api::Endpoint::Ipv4(e.external.address, e.external.port);
      peer->gateway_endpoint = api::Endpoint::Ipv4(e.gateway_endpoint.address, e.gateway_endpoint.port);
      dpm_by_gateway_[Key(peer->gateway_endpoint)] = peer;
      if (connected_dpm_ == peer) ConnectToGrant(*peer);  // a re-grant may name a new endpoint
      for (std::vector<uint8_t>& d : peer->queued) SendTo(peer->gateway_endpoint, d.data(), d.size());
      peer->queued.clear();
      if (pending_connect_ && pending_connect_key_ == Key(peer->remote)) {
        ConnectToGrant(*peer);
        pending_connect_->Reply(api::Opcode::kConnect, 0);
        pending_connect_.reset();
      }
      return;
    }
    // Failed or timed out: the datagrams waiting for it are dropped, the error is reported
    // (connect's answer, or SO_ERROR for sendto), and the next datagram asks again.
    int error = e.kind == Kind::kTimedOut ? ETIMEDOUT : ErrnoForPcp(e.result);
    service_.counters_.udp_dpm_dropped += peer->queued.size();
    uint64_t key = Key(peer->remote);
    if (pending_connect_ && pending_connect_key_ == key) {
      pending_connect_->Reply(api::Opcode::kConnect, error);
      pending_connect_.reset();
    } else {
      last_error_ = error;
    }
    if (connected_dpm_ == peer) connected_dpm_ = nullptr;
    if (peer->granted) dpm_by_gateway_.erase(Key(peer->gateway_endpoint));
    dpm_by_id_.erase(it);
    dpm_peers_.erase(key);
  }

 private:
  // One DPM grant of this socket: a remote peer outside the private network (the DPM patent, ¶33:
  // the driver aims the datagrams at the gateway endpoint, the gateway sends them on).
  struct DpmPeer {
    uint64_t id = 0;  // the driver's session id
    api::Endpoint remote;
    bool granted = false;
    api::Endpoint external, gateway_endpoint;
    std::vector<std::vector<uint8_t>> queued;  // datagrams sent before the grant
  };
  static constexpr size_t kMaxDpmPeers = 1024;   // remote peers with a grant, per socket
  static constexpr size_t kMaxQueuedPerPeer = 64;  // datagrams held while a setup runs

  static uint64_t Key(const api::Endpoint& e) { return (uint64_t{e.ipv4_host()} << 16) | e.port_host(); }

  // The socket's grant towards `remote`, starting the setup exchange if there is none;
  // nullptr when the socket already holds kMaxDpmPeers grants.
  DpmPeer* FindOrBeginPeer(const api::Endpoint& remote) {
    uint64_t key = Key(remote);
    if (auto it = dpm_peers_.find(key); it != dpm_peers_.end()) return it->second.get();
    if (dpm_peers_.size() >= kMaxDpmPeers) return nullptr;
    if (pcb_->local_port == 0) {
      if (TakeOwnAddress() != 0 || udp_bind(pcb_, AnyOrOwn(), 0) != ERR_OK) return nullptr;
      bound_ = true;
    }
    auto peer = std::make_unique<DpmPeer>();
    peer->remote = remote;
    peer->id = service_.DpmBegin(this, nat::Protocol::kUdp, pcb_->local_port, remote, dpm_port_fixed);
    DpmPeer* raw = peer.get();
    dpm_by_id_[peer->id] = raw;
    dpm_peers_[key] = std::move(peer);
    return raw;
  }

  void ConnectToGrant(DpmPeer& peer) {
    ip_addr_t ip;
    ToIpAddr(peer.gateway_endpoint, &ip);
    udp_connect(pcb_, &ip, peer.gateway_endpoint.port_host());  // claim 5
    connected_dpm_ = &peer;
    bound_ = true;
    state_ = State::kConnected;
  }

  err_t SendTo(const api::Endpoint& to, const uint8_t* data, size_t size) {
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(size), PBUF_RAM);
    if (p == nullptr) return ERR_MEM;
    pbuf_take(p, data, static_cast<u16_t>(size));
    ip_addr_t ip;
    ToIpAddr(to, &ip);
    err_t err = udp_sendto(pcb_, p, &ip, to.port_host());
    pbuf_free(p);
    return err;
  }

  // A datagram for a peer outside the private network from an unconnected socket: sent to
  // the peer's gateway endpoint once granted, held (bounded) while the setup runs.
  void SendDpm(const api::Endpoint& to, const uint8_t* data, size_t size) {
    DpmPeer* peer = FindOrBeginPeer(to);
    if (peer == nullptr) {
      last_error_ = ENOBUFS;
      service_.counters_.udp_dpm_dropped++;
      return;
    }
    if (peer->granted) {
      if (err_t err = SendTo(peer->gateway_endpoint, data, size); err != ERR_OK) last_error_ = ErrnoOf(err);
      return;
    }
    if (peer->queued.size() >= kMaxQueuedPerPeer) {
      service_.counters_.udp_dpm_dropped++;
      return;
    }
    peer->queued.emplace_back(data, data + size);
  }

  void WaitAppReadable() {
    Await(Wait::wait_read, &read_waiting_, [this] {
      if (OnAppReadable()) WaitAppReadable();
    });
  }

  // Program → network: one datagram per message. False once the program has gone.
  bool OnAppReadable() {
    std::vector<uint8_t>& buf = service_.scratch_;
    for (;;) {
      ssize_t n = ::recv(sd_.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
      if (n <= 0) {  // every message has a header, so 0 bytes is end-of-file
        ReleaseSelf();
        return false;
      }
      size_t len = static_cast<size_t>(n);
      if (len < api::kDatagramHeaderSize) {
        service_.counters_.udp_tx_malformed++;
        continue;
      }
      absl::StatusOr<api::Endpoint> to =
          api::ParseEndpoint(absl::MakeConstSpan(buf.data(), api::kDatagramHeaderSize));
      if (!to.ok() || (to->family == 0 && state_ != State::kConnected) ||
          (to->family != 0 && to->family != AF_INET)) {
        service_.counters_.udp_tx_malformed++;
        continue;
      }
      size_t payload = len - api::kDatagramHeaderSize;
      if (int e = TakeOwnAddress()) {  // the first send of an unbound socket (deferred embodiment)
        last_error_ = e;
        service_.counters_.udp_tx_no_address++;
        continue;
      }
      if (to->family != 0 && service_.DpmApplies(*to) &&
          !(connected_dpm_ && Key(connected_dpm_->remote) == Key(*to))) {
        SendDpm(*to, buf.data() + api::kDatagramHeaderSize, payload);
        continue;
      }
      pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(payload), PBUF_RAM);
      if (p == nullptr) continue;
      pbuf_take(p, buf.data() + api::kDatagramHeaderSize, static_cast<u16_t>(payload));
      err_t err;
      if (to->family == 0 || (connected_dpm_ && Key(connected_dpm_->remote) == Key(*to))) {
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

  static void OnRecv(void* arg, udp_pcb* /*pcb*/, pbuf* p, const ip_addr_t* addr, u16_t port) {
    auto* s = static_cast<UdpSocket*>(arg);
    if (s == nullptr) {
      pbuf_free(p);
      return;
    }
    api::Endpoint from = ToEndpoint(*addr, port);
    if (!s->dpm_by_gateway_.empty()) {  // claim 11: a DPM peer's datagrams show its true address
      if (auto it = s->dpm_by_gateway_.find(Key(from)); it != s->dpm_by_gateway_.end()) from = it->second->remote;
    }
    std::vector<uint8_t> header = api::EncodeEndpoint(from);
    iovec parts[64];
    size_t count = 0;
    parts[count++] = iovec{header.data(), header.size()};
    for (pbuf* q = p; q != nullptr && count < 64; q = q->next) parts[count++] = iovec{q->payload, q->len};
    msghdr m{};
    m.msg_iov = parts;
    m.msg_iovlen = count;
    if (::sendmsg(s->sd_.native_handle(), &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      s->service_.counters_.udp_rx_dropped++;
    }
    pbuf_free(p);
  }

  udp_pcb* pcb_;
  bool bound_ = false;
  bool read_waiting_ = false;
  // DPM grants by remote peer; the same grants by driver id and by gateway endpoint.
  absl::flat_hash_map<uint64_t, std::unique_ptr<DpmPeer>> dpm_peers_;
  absl::flat_hash_map<uint64_t, DpmPeer*> dpm_by_id_;
  absl::flat_hash_map<uint64_t, DpmPeer*> dpm_by_gateway_;
  DpmPeer* connected_dpm_ = nullptr;  // connect()ed to a DPM peer
  std::shared_ptr<ControlConn> pending_connect_;  // a connect() waiting for its grant
  uint64_t pending_connect_key_ = 0;
};

// ---------------------------------------------------------------------------------------
SocketService::Impl::~Impl() {
  for (auto& [id, s] : sockets_) s->Destroy();
  sockets_.clear();
  for (Linger* l : lingering_) l->service = nullptr;  // lwIP may still call back: a no-op then
  if (driver_pcb_ != nullptr) udp_remove(driver_pcb_);
  if (!abstract_) ::unlink(config_.path.c_str());
}

void SocketService::Impl::StartAccept() {
  listener_.async_wait(Wait::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;
    for (;;) {
      int fd = ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      control_connections_++;
      PeerCredentials peer;
      absl::StatusOr<bool> allowed = CheckPeer(access_, fd, &peer);
      const bool refused = !allowed.ok() || !*allowed;
      if (refused) {
        counters_.api_refused++;
        std::fprintf(stderr, "dpmd: API connection refused: pid %d uid %u gid %u is neither this daemon's user nor root%s\n",
                     static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid), static_cast<unsigned>(peer.gid),
                     access_.group ? ", nor in the API group" : ", and there is no --api-group");
      }
      auto conn = std::make_shared<ControlConn>(*this, fd, refused);
      conn->Start();
    }
    StartAccept();
  });
}

void SocketService::Impl::MarkDirty(std::shared_ptr<Socket> s) {
  if (s->dirty) return;
  s->dirty = true;
  dirty_.push_back(std::move(s));
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] { FlushDirty(); });
}

void SocketService::Impl::FlushDirty() {
  flush_posted_ = false;
  std::vector<std::shared_ptr<Socket>> batch;
  batch.swap(dirty_);
  for (auto& s : batch) {
    s->dirty = false;
    s->Flush();
  }
  stack_.AfterCoreWork();
}

uint64_t SocketService::Impl::NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void SocketService::Impl::StartDriver() {
  if (!config_.dpm) return;
  driver::DriverConfig dc;
  dc.server_address = config_.dpm->server_address;
  dc.server_port = config_.dpm->server_port;
  dc.client_address = stack_.config().address;
  dc.lifetime_s = config_.dpm->lifetime_s;
  driver_ = std::make_unique<driver::Driver>(dc, os::RandomU64());
  driver_timer_ = std::make_unique<boost::asio::steady_timer>(io_);
  driver_pcb_ = udp_new();
  udp_bind(driver_pcb_, IP4_ADDR_ANY, 0);
  ip_addr_t server;
  ip_addr_set_ip4_u32(&server, htonl(dc.server_address));
  udp_connect(driver_pcb_, &server, dc.server_port);
  udp_recv(
      driver_pcb_,
      [](void* arg, udp_pcb*, pbuf* p, const ip_addr_t*, u16_t) {
        auto* self = static_cast<Impl*>(arg);
        std::vector<uint8_t> bytes(p->tot_len);
        pbuf_copy_partial(p, bytes.data(), p->tot_len, 0);
        pbuf_free(p);
        self->driver_->OnReply(NowMs(), bytes);
        self->DriverWork();
      },
      this);
}

uint64_t SocketService::Impl::DpmBegin(Socket* s, nat::Protocol protocol, uint16_t port, const api::Endpoint& remote,
                                       bool fixed) {
  // A socket with an address of its own gets a mapping of its own (docs/design.md §7).
  uint64_t id = driver_->Begin(NowMs(), protocol, port, {remote.ipv4_host(), remote.port_host()}, fixed,
                               s->own_address());
  dpm_sessions_[id] = s->weak_from_this();
  dpm_setups_++;
  boost::asio::post(io_, [this] { DriverWork(); });
  return id;
}

void SocketService::Impl::DpmRelease(uint64_t id) {
  dpm_sessions_.erase(id);
  driver_->Release(NowMs(), id);
  boost::asio::post(io_, [this] { DriverWork(); });
}

void SocketService::Impl::DriverWork() {
  std::vector<driver::Outgoing> out;
  std::vector<driver::Event> events;
  driver_->Poll(NowMs(), &out, &events);
  for (const driver::Outgoing& o : out) {
    pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(o.payload.size()), PBUF_RAM);
    if (p == nullptr) continue;
    pbuf_take(p, o.payload.data(), static_cast<u16_t>(o.payload.size()));
    // From the session's internal address: the host's, or the socket's own.
    ip_addr_t source;
    ip_addr_set_ip4_u32(&source, htonl(o.source));
    udp_sendto_if_src(driver_pcb_, p, &driver_pcb_->remote_ip, driver_pcb_->remote_port, stack_.lwip_netif(),
                      &source);
    pbuf_free(p);
  }
  for (const driver::Event& e : events) {
    auto it = dpm_sessions_.find(e.id);
    if (it == dpm_sessions_.end()) continue;
    std::shared_ptr<Socket> s = it->second.lock();
    if (e.kind != driver::Event::Kind::kGranted && e.kind != driver::Event::Kind::kLost) {
      dpm_sessions_.erase(it);
      dpm_failures_++;
    }
    if (s) s->OnDpmEvent(e);
  }
  if (std::optional<uint64_t> next = driver_->NextDeadline()) {
    driver_timer_->expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(*next)));
    driver_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      DriverWork();
    });
  }
  stack_.AfterCoreWork();
}

void SocketService::Impl::Register(std::shared_ptr<Socket> s) {
  s->set_id(next_id_++);
  counters_.sockets_opened++;
  sockets_.emplace(s->id(), std::move(s));
}

void SocketService::Impl::Release(uint64_t id) {
  auto it = sockets_.find(id);
  if (it == sockets_.end()) return;
  std::shared_ptr<Socket> s = std::move(it->second);
  sockets_.erase(it);
  counters_.sockets_closed++;
  s->Destroy();
  // Seed 004, modified close: the address goes back with the port (after the closing
  // handshake, when one is under way: LingerAddress).
  if (s->own_address() != 0 && !s->address_lingers()) DropAddress(s->own_address());
}

std::optional<uint32_t> SocketService::Impl::TakeAddress() {
  std::optional<uint32_t> a = pool_ ? pool_->Allocate() : std::nullopt;
  if (!a) {
    counters_.address_exhausted++;
    return std::nullopt;
  }
  address_holders_[*a] = AddressUse{1, 0};
  AcceptAddress(*a);
  stack_.AnnounceAddress(*a);  // TAP: RFC 5227 announcement to the neighbours; no-op on TUN
  counters_.addresses_taken++;
  return a;
}

void SocketService::Impl::HoldAddress(uint32_t address) { address_holders_[address].holders++; }

void SocketService::Impl::LingerAddress(tcp_pcb* pcb, uint32_t address) {
  auto* linger = new Linger{this, address};
  lingering_.insert(linger);
  counters_.addresses_lingered++;
  // Ends the linger once: the address is dropped after lwIP has sent what this input causes
  // (the ACK of the peer's FIN still leaves from the address, marked).
  static constexpr auto end = [](Linger* l) {
    if (l->service != nullptr) {
      Impl* service = l->service;
      service->lingering_.erase(l);
      boost::asio::post(service->io_, [service, a = l->address] { service->DropAddress(a); });
    }
    delete l;
  };
  // The pcb's end, however it comes (LAST_ACK acknowledged, reset, timed out, TIME_WAIT
  // over): lwIP's "destroyed" extension callback, the one call every freed pcb gets.
  static const tcp_ext_arg_callbacks callbacks{
      [](u8_t, void* data) {
        if (data != nullptr) end(static_cast<Linger*>(data));
      },
      nullptr};
  static const u8_t id = tcp_ext_arg_alloc_id();
  tcp_ext_arg_set_callbacks(pcb, id, &callbacks);
  tcp_ext_arg_set(pcb, id, linger);
  // The peer's FIN ends it sooner: the handshake is done, TIME_WAIT need not hold the address.
  tcp_arg(pcb, linger);
  tcp_recv(pcb, [](void* arg, tcp_pcb* p, pbuf* data, err_t) -> err_t {
    if (data != nullptr) {  // data after close: lwIP resets the connection itself
      tcp_recved(p, data->tot_len);
      pbuf_free(data);
      return ERR_OK;
    }
    tcp_arg(p, nullptr);
    tcp_recv(p, nullptr);
    tcp_ext_arg_set(p, id, nullptr);
    end(static_cast<Linger*>(arg));
    return ERR_OK;
  });
}

void SocketService::Impl::DropAddress(uint32_t address) {
  auto it = address_holders_.find(address);
  if (it == address_holders_.end() || --it->second.holders > 0) return;
  const uint64_t lease = it->second.lease;
  address_holders_.erase(it);
  StopAcceptingAddress(address);
  stack_.SetAddressDscp(address, -1);
  if (lease != 0) {
    dhcp_->Release(lease);  // DHCPRELEASE (RFC 2131 §4.4.6)
  } else {
    pool_->Release(address);
  }
  counters_.addresses_released++;
}

int Socket::TakeOwnAddress() {
  if (tuple_ == DPM_TUPLE_COMMON || own_address_ != 0) return 0;
  if (tuple_ == DPM_TUPLE_DYNAMIC) return EADDRNOTAVAIL;  // its lease is gone (LoseAddress)
  std::optional<uint32_t> a = service_.TakeAddress();
  if (!a) return EADDRNOTAVAIL;
  own_address_ = *a;
  ip_addr_set_ip4_u32(&own_ip_, htonl(*a));
  PresetLocalAddress(own_ip_);
  if (dscp_ >= 0) service_.stack_.SetAddressDscp(own_address_, dscp_);
  return 0;
}

void SocketService::Impl::ObtainLease(const std::shared_ptr<Socket>& s, std::function<void(int error)> done) {
  auto bound_once = std::make_shared<bool>(false);
  std::weak_ptr<Socket> weak = s;
  const uint64_t id = s->id();
  s->lease_requested = true;
  dhcp_->Obtain(
      id,
      [this, weak, id, bound_once, done](uint32_t address) {
        std::shared_ptr<Socket> socket = weak.lock();
        if (socket == nullptr || address_holders_.contains(address)) {
          dhcp_->Release(id);  // nobody wants it, or (a misconfigured server) it is in use here
          return done(socket == nullptr ? ECONNABORTED : EADDRNOTAVAIL);
        }
        *bound_once = true;
        address_holders_[address] = AddressUse{1, id};
        AcceptAddress(address);
        stack_.AnnounceAddress(address);
        counters_.addresses_taken++;
        socket->AdoptAddress(address);
        done(0);
        stack_.AfterCoreWork();
      },
      [this, weak, bound_once, done](int error) {
        if (!*bound_once) return done(error);  // no lease: the call waiting for it fails (ETIMEDOUT)
        std::shared_ptr<Socket> socket = weak.lock();
        if (socket != nullptr && socket->own_address() != 0) LoseLease(socket->own_address(), error);
      });
}

void SocketService::Impl::LoseLease(uint32_t address, int error) {
  auto it = address_holders_.find(address);
  if (it == address_holders_.end()) return;
  address_holders_.erase(it);  // the client is gone already: nothing to release
  StopAcceptingAddress(address);
  stack_.SetAddressDscp(address, -1);
  for (auto& [sid, socket] : sockets_) {
    if (socket->own_address() != address) continue;
    socket->LoseAddress(error);
    counters_.addresses_lost++;
  }
  stack_.AfterCoreWork();
}

void Socket::AdoptAddress(uint32_t address) {
  own_address_ = address;
  ip_addr_set_ip4_u32(&own_ip_, htonl(address));
  PresetLocalAddress(own_ip_);
  if (dscp_ >= 0) service_.stack_.SetAddressDscp(own_address_, dscp_);
}

int Socket::SetAddressDscp(int dscp) {
  if (dscp < -1 || dscp > 63 || tuple_ == DPM_TUPLE_COMMON) return EINVAL;
  dscp_ = dscp;
  if (own_address_ != 0) service_.stack_.SetAddressDscp(own_address_, dscp);
  return 0;
}

int Socket::AddressDscp() const {
  return own_address_ != 0 ? service_.stack_.AddressDscp(own_address_) : dscp_;
}

void Socket::ShareOwnAddress(const Socket& listener) {
  if (listener.own_address_ == 0) return;
  tuple_ = listener.tuple_;
  own_address_ = listener.own_address_;
  own_ip_ = listener.own_ip_;
  service_.HoldAddress(own_address_);
}

std::shared_ptr<Socket> SocketService::Impl::Find(const api::SocketRef& ref) const {
  auto it = sockets_.find(ref.id);
  if (it == sockets_.end() || it->second->cookie() != ref.cookie) return nullptr;
  return it->second;
}

namespace {

// Makes the socket pair for a new socket: [0] stays here, [1] goes to the program.
int MakePair(bool tcp, int type_flags, int pair[2]) {
  int kind = tcp ? SOCK_STREAM : SOCK_SEQPACKET;
  if (::socketpair(AF_UNIX, kind | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return errno;
  SetBuffers(pair[0]);
  if ((type_flags & SOCK_NONBLOCK) == 0) ::fcntl(pair[1], F_SETFL, ::fcntl(pair[1], F_GETFL) & ~O_NONBLOCK);
  return 0;
}

}  // namespace

void SocketService::Impl::Handle(const std::shared_ptr<ControlConn>& conn, const api::Request& request,
                                 api::Opcode op) {
  if (const auto* q = std::get_if<api::SocketRequest>(&request)) {
    int base_type = q->type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    int error = 0;
    int tuple = q->tuple;
    if (q->domain == AF_INET_TUPLE && tuple == DPM_TUPLE_COMMON) {
      // Seed 004's second form: a new address, from the default source — the static pool if
      // there is one, else a DHCP lease.
      tuple = pool_ || !dhcp_ ? DPM_TUPLE_STATIC : DPM_TUPLE_DYNAMIC;
    }
    if (q->domain != AF_INET && q->domain != AF_INET_TUPLE) {
      error = EAFNOSUPPORT;
    } else if (base_type != SOCK_STREAM && base_type != SOCK_DGRAM) {
      error = EINVAL;
    } else if (tuple != DPM_TUPLE_COMMON && tuple != DPM_TUPLE_STATIC && tuple != DPM_TUPLE_DYNAMIC) {
      error = EINVAL;  // unknown
    } else if ((tuple == DPM_TUPLE_STATIC && !pool_) || (tuple == DPM_TUPLE_DYNAMIC && !dhcp_)) {
      error = EADDRNOTAVAIL;  // no static pool (--address-pool) / no leases (--dhcp) configured
    } else if ((base_type == SOCK_STREAM && q->protocol != 0 && q->protocol != IPPROTO_TCP) ||
               (base_type == SOCK_DGRAM && q->protocol != 0 && q->protocol != IPPROTO_UDP)) {
      error = EPROTONOSUPPORT;
    } else if (Full()) {
      error = ENOBUFS;
    }
    if (error != 0) return conn->Reply(op, error);
    bool tcp = base_type == SOCK_STREAM;
    int pair[2];
    if (int e = MakePair(tcp, q->type, pair)) return conn->Reply(op, e);
    std::shared_ptr<Socket> s;
    if (tcp) {
      tcp_pcb* pcb = tcp_new();
      if (pcb != nullptr) s = std::make_shared<TcpSocket>(*this, pair[0], pcb);
    } else {
      udp_pcb* pcb = udp_new();
      if (pcb != nullptr) s = std::make_shared<UdpSocket>(*this, pair[0], pcb);
    }
    if (s == nullptr) {
      ::close(pair[0]);
      ::close(pair[1]);
      return conn->Reply(op, ENOBUFS);
    }
    s->set_tuple(tuple);
    if (tuple == DPM_TUPLE_DYNAMIC && config_.address_at_socket) {
      // The first embodiment with a lease: dpm_socket's reply waits for the DHCP exchange.
      Register(s);
      conn->Defer();
      const int far = pair[1];
      return ObtainLease(s, [this, conn, op, far, weak = std::weak_ptr<Socket>(s)](int error) {
        std::shared_ptr<Socket> socket = weak.lock();
        if (socket == nullptr && error == 0) error = ECONNABORTED;  // the daemon let it go meanwhile
        if (error == 0) {
          socket->Start();
          conn->Reply(op, 0, api::EncodeSocketRef(api::SocketRef{socket->id(), socket->cookie()}), far);
        } else {
          conn->Reply(op, error);
          if (socket != nullptr) Release(socket->id());
        }
        ::close(far);
      });
    }
    if (config_.address_at_socket) {
      if (int e = s->TakeOwnAddress()) {  // first embodiment (design §7): the address now
        s->Destroy();
        ::close(pair[1]);
        return conn->Reply(op, e);
      }
    }
    Register(s);
    s->Start();
    conn->Reply(op, 0, api::EncodeSocketRef(api::SocketRef{s->id(), s->cookie()}), pair[1]);
    ::close(pair[1]);
    return;
  }
  if (const auto* q = std::get_if<api::StatusRequest>(&request)) {
    std::string text = Status(q->json);
    return conn->Reply(op, 0, std::vector<uint8_t>(text.begin(), text.end()));
  }

  // Every other request names a socket.
  const api::SocketRef& ref = std::visit(
      [](const auto& r) -> const api::SocketRef& {
        if constexpr (requires { r.ref; }) {
          return r.ref;
        } else {
          static const api::SocketRef none;
          return none;
        }
      },
      request);
  std::shared_ptr<Socket> s = Find(ref);
  if (s == nullptr) return conn->Reply(op, EBADF);

  // The deferred embodiment with a lease: the first bind/connect/listen waits for the DHCP
  // exchange and is then handled as if the address had been there all along.
  if (s->tuple() == DPM_TUPLE_DYNAMIC && s->own_address() == 0 && !s->lease_requested &&
      (std::holds_alternative<api::BindRequest>(request) || std::holds_alternative<api::ConnectRequest>(request) ||
       std::holds_alternative<api::ListenRequest>(request))) {
    conn->Defer();
    return ObtainLease(s, [this, conn, request, op](int error) {
      if (error != 0) return conn->Reply(op, error);
      Handle(conn, request, op);
    });
  }

  if (const auto* q = std::get_if<api::BindRequest>(&request)) return conn->Reply(op, s->Bind(q->local));
  if (const auto* q = std::get_if<api::ListenRequest>(&request)) {
    return conn->Reply(op, s->tcp() ? s->Listen(q->backlog) : EOPNOTSUPP);
  }
  if (const auto* q = std::get_if<api::ConnectRequest>(&request)) {
    int e = s->Connect(q->remote, conn);
    if (e < 0) return conn->Defer();
    return conn->Reply(op, e);
  }
  if (const auto* q = std::get_if<api::NameRequest>(&request)) {
    api::Endpoint e;
    int err = s->Name(q->peer, &e);
    return conn->Reply(op, err, err == 0 ? api::EncodeEndpoint(e) : std::vector<uint8_t>{});
  }
  if (const auto* q = std::get_if<api::ShutdownRequest>(&request)) return conn->Reply(op, s->Shutdown(q->how));
  if (const auto* q = std::get_if<api::SetSockOptRequest>(&request)) {
    if (q->level == DPM_SOL && q->name == DPM_PORT_FIXED) {
      int v = 0;
      if (!ReadInt(q->value, &v)) return conn->Reply(op, EINVAL);
      s->dpm_port_fixed = v != 0;
      return conn->Reply(op, 0);
    }
    if (q->level == DPM_SOL && q->name == DPM_ADDRESS_DSCP) {
      int v = 0;
      if (!ReadInt(q->value, &v)) return conn->Reply(op, EINVAL);
      return conn->Reply(op, s->SetAddressDscp(v));
    }
    return conn->Reply(op, s->SetOption(q->level, q->name, q->value));
  }
  if (const auto* q = std::get_if<api::GetSockOptRequest>(&request)) {
    int value = 0;
    int err = 0;
    if (q->level == DPM_SOL && q->name == DPM_PORT_FIXED) {
      value = s->dpm_port_fixed ? 1 : 0;
    } else if (q->level == DPM_SOL && q->name == DPM_ADDRESS_DSCP) {
      value = s->AddressDscp();
    } else {
      err = s->GetOption(q->level, q->name, &value);
    }
    std::vector<uint8_t> body(sizeof(value));
    std::memcpy(body.data(), &value, sizeof(value));
    return conn->Reply(op, err, err == 0 ? body : std::vector<uint8_t>{});
  }
  conn->Reply(op, EINVAL);
}

std::string SocketService::Impl::Status(bool json) const {
  const tun::Link& link = stack_.link();
  const tun::LinkCounters& lc = link.counters();
  const StackCounters& sc = stack_.counters();
  size_t active = 0, time_wait = 0, listen = 0;
  for (tcp_pcb* p = tcp_active_pcbs; p != nullptr; p = p->next) active++;
  for (tcp_pcb* p = tcp_tw_pcbs; p != nullptr; p = p->next) time_wait++;
  for (tcp_pcb_listen* p = tcp_listen_pcbs.listen_pcbs; p != nullptr; p = p->next) listen++;
  std::vector<const Socket*> list;
  for (const auto& [id, s] : sockets_) list.push_back(s.get());
  std::sort(list.begin(), list.end(), [](const Socket* a, const Socket* b) { return a->id() < b->id(); });
  uint32_t addr = stack_.config().address;
  std::string address = absl::StrFormat("%d.%d.%d.%d/%d", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
                                        addr & 255, stack_.config().prefix);
  std::string out;
  if (json) {
    absl::StrAppend(&out, "{\"version\":\"", DPM_VERSION, "\",\"role\":\"", config_.role, "\",\"api\":\"",
                    JsonEscape(config_.path), "\",\"link\":{\"name\":\"", JsonEscape(link.name()), "\",\"mtu\":", link.mtu(), ",\"address\":\"", address,
                    "\",\"rx_packets\":", lc.rx_packets, ",\"rx_bytes\":", lc.rx_bytes,
                    ",\"tx_packets\":", lc.tx_packets, ",\"tx_bytes\":", lc.tx_bytes,
                    ",\"tx_dropped\":", lc.tx_dropped, "},\"drops\":{");
    for (size_t i = 1; i < sc.ip_drops.size(); ++i) {
      absl::StrAppend(&out, i > 1 ? "," : "", "\"", wire::IpCheckName(static_cast<wire::IpCheck>(i)), "\":",
                      sc.ip_drops[i]);
    }
    absl::StrAppend(&out, ",\"lwip_ip\":", lwip_stats.ip.drop, ",\"lwip_ip_chksum\":", lwip_stats.ip.chkerr,
                    ",\"lwip_tcp\":", lwip_stats.tcp.drop, ",\"lwip_tcp_chksum\":", lwip_stats.tcp.chkerr,
                    ",\"lwip_udp\":", lwip_stats.udp.drop, ",\"lwip_udp_chksum\":", lwip_stats.udp.chkerr,
                    ",\"lwip_icmp\":", lwip_stats.icmp.drop, ",\"udp_rx_dropped\":", counters_.udp_rx_dropped,
                    ",\"udp_tx_malformed\":", counters_.udp_tx_malformed,
                    ",\"udp_dpm_dropped\":", counters_.udp_dpm_dropped,
                    ",\"accept_overflow\":", counters_.accept_overflow, ",\"bad_requests\":", counters_.bad_requests, ",\"api_refused\":", counters_.api_refused,
                    ",\"address_exhausted\":", counters_.address_exhausted,
                    ",\"udp_tx_no_address\":", counters_.udp_tx_no_address,
                    "},\"tcp_pcbs\":{\"active\":", active, ",\"time_wait\":", time_wait, ",\"listen\":", listen,
                    "},\"control_connections\":", control_connections_, ",\"sockets_opened\":",
                    counters_.sockets_opened, ",\"sockets_closed\":", counters_.sockets_closed,
                    ",\"addresses\":{\"pool\":", pool_ ? pool_->size() : 0, ",\"available\":",
                    pool_ ? pool_->available() : 0, ",\"in_use\":", address_holders_.size(),
                    ",\"taken\":", counters_.addresses_taken, ",\"released\":", counters_.addresses_released,
                    ",\"lingering\":", lingering_.size(), ",\"lingered\":", counters_.addresses_lingered,
                    ",\"dscp_marked\":", stack_.dscp_marked(), ",\"lost\":", counters_.addresses_lost,
                    ",\"at\":\"", config_.address_at_socket ? "socket" : "bind", "\"}");
    if (dhcp_) {
      const DhcpLeaseCounters d = dhcp_->counters();
      absl::StrAppend(&out, ",\"dhcp\":{\"clients\":", dhcp_->size(), ",\"leases\":", dhcp_->held(),
                      ",\"requested\":", d.requested, ",\"bound\":", d.bound, ",\"renewed\":", d.renewed,
                      ",\"timed_out\":", d.timed_out, ",\"expired\":", d.expired, ",\"naks\":", d.naks,
                      ",\"released\":", d.released, ",\"malformed\":", d.malformed, ",\"unrouted\":", d.unrouted,
                      ",\"ignored\":", d.ignored, ",\"send_errors\":", d.send_errors, "}");
    }
    absl::StrAppend(&out, ",\"sockets\":[");
    for (size_t i = 0; i < list.size() && i < kMaxStatusRows; ++i) {
      absl::StrAppend(&out, i ? "," : "", list[i]->Describe(true));
    }
    absl::StrAppend(&out, "],\"socket_count\":", list.size(), ",\"sockets_listed\":",
                    std::min(list.size(), kMaxStatusRows));
    if (driver_) {
      absl::StrAppend(&out, ",\"dpm_driver\":{\"grants\":", driver_->session_count(), ",\"setups\":", dpm_setups_,
                      ",\"failures\":", dpm_failures_, ",\"gateway_restarts\":", driver_->gateway_restarts(),
                      ",\"ignored_replies\":", driver_->ignored_replies(), "}");
    }
    if (config_.extra_status) absl::StrAppend(&out, ",", config_.extra_status(true));
    absl::StrAppend(&out, "}\n");
    return out;
  }
  // Client-only lines (sockets, per-socket addresses, the DPM driver) are left out of a
  // gateway's report, whose own part (config_.extra_status) follows.
  const bool client = config_.role == "client";
  absl::StrAppend(&out, "dpmd     ", DPM_VERSION, " ", config_.role, "; api ", config_.path, "\n");
  absl::StrAppend(&out, "link     ", link.name(), "  mtu ", link.mtu(), " bytes  address ", address, "\n");
  absl::StrAppend(&out, "traffic  rx ", lc.rx_packets, " packets ", lc.rx_bytes, " bytes; tx ", lc.tx_packets,
                  " packets ", lc.tx_bytes, " bytes; tx dropped ", lc.tx_dropped, " packets\n");
  if (pool_) {
    absl::StrAppend(&out, "addresses per socket: pool ", pool_->size(), ", in use ", address_holders_.size(),
                    " (closing ", lingering_.size(), "), available ", pool_->available(),
                    ", refused (exhausted) ", counters_.address_exhausted, " sockets, DSCP-marked ",
                    stack_.dscp_marked(), " packets; taken at ",
                    config_.address_at_socket ? "socket()" : "bind/connect", "\n");
  }
  if (dhcp_) {
    const DhcpLeaseCounters d = dhcp_->counters();
    absl::StrAppend(&out, "dhcp     leases ", dhcp_->held(), " (clients ", dhcp_->size(), "); bound ", d.bound,
                    ", renewed ", d.renewed, ", released ", d.released, ", timed out ", d.timed_out, ", expired ",
                    d.expired, ", NAKs ", d.naks, ", sockets closed by lease loss ", counters_.addresses_lost,
                    "; datagrams dropped: malformed ", d.malformed, ", unrouted ", d.unrouted, ", refused ", d.ignored,
                    "\n");
  }
  absl::StrAppend(&out, "drops    packets:");
  for (size_t i = 1; i < sc.ip_drops.size(); ++i) {
    absl::StrAppend(&out, " ", wire::IpCheckName(static_cast<wire::IpCheck>(i)), "=", sc.ip_drops[i]);
  }
  absl::StrAppend(&out, " lwip_ip=", lwip_stats.ip.drop, " lwip_ip_chksum=", lwip_stats.ip.chkerr,
                  " lwip_tcp=", lwip_stats.tcp.drop, " lwip_tcp_chksum=", lwip_stats.tcp.chkerr,
                  " lwip_udp=", lwip_stats.udp.drop, " lwip_udp_chksum=", lwip_stats.udp.chkerr,
                  " lwip_icmp=", lwip_stats.icmp.drop);
  if (client) {
    absl::StrAppend(&out, "; datagrams: udp_rx_dropped=", counters_.udp_rx_dropped,
                    " udp_tx_malformed=", counters_.udp_tx_malformed, " udp_dpm_dropped=", counters_.udp_dpm_dropped,
                    "; connections: accept_overflow=", counters_.accept_overflow);
  }
  absl::StrAppend(&out, "\napi      control connections ", control_connections_, "; requests refused as malformed ",
                  counters_.bad_requests, "; connections refused by credentials ", counters_.api_refused, "\n");
  if (client) {
    absl::StrAppend(&out, "tcp pcbs active ", active, "  time-wait ", time_wait, "  listen ", listen, "; sockets ",
                    list.size(), " (opened ", counters_.sockets_opened, ", closed ", counters_.sockets_closed, ")\n");
    absl::StrAppend(&out, absl::StrFormat("%-6s %-5s %-11s %-22s %-22s %10s %10s\n", "ID", "PROTO", "STATE", "LOCAL",
                                          "PEER", "TO-APP-B", "FROM-APP-B"));
    for (size_t i = 0; i < list.size() && i < kMaxStatusRows; ++i) {
      absl::StrAppend(&out, list[i]->Describe(false), "\n");
    }
    if (list.size() > kMaxStatusRows) absl::StrAppend(&out, "... and ", list.size() - kMaxStatusRows, " more\n");
  }
  if (driver_) {
    absl::StrAppend(&out, "dpm driver  grants ", driver_->session_count(), "; setups ", dpm_setups_, ", failed ",
                    dpm_failures_, "; gateway restarts seen ", driver_->gateway_restarts(), "; ignored replies ",
                    driver_->ignored_replies(), "\n");
  }
  if (config_.extra_status) absl::StrAppend(&out, config_.extra_status(false));
  return out;
}

// ---------------------------------------------------------------------------------------
namespace {

// Binds and listens. An abstract name needs nothing else: the kernel frees it when its socket
// closes, so a name in use is a live daemon of this network namespace (EADDRINUSE).
absl::StatusOr<int> BindAndListen(const api::UnixAddress& where) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (::bind(fd, where.sockaddr_ptr(), where.length) != 0 || ::listen(fd, 1024) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat("API socket ", where.text,
                                                   " is in use by a running dpmd in this network namespace "
                                                   "(give another with --api-socket)"));
    }
    return absl::InternalError(absl::StrCat("listen on ", where.text, ": ", std::strerror(err)));
  }
  return fd;
}

// A file path: its directory must exist (the daemon creates no directories on a user's
// behalf). A live daemon answers a connect; a stale socket file from a dead one refuses it
// and is replaced. Anything else at the path (a file, another program's socket) is left alone.
absl::StatusOr<int> ListenOnPath(const api::UnixAddress& where, std::optional<gid_t> group) {
  const std::string& path = where.text;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("API socket directory ", dir, " does not exist (create it, or use an abstract name like @dpm/x)"));
  }
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("API socket path ", path, " exists and is not a socket"));
  }
  int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  bool live = probe >= 0 && (::connect(probe, where.sockaddr_ptr(), where.length) == 0 ||
                             (errno != ECONNREFUSED && errno != ENOENT));
  if (probe >= 0) ::close(probe);
  if (live) return absl::AlreadyExistsError(absl::StrCat("API socket ", path, " is in use by a running dpmd"));
  ::unlink(path.c_str());
  // The socket file is made with the right mode (no moment in which others may connect).
  const mode_t old_mask = ::umask(group ? 0117 : 0177);
  absl::StatusOr<int> fd = BindAndListen(where);
  ::umask(old_mask);
  if (!fd.ok()) return fd;
  // Owner only, or owner and the API group (the daemon checks credentials as well).
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    const int err = errno;
    ::close(*fd);
    ::unlink(path.c_str());
    return absl::FailedPreconditionError(absl::StrCat("chown ", path, " to group ", *group, ": ", std::strerror(err)));
  }
  ::chmod(path.c_str(), group ? 0660 : 0600);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SocketService>> SocketService::Create(boost::asio::io_context& io, Stack& stack,
                                                                     const SocketServiceConfig& config) {
  absl::StatusOr<api::UnixAddress> where = api::ParseUnixAddress(config.path);
  if (!where.ok()) return where.status();
  std::optional<AddressPool> pool;
  if (!config.address_pool.empty()) {
    absl::StatusOr<AddressPool> p = AddressPool::Create(config.address_pool);
    if (!p.ok()) return p.status();
    for (const AddressRange& r : config.address_pool) {
      const uint32_t own = stack.config().address;
      if (own >= r.first && own <= r.last) {
        return absl::InvalidArgumentError("the address pool holds the instance's own address");
      }
    }
    pool = std::move(*p);
  }
  absl::StatusOr<int> listening = where->abstract ? BindAndListen(*where) : ListenOnPath(*where, config.api_group);
  if (!listening.ok()) return listening.status();
  const int fd = *listening;
  auto impl = std::make_unique<Impl>(io, stack, config, fd, where->abstract);
  impl->pool_ = std::move(pool);
  if (config.dhcp) {
    absl::StatusOr<std::unique_ptr<DhcpLeases>> leases =
        DhcpLeases::Create(io, stack, DhcpLeases::Config{config.dhcp_timeout_ms});
    if (!leases.ok()) return leases.status();
    impl->dhcp_ = std::move(*leases);
  }
  impl->StartAccept();
  impl->StartDriver();
  return std::unique_ptr<SocketService>(new SocketService(std::move(impl)));
}

SocketService::SocketService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SocketService::~SocketService() = default;
size_t SocketService::socket_count() const { return impl_->sockets_.size(); }
std::string SocketService::Status(bool json) const { return impl_->Status(json); }

}  // namespace dpm::stack
