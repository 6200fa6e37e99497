// DSCP per source address (QoS per address, the per-socket-address patent's motivation;
// docs/design.md §7): an outbound packet hook (stack/packet_hooks.h) that the Stack owns and
// puts in its outbound chain while at least one address is marked, so an unmarked stack
// pays nothing for it.
#ifndef DPM_STACK_DSCP_MARKER_H_
#define DPM_STACK_DSCP_MARKER_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "stack/packet_hooks.h"

namespace dpm::stack {

class DscpMarker : public OutboundHook {
 public:
  /// Joins `chain` (at hook_order::kDscpMarking) while an address is marked; `chain` must
  /// outlive the marker or be a chain whose handles may outlive it (HookHandle).
  explicit DscpMarker(HookChain<OutboundHook>& chain) : chain_(chain) {}

  /// Every IPv4 packet sent with source `address` (host byte order) leaves with DSCP `dscp`
  /// (0..63, higher bits ignored) in the upper six bits of its TOS byte (RFC 2474 §3), the
  /// two ECN bits (RFC 3168 §5) kept, the header checksum updated (RFC 1624 eqn. 3).
  /// `dscp` < 0 clears it.
  void Set(uint32_t address, int dscp);
  /// The DSCP marked on packets from `address`, or -1.
  int Get(uint32_t address) const;
  /// Packets whose TOS byte was rewritten.
  uint64_t marked() const { return marked_; }

  HookAction OnOutbound(const OutboundPacket& packet) override;

 private:
  HookChain<OutboundHook>& chain_;
  HookHandle handle_;  // held while address_dscp_ is not empty
  absl::flat_hash_map<uint32_t, uint8_t> address_dscp_;  // source (host order) -> DSCP
  uint64_t marked_ = 0;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_DSCP_MARKER_H_
