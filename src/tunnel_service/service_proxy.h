// `dpmd service-proxy` (the tunneling patent, the service proxy 210): inside network A, connects out to the
// tunnel server (no inbound port needed), publishes the services of its configuration (name →
// host:port; only the names leave the network), keeps service key → real server from the
// WELCOME (Fig. 3 step 335), and for each tunnel request the server forwards connects to the
// real server and answers success or the exact failure (errors.h), then bridges the bytes.
// Core thread only.
#ifndef DPM_TUNNEL_SERVICE_SERVICE_PROXY_H_
#define DPM_TUNNEL_SERVICE_SERVICE_PROXY_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tunnel/control.h"
#include "tunnel_service/dialer.h"
#include "tunnel_service/stream_bridge.h"
#include "tunnel_service/uplink.h"

namespace dpm::tunnel_service {

/// One service the proxy publishes: its name (a names.h label) and the real server.
struct ProxiedService {
  std::string name;
  std::string host;  // IPv4 literal or a name this host resolves
  uint16_t port = 0;
};

/// Parses "NAME=HOST:PORT". Errors: InvalidArgument naming the part.
absl::StatusOr<ProxiedService> ParseProxiedService(const std::string& text);

struct ServiceProxyConfig {
  UplinkConfig uplink;
  std::string name;   // the proxy's name: the middle label of its pseudo DNS names
  std::string token;  // its per-proxy token
  std::vector<ProxiedService> services;
  std::chrono::milliseconds connect_timeout{5000};  // to a real server
  size_t max_streams = 4096;
  std::string api_socket;  // outbound through this dpm instance (empty: the kernel)
};

struct ProxyServiceState {
  ProxiedService service;
  tunnel::PublishStatus status = tunnel::PublishStatus::kPublished;
  bool published = false;
  std::string pseudo_name;
  uint64_t streams_open = 0, streams_opened = 0, bytes_in = 0, bytes_out = 0;
  uint64_t errors[16] = {};
};

class ServiceProxy {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceProxy>> Create(boost::asio::io_context& io,
                                                              const ServiceProxyConfig& config);
  ~ServiceProxy();
  void Start();
  std::string Status(bool json) const;
  std::string Metrics() const;

 private:
  class Pending;
  ServiceProxy(boost::asio::io_context& io, const ServiceProxyConfig& config);
  tunnel::Hello MakeHello() const;
  Session::Callbacks OnWelcome(const tunnel::Welcome& welcome);
  void OnRequest(int32_t id, const tunnel::StreamRequest& request);

  boost::asio::io_context& io_;
  ServiceProxyConfig config_;
  Dialer dialer_;  // to the tunnel server and to the real servers
  std::unique_ptr<Uplink> uplink_;
  std::vector<ProxyServiceState> services_;
  absl::flat_hash_map<std::string, size_t> by_key_;  // service key (hex) → services_ index
  absl::flat_hash_map<StreamBridge*, std::shared_ptr<StreamBridge>> bridges_;
  absl::flat_hash_map<Pending*, std::shared_ptr<Pending>> pending_;
  uint64_t unknown_keys_ = 0, limit_refusals_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_SERVICE_PROXY_H_
