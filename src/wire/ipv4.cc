#include "wire/ipv4.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "wire/checksum.h"

namespace dpm::wire {

Ipv4Error CheckIpv4Header(absl::Span<const uint8_t> bytes, bool quoted, size_t* header_length, size_t* total_length) {
  if (bytes.size() < ipv4::kMinHeaderLength) return Ipv4Error::kTooShort;
  if ((bytes[ipv4::kVersionIhlOffset] >> 4) != 4) return Ipv4Error::kBadVersion;
  const size_t header = static_cast<size_t>(bytes[ipv4::kVersionIhlOffset] & 0x0f) * 4;
  if (header < ipv4::kMinHeaderLength || header > bytes.size()) return Ipv4Error::kBadHeaderLength;
  const size_t total = LoadBe16(&bytes[ipv4::kTotalLengthOffset]);
  if (total < header || (!quoted && total > bytes.size())) return Ipv4Error::kBadTotalLength;
  *header_length = header;
  *total_length = total;
  return Ipv4Error::kOk;
}

std::optional<Ipv4View> Ipv4View::Parse(absl::Span<uint8_t> bytes, Ipv4Error* error) {
  size_t header_length = 0;
  size_t total = 0;
  const Ipv4Error result = CheckIpv4Header(bytes, /*quoted=*/false, &header_length, &total);
  if (error != nullptr) *error = result;
  if (result != Ipv4Error::kOk) return std::nullopt;
  return Ipv4View(bytes.subspan(0, total), header_length);
}

std::optional<Ipv4View> Ipv4View::ParseQuoted(absl::Span<uint8_t> bytes) {
  size_t header_length = 0;
  size_t total = 0;
  if (CheckIpv4Header(bytes, /*quoted=*/true, &header_length, &total) != Ipv4Error::kOk) return std::nullopt;
  // The quote holds the start of the packet: never more than its total length.
  return Ipv4View(bytes.subspan(0, std::min(total, bytes.size())), header_length);
}

uint16_t Ipv4View::ComputeChecksum() const {
  uint64_t sum = OnesComplementSum(bytes_.subspan(0, ipv4::kChecksumOffset));
  sum = OnesComplementSum(bytes_.subspan(ipv4::kChecksumOffset + 2, header_length_ - ipv4::kChecksumOffset - 2), sum);
  return static_cast<uint16_t>(~FoldSum(sum));
}

bool Ipv4View::ChecksumValid() const { return InternetChecksum(header()) == 0; }

std::optional<TcpView> TcpView::Parse(absl::Span<uint8_t> segment) {
  if (segment.size() < tcp::kMinHeaderLength) return std::nullopt;
  const size_t header_length = static_cast<size_t>(segment[tcp::kDataOffsetOffset] >> 4) * 4;
  if (header_length < tcp::kMinHeaderLength || header_length > segment.size()) return std::nullopt;
  return TcpView(segment);
}

std::optional<UdpView> UdpView::Parse(absl::Span<uint8_t> datagram) {
  if (datagram.size() < udp::kHeaderLength) return std::nullopt;
  const size_t length = LoadBe16(&datagram[udp::kLengthOffset]);
  if (length < udp::kHeaderLength || length > datagram.size()) return std::nullopt;
  return UdpView(datagram.subspan(0, length));
}

std::optional<IcmpView> IcmpView::Parse(absl::Span<uint8_t> message) {
  if (message.size() < icmp::kHeaderLength) return std::nullopt;
  return IcmpView(message);
}

uint16_t IcmpView::ComputeChecksum() const {
  uint64_t sum = OnesComplementSum(bytes_.subspan(0, icmp::kChecksumOffset));
  sum = OnesComplementSum(bytes_.subspan(icmp::kChecksumOffset + 2), sum);
  return static_cast<uint16_t>(~FoldSum(sum));
}

bool IcmpView::ChecksumValid() const { return InternetChecksum(bytes_) == 0; }

std::optional<QuotedTransport> QuotedTransport::Parse(absl::Span<uint8_t> bytes, uint8_t protocol) {
  if (bytes.size() < 8) return std::nullopt;
  if (protocol != ipv4::kProtocolTcp && protocol != ipv4::kProtocolUdp && protocol != ipv4::kProtocolIcmp) {
    return std::nullopt;
  }
  return QuotedTransport(bytes, protocol);
}

uint16_t QuotedTransport::source_port() const {
  if (protocol_ == ipv4::kProtocolIcmp) return LoadBe16(&bytes_[icmp::kIdentifierOffset]);
  return LoadBe16(&bytes_[0]);  // TCP and UDP: the source port first
}

uint16_t QuotedTransport::destination_port() const {
  if (protocol_ == ipv4::kProtocolIcmp) return 0;
  return LoadBe16(&bytes_[2]);
}

std::optional<size_t> QuotedTransport::checksum_offset() const {
  size_t offset = 0;
  switch (protocol_) {
    case ipv4::kProtocolTcp: offset = tcp::kChecksumOffset; break;
    case ipv4::kProtocolUdp: offset = udp::kChecksumOffset; break;
    default: offset = icmp::kChecksumOffset; break;
  }
  if (offset + 2 > bytes_.size()) return std::nullopt;
  return offset;
}

namespace {

// The checksum field of the transport header in `payload`, or nullopt when absent.
std::optional<size_t> ChecksumOffsetOf(uint8_t protocol, size_t payload_size) {
  size_t offset = 0;
  switch (protocol) {
    case ipv4::kProtocolTcp: offset = tcp::kChecksumOffset; break;
    case ipv4::kProtocolUdp: offset = udp::kChecksumOffset; break;
    case ipv4::kProtocolIcmp: offset = icmp::kChecksumOffset; break;
    default: return std::nullopt;
  }
  if (offset + 2 > payload_size) return std::nullopt;
  return offset;
}

}  // namespace

bool TransportChecksumValid(const Ipv4View& ip) {
  absl::Span<const uint8_t> payload = ip.payload();
  const std::optional<size_t> offset = ChecksumOffsetOf(ip.protocol(), payload.size());
  if (!offset || ip.is_fragment() || payload.size() > 0xffff) return false;
  if (ip.protocol() == ipv4::kProtocolIcmp) return InternetChecksum(payload) == 0;
  if (ip.protocol() == ipv4::kProtocolUdp && LoadBe16(&payload[*offset]) == 0) return true;
  return TransportChecksum(ip.source(), ip.destination(), ip.protocol(), payload) == 0;
}

void FillTransportChecksum(const Ipv4View& ip) {
  absl::Span<uint8_t> payload = ip.payload();
  const std::optional<size_t> offset = ChecksumOffsetOf(ip.protocol(), payload.size());
  if (!offset || ip.is_fragment() || payload.size() > 0xffff) return;
  StoreBe16(&payload[*offset], 0);
  uint16_t c = 0;
  if (ip.protocol() == ipv4::kProtocolIcmp) {
    c = InternetChecksum(payload);
  } else {
    c = TransportChecksum(ip.source(), ip.destination(), ip.protocol(), payload);
    if (ip.protocol() == ipv4::kProtocolUdp) c = UdpChecksumOnWire(c);
  }
  StoreBe16(&payload[*offset], c);
}

bool Ipv4Repr::Emit(absl::Span<uint8_t> out) const {
  if (out.size() < ipv4::kMinHeaderLength || buffer_len() > 0xffff) return false;
  uint8_t* p = out.data();
  p[ipv4::kVersionIhlOffset] = 0x45;
  p[ipv4::kTosOffset] = tos;
  StoreBe16(p + ipv4::kTotalLengthOffset, static_cast<uint16_t>(buffer_len()));
  StoreBe16(p + ipv4::kIdentificationOffset, identification);
  StoreBe16(p + ipv4::kFlagsFragmentOffset, flags_fragment);
  p[ipv4::kTtlOffset] = ttl;
  p[ipv4::kProtocolOffset] = protocol;
  StoreBe16(p + ipv4::kChecksumOffset, 0);
  StoreBe32(p + ipv4::kSourceOffset, source);
  StoreBe32(p + ipv4::kDestinationOffset, destination);
  StoreBe16(p + ipv4::kChecksumOffset, InternetChecksum(out.subspan(0, ipv4::kMinHeaderLength)));
  return true;
}

std::vector<uint8_t> BuildIcmpError(uint32_t source, uint8_t type, uint8_t code, uint32_t rest_of_header,
                                    absl::Span<const uint8_t> offending, uint8_t ttl) {
  constexpr size_t kMaxDatagram = 576;  // RFC 1812 §4.3.2.3
  std::vector<uint8_t> copy(offending.begin(), offending.end());
  std::optional<Ipv4View> bad = Ipv4View::Parse(absl::MakeSpan(copy));
  if (!bad || bad->fragment_offset() != 0) return {};
  if (bad->protocol() == ipv4::kProtocolIcmp) {
    if (bad->payload().empty() || !icmp::IsQuery(bad->payload()[icmp::kTypeOffset])) return {};
  }
  const size_t quote = std::min(bad->bytes().size(), kMaxDatagram - ipv4::kMinHeaderLength - icmp::kHeaderLength);
  Ipv4Repr repr;
  repr.source = source;
  repr.destination = bad->source();
  repr.protocol = ipv4::kProtocolIcmp;
  repr.ttl = ttl;
  repr.payload_length = icmp::kHeaderLength + quote;
  std::vector<uint8_t> out(repr.buffer_len());
  repr.Emit(absl::MakeSpan(out));
  uint8_t* m = out.data() + ipv4::kMinHeaderLength;
  m[icmp::kTypeOffset] = type;
  m[icmp::kCodeOffset] = code;
  StoreBe32(m + icmp::kRestOfHeaderOffset, rest_of_header);
  std::copy_n(bad->bytes().data(), quote, m + icmp::kHeaderLength);
  std::optional<IcmpView> message = IcmpView::Parse(absl::MakeSpan(m, repr.payload_length));
  message->FillChecksum();
  return out;
}

std::string FormatIpv4(uint32_t a) {
  return absl::StrFormat("%d.%d.%d.%d", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

bool ParseIpv4(absl::string_view text, uint32_t* address) {
  in_addr a{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) return false;
  *address = ntohl(a.s_addr);
  return true;
}

bool ParseIpv4Prefix(absl::string_view text, int default_length, uint32_t* address, int* length) {
  const size_t slash = text.find('/');
  if (!ParseIpv4(text.substr(0, slash), address)) return false;
  if (slash == absl::string_view::npos) {
    *length = default_length;
    return true;
  }
  return absl::SimpleAtoi(text.substr(slash + 1), length) && *length >= 0 && *length <= 32;
}

}  // namespace dpm::wire
