// `dpmd redirector` (the tunneling patent, the redirector process 510): on a client host in network B it
// keeps a TLS session to the tunnel server, learns the services its access token may use, and
// serves the preload hook (dpm-run --tunnel) over a local UNIX socket that speaks the dpm API
// protocol (api/protocol.h): RESOLVE gives a pseudo DNS name its pseudo address; SOCKET gives
// the program a socket pair; CONNECT to a pseudo address sends the tunnel request (Fig. 6 step
// 625) and answers, blocking or non-blocking (the connect gate, stack/connect_gate.h), with 0
// or the errno of the failure along the chain (tunnel/errors.h; steps 630-640); the program's
// socket is then joined to the stream. Core thread only.
#ifndef DPM_TUNNEL_SERVICE_REDIRECTOR_H_
#define DPM_TUNNEL_SERVICE_REDIRECTOR_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "api/protocol.h"
#include "stack/api_listener.h"
#include "stack/service_status.h"
#include "tunnel/control.h"
#include "tunnel/pseudo_addresses.h"
#include "tunnel_service/dialer.h"
#include "tunnel_service/uplink.h"

namespace dpm::tunnel_service {

struct RedirectorConfig {
  UplinkConfig uplink;
  std::string name, token;                  // this redirector's entry in the server's access file
  std::string control_socket = "@dpm/redirector";  // where the hook reaches it
  std::optional<gid_t> group;               // a file-path socket's group (mode 0660)
  std::string suffix = "dpm.internal";
  uint32_t range_base = 0x64400000;         // 100.64.0.0
  int range_length = 10;
  size_t max_names = 65536;
  std::chrono::milliseconds tunnel_timeout{30000};  // tunnel request to answer
  size_t max_streams = 4096;
  std::string api_socket;  // the uplink through this dpm instance (empty: the kernel)
};

struct RedirectorCounters {
  uint64_t resolved = 0, resolve_refused = 0;
  uint64_t connects = 0, connected = 0;
  uint64_t errors[16] = {};  // by TunnelError
  uint64_t bytes_to_service = 0, bytes_from_service = 0;
};

class Redirector {
 public:
  /// Errors: InvalidArgument (config), AlreadyExists / FailedPrecondition (the control socket).
  static absl::StatusOr<std::unique_ptr<Redirector>> Create(boost::asio::io_context& io,
                                                            const RedirectorConfig& config);
  ~Redirector();
  void Start();
  std::string Status(bool json) const;
  std::string Metrics() const;

 private:
  class Sock;
  Redirector(boost::asio::io_context& io, const RedirectorConfig& config);
  void Handle(const std::shared_ptr<stack::ControlConn>& conn, const api::Request& request, api::Opcode op);
  void Connect(const std::shared_ptr<stack::ControlConn>& conn, Sock& s, const api::ConnectRequest& q,
               api::Opcode op);
  std::shared_ptr<Sock> Find(const api::SocketRef& ref) const;
  void Release(uint64_t id);

  boost::asio::io_context& io_;
  RedirectorConfig config_;
  Dialer dialer_;
  std::unique_ptr<Uplink> uplink_;
  std::unique_ptr<stack::ApiListener> listener_;
  stack::SocketServiceCounters api_counters_;
  tunnel::PseudoAddressTable addresses_;
  std::vector<tunnel::ServiceEntry> visible_;  // from the last WELCOME
  absl::flat_hash_map<uint64_t, std::shared_ptr<Sock>> sockets_;
  uint64_t next_id_ = 1;
  size_t streams_ = 0;
  RedirectorCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_REDIRECTOR_H_
