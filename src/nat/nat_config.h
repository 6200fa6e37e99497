// The NAT engine's configuration (docs/nat.md): the address pool and inside network, port
// range, quotas, the timers with their RFC minimums, and the bounds on fragment state.
#ifndef DPM_NAT_NAT_CONFIG_H_
#define DPM_NAT_NAT_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace dpm::nat {

class TableMemory;

/// Addresses are host byte order; times in ms of the caller's clock unless named _s.
struct NatConfig {
  std::vector<uint32_t> external_addresses;   // registered pool, e.g. 203.0.113.1..203.0.113.8
  uint32_t inside_network = 0;                // private network, e.g. 10.77.0.0/16
  int inside_prefix = 16;
  uint32_t gateway_inside_address = 0;        // the gateway's private address (DPM server, DPM session endpoints)
  uint32_t gateway_outside_address = 0;       // the gateway's own outside address: traffic to it is kToGateway
                                              // unless it is also a pool address with a mapping
  uint16_t port_min = 1024, port_max = 65535; // dynamic external ports (RFC 4787 REQ-3: 0-1023 -> 1-1023)
  uint32_t per_host_quota = 4096;             // sessions + explicit mappings per internal address (PCP USER_EX_QUOTA)
  size_t max_sessions = 1 << 20;
  /// Sessions (and as many mappings) the session table is sized for at construction, at most
  /// max_sessions; 0: grow on demand. Growing never stalls the data path (it is incremental,
  /// docs/nat.md "Growing without stalls"), but while it lasts new sessions move a few entries
  /// each, and fresh pages are faulted in as the tables fill. A reservation does that work at
  /// construction: each of the 5 indexes gets the slots that hold this many below 11/16 load
  /// (6 bytes each), the slabs their first this-many records, all backed up front (117 MB
  /// for 10^6).
  size_t reserve_sessions = 0;
  uint32_t min_lifetime_s = 120, max_lifetime_s = 86400;  // PCP lifetimes clamped to this
  uint64_t udp_timeout_ms = 300000;           // RFC 4787 REQ-5: >= 120 s, default 300 s
  uint64_t tcp_established_ms = 7440000;      // RFC 5382 REQ-5: >= 2 h 4 min
  uint64_t tcp_transitory_ms = 240000;        // RFC 5382 REQ-5: >= 4 min
  uint64_t icmp_timeout_ms = 60000;           // RFC 5508 REQ-2: >= 60 s
  uint64_t seed = 0;                          // RFC 6056 port randomisation: pass os::RandomU64()
  /// Where the session table's memory comes from (nat/table_memory.h); must outlive the
  /// engine. nullptr: HeapTableMemory(). `dpmd gateway` passes a HugePageTableMemory.
  TableMemory* table_memory = nullptr;
  /// Ports never used as a DPM gateway endpoint port: the gateway's own services on its
  /// private address (the DPM server on 1080, PCP/NAT-PMP on 5350-5351).
  std::vector<uint16_t> gateway_reserved_ports = {1080, 5350, 5351};

  // IP fragments (RFC 4787 REQ-14; docs/nat.md "Fragments"). Every limit bounds memory: a
  // flood of fragments costs at most these, whatever it holds.
  /// How long a datagram's fragment record, and the fragments held for it, live after its
  /// first fragment (or, held, its first-arriving fragment) was seen, in ms: RFC 791's
  /// reassembly timer does the same job. >= 2 s (RFC 6146 §4 FRAGMENT_MIN).
  uint64_t fragment_timeout_ms = 30000;
  /// Datagrams whose first fragment was seen, tracked at once (about 100 B each); a new one
  /// beyond this replaces the oldest record (NatCounters::fragment_records_evicted).
  size_t max_fragment_records = 4096;
  /// Datagrams with fragments held, waiting for their first fragment. 0: no out-of-order
  /// support (such fragments are dropped, kFragmentLimit).
  size_t max_held_datagrams = 256;
  /// Fragments held for one datagram: 64 covers a 65535-byte datagram cut for a 1500-byte MTU
  /// (45 fragments).
  size_t max_held_fragments_per_datagram = 64;
  /// Bytes of whole packets held, plus released ones the caller has not taken yet.
  size_t max_held_fragment_bytes = size_t{1} << 20;
};

/// OK, or InvalidArgument naming the first field that is unusable (an empty pool, a bad
/// prefix, port_min > port_max, min_lifetime_s > max_lifetime_s) or a timer below its RFC
/// minimum. The engine runs with any configuration; a daemon should refuse a bad one.
absl::Status ValidateNatConfig(const NatConfig& config);

}  // namespace dpm::nat

#endif  // DPM_NAT_NAT_CONFIG_H_
