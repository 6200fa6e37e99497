// What `dpmd status` reports about a client or gateway instance's socket service, as a plain
// value (SocketServiceStatus) collected from the parts — link, stack, address ownership, DHCP
// leases, the DPM driver, the socket registry — and rendered as one part of a StatusReport
// (stack/status_report.h): the text table, or members of the JSON object (`dpmd status --json`).
#ifndef DPM_STACK_SERVICE_STATUS_H_
#define DPM_STACK_SERVICE_STATUS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/protocol.h"
#include "stack/status_report.h"
#include "wire/ip.h"

namespace dpm::stack {

struct SocketServiceCounters {
  uint64_t bad_requests = 0;       // API requests that failed to parse (answered EINVAL)
  uint64_t udp_rx_dropped = 0;     // datagrams the program's pair had no room for
  uint64_t udp_tx_malformed = 0;   // messages from the program without a valid header
  uint64_t udp_dpm_dropped = 0;    // datagrams to a DPM peer dropped: setup failed, queue or peer limit
  uint64_t accept_overflow = 0;    // connections refused because the accept queue was full
  uint64_t sockets_opened = 0, sockets_closed = 0;
  // The per-socket-address patent: per-socket addresses taken from the pool, given back, refused (exhausted).
  uint64_t addresses_taken = 0, addresses_released = 0, address_exhausted = 0;
  uint64_t addresses_lingered = 0;  // closes whose address waited for the TCP closing handshake
  uint64_t addresses_lost = 0;      // sockets closed because their lease ended (docs/design.md §7)
  uint64_t udp_tx_no_address = 0;  // datagrams not sent: the socket's address could not be taken
  uint64_t api_refused = 0;        // control connections refused by their credentials (EACCES)
};

/// One socket's row: id, "tcp"/"udp" ("tcp*"/"udp*" with a DPM session), state name
/// (Socket::StateName), local and peer endpoints, and the bytes queued towards the program
/// and from it inside the daemon.
struct SocketRow {
  uint64_t id = 0;
  const char* proto = "";
  const char* state = "";
  api::Endpoint local, peer;
  size_t queued_to_app = 0, queued_from_app = 0;
};

/// Counters of the DHCP leases (DhcpLeases::counters(), stack/dhcp_leases.h).
struct DhcpStatus {
  size_t clients = 0, leases = 0;
  uint64_t requested = 0, bound = 0, renewed = 0, timed_out = 0, expired = 0, naks = 0, released = 0;
  uint64_t malformed = 0, unrouted = 0, ignored = 0, send_errors = 0;
};

/// The DPM driver's grants and counters (the DPM patent; RFC 6887 §8.5 for restarts).
struct DpmDriverStatus {
  size_t grants = 0;
  uint64_t setups = 0, failures = 0, gateway_restarts = 0, ignored_replies = 0;
};

/// The socket service's part of a status report.
struct SocketServiceStatus : StatusPart {
  std::string role;  // "client" or "gateway"; a gateway's text leaves out the client lines
  std::string api_path;
  // The link and the stack's address (host byte order) and prefix length.
  std::string link_name;
  size_t link_mtu = 0;
  uint32_t address = 0;
  int prefix = 0;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
  wire::IpDropCounters ip_drops{};  // dropped before lwIP, by wire::IpCheck
  // lwIP's own drop and checksum-error counters (lwip_stats).
  uint64_t lwip_ip_drop = 0, lwip_ip_chkerr = 0, lwip_tcp_drop = 0, lwip_tcp_chkerr = 0;
  uint64_t lwip_udp_drop = 0, lwip_udp_chkerr = 0, lwip_icmp_drop = 0;
  SocketServiceCounters counters;
  size_t tcp_active = 0, tcp_time_wait = 0, tcp_listen = 0;  // lwIP's pcb lists
  size_t control_connections = 0;
  // Per-socket addresses (the per-socket-address patent): the static pool (if any) and the addresses held.
  bool has_pool = false;
  size_t pool_size = 0, pool_available = 0, addresses_in_use = 0, addresses_lingering = 0;
  uint64_t dscp_marked = 0;
  bool address_at_socket = true;
  std::optional<DhcpStatus> dhcp;        // set with --dhcp
  std::vector<SocketRow> sockets;        // by id, at most kMaxStatusRows
  size_t socket_count = 0;               // all sockets, listed or not
  std::optional<DpmDriverStatus> dpm_driver;  // set when the DPM driver runs

  /// The lines "dpmd", "link", "traffic", "addresses per socket" (with a pool), "dhcp" (with
  /// --dhcp), "drops", "api", and for a client the TCP pcbs, the socket table and the "dpm
  /// driver" line. A gateway's report leaves the client lines out.
  void AppendText(std::string& out) const override;
  /// The members "version", "role", "api", "link", "drops", "tcp_pcbs", "control_connections",
  /// "sockets_opened", "sockets_closed", "addresses", "dhcp" (with --dhcp), "sockets",
  /// "socket_count", "sockets_listed", "dpm_driver" (with the DPM driver).
  void AddJson(StatusJson& report) const override;
};

/// Sockets listed by a status reply at most (it must fit one API message).
inline constexpr size_t kMaxStatusRows = 1000;

}  // namespace dpm::stack

#endif  // DPM_STACK_SERVICE_STATUS_H_
