// `dpmd tunnel-server` (the tunneling patent, the service publishing/tunneling server 205): accepts service
// proxies and redirectors over TLS 1.3, authenticates each by its token (tunnel/access.h),
// publishes a proxy's services with a new service key and a pseudo DNS name each (Figs. 3, 4),
// and joins each redirector tunnel request to a new stream toward the service's proxy, or
// answers why not (Fig. 7). A connection that has not finished TLS and its HELLO within the
// handshake deadline is closed. Core thread only.
#ifndef DPM_TUNNEL_SERVICE_TUNNEL_SERVER_H_
#define DPM_TUNNEL_SERVICE_TUNNEL_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tunnel/access.h"
#include "tunnel/mux.h"
#include "tunnel/registry.h"
#include "tunnel_service/relay.h"
#include "tunnel_service/session.h"

namespace dpm::tunnel_service {

struct TunnelServerConfig {
  boost::asio::ip::tcp::endpoint listen;
  std::string cert_file, key_file;
  std::string suffix = "dpm.internal";
  std::chrono::seconds handshake_timeout{10};  // TCP accept to HELLO answered
  std::chrono::seconds keepalive{15};
  size_t max_connections = 1024;               // TLS connections at once, all roles
  tunnel::Mux::Options mux;
};

/// Counters of the server as a whole.
struct TunnelServerCounters {
  uint64_t accepted = 0, refused_auth = 0, refused_malformed = 0, refused_limit = 0;
  uint64_t handshake_timeouts = 0, tls_failures = 0;
  uint64_t streams_opened = 0, stream_errors = 0;
};

class TunnelServer {
 public:
  /// Loads the certificate and key and listens. Errors: InvalidArgument (files), Unavailable
  /// (bind failed).
  static absl::StatusOr<std::unique_ptr<TunnelServer>> Create(boost::asio::io_context& io,
                                                              const TunnelServerConfig& config,
                                                              tunnel::AccessConfig access);
  ~TunnelServer();

  /// The status report: proxies, redirectors, services, streams (text, or JSON).
  std::string Status(bool json) const;
  /// Prometheus text exposition: per-service streams, bytes and errors; connections.
  std::string Metrics() const;
  uint16_t port() const;

 private:
  struct Peer {
    tunnel::Role role = tunnel::Role::kProxy;
    size_t index = 0;  // in access.proxies or access.redirectors
    std::string name;
    std::shared_ptr<Session> session;
  };
  TunnelServer(boost::asio::io_context& io, const TunnelServerConfig& config, tunnel::AccessConfig access,
               std::unique_ptr<boost::asio::ssl::context> tls);
  void Accept();
  void Handshake(std::unique_ptr<TlsStream> stream);
  void OnHello(std::unique_ptr<TlsStream> stream, std::shared_ptr<boost::asio::steady_timer> deadline,
               const tunnel::Hello& hello, std::vector<uint8_t> rest);
  void Refuse(std::unique_ptr<TlsStream> stream, tunnel::RefuseReason reason, const std::string& message);
  void StartSession(tunnel::ConnId id, Peer peer, std::unique_ptr<TlsStream> stream,
                    const tunnel::Welcome& welcome, std::vector<uint8_t> rest);
  void OnTunnelRequest(tunnel::ConnId redirector, int32_t stream, const tunnel::StreamRequest& request);
  void Drop(tunnel::ConnId id, const std::string& reason);

  boost::asio::io_context& io_;
  TunnelServerConfig config_;
  tunnel::AccessConfig access_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  tunnel::ServiceRegistry registry_;
  absl::flat_hash_map<tunnel::ConnId, Peer> peers_;
  absl::flat_hash_map<Relay*, std::shared_ptr<Relay>> relays_;
  tunnel::ConnId next_id_ = 1;
  size_t connections_ = 0;  // TLS connections, handshaking or up
  TunnelServerCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_TUNNEL_SERVER_H_
