// Ethernet II frames (IEEE 802.3 with an EtherType, RFC 894) and ARP for IPv4 over Ethernet
// (RFC 826), for TAP links: views over received frames, values that emit frames, and the
// first checks the stack runs on a frame before lwIP sees it.
//
// As in wire/ipv4.h, untrusted bytes enter only through a checked Parse(); a view that exists
// has every byte its accessors read. Fields are big-endian on the wire, host order in the
// accessors; offsets are the named constants below.
#ifndef DPM_WIRE_ETHERNET_H_
#define DPM_WIRE_ETHERNET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dpm::wire {

/// A 48-bit IEEE 802 MAC address, in transmission order.
using MacAddress = std::array<uint8_t, 6>;

namespace ethernet {
inline constexpr size_t kDestinationOffset = 0;
inline constexpr size_t kSourceOffset = 6;
inline constexpr size_t kEtherTypeOffset = 12;
inline constexpr size_t kHeaderLength = 14;
inline constexpr uint16_t kTypeIpv4 = 0x0800;
inline constexpr uint16_t kTypeArp = 0x0806;
inline constexpr uint16_t kTypeIpv6 = 0x86dd;
inline constexpr MacAddress kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
}  // namespace ethernet

namespace arp {
// RFC 826 "Packet format", for hardware Ethernet (6-byte addresses) and protocol IPv4.
inline constexpr size_t kHardwareTypeOffset = 0;
inline constexpr size_t kProtocolTypeOffset = 2;
inline constexpr size_t kHardwareLengthOffset = 4;
inline constexpr size_t kProtocolLengthOffset = 5;
inline constexpr size_t kOperationOffset = 6;
inline constexpr size_t kSenderHardwareOffset = 8;
inline constexpr size_t kSenderProtocolOffset = 14;
inline constexpr size_t kTargetHardwareOffset = 18;
inline constexpr size_t kTargetProtocolOffset = 24;
inline constexpr size_t kPacketLength = 28;
inline constexpr uint16_t kHardwareEthernet = 1;
inline constexpr uint16_t kOperationRequest = 1;
inline constexpr uint16_t kOperationReply = 2;
}  // namespace arp

/// The group bit (I/G) of the first byte: broadcast and multicast destinations.
inline bool IsMulticast(const MacAddress& mac) { return (mac[0] & 0x01) != 0; }
inline bool IsBroadcast(const MacAddress& mac) { return mac == ethernet::kBroadcast; }
/// Unicast (I/G clear) and locally administered (U/L set): what a host may make up itself.
inline bool IsLocalUnicast(const MacAddress& mac) { return (mac[0] & 0x03) == 0x02; }

/// "02:64:0a:4d:01:02" (lower-case hex, colons).
std::string FormatMac(const MacAddress& mac);
/// Parses six colon-separated hex bytes ("02:64:0A:4D:01:02"); nullopt otherwise.
std::optional<MacAddress> ParseMac(absl::string_view text);
/// dpm's default MAC for a stack at `ipv4_address` (host order): 02:64:A:B:C:D — locally
/// administered unicast, 0x64 ('d') as a marker, then the address. Stable across restarts
/// (neighbours' ARP caches stay right) and distinct for distinct addresses on one LAN.
MacAddress MacForIpv4(uint32_t ipv4_address);

/// A view over one Ethernet II frame (no FCS, no VLAN tag: a tagged frame is just an unknown
/// EtherType here). Parse needs the 14-byte header; the payload may be empty.
class EthernetView {
 public:
  static std::optional<EthernetView> Parse(absl::Span<const uint8_t> frame);

  MacAddress destination() const { return Mac(ethernet::kDestinationOffset); }
  MacAddress source() const { return Mac(ethernet::kSourceOffset); }
  uint16_t ether_type() const;
  absl::Span<const uint8_t> payload() const { return bytes_.subspan(ethernet::kHeaderLength); }
  absl::Span<const uint8_t> bytes() const { return bytes_; }

 private:
  explicit EthernetView(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  MacAddress Mac(size_t offset) const;
  absl::Span<const uint8_t> bytes_;
};

/// A view over an ARP packet for IPv4 over Ethernet. Parse checks the length (28 bytes;
/// Ethernet padding after them is allowed), hardware type 1, protocol type 0x0800 and the
/// address lengths 6 and 4 — what lwIP's etharp_input reads without checking the length.
class ArpView {
 public:
  static std::optional<ArpView> Parse(absl::Span<const uint8_t> packet);

  uint16_t operation() const;
  MacAddress sender_hardware() const { return Mac(arp::kSenderHardwareOffset); }
  uint32_t sender_protocol() const;
  MacAddress target_hardware() const { return Mac(arp::kTargetHardwareOffset); }
  uint32_t target_protocol() const;

 private:
  explicit ArpView(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  MacAddress Mac(size_t offset) const;
  absl::Span<const uint8_t> bytes_;
};

/// The value of an ARP packet (IPv4 over Ethernet). Addresses in host order.
struct ArpRepr {
  uint16_t operation = arp::kOperationRequest;
  MacAddress sender_hardware{};
  uint32_t sender_protocol = 0;
  MacAddress target_hardware{};
  uint32_t target_protocol = 0;

  static constexpr size_t buffer_len() { return arp::kPacketLength; }
  /// Writes the 28-byte packet into out[0, 28). False, writing nothing, if `out` is shorter.
  bool Emit(absl::Span<uint8_t> out) const;
};

/// The value of an Ethernet II header.
struct EthernetRepr {
  MacAddress destination{};
  MacAddress source{};
  uint16_t ether_type = 0;

  static constexpr size_t buffer_len() { return ethernet::kHeaderLength; }
  /// Writes the 14-byte header into out[0, 14). False, writing nothing, if `out` is shorter.
  bool Emit(absl::Span<uint8_t> out) const;
};

/// An ARP Announcement for `address` (RFC 5227 §3: an ARP request whose sender and target
/// protocol addresses are both `address`, target hardware address zero, sent to broadcast):
/// tells the neighbours that `address` is now at `mac`. 42 bytes.
std::array<uint8_t, ethernet::kHeaderLength + arp::kPacketLength> ArpAnnouncement(const MacAddress& mac,
                                                                                   uint32_t address);

/// First checks on a frame read from an Ethernet link, before lwIP sees it. lwIP itself does
/// not filter destinations (it expects the NIC to) and reads a whole ARP header without
/// checking the length, so both are checked here.
enum class FrameCheck : uint8_t {
  kOk = 0,
  kTooShort,         // shorter than the 14-byte Ethernet header
  kNotForUs,         // unicast to another MAC address
  kUnsupportedType,  // not IPv4 or ARP (IPv6, VLAN tags, LLDP, ...)
  kBadArp,           // ARP shorter than 28 bytes, or not IPv4 over Ethernet
  kCount
};
/// Names for counters and logs: "too_short", "not_for_us", ...
const char* FrameCheckName(FrameCheck c);
/// Checks `frame` for a station with MAC `ours`: accepted are frames to `ours`, broadcast and
/// multicast, carrying IPv4 or a well-formed ARP packet. The IPv4 packet itself is the
/// caller's to check (wire::CheckIpv4 on the payload).
FrameCheck CheckFrame(absl::Span<const uint8_t> frame, const MacAddress& ours);

using FrameDropCounters = std::array<uint64_t, static_cast<size_t>(FrameCheck::kCount)>;

}  // namespace dpm::wire

#endif  // DPM_WIRE_ETHERNET_H_
