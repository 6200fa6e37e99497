// The static pool of per-socket addresses (the per-socket-address patent's pool of static
// addresses; docs/design.md §7). Sans-I/O: no syscalls, no clock.
//
// Addresses are IPv4, host byte order. Allocate and Release are O(1): free addresses wait in a
// FIFO ring, so the address released longest ago is handed out first (a peer that still has
// state for a just-closed socket's address is least likely to see it again soon), and an
// index maps each address to its slot.
#ifndef DPM_STACK_ADDRESS_POOL_H_
#define DPM_STACK_ADDRESS_POOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace dpm::stack {

/// An inclusive range of IPv4 addresses, host byte order.
struct AddressRange {
  uint32_t first = 0;
  uint32_t last = 0;
};

/// Parses "A.B.C.D", "A.B.C.D-E.F.G.H" or "A.B.C.D/N" (for N <= 30 the network and broadcast
/// addresses are left out). Errors: InvalidArgument naming the text.
absl::StatusOr<AddressRange> ParseAddressRange(const std::string& text);

class AddressPool {
 public:
  /// At most this many addresses in one pool (memory: ~24 bytes each).
  static constexpr size_t kMaxAddresses = size_t{1} << 22;

  /// A pool of every address in `ranges`. Errors: InvalidArgument for an empty or reversed
  /// range, overlapping ranges, 0.0.0.0 or a broadcast/multicast address inside, or more
  /// than kMaxAddresses in all.
  static absl::StatusOr<AddressPool> Create(const std::vector<AddressRange>& ranges);
  AddressPool() = default;

  /// A free address, or nullopt when every one is taken (the API's EADDRNOTAVAIL). O(1).
  std::optional<uint32_t> Allocate();
  /// Returns `address` to the pool. False (nothing changes) when it is not a pool address or
  /// is not allocated. O(1).
  bool Release(uint32_t address);

  bool Contains(uint32_t address) const { return slot_.contains(address); }
  bool IsAllocated(uint32_t address) const;
  size_t size() const { return addresses_.size(); }
  size_t available() const { return free_count_; }

 private:
  std::vector<uint32_t> addresses_;                // every pool address, by slot
  std::vector<uint8_t> allocated_;                 // by slot
  absl::flat_hash_map<uint32_t, uint32_t> slot_;   // address -> slot
  std::vector<uint32_t> ring_;                     // free slots, FIFO
  size_t head_ = 0, free_count_ = 0;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_ADDRESS_POOL_H_
