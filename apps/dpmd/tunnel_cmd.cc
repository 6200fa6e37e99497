#include "apps/dpmd/tunnel_cmd.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/protocol.h"
#include "apps/dpmd/gateway_cmd.h"
#include "stack/api_listener.h"
#include "stack/service_status.h"
#include "tunnel/access.h"
#include "tunnel/names.h"
#include "tunnel_service/metrics_http.h"
#include "tunnel_service/redirector.h"
#include "tunnel_service/service_proxy.h"
#include "tunnel_service/tunnel_server.h"
#include "wire/ipv4.h"

namespace dpmd {
namespace {

namespace ts = dpm::tunnel_service;

[[noreturn]] void Die(const std::string& role, const std::string& message) {
  std::fprintf(stderr, "dpmd %s: %s\n", role.c_str(), message.c_str());
  std::exit(1);
}

std::string ReadFile(const std::string& role, const std::string& what, const std::string& path) {
  std::ifstream in(path);
  if (!in) Die(role, absl::StrCat(what, " ", path, ": cannot read it"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The token: the file's first line, without surrounding white space. A file others may read
// is refused, as ssh refuses such a key.
std::string ReadToken(const std::string& role, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) Die(role, absl::StrCat("--token-file ", path, ": no such file"));
  if ((st.st_mode & 0077) != 0) {
    Die(role, absl::StrCat("--token-file ", path, ": readable by others (chmod 600 it)"));
  }
  std::string text = ReadFile(role, "--token-file", path);
  std::string line = text.substr(0, text.find('\n'));
  std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) Die(role, absl::StrCat("--token-file ", path, ": empty"));
  return token;
}

ts::UplinkConfig Uplink(const std::string& role, const UplinkOptions& o) {
  ts::UplinkConfig c;
  size_t colon = o.server.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(o.server.substr(colon + 1), &port) ||
      port == 0 || port > 65535) {
    Die(role, absl::StrCat("--server '", o.server, "' is not HOST:PORT"));
  }
  c.server_host = o.server.substr(0, colon);
  c.server_port = static_cast<uint16_t>(port);
  c.server_name = o.server_name;
  c.ca_file = o.ca_file;
  if (o.connect_timeout <= 0) Die(role, "--connect-timeout must be positive");
  c.connect_timeout = std::chrono::seconds(static_cast<int64_t>(o.connect_timeout + 0.999));
  return c;
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Serves `dpmd status` for a role: STATUS answered by `status`, anything else EOPNOTSUPP.
std::unique_ptr<dpm::stack::ApiListener> ServeStatus(boost::asio::io_context& io, const std::string& role,
                                                    const std::string& where,
                                                    dpm::stack::SocketServiceCounters& counters,
                                                    std::function<std::string(bool)> status) {
  auto address = dpm::api::ParseUnixAddress(where);
  if (!address.ok()) Die(role, std::string(address.status().message()));
  auto listener = dpm::stack::ApiListener::Create(
      io, [] {}, *address, std::nullopt, counters,
      [status](const std::shared_ptr<dpm::stack::ControlConn>& conn, const dpm::api::Request& request,
               dpm::api::Opcode op) {
        if (const auto* q = std::get_if<dpm::api::StatusRequest>(&request)) {
          std::string text = status(q->json);
          return conn->Reply(op, 0, std::vector<uint8_t>(text.begin(), text.end()));
        }
        conn->Reply(op, EOPNOTSUPP);
      });
  if (!listener.ok()) Die(role, absl::StrCat("--control-socket ", where, ": ", listener.status().message()));
  (*listener)->Start();
  return std::move(*listener);
}

std::unique_ptr<ts::MetricsServer> ServeMetrics(boost::asio::io_context& io, const std::string& role,
                                                const std::string& where, std::function<std::string()> body) {
  if (where.empty()) return nullptr;
  auto m = ts::MetricsServer::Create(io, where, std::move(body));
  if (!m.ok()) Die(role, std::string(m.status().message()));
  return std::move(*m);
}

// Serves `role`'s status and metrics, prints `ready`, and runs until SIGINT or SIGTERM.
// `own_control`: the role answers on its control socket itself (the redirector serves the hook there).
template <class Role>
int Serve(boost::asio::io_context& io, const std::string& role, const TunnelCommonOptions& common, Role* r,
          const std::string& ready, bool own_control = false) {
  dpm::stack::SocketServiceCounters counters;
  std::unique_ptr<dpm::stack::ApiListener> control;
  if (!own_control) {
    control = ServeStatus(io, role, common.control_socket, counters, [r](bool json) { return r->Status(json); });
  }
  auto metrics = ServeMetrics(io, role, common.metrics, [r] { return r->Metrics(); });
  std::printf("dpmd %s: %s, control %s\n", role.c_str(), ready.c_str(), common.control_socket.c_str());
  std::fflush(stdout);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });
  io.run();
  return 0;
}

// The parts of a proxy's or a redirector's configuration its uplink options give.
template <class Config>
void FillUplink(const std::string& role, const UplinkOptions& o, Config* config) {
  config->uplink = Uplink(role, o);
  config->name = o.name;
  config->token = ReadToken(role, o.token_file);
  config->api_socket = o.api_socket;
}

void AddCommon(CLI::App* c, TunnelCommonOptions& o) {
  c->add_option("--control-socket", o.control_socket,
                "UNIX socket where `dpmd status --api-socket SOCKET` asks ('@name': abstract)")
      ->capture_default_str();
  c->add_option("--metrics", o.metrics, "Serve Prometheus text metrics at http://ADDR:PORT/metrics");
  c->add_option("--stream-window", o.stream_window, "Bytes in flight per tunneled connection (HTTP/2 window)")
      ->capture_default_str()
      ->check(CLI::Range(65535u, (1u << 31) - 1));
}

void AddUplink(CLI::App* c, UplinkOptions& o, const char* name_help) {
  c->add_option("--server", o.server, "The tunnel server, HOST:PORT")->required();
  c->add_option("--server-name", o.server_name, "Name its certificate must carry (default: HOST of --server)");
  c->add_option("--ca", o.ca_file, "CA certificates (PEM) to verify the server with (default: the system's)");
  c->add_option("--name", o.name, name_help)->required();
  c->add_option("--token-file", o.token_file, "File holding the token (first line; mode 0600)")->required();
  c->add_option("--api-socket", o.api_socket,
                "Make outbound connections through the dpm instance at this API socket (default: the kernel)");
  c->add_option("--connect-timeout", o.connect_timeout, "Seconds to reach the tunnel server (TCP, TLS, WELCOME)")
      ->capture_default_str();
}

}  // namespace

void AddTunnelServerOptions(CLI::App& app, TunnelServerOptions& o) {
  CLI::App* c = app.add_subcommand(
      "tunnel-server", "Publish services of service proxies to redirectors over TLS 1.3 (docs/tunnel.md)");
  c->fallthrough();
  o.command = c;
  c->add_option("--listen", o.listen, "Address and port to accept proxies and redirectors on")->capture_default_str();
  c->add_option("--cert", o.cert, "Certificate chain (PEM)")->required();
  c->add_option("--key", o.key, "Private key (PEM)")->required();
  c->add_option("--access", o.access, "Access file (JSON): proxies' and redirectors' tokens and limits")
      ->required();
  c->add_option("--suffix", o.suffix, "Pseudo DNS suffix of the names it gives")->capture_default_str();
  c->add_option("--handshake-timeout", o.handshake_timeout, "Seconds a client has for TLS and its HELLO")
      ->capture_default_str();
  c->add_option("--keepalive", o.keepalive, "Seconds between keepalive PINGs (a peer silent for 3 is dead)")
      ->capture_default_str();
  c->add_option("--max-connections", o.max_connections, "TLS connections at once")->capture_default_str();
  AddCommon(c, o.common);
}

void AddServiceProxyOptions(CLI::App& app, ServiceProxyOptions& o) {
  CLI::App* c = app.add_subcommand(
      "service-proxy", "Publish services of this network to a tunnel server and connect its tunnels to them");
  c->fallthrough();
  o.command = c;
  AddUplink(c, o.uplink, "This proxy's name (the middle label of its pseudo DNS names)");
  c->add_option("--service", o.services, "NAME=HOST:PORT to publish (repeat for more)")->required();
  c->add_option("--service-timeout", o.service_timeout, "Seconds to connect to a real server")
      ->capture_default_str();
  c->add_option("--max-streams", o.max_streams, "Tunneled connections at once")->capture_default_str();
  AddCommon(c, o.common);
}

void AddRedirectorOptions(CLI::App& app, RedirectorOptions& o) {
  CLI::App* c = app.add_subcommand(
      "redirector", "Serve `dpm-run --tunnel` programs: pseudo DNS names and their connections through a tunnel server");
  c->fallthrough();
  o.command = c;
  AddUplink(c, o.uplink, "This redirector's name in the server's access file");
  c->add_option("--api-group", o.api_group, "Group (name or gid) whose programs may use a file-path --control-socket");
  c->add_option("--suffix", o.suffix, "Pseudo DNS suffix resolved here")->capture_default_str();
  c->add_option("--pseudo-range", o.pseudo_range, "IPv4 prefix pseudo addresses come from")->capture_default_str();
  c->add_option("--tunnel-timeout", o.tunnel_timeout, "Seconds a tunneled connect() waits for its answer")
      ->capture_default_str();
  c->add_option("--max-streams", o.max_streams, "Tunneled connections at once")->capture_default_str();
  AddCommon(c, o.common);
}

int RunTunnelServer(const TunnelServerOptions& o) {
  const std::string role = "tunnel-server";
  auto listen = ts::ParseHostPort(o.listen, /*allow_zero=*/true);
  if (!listen.ok()) Die(role, absl::StrCat("--listen: ", listen.status().message()));
  if (!dpm::tunnel::ValidSuffix(o.suffix)) Die(role, absl::StrCat("--suffix '", o.suffix, "' is not a DNS suffix"));
  auto access = dpm::tunnel::ParseAccessConfig(ReadFile(role, "--access", o.access));
  if (!access.ok()) Die(role, absl::StrCat("--access ", o.access, ": ", access.status().message()));
  ts::TunnelServerConfig config;
  config.listen = *listen;
  config.cert_file = o.cert;
  config.key_file = o.key;
  config.suffix = o.suffix;
  config.handshake_timeout = std::chrono::seconds(std::max<int64_t>(1, static_cast<int64_t>(o.handshake_timeout)));
  config.keepalive = std::chrono::seconds(std::max<int64_t>(1, static_cast<int64_t>(o.keepalive)));
  config.max_connections = o.max_connections;
  config.mux.stream_window = o.common.stream_window;
  config.mux.send_buffer = o.common.stream_window;
  boost::asio::io_context io;
  auto server = ts::TunnelServer::Create(io, config, std::move(*access));
  if (!server.ok()) Die(role, std::string(server.status().message()));
  ts::TunnelServer* s = server->get();
  return Serve(io, role, o.common, s, absl::StrCat("listening on ", listen->address().to_string(), ":", s->port()));
}

int RunServiceProxy(const ServiceProxyOptions& o) {
  const std::string role = "service-proxy";
  ts::ServiceProxyConfig config;
  FillUplink(role, o.uplink, &config);
  config.uplink.mux.stream_window = o.common.stream_window;
  config.uplink.mux.send_buffer = o.common.stream_window;
  for (const std::string& text : o.services) {
    auto s = ts::ParseProxiedService(text);
    if (!s.ok()) Die(role, absl::StrCat("--service ", s.status().message()));
    config.services.push_back(*s);
  }
  config.connect_timeout = Millis(o.service_timeout);
  config.max_streams = o.max_streams;
  boost::asio::io_context io;
  auto proxy = ts::ServiceProxy::Create(io, config);
  if (!proxy.ok()) Die(role, std::string(proxy.status().message()));
  ts::ServiceProxy* p = proxy->get();
  p->Start();
  return Serve(io, role, o.common, p,
               absl::StrCat(config.name, " publishing ", config.services.size(), " services to ", o.uplink.server));
}

int RunRedirector(const RedirectorOptions& o) {
  const std::string role = "redirector";
  ts::RedirectorConfig config;
  FillUplink(role, o.uplink, &config);
  config.uplink.mux.stream_window = o.common.stream_window;
  config.uplink.mux.send_buffer = o.common.stream_window;
  config.control_socket = o.common.control_socket;
  config.group = ApiGroup(o.api_group);
  config.suffix = o.suffix;
  if (!dpm::wire::ParseIpv4Prefix(o.pseudo_range, 32, &config.range_base, &config.range_length)) {
    Die(role, absl::StrCat("--pseudo-range '", o.pseudo_range, "' is not an IPv4 prefix"));
  }
  config.tunnel_timeout = Millis(o.tunnel_timeout);
  config.max_streams = o.max_streams;
  boost::asio::io_context io;
  auto redirector = ts::Redirector::Create(io, config);
  if (!redirector.ok()) Die(role, std::string(redirector.status().message()));
  ts::Redirector* r = redirector->get();
  r->Start();
  return Serve(io, role, o.common, r,
               absl::StrCat(config.name, " via ", o.uplink.server, ", suffix ", config.suffix, ", range ",
                            o.pseudo_range, ", programs served"),
               /*own_control=*/true);
}

}  // namespace dpmd
