// libFuzzer target: the VPM packet path (dpm::vpm::Multiplexer::Inbound/Outbound) on a table
// with three virtual streams (tcp/80 green on hidden 40000, tcp/80 blue on 40001, udp/53 green
// on 40000), a dispatcher with source rules, a cooperative client flow and a negotiated flow
// (10.77.9.9:50001 to green's hidden port 40000). A fresh
// multiplexer per input keeps every crash reproducible.
//
// Input: up to 32 records, each [flags][length: 2 bytes, big-endian][packet].
//   flags bit 0    0: inbound (link to lwIP), 1: outbound (lwIP to link)
//   flags bit 1    fix the IPv4 header checksum first
//   flags bit 2    fix the TCP/UDP checksum first
//   flags bit 3    run a bounded Sweep after the packet
//   flags 4-7      advance the clock first by kSteps[flags >> 4] (timer edges)
// Checks besides the sanitizers': a passed packet is untouched; a rewritten one keeps its
// length and IPv4 header, and a transport checksum that was correct before still is (RFC 1624
// incremental updates); a refused one is untouched and its answer (BuildRefusal) is at most
// 576 bytes with correct checksums.
//
// Seeds (fuzz/corpus/vpm_packet/): fuzz/make_vpm_seeds.py (Scapy) writes them: a TCP
// connection to each AID both ways, a retransmission, a RST, a refused SYN, UDP both ways,
// the cooperative flow, and cut packets.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "vpm/multiplexer.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace {

namespace vpm = dpm::vpm;
namespace wire = dpm::wire;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
constexpr uint64_t kSteps[16] = {0,      1000,    30000,   60000,    119999,   120000,   239999,  240000,
                                 300000, 3600000, 7439999, 7440000,  7440001,  86400000, 1,       999};

bool TransportValid(std::vector<uint8_t>& p) {
  auto ip = wire::Ipv4View::Parse(absl::MakeSpan(p));
  return ip && !ip->is_fragment() && wire::TransportChecksumValid(*ip);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vpm::PortKey web{vpm::Protocol::kTcp, 80}, dns{vpm::Protocol::kUdp, 53};
  vpm::ConfiguratorConfig config;
  config.ports = {vpm::PortPolicy{web, "blue"}, vpm::PortPolicy{dns, std::nullopt}};
  vpm::ApplicationRule green;
  green.aid = "green";
  green.ports = {web, dns};
  green.sources = {vpm::SourcePattern{Ip(10, 77, 5, 0), 24, 0, 65535}, vpm::SourcePattern{Ip(10, 77, 6, 1), 32, 1000, 1999}};
  config.applications = {green};
  const vpm::Dispatcher dispatcher(config);
  vpm::VirtualPortTable::Config table;
  table.hidden_min = 40000;
  table.hidden_max = 40003;
  vpm::VirtualPortTable ports(table);
  ports.Bind(0, web, "green", 1);
  ports.Bind(0, web, "blue", 2);
  ports.Bind(0, dns, "green", 3);
  vpm::MultiplexerConfig mc;
  mc.max_flows = 64;
  vpm::Multiplexer mux(mc, ports);
  mux.SetDispatcher(&dispatcher);
  (void)mux.AddClientFlow(0, vpm::Protocol::kTcp, Ip(10, 77, 1, 2), 50000, Ip(10, 77, 9, 9), 9000, 12760, "green");
  // A cooperative peer negotiated green's hidden port for its port 50001: passed untouched.
  (void)mux.AddNegotiatedFlow(0, web, "green", 40000, Ip(10, 77, 1, 2), Ip(10, 77, 9, 9), 50001, 10000);

  uint64_t now = 0;
  size_t at = 0;
  for (int record = 0; record < 32 && at + 3 <= size; ++record) {
    const uint8_t flags = data[at];
    const size_t length = std::min<size_t>(static_cast<size_t>(data[at + 1]) << 8 | data[at + 2], size - at - 3);
    std::vector<uint8_t> packet(data + at + 3, data + at + 3 + length);
    at += 3 + length;
    now += kSteps[flags >> 4];
    if (auto ip = wire::Ipv4View::Parse(absl::MakeSpan(packet))) {
      if (flags & 2) ip->FillChecksum();
      if ((flags & 4) && !ip->is_fragment()) wire::FillTransportChecksum(*ip);
      packet.resize(ip->total_length());
    }
    const std::vector<uint8_t> before = packet;
    const bool was_valid = TransportValid(packet);
    const vpm::Result r = (flags & 1) ? mux.Outbound(now, absl::MakeSpan(packet), false)
                                      : mux.Inbound(now, absl::MakeSpan(packet), false);
    switch (r.action) {
      case vpm::Result::kPass:
      case vpm::Result::kDrop:
        if (packet != before) std::abort();
        break;
      case vpm::Result::kRefuse: {
        if (packet != before) std::abort();
        std::vector<uint8_t> answer = vpm::Multiplexer::BuildRefusal(packet);
        if (answer.size() > 576) std::abort();
        if (!answer.empty()) {
          auto ip = wire::Ipv4View::Parse(absl::MakeSpan(answer));
          if (!ip || !ip->ChecksumValid() || !wire::TransportChecksumValid(*ip)) std::abort();
        }
        break;
      }
      case vpm::Result::kRewritten: {
        if (packet.size() != before.size()) std::abort();
        // An outbound head may be the start of a longer packet (its total length past the
        // bytes given), as lwIP's are: the header is read as a quote's.
        auto ip = wire::Ipv4View::ParseQuoted(absl::MakeSpan(packet));
        if (!ip || !std::equal(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(ip->header_length()),
                               packet.begin())) {
          std::abort();
        }
        if (was_valid && !TransportValid(packet)) std::abort();
        break;
      }
    }
    if (flags & 8) mux.Sweep(now, 16);
  }
  (void)mux.List(now);
  (void)mux.NextDeadline();
  return 0;
}
