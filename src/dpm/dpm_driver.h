// The DPM driver (the DPM patent, claims 1-5, 11): the client side of the setup exchange.
// Before an application session to an address outside the private network starts, the
// driver asks the gateway's DPM server (PCP PEER, docs/pcp.md) for a registered address and
// port; the reply names the gateway endpoint the session's packets are aimed at. The driver
// renews each grant at half its lifetime, releases it (lifetime 0) when the session ends, and
// asks again for every live grant when the gateway's epoch shows it restarted (RFC 6887 §8.5).
//
// Sans-I/O: Begin()/Release()/OnReply() and Poll(now) return the datagrams to send to the
// DPM server and the events for the sessions; the caller owns the UDP socket and the clock.
#ifndef DPM_DPM_DPM_DRIVER_H_
#define DPM_DPM_DPM_DRIVER_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "nat/nat_engine.h"
#include "dpm/pcp.h"

namespace dpm::driver {

struct DriverConfig {
  uint32_t server_address = 0;  // the gateway's private address (host byte order)
  uint16_t server_port = pcp::kDpmPort;
  uint32_t client_address = 0;  // this host's private address, sent as the PCP client address
  uint32_t lifetime_s = 600;    // lifetime asked for; renewed at half of what was granted
  uint64_t first_retry_ms = 250;  // retransmission: doubles each time (RFC 6887 §8.1.1 style)
  int max_tries = 5;            // then the setup fails with a timeout
};

/// What happened to a session's grant.
struct Event {
  enum class Kind { kGranted, kFailed, kTimedOut, kLost };
  Kind kind;
  uint64_t id;
  nat::Endpoint external;          // kGranted: the registered address and port (claim 11)
  nat::Endpoint gateway_endpoint;  // kGranted: where to aim the session (claim 5)
  uint32_t lifetime_s = 0;
  pcp::ResultCode result = pcp::ResultCode::kSuccess;  // kFailed
};

struct Outgoing {
  std::vector<uint8_t> payload;  // one PCP request, to the DPM server
  /// The IPv4 source to send it from (host byte order): the session's internal address, which
  /// is also the request's PCP client address — the server refuses a request whose client
  /// address is not its source (ADDRESS_MISMATCH, RFC 6887 §8.1).
  uint32_t source = 0;
};

class Driver {
 public:
  explicit Driver(DriverConfig config, uint64_t nonce_seed);

  /// Starts the setup exchange for a session from `internal_port` to `remote` (host byte
  /// order). `port_fixed`: the application bound the port explicitly (or asked for it to be
  /// kept), so it is not replaceable (claims 1-4). `internal_address`: the socket's own
  /// address when it has one (docs/design.md §7; host byte order), so that each address gets its own
  /// mapping; 0 means the host's (config.client_address). Returns the session's id.
  uint64_t Begin(uint64_t now_ms, nat::Protocol protocol, uint16_t internal_port, nat::Endpoint remote,
                 bool port_fixed, uint32_t internal_address = 0);
  /// Ends a session: a granted one is released with lifetime 0 (sent once, not retried).
  void Release(uint64_t now_ms, uint64_t id);
  /// A datagram from the DPM server. Unknown nonces and malformed replies are ignored.
  void OnReply(uint64_t now_ms, absl::Span<const uint8_t> payload);
  /// Datagrams due now (first sends, retransmissions, renewals) and events since the last call.
  void Poll(uint64_t now_ms, std::vector<Outgoing>* out, std::vector<Event>* events);
  /// When Poll() next has work; nullopt when nothing is pending.
  std::optional<uint64_t> NextDeadline() const;

  size_t session_count() const { return sessions_.size(); }
  uint64_t ignored_replies() const { return ignored_replies_; }
  /// Times a reply's epoch showed the gateway had restarted (RFC 6887 §8.5).
  uint64_t gateway_restarts() const { return gateway_restarts_; }

 private:
  struct Session {
    uint32_t internal_address;  // PCP client address and source of its requests
    nat::Protocol protocol;
    uint16_t internal_port;
    nat::Endpoint remote;
    bool port_fixed;
    std::array<uint8_t, 12> nonce;
    bool granted = false;
    nat::Endpoint external, gateway_endpoint;
    uint64_t next_send_ms = 0;   // next (re)transmission or renewal
    uint64_t retry_ms = 0;
    int tries = 0;
    bool in_flight = false;      // a request awaits its answer
  };
  Outgoing EncodePeer(const Session& s, uint32_t lifetime) const;

  DriverConfig config_;
  uint64_t next_id_ = 1;
  uint64_t nonce_state_;
  absl::flat_hash_map<uint64_t, Session> sessions_;
  std::vector<Outgoing> pending_out_;
  std::vector<Event> pending_events_;
  std::optional<uint32_t> last_epoch_;
  uint64_t last_epoch_at_ms_ = 0;
  uint64_t ignored_replies_ = 0;
  uint64_t gateway_restarts_ = 0;
};

}  // namespace dpm::driver

#endif  // DPM_DPM_DPM_DRIVER_H_
