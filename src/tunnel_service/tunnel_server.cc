#include "tunnel_service/tunnel_server.h"

#include <cstdio>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "os/entropy.h"
#include "tunnel/names.h"
#include "tunnel_service/metrics_http.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;
using tunnel::TunnelError;

void Log(const std::string& line) { std::fprintf(stderr, "dpmd tunnel-server: %s\n", line.c_str()); }

// The pseudo name of a CONNECT authority "<name>:<port>" (the port is carried, not used: a
// pseudo address names one service).
std::string NameOfAuthority(const std::string& authority) {
  size_t colon = authority.rfind(':');
  return tunnel::CanonicalName(colon == std::string::npos ? authority : authority.substr(0, colon));
}

const char* RoleName(tunnel::Role r) { return r == tunnel::Role::kProxy ? "proxy" : "redirector"; }

}  // namespace

absl::StatusOr<std::unique_ptr<TunnelServer>> TunnelServer::Create(asio::io_context& io,
                                                                  const TunnelServerConfig& config,
                                                                  tunnel::AccessConfig access) {
  auto tls = MakeServerContext(config.cert_file, config.key_file);
  if (!tls.ok()) return tls.status();
  std::unique_ptr<TunnelServer> s(new TunnelServer(io, config, std::move(access), std::move(*tls)));
  boost::system::error_code ec;
  s->acceptor_.open(config.listen.protocol(), ec);
  if (!ec) s->acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(config.listen, ec);
  if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("listen ", config.listen.address().to_string(), ":", config.listen.port(), ": ", ec.message()));
  }
  s->Accept();
  return s;
}

TunnelServer::TunnelServer(asio::io_context& io, const TunnelServerConfig& config, tunnel::AccessConfig access,
                           std::unique_ptr<asio::ssl::context> tls)
    : io_(io),
      config_(config),
      access_(std::move(access)),
      tls_(std::move(tls)),
      acceptor_(io),
      registry_(access_, config.suffix, [](uint8_t* out, size_t n) { os::FillRandom(out, n); }) {}

TunnelServer::~TunnelServer() {
  *alive_ = false;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, peer] : peers_) peer.session->Close("server stopping");
}

uint16_t TunnelServer::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void TunnelServer::Accept() {
  acceptor_.async_accept([this, alive = alive_](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
    if (!*alive) return;
    if (!ec) {
      if (connections_ >= config_.max_connections) {
        counters_.refused_limit++;
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        boost::system::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        counters_.accepted++;
        connections_++;
        Handshake(std::make_unique<TlsStream>(std::move(socket), *tls_));
      }
    }
    Accept();
  });
}

// TLS, then the HELLO, all within the handshake deadline (a slow client is closed).
void TunnelServer::Handshake(std::unique_ptr<TlsStream> stream) {
  auto deadline = std::make_shared<asio::steady_timer>(io_);
  auto expired = std::make_shared<bool>(false);
  auto answered = std::make_shared<bool>(false);  // the HELLO came: the stream is not ours to close
  TlsStream* raw = stream.get();
  deadline->expires_after(config_.handshake_timeout);
  deadline->async_wait([this, alive = alive_, raw, expired, answered](const boost::system::error_code& ec) {
    if (ec || !*alive || *answered) return;
    *expired = true;
    counters_.handshake_timeouts++;
    boost::system::error_code ignored;
    raw->lowest_layer().close(ignored);  // the pending handshake or read ends with an error
  });
  auto held = std::make_shared<std::unique_ptr<TlsStream>>(std::move(stream));
  raw->async_handshake(asio::ssl::stream_base::server, [this, alive = alive_, held, deadline, expired, answered](
                                                           const boost::system::error_code& ec) {
    if (!*alive) return;
    if (ec) {
      if (!*expired) counters_.tls_failures++;
      deadline->cancel();
      connections_--;
      return;
    }
    TlsStream& s = **held;
    ReadControl(s, [this, alive, held, deadline, expired, answered](absl::StatusOr<tunnel::ControlMessage> m,
                                                                    std::vector<uint8_t> rest) {
      if (!*alive) return;
      if (*expired) {
        connections_--;
        return;
      }
      *answered = true;
      if (!m.ok() || !std::holds_alternative<tunnel::Hello>(*m)) {
        deadline->cancel();
        counters_.refused_malformed++;
        return Refuse(std::move(*held), tunnel::RefuseReason::kMalformed,
                      m.ok() ? "expected HELLO" : std::string(m.status().message()));
      }
      OnHello(std::move(*held), deadline, std::get<tunnel::Hello>(*m), std::move(rest));
    });
  });
}

void TunnelServer::Refuse(std::unique_ptr<TlsStream> stream, tunnel::RefuseReason reason, const std::string& message) {
  auto held = std::make_shared<std::unique_ptr<TlsStream>>(std::move(stream));
  WriteControl(**held, tunnel::Refused{reason, message}, [this, alive = alive_, held](const boost::system::error_code&) {
    boost::system::error_code ignored;
    (*held)->lowest_layer().close(ignored);
    if (*alive) connections_--;
  });
}

void TunnelServer::OnHello(std::unique_ptr<TlsStream> stream, std::shared_ptr<asio::steady_timer> deadline,
                           const tunnel::Hello& hello, std::vector<uint8_t> rest) {
  deadline->cancel();
  const tunnel::ConnId id = next_id_++;
  Peer peer;
  peer.role = hello.role;
  peer.name = hello.name;
  tunnel::Welcome welcome;
  welcome.keepalive_seconds = static_cast<uint32_t>(config_.keepalive.count());
  if (hello.role == tunnel::Role::kProxy) {
    std::optional<size_t> who = tunnel::AuthenticateProxy(access_, hello.name, hello.token);
    if (!who) {
      counters_.refused_auth++;
      Log("proxy refused: authentication failed");  // never the token, nor which part was wrong
      return Refuse(std::move(stream), tunnel::RefuseReason::kAuthentication, "authentication failed");
    }
    peer.index = *who;
    tunnel::ConnId replaced = 0;
    welcome.services = registry_.Publish(id, *who, hello.services, &replaced);
    if (replaced != 0) Drop(replaced, "replaced by a new connection of the same proxy");
    size_t published = 0;
    for (const auto& e : welcome.services) published += e.status == tunnel::PublishStatus::kPublished;
    Log(absl::StrFormat("proxy %s connected from %s: %d of %d services published", hello.name,
                        stream->lowest_layer().remote_endpoint().address().to_string(), published,
                        welcome.services.size()));
  } else {
    std::optional<size_t> who = tunnel::AuthenticateRedirector(access_, hello.name, hello.token);
    if (!who) {
      counters_.refused_auth++;
      Log("redirector refused: authentication failed");
      return Refuse(std::move(stream), tunnel::RefuseReason::kAuthentication, "authentication failed");
    }
    peer.index = *who;
    welcome.services = registry_.Visible(*who);
    Log(absl::StrFormat("redirector %s connected", hello.name));
  }
  StartSession(id, std::move(peer), std::move(stream), welcome, std::move(rest));
}

void TunnelServer::StartSession(tunnel::ConnId id, Peer peer, std::unique_ptr<TlsStream> stream,
                                const tunnel::Welcome& welcome, std::vector<uint8_t> rest) {
  auto held = std::make_shared<std::unique_ptr<TlsStream>>(std::move(stream));
  auto peer_held = std::make_shared<Peer>(std::move(peer));
  WriteControl(**held, welcome, [this, alive = alive_, id, held, peer_held, rest = std::move(rest)](
                                    const boost::system::error_code& ec) mutable {
    if (!*alive) return;
    if (ec) {
      connections_--;
      if (peer_held->role == tunnel::Role::kProxy) registry_.DropConnection(id);
      return;
    }
    Session::Callbacks cb;
    const bool proxy = peer_held->role == tunnel::Role::kProxy;
    if (!proxy) {
      cb.on_request = [this, id](int32_t stream, const tunnel::StreamRequest& request) {
        OnTunnelRequest(id, stream, request);
      };
    }
    cb.on_down = [this, alive, id](const std::string& reason) {
      if (*alive) Drop(id, reason);
    };
    // On a proxy's connection the server opens the streams (HTTP/2 client).
    auto session = std::make_shared<Session>(io_, std::move(*held), proxy ? tunnel::Mux::Side::kClient
                                                                            : tunnel::Mux::Side::kServer,
                                             config_.mux, config_.keepalive, std::move(cb));
    peer_held->session = session;
    peers_[id] = std::move(*peer_held);
    session->Start(std::move(rest));
  });
}

void TunnelServer::Drop(tunnel::ConnId id, const std::string& reason) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer peer = std::move(it->second);
  peers_.erase(it);
  connections_--;
  if (peer.role == tunnel::Role::kProxy) registry_.DropConnection(id);
  Log(absl::StrFormat("%s %s disconnected: %s", RoleName(peer.role), peer.name, reason));
  peer.session->Close(reason);  // its streams' relays reset their other sides
}

// Fig. 7: find the proxy by the requested name (step 705), forward the request with the service
// key (715) or answer the error (720).
void TunnelServer::OnTunnelRequest(tunnel::ConnId redirector, int32_t stream, const tunnel::StreamRequest& request) {
  auto it = peers_.find(redirector);
  if (it == peers_.end()) return;
  Peer& client = it->second;
  const std::string name = NameOfAuthority(request.authority);
  std::variant<tunnel::Route, TunnelError> found = registry_.OpenStream(client.index, name);
  if (auto* error = std::get_if<TunnelError>(&found)) {
    counters_.stream_errors++;
    registry_.CountError(name, *error);
    return client.session->Respond(stream, *error);
  }
  const tunnel::Route route = std::get<tunnel::Route>(found);
  auto proxy = peers_.find(route.proxy_conn);
  if (proxy == peers_.end() || !proxy->second.session->up()) {
    registry_.CloseStream(client.index, name, route.proxy_conn, TunnelError::kProxyDown);
    return client.session->Respond(stream, TunnelError::kProxyDown);
  }
  const size_t redirector_index = client.index;
  auto cell = std::make_shared<Relay*>(nullptr);
  auto relay = std::make_shared<Relay>(
      [this, alive = alive_, cell, redirector_index, name, conn = route.proxy_conn](const Relay::Totals& t) {
        if (!*alive) return;
        registry_.CountBytes(name, t.to_service, t.from_service);
        registry_.CloseStream(redirector_index, name, conn, t.result);
        // Later: the relay is still on the stack that called this.
        asio::post(io_, [this, alive, raw = *cell] {
          if (*alive) relays_.erase(raw);
        });
      });
  Relay* raw = relay.get();
  *cell = raw;
  tunnel::StreamRequest forward{request.authority, tunnel::KeyToHex(route.key)};
  if (!relay->Start(client.session, stream, proxy->second.session, forward)) {
    registry_.CloseStream(redirector_index, name, route.proxy_conn, TunnelError::kProxyDown);
    return client.session->Respond(stream, TunnelError::kProxyDown);
  }
  counters_.streams_opened++;
  relays_[raw] = std::move(relay);
}

std::string TunnelServer::Status(bool json) const {
  std::vector<tunnel::Published> services = registry_.Services();
  if (json) {
    nlohmann::json j;
    j["role"] = "tunnel-server";
    j["listen"] = absl::StrCat(config_.listen.address().to_string(), ":", port());
    j["connections"] = connections_;
    j["streams"] = relays_.size();
    j["counters"] = {{"accepted", counters_.accepted},           {"refused_auth", counters_.refused_auth},
                     {"refused_malformed", counters_.refused_malformed},
                     {"refused_limit", counters_.refused_limit}, {"handshake_timeouts", counters_.handshake_timeouts},
                     {"tls_failures", counters_.tls_failures},   {"streams_opened", counters_.streams_opened},
                     {"stream_errors", counters_.stream_errors}};
    j["peers"] = nlohmann::json::array();
    for (const auto& [id, p] : peers_) {
      j["peers"].push_back({{"id", id},
                            {"role", RoleName(p.role)},
                            {"name", p.name},
                            {"address", p.session->peer()},
                            {"streams", p.session->streams()},
                            {"bytes_in", p.session->bytes_in()},
                            {"bytes_out", p.session->bytes_out()}});
    }
    j["services"] = nlohmann::json::array();
    for (const auto& s : services) {
      const tunnel::ServiceCounters* c = registry_.Counters(s.pseudo_name);
      j["services"].push_back({{"name", s.pseudo_name},
                               {"service", s.service},
                               {"proxy", s.proxy},
                               {"streams_open", c ? c->streams_open : 0},
                               {"streams_opened", c ? c->streams_opened : 0},
                               {"bytes_to_service", c ? c->bytes_to_service : 0},
                               {"bytes_from_service", c ? c->bytes_from_service : 0}});
    }
    return j.dump(2) + "\n";
  }
  std::string out = absl::StrFormat("tunnel-server on %s:%d: %d connections, %d streams\n",
                                    config_.listen.address().to_string(), port(), connections_, relays_.size());
  absl::StrAppendFormat(&out,
                        "counters: accepted %d, refused (token %d, malformed %d, limit %d), handshake timeouts %d, "
                        "TLS failures %d, streams %d, stream errors %d\n",
                        counters_.accepted, counters_.refused_auth, counters_.refused_malformed,
                        counters_.refused_limit, counters_.handshake_timeouts, counters_.tls_failures,
                        counters_.streams_opened, counters_.stream_errors);
  out += "connections:\n";
  for (const auto& [id, p] : peers_) {
    absl::StrAppendFormat(&out, "  %-10s %-16s %-22s streams %d, bytes in %d out %d\n", RoleName(p.role), p.name,
                          p.session->peer(), p.session->streams(), p.session->bytes_in(), p.session->bytes_out());
  }
  out += "services:\n";
  for (const auto& s : services) {
    const tunnel::ServiceCounters* c = registry_.Counters(s.pseudo_name);
    absl::StrAppendFormat(&out, "  %-36s streams open %d, opened %d, bytes to %d from %d\n", s.pseudo_name,
                          c ? c->streams_open : 0, c ? c->streams_opened : 0, c ? c->bytes_to_service : 0,
                          c ? c->bytes_from_service : 0);
  }
  return out;
}

std::string TunnelServer::Metrics() const {
  std::string out;
  out += "# HELP dpm_tunnel_connections TLS connections of each role.\n# TYPE dpm_tunnel_connections gauge\n";
  size_t proxies = 0, redirectors = 0;
  for (const auto& [id, p] : peers_) (p.role == tunnel::Role::kProxy ? proxies : redirectors)++;
  absl::StrAppendFormat(&out, "dpm_tunnel_connections{role=\"proxy\"} %d\n", proxies);
  absl::StrAppendFormat(&out, "dpm_tunnel_connections{role=\"redirector\"} %d\n", redirectors);
  out += "# HELP dpm_tunnel_refused_total Connections refused, by reason.\n# TYPE dpm_tunnel_refused_total counter\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_refused_total{reason=\"authentication\"} %d\n", counters_.refused_auth);
  absl::StrAppendFormat(&out, "dpm_tunnel_refused_total{reason=\"malformed\"} %d\n", counters_.refused_malformed);
  absl::StrAppendFormat(&out, "dpm_tunnel_refused_total{reason=\"limit\"} %d\n", counters_.refused_limit);
  absl::StrAppendFormat(&out, "dpm_tunnel_refused_total{reason=\"handshake_timeout\"} %d\n",
                        counters_.handshake_timeouts);
  absl::StrAppendFormat(&out, "dpm_tunnel_refused_total{reason=\"tls\"} %d\n", counters_.tls_failures);
  std::string open = "# HELP dpm_tunnel_streams Tunneled connections open now.\n# TYPE dpm_tunnel_streams gauge\n";
  std::string total =
      "# HELP dpm_tunnel_streams_total Tunneled connections opened.\n# TYPE dpm_tunnel_streams_total counter\n";
  std::string bytes = "# HELP dpm_tunnel_bytes_total Bytes tunneled.\n# TYPE dpm_tunnel_bytes_total counter\n";
  std::string errors =
      "# HELP dpm_tunnel_errors_total Tunnel requests that failed, by error.\n# TYPE dpm_tunnel_errors_total counter\n";
  for (const auto& s : registry_.Services()) {
    const tunnel::ServiceCounters* c = registry_.Counters(s.pseudo_name);
    if (c == nullptr) continue;
    const std::string label = LabelValue(s.pseudo_name);
    absl::StrAppendFormat(&open, "dpm_tunnel_streams{service=\"%s\"} %d\n", label, c->streams_open);
    absl::StrAppendFormat(&total, "dpm_tunnel_streams_total{service=\"%s\"} %d\n", label, c->streams_opened);
    absl::StrAppendFormat(&bytes, "dpm_tunnel_bytes_total{service=\"%s\",direction=\"to_service\"} %d\n", label,
                          c->bytes_to_service);
    absl::StrAppendFormat(&bytes, "dpm_tunnel_bytes_total{service=\"%s\",direction=\"from_service\"} %d\n", label,
                          c->bytes_from_service);
    for (int e = 1; e < 16; e++) {
      if (c->errors[e] == 0) continue;
      absl::StrAppendFormat(&errors, "dpm_tunnel_errors_total{service=\"%s\",error=\"%s\"} %d\n", label,
                            std::string(tunnel::ErrorToken(static_cast<TunnelError>(e))), c->errors[e]);
    }
  }
  return out + open + total + bytes + errors;
}

}  // namespace dpm::tunnel_service
