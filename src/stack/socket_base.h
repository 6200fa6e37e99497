// The base of every dpm socket in the daemon (socket_service.h): the daemon's end of the
// program's socket pair, the socket's state, its own address (the per-socket-address patent,
// docs/design.md §7) and the small interface to the service it lives in (SocketHost). Also the
// errno maps shared by the TCP and UDP sockets: lwIP's err_t and the PCP result codes of a
// failed DPM setup (RFC 6887 §7.4).
//
// Core thread only (lwIP raw API, the io_context's thread).
#ifndef DPM_STACK_SOCKET_BASE_H_
#define DPM_STACK_SOCKET_BASE_H_

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "api/protocol.h"
#include "dpm/dpm_driver.h"
#include "dpm/pcp.h"
#include "dpm/socket.h"
#include "lwip/err.h"
#include "lwip/ip_addr.h"
#include "stack/dpm_session_client.h"
#include "stack/kept_options.h"
#include "stack/service_status.h"

namespace dpm::stack {

class AddressOwnership;
class ControlConn;
class PortMultiplexer;
class DpmDriverHost;
class Socket;
class Stack;
struct SocketServiceCounters;

/// What a socket may use of the service that holds it — no more: the stack, the counters
/// it bumps, the one read buffer, address ownership, the DPM driver, the dirty list and the
/// registry's open/close.
class SocketHost {
 public:
  virtual ~SocketHost() = default;
  /// The core thread's io_context (the near ends of the programs' pairs wait on it).
  virtual boost::asio::io_context& io() = 0;
  /// The stack the sockets' pcbs live in.
  virtual Stack& stack() = 0;
  /// The service's counters, bumped by the sockets (SocketServiceCounters).
  virtual SocketServiceCounters& counters() = 0;
  /// One buffer for every read from a program's pair (api::kDatagramHeaderSize + 64 KiB): the
  /// service is single-threaded, and a buffer per connection would cost 64 KiB for each
  /// connection that ever sent data. Valid only until the caller returns.
  virtual std::vector<uint8_t>& scratch() = 0;
  virtual AddressOwnership& addresses() = 0;
  /// The DPM driver, or nullptr when this instance runs none (SocketServiceConfig::dpm).
  virtual DpmDriverHost* dpm() = 0;
  /// Queues `s` to have Flush() called once after the current handler (a batch of link
  /// packets) finishes: one write to the program per batch, not one per segment.
  virtual void MarkDirty(std::shared_ptr<Socket> s) = 0;
  /// Adds a new socket (an accepted connection) and gives it its id.
  virtual void Register(std::shared_ptr<Socket> s) = 0;
  /// Closes and forgets socket `id` (the program closed every copy of its descriptor).
  virtual void Release(uint64_t id) = 0;
  /// True when SocketServiceConfig::max_sockets are open.
  virtual bool Full() const = 0;
  /// Virtual port multiplexing (SocketServiceConfig::vpm_config), or nullptr when off.
  virtual PortMultiplexer* vpm() { return nullptr; }
  /// dpm_vpm_configure: new VPM rules from configurator text (PortMultiplexer::Configure),
  /// turning VPM on when it was off. Errors: InvalidArgument (the text, naming the place),
  /// FailedPrecondition (cooperative.port in use), Unimplemented (a host without VPM).
  virtual absl::Status ConfigureVpm(const std::string& /*text*/) {
    return absl::UnimplementedError("no virtual port multiplexing here");
  }
};

/// lwIP err_t → the errno a kernel gives for the same failure (EIO for unknown values).
int ErrnoOf(err_t err);
/// IPv4 endpoint of an lwIP address (network order inside) and a host-order port.
api::Endpoint ToEndpoint(const ip_addr_t& ip, uint16_t port_host);
void ToIpAddr(const api::Endpoint& e, ip_addr_t* ip);
/// A socket option value as an int (the first sizeof(int) bytes); false if shorter.
bool ReadInt(const std::vector<uint8_t>& v, int* out);
/// True once every descriptor of the far end of `fd` is closed (POLLHUP).
bool PeerHungUp(int fd);
/// Gives the daemon's end of a pair 1 MiB of kernel buffer each way (SO_*BUFFORCE as root).
void SetPairBuffers(int fd);

/// A dpm socket: the daemon's end of the program's socket pair plus an lwIP pcb.
class Socket : public std::enable_shared_from_this<Socket> {
 public:
  /// State names as `dpmd status` prints them: open, connecting, connected, listening, closed.
  enum class State { kOpen, kConnecting, kConnected, kListening, kClosed };
  static const char* StateName(State s);

  Socket(SocketHost& host, int near_fd, bool tcp);
  virtual ~Socket() = default;

  uint64_t id() const { return id_; }
  /// Random; a SocketRef must carry it (no program acts on another's socket by guessing ids).
  uint64_t cookie() const { return cookie_; }
  void set_id(uint64_t id) { id_ = id; }
  bool tcp() const { return tcp_; }
  State state() const { return state_; }

  // The requests of the modified socket API (src/api/protocol.h), each returning 0 or the
  // errno the program's call gives, as the kernel's call of the same name would.
  /// Starts waiting on the near end of the program's pair.
  virtual void Start() = 0;
  virtual int Bind(const api::Endpoint& local) = 0;
  virtual int Listen(int backlog) = 0;
  /// Returns an errno, or -1 when the answer is deferred (sent through `conn` later).
  virtual int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) = 0;
  virtual int Name(bool peer, api::Endpoint* out) const = 0;
  virtual int Shutdown(int how) = 0;
  virtual int SetOption(int level, int name, const std::vector<uint8_t>& value) = 0;
  virtual int GetOption(int level, int name, int* value) = 0;
  /// An option whose value is not an int (TCP_INFO, TCP_CONGESTION): its bytes in *out.
  /// ENOPROTOOPT when (level, name) is not one of those (GetOption answers the int ones).
  virtual int GetBytesOption(int level, int name, std::vector<uint8_t>* out) { return ENOPROTOOPT; }
  /// Detaches from lwIP (FIN or RST as the state requires) and closes the near end.
  virtual void Destroy() = 0;
  /// The socket's row in `dpmd status`.
  virtual SocketRow Describe() const = 0;
  /// Hands queued received data to the program (see SocketHost::MarkDirty).
  virtual void Flush() {}
  /// The DPM driver's news about this socket's session (granted, failed, timed out, lost).
  virtual void OnDpmEvent(const driver::Event& event) {}
  /// Marks the port not replaceable (DPM_PORT_FIXED, or an explicit bind).
  bool dpm_port_fixed = false;
  /// Options kept as set and reported back (stack/kept_options.h).
  KeptOptions kept_options;
  /// DPM_TUPLE_DYNAMIC: its lease was asked for (once per socket).
  bool lease_requested = false;
  /// On the host's dirty list (SocketHost::MarkDirty).
  bool dirty = false;
  /// Virtual port multiplexing (docs/vpm.md): the AID asked for with DPM_AID ("": none), and
  /// the credentials of the program that made the socket (the configurator's socket rules).
  std::string aid_request;
  pid_t creator_pid = 0;
  uid_t creator_uid = 0;
  /// The port lwIP binds for a bind to `port` (host order) at `ip`: `port` itself, or, for a
  /// multiplexed virtual port, the hidden port of the socket's AID's virtual stream, which
  /// the socket then holds until ReleaseVirtualPort. kBindQueued when no hidden port is free
  /// and the bind waits (docs/vpm.md "Queued allocation"): the socket binds lwIP itself when
  /// one is granted (BindLwip) and tells `bind_done`. Errors: EACCES (no AID for the port),
  /// EADDRINUSE (no hidden port free and the queue full).
  static constexpr int kBindQueued = -1;
  int VirtualBind(uint16_t port, const ip_addr_t& ip, uint16_t* lwip_port);
  /// Set by the socket registry for a bind VirtualBind queued: gets its result (0 or errno).
  std::function<void(int)> bind_done;
  /// An accepted connection holds its listener's virtual stream too.
  void InheritVirtualPort(const Socket& listener);
  /// Lets go of the virtual stream (at close).
  void ReleaseVirtualPort();
  /// The local port the program sees for lwIP's `lwip_port`: the virtual port on a virtual
  /// stream (getsockname, accept), else the same.
  uint16_t ShownLocalPort(uint16_t lwip_port) const { return virtual_port_ != 0 ? virtual_port_ : lwip_port; }

  /// The per-socket-address patent: the tuple dpm_socket() was given, and the address of this socket's own (host
  /// order; 0 while deferred or for DPM_TUPLE_COMMON). Released by the service on close.
  int tuple() const { return tuple_; }
  uint32_t own_address() const { return own_address_; }
  void set_tuple(int tuple) { tuple_ = tuple; }
  /// Takes the socket's own address now if it asked for one and has none yet (at socket(),
  /// or deferred to bind/connect/listen/first send: SocketServiceConfig::address_at_socket).
  /// Errors: EADDRNOTAVAIL (pool exhausted, or a DPM_TUPLE_DYNAMIC lease that is gone).
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
  /// The socket stays until the program closes its descriptor.
  void LoseAddress(int error);

 protected:
  using Wait = boost::asio::posix::stream_descriptor::wait_type;

  // Called when the program closed every copy of its descriptor. Posted, never run inside
  // an lwIP callback: releasing closes or aborts the pcb lwIP may be processing.
  void ReleaseSelf();
  // Checks a local address given to bind(); a socket with an address of its own takes it
  // (deferred embodiment) and may bind only to it or to INADDR_ANY (which means it).
  int CheckLocal(const api::Endpoint& e);
  // The local address to bind a pcb to: the socket's own, or the stack's (any).
  const ip_addr_t* AnyOrOwn() const { return own_address_ != 0 ? &own_ip_ : IP4_ADDR_ANY; }
  // True when a session to `remote` starts with a DPM setup exchange (the DPM patent).
  bool DpmApplies(const api::Endpoint& remote) const;
  // Cooperative VPM (docs/vpm.md "Cooperative mode"), the start of a connect(): when `remote`
  // is a cooperative peer for this socket's protocol, *aid gets the AID to negotiate with and
  // 0 is returned; kNotCooperative when it is none; EACCES when the socket has no AID.
  static constexpr int kNotCooperative = -2;
  int CooperativeAid(const api::Endpoint& remote, std::string* aid) const;
  // Then, with the pcb bound to `local_ip`:`local_port`: asks the peer's VPM for the hidden
  // port; OnNegotiated(0 or errno, remote) comes later (not if the socket is gone).
  void Negotiate(const api::Endpoint& remote, const std::string& aid, const ip_addr_t& local_ip, uint16_t local_port);
  virtual void OnNegotiated(int /*error*/, const api::Endpoint& /*remote*/) {}
  // False when the stack has no way to `remote` (IPv4): no gateway, and not on the link's
  // subnet. connect() then fails with ENETUNREACH at once, as the kernel's does without a route.
  static bool Routable(const api::Endpoint& remote);
  // Setups of this socket's DPM sessions, begun and released at the host's DPM driver, whose
  // events come back to OnDpmEvent (for a DpmSessionClient; used only when DpmApplies).
  DpmSetupCalls DpmCalls();
  // Sets the pcb's local address before any bind, so that lwIP's implicit binds (connect,
  // first send) use the socket's own address as the source.
  virtual void PresetLocalAddress(const ip_addr_t& address) = 0;
  // bind() once the checks passed: the socket's own address if it has one, the virtual
  // stream's hidden port for a virtual port (VirtualBind), then BindLwip; 0, errno or
  // kBindQueued.
  int BindLocal(const api::Endpoint& local);
  // Binds the pcb to `ip`:`port` (host order); 0 or errno. A socket on a virtual stream
  // shares the hidden port (SOF_REUSEADDR on each of its sockets).
  virtual int BindLwip(const ip_addr_t& ip, uint16_t port) = 0;
  // LoseAddress: frees the pcb without sending anything (TCP) or leaves it inert (UDP: lwIP
  // accepts nothing for the address any more, and the program's end is shut).
  virtual void DropPcbForLostAddress() {}
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
      self->AfterCoreWork();
    });
  }
  void AfterCoreWork();
  // The status row's common part.
  SocketRow Row(const char* proto, const api::Endpoint& local, const api::Endpoint& peer, size_t to_app,
                size_t from_app) const;

  SocketHost& host_;
  boost::asio::posix::stream_descriptor sd_;
  int tuple_ = DPM_TUPLE_COMMON;
  bool address_lingers_ = false;  // the closing pcb holds own_address_ (AddressOwnership::Linger)
  int dscp_ = -1;  // DPM_ADDRESS_DSCP asked for before the address was taken
  uint32_t own_address_ = 0;
  ip_addr_t own_ip_{};
  bool tcp_;
  uint64_t id_ = 0;
  uint64_t cookie_;
  State state_ = State::kOpen;
  int last_error_ = 0;  // SO_ERROR
  bool releasing_ = false;
  uint16_t virtual_port_ = 0;  // on a virtual stream: its virtual port (host order); else 0
  std::string vpm_aid_;        // and its AID
  // A queued bind: the port, AID and address it waits with.
  bool bind_queued_ = false;
  uint16_t queued_port_ = 0;
  std::string queued_aid_;
  ip_addr_t queued_ip_{};
  // A queued bind's answer from the multiplexer: binds lwIP on the hidden port, or fails.
  void OnVirtualPortGranted(int error, uint16_t hidden);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_SOCKET_BASE_H_
