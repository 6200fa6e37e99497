#include "tunnel_service/service_proxy.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tunnel/errors.h"
#include "tunnel/names.h"
#include "tunnel_service/metrics_http.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;
using tunnel::TunnelError;

void Log(const std::string& line) { std::fprintf(stderr, "dpmd service-proxy: %s\n", line.c_str()); }

}  // namespace

absl::StatusOr<ProxiedService> ParseProxiedService(const std::string& text) {
  size_t eq = text.find('=');
  size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not NAME=HOST:PORT"));
  }
  ProxiedService s{text.substr(0, eq), text.substr(eq + 1, colon - eq - 1), 0};
  if (!tunnel::ValidLabel(s.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", s.name, "' is not a service name (1-63 of a-z, 0-9 and '-', not at the ends)"));
  }
  if (s.host.empty()) return absl::InvalidArgumentError(absl::StrCat("'", text, "': no host"));
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': bad port"));
  }
  s.port = static_cast<uint16_t>(port);
  return s;
}

// A tunnel request whose real server is being dialled: holds the stream's events until then
// (the server may reset the stream meanwhile).
class ServiceProxy::Pending : public Session::Stream {
 public:
  bool closed = false;
  void OnData(absl::Span<const uint8_t>) override {}  // nothing is sent before the answer
  void OnEnd() override {}
  void OnClosed(bool, bool) override { closed = true; }
  void OnWritable() override {}
};

absl::StatusOr<std::unique_ptr<ServiceProxy>> ServiceProxy::Create(asio::io_context& io,
                                                                  const ServiceProxyConfig& config) {
  if (!tunnel::ValidLabel(config.name)) {
    return absl::InvalidArgumentError(absl::StrCat("--name '", config.name, "' is not a valid proxy name"));
  }
  if (config.services.empty()) return absl::InvalidArgumentError("no --service to publish");
  std::unique_ptr<ServiceProxy> p(new ServiceProxy(io, config));
  Uplink::Callbacks cb;
  ServiceProxy* raw = p.get();
  cb.hello = [raw] { return raw->MakeHello(); };
  cb.on_welcome = [raw](const tunnel::Welcome& w) { return raw->OnWelcome(w); };
  cb.on_down = [](const std::string& reason) { Log(reason); };
  auto uplink = Uplink::Create(io, config.uplink, p->dialer_, tunnel::Mux::Side::kServer, std::move(cb));
  if (!uplink.ok()) return uplink.status();
  p->uplink_ = std::move(*uplink);
  return p;
}

ServiceProxy::ServiceProxy(asio::io_context& io, const ServiceProxyConfig& config)
    : io_(io), config_(config), dialer_(io, config.api_socket) {
  for (const auto& s : config.services) services_.push_back(ProxyServiceState{s});
}

ServiceProxy::~ServiceProxy() {
  *alive_ = false;
  uplink_.reset();  // first: closing its session calls back into the bridges and the service table
  for (auto& [raw, b] : bridges_) b->Abort();
}

void ServiceProxy::Start() { uplink_->Start(); }

tunnel::Hello ServiceProxy::MakeHello() const {
  tunnel::Hello h{tunnel::Role::kProxy, config_.name, config_.token, {}};
  for (const auto& s : services_) h.services.push_back(s.service.name);
  return h;
}

// Fig. 3 step 335: keep each returned key with the service it names.
Session::Callbacks ServiceProxy::OnWelcome(const tunnel::Welcome& welcome) {
  by_key_.clear();
  for (auto& s : services_) s.published = false;
  for (const auto& e : welcome.services) {
    for (size_t i = 0; i < services_.size(); i++) {
      if (services_[i].service.name != e.service) continue;
      services_[i].status = e.status;
      if (e.status == tunnel::PublishStatus::kPublished) {
        services_[i].published = true;
        services_[i].pseudo_name = e.pseudo_name;
        by_key_[tunnel::KeyToHex(e.key)] = i;
        Log(absl::StrFormat("published %s -> %s:%d", e.pseudo_name, services_[i].service.host,
                            services_[i].service.port));
      } else {
        Log(absl::StrFormat("service %s not published (status %d)", e.service, static_cast<int>(e.status)));
      }
    }
  }
  Session::Callbacks cb;
  cb.on_request = [this](int32_t id, const tunnel::StreamRequest& r) { OnRequest(id, r); };
  cb.on_down = [this, alive = alive_](const std::string& reason) {
    if (!*alive) return;
    by_key_.clear();
    for (auto& s : services_) s.published = false;
  };
  return cb;
}

void ServiceProxy::OnRequest(int32_t id, const tunnel::StreamRequest& request) {
  std::shared_ptr<Session> session = uplink_->session();
  if (!session) return;
  auto it = by_key_.find(request.service_key);
  if (it == by_key_.end()) {
    unknown_keys_++;
    return session->Respond(id, TunnelError::kNoService);
  }
  const size_t index = it->second;
  ProxyServiceState& state = services_[index];
  if (bridges_.size() + pending_.size() >= config_.max_streams) {
    limit_refusals_++;
    state.errors[static_cast<int>(TunnelError::kLimit)]++;
    return session->Respond(id, TunnelError::kLimit);
  }
  auto pending = std::make_shared<Pending>();
  session->Attach(id, pending.get());
  pending_[pending.get()] = pending;
  dialer_.Dial(state.service.host, state.service.port, config_.connect_timeout,
               [this, alive = alive_, id, index, pending, weak = std::weak_ptr<Session>(session)](int error, int fd) {
                 if (!*alive) {
                   if (fd >= 0) ::close(fd);
                   return;
                 }
                 pending_.erase(pending.get());
                 std::shared_ptr<Session> s = weak.lock();
                 ProxyServiceState& st = services_[index];
                 if (pending->closed || !s || !s->up()) {
                   if (fd >= 0) ::close(fd);
                   return;
                 }
                 if (error != 0) {
                   TunnelError e = error == ENOENT ? TunnelError::kHostUnreachable
                                                   : tunnel::ErrorFromConnectErrno(error);
                   st.errors[static_cast<int>(e)]++;
                   Log(absl::StrFormat("%s: connect to %s:%d failed: %s", st.service.name, st.service.host,
                                       st.service.port, std::strerror(error)));
                   s->Forget(id);
                   return s->Respond(id, e);
                 }
                 st.streams_open++;
                 st.streams_opened++;
                 auto cell = std::make_shared<StreamBridge*>(nullptr);
                 auto bridge = std::make_shared<StreamBridge>(
                     io_, fd, [this, alive, index, cell](const BridgeTotals& t) {
                       if (!*alive) return;
                       ProxyServiceState& st = services_[index];
                       st.streams_open--;
                       st.bytes_in += t.from_stream;
                       st.bytes_out += t.to_stream;
                       asio::post(io_, [this, alive, raw = *cell] {
                         if (*alive) bridges_.erase(raw);
                       });
                     });
                 *cell = bridge.get();
                 bridges_[bridge.get()] = bridge;
                 s->Attach(id, bridge.get());
                 s->Respond(id, TunnelError::kNone);
                 bridge->Join(s, id);
               });
}

std::string ServiceProxy::Status(bool json) const {
  std::shared_ptr<Session> s = uplink_->session();
  if (json) {
    nlohmann::json j = uplink_->Describe("service-proxy", config_.name);
    j["through_dpm"] = dialer_.through_dpm();
    j["streams"] = bridges_.size();
    j["connecting"] = pending_.size();
    j["services"] = nlohmann::json::array();
    for (const auto& st : services_) {
      j["services"].push_back({{"service", st.service.name},
                               {"target", absl::StrCat(st.service.host, ":", st.service.port)},
                               {"published", st.published},
                               {"name", st.pseudo_name},
                               {"streams_open", st.streams_open},
                               {"streams_opened", st.streams_opened},
                               {"bytes_in", st.bytes_in},
                               {"bytes_out", st.bytes_out}});
    }
    return j.dump(2) + "\n";
  }
  std::string out = absl::StrFormat("service-proxy %s -> %s:%d%s: %s; %d streams, %d connecting\n", config_.name,
                                    config_.uplink.server_host, config_.uplink.server_port,
                                    dialer_.through_dpm() ? " (through dpm)" : "", uplink_->State(),
                                    bridges_.size(), pending_.size());
  out += "services:\n";
  for (const auto& st : services_) {
    absl::StrAppendFormat(&out, "  %-12s %-22s %-36s streams open %d, opened %d, bytes in %d out %d\n",
                          st.service.name, absl::StrCat(st.service.host, ":", st.service.port),
                          st.published ? st.pseudo_name : "(not published)", st.streams_open, st.streams_opened,
                          st.bytes_in, st.bytes_out);
  }
  return out;
}

std::string ServiceProxy::Metrics() const {
  std::string out = "# HELP dpm_tunnel_up 1 when the session to the tunnel server is up.\n# TYPE dpm_tunnel_up gauge\n";
  absl::StrAppendFormat(&out, "dpm_tunnel_up %d\n", uplink_->session() && uplink_->session()->up() ? 1 : 0);
  std::string open = "# HELP dpm_tunnel_streams Tunneled connections open now.\n# TYPE dpm_tunnel_streams gauge\n";
  std::string total =
      "# HELP dpm_tunnel_streams_total Tunneled connections made.\n# TYPE dpm_tunnel_streams_total counter\n";
  std::string bytes = "# HELP dpm_tunnel_bytes_total Bytes tunneled.\n# TYPE dpm_tunnel_bytes_total counter\n";
  std::string errors =
      "# HELP dpm_tunnel_errors_total Connections to the real server that failed.\n"
      "# TYPE dpm_tunnel_errors_total counter\n";
  for (const auto& st : services_) {
    const std::string l = LabelValue(st.service.name);
    absl::StrAppendFormat(&open, "dpm_tunnel_streams{service=\"%s\"} %d\n", l, st.streams_open);
    absl::StrAppendFormat(&total, "dpm_tunnel_streams_total{service=\"%s\"} %d\n", l, st.streams_opened);
    absl::StrAppendFormat(&bytes, "dpm_tunnel_bytes_total{service=\"%s\",direction=\"to_service\"} %d\n", l,
                          st.bytes_in);
    absl::StrAppendFormat(&bytes, "dpm_tunnel_bytes_total{service=\"%s\",direction=\"from_service\"} %d\n", l,
                          st.bytes_out);
    for (int e = 1; e < 16; e++) {
      if (st.errors[e] == 0) continue;
      absl::StrAppendFormat(&errors, "dpm_tunnel_errors_total{service=\"%s\",error=\"%s\"} %d\n", l,
                            std::string(tunnel::ErrorToken(static_cast<TunnelError>(e))), st.errors[e]);
    }
  }
  return out + open + total + bytes + errors;
}

}  // namespace dpm::tunnel_service
