// The DPM server (the DPM patent; docs/design.md §6): answers the setup exchange — PCP (RFC 6887)
// on the well-known DPM port 1080 and on 5351, and the NAT-PMP (RFC 6886) subset on 5351 —
// by reserving registered addresses and ports in the NAT engine. Sans-I/O: a request datagram
// and the time in, the reply datagram out.
#ifndef DPM_DPM_DPM_SERVER_H_
#define DPM_DPM_DPM_SERVER_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "nat/nat_engine.h"
#include "dpm/pcp.h"

namespace dpm::server {

struct DpmServerCounters {
  std::array<uint64_t, 14> pcp_results{};  // replies sent, by PCP result code 0..13
  uint64_t natpmp_requests = 0;
  uint64_t dropped = 0;  // requests too mangled to answer (RFC 6887 §8.3: silently dropped)
};

class DpmServer {
 public:
  /// `start_ms`: the server's start time on the same clock as `now_ms` below; the PCP epoch
  /// (RFC 6887 §8.5) counts seconds from it, so a restarted gateway shows a small epoch and
  /// drivers re-create their mappings.
  /// NAT-PMP's public address (RFC 6886 §3.2) is the one each client is paired with
  /// (NatEngine::ExternalAddressFor), so the server keeps none of its own.
  DpmServer(nat::NatEngine& engine, uint64_t start_ms) : engine_(engine), start_ms_(start_ms) {}

  /// Handles one request that arrived on the inside link from `client` (the UDP source,
  /// host byte order) to `server_port` (1080 or 5351). Returns the reply payload to send
  /// back to `client`, or an empty vector to send nothing. Never creates state for a
  /// request it cannot parse, nor for one whose client address is not the packet's source
  /// (ADDRESS_MISMATCH, RFC 6887 §8.3).
  std::vector<uint8_t> Handle(uint64_t now_ms, nat::Endpoint client, uint16_t server_port,
                              absl::Span<const uint8_t> request);

  /// The epoch (seconds since start) at `now_ms`.
  uint32_t Epoch(uint64_t now_ms) const { return static_cast<uint32_t>((now_ms - start_ms_) / 1000); }
  const DpmServerCounters& counters() const { return counters_; }

 private:
  std::vector<uint8_t> HandlePcp(uint64_t now_ms, nat::Endpoint client, absl::Span<const uint8_t> request);
  std::vector<uint8_t> HandleNatPmp(uint64_t now_ms, nat::Endpoint client, absl::Span<const uint8_t> request);

  nat::NatEngine& engine_;
  uint64_t start_ms_;
  DpmServerCounters counters_;
};

/// The PCP result for a NAT engine refusal.
pcp::ResultCode ResultFor(nat::GrantError error);

}  // namespace dpm::server

#endif  // DPM_DPM_DPM_SERVER_H_
