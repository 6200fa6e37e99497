#include "stack/service_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpm::stack {
namespace {

std::string RowJson(const SocketRow& r) {
  return absl::StrFormat(
      R"({"id":%d,"proto":"%s","state":"%s","local":"%s","peer":"%s","queued_to_app":%d,"queued_from_app":%d})", r.id,
      r.proto, r.state, r.local.ToString(), r.peer.ToString(), r.queued_to_app, r.queued_from_app);
}

std::string RowText(const SocketRow& r) {
  return absl::StrFormat("%-6d %-5s %-11s %-22s %-22s %10d %10d", r.id, r.proto, r.state, r.local.ToString(),
                         r.peer.ToString(), r.queued_to_app, r.queued_from_app);
}

std::string RenderJson(const SocketServiceStatus& s, const std::string& address) {
  const SocketServiceCounters& c = s.counters;
  std::string out;
  absl::StrAppend(&out, "{\"version\":\"", DPM_VERSION, "\",\"role\":\"", s.role, "\",\"api\":\"",
                  JsonEscape(s.api_path), "\",\"link\":{\"name\":\"", JsonEscape(s.link_name), "\",\"mtu\":", s.link_mtu,
                  ",\"address\":\"", address, "\",\"rx_packets\":", s.rx_packets, ",\"rx_bytes\":", s.rx_bytes,
                  ",\"tx_packets\":", s.tx_packets, ",\"tx_bytes\":", s.tx_bytes, ",\"tx_dropped\":", s.tx_dropped,
                  "},\"drops\":{");
  for (size_t i = 1; i < s.ip_drops.size(); ++i) {
    absl::StrAppend(&out, i > 1 ? "," : "", "\"", wire::IpCheckName(static_cast<wire::IpCheck>(i)), "\":",
                    s.ip_drops[i]);
  }
  absl::StrAppend(&out, ",\"lwip_ip\":", s.lwip_ip_drop, ",\"lwip_ip_chksum\":", s.lwip_ip_chkerr,
                  ",\"lwip_tcp\":", s.lwip_tcp_drop, ",\"lwip_tcp_chksum\":", s.lwip_tcp_chkerr,
                  ",\"lwip_udp\":", s.lwip_udp_drop, ",\"lwip_udp_chksum\":", s.lwip_udp_chkerr,
                  ",\"lwip_icmp\":", s.lwip_icmp_drop, ",\"udp_rx_dropped\":", c.udp_rx_dropped,
                  ",\"udp_tx_malformed\":", c.udp_tx_malformed, ",\"udp_dpm_dropped\":", c.udp_dpm_dropped,
                  ",\"accept_overflow\":", c.accept_overflow, ",\"bad_requests\":", c.bad_requests,
                  ",\"api_refused\":", c.api_refused, ",\"address_exhausted\":", c.address_exhausted,
                  ",\"udp_tx_no_address\":", c.udp_tx_no_address, "},\"tcp_pcbs\":{\"active\":", s.tcp_active,
                  ",\"time_wait\":", s.tcp_time_wait, ",\"listen\":", s.tcp_listen,
                  "},\"control_connections\":", s.control_connections, ",\"sockets_opened\":", c.sockets_opened,
                  ",\"sockets_closed\":", c.sockets_closed, ",\"addresses\":{\"pool\":", s.pool_size,
                  ",\"available\":", s.pool_available, ",\"in_use\":", s.addresses_in_use,
                  ",\"taken\":", c.addresses_taken, ",\"released\":", c.addresses_released,
                  ",\"lingering\":", s.addresses_lingering, ",\"lingered\":", c.addresses_lingered,
                  ",\"dscp_marked\":", s.dscp_marked, ",\"lost\":", c.addresses_lost, ",\"at\":\"",
                  s.address_at_socket ? "socket" : "bind", "\"}");
  if (s.dhcp) {
    const DhcpStatus& d = *s.dhcp;
    absl::StrAppend(&out, ",\"dhcp\":{\"clients\":", d.clients, ",\"leases\":", d.leases,
                    ",\"requested\":", d.requested, ",\"bound\":", d.bound, ",\"renewed\":", d.renewed,
                    ",\"timed_out\":", d.timed_out, ",\"expired\":", d.expired, ",\"naks\":", d.naks,
                    ",\"released\":", d.released, ",\"malformed\":", d.malformed, ",\"unrouted\":", d.unrouted,
                    ",\"ignored\":", d.ignored, ",\"send_errors\":", d.send_errors, "}");
  }
  absl::StrAppend(&out, ",\"sockets\":[");
  for (size_t i = 0; i < s.sockets.size(); ++i) absl::StrAppend(&out, i ? "," : "", RowJson(s.sockets[i]));
  absl::StrAppend(&out, "],\"socket_count\":", s.socket_count, ",\"sockets_listed\":", s.sockets.size());
  if (s.dpm_driver) {
    const DpmDriverStatus& d = *s.dpm_driver;
    absl::StrAppend(&out, ",\"dpm_driver\":{\"grants\":", d.grants, ",\"setups\":", d.setups,
                    ",\"failures\":", d.failures, ",\"gateway_restarts\":", d.gateway_restarts,
                    ",\"ignored_replies\":", d.ignored_replies, "}");
  }
  if (s.has_extra) absl::StrAppend(&out, ",", s.extra);
  absl::StrAppend(&out, "}\n");
  return out;
}

std::string RenderText(const SocketServiceStatus& s, const std::string& address) {
  const SocketServiceCounters& c = s.counters;
  // Client-only lines (sockets, per-socket addresses, the DPM driver) are left out of a
  // gateway's report, whose own part (extra) follows.
  const bool client = s.role == "client";
  std::string out;
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
  if (s.has_extra) absl::StrAppend(&out, s.extra);
  return out;
}

}  // namespace

std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string RenderStatus(const SocketServiceStatus& status, bool json) {
  const uint32_t a = status.address;
  const std::string address =
      absl::StrFormat("%d.%d.%d.%d/%d", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, status.prefix);
  return json ? RenderJson(status, address) : RenderText(status, address);
}

}  // namespace dpm::stack
