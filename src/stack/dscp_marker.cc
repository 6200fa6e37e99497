#include "stack/dscp_marker.h"

#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::stack {

void DscpMarker::Set(uint32_t address, int dscp) {
  if (dscp < 0) {
    address_dscp_.erase(address);
  } else {
    address_dscp_[address] = static_cast<uint8_t>(dscp & 0x3f);
  }
  if (address_dscp_.empty()) {
    handle_.reset();
  } else if (!handle_) {
    handle_ = chain_.Add(hook_order::kDscpMarking, this);
  }
}

int DscpMarker::Get(uint32_t address) const {
  auto it = address_dscp_.find(address);
  return it == address_dscp_.end() ? -1 : it->second;
}

HookAction DscpMarker::OnOutbound(const OutboundPacket& packet) {
  uint8_t* ip = packet.head.data();  // the whole IPv4 header (OutboundPacket::head)
  auto it = address_dscp_.find(wire::LoadBe32(ip + wire::ipv4::kSourceOffset));
  if (it == address_dscp_.end()) return HookAction::kPass;
  uint8_t& tos = ip[wire::ipv4::kTosOffset];
  const uint8_t marked = static_cast<uint8_t>((it->second << 2) | (tos & 0x03));  // ECN kept
  if (marked == tos) return HookAction::kPass;
  const uint16_t old_word = wire::LoadBe16(ip);  // version/IHL and TOS: one checksum word
  tos = marked;
  uint8_t* checksum = ip + wire::ipv4::kChecksumOffset;
  wire::StoreBe16(checksum, wire::ChecksumReplace16(wire::LoadBe16(checksum), old_word, wire::LoadBe16(ip)));
  marked_++;
  return HookAction::kPass;
}

}  // namespace dpm::stack
