#include "stack/ethernet_status.h"

#include "absl/strings/str_cat.h"
#include "lwip/stats.h"

namespace dpm::stack {

EthernetStatus EthernetStatus::From(const Stack& stack) {
  EthernetStatus s;
  s.mac = stack.mac();
  s.frame_drops = stack.counters().frame_drops;
  s.arp_announcements = stack.counters().arp_announcements;
  s.arp_recv = lwip_stats.etharp.recv;
  s.arp_xmit = lwip_stats.etharp.xmit;
  s.arp_drop = lwip_stats.etharp.drop;
  return s;
}

void EthernetStatus::AppendText(std::string& out) const {
  absl::StrAppend(&out, "ethernet mac ", wire::FormatMac(mac), "; frames dropped");
  for (size_t i = 1; i < frame_drops.size(); ++i) {
    absl::StrAppend(&out, " ", wire::FrameCheckName(static_cast<wire::FrameCheck>(i)), "=", frame_drops[i]);
  }
  absl::StrAppend(&out, "; arp announcements ", arp_announcements, ", lwip arp recv ", arp_recv, " xmit ", arp_xmit,
                  " drop ", arp_drop, "\n");
}

void EthernetStatus::AddJson(StatusJson& report) const {
  StatusJson drops = StatusJson::object();
  for (size_t i = 1; i < frame_drops.size(); ++i) {
    drops[wire::FrameCheckName(static_cast<wire::FrameCheck>(i))] = frame_drops[i];
  }
  report["ethernet"] = {{"mac", wire::FormatMac(mac)}, {"drops", std::move(drops)},
                        {"arp_announcements", arp_announcements}, {"arp_recv", arp_recv},
                        {"arp_xmit", arp_xmit}, {"arp_drop", arp_drop}};
}

}  // namespace dpm::stack
