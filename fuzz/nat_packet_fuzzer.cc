// libFuzzer target: the NAT engine's packet path (dpm::nat::NatEngine::FromInside/FromOutside)
// on an engine that already holds NAPT, DPM and explicit-mapping sessions. A fresh engine per
// input keeps every crash reproducible.
//
// Input: up to 16 records, each [flags][aim][length: 2 bytes, big-endian][packet].
//   flags bit 0    0: from inside, 1: from outside
//   flags bit 1    fix the IPv4 header checksum first (else almost every input dies there)
//   flags bit 2    fix the TCP/UDP/ICMP checksum first (for an ICMP error, also the quoted
//                  IP header checksum)
//   flags bit 3    aim the packet at live session number (aim & 0x1f): rewrite its addresses
//                  and ports (for an ICMP error, the outer destination and the quote) to
//                  that session's, so inputs reach the translation code without guessing
//                  random ports
//   flags 4-7      advance the clock first by kSteps[flags >> 4] (timer edges)
//   aim bit 7      run a bounded Sweep after the packet
// Checks besides the sanitizers': a forwarded packet keeps its length and has a correct IPv4
// header checksum, and a transport checksum that was correct before still is (RFC 1624
// incremental updates); kToGateway, kHeld and kTtlExceeded leave the packet untouched; held
// fragments released by a first fragment (drained after every record) are as many as its
// Result says and have correct IPv4 header checksums; the fragment limits hold.
//
// Seeds (fuzz/corpus/nat_packet/): this file compiled with -DNAT_FUZZ_WRITE_SEEDS has a
// main(DIR) that writes them — compile it with -Isrc and link it like a unit test of dpm_core
// (libdpm_core.a, libdpm_wire.a and their Abseil libraries). Each seed is one valid exchange
// (NAPT UDP, TCP open/close, ICMP echo, DPM, ICMP errors both ways, hairpin to a MAP mapping)
// or the bad input the engine must drop (a cut packet, TTL 1), and fragments (a datagram in
// order, one out of order from outside, and a lone later fragment).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nat/nat_engine.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace {

using dpm::nat::Endpoint;
using dpm::nat::NatConfig;
using dpm::nat::NatEngine;
using dpm::nat::Protocol;
using dpm::nat::Verdict;
namespace wire = dpm::wire;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
constexpr uint32_t kGateway = Ip(10, 77, 0, 1);
constexpr uint32_t kHostA = Ip(10, 77, 1, 10);
constexpr uint32_t kHostB = Ip(10, 77, 1, 11);
constexpr uint32_t kRemote1 = Ip(198, 51, 100, 10);
constexpr uint32_t kRemote2 = Ip(198, 51, 100, 20);
constexpr uint64_t kSteps[16] = {0,      1000,    30000,   59999,    60000,    119999,   120000,   239999,
                                 240000, 299999,  300000,  3600000,  7439999,  7440000,  86400000, 90000000};

NatConfig FuzzConfig() {
  NatConfig c;
  c.external_addresses = {Ip(203, 0, 113, 1), Ip(203, 0, 113, 2)};
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = kGateway;
  c.gateway_outside_address = Ip(203, 0, 113, 2);  // also a pool address: both paths
  c.per_host_quota = 64;
  c.max_sessions = 256;
  // Small fragment limits, so inputs reach them.
  c.max_fragment_records = 8;
  c.max_held_datagrams = 4;
  c.max_held_fragments_per_datagram = 4;
  c.max_held_fragment_bytes = 4096;
  c.seed = 1;
  return c;
}

// A packet with valid checksums (the seeds' building block).
std::vector<uint8_t> Packet(uint32_t src, uint32_t dst, uint8_t protocol, std::vector<uint8_t> l4, uint8_t ttl = 64) {
  wire::Ipv4Repr repr;
  repr.source = src;
  repr.destination = dst;
  repr.protocol = protocol;
  repr.ttl = ttl;
  repr.payload_length = l4.size();
  std::vector<uint8_t> p(repr.buffer_len());
  repr.Emit(absl::MakeSpan(p));
  std::memcpy(p.data() + 20, l4.data(), l4.size());
  wire::FillTransportChecksum(*wire::Ipv4View::Parse(absl::MakeSpan(p)));
  return p;
}

std::vector<uint8_t> Udp(Endpoint s, Endpoint d) {
  std::vector<uint8_t> l4 = {0, 0, 0, 0, 0, 12, 0, 0, 'd', 'a', 't', 'a'};
  wire::StoreBe16(&l4[0], s.port);
  wire::StoreBe16(&l4[2], d.port);
  return Packet(s.address, d.address, wire::ipv4::kProtocolUdp, l4);
}

std::vector<uint8_t> Tcp(Endpoint s, Endpoint d, uint8_t flags) {
  std::vector<uint8_t> l4(20, 0);
  wire::StoreBe16(&l4[0], s.port);
  wire::StoreBe16(&l4[2], d.port);
  l4[12] = 0x50;
  l4[13] = flags;
  return Packet(s.address, d.address, wire::ipv4::kProtocolTcp, l4);
}

std::vector<uint8_t> Echo(uint32_t s, uint32_t d, uint8_t type, uint16_t id) {
  std::vector<uint8_t> l4 = {type, 0, 0, 0, 0, 0, 0, 1, 'p', 'i', 'n', 'g'};
  wire::StoreBe16(&l4[4], id);
  return Packet(s, d, wire::ipv4::kProtocolIcmp, l4);
}

// The engine every input starts from: NAPT UDP/TCP/ICMP flows, a fixed-port DPM session, a
// replaceable DPM session and an explicit mapping.
void Populate(NatEngine& engine) {
  std::vector<std::vector<uint8_t>> packets = {Udp({kHostA, 40000}, {kRemote1, 53}),
                                               Tcp({kHostA, 40001}, {kRemote1, 80}, 0x02),
                                               Echo(kHostA, kRemote1, 8, 7)};
  for (auto& p : packets) engine.FromInside(0, absl::MakeSpan(p));
  engine.RequestDpm(0, {Protocol::kUdp, {kHostA, 5060}, {kRemote2, 5060}, {Ip(203, 0, 113, 1), 0}, true, 3600});
  engine.RequestDpm(0, {Protocol::kTcp, {kHostB, 6000}, {kRemote2, 443}, {Ip(203, 0, 113, 2), 6000}, false, 600});
  engine.RequestMap(0, Protocol::kUdp, {kHostB, 7000}, {Ip(203, 0, 113, 1), 7000}, 600);
}

// Rewrites `p` (a whole IPv4 packet) to belong to `s`, as seen from one side.
void Aim(std::vector<uint8_t>& p, const NatEngine::SessionInfo& s, bool from_outside) {
  std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(absl::MakeSpan(p));
  if (!ip) return;
  const Endpoint inside_peer = s.dpm ? s.gateway_endpoint : s.remote;
  Endpoint src = from_outside ? s.remote : s.internal;
  Endpoint dst = from_outside ? s.external : inside_peer;
  absl::Span<uint8_t> l4 = ip->payload();
  if (ip->protocol() == wire::ipv4::kProtocolIcmp && l4.size() >= 8 && wire::icmp::IsTranslatedError(l4[0])) {
    // The quote runs the other way: what the NAT sent out, or what the host received.
    std::optional<wire::Ipv4View> q = wire::Ipv4View::ParseQuoted(l4.subspan(8));
    if (q && q->payload().size() >= 4) {
      q->set_source(from_outside ? s.external.address : inside_peer.address);
      q->set_destination(from_outside ? s.remote.address : s.internal.address);
      wire::StoreBe16(&q->payload()[0], from_outside ? s.external.port : inside_peer.port);
      wire::StoreBe16(&q->payload()[2], from_outside ? s.remote.port : s.internal.port);
    }
    ip->set_destination(from_outside ? s.external.address : inside_peer.address);
    return;
  }
  ip->set_source(src.address);
  ip->set_destination(dst.address);
  if (ip->protocol() == wire::ipv4::kProtocolIcmp && l4.size() >= 8) {
    wire::StoreBe16(&l4[4], from_outside ? s.external.port : s.internal.port);
  } else if (l4.size() >= 4) {
    wire::StoreBe16(&l4[0], src.port);
    wire::StoreBe16(&l4[2], dst.port);
  }
}

void FixChecksums(std::vector<uint8_t>& p, bool ip_header, bool transport) {
  std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(absl::MakeSpan(p));
  if (!ip) return;
  if (transport) {
    absl::Span<uint8_t> l4 = ip->payload();
    if (ip->protocol() == wire::ipv4::kProtocolIcmp && l4.size() >= 8 && wire::icmp::IsTranslatedError(l4[0])) {
      if (std::optional<wire::Ipv4View> q = wire::Ipv4View::ParseQuoted(l4.subspan(8))) q->FillChecksum();
    }
    wire::FillTransportChecksum(*ip);
  }
  if (ip_header) ip->FillChecksum();
}

#ifdef NAT_FUZZ_WRITE_SEEDS
void AppendRecord(std::vector<uint8_t>& out, uint8_t flags, uint8_t aim, const std::vector<uint8_t>& p) {
  out.push_back(flags);
  out.push_back(aim);
  out.push_back(static_cast<uint8_t>(p.size() >> 8));
  out.push_back(static_cast<uint8_t>(p.size()));
  out.insert(out.end(), p.begin(), p.end());
}
#endif

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  NatEngine engine(FuzzConfig());
  Populate(engine);
  uint64_t now = 1000;
  size_t offset = 0;
  for (int record = 0; record < 16 && size - offset >= 4; ++record) {
    const uint8_t flags = data[offset];
    const uint8_t aim = data[offset + 1];
    const size_t length = std::min<size_t>((size_t{data[offset + 2]} << 8) | data[offset + 3], size - offset - 4);
    std::vector<uint8_t> packet(data + offset + 4, data + offset + 4 + length);
    offset += 4 + length;
    const bool from_outside = flags & 1;
    now += kSteps[flags >> 4];
    if (flags & 8) {
      std::vector<NatEngine::SessionInfo> sessions;
      engine.ForEachSession(now, [&](const NatEngine::SessionInfo& s) { sessions.push_back(s); });
      if (!sessions.empty()) Aim(packet, sessions[(aim & 0x1f) % sessions.size()], from_outside);
    }
    FixChecksums(packet, flags & 2, flags & 4);

    // What must hold afterwards, measured before.
    std::optional<wire::Ipv4View> before = wire::Ipv4View::Parse(absl::MakeSpan(packet));
    const bool transport_ok = before && !before->is_fragment() && wire::TransportChecksumValid(*before);
    const std::vector<uint8_t> original = packet;

    const dpm::nat::Result result = from_outside ? engine.FromOutside(now, absl::MakeSpan(packet))
                                                 : engine.FromInside(now, absl::MakeSpan(packet));
    if (result.verdict == Verdict::kForwardInside || result.verdict == Verdict::kForwardOutside) {
      std::optional<wire::Ipv4View> after = wire::Ipv4View::Parse(absl::MakeSpan(packet));
      if (!after || !before || after->total_length() != before->total_length()) std::abort();
      if (!after->ChecksumValid()) std::abort();
      if (transport_ok && !wire::TransportChecksumValid(*after)) std::abort();
    } else if (result.verdict == Verdict::kToGateway || result.verdict == Verdict::kHeld ||
               result.reason == dpm::nat::DropReason::kTtlExceeded) {
      if (packet != original) std::abort();
    }
    if (engine.released_fragment_count() != result.released) std::abort();
    engine.TakeReleasedFragments([](Verdict verdict, absl::Span<uint8_t> fragment) {
      std::optional<wire::Ipv4View> ip = wire::Ipv4View::Parse(fragment);
      if (!ip || !ip->ChecksumValid() || !ip->is_fragment()) std::abort();
      if (verdict != Verdict::kForwardInside && verdict != Verdict::kForwardOutside && verdict != Verdict::kToGateway) {
        std::abort();
      }
    });
    const NatConfig& c = engine.config();
    if (engine.held_fragment_bytes() > c.max_held_fragment_bytes || engine.held_datagram_count() > c.max_held_datagrams ||
        engine.fragment_record_count() > c.max_fragment_records) {
      std::abort();
    }
    if (aim & 0x80) engine.Sweep(now, 8);
  }
  return 0;
}

#ifdef NAT_FUZZ_WRITE_SEEDS
#include <fstream>
#include <string>

// Writes one seed per exchange into argv[1].
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                           static_cast<std::streamsize>(bytes.size()));
  };
  const uint8_t kIn = 0x02, kOut = 0x03, kAim = 0x08;
  std::vector<uint8_t> s;
  // NAPT UDP: a new flow out, then a reply aimed at the first session (the UDP one).
  AppendRecord(s, kIn, 0, Udp({kHostA, 41000}, {kRemote1, 53}));
  AppendRecord(s, kOut | kAim | 0x04, 0, Udp({1, 1}, {1, 1}));
  write("napt_udp", s);
  s.clear();
  // TCP handshake and close through the TCP session (number 1), with timer steps.
  AppendRecord(s, kOut | kAim | 0x04, 1, Tcp({1, 1}, {1, 1}, 0x12));
  AppendRecord(s, kIn | kAim | 0x04 | 0x20, 1, Tcp({1, 1}, {1, 1}, 0x11));
  AppendRecord(s, kOut | kAim | 0x04 | 0x80, 0x81, Tcp({1, 1}, {1, 1}, 0x11));
  write("napt_tcp_close", s);
  s.clear();
  // Echo reply to the ICMP session (number 2).
  AppendRecord(s, kOut | kAim | 0x04, 2, Echo(1, 1, 0, 1));
  write("icmp_echo_reply", s);
  s.clear();
  // DPM: out through the gateway endpoint and back (session 3, fixed port 5060).
  AppendRecord(s, kIn | kAim | 0x04, 3, Udp({1, 1}, {1, 1}));
  AppendRecord(s, kOut | kAim | 0x04, 3, Udp({1, 1}, {1, 1}));
  write("dpm_udp", s);
  s.clear();
  // An ICMP port unreachable about the UDP session, from outside, and one from inside.
  std::vector<uint8_t> quoted = Udp({1, 1}, {1, 1});
  std::vector<uint8_t> error(8, 0);
  error[0] = 3;
  error[1] = 3;
  error.insert(error.end(), quoted.begin(), quoted.end());
  AppendRecord(s, kOut | kAim | 0x04, 0, Packet(kRemote1, 1, 1, error));
  AppendRecord(s, kIn | kAim | 0x04, 0, Packet(kHostA, kRemote1, 1, error));
  write("icmp_errors", s);
  s.clear();
  // Hairpin: host B to host A's external UDP endpoint (203.0.113.x:port of session 0 is
  // only known at run time, so aim from outside, then send from B to the same bytes).
  AppendRecord(s, kIn, 0, Udp({kHostB, 42000}, {Ip(203, 0, 113, 1), 7000}));
  write("hairpin_to_map", s);
  s.clear();
  // Fragments of a 40-byte UDP datagram (16 + 16 + 8 bytes, IP id 0x77): in order from inside
  // (first fragment aimed at the UDP session), then the answer out of order from outside.
  auto fragments_of = [](std::vector<uint8_t> whole) {
    std::vector<std::vector<uint8_t>> out;
    whole[4] = 0;
    whole[5] = 0x77;
    const size_t payload = whole.size() - 20;
    for (size_t at = 0; at < payload; at += 16) {
      const size_t n = std::min<size_t>(16, payload - at);
      std::vector<uint8_t> f(whole.begin(), whole.begin() + 20);
      f.insert(f.end(), whole.begin() + 20 + at, whole.begin() + 20 + at + n);
      wire::StoreBe16(&f[2], static_cast<uint16_t>(20 + n));
      wire::StoreBe16(&f[6], static_cast<uint16_t>((at + n < payload ? 0x2000 : 0) | at / 8));
      out.push_back(f);
    }
    return out;
  };
  std::vector<uint8_t> big = Udp({kHostA, 40000}, {kRemote1, 53});
  big.insert(big.end(), 28, 'x');
  wire::StoreBe16(&big[2], static_cast<uint16_t>(big.size()));
  wire::StoreBe16(&big[24], static_cast<uint16_t>(big.size() - 20));
  wire::FillTransportChecksum(*wire::Ipv4View::Parse(absl::MakeSpan(big)));
  std::vector<std::vector<uint8_t>> out_frags = fragments_of(big);
  AppendRecord(s, kIn | kAim, 0, out_frags[0]);
  AppendRecord(s, kIn, 0, out_frags[1]);
  AppendRecord(s, kIn, 0, out_frags[2]);
  write("fragments_in_order", s);
  s.clear();
  // From outside: later fragments to a pool address (held), then the first, aimed at the UDP
  // session (ports and addresses); the held ones are its datagram's when host A's pool
  // address is 203.0.113.1 (the key has no ports).
  std::vector<uint8_t> answer = Udp({kRemote1, 53}, {Ip(203, 0, 113, 1), 40000});
  answer.insert(answer.end(), 28, 'y');
  wire::StoreBe16(&answer[2], static_cast<uint16_t>(answer.size()));
  wire::StoreBe16(&answer[24], static_cast<uint16_t>(answer.size() - 20));
  wire::FillTransportChecksum(*wire::Ipv4View::Parse(absl::MakeSpan(answer)));
  std::vector<std::vector<uint8_t>> in_frags = fragments_of(answer);
  AppendRecord(s, kOut, 0, in_frags[2]);
  AppendRecord(s, kOut, 0, in_frags[1]);
  AppendRecord(s, kOut | kAim, 0, in_frags[0]);
  AppendRecord(s, kOut | 0x40, 0x80, in_frags[1]);  // after the timeout, swept: held again
  write("fragments_out_of_order", s);
  s.clear();
  // Junk: truncated, a first fragment, TTL 1.
  std::vector<uint8_t> cut = Udp({kHostA, 1}, {kRemote1, 2});
  cut.resize(25);
  AppendRecord(s, kIn, 0, cut);
  std::vector<uint8_t> frag = Udp({kHostA, 40000}, {kRemote1, 53});
  frag[6] = 0x20;
  AppendRecord(s, kIn, 0, frag);
  std::vector<uint8_t> ttl1 = Udp({kHostA, 40000}, {kRemote1, 53});
  ttl1[8] = 1;
  AppendRecord(s, kIn, 0, ttl1);
  write("bad_input", s);
  return 0;
}
#endif
