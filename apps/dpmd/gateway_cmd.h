// `dpmd gateway` options (apps/dpmd/gateway_cmd.cc).
#ifndef DPM_APPS_DPMD_GATEWAY_CMD_H_
#define DPM_APPS_DPMD_GATEWAY_CMD_H_

#include <cstdint>
#include <optional>
#include <string>

#include <sys/types.h>

#include <CLI/CLI.hpp>

namespace dpmd {

struct GatewayOptions {
  CLI::App* command = nullptr;
  std::string inside_tun, inside_virtual, inside_host_address;
  std::string outside_tun, outside_virtual;
  bool attach = false;
  bool no_offload = false;  // TUN links without checksum/segmentation offload
  size_t mtu = 1500;
  std::string address = "10.77.0.1/16";
  std::string inside_network = "10.77.0.0/16";
  std::string pool = "203.0.113.1-203.0.113.8";
  std::string outside_address;
  std::string port_range = "1024-65535";
  uint32_t quota = 4096;
  size_t max_sessions = 1 << 20;
  size_t reserve_sessions = 0;  // NatConfig::reserve_sessions
  uint32_t min_lifetime = 120, max_lifetime = 86400;
  uint32_t udp_timeout = 300, tcp_established_timeout = 7440, tcp_transitory_timeout = 240, icmp_timeout = 60;
  std::string api_socket = "@dpm/gateway";  // api::kDefaultGatewaySocket
  std::string api_group;
  std::string pcap_inside, pcap_outside;
  uint32_t pcap_snaplen = 65535;  // bytes kept of each captured packet
};

void AddGatewayOptions(CLI::App& app, GatewayOptions& options);
int RunGateway(const GatewayOptions& options);
/// --api-group NAME|GID → the group; empty → none. Exits with a one-line error for an
/// unknown group (shared with `dpmd client`).
std::optional<gid_t> ApiGroup(const std::string& name);

}  // namespace dpmd

#endif  // DPM_APPS_DPMD_GATEWAY_CMD_H_
