// The DHCPv4 client of one dpm socket (RFC 2131 §4.4, Figure 5): it obtains a lease of its
// own from a DHCP server on the shared Ethernet link, renews it, rebinds it, releases it when
// the socket closes, and reports when it is lost so the owner can close the socket
// (docs/design.md §7: a socket whose lease ends without renewal is closed).
//
// Many clients share one link, one MAC address (chaddr) and UDP port 68; what sets them apart
// is the client identifier (option 61, which the owner makes unique per socket, RFC 2131
// §4.2: the server keys leases by it) and the xid of each transaction, by which
// DhcpClientSet routes replies.
//
// Sans-I/O: the owner passes the time (milliseconds on a steady clock, like the other cores)
// and received UDP payloads in, and gets DhcpActions back: UDP payloads to send from port 68
// to port 67 with their IP source and destination, and events. NextDeadline() says when to
// call OnTimer() next. No clock, no sockets, no randomness of its own (config.random).
//
// States (RFC 2131 §4.4, Figure 5; INIT-REBOOT and REBOOTING are not used, a socket never
// asks for an address it held before):
//   INIT        idle: not started, released, lost; or waiting to restart after Decline()
//   SELECTING   DHCPDISCOVER sent, waiting for a DHCPOFFER (the first acceptable one wins)
//   REQUESTING  DHCPREQUEST (options 50 + 54) broadcast, waiting for DHCPACK / DHCPNAK
//   BOUND       holding the lease until T1
//   RENEWING    from T1: DHCPREQUEST (ciaddr) unicast to the server that granted the lease
//   REBINDING   from T2: DHCPREQUEST (ciaddr) broadcast to any server, until the lease expires
//
// Timers:
//  - Acquisition (SELECTING, REQUESTING): retransmission after 4, 8, 16, 32, 64, 64 … s, each
//    randomized by a uniform ±1 s (RFC 2131 §4.1). The owner gets Lost(kTimedOut) — and maps
//    it to ETIMEDOUT — `acquire_timeout_ms` after Start(), 16 s by default: DHCPDISCOVER
//    goes out at 0 s, 4±1 s and 12±2 s, so the last try still has 2 s to be answered. A
//    DHCPNAK while REQUESTING restarts with a DHCPDISCOVER (§3.1 step 5) within the same
//    16 s.
//  - T1 and T2 come from options 58 and 59, else 0.5 and 0.875 of the lease (§4.4.5); a server
//    whose values break T1 <= T2 <= lease gets the defaults for both. The lease, T1 and T2
//    run from the moment the first DHCPREQUEST of the transaction was sent (§4.4.1, §4.4.5).
//  - RENEWING and REBINDING retransmit after half the time left until T2 (resp. the lease's
//    end), at least 60 s (§4.4.5), never past that point.
//  - An infinite lease (0xffffffff, §3.3) is never renewed and never expires.
//
// What it accepts (everything else is dropped and counted, see DhcpClientCounters): a
// BOOTREPLY with the xid of the current transaction, htype 1 / hlen 6 and our chaddr, a
// client identifier equal to ours when the server echoes one (RFC 6842), a message type the
// state expects, and for DHCPOFFER/DHCPACK a non-zero yiaddr, a server identifier and a lease
// time (RFC 2131 §4.3.1 Table 3 makes both MUST). In REQUESTING a DHCPNAK counts only from
// the server we asked; in RENEWING/REBINDING a DHCPACK must keep our address.
//
// The BROADCAST flag is set on every DHCPDISCOVER and DHCPREQUEST (§4.1): every socket's
// address lives on one link whose stack has not configured an address it is still being
// offered, so a server's unicast to yiaddr could not be delivered to the right client; a
// broadcast reply reaches the link and DhcpClientSet routes it by xid.
#ifndef DPM_DHCP_DHCP_CLIENT_H_
#define DPM_DHCP_DHCP_CLIENT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "dhcp/dhcp_message.h"

namespace dpm::dhcp {

inline constexpr uint32_t kLimitedBroadcast = 0xffffffff;  // 255.255.255.255

struct DhcpClientConfig {
  /// The link's MAC address, shared by every client on the link (chaddr, htype 1, hlen 6).
  std::array<uint8_t, 6> chaddr{};
  /// Option 61: a type byte and the identifier, 2 to 255 bytes (RFC 2132 §9.14). It must be
  /// unique among the clients on the link: the server tells leases apart by it.
  std::vector<uint8_t> client_identifier;
  /// Uniform 32-bit random numbers for xids and the ±1 s jitter. Required. The owner seeds it
  /// from the OS's random source; tests pass a fixed sequence.
  std::function<uint32_t()> random;
  /// When set, an xid for which it returns true is drawn again (up to 16 times), so clients
  /// sharing a link never share an xid. DhcpClientSet installs it.
  std::function<bool(uint32_t)> xid_in_use;
  /// Copied into every action, so an owner of many clients knows whose it is.
  uint64_t tag = 0;

  uint64_t acquire_timeout_ms = 16'000;           // Start() to Lost(kTimedOut)
  uint64_t first_retransmit_ms = 4'000;           // RFC 2131 §4.1
  uint64_t max_retransmit_ms = 64'000;            // RFC 2131 §4.1
  uint64_t retransmit_jitter_ms = 1'000;          // uniform in [-jitter, +jitter]
  uint64_t min_renew_retransmit_ms = 60'000;      // RFC 2131 §4.4.5
  uint64_t decline_restart_ms = 10'000;           // RFC 2131 §3.1 step 5, after Decline()
  /// Option 51 in DHCPDISCOVER/DHCPREQUEST when non-zero (a wish; the server decides).
  uint32_t requested_lease_s = 0;
  /// Option 57 in DHCPDISCOVER/DHCPREQUEST when >= 576 (RFC 2132 §9.10).
  uint16_t maximum_message_size = 0;
};

/// The client's state (RFC 2131 §4.4, Figure 5).
enum class DhcpState { kInit, kSelecting, kRequesting, kBound, kRenewing, kRebinding };
/// "INIT", "SELECTING", "REQUESTING", "BOUND", "RENEWING", "REBINDING".
const char* DhcpStateName(DhcpState state);

/// A lease held. Addresses in host byte order; times in ms on the owner's clock.
struct DhcpLease {
  uint32_t address = 0;       // yiaddr
  uint32_t subnet_mask = 0;   // option 1; 0 when the server sent none
  uint32_t router = 0;        // option 3, the first; 0 when none
  std::vector<uint32_t> domain_name_servers;  // option 6
  uint32_t server = 0;        // option 54: where renewals and the DHCPRELEASE go
  uint32_t lease_s = 0;       // option 51; kInfiniteLease = infinite
  uint32_t t1_s = 0;          // after the checks and defaults above
  uint32_t t2_s = 0;
  uint64_t start_ms = 0;      // when the DHCPREQUEST that obtained it was first sent
  /// start + lease, T1, T2; UINT64_MAX for an infinite lease.
  uint64_t expiry_ms = 0;
  uint64_t t1_ms = 0;
  uint64_t t2_ms = 0;

  friend bool operator==(const DhcpLease&, const DhcpLease&) = default;
};

/// One UDP datagram to send, from port 68 to port 67 (RFC 2131 §4.1).
struct DhcpTransmit {
  uint64_t tag = 0;
  MessageType type = MessageType::kDiscover;  // for logs and tests
  std::vector<uint8_t> payload;  // the DHCP message (UDP payload)
  uint32_t source = 0;           // IP source, host order: 0.0.0.0 until a lease is held
  uint32_t destination = 0;      // IP destination: kLimitedBroadcast or the server
  /// True when `destination` is 255.255.255.255: send to the Ethernet broadcast address.
  bool broadcast = false;
};

/// Why a lease (or the attempt to get one) ended. The owner closes the socket with an error:
/// kTimedOut → ETIMEDOUT; kNak, kExpired → the address is gone (e.g. ENETDOWN/ECONNRESET,
/// the owner's choice).
enum class LostReason {
  kTimedOut,  // no lease within acquire_timeout_ms of Start()
  kNak,       // DHCPNAK while RENEWING or REBINDING (§4.4.5)
  kExpired,   // the lease ran out without a DHCPACK (§4.4.5)
};
/// "timed out", "NAK", "expired".
const char* LostReasonName(LostReason reason);

struct DhcpEvent {
  enum class Kind {
    kBound,    // a lease obtained (REQUESTING → BOUND): `lease` is it
    kRenewed,  // the lease extended (RENEWING/REBINDING → BOUND): `lease` is the new one
    kLost,     // back in INIT, holding nothing: `reason`; `lease` the old one (address 0 if none)
  };
  uint64_t tag = 0;
  Kind kind = Kind::kBound;
  DhcpLease lease;
  LostReason reason = LostReason::kTimedOut;  // kLost
  std::string server_message;                 // kLost by kNak: the server's option 56, if any
};

/// What a call produced; calls append, so one DhcpActions can gather several calls.
struct DhcpActions {
  std::vector<DhcpTransmit> transmits;
  std::vector<DhcpEvent> events;
  void clear() {
    transmits.clear();
    events.clear();
  }
};

/// Received messages dropped, by reason, and messages sent.
struct DhcpClientCounters {
  uint64_t malformed = 0;         // ParseDhcpMessage refused it
  uint64_t not_reply = 0;         // op is not BOOTREPLY
  uint64_t wrong_xid = 0;         // no transaction open, or another one's xid
  uint64_t wrong_chaddr = 0;      // htype/hlen/chaddr not ours
  uint64_t wrong_client_id = 0;   // echoed option 61 differs from ours
  uint64_t unexpected_type = 0;   // no option 53, or a type the state does not expect
  uint64_t invalid_lease = 0;     // OFFER/ACK without yiaddr, server id or lease time; or a
                                  // renewal ACK for another address; or a NAK from another server
  uint64_t offers = 0;            // DHCPOFFERs accepted
  uint64_t acks = 0;              // DHCPACKs accepted
  uint64_t naks = 0;              // DHCPNAKs accepted
  uint64_t transmitted = 0;       // messages handed to the owner, retransmissions included
  uint64_t retransmissions = 0;

  friend bool operator==(const DhcpClientCounters&, const DhcpClientCounters&) = default;
};

class DhcpClient {
 public:
  /// Checks the config: client identifier 2-255 bytes, random set, first <= max retransmit.
  /// kInvalidArgument naming the field otherwise.
  static absl::StatusOr<DhcpClient> Create(DhcpClientConfig config);

  /// INIT → SELECTING: sends a DHCPDISCOVER. kFailedPrecondition unless in INIT (a pending
  /// restart after Decline() is cancelled and replaced by this start).
  absl::Status Start(uint64_t now_ms, DhcpActions* out);
  /// A UDP payload received on port 68. Whatever is not for this client is counted and dropped.
  void OnMessage(uint64_t now_ms, absl::Span<const uint8_t> payload, DhcpActions* out);
  /// The same for a message already parsed (DhcpClientSet parses once and routes).
  void OnMessage(uint64_t now_ms, const DhcpMessage& message, DhcpActions* out);
  /// Does what is due at `now_ms` (retransmission, T1, T2, expiry, give-up, restart); a call
  /// before NextDeadline() does nothing.
  void OnTimer(uint64_t now_ms, DhcpActions* out);
  /// The socket closes. Holding a lease (BOUND, RENEWING, REBINDING): a DHCPRELEASE (ciaddr,
  /// options 54 and 61; §4.4.6) unicast from the address to the server, sent once. In
  /// SELECTING/REQUESTING nothing is sent (the server keeps a lease it may just have granted
  /// until it expires). Then INIT, no event.
  void Release(uint64_t now_ms, DhcpActions* out);
  /// The owner found the address in use after BOUND (an ARP probe answered, §4.4.1): a
  /// DHCPDECLINE (options 50, 54, 61) broadcast from 0.0.0.0, and INIT with a new Start()
  /// `decline_restart_ms` later (§3.1 step 5). kFailedPrecondition unless BOUND.
  absl::Status Decline(uint64_t now_ms, DhcpActions* out);
  /// When OnTimer() next has work; nullopt when none (idle INIT, or an infinite lease).
  std::optional<uint64_t> NextDeadline() const;

  DhcpState state() const { return state_; }
  /// The xid of the open transaction; 0 when none (INIT, BOUND).
  uint32_t xid() const { return transaction_open() ? xid_ : 0; }
  /// The lease held (BOUND, RENEWING, REBINDING).
  const std::optional<DhcpLease>& lease() const { return lease_; }
  const DhcpClientCounters& counters() const { return counters_; }
  const DhcpClientConfig& config() const { return config_; }

 private:
  explicit DhcpClient(DhcpClientConfig config) : config_(std::move(config)) {}

  bool transaction_open() const {
    return state_ == DhcpState::kSelecting || state_ == DhcpState::kRequesting ||
           state_ == DhcpState::kRenewing || state_ == DhcpState::kRebinding;
  }
  uint32_t NewXid();
  int64_t Jitter();
  uint64_t AcquireRetransmitDelay() const;
  void BeginAcquisition(uint64_t now_ms, DhcpActions* out);
  void SendDiscover(uint64_t now_ms, DhcpActions* out);
  void SendRequest(uint64_t now_ms, DhcpActions* out);
  void ScheduleRenewRetransmit(uint64_t now_ms, uint64_t until_ms);
  void EnterBound(uint64_t now_ms, const DhcpMessage& ack, DhcpActions* out);
  void Lose(LostReason reason, std::string server_message, DhcpActions* out);
  DhcpMessage BaseRequest(MessageType type, uint64_t now_ms) const;
  void Emit(DhcpMessage message, uint32_t source, uint32_t destination, DhcpActions* out);
  void AppendEvent(DhcpEvent::Kind kind, DhcpActions* out);

  DhcpClientConfig config_;
  DhcpState state_ = DhcpState::kInit;
  uint32_t xid_ = 0;
  // Acquisition.
  uint64_t acquire_deadline_ms_ = 0;
  uint64_t process_start_ms_ = 0;          // 'secs' counts from here
  std::optional<uint64_t> request_first_sent_ms_;  // the current transaction's first DHCPREQUEST
  uint32_t offered_address_ = 0;
  uint32_t selected_server_ = 0;
  // Retransmission of the open transaction (or T1/T2/expiry/restart when none is due).
  std::optional<uint64_t> retransmit_at_ms_;
  int retransmit_count_ = 0;
  std::optional<uint64_t> restart_at_ms_;  // INIT after Decline()
  std::optional<DhcpLease> lease_;
  DhcpClientCounters counters_;
};

/// The clients of one link, keyed by the owner's id (e.g. the socket's), with replies routed
/// by xid in constant time: parse once, find the client whose open transaction has that xid.
/// Deadlines are kept ordered, so OnTimer() touches only the clients that are due.
class DhcpClientSet {
 public:
  DhcpClientSet() = default;
  // The clients' xid_in_use checks point at this set.
  DhcpClientSet(const DhcpClientSet&) = delete;
  DhcpClientSet& operator=(const DhcpClientSet&) = delete;

  /// Adds a client; `config.tag` is set to `id` and `config.xid_in_use` to this set's check.
  /// kAlreadyExists for a used id, kInvalidArgument for a bad config (DhcpClient::Create).
  absl::Status Add(uint64_t id, DhcpClientConfig config);
  /// Forgets a client without sending anything (call Release() first to free its lease).
  void Remove(uint64_t id);
  /// nullptr when unknown. Calls made directly on the client must be followed by Refresh(id).
  DhcpClient* Find(uint64_t id);
  const DhcpClient* Find(uint64_t id) const;
  void Refresh(uint64_t id);

  absl::Status Start(uint64_t id, uint64_t now_ms, DhcpActions* out);
  void Release(uint64_t id, uint64_t now_ms, DhcpActions* out);
  absl::Status Decline(uint64_t id, uint64_t now_ms, DhcpActions* out);
  /// A UDP payload received on port 68 of the link. Returns the id of the client it went to,
  /// or nullopt (counted: `malformed` or `unrouted`).
  std::optional<uint64_t> OnMessage(uint64_t now_ms, absl::Span<const uint8_t> payload, DhcpActions* out);
  /// Runs OnTimer() of every client due at `now_ms`.
  void OnTimer(uint64_t now_ms, DhcpActions* out);
  std::optional<uint64_t> NextDeadline() const;

  size_t size() const { return clients_.size(); }
  uint64_t malformed() const { return malformed_; }
  uint64_t unrouted() const { return unrouted_; }  // parsed, but no open transaction has its xid

 private:
  struct Entry {
    std::unique_ptr<DhcpClient> client;
    uint32_t indexed_xid = 0;                    // 0: not in by_xid_
    std::optional<uint64_t> indexed_deadline;    // in deadlines_ when set
  };
  void Unindex(uint64_t id, Entry& entry);

  absl::flat_hash_map<uint64_t, Entry> clients_;
  absl::flat_hash_map<uint32_t, uint64_t> by_xid_;
  std::set<std::pair<uint64_t, uint64_t>> deadlines_;  // (deadline ms, id)
  uint64_t malformed_ = 0;
  uint64_t unrouted_ = 0;
};

}  // namespace dpm::dhcp

#endif  // DPM_DHCP_DHCP_CLIENT_H_
