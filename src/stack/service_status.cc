#include "stack/service_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "wire/ipv4.h"

namespace dpm::stack {
namespace {

std::string RowText(const SocketRow& r) {
  return absl::StrFormat("%-6d %-5s %-11s %-22s %-22s %10d %10d", r.id, r.proto, r.state, r.local.ToString(),
                         r.peer.ToString(), r.queued_to_app, r.queued_from_app);
}

// "10.0.0.2/24": the stack's address (host byte order) and prefix.
std::string AddressText(const SocketServiceStatus& s) {
  return absl::StrCat(wire::FormatIpv4(s.address), "/", s.prefix);
}

}  // namespace

void SocketServiceStatus::AddJson(StatusJson& report) const {
  const SocketServiceCounters& c = counters;
  StatusJson drops = StatusJson::object();
  for (size_t i = 1; i < ip_drops.size(); ++i) drops[wire::IpCheckName(static_cast<wire::IpCheck>(i))] = ip_drops[i];
  drops["lwip_ip"] = lwip_ip_drop;
  drops["lwip_ip_chksum"] = lwip_ip_chkerr;
  drops["lwip_tcp"] = lwip_tcp_drop;
  drops["lwip_tcp_chksum"] = lwip_tcp_chkerr;
  drops["lwip_udp"] = lwip_udp_drop;
  drops["lwip_udp_chksum"] = lwip_udp_chkerr;
  drops["lwip_icmp"] = lwip_icmp_drop;
  drops["udp_rx_dropped"] = c.udp_rx_dropped;
  drops["udp_tx_malformed"] = c.udp_tx_malformed;
  drops["udp_dpm_dropped"] = c.udp_dpm_dropped;
  drops["accept_overflow"] = c.accept_overflow;
  drops["bad_requests"] = c.bad_requests;
  drops["api_refused"] = c.api_refused;
  drops["address_exhausted"] = c.address_exhausted;
  drops["udp_tx_no_address"] = c.udp_tx_no_address;
  report["version"] = DPM_VERSION;
  report["role"] = role;
  report["api"] = api_path;
  report["link"] = {{"name", link_name}, {"mtu", link_mtu}, {"address", AddressText(*this)},
                    {"rx_packets", rx_packets}, {"rx_bytes", rx_bytes}, {"tx_packets", tx_packets},
                    {"tx_bytes", tx_bytes}, {"tx_dropped", tx_dropped}};
  report["drops"] = std::move(drops);
  report["tcp_pcbs"] = {{"active", tcp_active}, {"time_wait", tcp_time_wait}, {"listen", tcp_listen}};
  report["control_connections"] = control_connections;
  report["sockets_opened"] = c.sockets_opened;
  report["sockets_closed"] = c.sockets_closed;
  report["addresses"] = {{"pool", pool_size},
                         {"available", pool_available},
                         {"in_use", addresses_in_use},
                         {"taken", c.addresses_taken},
                         {"released", c.addresses_released},
                         {"lingering", addresses_lingering},
                         {"lingered", c.addresses_lingered},
                         {"dscp_marked", dscp_marked},
                         {"lost", c.addresses_lost},
                         {"at", address_at_socket ? "socket" : "bind"}};
  if (dhcp) {
    const DhcpStatus& d = *dhcp;
    report["dhcp"] = {{"clients", d.clients},     {"leases", d.leases},       {"requested", d.requested},
                      {"bound", d.bound},         {"renewed", d.renewed},     {"timed_out", d.timed_out},
                      {"expired", d.expired},     {"naks", d.naks},           {"released", d.released},
                      {"malformed", d.malformed}, {"unrouted", d.unrouted},   {"ignored", d.ignored},
                      {"send_errors", d.send_errors}};
  }
  StatusJson rows = StatusJson::array();
  for (const SocketRow& r : sockets) {
    rows.push_back({{"id", r.id}, {"proto", r.proto}, {"state", r.state}, {"local", r.local.ToString()},
                    {"peer", r.peer.ToString()}, {"queued_to_app", r.queued_to_app},
                    {"queued_from_app", r.queued_from_app}});
  }
  report["sockets"] = std::move(rows);
  report["socket_count"] = socket_count;
  report["sockets_listed"] = sockets.size();
  if (dpm_driver) {
    const DpmDriverStatus& d = *dpm_driver;
    report["dpm_driver"] = {{"grants", d.grants}, {"setups", d.setups}, {"failures", d.failures},
                            {"gateway_restarts", d.gateway_restarts}, {"ignored_replies", d.ignored_replies}};
  }
}

void SocketServiceStatus::AppendText(std::string& out) const {
  const SocketServiceStatus& s = *this;
  const SocketServiceCounters& c = s.counters;
  const std::string address = AddressText(s);
  // Client-only lines (sockets, per-socket addresses, the DPM driver) are left out of a
  // gateway's report, whose own part follows.
  const bool client = s.role == "client";
  absl::StrAppend(&out, "dpmd     ", DPM_VERSION, " ", s.role, "; api ", s.api_path, "\n");
  absl::StrAppend(&out, "link     ", s.link_name, "  mtu ", s.link_mtu, " bytes  address ", address, "\n");
  absl::StrAppend(&out, "traffic  rx ", s.rx_packets, " packets ", s.rx_bytes, " bytes; tx ", s.tx_packets,
                  " packets ", s.tx_bytes, " bytes; tx dropped ", s.tx_dropped, " packets\n");
  if (s.has_pool) {
    absl::StrAppend(&out, "addresses per socket: pool ", s.pool_size, ", in use ", s.addresses_in_use,
                    " (closing ", s.addresses_lingering, "), available ", s.pool_available,
                    ", refused (exhausted) ", c.address_exhausted, " sockets, DSCP-marked ", s.dscp_marked,
                    " packets; taken at ", s.address_at_socket ? "socket()" : "bind/connect", "\n");
  }
  if (s.dhcp) {
    const DhcpStatus& d = *s.dhcp;
    absl::StrAppend(&out, "dhcp     leases ", d.leases, " (clients ", d.clients, "); bound ", d.bound,
                    ", renewed ", d.renewed, ", released ", d.released, ", timed out ", d.timed_out, ", expired ",
                    d.expired, ", NAKs ", d.naks, ", sockets closed by lease loss ", c.addresses_lost,
                    "; datagrams dropped: malformed ", d.malformed, ", unrouted ", d.unrouted, ", refused ", d.ignored,
                    "\n");
  }
  absl::StrAppend(&out, "drops    packets:");
  for (size_t i = 1; i < s.ip_drops.size(); ++i) {
    absl::StrAppend(&out, " ", wire::IpCheckName(static_cast<wire::IpCheck>(i)), "=", s.ip_drops[i]);
  }
  absl::StrAppend(&out, " lwip_ip=", s.lwip_ip_drop, " lwip_ip_chksum=", s.lwip_ip_chkerr,
                  " lwip_tcp=", s.lwip_tcp_drop, " lwip_tcp_chksum=", s.lwip_tcp_chkerr,
                  " lwip_udp=", s.lwip_udp_drop, " lwip_udp_chksum=", s.lwip_udp_chkerr,
                  " lwip_icmp=", s.lwip_icmp_drop);
  if (client) {
    absl::StrAppend(&out, "; datagrams: udp_rx_dropped=", c.udp_rx_dropped, " udp_tx_malformed=", c.udp_tx_malformed,
                    " udp_dpm_dropped=", c.udp_dpm_dropped, "; connections: accept_overflow=", c.accept_overflow);
  }
  absl::StrAppend(&out, "\napi      control connections ", s.control_connections, "; requests refused as malformed ",
                  c.bad_requests, "; connections refused by credentials ", c.api_refused, "\n");
  if (client) {
    absl::StrAppend(&out, "tcp pcbs active ", s.tcp_active, "  time-wait ", s.tcp_time_wait, "  listen ",
                    s.tcp_listen, "; sockets ", s.socket_count, " (opened ", c.sockets_opened, ", closed ",
                    c.sockets_closed, ")\n");
    absl::StrAppend(&out, absl::StrFormat("%-6s %-5s %-11s %-22s %-22s %10s %10s\n", "ID", "PROTO", "STATE", "LOCAL",
                                          "PEER", "TO-APP-B", "FROM-APP-B"));
    for (const SocketRow& r : s.sockets) absl::StrAppend(&out, RowText(r), "\n");
    if (s.socket_count > s.sockets.size()) {
      absl::StrAppend(&out, "... and ", s.socket_count - s.sockets.size(), " more\n");
    }
  }
  if (s.dpm_driver) {
    const DpmDriverStatus& d = *s.dpm_driver;
    absl::StrAppend(&out, "dpm driver  grants ", d.grants, "; setups ", d.setups, ", failed ", d.failures,
                    "; gateway restarts seen ", d.gateway_restarts, "; ignored replies ", d.ignored_replies, "\n");
  }
}

}  // namespace dpm::stack
