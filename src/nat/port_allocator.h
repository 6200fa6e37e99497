// External address and port choice for the NAT engine: the registered address pool, which
// external ports are taken, and the choice of a new one.
//
//   - Random port choice: RFC 6056 §3.3.1 (Algorithm 1, "simple port randomization"): start
//     at a random port of the range and take the first free one after it, wrapping. RFC 7857
//     §10 asks a NAPT that does not preserve ports to obfuscate them this way.
//   - Port range preservation (RFC 4787 REQ-3a): an internal port in 0-1023 gets an external
//     port in 1-1023, any other one a port in [port_min, port_max].
//   - Port parity preservation (RFC 4787 REQ-4, RECOMMENDED): an even internal port gets an
//     even external port when one is free, an odd one an odd port (RTP/RTCP pairs).
//   - Paired pooling (RFC 4787 REQ-2, across protocols per RFC 7857 §4): the engine keeps one
//     pool address per internal host; PairedIndex gives the first one a host is offered — a
//     keyed hash, so hosts spread over the pool and a host's address is not guessable.
//
// Taken ports are a bitmap per pool address and protocol (8 KiB, made on first use), so
// finding a free port scans 64 ports per step even in an almost full range.
#ifndef DPM_NAT_PORT_ALLOCATOR_H_
#define DPM_NAT_PORT_ALLOCATOR_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "nat/session_table.h"

namespace dpm::nat {

class PortAllocator {
 public:
  /// `seed`: the generator's whole state comes from it, so equal seeds give equal port
  /// sequences (tests). The core reads no entropy itself: production passes
  /// os::RandomU64() (RFC 6056 §3: external ports must not be predictable).
  PortAllocator(const std::vector<uint32_t>& pool, uint16_t port_min, uint16_t port_max, uint64_t seed);

  size_t pool_size() const { return addresses_.size(); }
  uint32_t address(size_t index) const { return addresses_[index].address; }
  /// The pool index of `address`, or nullopt when it is not a pool address.
  std::optional<size_t> IndexOf(uint32_t address) const;

  bool InUse(size_t index, Protocol protocol, uint16_t port) const;
  /// Marks a port taken / free. Port 0 is never handed out.
  void Reserve(size_t index, Protocol protocol, uint16_t port);
  void Release(size_t index, Protocol protocol, uint16_t port);
  /// Ports taken on one pool address for one protocol.
  uint32_t used(size_t index, Protocol protocol) const;

  /// Chooses and reserves a free external port on pool address `index` for a flow whose
  /// internal port (ICMP: identifier) is `internal_port`; nullopt when its range is full.
  std::optional<uint16_t> Allocate(size_t index, Protocol protocol, uint16_t internal_port);

  /// The pool index first offered to a new internal host (paired pooling).
  size_t PairedIndex(uint32_t internal_address) const;

  /// A uniformly random value in [lo, hi].
  uint32_t Uniform(uint32_t lo, uint32_t hi);

 private:
  static constexpr size_t kWords = 65536 / 64;
  struct PoolAddress {
    uint32_t address = 0;
    std::array<std::vector<uint64_t>, 3> taken;  // by protocol: ICMP, TCP, UDP; empty until used
    std::array<uint32_t, 3> count{};
  };
  static size_t ProtocolSlot(Protocol protocol);
  // The first free port in [begin, end] (inclusive) whose bit is in `parity_mask`, or -1.
  static int FindFree(const std::vector<uint64_t>& taken, uint32_t begin, uint32_t end, uint64_t parity_mask);

  std::vector<PoolAddress> addresses_;
  absl::flat_hash_map<uint32_t, size_t> index_of_;
  uint16_t port_min_;
  uint16_t port_max_;
  absl::BitGen random_;
  uint64_t pairing_key_;
};

}  // namespace dpm::nat

#endif  // DPM_NAT_PORT_ALLOCATOR_H_
