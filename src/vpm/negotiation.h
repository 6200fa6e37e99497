// Cooperative virtual port multiplexing: the negotiation of a hidden port between two VPMs
// before a connection (the virtual port multiplexing patent, Figs. 6-7: "the new port … has
// been negotiated between both VPMs … The first and second VPMs register or record the port
// translation"). docs/vpm.md "Negotiation" documents the message and the errno table.
//
// The message is a PCP request and response (RFC 6887 §7) with the private-use opcode VPM (96,
// dpm/pcp.h VpmBody), sent over UDP to the server side's negotiation port (5351 unless the
// configurator says otherwise), so tshark decodes its header as PCP. The client side asks for
// (protocol, virtual port, AID) for a connection (TCP) or association (a connected UDP socket)
// from its client port; the server side answers the hidden port of that AID's virtual stream
// and records a pass-through flow (the connection arrives on the hidden port, and its answers
// leave from it); the client side records a client flow (Multiplexer::AddClientFlow) and
// connects: its program sees the virtual port, the wire the hidden one, and the server program
// the virtual port again.
//
// Sans-I/O: bytes in, bytes out, time and nonces injected.
#ifndef DPM_VPM_NEGOTIATION_H_
#define DPM_VPM_NEGOTIATION_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "dpm/pcp.h"
#include "vpm/configurator.h"
#include "vpm/multiplexer.h"
#include "vpm/virtual_ports.h"

namespace dpm::vpm {

/// Result code (private use, RFC 6887 §19.4 "PCP Result Codes" 192-254): the AID has no socket
/// on the virtual port (or the port is not multiplexed there). The client's connect() gets
/// ECONNREFUSED, as from a closed port.
inline constexpr uint8_t kResultNoListener = 192;
/// "VPM_NO_LISTENER" for kResultNoListener, else pcp::ResultName.
const char* NegotiationResultName(uint8_t result);
/// The errno a client's connect() gets for a negotiation's result code (docs/vpm.md "errno"):
/// 0 for SUCCESS; EACCES for NOT_AUTHORIZED (as the DPM driver maps it, docs/api.md);
/// ECONNREFUSED for VPM_NO_LISTENER; EAGAIN for NO_RESOURCES; EPROTO for anything else (the
/// peer is no VPM, or refused the message).
int NegotiationErrno(uint8_t result);

/// Longest a server keeps a negotiated flow waiting for its first packet, seconds.
inline constexpr uint32_t kMaxNegotiatedWaitS = 60;

/// Counters of the server side, by result code sent (and requests dropped unanswered).
struct NegotiationServerCounters {
  uint64_t requests = 0;
  uint64_t dropped = 0;  // not answered (RFC 6887 §8.3: too short, or a response)
  absl::flat_hash_map<uint8_t, uint64_t> results;
};

/// Server side: answers one negotiation request. `request` is a UDP payload from
/// `source`:`source_port` (host order) to our `local_address`; `epoch` is the PCP epoch time
/// (seconds). On SUCCESS a pass-through flow (Multiplexer::AddNegotiatedFlow) is recorded for
/// the connection from `source`:client port to `local_address`:hidden port. Checks, in order:
/// the PCP parse (dpm/pcp.h, Server::kVpm: any opcode but VPM is UNSUPP_OPCODE), the client
/// address is the packet's source (ADDRESS_MISMATCH), `source` may negotiate
/// (Dispatcher::AcceptsNegotiation, else NOT_AUTHORIZED), protocol TCP or UDP
/// (UNSUPP_PROTOCOL), a
/// valid AID and a client port (MALFORMED_REQUEST), the virtual port is multiplexed here and
/// the AID has a stream on it (VPM_NO_LISTENER), the flow could be recorded
/// (NO_RESOURCES). A request repeated (a retransmission) gets the same answer. Returns the
/// response; empty means send nothing.
std::vector<uint8_t> AnswerNegotiation(uint64_t now_ms, uint32_t epoch, absl::Span<const uint8_t> request,
                                       uint32_t source, uint32_t local_address, const Dispatcher& dispatcher,
                                       const VirtualPortTable& ports, Multiplexer& mux,
                                       NegotiationServerCounters* counters);

/// Client side: the negotiations in flight, retransmitted until answered or timed out.
class NegotiationClient {
 public:
  /// One negotiation's end.
  struct Outcome {
    uint64_t id = 0;
    int error = 0;             // 0, or the errno for connect() (NegotiationErrno, ETIMEDOUT)
    uint8_t result = 0;        // the PCP result code (0 with ETIMEDOUT)
    uint16_t hidden_port = 0;  // on success, host order
  };
  /// A request to send now.
  struct Send {
    uint64_t id;
    uint32_t local_address, peer_address;  // host order
    std::vector<uint8_t> bytes;            // the UDP payload
  };

  /// `timeout_ms`: how long a negotiation may take in all (retransmissions included); the
  /// first retransmission comes after 250 ms, each next after twice the wait before.
  explicit NegotiationClient(uint64_t timeout_ms) : timeout_ms_(timeout_ms) {}

  /// Starts negotiation `id` (the caller's, unique among those in flight) for a connection
  /// from `local_address`:`client_port` to `peer_address`, virtual port `key`, AID `aid`.
  /// `nonce` comes from the caller's random source (RFC 6887 §11.1). Returns the request to
  /// send first.
  Send Start(uint64_t now_ms, uint64_t id, PortKey key, absl::string_view aid, uint32_t local_address,
             uint16_t client_port, uint32_t peer_address, const std::array<uint8_t, 12>& nonce);
  /// A UDP payload from `from_address` (host order). The outcome of the negotiation it answers
  /// (the same nonce, peer, virtual port, client port and AID), or nullopt when it answers none
  /// (dropped, counted in `unmatched`).
  std::optional<Outcome> OnResponse(absl::Span<const uint8_t> bytes, uint32_t from_address);
  /// Retransmissions due at `now_ms` (appended to *sends) and negotiations that timed out.
  std::vector<Outcome> Poll(uint64_t now_ms, std::vector<Send>* sends);
  /// The earliest time Poll has something to do.
  std::optional<uint64_t> NextDeadline() const;
  /// Forgets negotiation `id` (its socket closed).
  void Cancel(uint64_t id) { pending_.erase(id); }

  size_t in_flight() const { return pending_.size(); }
  uint64_t sent() const { return sent_; }
  uint64_t retransmitted() const { return retransmitted_; }
  uint64_t timeouts() const { return timeouts_; }
  uint64_t unmatched() const { return unmatched_; }
  /// Answers received, by result code.
  const absl::flat_hash_map<uint8_t, uint64_t>& results() const { return results_; }

 private:
  struct Pending {
    uint32_t local_address, peer_address;
    pcp::VpmBody body;
    std::vector<uint8_t> bytes;
    uint64_t next_send_ms, give_up_ms, wait_ms;
  };
  const uint64_t timeout_ms_;
  absl::flat_hash_map<uint64_t, Pending> pending_;
  uint64_t sent_ = 0, retransmitted_ = 0, timeouts_ = 0, unmatched_ = 0;
  absl::flat_hash_map<uint8_t, uint64_t> results_;
};

}  // namespace dpm::vpm

#endif  // DPM_VPM_NEGOTIATION_H_
