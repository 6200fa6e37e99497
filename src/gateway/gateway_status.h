// The gateway's part of `dpmd status`: the DPM server's epoch (RFC 6887 §8.5), forwarding
// counters, offload on both links, NAT drops by reason, PCP results, and the session and
// mapping tables (at most kMaxRows rows of each; the counts are always whole).
#ifndef DPM_GATEWAY_GATEWAY_STATUS_H_
#define DPM_GATEWAY_GATEWAY_STATUS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nat/nat_engine.h"
#include "stack/status_report.h"
#include "tun/link.h"

namespace dpm::gateway {

struct GatewayCounters {
  uint64_t forwarded_out = 0, forwarded_in = 0, hairpinned = 0, to_gateway = 0;
  uint64_t outside_to_gateway = 0;  // addressed to the gateway from outside: dropped
  uint64_t write_errors = 0;
  uint64_t icmp_errors_sent = 0;     // ICMP time exceeded for TTL drops (RFC 1812 §5.3.1)
  uint64_t icmp_errors_limited = 0;  // not sent: over the rate limit (RFC 1812 §4.3.2.8)
  uint64_t offload_finished = 0;     // offloaded packets finished in software (NormalizeOffload)
  uint64_t offload_malformed = 0;    // offloaded packets that could not be, dropped
};

struct GatewayStatus : stack::StatusPart {
  /// Rows listed per table; more are counted ("... and N more").
  static constexpr size_t kMaxRows = 1000;

  /// A link's offload state (IFF_VNET_HDR) and its counters (packets).
  struct Offload {
    static Offload From(const tun::Link& link);
    bool enabled = false;
    uint64_t rx_super_packets = 0, tx_super_packets = 0, tx_segmented_in_software = 0, checksums_in_software = 0;
  };
  struct Session {
    nat::Protocol protocol = nat::Protocol::kUdp;
    nat::Endpoint internal, external, remote, gateway_endpoint;  // gateway_endpoint {0,0} for NAPT
    std::string state;  // TCP: the tracking state's name; UDP, ICMP: "OPEN"
    uint64_t idle_ms = 0;
    bool dpm = false;
  };
  struct Mapping {
    nat::Protocol protocol = nat::Protocol::kUdp;
    nat::Endpoint internal;  // {0,0} for a DPM mapping (its sessions have the internal endpoints)
    nat::Endpoint external;
    std::string made_by;     // nat::MappingOriginName
    std::optional<uint64_t> lifetime_left_ms;  // explicit mappings (PCP MAP, NAT-PMP) only
    uint32_t sessions = 0;
    bool dpm = false, fixed = false;
    std::vector<nat::RemoteFilter> filters;  // RFC 6887 §13.3; empty: endpoint-independent
  };

  uint32_t epoch_s = 0;
  GatewayCounters counters;
  Offload inside, outside;
  std::array<uint64_t, static_cast<size_t>(nat::DropReason::kCount)> nat_drops{};  // [0] unused
  std::array<uint64_t, 14> pcp_results{};  // replies by PCP result code 0..13 (RFC 6887 §7.4)
  uint64_t natpmp_requests = 0;
  size_t session_count = 0, mapping_count = 0;
  size_t sessions_seen = 0, mappings_seen = 0;  // rows the tables had when listed
  std::vector<Session> sessions;                // the first kMaxRows of them
  std::vector<Mapping> mappings;

  /// Adds a row of each table while fewer than kMaxRows are listed; counts every one.
  void AddSession(const nat::NatEngine::SessionInfo& s);
  void AddMapping(const nat::NatEngine::MappingInfo& m);

  void AppendText(std::string& out) const override;
  /// The member "gateway": {epoch, counters, offload, nat_drops, pcp_results, sessions, mappings}.
  void AddJson(stack::StatusJson& report) const override;
};

}  // namespace dpm::gateway

#endif  // DPM_GATEWAY_GATEWAY_STATUS_H_
