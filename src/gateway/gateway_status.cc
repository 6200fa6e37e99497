#include "gateway/gateway_status.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dpm/pcp.h"
#include "wire/ipv4.h"

namespace dpm::gateway {
namespace {

std::string Ep(const nat::Endpoint& e) { return absl::StrCat(wire::FormatIpv4(e.address), ":", e.port); }
// "198.51.100.0/24 port 53", "198.51.100.10/32 any port".
std::string FilterText(const nat::RemoteFilter& f) {
  return absl::StrCat(wire::FormatIpv4(f.address), "/", f.prefix, f.port ? absl::StrCat(" port ", f.port) : " any port");
}
// A DPM mapping has no one internal endpoint (its sessions have theirs).
std::string MappingInternal(const GatewayStatus::Mapping& m) { return m.dpm ? "-" : Ep(m.internal); }

std::string OffloadText(const GatewayStatus::Offload& o) {
  if (!o.enabled) return "off";
  return absl::StrCat("on (super-packets rx ", o.rx_super_packets, ", tx ", o.tx_super_packets, ")");
}
stack::StatusJson OffloadJson(const GatewayStatus::Offload& o) {
  return {{"enabled", o.enabled}, {"rx_super_packets", o.rx_super_packets}, {"tx_super_packets", o.tx_super_packets},
          {"tx_segmented_in_software", o.tx_segmented_in_software},
          {"checksums_in_software", o.checksums_in_software}};
}

}  // namespace

GatewayStatus::Offload GatewayStatus::Offload::From(const tun::Link& link) {
  const tun::LinkCounters& c = link.counters();
  return Offload{link.offload(), c.rx_segmentation, c.tx_segmentation, c.tx_segmented_in_software,
                 c.checksums_in_software};
}

void GatewayStatus::AddSession(const nat::NatEngine::SessionInfo& s) {
  if (sessions_seen++ >= kMaxRows) return;
  sessions.push_back(Session{s.protocol, s.internal, s.external, s.remote, s.gateway_endpoint, s.state, s.idle_ms, s.dpm});
}

void GatewayStatus::AddMapping(const nat::NatEngine::MappingInfo& m) {
  if (mappings_seen++ >= kMaxRows) return;
  mappings.push_back(Mapping{m.protocol, m.internal, m.external, nat::MappingOriginName(m.origin), m.lifetime_left_ms,
                             m.sessions, m.dpm, m.fixed, {m.filters.begin(), m.filters.end()}});
}

void GatewayStatus::AppendText(std::string& out) const {
  const GatewayCounters& c = counters;
  absl::StrAppend(&out, "gateway  epoch ", epoch_s, " s; packets forwarded out ", c.forwarded_out, ", in ",
                  c.forwarded_in, ", hairpinned ", c.hairpinned, ", to gateway ", c.to_gateway,
                  ", outside-to-gateway dropped ", c.outside_to_gateway, "; icmp errors sent ", c.icmp_errors_sent,
                  ", rate-limited ", c.icmp_errors_limited, "\noffload  inside ", OffloadText(inside), "; outside ",
                  OffloadText(outside), "\nnat drops (packets)");
  for (size_t i = 1; i < nat_drops.size(); ++i) {
    absl::StrAppend(&out, " ", nat::DropReasonName(static_cast<nat::DropReason>(i)), "=", nat_drops[i]);
  }
  absl::StrAppend(&out, "\npcp results (replies)");
  for (size_t i = 0; i < pcp_results.size(); ++i) {
    if (pcp_results[i]) absl::StrAppend(&out, " ", pcp::ResultName(static_cast<pcp::ResultCode>(i)), "=", pcp_results[i]);
  }
  absl::StrAppend(&out, "; nat-pmp requests ", natpmp_requests, "\nsessions ", session_count, "\n");
  absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-21s %-21s %-12s %8s %s\n", "PROTO", "INTERNAL", "EXTERNAL",
                                        "REMOTE", "GATEWAY-ENDPOINT", "STATE", "IDLE-S", "KIND"));
  for (const Session& s : sessions) {
    absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-21s %-21s %-12s %8d %s\n", nat::ProtocolName(s.protocol),
                                          Ep(s.internal), Ep(s.external), Ep(s.remote), Ep(s.gateway_endpoint), s.state,
                                          s.idle_ms / 1000, s.dpm ? "dpm" : "napt"));
  }
  if (sessions_seen > kMaxRows) absl::StrAppend(&out, "... and ", sessions_seen - kMaxRows, " more\n");
  // Mappings: the explicit ones a PCP or NAT-PMP client made show here before any connection
  // uses them (RFC 6887 §11, RFC 6886 §3.3), with their filters (RFC 6887 §13.3).
  absl::StrAppend(&out, "mappings ", mapping_count, "\n",
                  absl::StrFormat("%-5s %-21s %-21s %-8s %11s %8s %s\n", "PROTO", "INTERNAL", "EXTERNAL", "MADE-BY",
                                  "LIFETIME-S", "SESSIONS", "FILTERS"));
  for (const Mapping& m : mappings) {
    std::string filters = m.filters.empty() ? (m.dpm ? "dpm sessions' remotes only" : "any remote") : "";
    for (size_t i = 0; i < m.filters.size(); ++i) absl::StrAppend(&filters, i ? ", " : "", FilterText(m.filters[i]));
    absl::StrAppend(&out, absl::StrFormat("%-5s %-21s %-21s %-8s %11s %8d %s\n", nat::ProtocolName(m.protocol),
                                          MappingInternal(m), Ep(m.external), m.made_by,
                                          m.lifetime_left_ms ? absl::StrCat(*m.lifetime_left_ms / 1000) : "-",
                                          m.sessions, filters));
  }
  if (mappings_seen > kMaxRows) absl::StrAppend(&out, "... and ", mappings_seen - kMaxRows, " more\n");
}

void GatewayStatus::AddJson(stack::StatusJson& report) const {
  const GatewayCounters& c = counters;
  stack::StatusJson drops = stack::StatusJson::object();
  for (size_t i = 1; i < nat_drops.size(); ++i) drops[nat::DropReasonName(static_cast<nat::DropReason>(i))] = nat_drops[i];
  stack::StatusJson results = stack::StatusJson::object();
  for (size_t i = 0; i < pcp_results.size(); ++i) results[pcp::ResultName(static_cast<pcp::ResultCode>(i))] = pcp_results[i];
  stack::StatusJson session_rows = stack::StatusJson::array();
  for (const Session& s : sessions) {
    session_rows.push_back({{"proto", nat::ProtocolName(s.protocol)}, {"internal", Ep(s.internal)},
                            {"external", Ep(s.external)}, {"remote", Ep(s.remote)},
                            {"gateway_endpoint", Ep(s.gateway_endpoint)}, {"state", s.state},
                            {"idle_ms", s.idle_ms}, {"dpm", s.dpm}});
  }
  stack::StatusJson mapping_rows = stack::StatusJson::array();
  for (const Mapping& m : mappings) {
    stack::StatusJson filters = stack::StatusJson::array();
    for (const nat::RemoteFilter& f : m.filters) {
      filters.push_back({{"remote", absl::StrCat(wire::FormatIpv4(f.address), "/", f.prefix)}, {"port", f.port}});
    }
    stack::StatusJson lifetime = nullptr;
    if (m.lifetime_left_ms) lifetime = *m.lifetime_left_ms / 1000;
    mapping_rows.push_back({{"proto", nat::ProtocolName(m.protocol)}, {"internal", MappingInternal(m)},
                            {"external", Ep(m.external)}, {"made_by", m.made_by},
                            {"explicit", m.lifetime_left_ms.has_value()}, {"lifetime_left_s", lifetime},
                            {"sessions", m.sessions}, {"fixed", m.fixed}, {"filters", std::move(filters)}});
  }
  report["gateway"] = {
      {"epoch", epoch_s},
      {"forwarded_out", c.forwarded_out},
      {"forwarded_in", c.forwarded_in},
      {"hairpinned", c.hairpinned},
      {"to_gateway", c.to_gateway},
      {"outside_to_gateway", c.outside_to_gateway},
      {"write_errors", c.write_errors},
      {"icmp_errors_sent", c.icmp_errors_sent},
      {"icmp_errors_limited", c.icmp_errors_limited},
      {"offload",
       {{"inside", OffloadJson(inside)},
        {"outside", OffloadJson(outside)},
        {"finished_in_software", c.offload_finished},
        {"malformed", c.offload_malformed}}},
      {"nat_drops", std::move(drops)},
      {"pcp_results", std::move(results)},
      {"natpmp_requests", natpmp_requests},
      {"session_count", session_count},
      {"sessions", std::move(session_rows)},
      {"mapping_count", mapping_count},
      {"mappings", std::move(mapping_rows)},
  };
}

}  // namespace dpm::gateway
