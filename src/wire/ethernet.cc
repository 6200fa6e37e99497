#include "wire/ethernet.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_split.h"
#include "wire/ipv4.h"

namespace dpm::wire {

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5]);
  return text;
}

std::optional<MacAddress> ParseMac(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() != 6) return std::nullopt;
  MacAddress mac{};
  for (size_t i = 0; i < 6; ++i) {
    if (parts[i].size() != 2) return std::nullopt;
    int value = 0;
    for (char c : parts[i]) {
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + digit;
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

MacAddress MacForIpv4(uint32_t a) {
  return {0x02, 0x64, static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16), static_cast<uint8_t>(a >> 8),
          static_cast<uint8_t>(a)};
}

namespace {
MacAddress LoadMac(absl::Span<const uint8_t> bytes, size_t offset) {
  MacAddress mac;
  std::memcpy(mac.data(), bytes.data() + offset, mac.size());
  return mac;
}
}  // namespace

std::optional<EthernetView> EthernetView::Parse(absl::Span<const uint8_t> frame) {
  if (frame.size() < ethernet::kHeaderLength) return std::nullopt;
  return EthernetView(frame);
}

uint16_t EthernetView::ether_type() const { return LoadBe16(&bytes_[ethernet::kEtherTypeOffset]); }
MacAddress EthernetView::Mac(size_t offset) const { return LoadMac(bytes_, offset); }

std::optional<ArpView> ArpView::Parse(absl::Span<const uint8_t> packet) {
  if (packet.size() < arp::kPacketLength) return std::nullopt;
  if (LoadBe16(&packet[arp::kHardwareTypeOffset]) != arp::kHardwareEthernet ||
      LoadBe16(&packet[arp::kProtocolTypeOffset]) != ethernet::kTypeIpv4 ||
      packet[arp::kHardwareLengthOffset] != 6 || packet[arp::kProtocolLengthOffset] != 4) {
    return std::nullopt;
  }
  return ArpView(packet.first(arp::kPacketLength));
}

uint16_t ArpView::operation() const { return LoadBe16(&bytes_[arp::kOperationOffset]); }
uint32_t ArpView::sender_protocol() const { return LoadBe32(&bytes_[arp::kSenderProtocolOffset]); }
uint32_t ArpView::target_protocol() const { return LoadBe32(&bytes_[arp::kTargetProtocolOffset]); }
MacAddress ArpView::Mac(size_t offset) const { return LoadMac(bytes_, offset); }

bool ArpRepr::Emit(absl::Span<uint8_t> out) const {
  if (out.size() < arp::kPacketLength) return false;
  uint8_t* p = out.data();
  StoreBe16(p + arp::kHardwareTypeOffset, arp::kHardwareEthernet);
  StoreBe16(p + arp::kProtocolTypeOffset, ethernet::kTypeIpv4);
  p[arp::kHardwareLengthOffset] = 6;
  p[arp::kProtocolLengthOffset] = 4;
  StoreBe16(p + arp::kOperationOffset, operation);
  std::memcpy(p + arp::kSenderHardwareOffset, sender_hardware.data(), 6);
  StoreBe32(p + arp::kSenderProtocolOffset, sender_protocol);
  std::memcpy(p + arp::kTargetHardwareOffset, target_hardware.data(), 6);
  StoreBe32(p + arp::kTargetProtocolOffset, target_protocol);
  return true;
}

bool EthernetRepr::Emit(absl::Span<uint8_t> out) const {
  if (out.size() < ethernet::kHeaderLength) return false;
  std::memcpy(out.data() + ethernet::kDestinationOffset, destination.data(), 6);
  std::memcpy(out.data() + ethernet::kSourceOffset, source.data(), 6);
  StoreBe16(out.data() + ethernet::kEtherTypeOffset, ether_type);
  return true;
}

std::array<uint8_t, ethernet::kHeaderLength + arp::kPacketLength> ArpAnnouncement(const MacAddress& mac,
                                                                                   uint32_t address) {
  std::array<uint8_t, ethernet::kHeaderLength + arp::kPacketLength> frame{};
  EthernetRepr{ethernet::kBroadcast, mac, ethernet::kTypeArp}.Emit(absl::MakeSpan(frame));
  ArpRepr{arp::kOperationRequest, mac, address, MacAddress{}, address}.Emit(
      absl::MakeSpan(frame).subspan(ethernet::kHeaderLength));
  return frame;
}

const char* FrameCheckName(FrameCheck c) {
  switch (c) {
    case FrameCheck::kOk: return "ok";
    case FrameCheck::kTooShort: return "too_short";
    case FrameCheck::kNotForUs: return "not_for_us";
    case FrameCheck::kUnsupportedType: return "unsupported_type";
    case FrameCheck::kBadArp: return "bad_arp";
    case FrameCheck::kCount: break;
  }
  return "unknown";
}

FrameCheck CheckFrame(absl::Span<const uint8_t> frame, const MacAddress& ours) {
  std::optional<EthernetView> eth = EthernetView::Parse(frame);
  if (!eth) return FrameCheck::kTooShort;
  const MacAddress destination = eth->destination();
  if (!IsMulticast(destination) && destination != ours) return FrameCheck::kNotForUs;
  switch (eth->ether_type()) {
    case ethernet::kTypeIpv4: return FrameCheck::kOk;
    case ethernet::kTypeArp: return ArpView::Parse(eth->payload()) ? FrameCheck::kOk : FrameCheck::kBadArp;
    default: return FrameCheck::kUnsupportedType;
  }
}

}  // namespace dpm::wire
