// The Ethernet (TAP) link's part of `dpmd status`: the stack's MAC, frames dropped before
// lwIP by reason (wire::FrameCheck), RFC 5227 announcements sent and lwIP's ARP counters.
#ifndef DPM_STACK_ETHERNET_STATUS_H_
#define DPM_STACK_ETHERNET_STATUS_H_

#include <cstdint>
#include <string>

#include "stack/stack.h"
#include "stack/status_report.h"
#include "wire/ethernet.h"

namespace dpm::stack {

struct EthernetStatus : StatusPart {
  /// Reads `stack` (an Ethernet link's; on the core thread) and lwIP's ARP statistics.
  static EthernetStatus From(const Stack& stack);

  wire::MacAddress mac{};
  wire::FrameDropCounters frame_drops{};  // index: wire::FrameCheck; [0] (ok) unused
  uint64_t arp_announcements = 0;         // RFC 5227 §2.3 announcements sent
  uint64_t arp_recv = 0, arp_xmit = 0, arp_drop = 0;  // lwIP's etharp counters (packets)

  /// "ethernet mac M; frames dropped R=N...; arp announcements N, lwip arp recv N xmit N drop N".
  void AppendText(std::string& out) const override;
  /// "ethernet": {"mac", "drops": {reason: N}, "arp_announcements", "arp_recv", "arp_xmit", "arp_drop"}.
  void AddJson(StatusJson& report) const override;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_ETHERNET_STATUS_H_
