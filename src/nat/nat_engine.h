// The NAT engine of the DPM gateway (the DPM patent; docs/design.md §6; docs/nat.md): translates
// IPv4 packets between the private (inside) network and the registered (outside) addresses,
// and holds the sessions the DPM server sets up.
//
//   - DPM sessions (claims 5-10, 14, 20-23): a DPM driver aims a session's packets at a
//     gateway endpoint (the gateway's private address and a port chosen here); the engine
//     rewrites them to registered address:port -> true destination through a one-to-one
//     table, and replies back. Sessions sharing a fixed external port are told apart by their
//     remote endpoint (RFC 7857 §3 port overlapping).
//   - Plain NAPT for hosts without a driver, meeting RFC 4787 (UDP), RFC 5382 (TCP), RFC 5508
//     (ICMP) and RFC 7857: endpoint-independent mapping and filtering, paired address pooling,
//     port range and parity preservation, random ports (RFC 6056), hairpinning, the minimum
//     timers, the RFC 6146 TCP state machine, ICMP query mappings and ICMP error translation.
//   - Explicit mappings for PCP MAP and NAT-PMP.
//   - IPv4 fragments, in order and out of order (RFC 4787 REQ-14; the method of RFC 6146 §3.5):
//     the first fragment is translated like any packet and leaves a record by which the later
//     fragments are translated; fragments that come before their first fragment are held
//     (bounded) and released, translated, when it comes (TakeReleasedFragments).
//
// Sans-I/O (design §4.3): packets are rewritten in place, time is passed in as milliseconds on
// any monotonic clock, and nothing here does I/O or reads a clock. Not thread-safe: one
// thread (the gateway's io_context) drives it.
//
// Checksums: the IPv4 header checksum of every packet is verified (kBadChecksum), and the ICMP
// checksum and the quoted IP header checksum of ICMP errors (RFC 5508 REQ-3). TCP and UDP
// checksums are not verified — that would cost a pass over every payload, and the incremental
// update (RFC 1624) keeps a wrong checksum wrong, so the end host still drops a corrupted
// segment. Every rewrite updates the IP, TCP, UDP and ICMP checksums incrementally.
#ifndef DPM_NAT_NAT_ENGINE_H_
#define DPM_NAT_NAT_ENGINE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "nat/fragments.h"
#include "nat/nat_config.h"
#include "nat/session_table.h"
#include "nat/verdict.h"

namespace dpm::nat {

// Protocol, Endpoint: nat/session_table.h.

class PortAllocator;
}  // namespace dpm::nat
namespace dpm::wire {
class ChecksumDelta;
class Ipv4View;
}  // namespace dpm::wire
namespace dpm::nat {

// NatConfig, ValidateNatConfig: nat/nat_config.h. Verdict, DropReason, Result: nat/verdict.h.

/// Errors of the control operations (the DPM server maps them to PCP result codes).
enum class GrantError : uint8_t {
  kNone,
  kCannotProvideExternal,  // a fixed port already used toward the same remote (claim 8; RFC 6887)
  kNoResources,            // max_sessions, or no free external port
  kUserExQuota,            // per_host_quota
  kUnsupportedProtocol,    // not TCP/UDP
  kNotAuthorized,          // internal endpoint not an inside host, or remote not an outside unicast endpoint
  kExcessiveRemotePeers,   // more FILTERs than kMaxFiltersPerMapping (RFC 6887 §13.3)
};
const char* GrantErrorName(GrantError error);

/// A PCP FILTER (RFC 6887 §13.3) on an explicit mapping: once a mapping has filters, only
/// remotes matching one of them may open sessions through it (others: DropReason::kFiltered).
/// Host byte order.
struct RemoteFilter {
  uint32_t address = 0;  // the remote prefix
  uint8_t prefix = 0;    // 0..32 bits of `address` that must match
  uint16_t port = 0;     // 0: any port
  bool Matches(Endpoint remote) const {
    const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    return (remote.address & mask) == (address & mask) && (port == 0 || port == remote.port);
  }
  friend bool operator==(const RemoteFilter&, const RemoteFilter&) = default;
};
/// Filters one mapping keeps; a request that would leave more gets kExcessiveRemotePeers.
inline constexpr size_t kMaxFiltersPerMapping = 8;

/// What a PCP MAP or NAT-PMP request asks of an explicit mapping.
struct MapRequest {
  Protocol protocol = Protocol::kUdp;
  Endpoint internal;
  Endpoint suggested_external;  // 0: no preference
  uint32_t lifetime_s = 0;      // 0 = delete
  MappingOrigin origin = MappingOrigin::kPcp;
  /// RFC 6887 §13.3: with `clear_filters` the mapping's filters are removed first (a FILTER of
  /// prefix length 0), then `filters` are added to those it has (repeats kept once).
  bool clear_filters = false;
  std::vector<RemoteFilter> filters;
};

/// A DPM setup (PCP PEER from a DPM driver, claims 1-5).
struct DpmRequest {
  Protocol protocol;
  Endpoint internal;            // the session's first port at the client
  Endpoint remote;              // the final destination
  Endpoint suggested_external;  // 0: no preference
  bool port_fixed = false;      // not replaceable (claims 3, 8)
  uint32_t lifetime_s = 0;      // 0 = release
};

struct DpmGrant {
  Endpoint external;            // registered address and port the session leaves from
  Endpoint gateway_endpoint;    // where the driver aims the session (claim 5); {0,0} for MAP
  uint32_t lifetime_s = 0;      // granted (clamped); 0 after a release
};

/// Data-path counters besides the drops.
struct NatCounters {
  uint64_t translated_out = 0;      // kForwardOutside
  uint64_t translated_in = 0;       // kForwardInside (hairpinned ones included)
  uint64_t hairpinned = 0;
  uint64_t to_gateway = 0;
  uint64_t icmp_errors_translated = 0;
  uint64_t sessions_created = 0;
  uint64_t sessions_expired = 0;    // timed out (released DPM sessions are not counted)
  uint64_t mappings_created = 0;
  uint64_t fragments_translated = 0;      // later fragments forwarded by their datagram's record
                                          // (released ones included; also in translated_out/in)
  uint64_t fragments_held = 0;            // kHeld
  uint64_t fragments_released = 0;        // held, then released by their first fragment
  uint64_t fragment_records_evicted = 0;  // replaced by newer ones at max_fragment_records
};

class NatEngine {
 public:
  explicit NatEngine(NatConfig config);
  ~NatEngine();
  NatEngine(const NatEngine&) = delete;
  NatEngine& operator=(const NatEngine&) = delete;

  /// Data path: `packet` is one IPv4 packet (bytes after its total length are ignored),
  /// rewritten in place when forwarded — addresses, ports / ICMP identifiers, the IP, TCP,
  /// UDP and ICMP checksums (incrementally), TTL decremented. TTL <= 1 on a packet to
  /// forward gives kDrop/kTtlExceeded with the packet untouched, so the caller can send ICMP
  /// time exceeded (wire::BuildIcmpError). Other drops may leave it partly rewritten.
  ///
  /// `partial_checksum` (checksum offload, docs/nat.md "Offload"): the packet is a whole
  /// TCP/UDP packet whose transport checksum field holds only the pseudo-header sum, to be
  /// completed by the link (wire::IsTransportOffload checked that); the field is updated
  /// for the address changes only. May be a TCP super-packet larger than any MTU.
  Result FromInside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum = false);
  Result FromOutside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum = false);

  /// Fragments (RFC 4787 REQ-14): a first fragment (offset 0, MF=1) is translated like a
  /// whole packet — it must hold the whole TCP/UDP/ICMP header (RFC 1858 §3.2), else
  /// kMalformed — and its outcome is recorded under (source, destination, protocol, IP
  /// identification, direction) of the packet as it arrived. A later fragment of that datagram
  /// gets the same verdict and addresses: IP addresses rewritten, IP header checksum updated
  /// (RFC 1624), TTL decremented (a datagram's L4 header, ports and checksum are in the first
  /// fragment only; the first fragment's L4 checksum update is right for the whole datagram).
  /// A later fragment with no record is held (kHeld) until its first fragment comes — then
  /// that call's Result::released counts the fragments it released — or until
  /// fragment_timeout_ms passes (kFragmentTimeout). Fragments for the gateway's own addresses
  /// go to it (kToGateway) untranslated, as before — except TCP/UDP to its inside address (a
  /// DPM gateway endpoint, perhaps) and anything to a pool address, which the first fragment
  /// decides (docs/nat.md "Fragments").
  ///
  /// Batches: results[i] is what FromInside / FromOutside on packets[i] gives, the packets
  /// taken in order; `results` is as long as `packets`. Faster on a big table: the table
  /// memory of up to 32 packets is prefetched before any of them is translated, so their
  /// cache misses overlap instead of adding up (as VPP's NAT does). Feed it what one read
  /// from the link returned.
  void FromInsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets, absl::Span<Result> results);
  void FromOutsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets, absl::Span<Result> results);
  /// The same with the offload flag of each packet: partial_checksum[i] means for packets[i]
  /// what FromInside's `partial_checksum` means (a whole TCP/UDP packet, perhaps a
  /// super-packet, whose checksum field holds the pseudo-header sum). As long as `packets`, or
  /// empty: all false (what the overloads above pass).
  void FromInsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                       absl::Span<const bool> partial_checksum, absl::Span<Result> results);
  void FromOutsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                        absl::Span<const bool> partial_checksum, absl::Span<Result> results);

  /// Hands every released fragment (see FromInside) to `fn`, oldest first, and forgets it;
  /// returns how many. `verdict` is the first fragment's: kForwardOutside or kForwardInside
  /// (translated, send it on that link), or kToGateway (untouched). Call it after a Result
  /// with released > 0, or once after a batch; until then the fragments count against
  /// max_held_fragment_bytes. `fn` may call into the engine.
  size_t TakeReleasedFragments(absl::FunctionRef<void(Verdict verdict, absl::Span<uint8_t> packet)> fn);
  /// Released fragments waiting for TakeReleasedFragments.
  size_t released_fragment_count() const;

  /// DPM setup: reserves a registered address (the suggested one when it is in the pool and
  /// can serve, else the host's paired address) and, if the port is replaceable, a new random
  /// port; a fixed port is kept and shared with other fixed-port sessions to other remotes.
  /// Installs the session so that packets from `internal` to `gateway_endpoint` leave as
  /// external -> remote and replies come back. Lifetime 0 releases (RFC 6887 §15: the reply
  /// then carries lifetime 0, also when there was nothing to release). The same (protocol,
  /// internal, remote) again renews and returns the same endpoints.
  std::variant<DpmGrant, GrantError> RequestDpm(uint64_t now_ms, const DpmRequest& request);

  /// PCP MAP and NAT-PMP: an explicit endpoint-independent mapping of `internal`, reachable
  /// from any remote until its lifetime ends. An existing mapping of `internal` (also one
  /// made by outbound traffic) is reused and its lifetime set; otherwise the suggested
  /// external endpoint when in the pool and free, else a random port like a replaceable one.
  /// Lifetime 0 deletes the explicit mapping (sessions still using it keep it as an implicit
  /// one until they end).
  std::variant<DpmGrant, GrantError> RequestMap(uint64_t now_ms, Protocol protocol, Endpoint internal,
                                                Endpoint suggested_external, uint32_t lifetime_s);
  /// The same, with who asks (listed by ForEachMapping) and the request's FILTERs (RFC 6887
  /// §13.3; errors: kExcessiveRemotePeers, and then nothing changes). Filters belong to the
  /// explicit mapping: they go when it is deleted or expires.
  std::variant<DpmGrant, GrantError> RequestMap(uint64_t now_ms, const MapRequest& request);

  /// The external address the host `internal_address` is paired with (RFC 4787 REQ-2: all its
  /// mappings use one pool address): the one its mappings have, or, for a host with none yet,
  /// the one its first mapping will get while that address has free ports. Host byte order; 0
  /// with an empty pool. What NAT-PMP announces to that host (RFC 6886 §3.2).
  uint32_t ExternalAddressFor(uint32_t internal_address) const;

  /// Examines at most `max_entries` session slots and as many mapping slots, continuing where
  /// the last call stopped, and removes what has expired; also removes up to `max_entries`
  /// expired fragment records and held datagrams (their fragments counted kFragmentTimeout).
  /// Returns sessions and explicit mappings removed. (A packet for an expired session or
  /// fragment record that no sweep removed yet is handled as if it were gone.) Also moves up
  /// to max_entries / 64 entries of each session-table index that is growing, so that a
  /// growth the data path left half done (no new sessions since) ends.
  size_t Sweep(uint64_t now_ms, size_t max_entries);
  /// When Sweep may next find something to expire: never later than the earliest deadline,
  /// possibly earlier (a refreshed session keeps its old deadline here until a sweep passes
  /// it). nullopt when there is nothing that can expire.
  std::optional<uint64_t> NextDeadline() const;

  struct SessionInfo {
    Protocol protocol;
    Endpoint internal, external, remote, gateway_endpoint;  // gateway_endpoint {0,0} for NAPT
    const char* state;   // TCP: TcpStateName; UDP, ICMP: "OPEN"
    uint64_t idle_ms;
    bool dpm;
  };
  void ForEachSession(uint64_t now_ms, absl::FunctionRef<void(const SessionInfo&)> fn) const;

  struct MappingInfo {
    Protocol protocol;
    Endpoint internal;         // {0,0} for a DPM mapping (its sessions have the internal endpoints)
    Endpoint external;
    uint32_t sessions;
    bool dpm;
    bool fixed;                // DPM: shared fixed port
    std::optional<uint64_t> lifetime_left_ms;  // explicit mappings
    MappingOrigin origin;      // who made it (an expired explicit mapping still in use: kTraffic)
    absl::Span<const RemoteFilter> filters;    // PCP FILTERs; empty: endpoint-independent
  };
  /// Every live mapping, in slot order. `fn` must not call into the engine.
  void ForEachMapping(uint64_t now_ms, absl::FunctionRef<void(const MappingInfo&)> fn) const;

  size_t session_count() const;
  size_t mapping_count() const;
  /// Slots of the session table's indexes (6 bytes each; NatConfig::reserve_sessions).
  size_t index_slots() const;
  /// Datagrams with a fragment record (first fragment seen, not yet complete or expired).
  size_t fragment_record_count() const;
  /// Fragments held for datagrams whose first fragment has not come, and those datagrams.
  size_t held_fragment_count() const;
  size_t held_datagram_count() const;
  /// Bytes held plus released-not-taken (bounded by max_held_fragment_bytes).
  size_t held_fragment_bytes() const;
  const std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& drops() const { return drops_; }
  const NatCounters& counters() const { return counters_; }
  const NatConfig& config() const { return config_; }
  bool IsExternalAddress(uint32_t address) const;

 private:
  struct Packet;  // a parsed packet (engine_packet.h)
  static constexpr uint32_t kNoPool = 0xffffffffu;  // a host not yet paired with a pool address
  struct Host {
    uint32_t pool_index = 0;  // paired pooling: the host's mappings use this pool address
    uint32_t count = 0;       // sessions + explicit mappings (the quota)
  };

  Result Drop(DropReason reason);
  Result ToGateway();
  // `hint`: the session a batch's prefetch stage found for this packet, or kNoIndex; used
  // only after checking it still holds the packet's key.
  Result FromInsideHinted(uint64_t now_ms, absl::Span<uint8_t> packet, uint32_t hint, bool partial_checksum = false);
  Result FromOutsideHinted(uint64_t now_ms, absl::Span<uint8_t> packet, uint32_t hint, bool partial_checksum = false);
  // `partial_checksum`: empty, or one flag per packet.
  void TranslateBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                      absl::Span<const bool> partial_checksum, absl::Span<Result> results, bool from_inside);
  // Data path (nat_engine.cc).
  static DropReason ParseTransport(Packet& p, bool from_inside);
  static void RewriteIp(Packet& p, uint32_t source, uint32_t destination, bool decrement_ttl,
                        wire::ChecksumDelta* pseudo_header);
  static void Rewrite(Packet& p, Endpoint source, Endpoint destination, bool decrement_ttl);
  // After the transport header was parsed (whole packets and first fragments).
  Result InsideParsed(uint64_t now_ms, Packet& p, bool for_gateway, uint32_t hint);
  Result OutsideParsed(uint64_t now_ms, Packet& p, bool for_gateway, uint32_t hint);
  // The same, not inlined: for first fragments (nat_engine_fragments.cc).
  Result TranslateParsed(uint64_t now_ms, Packet& p, bool from_inside, bool for_gateway);
  Result InsideMiss(uint64_t now_ms, Packet& p);
  Result OutsideMiss(uint64_t now_ms, Packet& p, bool hairpin);
  Result Outbound(uint64_t now_ms, Packet& p, uint32_t session, bool fresh);
  Result Inbound(uint64_t now_ms, Packet& p, uint32_t session, bool decrement_ttl, bool fresh);
  Result HairpinInbound(uint64_t now_ms, Packet& p);
  // ICMP errors (nat_engine_icmp.cc).
  Result InsideIcmpError(uint64_t now_ms, Packet& p);
  Result OutsideIcmpError(uint64_t now_ms, Packet& p, bool hairpin);

  // Fragments (nat_engine_fragments.cc; off the fast path: only a packet with MF set or a
  // non-zero offset gets here).
  Result OnFragment(uint64_t now_ms, const wire::Ipv4View& ip, bool from_inside, bool for_gateway);
  Result OnFirstFragment(uint64_t now_ms, const wire::Ipv4View& ip, const FragmentKey& key, bool from_inside,
                         bool for_gateway);
  Result HoldFragment(uint64_t now_ms, const wire::Ipv4View& ip, const FragmentKey& key, uint32_t train);
  // A later fragment, as its first fragment went.
  Result FollowFirstFragment(const FragmentTranslation& t, const wire::Ipv4View& ip);
  // The record or held datagram of `key`, or kNoIndex (after dropping it if expired: its
  // held fragments count kFragmentTimeout).
  uint32_t LiveTrain(const FragmentKey& key, uint64_t now_ms);
  void ExpireFragments(uint64_t now_ms, size_t budget);

  // Sessions and mappings.
  uint32_t CreateOutbound(uint64_t now_ms, Protocol protocol, Endpoint internal, Endpoint remote, TcpState state,
                          DropReason* why);
  uint32_t CreateInbound(uint64_t now_ms, uint32_t mapping, Endpoint remote, DropReason* why);
  uint32_t InstallSession(uint64_t now_ms, Session session, uint32_t mapping, DropReason* why);
  uint32_t CreateMapping(Protocol protocol, MappingKind kind, Endpoint internal, size_t pool_index, uint16_t port,
                         uint8_t flags, uint32_t expires_s);
  void RemoveSession(uint32_t index, bool expired);
  void UnrefMapping(uint32_t index);
  void RemoveMapping(uint32_t index);
  void ExpireExplicitMapping(uint32_t index);
  // The session / mapping, or kNoIndex after removing it when it has expired at `now_ms`.
  uint32_t Live(uint32_t session, uint64_t now_ms);
  uint32_t LiveMapping(uint32_t mapping, uint64_t now_ms);
  Host* FindHost(uint32_t internal_address);
  Host& HostFor(uint32_t internal_address);  // makes one (count 0, unpaired) if needed
  // The pool index `host`'s mappings use (RFC 4787 REQ-2), or the one it will be paired with.
  size_t PairedPool(const Host& host, uint32_t internal_address) const;
  void ReleaseHostIfUnused(uint32_t internal_address);
  bool TableFull() const;  // max_sessions reached
  // A session record from `internal` through `external` to `remote`, flagged hairpin when
  // the remote is one of our external endpoints.
  Session NewSession(Protocol protocol, Endpoint internal, Endpoint external, Endpoint remote) const;

  // Control (nat_engine_control.cc).
  // kUnsupportedProtocol (not TCP/UDP) or kNotAuthorized (not an inside host, port 0).
  std::optional<GrantError> CheckRequester(Protocol protocol, Endpoint internal) const;
  // Pool indexes to try for a request, in order: the suggested address when it is ours, then
  // the host's paired one. Returns how many (0 with an empty pool).
  size_t PoolCandidates(const Host& host, uint32_t internal_address, uint32_t suggested_address,
                        size_t (&candidates)[2]) const;
  // The suggested port on `pool` when it is free there (and the suggested address is `pool`'s
  // or 0; CreateMapping reserves it), else a new one PortAllocator::Allocate chose and
  // reserved; nullopt when the range is full.
  std::optional<uint16_t> SuggestedOrNewPort(size_t pool, Protocol protocol, Endpoint suggested,
                                             uint16_t internal_port);
  std::optional<uint16_t> ChooseGatewayPort(Protocol protocol, Endpoint internal, uint16_t preferred);

  // Timers.
  uint64_t Timeout(const Session& s) const;
  uint64_t Deadline(const Session& s) const;
  void OnPacket(uint64_t now_ms, uint32_t session, bool from_inside, uint8_t tcp_flags);
  void NoteDeadline(uint32_t session, uint64_t deadline_ms);
  void NoteMappingDeadline(uint32_t mapping, uint64_t deadline_ms);
  uint32_t LifetimeFor(uint32_t requested_s) const;
  static uint32_t Seconds(uint64_t now_ms);
  static uint32_t ExpiresAt(uint64_t now_ms, uint32_t lifetime_s);

  // Addresses.
  bool InInsideNetwork(uint32_t address) const;
  bool IsInsideHost(uint32_t address) const;
  bool IsOutsideUnicast(uint32_t address) const;

  NatConfig config_;
  uint32_t inside_mask_;
  std::unique_ptr<SessionTable> table_;
  std::unique_ptr<PortAllocator> ports_;
  std::unique_ptr<FragmentTracker> fragments_;
  absl::flat_hash_map<uint32_t, Host> hosts_;
  // PCP FILTERs by mapping slot (few mappings have any; looked up only when a session is
  // created from outside).
  absl::flat_hash_map<uint32_t, std::vector<RemoteFilter>> filters_;
  // Applies a MAP request's filters to `mapping`: false (nothing changed) past the limit.
  bool UpdateFilters(uint32_t mapping, const MapRequest& request);
  absl::flat_hash_set<uint16_t> reserved_gateway_ports_;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops_{};
  NatCounters counters_;
  size_t explicit_mappings_ = 0;
  // Sweep state of one slab: the cursor; the earliest deadline known from the last complete
  // pass plus every deadline set or shortened since (see NextDeadline), and the running
  // minimum of the pass in progress.
  struct SweepCursor {
    uint32_t next = 0;
    uint64_t min = UINT64_MAX;
    uint64_t cycle_min = UINT64_MAX;
    // Past the last slot: the pass is complete, its minimum becomes the known one.
    void WrapAt(size_t slots) {
      if (next < slots) return;
      next = 0;
      min = cycle_min;
      cycle_min = UINT64_MAX;
    }
    // A deadline set or shortened for `slot` (the pass in progress sees slots ahead of it).
    void Note(uint32_t slot, uint64_t deadline_ms) {
      min = std::min(min, deadline_ms);
      if (slot < next) cycle_min = std::min(cycle_min, deadline_ms);
    }
  };
  SweepCursor session_sweep_;
  SweepCursor mapping_sweep_;
};

}  // namespace dpm::nat

#endif  // DPM_NAT_NAT_ENGINE_H_
