// libFuzzer target: TUN offload (src/wire/offload.h) — what dpm does with a virtio-net header
// and the packet after it when the packet goes somewhere without offload.
//
// Input: [virtio-net header: 10 bytes][IPv4 packet]. Checks besides the sanitizers': a header
// that parses serializes back to one that parses the same; a completed checksum makes the
// transport checksum verify; segmentation emits segments that each are at most the headers
// plus segment_size bytes, carry valid IP and TCP checksums, and whose payloads joined are
// the super-packet's payload. (For completion the field is first set to the pseudo-header sum,
// the kernel's side of the contract; the rest of the packet is the fuzzer's.)
//
// Seeds (fuzz/corpus/offload/): a TCPv4 super-packet with GSO, a TCP and a UDP packet with a
// partial checksum, and a packet with no offload; made by fuzz/make_offload_seeds.py.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/checksum.h"
#include "wire/ipv4.h"
#include "wire/offload.h"

namespace wire = dpm::wire;

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<wire::Offload> offload =
      wire::ParseVirtioNetHeader(absl::MakeConstSpan(data, std::min(size, wire::kVirtioNetHeaderSize)));
  if (!offload || size < wire::kVirtioNetHeaderSize) return 0;
  uint8_t again[wire::kVirtioNetHeaderSize];
  wire::SerializeVirtioNetHeader(*offload, again);
  std::optional<wire::Offload> back = wire::ParseVirtioNetHeader(again);
  Check(back && back->partial_checksum == offload->partial_checksum &&
        back->tcp_segmentation == offload->tcp_segmentation && back->segment_size == offload->segment_size &&
        back->checksum_start == offload->checksum_start && back->checksum_offset == offload->checksum_offset);

  std::vector<uint8_t> packet(data + wire::kVirtioNetHeaderSize, data + size);
  (void)wire::IsTransportOffload(packet, *offload);
  if (offload->tcp_segmentation) {
    std::vector<uint8_t> scratch, payload;
    size_t headers = 0;
    const size_t n = wire::SegmentTcpV4(packet, *offload, scratch, [&](absl::Span<const uint8_t> s) {
      std::vector<uint8_t> copy(s.begin(), s.end());
      std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(absl::MakeSpan(copy));
      Check(ip && ip->ChecksumValid());
      Check(wire::TransportChecksum(ip->source(), ip->destination(), ip->protocol(), ip->payload()) == 0);
      headers = ip->header_length() + (size_t{ip->payload()[wire::tcp::kDataOffsetOffset]} >> 4) * 4;
      Check(s.size() <= headers + offload->segment_size);
      payload.insert(payload.end(), s.begin() + headers, s.end());
    });
    if (n > 0) {
      const size_t total = wire::LoadBe16(&packet[wire::ipv4::kTotalLengthOffset]);
      Check(payload.size() == total - headers);
      Check(payload.empty() || std::memcmp(payload.data(), packet.data() + headers, payload.size()) == 0);
    }
  } else if (wire::IsTransportOffload(packet, *offload)) {
    packet.resize(wire::LoadBe16(&packet[wire::ipv4::kTotalLengthOffset]));  // as the links trim it
    std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(absl::MakeSpan(packet));
    if (ip) {
      // The kernel's side of the contract: the field holds the pseudo-header sum.
      const size_t field = size_t{offload->checksum_start} + offload->checksum_offset;
      wire::StoreBe16(&packet[field],
                      wire::FoldSum(wire::PseudoHeaderSum(ip->source(), ip->destination(), ip->protocol(),
                                                          static_cast<uint16_t>(ip->payload().size()))));
    }
    Check(wire::CompleteChecksum(absl::MakeSpan(packet), *offload));
    if (ip) Check(wire::TransportChecksum(ip->source(), ip->destination(), ip->protocol(), ip->payload()) == 0);
  } else {
    (void)wire::CompleteChecksum(absl::MakeSpan(packet), *offload);
  }
  return 0;
}
