// libFuzzer target: the first checks on every frame a TAP link delivers (wire::CheckFrame,
// EthernetView, ArpView). A frame CheckFrame accepts has a whole Ethernet header and, for
// ARP, a whole IPv4-over-Ethernet ARP packet (lwIP's etharp_input reads 28 bytes unchecked);
// a parsed ARP packet emits back to the same 28 bytes.
#include <cstdlib>
#include <cstring>

#include "wire/ethernet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dpm::wire;
  const absl::Span<const uint8_t> frame(data, size);
  const MacAddress ours = MacForIpv4(0x0a4d0102);
  const FrameCheck check = CheckFrame(frame, ours);
  std::optional<EthernetView> eth = EthernetView::Parse(frame);
  if (check != FrameCheck::kTooShort && !eth) std::abort();
  if (check != FrameCheck::kOk) return 0;
  if (eth->ether_type() == ethernet::kTypeArp) {
    std::optional<ArpView> arp = ArpView::Parse(eth->payload());
    if (!arp || eth->payload().size() < arp::kPacketLength) std::abort();
    ArpRepr repr{arp->operation(), arp->sender_hardware(), arp->sender_protocol(), arp->target_hardware(),
                 arp->target_protocol()};
    uint8_t out[arp::kPacketLength];
    if (!repr.Emit(absl::MakeSpan(out)) || std::memcmp(out, eth->payload().data(), sizeof(out)) != 0) std::abort();
  } else if (eth->ether_type() != ethernet::kTypeIpv4) {
    std::abort();
  }
  return 0;
}
