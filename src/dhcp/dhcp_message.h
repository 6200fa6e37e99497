// The DHCPv4 message (RFC 2131 §2 and §4.1; options from RFC 2132): a checked parser of the
// UDP payload a client reads on port 68 and the encoder of what it sends to port 67.
// No state, no I/O.
//
// Layout (all multi-byte fields big-endian; RFC 2131 §2, Figure 1):
//   offset  size  field
//        0     1  op       1 = BOOTREQUEST, 2 = BOOTREPLY
//        1     1  htype    1 = Ethernet
//        2     1  hlen     6 for Ethernet
//        3     1  hops
//        4     4  xid      transaction id, chosen by the client
//        8     2  secs     seconds since the client began acquisition or renewal
//       10     2  flags    bit 15 = BROADCAST (RFC 2131 §2, Figure 2)
//       12     4  ciaddr   client address (BOUND, RENEWING, REBINDING only)
//       16     4  yiaddr   "your" address, offered or acknowledged by the server
//       20     4  siaddr   next server (boot); not the DHCP server identifier
//       24     4  giaddr   relay agent
//       28    16  chaddr   client hardware address (first hlen bytes)
//       44    64  sname    server host name, or options (overload 2 or 3)
//      108   128  file     boot file name, or options (overload 1 or 3)
//      236     4  magic cookie 99.130.83.99 (RFC 2131 §3; RFC 2132 §2)
//      240     …  options: code(1) length(1) value(length), pad (0) and end (255) are one byte
//
// Parsing rules (what ParseDhcpMessage accepts):
//  - at least 240 bytes (fixed part and cookie) and an end option (255) in the options field;
//    bytes after it are padding and ignored. A message cut short therefore never parses.
//    The 300-byte BOOTP minimum (RFC 1542 §2.1) is not required of what we receive.
//  - hlen at most 16 (the size of chaddr).
//  - option overload (52, RFC 2132 §9.3) is supported: the 'file' field and then the 'sname'
//    field are read as further options after the options field (the order of RFC 2131 §4.1);
//    an overloaded field ends at its end option or at the field's end. The parsed message then
//    reports `sname` and `file` as all zeros.
//  - an option that appears more than once is the concatenation of its instances, in the
//    order above (RFC 3396 §7); the known options' lengths are checked after concatenation,
//    so a repeated fixed-size option (two lease times, say) is refused as a wrong length.
//  - the known options must have their RFC 2132 lengths (see DhcpMessage); unknown options
//    are skipped. Zero-length 3, 6, 55, 56 and 61 are refused (RFC 2132 gives each a
//    minimum), so an empty vector or string below means "absent".
// Errors are kInvalidArgument with a message naming the field, e.g.
//   "dhcp: truncated at fixed header: 235 of 236 bytes"
//   "dhcp: options: option 51 length 3, want 4".
#ifndef DPM_DHCP_DHCP_MESSAGE_H_
#define DPM_DHCP_DHCP_MESSAGE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dpm::dhcp {

inline constexpr uint16_t kServerPort = 67;  // RFC 2131 §4.1
inline constexpr uint16_t kClientPort = 68;

// Field offsets and sizes of the fixed part (RFC 2131 §2).
inline constexpr size_t kOffsetXid = 4;
inline constexpr size_t kOffsetCiaddr = 12;
inline constexpr size_t kOffsetChaddr = 28;
inline constexpr size_t kOffsetSname = 44;
inline constexpr size_t kOffsetFile = 108;
inline constexpr size_t kOffsetCookie = 236;
inline constexpr size_t kOffsetOptions = 240;
inline constexpr size_t kChaddrSize = 16;
inline constexpr size_t kSnameSize = 64;
inline constexpr size_t kFileSize = 128;
inline constexpr size_t kFixedHeaderSize = 236;
inline constexpr uint32_t kMagicCookie = 0x63825363;  // 99.130.83.99
/// The smallest BOOTP message a relay or server must accept; SerializeDhcpMessage pads to it
/// (RFC 1542 §2.1, from the 64-byte vendor field of RFC 951).
inline constexpr size_t kMinBootpMessageSize = 300;

inline constexpr uint8_t kOpBootRequest = 1;
inline constexpr uint8_t kOpBootReply = 2;
inline constexpr uint8_t kHtypeEthernet = 1;
inline constexpr uint8_t kHlenEthernet = 6;
inline constexpr uint16_t kFlagBroadcast = 0x8000;  // RFC 2131 §2, Figure 2

/// Option codes (RFC 2132).
namespace option {
inline constexpr uint8_t kPad = 0;                   // §3.1
inline constexpr uint8_t kSubnetMask = 1;            // §3.3, 4 bytes
inline constexpr uint8_t kRouter = 3;                // §3.5, 4n bytes, n >= 1
inline constexpr uint8_t kDomainNameServer = 6;      // §3.8, 4n bytes, n >= 1
inline constexpr uint8_t kRequestedIpAddress = 50;   // §9.1, 4 bytes
inline constexpr uint8_t kIpAddressLeaseTime = 51;   // §9.2, 4 bytes, seconds
inline constexpr uint8_t kOptionOverload = 52;       // §9.3, 1 byte: 1 file, 2 sname, 3 both
inline constexpr uint8_t kMessageType = 53;          // §9.6, 1 byte
inline constexpr uint8_t kServerIdentifier = 54;     // §9.7, 4 bytes
inline constexpr uint8_t kParameterRequestList = 55; // §9.8, n >= 1 bytes
inline constexpr uint8_t kMessage = 56;              // §9.9, n >= 1 bytes of NVT ASCII
inline constexpr uint8_t kMaximumMessageSize = 57;   // §9.10, 2 bytes
inline constexpr uint8_t kRenewalTime = 58;          // §9.11, 4 bytes, seconds (T1)
inline constexpr uint8_t kRebindingTime = 59;        // §9.12, 4 bytes, seconds (T2)
inline constexpr uint8_t kClientIdentifier = 61;     // §9.14, n >= 2 bytes: type, identifier
inline constexpr uint8_t kEnd = 255;                 // §3.2
}  // namespace option

/// The lease time that means "infinite" (RFC 2131 §3.3).
inline constexpr uint32_t kInfiniteLease = 0xffffffff;

/// DHCP message type, option 53 (RFC 2132 §9.6). Other values parse and are kept as is.
enum class MessageType : uint8_t {
  kDiscover = 1,
  kOffer = 2,
  kRequest = 3,
  kDecline = 4,
  kAck = 5,
  kNak = 6,
  kRelease = 7,
  kInform = 8,
};
/// "DHCPDISCOVER" … "DHCPINFORM"; "UNKNOWN" for other values.
const char* MessageTypeName(MessageType type);

/// A DHCP message as values. Addresses are IPv4 in host byte order; times are seconds.
/// Optional options are std::nullopt (or empty) when absent.
struct DhcpMessage {
  uint8_t op = kOpBootRequest;
  uint8_t htype = kHtypeEthernet;
  uint8_t hlen = kHlenEthernet;
  uint8_t hops = 0;
  uint32_t xid = 0;
  uint16_t secs = 0;
  uint16_t flags = 0;
  uint32_t ciaddr = 0;
  uint32_t yiaddr = 0;
  uint32_t siaddr = 0;
  uint32_t giaddr = 0;
  std::array<uint8_t, kChaddrSize> chaddr{};  // the first hlen bytes are the address
  std::array<uint8_t, kSnameSize> sname{};    // zeros when the field carried options
  std::array<uint8_t, kFileSize> file{};      // zeros when the field carried options

  std::optional<MessageType> message_type;      // 53
  std::optional<uint32_t> subnet_mask;          // 1
  std::vector<uint32_t> routers;                // 3, in the server's order of preference
  std::vector<uint32_t> domain_name_servers;    // 6
  std::optional<uint32_t> requested_ip_address; // 50
  std::optional<uint32_t> lease_time;           // 51, seconds; kInfiniteLease = infinite
  std::optional<uint32_t> server_identifier;    // 54
  std::vector<uint8_t> parameter_request_list;  // 55, option codes
  std::string message;                          // 56, the server's text (e.g. why it NAKed)
  std::optional<uint16_t> maximum_message_size; // 57, bytes
  std::optional<uint32_t> renewal_time;         // 58, T1, seconds
  std::optional<uint32_t> rebinding_time;       // 59, T2, seconds
  std::vector<uint8_t> client_identifier;       // 61: type byte, then the identifier

  /// True when the BROADCAST bit of `flags` is set.
  bool broadcast() const { return (flags & kFlagBroadcast) != 0; }

  friend bool operator==(const DhcpMessage&, const DhcpMessage&) = default;
};

/// Parses a DHCP message (the UDP payload) by the rules at the top of this file. Never reads
/// outside `bytes`. Errors: kInvalidArgument, the message naming the field.
absl::StatusOr<DhcpMessage> ParseDhcpMessage(absl::Span<const uint8_t> bytes);

/// Encodes `message`: the fixed part, the magic cookie, the options that are set — in the
/// order 53, 61, 50, 54, 51, 58, 59, 1, 3, 6, 55, 57, 56 — and end, then pad bytes up to
/// kMinBootpMessageSize. Options longer than 255 bytes are split into consecutive instances
/// (RFC 3396). Never fails. When `message.hlen` <= 16, ParseDhcpMessage of the result gives
/// `message` back (the fuzz target checks this).
std::vector<uint8_t> SerializeDhcpMessage(const DhcpMessage& message);

}  // namespace dpm::dhcp

#endif  // DPM_DHCP_DHCP_MESSAGE_H_
