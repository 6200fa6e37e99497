// Zero-copy views over IPv4 packets and their TCP, UDP and ICMP headers (RFC 791, RFC 9293,
// RFC 768, RFC 792), for code that rewrites packets in place (the NAT engine).
//
// Untrusted bytes enter only through a checked Parse(); a view that exists has every byte its
// accessors touch, so they never read or write out of bounds. Fields are big-endian on the
// wire and host order in the accessors; offsets are the named constants below. Setters write
// the field only: checksum maintenance is the caller's (wire/checksum.h), because a NAT
// updates several fields at once and folds the change into each checksum once.
#ifndef DPM_WIRE_IPV4_H_
#define DPM_WIRE_IPV4_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dpm::wire {

inline uint16_t LoadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t LoadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  StoreBe16(p, static_cast<uint16_t>(v >> 16));
  StoreBe16(p + 2, static_cast<uint16_t>(v));
}

namespace ipv4 {
// RFC 791 §3.1.
inline constexpr size_t kVersionIhlOffset = 0;
inline constexpr size_t kTosOffset = 1;
inline constexpr size_t kTotalLengthOffset = 2;
inline constexpr size_t kIdentificationOffset = 4;
inline constexpr size_t kFlagsFragmentOffset = 6;
inline constexpr size_t kTtlOffset = 8;
inline constexpr size_t kProtocolOffset = 9;
inline constexpr size_t kChecksumOffset = 10;
inline constexpr size_t kSourceOffset = 12;
inline constexpr size_t kDestinationOffset = 16;
inline constexpr size_t kMinHeaderLength = 20;
inline constexpr size_t kMaxHeaderLength = 60;
inline constexpr uint16_t kFlagDontFragment = 0x4000;
inline constexpr uint16_t kFlagMoreFragments = 0x2000;
inline constexpr uint16_t kFragmentOffsetMask = 0x1fff;
inline constexpr uint8_t kProtocolIcmp = 1;
inline constexpr uint8_t kProtocolTcp = 6;
inline constexpr uint8_t kProtocolUdp = 17;
}  // namespace ipv4

namespace tcp {
// RFC 9293 §3.1.
inline constexpr size_t kSourcePortOffset = 0;
inline constexpr size_t kDestinationPortOffset = 2;
inline constexpr size_t kSequenceOffset = 4;
inline constexpr size_t kAcknowledgmentOffset = 8;
inline constexpr size_t kDataOffsetOffset = 12;  // high nibble, in 32-bit words
inline constexpr size_t kFlagsOffset = 13;
inline constexpr size_t kWindowOffset = 14;
inline constexpr size_t kChecksumOffset = 16;
inline constexpr size_t kUrgentPointerOffset = 18;
inline constexpr size_t kMinHeaderLength = 20;
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
inline constexpr uint8_t kUrg = 0x20;
inline constexpr uint8_t kEce = 0x40;  // RFC 3168 §6.1
inline constexpr uint8_t kCwr = 0x80;
}  // namespace tcp

namespace udp {
// RFC 768.
inline constexpr size_t kSourcePortOffset = 0;
inline constexpr size_t kDestinationPortOffset = 2;
inline constexpr size_t kLengthOffset = 4;
inline constexpr size_t kChecksumOffset = 6;
inline constexpr size_t kHeaderLength = 8;
}  // namespace udp

namespace icmp {
// RFC 792.
inline constexpr size_t kTypeOffset = 0;
inline constexpr size_t kCodeOffset = 1;
inline constexpr size_t kChecksumOffset = 2;
inline constexpr size_t kIdentifierOffset = 4;  // query messages (echo, timestamp)
inline constexpr size_t kSequenceOffset = 6;
inline constexpr size_t kRestOfHeaderOffset = 4;  // error messages: unused / pointer / next-hop MTU
inline constexpr size_t kHeaderLength = 8;
inline constexpr uint8_t kEchoReply = 0;
inline constexpr uint8_t kDestinationUnreachable = 3;
inline constexpr uint8_t kSourceQuench = 4;
inline constexpr uint8_t kRedirect = 5;
inline constexpr uint8_t kEchoRequest = 8;
inline constexpr uint8_t kTimeExceeded = 11;
inline constexpr uint8_t kParameterProblem = 12;
inline constexpr uint8_t kTimestamp = 13;
inline constexpr uint8_t kTimestampReply = 14;
// Destination unreachable codes used by a NAT (RFC 792, RFC 1812 §5.2.7.1).
inline constexpr uint8_t kCodePortUnreachable = 3;
inline constexpr uint8_t kCodeFragmentationNeeded = 4;
inline constexpr uint8_t kCodeAdministrativelyProhibited = 13;
// Time exceeded codes.
inline constexpr uint8_t kCodeTtlExceeded = 0;

/// Query messages carry an identifier a NAPT translates like a port (RFC 5508 §3).
inline bool IsQueryRequest(uint8_t type) { return type == kEchoRequest || type == kTimestamp; }
inline bool IsQueryReply(uint8_t type) { return type == kEchoReply || type == kTimestampReply; }
inline bool IsQuery(uint8_t type) { return IsQueryRequest(type) || IsQueryReply(type); }
/// Error messages quote the offending packet's IP header and at least 8 bytes after it
/// (RFC 5508 §4.1). Source quench is deprecated (RFC 6633) and redirect has no NAT meaning.
inline bool IsTranslatedError(uint8_t type) {
  return type == kDestinationUnreachable || type == kTimeExceeded || type == kParameterProblem;
}
}  // namespace icmp

enum class Ipv4Error : uint8_t {
  kOk = 0,
  kTooShort,         // fewer than 20 bytes
  kBadVersion,       // version nibble not 4
  kBadHeaderLength,  // IHL < 5 or the header runs past the bytes given
  kBadTotalLength,   // total length < header length, or more than the bytes given
};

/// The checks of an IPv4 header's fixed part (RFC 791 §3.1), the one implementation that
/// Ipv4View::Parse, Ipv4View::ParseQuoted and wire::CheckIpv4 (wire/ip.h) share, in this order:
/// at least 20 bytes (kTooShort), version 4 (kBadVersion), 20 <= IHL * 4 <= the bytes given
/// (kBadHeaderLength), total length >= the header and, unless `quoted`, <= the bytes given
/// (kBadTotalLength). `quoted`: the bytes are the start of a packet (an ICMP error's quote), so
/// the total length may run past them. On kOk, `*header_length` and `*total_length` get the
/// header and total lengths in bytes. Network byte order in `bytes`.
Ipv4Error CheckIpv4Header(absl::Span<const uint8_t> bytes, bool quoted, size_t* header_length, size_t* total_length);

/// A view over one IPv4 packet. Made by Parse (a whole packet: trailing bytes after the total
/// length, such as link padding, are outside the view) or ParseQuoted (the start of a packet
/// quoted in an ICMP error: the header is complete, the rest may be cut short).
class Ipv4View {
 public:
  static std::optional<Ipv4View> Parse(absl::Span<uint8_t> bytes, Ipv4Error* error = nullptr);
  static std::optional<Ipv4View> ParseQuoted(absl::Span<uint8_t> bytes);

  size_t header_length() const { return header_length_; }
  uint16_t total_length() const { return LoadBe16(&bytes_[ipv4::kTotalLengthOffset]); }
  uint8_t tos() const { return bytes_[ipv4::kTosOffset]; }
  uint16_t identification() const { return LoadBe16(&bytes_[ipv4::kIdentificationOffset]); }
  uint16_t flags_fragment() const { return LoadBe16(&bytes_[ipv4::kFlagsFragmentOffset]); }
  bool dont_fragment() const { return flags_fragment() & ipv4::kFlagDontFragment; }
  bool more_fragments() const { return flags_fragment() & ipv4::kFlagMoreFragments; }
  /// In 8-byte units.
  uint16_t fragment_offset() const { return flags_fragment() & ipv4::kFragmentOffsetMask; }
  /// Any fragment, the first included: only the first has the transport header, so a NAT
  /// translates the others by what it did to the first (RFC 4787 §11; docs/nat.md).
  bool is_fragment() const { return more_fragments() || fragment_offset() != 0; }
  uint8_t ttl() const { return bytes_[ipv4::kTtlOffset]; }
  uint8_t protocol() const { return bytes_[ipv4::kProtocolOffset]; }
  uint16_t checksum() const { return LoadBe16(&bytes_[ipv4::kChecksumOffset]); }
  uint32_t source() const { return LoadBe32(&bytes_[ipv4::kSourceOffset]); }
  uint32_t destination() const { return LoadBe32(&bytes_[ipv4::kDestinationOffset]); }

  void set_ttl(uint8_t ttl) { bytes_[ipv4::kTtlOffset] = ttl; }
  void set_checksum(uint16_t c) { StoreBe16(&bytes_[ipv4::kChecksumOffset], c); }
  void set_source(uint32_t a) { StoreBe32(&bytes_[ipv4::kSourceOffset], a); }
  void set_destination(uint32_t a) { StoreBe32(&bytes_[ipv4::kDestinationOffset], a); }

  /// The header, options included.
  absl::Span<uint8_t> header() const { return bytes_.subspan(0, header_length_); }
  /// The bytes after the header, up to the total length (or the end of a quote).
  absl::Span<uint8_t> payload() const { return bytes_.subspan(header_length_); }
  /// The packet: header and payload.
  absl::Span<uint8_t> bytes() const { return bytes_; }

  /// RFC 791 header checksum over the header as it is now (the field counted as zero).
  uint16_t ComputeChecksum() const;
  bool ChecksumValid() const;
  void FillChecksum() { set_checksum(ComputeChecksum()); }

 private:
  Ipv4View(absl::Span<uint8_t> bytes, size_t header_length) : bytes_(bytes), header_length_(header_length) {}
  absl::Span<uint8_t> bytes_;
  size_t header_length_;
};

/// A TCP header (RFC 9293 §3.1); Parse checks the data offset against the segment.
class TcpView {
 public:
  static std::optional<TcpView> Parse(absl::Span<uint8_t> segment);

  uint16_t source_port() const { return LoadBe16(&bytes_[tcp::kSourcePortOffset]); }
  uint16_t destination_port() const { return LoadBe16(&bytes_[tcp::kDestinationPortOffset]); }
  uint32_t sequence() const { return LoadBe32(&bytes_[tcp::kSequenceOffset]); }
  uint32_t acknowledgment() const { return LoadBe32(&bytes_[tcp::kAcknowledgmentOffset]); }
  size_t header_length() const { return static_cast<size_t>(bytes_[tcp::kDataOffsetOffset] >> 4) * 4; }
  uint8_t flags() const { return bytes_[tcp::kFlagsOffset]; }
  uint16_t checksum() const { return LoadBe16(&bytes_[tcp::kChecksumOffset]); }

  void set_source_port(uint16_t p) { StoreBe16(&bytes_[tcp::kSourcePortOffset], p); }
  void set_destination_port(uint16_t p) { StoreBe16(&bytes_[tcp::kDestinationPortOffset], p); }
  void set_checksum(uint16_t c) { StoreBe16(&bytes_[tcp::kChecksumOffset], c); }

  absl::Span<uint8_t> bytes() const { return bytes_; }

 private:
  explicit TcpView(absl::Span<uint8_t> bytes) : bytes_(bytes) {}
  absl::Span<uint8_t> bytes_;
};

/// A UDP header (RFC 768); Parse checks 8 <= length field <= the bytes given.
class UdpView {
 public:
  static std::optional<UdpView> Parse(absl::Span<uint8_t> datagram);

  uint16_t source_port() const { return LoadBe16(&bytes_[udp::kSourcePortOffset]); }
  uint16_t destination_port() const { return LoadBe16(&bytes_[udp::kDestinationPortOffset]); }
  uint16_t length() const { return LoadBe16(&bytes_[udp::kLengthOffset]); }
  /// 0: the sender computed none (RFC 768), and a NAT must leave it 0.
  uint16_t checksum() const { return LoadBe16(&bytes_[udp::kChecksumOffset]); }

  void set_source_port(uint16_t p) { StoreBe16(&bytes_[udp::kSourcePortOffset], p); }
  void set_destination_port(uint16_t p) { StoreBe16(&bytes_[udp::kDestinationPortOffset], p); }
  void set_checksum(uint16_t c) { StoreBe16(&bytes_[udp::kChecksumOffset], c); }

  /// Header and data, to the length field.
  absl::Span<uint8_t> bytes() const { return bytes_; }

 private:
  explicit UdpView(absl::Span<uint8_t> bytes) : bytes_(bytes) {}
  absl::Span<uint8_t> bytes_;
};

/// An ICMP message (RFC 792): the 8-byte header and the body after it.
class IcmpView {
 public:
  static std::optional<IcmpView> Parse(absl::Span<uint8_t> message);

  uint8_t type() const { return bytes_[icmp::kTypeOffset]; }
  uint8_t code() const { return bytes_[icmp::kCodeOffset]; }
  uint16_t checksum() const { return LoadBe16(&bytes_[icmp::kChecksumOffset]); }
  /// Query messages only.
  uint16_t identifier() const { return LoadBe16(&bytes_[icmp::kIdentifierOffset]); }
  uint16_t sequence() const { return LoadBe16(&bytes_[icmp::kSequenceOffset]); }

  void set_checksum(uint16_t c) { StoreBe16(&bytes_[icmp::kChecksumOffset], c); }
  void set_identifier(uint16_t id) { StoreBe16(&bytes_[icmp::kIdentifierOffset], id); }

  /// Error messages: the quoted packet; query messages: the data.
  absl::Span<uint8_t> body() const { return bytes_.subspan(icmp::kHeaderLength); }
  absl::Span<uint8_t> bytes() const { return bytes_; }

  uint16_t ComputeChecksum() const;
  bool ChecksumValid() const;
  void FillChecksum() { set_checksum(ComputeChecksum()); }

 private:
  explicit IcmpView(absl::Span<uint8_t> bytes) : bytes_(bytes) {}
  absl::Span<uint8_t> bytes_;
};

/// The transport header of a packet quoted in an ICMP error: at least its first 8 bytes
/// (RFC 792), which hold both ports of TCP and UDP and the type, code, checksum and identifier
/// of an ICMP query. The TCP checksum (bytes 16-17) is there only in longer quotes.
class QuotedTransport {
 public:
  static std::optional<QuotedTransport> Parse(absl::Span<uint8_t> bytes, uint8_t protocol);

  uint8_t protocol() const { return protocol_; }
  /// TCP/UDP: the ports. ICMP query: the identifier as source "port", 0 as destination.
  uint16_t source_port() const;
  uint16_t destination_port() const;
  uint8_t icmp_type() const { return bytes_[icmp::kTypeOffset]; }
  /// The offset of the checksum field, when the quote contains all of it.
  std::optional<size_t> checksum_offset() const;
  absl::Span<uint8_t> bytes() const { return bytes_; }

 private:
  QuotedTransport(absl::Span<uint8_t> bytes, uint8_t protocol) : bytes_(bytes), protocol_(protocol) {}
  absl::Span<uint8_t> bytes_;
  uint8_t protocol_;
};

/// True when the TCP, UDP or ICMP checksum of an unfragmented packet is correct (a UDP
/// checksum of 0 counts as correct: none was sent). False for other protocols.
bool TransportChecksumValid(const Ipv4View& ip);
/// Computes and writes the TCP, UDP or ICMP checksum of an unfragmented packet. No-op for
/// other protocols and for payloads too short to hold the checksum field.
void FillTransportChecksum(const Ipv4View& ip);

/// "198.51.100.10": `address` (host byte order) in dotted-quad form, for logs and status.
std::string FormatIpv4(uint32_t address);
/// The other way: dotted-quad `text` → *address (host byte order). False if it is not one.
bool ParseIpv4(absl::string_view text, uint32_t* address);
/// "A.B.C.D/LEN" → *address (host byte order) and *length (0..32); "A.B.C.D" → *length =
/// `default_length`. False for anything else (the caller may narrow the range of *length).
bool ParseIpv4Prefix(absl::string_view text, int default_length, uint32_t* address, int* length);

/// The value part of an IPv4 header (smoltcp's Repr): what a sender chooses.
struct Ipv4Repr {
  uint32_t source = 0;
  uint32_t destination = 0;
  uint8_t protocol = 0;
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t identification = 0;
  uint16_t flags_fragment = 0;  // flags and offset, as on the wire
  size_t payload_length = 0;

  size_t buffer_len() const { return ipv4::kMinHeaderLength + payload_length; }
  /// Writes a 20-byte header (no options) with its checksum into out[0, 20). Returns false,
  /// writing nothing, when `out` is shorter than 20 bytes or the total exceeds 65535.
  bool Emit(absl::Span<uint8_t> out) const;
};

/// An ICMP error about `offending` (an IPv4 packet the caller could not forward), from
/// `source` back to the offending packet's source: the offending IP header and as much of
/// its payload as fits in 576 bytes in all (RFC 1812 §4.3.2.3). `rest_of_header` fills bytes
/// 4-7 (the next-hop MTU of "fragmentation needed", RFC 1191). Empty when no error may be
/// sent (RFC 1812 §4.3.2.7): `offending` is not a whole IPv4 packet, is itself an ICMP error,
/// or is a fragment other than the first.
std::vector<uint8_t> BuildIcmpError(uint32_t source, uint8_t type, uint8_t code, uint32_t rest_of_header,
                                    absl::Span<const uint8_t> offending, uint8_t ttl = 64);

}  // namespace dpm::wire

#endif  // DPM_WIRE_IPV4_H_
