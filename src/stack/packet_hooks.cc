#include "stack/packet_hooks.h"

#include <algorithm>
#include <cstring>

#include "wire/ipv4.h"

namespace dpm::stack {

void HookHandle::reset() {
  if (id_ == 0) return;
  if (std::shared_ptr<internal::HookRegistry> registry = registry_.lock()) registry->Remove(id_);
  registry_.reset();
  id_ = 0;
}

void OutboundPacket::CopyTo(std::vector<uint8_t>& out) const {
  out.resize(total_length);
  size_t at = 0;
  for (const iovec& part : parts) {
    const size_t n = std::min(part.iov_len, total_length - at);
    std::memcpy(out.data() + at, part.iov_base, n);
    at += n;
    if (at == total_length) break;
  }
}

size_t OutboundHeadLength(const uint8_t* ip) {
  const size_t header = static_cast<size_t>(ip[wire::ipv4::kVersionIhlOffset] & 0x0f) * 4;
  const uint16_t fragment = wire::LoadBe16(ip + wire::ipv4::kFlagsFragmentOffset);
  if ((fragment & wire::ipv4::kFragmentOffsetMask) != 0) return header;  // no transport header here
  switch (ip[wire::ipv4::kProtocolOffset]) {
    case wire::ipv4::kProtocolTcp: return header + wire::tcp::kMinHeaderLength;
    case wire::ipv4::kProtocolUdp: return header + wire::udp::kHeaderLength;
    case wire::ipv4::kProtocolIcmp: return header + wire::icmp::kHeaderLength;  // type, code, checksum, identifier, sequence
    default: return header;
  }
}

}  // namespace dpm::stack
