// The tunnel server's table of published services (the tunneling patent, Figs. 4 and 7): service key →
// proxy connection and service, looked up by pseudo DNS name for a redirector's tunnel request,
// with the limits and per-service counters the server enforces and reports. Sans-I/O: the
// server's connections are opaque ids, randomness comes in through a callback.
#ifndef DPM_TUNNEL_REGISTRY_H_
#define DPM_TUNNEL_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "tunnel/access.h"
#include "tunnel/control.h"
#include "tunnel/errors.h"

namespace dpm::tunnel {

/// The server's name for one TLS connection (a proxy's or a redirector's).
using ConnId = uint64_t;

/// Counters of one service, for status and metrics.
struct ServiceCounters {
  uint64_t streams_opened = 0;  // tunnel requests that reached the proxy
  uint64_t streams_open = 0;    // open now
  uint64_t bytes_to_service = 0, bytes_from_service = 0;
  uint64_t errors[16] = {};  // by TunnelError value
};

/// A published service.
struct Published {
  std::string service, proxy, pseudo_name;
  ServiceKey key{};
  ConnId proxy_conn = 0;
};

/// Where a tunnel request goes.
struct Route {
  ConnId proxy_conn = 0;
  ServiceKey key{};
  std::string pseudo_name;
};

class ServiceRegistry {
 public:
  /// `random`: fills a buffer with random bytes (the service keys); `suffix`: the pseudo suffix.
  ServiceRegistry(const AccessConfig& config, std::string suffix,
                  std::function<void(uint8_t* out, size_t size)> random);

  /// Publishes the services of an authenticated proxy (`proxy`: index in config.proxies) on
  /// connection `conn` (Fig. 4): a new key for each, one result per HELLO service in order. A
  /// connection of the same proxy that holds these names already is replaced: its services and
  /// connection are dropped (it returns the replaced ConnId, or 0) — only a holder of that
  /// proxy's token gets this far, so a second proxy cannot take names it does not own.
  std::vector<ServiceEntry> Publish(ConnId conn, size_t proxy, const std::vector<std::string>& services,
                                    ConnId* replaced);
  /// Forgets everything published on `conn` (the proxy went away). Streams' counts stay until
  /// CloseStream.
  void DropConnection(ConnId conn);

  /// The services redirector `redirector` (index in config.redirectors) may use that are
  /// published now (WELCOME for a redirector: keys left zero).
  std::vector<ServiceEntry> Visible(size_t redirector) const;

  /// Finds the route for a tunnel request from redirector `redirector` naming `pseudo_name`
  /// (Fig. 7 steps 705-720) and counts the new stream against the limits. kNoService for an
  /// unknown name and for one the redirector may not use alike; kProxyDown when the name is
  /// permitted and its proxy is in the access file but not connected; kLimit when the proxy's,
  /// the redirector's or the service's stream limit is reached. On success the stream is
  /// counted open: CloseStream must follow.
  std::variant<Route, TunnelError> OpenStream(size_t redirector, absl::string_view pseudo_name);
  /// Ends a stream OpenStream counted (`error`: how it ended, kNone for a good one).
  void CloseStream(size_t redirector, absl::string_view pseudo_name, ConnId proxy_conn, TunnelError error);
  /// Counts bytes of a stream of `pseudo_name`.
  void CountBytes(absl::string_view pseudo_name, uint64_t to_service, uint64_t from_service);
  /// Counts a tunnel request that failed before reaching a proxy (kNoService, kLimit, ...),
  /// under the name asked for only when it is published (no counter per unknown name).
  void CountError(absl::string_view pseudo_name, TunnelError error);

  const std::vector<Published> Services() const;  // by pseudo name
  const ServiceCounters* Counters(absl::string_view pseudo_name) const;
  size_t ProxyStreams(size_t proxy) const;
  size_t RedirectorStreams(size_t redirector) const;
  bool ProxyConnected(size_t proxy) const;

 private:
  const AccessConfig& config_;
  std::string suffix_;
  std::function<void(uint8_t*, size_t)> random_;
  absl::flat_hash_map<std::string, Published> by_name_;   // pseudo name → service
  absl::flat_hash_map<ConnId, size_t> proxy_of_conn_;      // live proxy connections
  absl::flat_hash_map<size_t, ConnId> conn_of_proxy_;
  absl::flat_hash_map<std::string, ServiceCounters> counters_;  // kept after unpublish
  std::vector<size_t> proxy_streams_, redirector_streams_;
};

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_REGISTRY_H_
