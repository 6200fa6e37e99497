#include "stack/socket_registry.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <variant>

#include "dpm/socket.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "os/fd_passing.h"
#include "stack/address_ownership.h"
#include "stack/api_listener.h"
#include "stack/tcp_socket.h"
#include "stack/udp_socket.h"
#include "vpm/configurator.h"

namespace dpm::stack {
namespace {

// An overload set for std::visit.
template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

// Makes the socket pair for a new socket: [0] stays here, [1] goes to the program.
int MakePair(bool tcp, int type_flags, int pair[2]) {
  int kind = tcp ? SOCK_STREAM : SOCK_SEQPACKET;
  if (::socketpair(AF_UNIX, kind | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return errno;
  SetPairBuffers(pair[0]);
  if ((type_flags & SOCK_NONBLOCK) == 0) ::fcntl(pair[1], F_SETFL, ::fcntl(pair[1], F_GETFL) & ~O_NONBLOCK);
  return 0;
}

}  // namespace

SocketRegistry::SocketRegistry(SocketHost& host, size_t max_sockets, bool address_at_socket,
                               std::function<std::string(bool json)> status)
    : host_(host), max_sockets_(max_sockets), address_at_socket_(address_at_socket), status_(std::move(status)) {}

SocketRegistry::~SocketRegistry() {
  for (auto& [id, s] : sockets_) s->Destroy();
  sockets_.clear();
}

void SocketRegistry::Register(std::shared_ptr<Socket> s) {
  s->set_id(next_id_++);
  host_.counters().sockets_opened++;
  sockets_.emplace(s->id(), std::move(s));
}

void SocketRegistry::Release(uint64_t id) {
  auto it = sockets_.find(id);
  if (it == sockets_.end()) return;
  std::shared_ptr<Socket> s = std::move(it->second);
  sockets_.erase(it);
  host_.counters().sockets_closed++;
  s->Destroy();
  s->ReleaseVirtualPort();
  // The per-socket-address patent, modified close: the address goes back with the port (after the closing
  // handshake, when one is under way: AddressOwnership::Linger).
  if (s->own_address() != 0 && !s->address_lingers()) host_.addresses().Drop(s->own_address());
}

std::shared_ptr<Socket> SocketRegistry::Find(const api::SocketRef& ref) const {
  auto it = sockets_.find(ref.id);
  if (it == sockets_.end() || it->second->cookie() != ref.cookie) return nullptr;
  return it->second;
}

void SocketRegistry::ForEach(const std::function<void(Socket&)>& fn) const {
  for (const auto& [id, s] : sockets_) fn(*s);
}

std::vector<SocketRow> SocketRegistry::Rows(size_t limit) const {
  std::vector<const Socket*> list;
  for (const auto& [id, s] : sockets_) list.push_back(s.get());
  std::sort(list.begin(), list.end(), [](const Socket* a, const Socket* b) { return a->id() < b->id(); });
  std::vector<SocketRow> rows;
  for (size_t i = 0; i < list.size() && i < limit; ++i) rows.push_back(list[i]->Describe());
  return rows;
}

void SocketRegistry::Handle(const std::shared_ptr<ControlConn>& conn, const api::Request& request,
                            api::Opcode op) {
  std::visit(
      Overloaded{
          [&](const api::SocketRequest& q) { Open(conn, q, op); },
          [&](const api::StatusRequest& q) {
            std::string text = status_(q.json);
            conn->Reply(op, 0, std::vector<uint8_t>(text.begin(), text.end()));
          },
          // Pseudo names are a redirector's (docs/tunnel.md); a client resolves none.
          [&](const api::ResolveRequest&) { conn->Reply(op, ENOENT); },
          [&](const api::VpmConfigureRequest& q) {
            // The instance's rules are its owner's: root or the daemon's own user, not every
            // user the API lets in (--api-group).
            if (conn->peer().uid != 0 && conn->peer().uid != ::geteuid()) return conn->Reply(op, EPERM);
            const absl::Status s = host_.ConfigureVpm(q.text);
            if (s.ok()) return conn->Reply(op, 0);
            const std::string why(s.message());
            conn->Reply(op, absl::IsInvalidArgument(s) ? EINVAL : absl::IsFailedPrecondition(s) ? EADDRINUSE : EOPNOTSUPP,
                        std::vector<uint8_t>(why.begin(), why.end()));
          },
          [&](const api::BindRequest& q) {
            auto s = Target(conn, request, q.ref, op, true);
            if (s == nullptr) return;
            const int e = s->Bind(q.local);
            if (e != Socket::kBindQueued) return conn->Reply(op, e);
            // docs/vpm.md "Queued allocation": the answer waits for a hidden port.
            conn->Defer();
            s->bind_done = [conn, op](int error) { conn->Reply(op, error); };
          },
          [&](const api::ListenRequest& q) {
            if (auto s = Target(conn, request, q.ref, op, true)) {
              conn->Reply(op, s->tcp() ? s->Listen(q.backlog) : EOPNOTSUPP);
            }
          },
          [&](const api::ConnectRequest& q) { Connect(conn, request, q, op); },
          [&](const api::NameRequest& q) {
            auto s = Target(conn, request, q.ref, op, false);
            if (s == nullptr) return;
            api::Endpoint e;
            int err = s->Name(q.peer, &e);
            conn->Reply(op, err, err == 0 ? api::EncodeEndpoint(e) : std::vector<uint8_t>{});
          },
          [&](const api::ShutdownRequest& q) {
            if (auto s = Target(conn, request, q.ref, op, false)) conn->Reply(op, s->Shutdown(q.how));
          },
          [&](const api::SetSockOptRequest& q) {
            if (auto s = Target(conn, request, q.ref, op, false)) SetOption(conn, *s, q, op);
          },
          [&](const api::GetSockOptRequest& q) {
            if (auto s = Target(conn, request, q.ref, op, false)) GetOption(conn, *s, q, op);
          },
      },
      request);
}

std::shared_ptr<Socket> SocketRegistry::Target(const std::shared_ptr<ControlConn>& conn, const api::Request& request,
                                               const api::SocketRef& ref, api::Opcode op, bool takes_address) {
  std::shared_ptr<Socket> s = Find(ref);
  if (s == nullptr) {
    conn->Reply(op, EBADF);
    return nullptr;
  }
  // The deferred embodiment with a lease: the first bind/connect/listen waits for the DHCP
  // exchange and is then handled as if the address had been there all along.
  if (takes_address && s->tuple() == DPM_TUPLE_DYNAMIC && s->own_address() == 0 && !s->lease_requested) {
    conn->Defer();
    // The request's descriptor (a non-blocking connect's) is closed when this call returns: the
    // replay has none, so that connect is answered when it ends, as a blocking one is.
    api::Request replay = request;
    if (auto* connect = std::get_if<api::ConnectRequest>(&replay)) connect->descriptor = -1;
    host_.addresses().ObtainLease(s, [this, conn, replay, op](int error) {
      if (error != 0) return conn->Reply(op, error);
      Handle(conn, replay, op);
    });
    return nullptr;
  }
  return s;
}

void SocketRegistry::Connect(const std::shared_ptr<ControlConn>& conn, const api::Request& request,
                             const api::ConnectRequest& q, api::Opcode op) {
  os::ScopedFd passed(q.descriptor);  // the program's descriptor is used only during this call
  auto s = Target(conn, request, q.ref, op, true);
  if (s == nullptr) return;
  // A UDP connect is never in progress for long (at most a DPM setup): it is answered when done.
  const bool nonblocking =
      (q.flags & api::ConnectRequest::kConnectNonBlocking) != 0 && q.descriptor >= 0 && s->tcp();
  bool gated = false;
  if (nonblocking) {
    if (int e = std::static_pointer_cast<TcpSocket>(s)->RaiseGate(q.descriptor, &gated)) return conn->Reply(op, e);
  }
  int e = s->Connect(q.remote, nonblocking ? nullptr : conn);
  if (e < 0) return nonblocking ? conn->Reply(op, EINPROGRESS) : conn->Defer();
  if (gated) std::static_pointer_cast<TcpSocket>(s)->LowerGate();
  conn->Reply(op, e);
}

void SocketRegistry::Open(const std::shared_ptr<ControlConn>& conn, const api::SocketRequest& q, api::Opcode op) {
  AddressOwnership& addresses = host_.addresses();
  int base_type = q.type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  int error = 0;
  int tuple = q.tuple;
  if (q.domain == AF_INET_TUPLE && tuple == DPM_TUPLE_COMMON) {
    // The per-socket-address patent's second form: a new address, from the default source — the static pool if
    // there is one, else a DHCP lease.
    tuple = addresses.has_pool() || !addresses.has_dhcp() ? DPM_TUPLE_STATIC : DPM_TUPLE_DYNAMIC;
  }
  if (q.domain != AF_INET && q.domain != AF_INET_TUPLE) {
    error = EAFNOSUPPORT;
  } else if (base_type != SOCK_STREAM && base_type != SOCK_DGRAM) {
    error = EINVAL;
  } else if (tuple != DPM_TUPLE_COMMON && tuple != DPM_TUPLE_STATIC && tuple != DPM_TUPLE_DYNAMIC) {
    error = EINVAL;  // unknown
  } else if ((tuple == DPM_TUPLE_STATIC && !addresses.has_pool()) ||
             (tuple == DPM_TUPLE_DYNAMIC && !addresses.has_dhcp())) {
    error = EADDRNOTAVAIL;  // no static pool (--address-pool) / no leases (--dhcp) configured
  } else if ((base_type == SOCK_STREAM && q.protocol != 0 && q.protocol != IPPROTO_TCP) ||
             (base_type == SOCK_DGRAM && q.protocol != 0 && q.protocol != IPPROTO_UDP)) {
    error = EPROTONOSUPPORT;
  } else if (Full()) {
    error = ENOBUFS;
  }
  if (error != 0) return conn->Reply(op, error);
  bool tcp = base_type == SOCK_STREAM;
  int pair[2];
  if (int e = MakePair(tcp, q.type, pair)) return conn->Reply(op, e);
  std::shared_ptr<Socket> s;
  if (tcp) {
    tcp_pcb* pcb = tcp_new();
    if (pcb != nullptr) s = std::make_shared<TcpSocket>(host_, pair[0], pcb);
  } else {
    udp_pcb* pcb = udp_new();
    if (pcb != nullptr) s = std::make_shared<UdpSocket>(host_, pair[0], pcb);
  }
  if (s == nullptr) {
    ::close(pair[0]);
    ::close(pair[1]);
    return conn->Reply(op, ENOBUFS);
  }
  s->set_tuple(tuple);
  s->creator_pid = conn->peer().pid;
  s->creator_uid = conn->peer().uid;
  if (tuple == DPM_TUPLE_DYNAMIC && address_at_socket_) {
    // The first embodiment with a lease: dpm_socket's reply waits for the DHCP exchange.
    Register(s);
    conn->Defer();
    const int far = pair[1];
    return addresses.ObtainLease(s, [this, conn, op, far, weak = std::weak_ptr<Socket>(s)](int error) {
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
  if (address_at_socket_) {
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
}

void SocketRegistry::SetOption(const std::shared_ptr<ControlConn>& conn, Socket& s, const api::SetSockOptRequest& q,
                               api::Opcode op) {
  if (q.level == DPM_SOL && q.name == DPM_PORT_FIXED) {
    int v = 0;
    if (!ReadInt(q.value, &v)) return conn->Reply(op, EINVAL);
    s.dpm_port_fixed = v != 0;
    return conn->Reply(op, 0);
  }
  if (q.level == DPM_SOL && q.name == DPM_ADDRESS_DSCP) {
    int v = 0;
    if (!ReadInt(q.value, &v)) return conn->Reply(op, EINVAL);
    return conn->Reply(op, s.SetAddressDscp(v));
  }
  if (q.level == DPM_SOL && q.name == DPM_AID) {
    // docs/vpm.md: the bytes of the AID (a trailing NUL allowed); empty clears. It counts at
    // the next bind, so a socket already on a virtual port keeps its stream.
    std::string aid(q.value.begin(), q.value.end());
    if (!aid.empty() && aid.back() == '\0') aid.pop_back();
    if (!aid.empty() && !vpm::ValidAid(aid)) return conn->Reply(op, EINVAL);
    s.aid_request = std::move(aid);
    return conn->Reply(op, 0);
  }
  if (KeptOptionSize(q.level, q.name) != 0) return conn->Reply(op, s.kept_options.Set(q.level, q.name, q.value));
  conn->Reply(op, s.SetOption(q.level, q.name, q.value));
}

void SocketRegistry::GetOption(const std::shared_ptr<ControlConn>& conn, Socket& s, const api::GetSockOptRequest& q,
                               api::Opcode op) {
  if (KeptOptionSize(q.level, q.name) != 0) return conn->Reply(op, 0, s.kept_options.Get(q.level, q.name));
  if (q.level == DPM_SOL && q.name == DPM_AID) {
    return conn->Reply(op, 0, std::vector<uint8_t>(s.aid_request.begin(), s.aid_request.end()));
  }
  std::vector<uint8_t> bytes;
  if (int e = s.GetBytesOption(q.level, q.name, &bytes); e != ENOPROTOOPT) {
    return conn->Reply(op, e, e == 0 ? std::move(bytes) : std::vector<uint8_t>{});
  }
  // A level the socket's protocols do not have: Linux's IP layer answers EOPNOTSUPP.
  if (q.level != SOL_SOCKET && q.level != IPPROTO_IP && q.level != DPM_SOL &&
      q.level != (s.tcp() ? IPPROTO_TCP : IPPROTO_UDP)) {
    return conn->Reply(op, EOPNOTSUPP);
  }
  int value = 0;
  int err = 0;
  if (q.level == SOL_SOCKET && q.name == SO_DOMAIN) {
    value = AF_INET;
  } else if (q.level == SOL_SOCKET && q.name == SO_PROTOCOL) {
    value = s.tcp() ? IPPROTO_TCP : IPPROTO_UDP;
  } else if (q.level == DPM_SOL && q.name == DPM_PORT_FIXED) {
    value = s.dpm_port_fixed ? 1 : 0;
  } else if (q.level == DPM_SOL && q.name == DPM_ADDRESS_DSCP) {
    value = s.AddressDscp();
  } else {
    err = s.GetOption(q.level, q.name, &value);
  }
  std::vector<uint8_t> body(sizeof(value));
  std::memcpy(body.data(), &value, sizeof(value));
  conn->Reply(op, err, err == 0 ? body : std::vector<uint8_t>{});
}

}  // namespace dpm::stack
