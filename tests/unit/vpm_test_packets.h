// Packets for the VPM unit tests: IPv4 TCP/UDP packets with valid checksums, and the checks
// the tests make of them.
#ifndef DPM_TESTS_UNIT_VPM_TEST_PACKETS_H_
#define DPM_TESTS_UNIT_VPM_TEST_PACKETS_H_

#include <cstdint>
#include <vector>

#include "vpm/configurator.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::vpm {
namespace ipv4 = wire::ipv4;
namespace tcp = wire::tcp;
using wire::LoadBe16;
using wire::LoadBe32;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
inline const uint32_t kUs = Ip(10, 77, 1, 2);
inline const uint32_t kAlice = Ip(10, 77, 5, 10);  // rule: green
inline const uint32_t kBob = Ip(192, 0, 2, 7);     // no rule: the default, blue
inline const PortKey kWeb{Protocol::kTcp, 80};
inline const PortKey kDns{Protocol::kUdp, 53};
constexpr uint64_t kSecond = 1000;

inline std::vector<uint8_t> Packet(uint8_t protocol, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                                   uint8_t flags = tcp::kSyn, size_t data = 5, uint32_t seq = 1000, uint32_t ack = 0) {
  const size_t l4 = protocol == ipv4::kProtocolTcp ? tcp::kMinHeaderLength : wire::udp::kHeaderLength;
  std::vector<uint8_t> p(ipv4::kMinHeaderLength + l4 + data, 0);
  wire::Ipv4Repr r;
  r.source = src;
  r.destination = dst;
  r.protocol = protocol;
  r.payload_length = l4 + data;
  r.Emit(absl::MakeSpan(p));
  uint8_t* t = p.data() + ipv4::kMinHeaderLength;
  wire::StoreBe16(t, sport);
  wire::StoreBe16(t + 2, dport);
  if (protocol == ipv4::kProtocolTcp) {
    wire::StoreBe32(t + tcp::kSequenceOffset, seq);
    wire::StoreBe32(t + tcp::kAcknowledgmentOffset, ack);
    t[tcp::kDataOffsetOffset] = 5 << 4;
    t[tcp::kFlagsOffset] = flags;
    wire::StoreBe16(t + tcp::kWindowOffset, 65535);
  } else {
    wire::StoreBe16(t + wire::udp::kLengthOffset, static_cast<uint16_t>(l4 + data));
  }
  for (size_t i = 0; i < data; ++i) t[l4 + i] = static_cast<uint8_t>('a' + i);
  auto ip = wire::Ipv4View::Parse(absl::MakeSpan(p));
  wire::FillTransportChecksum(*ip);
  return p;
}
inline uint16_t SourcePort(const std::vector<uint8_t>& p) { return LoadBe16(p.data() + 20); }
inline uint16_t DestinationPort(const std::vector<uint8_t>& p) { return LoadBe16(p.data() + 22); }
inline bool ChecksumsValid(std::vector<uint8_t>& p) {
  auto ip = wire::Ipv4View::Parse(absl::MakeSpan(p));
  return ip && ip->ChecksumValid() && wire::TransportChecksumValid(*ip);
}

}  // namespace dpm::vpm

#endif  // DPM_TESTS_UNIT_VPM_TEST_PACKETS_H_
