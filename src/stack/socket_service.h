// The daemon side of the modified socket API (include/dpm/socket.h, docs/api.md).
//
// Listens on a UNIX SOCK_SEQPACKET socket. Each client thread holds one control connection
// and sends requests (src/api/protocol.h); each dpm socket is a socket pair whose far end is
// passed to the program with SCM_RIGHTS, and whose near end this service joins to an lwIP
// pcb:
//   TCP  — a stream pair: bytes the program writes go to tcp_write() only while lwIP has send
//          buffer; bytes lwIP receives are acknowledged to the window (tcp_recved) only once
//          the program's pair took them. A slow reader therefore closes the TCP window and a
//          fast writer waits on a full pair: flow control end to end, daemon memory bounded
//          by the window and send buffer of each connection.
//   UDP  — a seqpacket pair; each message is an api::Endpoint header plus the payload.
//          Datagrams the program does not read in time are dropped and counted, as UDP is.
//   Listening TCP — the stream carries one api::AcceptRecord per new connection, with the
//          connection's descriptor in SCM_RIGHTS.
// A socket lives until every copy of the program's descriptor is closed (the near end sees
// hang-up), exactly like a kernel socket: a program that exits or is killed loses no
// connection in the daemon.
//
// The service is a composition of parts, one file each: api_listener (the API socket and its
// control connections), socket_registry (sockets by id, the request dispatch), tcp_socket and
// udp_socket over socket_base, dpm_session_client (per-socket DPM grants, sans-I/O) and
// dpm_driver_host (the DPM driver's I/O), address_ownership (per-socket addresses, linger,
// DHCP leases) and service_status (what `dpmd status` prints). Its time is the stack's clock
// (Stack::clock()).
#ifndef DPM_STACK_SOCKET_SERVICE_H_
#define DPM_STACK_SOCKET_SERVICE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"
#include "stack/address_pool.h"
#include "stack/service_status.h"
#include "stack/stack.h"

namespace dpm::stack {

/// The DPM driver's settings (the DPM patent): sessions to addresses outside `private_network`
/// start with a setup exchange with the DPM server at `server_address`.
struct DpmDriverSettings {
  uint32_t server_address = 0;           // the gateway's private address, host byte order
  uint16_t server_port = 1080;           // the DPM patent's port (PCP's 5351 also works)
  uint32_t private_network = 0;          // host byte order
  int private_prefix = 16;
  uint32_t lifetime_s = 600;             // asked for; renewed at half of what is granted
};

struct SocketServiceConfig {
  /// Where the API listens: "@name", an abstract UNIX socket of this network namespace, or a
  /// file path whose directory must exist (api/unix_address.h).
  std::string path;
  /// Who may connect besides the daemon's user and root (stack/api_access.h). A file-path
  /// socket gets mode 0600, or 0660 owned by this group.
  std::optional<gid_t> api_group;
  size_t max_sockets = 65536;  // dpm sockets served at once; more give ENOBUFS
  /// What `dpmd status` calls this instance: "client" or "gateway".
  std::string role = "client";
  /// More parts of `dpmd status`, added after the service's own (the gateway's tables, the
  /// Ethernet link's counters); called on the core thread for each status request.
  std::function<void(StatusReport& report)> add_status_parts;
  /// Set: run the DPM driver for this instance's sockets.
  std::optional<DpmDriverSettings> dpm;
  /// The per-socket-address patent: the static pool of per-socket addresses (DPM_TUPLE_STATIC); empty: none, and
  /// such sockets fail with EADDRNOTAVAIL. The kernel side must route these addresses to the
  /// link (docs/api.md "Addresses per socket").
  std::vector<AddressRange> address_pool;
  /// The per-socket-address patent's two embodiments: true, the address is taken at dpm_socket(); false, at the
  /// first bind/connect/listen/send.
  bool address_at_socket = true;
  /// The per-socket-address patent, dynamic addresses (DPM_TUPLE_DYNAMIC): each such socket leases its address
  /// from a DHCP server on the link (an Ethernet link: dpmd client --link tap --dhcp). Off: such
  /// sockets fail with EADDRNOTAVAIL.
  bool dhcp = false;
  /// No lease within this time: dpm_socket() fails with ETIMEDOUT (milliseconds).
  uint64_t dhcp_timeout_ms = 16'000;
  /// Virtual port multiplexing (docs/vpm.md): the configurator file; empty: off.
  std::string vpm_config;
};

class SocketService {
 public:
  /// Binds and listens on config.path (a stale socket file is replaced). Errors:
  /// AlreadyExists ("address in use": a live daemon answers there), InvalidArgument (path
  /// or name too long), FailedPrecondition (the path's directory does not exist, or the path
  /// is something other than a socket), Internal.
  static absl::StatusOr<std::unique_ptr<SocketService>> Create(boost::asio::io_context& io,
                                                               Stack& stack,
                                                               const SocketServiceConfig& config);
  ~SocketService();

  /// Number of dpm sockets alive.
  size_t socket_count() const;
  /// The status report `dpmd status` prints: link, counters, sockets (text or JSON).
  /// Reads the VPM configurator file again (PortMultiplexer::Reload). FailedPrecondition
  /// when VPM is off; otherwise the file's errors, and the old rules stay.
  absl::Status ReloadVpm();
  std::string Status(bool json) const;
  /// The same as a value (the service's own part of what Status renders; add_status_parts left out).
  SocketServiceStatus CollectStatus() const;

  class Impl;

 private:
  explicit SocketService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_SOCKET_SERVICE_H_
