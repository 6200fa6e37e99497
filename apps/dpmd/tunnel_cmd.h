// `dpmd tunnel-server`, `dpmd service-proxy` and `dpmd redirector` (docs/tunnel.md): the
// options of the three roles of TCP service tunneling and their main loops.
#ifndef DPM_APPS_DPMD_TUNNEL_CMD_H_
#define DPM_APPS_DPMD_TUNNEL_CMD_H_

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace dpmd {

/// Options every role has: where it serves `dpmd status`, its metrics endpoint, the HTTP/2
/// window it grants each stream (bytes; also the most a stream's send buffer holds).
struct TunnelCommonOptions {
  std::string control_socket;
  std::string metrics;  // ADDR:PORT, empty: none
  uint32_t stream_window = 1024 * 1024;  // tunnel::Mux::Options::stream_window
};

/// Options of the roles that connect out to a tunnel server.
struct UplinkOptions {
  std::string server;  // HOST:PORT
  std::string server_name, ca_file, name, token_file, api_socket;
  double connect_timeout = 10;  // seconds
};

struct TunnelServerOptions {
  CLI::App* command = nullptr;
  TunnelCommonOptions common{"@dpm/tunnel-server", ""};  // api::kDefaultTunnelServerSocket
  std::string listen = "0.0.0.0:7443";
  std::string cert, key, access;
  std::string suffix = "dpm.internal";
  double handshake_timeout = 10, keepalive = 15;
  size_t max_connections = 1024;
};

struct ServiceProxyOptions {
  CLI::App* command = nullptr;
  TunnelCommonOptions common{"@dpm/service-proxy", ""};  // api::kDefaultServiceProxySocket
  UplinkOptions uplink;
  std::vector<std::string> services;  // NAME=HOST:PORT
  double service_timeout = 5;         // seconds, connect to a real server
  size_t max_streams = 4096;
};

struct RedirectorOptions {
  CLI::App* command = nullptr;
  TunnelCommonOptions common{"@dpm/redirector", ""};  // api::kDefaultRedirectorSocket
  UplinkOptions uplink;
  std::string api_group;
  std::string suffix = "dpm.internal";
  std::string pseudo_range = "100.64.0.0/10";
  double tunnel_timeout = 30;
  size_t max_streams = 4096;
};

void AddTunnelServerOptions(CLI::App& app, TunnelServerOptions& o);
void AddServiceProxyOptions(CLI::App& app, ServiceProxyOptions& o);
void AddRedirectorOptions(CLI::App& app, RedirectorOptions& o);
int RunTunnelServer(const TunnelServerOptions& o);
int RunServiceProxy(const ServiceProxyOptions& o);
int RunRedirector(const RedirectorOptions& o);

}  // namespace dpmd

#endif  // DPM_APPS_DPMD_TUNNEL_CMD_H_
