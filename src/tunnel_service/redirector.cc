#include "tunnel_service/redirector.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "os/entropy.h"
#include "stack/connect_gate.h"
#include "stack/kept_options.h"
#include "stack/socket_base.h"
#include "tunnel/errors.h"
#include "tunnel/names.h"
#include "tunnel_service/metrics_http.h"
#include "tunnel_service/stream_bridge.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;
using Wait = asio::posix::stream_descriptor::wait_type;
using tunnel::TunnelError;

void Log(const std::string& line) { std::fprintf(stderr, "dpmd redirector: %s\n", line.c_str()); }

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

bool HungUp(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

}  // namespace

// One hooked program's socket: its near end of the pair until the tunnel is up, then the
// bridge's. A Session::Stream while its tunnel request waits for the answer.
class Redirector::Sock : public Session::Stream, public std::enable_shared_from_this<Sock> {
 public:
  enum class State { kOpen, kConnecting, kConnected, kFailed };
  Sock(Redirector& r, uint64_t id, int near) : id_(id), r_(r), sd_(r.io_, near), timer_(r.io_) {
    os::FillRandom(&cookie_, sizeof(cookie_));
  }
  ~Sock() override {
    if (state_ == State::kConnecting) {  // the program closed it while its connect was under way
      if (session_) session_->Detach(stream_);
      r_.streams_--;
      if (waiting_) waiting_->Reply(api::Opcode::kConnect, ECONNABORTED);
    }
    boost::system::error_code ignored;
    sd_.close(ignored);
    if (bridge_) bridge_->Abort();
  }

  uint64_t id_ = 0, cookie_ = 0;
  State state_ = State::kOpen;
  api::Endpoint remote_;
  std::string name_;
  int32_t stream_ = -1;
  std::shared_ptr<Session> session_;
  std::shared_ptr<stack::ControlConn> waiting_;  // a blocking CONNECT's connection
  size_t gate_ = 0;
  int last_error_ = 0;  // SO_ERROR
  stack::KeptOptions options_;
  absl::flat_hash_map<uint64_t, int> int_options_;
  std::shared_ptr<StreamBridge> bridge_;

  int near() { return sd_.native_handle(); }

  // The program's descriptor closing before the tunnel is up releases the socket.
  void WatchIdle() {
    if (watching_ || !sd_.is_open()) return;
    watching_ = true;
    sd_.async_wait(gate_ != 0 ? Wait::wait_error : Wait::wait_read,
                   [self = shared_from_this()](const boost::system::error_code& ec) {
                     self->watching_ = false;
                     if (ec || !self->sd_.is_open() || self->state_ == State::kConnected) return;
                     if (HungUp(self->near())) return self->r_.Release(self->id_);
                     if (self->gate_ == 0) stack::DropQueued(self->near(), SIZE_MAX);  // written too early
                     self->WatchIdle();
                   });
  }

  void Begin(std::shared_ptr<Session> session, int32_t stream) {
    session_ = std::move(session);
    stream_ = stream;
    state_ = State::kConnecting;
    timer_.expires_after(r_.config_.tunnel_timeout);
    timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->state_ != State::kConnecting) return;
      if (self->session_) self->session_->Detach(self->stream_);
      self->Done(TunnelError::kTimeout);
    });
  }

  // The answer to the tunnel request (Fig. 6 steps 630-640).
  void Done(TunnelError result) {
    if (state_ != State::kConnecting) return;
    timer_.cancel();
    RedirectorCounters& c = r_.counters_;
    if (result != TunnelError::kNone) c.errors[static_cast<int>(result)]++;
    const int error = tunnel::ErrorToErrno(result);
    if (waiting_) {
      waiting_->Reply(api::Opcode::kConnect, error);
      waiting_.reset();
    }
    if (gate_ != 0) {
      stack::DropQueued(near(), gate_);  // the program's descriptor turns writable
      gate_ = 0;
    }
    if (result != TunnelError::kNone) {
      if (session_) session_->Forget(stream_);  // an answered failure ends the stream by itself
      state_ = State::kFailed;
      last_error_ = error;
      r_.streams_--;
      ::shutdown(near(), SHUT_WR);  // reads see end-of-file, as after a failed connect
      Log(absl::StrFormat("%s: %s", name_, tunnel::ErrorText(result)));
      return WatchIdle();
    }
    c.connected++;
    state_ = State::kConnected;
    boost::system::error_code ignored;
    sd_.cancel(ignored);  // the bridge reads the pair from now on
    // The bridge works on a duplicate: when it ends, this socket keeps the pair's near end, so
    // it lives until the program closes its descriptor (SO_ERROR, names) as a kernel socket does.
    int fd = ::fcntl(near(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      session_->Reset(stream_, /*connect_error=*/false);
      return Ended(/*reset=*/true);
    }
    bridge_ = std::make_shared<StreamBridge>(r_.io_, fd, [w = weak_from_this()](const BridgeTotals& t) {
      auto s = w.lock();
      if (!s) return;
      s->r_.counters_.bytes_to_service += t.to_stream;
      s->r_.counters_.bytes_from_service += t.from_stream;
      s->Ended(t.reset);
    });
    session_->Attach(stream_, bridge_.get());
    bridge_->Join(session_, stream_);
  }

  // The tunneled connection is over: the program reads end-of-file (and SO_ERROR says
  // ECONNRESET after a reset); the socket goes when the program closes its descriptor.
  void Ended(bool reset) {
    r_.streams_--;
    state_ = State::kFailed;
    if (reset) last_error_ = ECONNRESET;
    ::shutdown(near(), SHUT_WR);
    asio::post(r_.io_, [self = shared_from_this()] {
      self->bridge_.reset();
      self->WatchIdle();
    });
  }

  // Session::Stream, before the answer.
  void OnResponse(TunnelError result) override { Done(result); }
  void OnData(absl::Span<const uint8_t> bytes) override { session_->Consume(stream_, bytes.size()); }
  void OnEnd() override {}
  void OnClosed(bool clean, bool reset) override {
    Done(session_ && session_->up() ? TunnelError::kProtocol : TunnelError::kServerDown);
  }
  void OnWritable() override {}

 private:
  Redirector& r_;
  asio::posix::stream_descriptor sd_;
  asio::steady_timer timer_;
  bool watching_ = false;
};

absl::StatusOr<std::unique_ptr<Redirector>> Redirector::Create(asio::io_context& io, const RedirectorConfig& config) {
  if (!tunnel::ValidSuffix(config.suffix)) {
    return absl::InvalidArgumentError(absl::StrCat("--suffix '", config.suffix, "' is not a DNS suffix"));
  }
  if (config.range_length < 8 || config.range_length > 30) {
    return absl::InvalidArgumentError("--pseudo-range: the prefix length must be 8..30");
  }
  std::unique_ptr<Redirector> r(new Redirector(io, config));
  Redirector* raw = r.get();
  Uplink::Callbacks cb;
  cb.hello = [raw] { return tunnel::Hello{tunnel::Role::kRedirector, raw->config_.name, raw->config_.token, {}}; };
  cb.on_welcome = [raw](const tunnel::Welcome& w) {
    raw->visible_ = w.services;
    Log(absl::StrFormat("connected to the tunnel server: %d services visible", w.services.size()));
    return Session::Callbacks{};
  };
  cb.on_down = [](const std::string& reason) { Log(reason); };
  auto uplink = Uplink::Create(io, config.uplink, r->dialer_, tunnel::Mux::Side::kClient, std::move(cb));
  if (!uplink.ok()) return uplink.status();
  r->uplink_ = std::move(*uplink);
  absl::StatusOr<api::UnixAddress> where = api::ParseUnixAddress(config.control_socket);
  if (!where.ok()) return where.status();
  auto listener = stack::ApiListener::Create(
      io, [] {}, *where, config.group, r->api_counters_,
      [raw](const std::shared_ptr<stack::ControlConn>& conn, const api::Request& request, api::Opcode op) {
        raw->Handle(conn, request, op);
      });
  if (!listener.ok()) return listener.status();
  r->listener_ = std::move(*listener);
  return r;
}

Redirector::Redirector(asio::io_context& io, const RedirectorConfig& config)
    : io_(io),
      config_(config),
      dialer_(io, config.api_socket),
      addresses_(config.range_base, config.range_length, config.max_names) {}

Redirector::~Redirector() {
  *alive_ = false;
  uplink_.reset();  // first: closing its session calls back into the sockets
  sockets_.clear();
}

void Redirector::Start() {
  listener_->Start();
  uplink_->Start();
}

std::shared_ptr<Redirector::Sock> Redirector::Find(const api::SocketRef& ref) const {
  auto it = sockets_.find(ref.id);
  if (it == sockets_.end() || it->second->cookie_ != ref.cookie) return nullptr;
  return it->second;
}

void Redirector::Release(uint64_t id) { sockets_.erase(id); }

void Redirector::Handle(const std::shared_ptr<stack::ControlConn>& conn, const api::Request& request, api::Opcode op) {
  auto target = [&](const api::SocketRef& ref) -> std::shared_ptr<Sock> {
    std::shared_ptr<Sock> s = Find(ref);
    if (!s) conn->Reply(op, EBADF);
    return s;
  };
  std::visit(
      Overloaded{
          [&](const api::SocketRequest& q) {
            if (q.domain != AF_INET) return conn->Reply(op, EAFNOSUPPORT);
            if ((q.type & 0xf) != SOCK_STREAM) return conn->Reply(op, EPROTONOSUPPORT);
            if (q.protocol != 0 && q.protocol != IPPROTO_TCP) return conn->Reply(op, EPROTONOSUPPORT);
            if (sockets_.size() >= config_.max_streams * 2) return conn->Reply(op, ENOBUFS);
            int pair[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return conn->Reply(op, errno);
            stack::SetPairBuffers(pair[0]);
            stack::SetPairBuffers(pair[1]);
            ::fcntl(pair[0], F_SETFL, ::fcntl(pair[0], F_GETFL) | O_NONBLOCK);
            auto s = std::make_shared<Sock>(*this, next_id_++, pair[0]);
            sockets_[s->id_] = s;
            conn->Reply(op, 0, api::EncodeSocketRef(api::SocketRef{s->id_, s->cookie_}), pair[1]);
            ::close(pair[1]);
            s->WatchIdle();
          },
          [&](const api::BindRequest& q) {
            auto s = target(q.ref);
            if (!s) return;
            // A tunneled socket has no local address of its own: only "any" is accepted.
            bool any = q.local.family == AF_INET && q.local.ipv4_host() == 0 && q.local.port_be == 0;
            conn->Reply(op, s->state_ != Sock::State::kOpen ? EINVAL : any ? 0 : EADDRNOTAVAIL);
          },
          [&](const api::ListenRequest& q) {
            if (target(q.ref)) conn->Reply(op, EOPNOTSUPP);
          },
          [&](const api::ConnectRequest& q) {
            auto s = target(q.ref);
            if (!s) {
              if (q.descriptor >= 0) ::close(q.descriptor);
              return;
            }
            Connect(conn, *s, q, op);
          },
          [&](const api::NameRequest& q) {
            auto s = target(q.ref);
            if (!s) return;
            if (q.peer) {
              if (s->state_ != Sock::State::kConnected) return conn->Reply(op, ENOTCONN);
              return conn->Reply(op, 0, api::EncodeEndpoint(s->remote_));
            }
            // The tunnel has no local address: the unspecified one, as an unbound socket has.
            conn->Reply(op, 0, api::EncodeEndpoint(api::Endpoint::Ipv4(0, 0)));
          },
          [&](const api::ShutdownRequest& q) {
            auto s = target(q.ref);
            if (!s) return;
            if (q.how != SHUT_RD && q.how != SHUT_WR && q.how != SHUT_RDWR) return conn->Reply(op, EINVAL);
            // The program shuts its own end (libdpm does); the bridge sees end-of-file after the data.
            conn->Reply(op, s->state_ == Sock::State::kConnected ? 0 : ENOTCONN);
          },
          [&](const api::SetSockOptRequest& q) {
            auto s = target(q.ref);
            if (!s) return;
            if (stack::KeptOptionSize(q.level, q.name) > 0) return conn->Reply(op, s->options_.Set(q.level, q.name, q.value));
            const bool known_level = q.level == SOL_SOCKET || q.level == IPPROTO_TCP || q.level == IPPROTO_IP;
            if (known_level && q.value.size() >= sizeof(int)) {
              int v = 0;
              std::memcpy(&v, q.value.data(), sizeof(v));
              s->int_options_[(static_cast<uint64_t>(q.level) << 32) | static_cast<uint32_t>(q.name)] = v;
              return conn->Reply(op, 0);
            }
            conn->Reply(op, known_level ? EINVAL : ENOPROTOOPT);
          },
          [&](const api::GetSockOptRequest& q) {
            auto s = target(q.ref);
            if (!s) return;
            auto reply_int = [&](int v) {
              std::vector<uint8_t> body(sizeof(int));
              std::memcpy(body.data(), &v, sizeof(v));
              conn->Reply(op, 0, std::move(body));
            };
            if (q.level == SOL_SOCKET && q.name == SO_ERROR) {
              int e = s->last_error_;
              s->last_error_ = 0;
              return reply_int(e);
            }
            if (q.level == SOL_SOCKET && q.name == SO_TYPE) return reply_int(SOCK_STREAM);
            if (q.level == SOL_SOCKET && q.name == SO_DOMAIN) return reply_int(AF_INET);
            if (q.level == SOL_SOCKET && q.name == SO_PROTOCOL) return reply_int(IPPROTO_TCP);
            if (q.level == SOL_SOCKET && q.name == SO_ACCEPTCONN) return reply_int(0);
            if (stack::KeptOptionSize(q.level, q.name) > 0) return conn->Reply(op, 0, s->options_.Get(q.level, q.name));
            auto it = s->int_options_.find((static_cast<uint64_t>(q.level) << 32) | static_cast<uint32_t>(q.name));
            if (it != s->int_options_.end()) return reply_int(it->second);
            if (q.level == IPPROTO_TCP && q.name == TCP_MAXSEG) return reply_int(1460);
            if (q.level == SOL_SOCKET && (q.name == SO_SNDBUF || q.name == SO_RCVBUF)) return reply_int(212992);
            if (q.level == SOL_SOCKET || q.level == IPPROTO_TCP || q.level == IPPROTO_IP) return reply_int(0);
            conn->Reply(op, ENOPROTOOPT);
          },
          [&](const api::StatusRequest& q) {
            std::string text = Status(q.json);
            conn->Reply(op, 0, std::vector<uint8_t>(text.begin(), text.end()));
          },
          // A redirector multiplexes no ports (docs/vpm.md is dpmd client's).
          [&](const api::VpmConfigureRequest&) { conn->Reply(op, EOPNOTSUPP); },
          [&](const api::ResolveRequest& q) {
            // Fig. 4 step 405's pseudo DNS name, resolved only here (Fig. 6 step 615): every
            // well-formed name under the suffix gets an address, known to the server or not,
            // so resolving reveals nothing; connect() gets the answer.
            if (!tunnel::ParsePseudoName(q.name, config_.suffix)) {
              counters_.resolve_refused++;
              return conn->Reply(op, ENOENT);
            }
            absl::StatusOr<uint32_t> a = addresses_.Assign(tunnel::CanonicalName(q.name));
            if (!a.ok()) {
              counters_.resolve_refused++;
              return conn->Reply(op, ENOSPC);
            }
            counters_.resolved++;
            conn->Reply(op, 0, api::EncodeEndpoint(api::Endpoint::Ipv4(*a, 0)));
          },
      },
      request);
}

void Redirector::Connect(const std::shared_ptr<stack::ControlConn>& conn, Sock& s, const api::ConnectRequest& q,
                         api::Opcode op) {
  const bool nonblocking = (q.flags & api::ConnectRequest::kConnectNonBlocking) != 0;
  auto answer = [&](int error) {
    if (q.descriptor >= 0) ::close(q.descriptor);
    conn->Reply(op, error);
  };
  if (s.state_ == Sock::State::kConnecting) return answer(EALREADY);
  if (s.state_ == Sock::State::kConnected) return answer(EISCONN);
  if (s.state_ == Sock::State::kFailed) return answer(ECONNABORTED);
  if (q.remote.family != AF_INET) return answer(EAFNOSUPPORT);
  std::optional<std::string> name = addresses_.NameOf(q.remote.ipv4_host());
  if (!name) return answer(addresses_.InRange(q.remote.ipv4_host()) ? EHOSTUNREACH : ENETUNREACH);
  counters_.connects++;
  std::shared_ptr<Session> session = uplink_->session();
  if (!session || !session->up()) {
    counters_.errors[static_cast<int>(TunnelError::kServerDown)]++;
    return answer(tunnel::ErrorToErrno(TunnelError::kServerDown));
  }
  if (streams_ >= config_.max_streams) {
    counters_.errors[static_cast<int>(TunnelError::kLimit)]++;
    return answer(tunnel::ErrorToErrno(TunnelError::kLimit));
  }
  s.remote_ = q.remote;
  s.name_ = *name;
  int32_t stream = session->Open(tunnel::StreamRequest{absl::StrCat(*name, ":", q.remote.port_host()), ""}, &s);
  if (stream < 0) return answer(tunnel::ErrorToErrno(TunnelError::kServerDown));
  streams_++;
  s.Begin(session, stream);
  if (nonblocking && q.descriptor >= 0) {
    s.gate_ = stack::RaiseConnectGate(s.near(), q.descriptor);
    ::close(q.descriptor);
    if (s.gate_ == 0) {
      session->Detach(stream);
      s.state_ = Sock::State::kOpen;
      streams_--;
      return conn->Reply(op, EINVAL);
    }
    conn->Reply(op, EINPROGRESS);
    s.WatchIdle();
    return;
  }
  if (q.descriptor >= 0) ::close(q.descriptor);
  s.waiting_ = conn;
  conn->Defer();
}

std::string Redirector::Status(bool json) const {
  std::shared_ptr<Session> s = uplink_->session();
  if (json) {
    nlohmann::json j = uplink_->Describe("redirector", config_.name);
    j["control_socket"] = config_.control_socket;
    j["suffix"] = config_.suffix;
    j["sockets"] = sockets_.size();
    j["streams"] = streams_;
    j["names"] = addresses_.size();
    j["counters"] = {{"resolved", counters_.resolved},       {"resolve_refused", counters_.resolve_refused},
                     {"connects", counters_.connects},       {"connected", counters_.connected},
                     {"bytes_to_service", counters_.bytes_to_service},
                     {"bytes_from_service", counters_.bytes_from_service}};
    j["errors"] = nlohmann::json::object();
    for (int e = 1; e < 16; e++) {
      if (counters_.errors[e] != 0) j["errors"][std::string(tunnel::ErrorToken(static_cast<TunnelError>(e)))] = counters_.errors[e];
    }
    j["services"] = nlohmann::json::array();
    for (const auto& v : visible_) j["services"].push_back(v.pseudo_name);
    return j.dump(2) + "\n";
  }
  std::string out = absl::StrFormat("redirector %s -> %s:%d: %s; %d sockets, %d streams, %d names on %s\n",
                                    config_.name, config_.uplink.server_host, config_.uplink.server_port,
                                    uplink_->State(), sockets_.size(), streams_, addresses_.size(),
                                    config_.control_socket);
  absl::StrAppendFormat(&out, "counters: resolved %d (refused %d), connects %d, connected %d, bytes to %d from %d\n",
                        counters_.resolved, counters_.resolve_refused, counters_.connects, counters_.connected,
                        counters_.bytes_to_service, counters_.bytes_from_service);
  out += "errors:";
  for (int e = 1; e < 16; e++) {
    if (counters_.errors[e] != 0) {
      absl::StrAppendFormat(&out, " %s %d", std::string(tunnel::ErrorToken(static_cast<TunnelError>(e))),
                            counters_.errors[e]);
    }
  }
  out += "\nservices:\n";
  for (const auto& v : visible_) absl::StrAppendFormat(&out, "  %s\n", v.pseudo_name);
  return out;
}

std::string Redirector::Metrics() const {
  std::string out = "# HELP dpm_tunnel_up 1 when the session to the tunnel server is up.\n# TYPE dpm_tunnel_up gauge\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_up %d\n", uplink_->session() && uplink_->session()->up() ? 1 : 0);
  out += "# HELP dpm_tunnel_streams Tunneled connections open now.\n# TYPE dpm_tunnel_streams gauge\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_streams %d\n", streams_);
  out += "# HELP dpm_tunnel_connects_total connect() calls to pseudo addresses.\n"
         "# TYPE dpm_tunnel_connects_total counter\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_connects_total %d\n", counters_.connects);
  out += "# HELP dpm_tunnel_bytes_total Bytes tunneled.\n# TYPE dpm_tunnel_bytes_total counter\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_bytes_total{direction=\"to_service\"} %d\n", counters_.bytes_to_service);
  absl::StrAppendFormat(&out, "dpm_tunnel_bytes_total{direction=\"from_service\"} %d\n", counters_.bytes_from_service);
  out += "# HELP dpm_tunnel_errors_total Tunneled connects that failed, by error.\n"
         "# TYPE dpm_tunnel_errors_total counter\n";
  for (int e = 1; e < 16; e++) {
    absl::StrAppendFormat(&out, "dpm_tunnel_errors_total{error=\"%s\"} %d\n",
                          std::string(tunnel::ErrorToken(static_cast<TunnelError>(e))), counters_.errors[e]);
    if (static_cast<TunnelError>(e) == TunnelError::kProtocol) break;
  }
  return out;
}

}  // namespace dpm::tunnel_service
