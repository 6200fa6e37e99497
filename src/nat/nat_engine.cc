#include "nat/nat_engine.h"

#include <algorithm>
#include <initializer_list>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "nat/port_allocator.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace dpm::nat {

using wire::ChecksumDelta;
using wire::IcmpView;
using wire::Ipv4View;
using wire::LoadBe16;
using wire::LoadBe32;
using wire::QuotedTransport;
using wire::StoreBe16;
using wire::StoreBe32;

namespace {

constexpr uint32_t kNoPool = 0xffffffffu;

// Writes a field and records the change in each checksum that covers it (null: none).
void Put16(uint8_t* at, uint16_t value, std::initializer_list<ChecksumDelta*> deltas) {
  const uint16_t old = LoadBe16(at);
  if (old == value) return;
  StoreBe16(at, value);
  for (ChecksumDelta* d : deltas) {
    if (d != nullptr) d->Replace16(old, value);
  }
}

void Put32(uint8_t* at, uint32_t value, std::initializer_list<ChecksumDelta*> deltas) {
  const uint32_t old = LoadBe32(at);
  if (old == value) return;
  StoreBe32(at, value);
  for (ChecksumDelta* d : deltas) {
    if (d != nullptr) d->Replace32(old, value);
  }
}

// Applies `delta` to the transport checksum at `at` (RFC 768: a UDP checksum of 0 means none
// was sent and stays 0; a computed 0 is sent as 0xffff).
void UpdateChecksumField(uint8_t* at, const ChecksumDelta& delta, bool udp, ChecksumDelta* covering) {
  const uint16_t old = LoadBe16(at);
  if (udp && old == 0) return;
  uint16_t updated = delta.Apply(old);
  if (udp) updated = wire::UdpChecksumOnWire(updated);
  Put16(at, updated, {covering});
}

bool IsIcmpQuery(uint8_t type) { return wire::icmp::IsQuery(type); }

}  // namespace

// ---- Names, configuration ----------------------------------------------------------------

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kForwardOutside: return "forward_outside";
    case Verdict::kForwardInside: return "forward_inside";
    case Verdict::kToGateway: return "to_gateway";
    case Verdict::kDrop: return "drop";
    case Verdict::kHeld: return "held";
  }
  return "unknown";
}

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kBadChecksum: return "bad_checksum";
    case DropReason::kFragment: return "fragment";
    case DropReason::kTtlExceeded: return "ttl_exceeded";
    case DropReason::kNoMapping: return "no_mapping";
    case DropReason::kQuota: return "quota";
    case DropReason::kNoResources: return "no_resources";
    case DropReason::kUnsupportedProtocol: return "unsupported_protocol";
    case DropReason::kNotFromInside: return "not_from_inside";
    case DropReason::kNoRoute: return "no_route";
    case DropReason::kIcmpNotTranslated: return "icmp_not_translated";
    case DropReason::kFragmentTimeout: return "fragment_timeout";
    case DropReason::kFragmentLimit: return "fragment_limit";
    case DropReason::kFiltered: return "filtered";
    case DropReason::kCount: break;
  }
  return "unknown";
}

const char* GrantErrorName(GrantError error) {
  switch (error) {
    case GrantError::kNone: return "none";
    case GrantError::kCannotProvideExternal: return "cannot_provide_external";
    case GrantError::kNoResources: return "no_resources";
    case GrantError::kUserExQuota: return "user_ex_quota";
    case GrantError::kUnsupportedProtocol: return "unsupported_protocol";
    case GrantError::kNotAuthorized: return "not_authorized";
    case GrantError::kExcessiveRemotePeers: return "excessive_remote_peers";
  }
  return "unknown";
}

absl::Status ValidateNatConfig(const NatConfig& c) {
  if (c.external_addresses.empty()) return absl::InvalidArgumentError("external_addresses: the pool is empty");
  if (c.inside_prefix < 0 || c.inside_prefix > 32) {
    return absl::InvalidArgumentError(absl::StrCat("inside_prefix: ", c.inside_prefix, " is not 0-32"));
  }
  const uint32_t mask = c.inside_prefix == 0 ? 0 : ~(0xffffffffu >> c.inside_prefix);
  if ((c.gateway_inside_address & mask) != (c.inside_network & mask)) {
    return absl::InvalidArgumentError("gateway_inside_address: not in the inside network");
  }
  for (uint32_t a : c.external_addresses) {
    if ((a & mask) == (c.inside_network & mask)) {
      return absl::InvalidArgumentError("external_addresses: a pool address is in the inside network");
    }
  }
  if (c.port_min == 0 || c.port_min > c.port_max) {
    return absl::InvalidArgumentError(absl::StrCat("port_min/port_max: ", c.port_min, "-", c.port_max,
                                                   " is not a range of non-zero ports"));
  }
  if (c.min_lifetime_s == 0 || c.min_lifetime_s > c.max_lifetime_s) {
    return absl::InvalidArgumentError("min_lifetime_s/max_lifetime_s: not a non-zero range");
  }
  if (c.udp_timeout_ms < 120000) return absl::InvalidArgumentError("udp_timeout_ms: below 2 min (RFC 4787 REQ-5)");
  if (c.tcp_established_ms < 7440000) {
    return absl::InvalidArgumentError("tcp_established_ms: below 2 h 4 min (RFC 5382 REQ-5)");
  }
  if (c.tcp_transitory_ms < 240000) {
    return absl::InvalidArgumentError("tcp_transitory_ms: below 4 min (RFC 5382 REQ-5)");
  }
  if (c.icmp_timeout_ms < 60000) return absl::InvalidArgumentError("icmp_timeout_ms: below 60 s (RFC 5508 REQ-2)");
  if (c.fragment_timeout_ms < 2000) {
    return absl::InvalidArgumentError("fragment_timeout_ms: below 2 s (RFC 6146 §4 FRAGMENT_MIN)");
  }
  return absl::OkStatus();
}

// ---- The parsed packet -------------------------------------------------------------------

struct NatEngine::Packet {
  explicit Packet(Ipv4View view) : ip(view) {}

  Ipv4View ip;
  Protocol protocol = Protocol::kUdp;
  absl::Span<uint8_t> l4;  // the IP payload
  // Addresses and ports as the packet has them now. ICMP query: the identifier is the port of
  // the endpoint on the inside side of the NAT (the source going out, the destination coming
  // in); the other port is 0.
  Endpoint source;
  Endpoint destination;
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0;
  bool icmp_error = false;
  bool id_at_source = false;
  bool partial_checksum = false;  // TCP/UDP checksum field holds the pseudo-header sum (offload)
};

// ---- Fragment state -------------------------------------------------------------------------

// A datagram is named by the fields every one of its fragments repeats (RFC 791 §3.2: source,
// destination, protocol, identification), as it arrived, plus the side it arrived on.
struct NatEngine::FragmentKey {
  uint32_t source = 0;
  uint32_t destination = 0;
  uint16_t identification = 0;
  uint8_t protocol = 0;
  bool from_inside = false;

  friend bool operator==(const FragmentKey& a, const FragmentKey& b) {
    return a.source == b.source && a.destination == b.destination && a.identification == b.identification &&
           a.protocol == b.protocol && a.from_inside == b.from_inside;
  }
  template <typename H>
  friend H AbslHashValue(H h, const FragmentKey& k) {
    return H::combine(std::move(h), k.source, k.destination, k.identification, k.protocol, k.from_inside);
  }
};

// What the first fragment got, for the rest of its datagram.
struct NatEngine::FragmentTranslation {
  Verdict verdict = Verdict::kDrop;  // kDrop: the first fragment was dropped
  uint32_t source = 0;               // the addresses it left with (forwarded verdicts)
  uint32_t destination = 0;
  bool hairpin = false;              // from inside, back inside
};

// One datagram: a record (first fragment seen) or a held datagram (fragments waiting for it),
// in a slab; each is on one of two lists in deadline order (the timeout is one constant, so
// the order they were made in), so expiry pops from the front and nothing is scanned.
struct NatEngine::Fragments {
  struct Train {
    FragmentKey key;
    uint64_t deadline_ms = 0;
    uint32_t prev = kNoIndex;
    uint32_t next = kNoIndex;
    bool recorded = false;       // on `records` (else on `held`)
    FragmentTranslation translation;
    uint32_t seen = 0;           // payload bytes of fragments translated (records)
    uint32_t end = 0;            // the datagram's payload length once its last fragment came; 0: not yet
    std::vector<std::vector<uint8_t>> packets;  // held fragments, whole packets as they arrived
  };
  struct List {
    uint32_t head = kNoIndex;
    uint32_t tail = kNoIndex;
    size_t size = 0;
  };

  std::vector<Train> slots;
  std::vector<uint32_t> free_slots;
  absl::flat_hash_map<FragmentKey, uint32_t> index;
  List records;
  List held;
  size_t held_packets = 0;  // fragments on `held` trains
  size_t bytes = 0;         // held packets + released ones not taken yet
  struct Released {
    Verdict verdict;
    std::vector<uint8_t> packet;
  };
  std::vector<Released> released;
  std::vector<Released> taking;  // TakeReleasedFragments' scratch (keeps its capacity)

  uint32_t Find(const FragmentKey& key) const {
    auto it = index.find(key);
    return it == index.end() ? kNoIndex : it->second;
  }
  List& ListOf(const Train& t) { return t.recorded ? records : held; }
  void Append(uint32_t i) {
    Train& t = slots[i];
    List& l = ListOf(t);
    t.prev = l.tail;
    t.next = kNoIndex;
    (l.tail == kNoIndex ? l.head : slots[l.tail].next) = i;
    l.tail = i;
    ++l.size;
  }
  void Unlink(uint32_t i) {
    Train& t = slots[i];
    List& l = ListOf(t);
    (t.prev == kNoIndex ? l.head : slots[t.prev].next) = t.next;
    (t.next == kNoIndex ? l.tail : slots[t.next].prev) = t.prev;
    --l.size;
  }
  // A new train for `key` (not present), last on its list.
  uint32_t Add(const FragmentKey& key, bool recorded, uint64_t deadline_ms) {
    uint32_t i;
    if (!free_slots.empty()) {
      i = free_slots.back();
      free_slots.pop_back();
    } else {
      i = static_cast<uint32_t>(slots.size());
      slots.emplace_back();
    }
    Train& t = slots[i];
    t = Train{};
    t.key = key;
    t.recorded = recorded;
    t.deadline_ms = deadline_ms;
    Append(i);
    index[key] = i;
    return i;
  }
  // Forgets train `i`; its held packets must have been accounted for by the caller.
  void Remove(uint32_t i) {
    Unlink(i);
    Train& t = slots[i];
    index.erase(t.key);
    if (!t.recorded) held_packets -= t.packets.size();
    t.packets = {};  // frees the held packets' memory now
    free_slots.push_back(i);
  }
};

// ---- Construction ------------------------------------------------------------------------

NatEngine::NatEngine(NatConfig config)
    : config_(std::move(config)),
      inside_mask_(config_.inside_prefix <= 0    ? 0
                   : config_.inside_prefix >= 32 ? 0xffffffffu
                                                 : ~(0xffffffffu >> config_.inside_prefix)),
      table_(std::make_unique<SessionTable>(config_.gateway_inside_address)),
      ports_(std::make_unique<PortAllocator>(config_.external_addresses, config_.port_min, config_.port_max,
                                             config_.seed)),
      fragments_(std::make_unique<Fragments>()) {
  for (uint16_t port : config_.gateway_reserved_ports) reserved_gateway_ports_.insert(port);
  if (config_.reserve_sessions > 0) table_->Reserve(std::min(config_.reserve_sessions, config_.max_sessions));
}

NatEngine::~NatEngine() = default;

size_t NatEngine::session_count() const { return table_->session_count(); }
size_t NatEngine::mapping_count() const { return table_->mapping_count(); }
size_t NatEngine::index_slots() const { return table_->index_slots(); }
size_t NatEngine::fragment_record_count() const { return fragments_->records.size; }
size_t NatEngine::held_fragment_count() const { return fragments_->held_packets; }
size_t NatEngine::held_datagram_count() const { return fragments_->held.size; }
size_t NatEngine::held_fragment_bytes() const { return fragments_->bytes; }
size_t NatEngine::released_fragment_count() const { return fragments_->released.size(); }
bool NatEngine::IsExternalAddress(uint32_t address) const { return ports_->IndexOf(address).has_value(); }

bool NatEngine::InInsideNetwork(uint32_t address) const {
  return (address & inside_mask_) == (config_.inside_network & inside_mask_);
}

bool NatEngine::IsInsideHost(uint32_t address) const {
  return InInsideNetwork(address) && address != config_.gateway_inside_address;
}

bool NatEngine::IsOutsideUnicast(uint32_t address) const {
  const uint32_t first = address >> 24;
  return !InInsideNetwork(address) && first != 0 && first != 127 && (address >> 28) < 0xe &&
         address != config_.gateway_inside_address;
}

Result NatEngine::Drop(DropReason reason) {
  ++drops_[static_cast<size_t>(reason)];
  return Result{Verdict::kDrop, reason};
}

Result NatEngine::ToGateway() {
  ++counters_.to_gateway;
  return Result{Verdict::kToGateway};
}

// ---- Parsing -----------------------------------------------------------------------------

DropReason NatEngine::ParseTransport(Packet& p, bool from_inside) {
  p.l4 = p.ip.payload();
  p.source = Endpoint{p.ip.source(), 0};
  p.destination = Endpoint{p.ip.destination(), 0};
  switch (p.ip.protocol()) {
    case wire::ipv4::kProtocolTcp: {
      std::optional<wire::TcpView> tcp = wire::TcpView::Parse(p.l4);
      if (!tcp || tcp->source_port() == 0 || tcp->destination_port() == 0) return DropReason::kMalformed;
      p.protocol = Protocol::kTcp;
      p.source.port = tcp->source_port();
      p.destination.port = tcp->destination_port();
      p.tcp_flags = tcp->flags();
      return DropReason::kNone;
    }
    case wire::ipv4::kProtocolUdp: {
      std::optional<wire::UdpView> udp = wire::UdpView::Parse(p.l4);
      if (!udp || udp->source_port() == 0 || udp->destination_port() == 0) return DropReason::kMalformed;
      p.protocol = Protocol::kUdp;
      p.source.port = udp->source_port();
      p.destination.port = udp->destination_port();
      return DropReason::kNone;
    }
    case wire::ipv4::kProtocolIcmp: {
      std::optional<IcmpView> icmp = IcmpView::Parse(p.l4);
      if (!icmp) return DropReason::kMalformed;
      p.protocol = Protocol::kIcmp;
      p.icmp_type = icmp->type();
      if (wire::icmp::IsTranslatedError(p.icmp_type)) {
        p.icmp_error = true;
      } else if (IsIcmpQuery(p.icmp_type)) {
        p.id_at_source = from_inside;
        (from_inside ? p.source : p.destination).port = icmp->identifier();
      }
      return DropReason::kNone;
    }
    default:
      return DropReason::kUnsupportedProtocol;
  }
}

// ---- Rewriting ---------------------------------------------------------------------------

void NatEngine::RewriteIp(Packet& p, uint32_t source, uint32_t destination, bool decrement_ttl,
                          ChecksumDelta* pseudo_header) {
  uint8_t* h = p.ip.header().data();
  ChecksumDelta ip;
  Put32(h + wire::ipv4::kSourceOffset, source, {&ip, pseudo_header});
  Put32(h + wire::ipv4::kDestinationOffset, destination, {&ip, pseudo_header});
  if (decrement_ttl) {
    // TTL shares a 16-bit word with the protocol (RFC 1624 §5's example).
    const uint16_t word = LoadBe16(h + wire::ipv4::kTtlOffset);
    Put16(h + wire::ipv4::kTtlOffset, static_cast<uint16_t>(word - 0x100), {&ip});
  }
  p.ip.set_checksum(ip.Apply(p.ip.checksum()));
  p.source.address = source;
  p.destination.address = destination;
}

void NatEngine::Rewrite(Packet& p, Endpoint source, Endpoint destination, bool decrement_ttl) {
  ChecksumDelta l4;
  const bool pseudo = p.protocol != Protocol::kIcmp;  // ICMPv4 has no pseudo-header
  RewriteIp(p, source.address, destination.address, decrement_ttl, pseudo ? &l4 : nullptr);
  uint8_t* t = p.l4.data();
  switch (p.protocol) {
    case Protocol::kTcp:
    case Protocol::kUdp: {
      // TCP and UDP both start with the source and destination ports.
      const bool udp = p.protocol == Protocol::kUdp;
      uint8_t* checksum = t + (udp ? wire::udp::kChecksumOffset : wire::tcp::kChecksumOffset);
      if (p.partial_checksum) {
        // Offload (docs/nat.md): the field is the pseudo-header sum S, not ~sum, and whoever
        // completes it sums the ports itself. So only the addresses count, and S' = S + ~m + m'
        // (what Linux's inet_proto_csum_replace4 does for CHECKSUM_PARTIAL).
        Put16(t + wire::tcp::kSourcePortOffset, source.port, {});
        Put16(t + wire::tcp::kDestinationPortOffset, destination.port, {});
        Put16(checksum, static_cast<uint16_t>(~l4.Apply(static_cast<uint16_t>(~LoadBe16(checksum)))), {});
        break;
      }
      Put16(t + wire::tcp::kSourcePortOffset, source.port, {&l4});
      Put16(t + wire::tcp::kDestinationPortOffset, destination.port, {&l4});
      UpdateChecksumField(checksum, l4, udp, nullptr);
      break;
    }
    case Protocol::kIcmp: {
      // A query's identifier (RFC 5508 REQ-1a: translated like a port).
      Put16(t + wire::icmp::kIdentifierOffset, p.id_at_source ? source.port : destination.port, {&l4});
      Put16(t + wire::icmp::kChecksumOffset, l4.Apply(LoadBe16(t + wire::icmp::kChecksumOffset)), {});
      break;
    }
  }
  p.source = source;
  p.destination = destination;
}

namespace {

// Rewrites the packet quoted in an ICMP error to run from `source` to `destination`; an ICMP
// query's identifier takes the port of the source (id_at_source) or of the destination.
void RewriteQuoted(Ipv4View& quoted, QuotedTransport& transport, Endpoint source, Endpoint destination,
                   bool id_at_source, ChecksumDelta* icmp) {
  // RFC 5508 REQ-4a/5a: the quoted IP and transport headers go back to what the other side
  // sent or received; the quoted IP checksum and, when the quote holds it, the quoted
  // transport checksum follow (the quote is cut short, so the transport checksum cannot be
  // verified — REQ-3c — only kept consistent). Every changed word is inside the ICMP
  // message, so each also goes into the outer ICMP checksum.
  uint8_t* h = quoted.header().data();
  uint8_t* t = transport.bytes().data();
  ChecksumDelta ip;
  ChecksumDelta l4;
  const bool pseudo = transport.protocol() != wire::ipv4::kProtocolIcmp;  // ICMP: no pseudo-header
  ChecksumDelta* pseudo_delta = pseudo ? &l4 : nullptr;
  Put32(h + wire::ipv4::kSourceOffset, source.address, {&ip, pseudo_delta, icmp});
  Put32(h + wire::ipv4::kDestinationOffset, destination.address, {&ip, pseudo_delta, icmp});
  Put16(h + wire::ipv4::kChecksumOffset, ip.Apply(LoadBe16(h + wire::ipv4::kChecksumOffset)), {icmp});
  if (pseudo) {
    Put16(t + wire::tcp::kSourcePortOffset, source.port, {&l4, icmp});
    Put16(t + wire::tcp::kDestinationPortOffset, destination.port, {&l4, icmp});
  } else {
    Put16(t + wire::icmp::kIdentifierOffset, id_at_source ? source.port : destination.port, {&l4, icmp});
  }
  if (std::optional<size_t> offset = transport.checksum_offset()) {
    UpdateChecksumField(t + *offset, l4, transport.protocol() == wire::ipv4::kProtocolUdp, icmp);
  }
}

}  // namespace

// ---- Batches -------------------------------------------------------------------------------

Result NatEngine::FromInside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum) {
  return FromInsideHinted(now_ms, packet, kNoIndex, partial_checksum);
}

Result NatEngine::FromOutside(uint64_t now_ms, absl::Span<uint8_t> packet, bool partial_checksum) {
  return FromOutsideHinted(now_ms, packet, kNoIndex, partial_checksum);
}

void NatEngine::FromInsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                absl::Span<Result> results) {
  TranslateBatch(now_ms, packets, results, /*from_inside=*/true);
}

void NatEngine::FromOutsideBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                                 absl::Span<Result> results) {
  TranslateBatch(now_ms, packets, results, /*from_inside=*/false);
}

void NatEngine::TranslateBatch(uint64_t now_ms, absl::Span<const absl::Span<uint8_t>> packets,
                               absl::Span<Result> results, bool from_inside) {
  constexpr size_t kGroup = 32;
  const size_t n = std::min(packets.size(), results.size());
  for (size_t start = 0; start < n; start += kGroup) {
    const size_t count = std::min(kGroup, n - start);
    FlowKey keys[kGroup];
    bool keyed[kGroup] = {};
    uint32_t hints[kGroup];
    // Stage 1: the key of each packet; prefetch the index memory its lookup reads.
    for (size_t i = 0; i < count; ++i) {
      std::optional<Ipv4View> ip = Ipv4View::Parse(packets[start + i]);
      if (!ip || ip->is_fragment()) continue;
      Packet p(*ip);
      if (ParseTransport(p, from_inside) != DropReason::kNone || p.icmp_error) continue;
      keys[i] = from_inside ? FlowKey{p.protocol, p.source, p.destination} : FlowKey{p.protocol, p.destination, p.source};
      keyed[i] = true;
      if (from_inside) {
        table_->PrefetchInside(keys[i]);
      } else {
        table_->PrefetchOutside(keys[i]);
      }
    }
    // Stage 2: from the index lines (arrived meanwhile), the likely session of each packet,
    // without reading session records; prefetch those.
    for (size_t i = 0; i < count; ++i) {
      hints[i] = kNoIndex;
      if (!keyed[i]) continue;
      hints[i] = from_inside ? table_->GuessInside(keys[i]) : table_->GuessOutside(keys[i]);
      if (hints[i] != kNoIndex) table_->PrefetchSession(hints[i]);
    }
    // Stage 3: translate in order; a hint is re-checked, as earlier packets may have changed
    // the table.
    for (size_t i = 0; i < count; ++i) {
      results[start + i] = from_inside ? FromInsideHinted(now_ms, packets[start + i], hints[i])
                                       : FromOutsideHinted(now_ms, packets[start + i], hints[i]);
    }
  }
}

// ---- Data path: from inside --------------------------------------------------------------

// The rest of the data path, once the transport header was parsed: shared by whole packets
// and first fragments, and inlined into the fast path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Result NatEngine::InsideParsed(uint64_t now_ms, Packet& p, bool for_gateway,
                                                                   uint32_t hint) {
  if (p.icmp_error) return InsideIcmpError(now_ms, p);
  if (p.protocol == Protocol::kIcmp && !wire::icmp::IsQueryRequest(p.icmp_type)) {
    // Replies to queries from outside (not forwarded in) and other types: the gateway's own.
    if (for_gateway) return ToGateway();
    return Drop(IsIcmpQuery(p.icmp_type) ? DropReason::kNoMapping : DropReason::kIcmpNotTranslated);
  }
  const FlowKey key{p.protocol, p.source, p.destination};
  const bool hinted = hint != kNoIndex && table_->session(hint).live() && table_->InsideKey(hint) == key;
  const uint32_t session = Live(hinted ? hint : table_->FindInside(key), now_ms);
  if (session != kNoIndex) return Outbound(now_ms, p, session, /*fresh=*/false);
  return InsideMiss(now_ms, p);
}

Result NatEngine::FromInsideHinted(uint64_t now_ms, absl::Span<uint8_t> bytes, uint32_t hint,
                                   bool partial_checksum) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(bytes);
  if (!ip) return Drop(DropReason::kMalformed);
  if (!ip->ChecksumValid()) return Drop(DropReason::kBadChecksum);
  if (!IsInsideHost(ip->source())) return Drop(DropReason::kNotFromInside);
  const uint32_t dst = ip->destination();
  const bool for_gateway = dst == config_.gateway_inside_address || dst == config_.gateway_outside_address;
  // The only test fragments cost the fast path.
  if (ip->is_fragment()) return OnFragment(now_ms, *ip, /*from_inside=*/true, for_gateway);
  Packet p(*ip);
  p.partial_checksum = partial_checksum;
  if (DropReason why = ParseTransport(p, /*from_inside=*/true); why != DropReason::kNone) {
    if (why == DropReason::kUnsupportedProtocol && for_gateway) return ToGateway();
    return Drop(why);
  }
  return InsideParsed(now_ms, p, for_gateway, hint);
}

Result NatEngine::InsideMiss(uint64_t now_ms, Packet& p) {
  const uint32_t dst = p.destination.address;
  if (dst == config_.gateway_inside_address) return ToGateway();
  const bool to_gateway_outside = dst == config_.gateway_outside_address;
  if (!ports_->IndexOf(dst)) {
    if (to_gateway_outside) return ToGateway();
    if (!IsOutsideUnicast(dst)) return Drop(DropReason::kNoRoute);
  } else if (p.protocol == Protocol::kIcmp ||
             LiveMapping(table_->FindMappingByExternal(EndpointKey{p.protocol, p.destination}), now_ms) == kNoIndex) {
    // Hairpinning (RFC 4787 REQ-9): only toward an external endpoint somebody holds.
    return to_gateway_outside ? ToGateway() : Drop(DropReason::kNoMapping);
  }
  TcpState state = TcpState::kClosed;
  if (p.protocol == Protocol::kTcp) {
    if (p.tcp_flags & wire::tcp::kRst) return Drop(DropReason::kNoMapping);  // nothing to reset
    // A SYN opens (RFC 6146 V6 INIT). Any other segment is a connection the NAT lost (a
    // restart, an expiry): picked up as transitory, established once it sees more traffic.
    const bool syn = (p.tcp_flags & (wire::tcp::kSyn | wire::tcp::kAck)) == wire::tcp::kSyn;
    state = syn ? TcpState::kInsideInit : TcpState::kTrans;
  }
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  DropReason why = DropReason::kNone;
  const uint32_t session = CreateOutbound(now_ms, p.protocol, p.source, p.destination, state, &why);
  if (session == kNoIndex) return Drop(why);
  return Outbound(now_ms, p, session, /*fresh=*/true);
}

Result NatEngine::Outbound(uint64_t now_ms, Packet& p, uint32_t session, bool fresh) {
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  if (!fresh) OnPacket(now_ms, session, /*from_inside=*/true, p.tcp_flags);
  const Session& s = table_->session(session);
  // Claim 6: source -> registered address:port; a DPM session's destination (the gateway
  // endpoint) -> the true destination.
  const Endpoint destination = s.dpm() ? s.remote() : p.destination;
  const bool hairpin = s.flags & kSessionHairpin;
  Rewrite(p, s.external(), destination, /*decrement_ttl=*/true);
  if (hairpin) return HairpinInbound(now_ms, p);
  ++counters_.translated_out;
  return Result{Verdict::kForwardOutside};
}

Result NatEngine::HairpinInbound(uint64_t now_ms, Packet& p) {
  // RFC 4787 REQ-9a / RFC 5382 REQ-8: the packet now comes from the sender's external
  // endpoint; deliver it as if it had arrived from outside.
  const uint32_t session = Live(table_->FindOutside(FlowKey{p.protocol, p.destination, p.source}), now_ms);
  if (session == kNoIndex) return OutsideMiss(now_ms, p, /*hairpin=*/true);
  ++counters_.hairpinned;
  return Inbound(now_ms, p, session, /*decrement_ttl=*/false, /*fresh=*/false);
}

// ---- Data path: from outside -------------------------------------------------------------

// The rest of the data path, once the transport header was parsed: shared by whole packets
// and first fragments, and inlined into the fast path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Result NatEngine::OutsideParsed(uint64_t now_ms, Packet& p, bool for_gateway,
                                                                    uint32_t hint) {
  if (p.icmp_error) return OutsideIcmpError(now_ms, p, /*hairpin=*/false);
  if (p.protocol == Protocol::kIcmp && !wire::icmp::IsQueryReply(p.icmp_type)) {
    // Queries from outside are not forwarded in (RFC 5508 REQ-1 covers those from inside).
    if (for_gateway) return ToGateway();
    return Drop(IsIcmpQuery(p.icmp_type) ? DropReason::kNoMapping : DropReason::kIcmpNotTranslated);
  }
  const FlowKey key{p.protocol, p.destination, p.source};
  const bool hinted = hint != kNoIndex && table_->session(hint).live() && table_->OutsideKey(hint) == key;
  const uint32_t session = Live(hinted ? hint : table_->FindOutside(key), now_ms);
  if (session != kNoIndex) return Inbound(now_ms, p, session, /*decrement_ttl=*/true, /*fresh=*/false);
  return OutsideMiss(now_ms, p, /*hairpin=*/false);
}

Result NatEngine::FromOutsideHinted(uint64_t now_ms, absl::Span<uint8_t> bytes, uint32_t hint,
                                   bool partial_checksum) {
  std::optional<Ipv4View> ip = Ipv4View::Parse(bytes);
  if (!ip) return Drop(DropReason::kMalformed);
  if (!ip->ChecksumValid()) return Drop(DropReason::kBadChecksum);
  const bool for_gateway = ip->destination() == config_.gateway_outside_address;
  if (ip->is_fragment()) return OnFragment(now_ms, *ip, /*from_inside=*/false, for_gateway);
  Packet p(*ip);
  p.partial_checksum = partial_checksum;
  if (DropReason why = ParseTransport(p, /*from_inside=*/false); why != DropReason::kNone) {
    if (why == DropReason::kUnsupportedProtocol && for_gateway) return ToGateway();
    return Drop(why);
  }
  return OutsideParsed(now_ms, p, for_gateway, hint);
}

Result NatEngine::OutsideMiss(uint64_t now_ms, Packet& p, bool hairpin) {
  const uint32_t dst = p.destination.address;
  const bool to_gateway_outside = !hairpin && dst == config_.gateway_outside_address;
  if (!ports_->IndexOf(dst)) return to_gateway_outside ? ToGateway() : Drop(DropReason::kNoRoute);
  auto refuse = [&](DropReason why) { return to_gateway_outside ? ToGateway() : Drop(why); };
  if (p.protocol == Protocol::kIcmp) return refuse(DropReason::kNoMapping);  // replies need their session
  // Endpoint-independent filtering (RFC 4787 REQ-8, RFC 5382 REQ-3): any remote may reach an
  // endpoint-independent mapping. A DPM mapping only serves its sessions' remotes.
  const uint32_t mapping =
      LiveMapping(table_->FindMappingByExternal(EndpointKey{p.protocol, p.destination}), now_ms);
  if (mapping == kNoIndex || table_->mapping(mapping).kind != MappingKind::kEndpointIndependent) {
    return refuse(DropReason::kNoMapping);
  }
  // RFC 6887 §13.3: an explicit mapping with FILTERs lets in only the remotes they allow.
  if (!filters_.empty()) {
    if (auto it = filters_.find(mapping); it != filters_.end() &&
        std::none_of(it->second.begin(), it->second.end(),
                     [&](const RemoteFilter& f) { return f.Matches(p.source); })) {
      return refuse(DropReason::kFiltered);
    }
  }
  if (p.protocol == Protocol::kTcp &&
      (p.tcp_flags & (wire::tcp::kSyn | wire::tcp::kAck | wire::tcp::kRst)) != wire::tcp::kSyn) {
    return refuse(DropReason::kNoMapping);  // only a SYN opens a connection from outside
  }
  if (!hairpin && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  DropReason why = DropReason::kNone;
  const uint32_t session = CreateInbound(now_ms, mapping, p.source, &why);
  if (session == kNoIndex) return Drop(why);
  if (hairpin) ++counters_.hairpinned;
  return Inbound(now_ms, p, session, /*decrement_ttl=*/!hairpin, /*fresh=*/true);
}

Result NatEngine::Inbound(uint64_t now_ms, Packet& p, uint32_t session, bool decrement_ttl, bool fresh) {
  if (decrement_ttl && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  if (!fresh) OnPacket(now_ms, session, /*from_inside=*/false, p.tcp_flags);
  const Session& s = table_->session(session);
  // A DPM reply must look as if the gateway endpoint had sent it (claims 5-6, reversed).
  const Endpoint source = s.dpm() ? Endpoint{config_.gateway_inside_address, s.gateway_port} : p.source;
  Rewrite(p, source, s.internal(), decrement_ttl);
  ++counters_.translated_in;
  return Result{Verdict::kForwardInside};
}

// ---- ICMP errors (RFC 5508 §4) -----------------------------------------------------------

namespace {

// Checks an ICMP error message (`message`, already at least 8 bytes) and finds its quote.
std::optional<DropReason> ParseIcmpError(absl::Span<uint8_t> message, std::optional<Ipv4View>* quoted,
                                         std::optional<QuotedTransport>* transport) {
  std::optional<IcmpView> icmp = IcmpView::Parse(message);
  // REQ-3: a bad ICMP checksum, or (REQ-3a) a bad quoted IP checksum, drops the error.
  if (!icmp->ChecksumValid()) return DropReason::kBadChecksum;
  *quoted = Ipv4View::ParseQuoted(icmp->body());
  if (!*quoted) return DropReason::kMalformed;
  if (!(*quoted)->ChecksumValid()) return DropReason::kBadChecksum;
  const uint8_t protocol = (*quoted)->protocol();
  if (protocol != wire::ipv4::kProtocolTcp && protocol != wire::ipv4::kProtocolUdp &&
      protocol != wire::ipv4::kProtocolIcmp) {
    return DropReason::kNoMapping;  // nothing of ours
  }
  if ((*quoted)->fragment_offset() != 0) return DropReason::kNoMapping;  // no transport header quoted
  // REQ-3b: the view skips the quoted IP options; RFC 792 guarantees 8 bytes after them.
  *transport = QuotedTransport::Parse((*quoted)->payload(), protocol);
  if (!*transport) return DropReason::kMalformed;
  if (protocol == wire::ipv4::kProtocolIcmp && !IsIcmpQuery((*transport)->icmp_type())) {
    return DropReason::kNoMapping;  // an error about an error is never sent (RFC 1122 §3.2.2)
  }
  return std::nullopt;
}

}  // namespace

Result NatEngine::InsideIcmpError(uint64_t now_ms, Packet& p) {
  // REQ-5: an inside host reports on a packet it received, so the quote runs from the remote
  // (or, for DPM, the gateway endpoint) to the internal endpoint.
  const bool for_gateway = p.destination.address == config_.gateway_inside_address ||
                           p.destination.address == config_.gateway_outside_address;
  std::optional<Ipv4View> quoted;
  std::optional<QuotedTransport> transport;
  if (std::optional<DropReason> why = ParseIcmpError(p.l4, &quoted, &transport)) {
    if (*why == DropReason::kNoMapping && for_gateway) return ToGateway();
    return Drop(*why);
  }
  const Protocol protocol = static_cast<Protocol>(quoted->protocol());
  const bool icmp_quote = protocol == Protocol::kIcmp;
  const Endpoint q_source{quoted->source(), icmp_quote ? uint16_t{0} : transport->source_port()};
  const Endpoint q_destination{quoted->destination(),
                               icmp_quote ? transport->source_port() : transport->destination_port()};
  const uint32_t session = Live(table_->FindInside(FlowKey{protocol, q_destination, q_source}), now_ms);
  if (session == kNoIndex) return for_gateway ? ToGateway() : Drop(DropReason::kNoMapping);
  if (p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  const Session& s = table_->session(session);  // REQ-6: an error refreshes nothing
  ChecksumDelta icmp;
  RewriteQuoted(*quoted, *transport, s.dpm() ? s.remote() : q_source, s.external(), /*id_at_source=*/false, &icmp);
  uint8_t* m = p.l4.data();
  Put16(m + wire::icmp::kChecksumOffset, icmp.Apply(LoadBe16(m + wire::icmp::kChecksumOffset)), {});
  // REQ-5c: a NAPT sends it from its own public address, the host's external address here;
  // a DPM host addressed the gateway endpoint, which stands for the remote.
  const uint32_t destination =
      s.dpm() && p.destination.address == config_.gateway_inside_address ? s.remote_address : p.destination.address;
  const bool hairpin = s.flags & kSessionHairpin;
  RewriteIp(p, s.external_address, destination, /*decrement_ttl=*/true, nullptr);
  ++counters_.icmp_errors_translated;
  // REQ-7: a hairpinned error goes on to the other inside host.
  if (hairpin) return OutsideIcmpError(now_ms, p, /*hairpin=*/true);
  ++counters_.translated_out;
  return Result{Verdict::kForwardOutside};
}

Result NatEngine::OutsideIcmpError(uint64_t now_ms, Packet& p, bool hairpin) {
  // REQ-4: the quote is a packet the NAT sent out: from the external endpoint to the remote.
  const bool for_gateway = !hairpin && p.destination.address == config_.gateway_outside_address;
  if (!for_gateway && !IsExternalAddress(p.destination.address)) return Drop(DropReason::kNoRoute);
  std::optional<Ipv4View> quoted;
  std::optional<QuotedTransport> transport;
  if (std::optional<DropReason> why = ParseIcmpError(p.l4, &quoted, &transport)) {
    if (*why == DropReason::kNoMapping && for_gateway) return ToGateway();
    return Drop(*why);
  }
  const Protocol protocol = static_cast<Protocol>(quoted->protocol());
  const bool icmp_quote = protocol == Protocol::kIcmp;
  const Endpoint q_source{quoted->source(), transport->source_port()};
  const Endpoint q_destination{quoted->destination(), icmp_quote ? uint16_t{0} : transport->destination_port()};
  const uint32_t session = Live(table_->FindOutside(FlowKey{protocol, q_source, q_destination}), now_ms);
  if (session == kNoIndex) return for_gateway ? ToGateway() : Drop(DropReason::kNoMapping);
  if (!hairpin && p.ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  const Session& s = table_->session(session);  // REQ-6: an error refreshes nothing
  ChecksumDelta icmp;
  const Endpoint q_new_destination = s.dpm() ? Endpoint{config_.gateway_inside_address, s.gateway_port} : q_destination;
  RewriteQuoted(*quoted, *transport, s.internal(), q_new_destination, /*id_at_source=*/true, &icmp);
  uint8_t* m = p.l4.data();
  Put16(m + wire::icmp::kChecksumOffset, icmp.Apply(LoadBe16(m + wire::icmp::kChecksumOffset)), {});
  // REQ-4c: to the quoted packet's (translated) source. A DPM host only knows the gateway
  // endpoint, so an error the remote itself sent comes from the gateway's address.
  const uint32_t source =
      s.dpm() && p.source.address == s.remote_address ? config_.gateway_inside_address : p.source.address;
  RewriteIp(p, source, s.internal_address, /*decrement_ttl=*/!hairpin, nullptr);
  if (hairpin) {
    ++counters_.hairpinned;
  } else {
    ++counters_.icmp_errors_translated;
  }
  ++counters_.translated_in;
  return Result{Verdict::kForwardInside};
}

// ---- Fragments (RFC 4787 REQ-14, RFC 6146 §3.5) ------------------------------------------

namespace {

// Expired records and held datagrams one fragment's call removes, oldest first: memory goes
// back even between sweeps, in bounded work.
constexpr size_t kFragmentExpiryPerPacket = 8;

}  // namespace

Result NatEngine::OnFragment(uint64_t now_ms, const Ipv4View& ip, bool from_inside, bool for_gateway) {
  ExpireFragments(now_ms, kFragmentExpiryPerPacket);
  const uint32_t dst = ip.destination();
  const uint8_t protocol = ip.protocol();
  const bool tcp_or_udp = protocol == wire::ipv4::kProtocolTcp || protocol == wire::ipv4::kProtocolUdp;
  if (!tcp_or_udp && protocol != wire::ipv4::kProtocolIcmp) {
    return for_gateway ? ToGateway() : Drop(DropReason::kUnsupportedProtocol);
  }
  // Fragments for the gateway's own addresses are its own (its stack reassembles them) unless
  // they may belong to a translated flow: TCP/UDP to the inside address (a DPM session's
  // gateway endpoint), or anything to an outside address that is also a pool address. Those
  // go through the records, and their first fragment's verdict (kToGateway on a miss)
  // decides for them all.
  if (for_gateway && !IsExternalAddress(dst) && !(from_inside && tcp_or_udp && dst == config_.gateway_inside_address)) {
    return ToGateway();
  }
  // RFC 791 §3.2: a fragment other than the last carries a multiple of 8 bytes, and the
  // datagram fits in 65535 bytes (fragments that reach past it are the "ping of death").
  const size_t payload = ip.payload().size();
  const size_t offset = size_t{ip.fragment_offset()} * 8;
  if (payload == 0 || (ip.more_fragments() && payload % 8 != 0) || ip.header_length() + offset + payload > 0xffff) {
    return Drop(DropReason::kMalformed);
  }
  const FragmentKey key{ip.source(), dst, ip.identification(), protocol, from_inside};
  if (offset == 0) return OnFirstFragment(now_ms, ip, key, from_inside, for_gateway);
  // RFC 1858 §4: a TCP fragment at offset 8 bytes can only serve to overwrite the header's
  // flags after a filter saw them.
  if (protocol == wire::ipv4::kProtocolTcp && ip.fragment_offset() == 1) return Drop(DropReason::kFragment);
  const uint32_t train = LiveTrain(key, now_ms);
  if (train != kNoIndex && fragments_->slots[train].recorded) {
    const FragmentTranslation translation = fragments_->slots[train].translation;
    const Result r = FollowFirstFragment(translation, ip);
    NoteFragmentBytes(train, ip);
    return r;
  }
  // Held only when it could be ours: from inside, toward an outside host (or a pool address,
  // hairpinning) or a DPM gateway endpoint (above); from outside, to a pool address.
  if (!for_gateway && (from_inside ? !IsOutsideUnicast(dst) : !IsExternalAddress(dst))) {
    return Drop(DropReason::kNoRoute);
  }
  return HoldFragment(now_ms, ip, key, train);
}

Result NatEngine::OnFirstFragment(uint64_t now_ms, const Ipv4View& ip, const FragmentKey& key, bool from_inside,
                                  bool for_gateway) {
  // Translated like a whole packet; the transport header must be whole in it (RFC 1858 §3.2:
  // tiny fragments; RFC 6146 §3.5 allows requiring it).
  Packet p(ip);
  DropReason why = DropReason::kNone;
  if (ip.protocol() == wire::ipv4::kProtocolUdp) {
    // UdpView checks the length field against the bytes given, but a first fragment's length
    // field counts the whole datagram, so only its 8-byte header is checked here.
    p.l4 = ip.payload();
    std::optional<QuotedTransport> udp = QuotedTransport::Parse(p.l4, wire::ipv4::kProtocolUdp);
    if (!udp || udp->source_port() == 0 || udp->destination_port() == 0 ||
        LoadBe16(&p.l4[wire::udp::kLengthOffset]) < p.l4.size()) {
      why = DropReason::kMalformed;
    } else {
      p.protocol = Protocol::kUdp;
      p.source = Endpoint{ip.source(), udp->source_port()};
      p.destination = Endpoint{ip.destination(), udp->destination_port()};
    }
  } else {
    why = ParseTransport(p, from_inside);
  }
  Result r;
  if (why != DropReason::kNone) {
    r = Drop(why);
  } else if (p.icmp_error) {
    // Its checksum covers bytes not here (RFC 5508 REQ-3): not translated.
    r = for_gateway ? ToGateway() : Drop(DropReason::kFragment);
  } else {
    r = from_inside ? InsideParsed(now_ms, p, for_gateway, kNoIndex) : OutsideParsed(now_ms, p, for_gateway, kNoIndex);
  }

  // The record: the rest of the datagram goes as this fragment went (dropped ones too, so
  // their later fragments are not held for nothing). `ip` now shows the translated header.
  FragmentTranslation translation;
  translation.verdict = r.verdict;
  if (r.verdict == Verdict::kForwardOutside || r.verdict == Verdict::kForwardInside) {
    translation.source = ip.source();
    translation.destination = ip.destination();
    translation.hairpin = from_inside && r.verdict == Verdict::kForwardInside;
  }
  Fragments& f = *fragments_;
  std::vector<std::vector<uint8_t>> held;
  if (const uint32_t old = LiveTrain(key, now_ms); old != kNoIndex) {
    // A held datagram gives up its fragments; an existing record (a duplicate first fragment,
    // or the identification reused) is replaced.
    if (!f.slots[old].recorded) {
      held.swap(f.slots[old].packets);
      f.held_packets -= held.size();
    }
    f.Remove(old);
  }
  uint32_t record = kNoIndex;
  if (config_.max_fragment_records > 0) {
    while (f.records.size >= config_.max_fragment_records) {
      f.Remove(f.records.head);
      ++counters_.fragment_records_evicted;
    }
    record = f.Add(key, /*recorded=*/true, now_ms + config_.fragment_timeout_ms);
    f.slots[record].translation = translation;
    if (NoteFragmentBytes(record, ip)) record = kNoIndex;
  }
  // Release what was held, translated the same way, in the order it came.
  size_t released = 0;
  for (std::vector<uint8_t>& packet : held) {
    f.bytes -= packet.size();
    std::optional<Ipv4View> view = Ipv4View::Parse(absl::MakeSpan(packet));  // parsed before it was held
    if (!view) continue;
    if (record != kNoIndex && NoteFragmentBytes(record, *view)) record = kNoIndex;
    const Result fate = FollowFirstFragment(translation, *view);
    if (fate.verdict == Verdict::kDrop) continue;
    f.bytes += packet.size();
    f.released.push_back(Fragments::Released{fate.verdict, std::move(packet)});
    ++counters_.fragments_released;
    ++released;
  }
  r.released = static_cast<uint16_t>(std::min<size_t>(released, 0xffff));
  return r;
}

Result NatEngine::FollowFirstFragment(const FragmentTranslation& t, const Ipv4View& ip) {
  switch (t.verdict) {
    case Verdict::kForwardOutside:
    case Verdict::kForwardInside:
      break;
    case Verdict::kToGateway:
      return ToGateway();
    case Verdict::kDrop:
    case Verdict::kHeld:
      return Drop(DropReason::kFragment);
  }
  // Like the first fragment: TTL - 1 (once, hairpinned too), packet untouched when it runs out.
  if (ip.ttl() <= 1) return Drop(DropReason::kTtlExceeded);
  Packet p(ip);
  RewriteIp(p, t.source, t.destination, /*decrement_ttl=*/true, nullptr);
  ++counters_.fragments_translated;
  if (t.verdict == Verdict::kForwardOutside) {
    ++counters_.translated_out;
  } else {
    ++counters_.translated_in;
    if (t.hairpin) ++counters_.hairpinned;
  }
  return Result{t.verdict};
}

Result NatEngine::HoldFragment(uint64_t now_ms, const Ipv4View& ip, const FragmentKey& key, uint32_t train) {
  Fragments& f = *fragments_;
  const absl::Span<uint8_t> bytes = ip.bytes();  // to the total length: no link padding
  const size_t count = train == kNoIndex ? 0 : f.slots[train].packets.size();
  if (count >= config_.max_held_fragments_per_datagram || f.bytes + bytes.size() > config_.max_held_fragment_bytes ||
      (train == kNoIndex && f.held.size >= config_.max_held_datagrams)) {
    return Drop(DropReason::kFragmentLimit);
  }
  if (train == kNoIndex) train = f.Add(key, /*recorded=*/false, now_ms + config_.fragment_timeout_ms);
  f.slots[train].packets.emplace_back(bytes.begin(), bytes.end());
  f.bytes += bytes.size();
  ++f.held_packets;
  ++counters_.fragments_held;
  return Result{Verdict::kHeld};
}

bool NatEngine::NoteFragmentBytes(uint32_t record, const Ipv4View& ip) {
  Fragments::Train& t = fragments_->slots[record];
  const uint32_t payload = static_cast<uint32_t>(ip.payload().size());
  t.seen += payload;
  if (!ip.more_fragments()) t.end = uint32_t{ip.fragment_offset()} * 8 + payload;
  if (t.end == 0 || t.seen < t.end) return false;
  // As many bytes as the datagram has went through: done. (A duplicate may end it early; a
  // fragment after that is held and expires.)
  fragments_->Remove(record);
  return true;
}

uint32_t NatEngine::LiveTrain(const FragmentKey& key, uint64_t now_ms) {
  const uint32_t train = fragments_->Find(key);
  if (train == kNoIndex || fragments_->slots[train].deadline_ms > now_ms) return train;
  DropTrain(train, DropReason::kFragmentTimeout);
  return kNoIndex;
}

void NatEngine::DropTrain(uint32_t train, DropReason reason) {
  Fragments& f = *fragments_;
  for (const std::vector<uint8_t>& packet : f.slots[train].packets) {
    f.bytes -= packet.size();
    ++drops_[static_cast<size_t>(reason)];
  }
  f.Remove(train);
}

size_t NatEngine::ExpireFragments(uint64_t now_ms, size_t budget) {
  Fragments& f = *fragments_;
  size_t removed = 0;
  for (Fragments::List* list : {&f.held, &f.records}) {
    while (removed < budget && list->head != kNoIndex && f.slots[list->head].deadline_ms <= now_ms) {
      DropTrain(list->head, DropReason::kFragmentTimeout);
      ++removed;
    }
  }
  return removed;
}

size_t NatEngine::TakeReleasedFragments(absl::FunctionRef<void(Verdict, absl::Span<uint8_t>)> fn) {
  Fragments& f = *fragments_;
  if (f.released.empty()) return 0;
  std::vector<Fragments::Released> batch;
  batch.swap(f.released);  // `fn` may call into the engine and release more
  for (Fragments::Released& r : batch) {
    f.bytes -= r.packet.size();
    fn(r.verdict, absl::MakeSpan(r.packet));
  }
  return batch.size();
}

// ---- Sessions and mappings ---------------------------------------------------------------

NatEngine::Host* NatEngine::FindHost(uint32_t internal_address) {
  auto it = hosts_.find(internal_address);
  return it == hosts_.end() ? nullptr : &it->second;
}

NatEngine::Host& NatEngine::HostFor(uint32_t internal_address) {
  auto [it, inserted] = hosts_.try_emplace(internal_address);
  if (inserted) it->second.pool_index = kNoPool;
  return it->second;
}

void NatEngine::ReleaseHostIfUnused(uint32_t internal_address) {
  auto it = hosts_.find(internal_address);
  if (it != hosts_.end() && it->second.count == 0) hosts_.erase(it);
}

uint32_t NatEngine::CreateMapping(Protocol protocol, MappingKind kind, Endpoint internal, size_t pool_index,
                                  uint16_t port, uint8_t flags, uint32_t expires_s) {
  Mapping m;
  m.protocol = protocol;
  m.kind = kind;
  m.internal_address = internal.address;
  m.internal_port = internal.port;
  m.external_address = ports_->address(pool_index);
  m.external_port = port;
  m.flags = flags;
  m.expires_s = expires_s;
  m.origin = kind == MappingKind::kDpm ? MappingOrigin::kDpm : MappingOrigin::kTraffic;
  const uint32_t index = table_->AddMapping(m);
  if (index == kNoIndex) return kNoIndex;
  ports_->Reserve(pool_index, protocol, port);
  ++counters_.mappings_created;
  if (expires_s != 0) {
    ++explicit_mappings_;
    ++HostFor(internal.address).count;
    NoteMappingDeadline(index, uint64_t{expires_s} * 1000);
  }
  return index;
}

void NatEngine::RemoveMapping(uint32_t index) {
  const Mapping m = table_->mapping(index);
  table_->RemoveMapping(index);
  if (!filters_.empty()) filters_.erase(index);
  if (std::optional<size_t> pool = ports_->IndexOf(m.external_address)) {
    ports_->Release(*pool, m.protocol, m.external_port);
  }
  if (m.is_explicit()) {
    --explicit_mappings_;
    if (Host* host = FindHost(m.internal_address)) {
      --host->count;
      ReleaseHostIfUnused(m.internal_address);
    }
  }
}

void NatEngine::UnrefMapping(uint32_t index) {
  if (index == kNoIndex) return;  // cannot happen: a session's mapping outlives it
  Mapping& m = table_->mapping(index);
  if (--m.sessions == 0 && !m.is_explicit()) RemoveMapping(index);
}

void NatEngine::ExpireExplicitMapping(uint32_t index) {
  Mapping& m = table_->mapping(index);
  if (m.sessions == 0) {
    RemoveMapping(index);
    return;
  }
  // Flows through it keep it as an implicit mapping until they end (RFC 6887 §15 deletes the
  // explicit mapping, not the dynamic sessions); its filters go with the explicit mapping.
  m.expires_s = 0;
  m.origin = MappingOrigin::kTraffic;
  if (!filters_.empty()) filters_.erase(index);
  --explicit_mappings_;
  if (Host* host = FindHost(m.internal_address)) --host->count;
}

uint32_t NatEngine::InstallSession(uint64_t now_ms, Session session, uint32_t mapping, DropReason* why) {
  session.last_used_s = Seconds(now_ms);
  const uint32_t index = table_->AddSession(session);
  if (index == kNoIndex) {
    *why = DropReason::kNoResources;
    Mapping& m = table_->mapping(mapping);
    if (m.sessions == 0 && !m.is_explicit()) RemoveMapping(mapping);
    ReleaseHostIfUnused(session.internal_address);
    return kNoIndex;
  }
  ++table_->mapping(mapping).sessions;
  ++HostFor(session.internal_address).count;
  ++counters_.sessions_created;
  NoteDeadline(index, Deadline(table_->session(index)));
  return index;
}

uint32_t NatEngine::CreateOutbound(uint64_t now_ms, Protocol protocol, Endpoint internal, Endpoint remote,
                                   TcpState state, DropReason* why) {
  if (table_->session_count() >= config_.max_sessions) {
    *why = DropReason::kNoResources;
    return kNoIndex;
  }
  // RFC 4787 REQ-1 / RFC 5382 REQ-1: one mapping per internal endpoint, whatever the remote.
  // (First: expiring an explicit mapping may release the host record taken below.)
  uint32_t mapping = LiveMapping(table_->FindMappingByInternal(EndpointKey{protocol, internal}), now_ms);
  Host& host = HostFor(internal.address);
  if (host.count >= config_.per_host_quota) {
    *why = DropReason::kQuota;
    ReleaseHostIfUnused(internal.address);
    return kNoIndex;
  }
  if (mapping == kNoIndex) {
    std::optional<uint16_t> port;
    size_t pool = 0;
    if (host.pool_index != kNoPool) {
      pool = host.pool_index;  // REQ-2: paired
      port = ports_->Allocate(pool, protocol, internal.port);
    } else {
      for (size_t k = 0; k < ports_->pool_size() && !port; ++k) {
        pool = (ports_->PairedIndex(internal.address) + k) % ports_->pool_size();
        port = ports_->Allocate(pool, protocol, internal.port);
      }
    }
    if (!port) {
      *why = DropReason::kNoResources;
      ReleaseHostIfUnused(internal.address);
      return kNoIndex;
    }
    host.pool_index = static_cast<uint32_t>(pool);
    mapping = CreateMapping(protocol, MappingKind::kEndpointIndependent, internal, pool, *port, 0, 0);
    if (mapping == kNoIndex) {
      ports_->Release(pool, protocol, *port);
      *why = DropReason::kNoResources;
      ReleaseHostIfUnused(internal.address);
      return kNoIndex;
    }
  }
  const Mapping& m = table_->mapping(mapping);
  Session s;
  s.protocol = protocol;
  s.internal_address = internal.address;
  s.internal_port = internal.port;
  s.external_address = m.external_address;
  s.external_port = m.external_port;
  s.remote_address = remote.address;
  s.remote_port = remote.port;
  s.tcp_state = state;
  if (IsExternalAddress(remote.address)) s.flags |= kSessionHairpin;
  return InstallSession(now_ms, s, mapping, why);
}

uint32_t NatEngine::CreateInbound(uint64_t now_ms, uint32_t mapping, Endpoint remote, DropReason* why) {
  if (table_->session_count() >= config_.max_sessions) {
    *why = DropReason::kNoResources;
    return kNoIndex;
  }
  const Mapping& m = table_->mapping(mapping);
  const Endpoint internal = m.internal();
  if (table_->FindInside(FlowKey{m.protocol, internal, remote}) != kNoIndex) {
    *why = DropReason::kNoMapping;  // cannot happen: that session would use this mapping
    return kNoIndex;
  }
  Host& host = HostFor(internal.address);
  if (host.count >= config_.per_host_quota) {
    *why = DropReason::kQuota;
    return kNoIndex;
  }
  Session s;
  s.protocol = m.protocol;
  s.internal_address = internal.address;
  s.internal_port = internal.port;
  s.external_address = m.external_address;
  s.external_port = m.external_port;
  s.remote_address = remote.address;
  s.remote_port = remote.port;
  s.tcp_state = m.protocol == Protocol::kTcp ? TcpState::kOutsideInit : TcpState::kClosed;
  if (IsExternalAddress(remote.address)) s.flags |= kSessionHairpin;
  return InstallSession(now_ms, s, mapping, why);
}

void NatEngine::RemoveSession(uint32_t index, bool expired) {
  const Session s = table_->session(index);
  table_->RemoveSession(index);
  if (expired) ++counters_.sessions_expired;
  UnrefMapping(s.dpm() ? table_->FindMappingByExternal(EndpointKey{s.protocol, s.external()})
                       : table_->FindMappingByInternal(EndpointKey{s.protocol, s.internal()}));
  if (Host* host = FindHost(s.internal_address)) {
    --host->count;
    ReleaseHostIfUnused(s.internal_address);
  }
}

uint32_t NatEngine::Live(uint32_t session, uint64_t now_ms) {
  if (session == kNoIndex || Deadline(table_->session(session)) > now_ms) return session;
  RemoveSession(session, /*expired=*/true);
  return kNoIndex;
}

uint32_t NatEngine::LiveMapping(uint32_t mapping, uint64_t now_ms) {
  if (mapping == kNoIndex) return kNoIndex;
  const Mapping& m = table_->mapping(mapping);
  if (!m.is_explicit() || uint64_t{m.expires_s} * 1000 > now_ms) return mapping;
  ExpireExplicitMapping(mapping);
  return table_->mapping(mapping).live() ? mapping : kNoIndex;
}

// ---- Timers (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2, RFC 7857 §2) ------------------

uint64_t NatEngine::Timeout(const Session& s) const {
  switch (s.protocol) {
    case Protocol::kUdp: return config_.udp_timeout_ms;
    case Protocol::kIcmp: return config_.icmp_timeout_ms;
    case Protocol::kTcp: break;
  }
  switch (s.tcp_state) {
    case TcpState::kEstablished:
    case TcpState::kInsideFinRcv:
    case TcpState::kOutsideFinRcv:
      return config_.tcp_established_ms;
    default:
      return config_.tcp_transitory_ms;
  }
}

uint64_t NatEngine::Deadline(const Session& s) const {
  // A DPM session is a PCP mapping: it lives until its lifetime ends, idle or not
  // (RFC 6887 §15); the driver renews it while the socket lives.
  if (s.dpm()) return uint64_t{s.expires_s} * 1000;
  return uint64_t{s.last_used_s} * 1000 + Timeout(s);
}

void NatEngine::OnPacket(uint64_t now_ms, uint32_t session, bool from_inside, uint8_t flags) {
  Session& s = table_->session(session);
  if (s.protocol != Protocol::kTcp) {
    // RFC 4787 REQ-6 (outbound refresh) and REQ-6a (inbound refresh, chosen here).
    s.last_used_s = Seconds(now_ms);
    return;
  }
  // RFC 6146 §3.5.2.2 as RFC 7857 §2.1 recommends for NAT44: "refresh" sets the lifetime of
  // the new state from now; states that do not refresh keep their old deadline.
  const bool syn = flags & wire::tcp::kSyn;
  const bool fin = flags & wire::tcp::kFin;
  const bool rst = flags & wire::tcp::kRst;
  const bool ack = flags & wire::tcp::kAck;
  const TcpState before = s.tcp_state;
  TcpState next = before;
  bool refresh = true;
  if (rst) {
    // RFC 7857 §2.3: translate the RST, keep the session 4 minutes (TRANS).
    refresh = before == TcpState::kEstablished || before == TcpState::kInsideFinRcv ||
              before == TcpState::kOutsideFinRcv;
    if (refresh) next = TcpState::kTrans;
  } else {
    switch (before) {
      case TcpState::kClosed:
        next = syn ? (from_inside ? TcpState::kInsideInit : TcpState::kOutsideInit) : TcpState::kEstablished;
        break;
      case TcpState::kInsideInit:
        if (syn && !from_inside) next = TcpState::kEstablished;  // SYN-ACK, or simultaneous open
        refresh = syn;
        break;
      case TcpState::kOutsideInit:
        if (syn && from_inside) next = TcpState::kEstablished;
        refresh = syn;
        break;
      case TcpState::kEstablished:
        if (fin) next = from_inside ? TcpState::kInsideFinRcv : TcpState::kOutsideFinRcv;
        break;
      case TcpState::kInsideFinRcv:
        if (fin && !from_inside) next = TcpState::kBothFinRcv;
        break;
      case TcpState::kOutsideFinRcv:
        if (fin && from_inside) next = TcpState::kBothFinRcv;
        break;
      case TcpState::kBothFinRcv:
        // Closing: the 4-minute timer runs out unrefreshed, unless a new connection reuses
        // the 4-tuple (a SYN after TIME-WAIT).
        refresh = syn && !ack;
        if (refresh) next = from_inside ? TcpState::kInsideInit : TcpState::kOutsideInit;
        break;
      case TcpState::kTrans:
        next = TcpState::kEstablished;
        break;
    }
  }
  s.tcp_state = next;
  if (refresh) s.last_used_s = Seconds(now_ms);
  if (next != before) NoteDeadline(session, Deadline(s));
}

void NatEngine::NoteDeadline(uint32_t session, uint64_t deadline_ms) { session_sweep_.Note(session, deadline_ms); }

void NatEngine::NoteMappingDeadline(uint32_t mapping, uint64_t deadline_ms) {
  mapping_sweep_.Note(mapping, deadline_ms);
}

uint32_t NatEngine::LifetimeFor(uint32_t requested_s) const {
  return std::clamp(requested_s, std::min(config_.min_lifetime_s, config_.max_lifetime_s), config_.max_lifetime_s);
}

uint32_t NatEngine::Seconds(uint64_t now_ms) {
  // Rounded up: a timer or lifetime counted from it never runs short.
  return static_cast<uint32_t>((now_ms + 999) / 1000);
}

uint32_t NatEngine::ExpiresAt(uint64_t now_ms, uint32_t lifetime_s) { return Seconds(now_ms) + lifetime_s; }

size_t NatEngine::Sweep(uint64_t now_ms, size_t max_entries) {
  size_t removed = 0;
  // Visits each slot of a slab at most once per call: `deadline_of` gives a live entry's
  // deadline (nullopt: not swept here), `expire` removes it.
  auto sweep = [&](SweepCursor& c, size_t slots, auto deadline_of, auto expire) {
    const size_t budget = std::min<size_t>(max_entries, slots);
    for (size_t k = 0; k < budget; ++k) {
      c.WrapAt(slots);
      const uint32_t i = c.next++;
      std::optional<uint64_t> deadline = deadline_of(i);
      if (!deadline) continue;
      if (*deadline <= now_ms) {
        expire(i);
        ++removed;
      } else {
        c.cycle_min = std::min(c.cycle_min, *deadline);
      }
    }
    c.WrapAt(slots);
  };
  sweep(
      session_sweep_, table_->session_slots(),
      [&](uint32_t i) -> std::optional<uint64_t> {
        const Session& s = table_->session(i);
        if (!s.live()) return std::nullopt;
        return Deadline(s);
      },
      [&](uint32_t i) { RemoveSession(i, /*expired=*/true); });
  // Explicit mappings (the others end with their last session).
  sweep(
      mapping_sweep_, table_->mapping_slots(),
      [&](uint32_t i) -> std::optional<uint64_t> {
        const Mapping& m = table_->mapping(i);
        if (!m.live() || !m.is_explicit()) return std::nullopt;
        return uint64_t{m.expires_s} * 1000;
      },
      [&](uint32_t i) { ExpireExplicitMapping(i); });
  ExpireFragments(now_ms, max_entries);
  // Random accesses (a record read and an index write per entry), so a fraction of the budget.
  table_->AdvanceGrowth(max_entries / 64);
  return removed;
}

std::optional<uint64_t> NatEngine::NextDeadline() const {
  std::optional<uint64_t> next;
  if (table_->session_count() > 0) next = session_sweep_.min;
  if (explicit_mappings_ > 0) next = std::min(next.value_or(UINT64_MAX), mapping_sweep_.min);
  for (const Fragments::List* list : {&fragments_->held, &fragments_->records}) {
    if (list->head != kNoIndex) next = std::min(next.value_or(UINT64_MAX), fragments_->slots[list->head].deadline_ms);
  }
  return next;
}

// ---- Control: DPM and explicit mappings ----------------------------------------------------

std::optional<uint16_t> NatEngine::ChooseGatewayPort(Protocol protocol, Endpoint internal, uint16_t preferred) {
  // The gateway endpoint must make the inside key (protocol, internal, gateway endpoint)
  // unique: the external port when it does, which keeps tables readable.
  auto usable = [&](uint32_t port) {
    return port != 0 && !reserved_gateway_ports_.contains(static_cast<uint16_t>(port)) &&
           table_->FindInside(FlowKey{protocol, internal, {config_.gateway_inside_address, static_cast<uint16_t>(port)}}) ==
               kNoIndex;
  };
  if (usable(preferred)) return preferred;
  constexpr uint32_t kLo = 1024, kHi = 65535;
  for (int attempt = 0; attempt < 32; ++attempt) {
    const uint32_t port = ports_->Uniform(kLo, kHi);
    if (usable(port)) return static_cast<uint16_t>(port);
  }
  const uint32_t start = ports_->Uniform(kLo, kHi);
  for (uint32_t k = 0; k <= kHi - kLo; ++k) {
    const uint32_t port = kLo + (start - kLo + k) % (kHi - kLo + 1);
    if (usable(port)) return static_cast<uint16_t>(port);
  }
  return std::nullopt;
}

std::variant<DpmGrant, GrantError> NatEngine::RequestDpm(uint64_t now_ms, const DpmRequest& r) {
  if (r.protocol != Protocol::kTcp && r.protocol != Protocol::kUdp) return GrantError::kUnsupportedProtocol;
  if (!IsInsideHost(r.internal.address) || r.internal.port == 0) return GrantError::kNotAuthorized;
  if (!IsOutsideUnicast(r.remote.address) || r.remote.port == 0) return GrantError::kNotAuthorized;

  auto grant_of = [&](const Session& s, uint32_t lifetime_s) {
    return DpmGrant{s.external(), Endpoint{config_.gateway_inside_address, s.gateway_port}, lifetime_s};
  };
  // Renewal and release by (protocol, internal, remote).
  const uint32_t existing = Live(table_->FindDpm(FlowKey{r.protocol, r.internal, r.remote}), now_ms);
  if (existing != kNoIndex) {
    Session& s = table_->session(existing);
    if (r.lifetime_s == 0) {
      const DpmGrant released = grant_of(s, 0);
      RemoveSession(existing, /*expired=*/false);
      return released;
    }
    const uint32_t lifetime = LifetimeFor(r.lifetime_s);
    s.expires_s = ExpiresAt(now_ms, lifetime);
    NoteDeadline(existing, Deadline(s));
    return grant_of(s, lifetime);
  }
  if (r.lifetime_s == 0) return DpmGrant{};  // RFC 6887 §15: nothing to delete is success

  if (table_->session_count() >= config_.max_sessions) return GrantError::kNoResources;
  // No Host& is held below: expiring a stale session or mapping in the loop may release
  // host records.
  const Host host = HostFor(r.internal.address);
  if (host.count >= config_.per_host_quota) {
    ReleaseHostIfUnused(r.internal.address);
    return GrantError::kUserExQuota;
  }
  // Candidate addresses: the suggested one when it is ours, then the host's paired address
  // (claim 1: "reserving a registered network address").
  size_t candidates[2];
  size_t n = 0;
  if (std::optional<size_t> suggested = ports_->IndexOf(r.suggested_external.address)) candidates[n++] = *suggested;
  const size_t paired = PairedPool(host, r.internal.address);
  if (ports_->pool_size() > 0 && (n == 0 || candidates[0] != paired)) candidates[n++] = paired;

  for (size_t c = 0; c < n; ++c) {
    const size_t pool = candidates[c];
    const uint32_t address = ports_->address(pool);
    uint32_t mapping = kNoIndex;
    if (r.port_fixed) {
      // Claims 8-10, 22 (RFC 7857 §3): a fixed port is kept; fixed-port sessions share it as
      // long as their remotes differ, since replies are told apart by the remote.
      const Endpoint external{address, r.internal.port};
      // (Expiring a stale session first may free the mapping itself.)
      const uint32_t clash = Live(table_->FindOutside(FlowKey{r.protocol, external, r.remote}), now_ms);
      mapping = LiveMapping(table_->FindMappingByExternal(EndpointKey{r.protocol, external}), now_ms);
      if (mapping != kNoIndex) {
        const Mapping& m = table_->mapping(mapping);
        if (clash != kNoIndex || m.kind != MappingKind::kDpm || !(m.flags & kMappingFixed)) continue;
      } else {
        mapping = CreateMapping(r.protocol, MappingKind::kDpm, Endpoint{}, pool, r.internal.port, kMappingFixed, 0);
        if (mapping == kNoIndex) return GrantError::kNoResources;
      }
    } else {
      // Claims 1, 20, 23: a replaceable port gets a new port of its own — the suggested one
      // when it is free, else a random one (RFC 6056, range and parity kept).
      std::optional<uint16_t> port;
      const uint16_t wanted = r.suggested_external.port;
      if (wanted != 0 && (r.suggested_external.address == 0 || r.suggested_external.address == address) &&
          !ports_->InUse(pool, r.protocol, wanted)) {
        port = wanted;
      } else {
        port = ports_->Allocate(pool, r.protocol, r.internal.port);
      }
      if (!port) continue;
      mapping = CreateMapping(r.protocol, MappingKind::kDpm, Endpoint{}, pool, *port, 0, 0);
      if (mapping == kNoIndex) {
        ports_->Release(pool, r.protocol, *port);
        return GrantError::kNoResources;
      }
    }
    const Mapping& m = table_->mapping(mapping);
    std::optional<uint16_t> gateway_port = ChooseGatewayPort(r.protocol, r.internal, m.external_port);
    if (!gateway_port) {
      if (m.sessions == 0) RemoveMapping(mapping);
      ReleaseHostIfUnused(r.internal.address);
      return GrantError::kNoResources;
    }
    Session s;
    s.protocol = r.protocol;
    s.flags = kSessionDpm | (r.port_fixed ? kSessionFixed : 0);
    s.internal_address = r.internal.address;
    s.internal_port = r.internal.port;
    s.external_address = m.external_address;
    s.external_port = m.external_port;
    s.remote_address = r.remote.address;
    s.remote_port = r.remote.port;
    s.gateway_port = *gateway_port;
    if (IsExternalAddress(r.remote.address)) s.flags |= kSessionHairpin;
    const uint32_t lifetime = LifetimeFor(r.lifetime_s);
    s.expires_s = ExpiresAt(now_ms, lifetime);
    Host& owner = HostFor(r.internal.address);
    if (owner.pool_index == kNoPool) owner.pool_index = static_cast<uint32_t>(pool);
    DropReason why = DropReason::kNone;
    const uint32_t session = InstallSession(now_ms, s, mapping, &why);
    if (session == kNoIndex) return GrantError::kNoResources;
    return grant_of(table_->session(session), lifetime);
  }
  ReleaseHostIfUnused(r.internal.address);
  return r.port_fixed ? GrantError::kCannotProvideExternal : GrantError::kNoResources;
}

std::variant<DpmGrant, GrantError> NatEngine::RequestMap(uint64_t now_ms, Protocol protocol, Endpoint internal,
                                                         Endpoint suggested_external, uint32_t lifetime_s) {
  MapRequest request;
  request.protocol = protocol;
  request.internal = internal;
  request.suggested_external = suggested_external;
  request.lifetime_s = lifetime_s;
  return RequestMap(now_ms, request);
}

bool NatEngine::UpdateFilters(uint32_t mapping, const MapRequest& request) {
  if (!request.clear_filters && request.filters.empty()) return true;  // the filters it has stay
  std::vector<RemoteFilter> next;
  if (!request.clear_filters) {
    if (auto it = filters_.find(mapping); it != filters_.end()) next = it->second;
  }
  for (const RemoteFilter& f : request.filters) {
    if (std::find(next.begin(), next.end(), f) == next.end()) next.push_back(f);
  }
  if (next.size() > kMaxFiltersPerMapping) return false;
  if (next.empty()) {
    filters_.erase(mapping);
  } else {
    filters_[mapping] = std::move(next);
  }
  return true;
}

std::variant<DpmGrant, GrantError> NatEngine::RequestMap(uint64_t now_ms, const MapRequest& r) {
  const Protocol protocol = r.protocol;
  const Endpoint internal = r.internal;
  const Endpoint suggested_external = r.suggested_external;
  const uint32_t lifetime_s = r.lifetime_s;
  if (protocol != Protocol::kTcp && protocol != Protocol::kUdp) return GrantError::kUnsupportedProtocol;
  if (!IsInsideHost(internal.address) || internal.port == 0) return GrantError::kNotAuthorized;

  uint32_t mapping = LiveMapping(table_->FindMappingByInternal(EndpointKey{protocol, internal}), now_ms);
  if (mapping != kNoIndex) {
    Mapping& m = table_->mapping(mapping);
    const Endpoint external = m.external();
    if (lifetime_s == 0) {
      // RFC 6887 §15: delete the explicit mapping; a mapping flows made implicitly stays.
      if (m.is_explicit()) ExpireExplicitMapping(mapping);
      return DpmGrant{external, Endpoint{}, 0};
    }
    if (!UpdateFilters(mapping, r)) return GrantError::kExcessiveRemotePeers;
    const uint32_t lifetime = LifetimeFor(lifetime_s);
    if (!m.is_explicit()) {
      ++explicit_mappings_;
      ++HostFor(internal.address).count;
    }
    m.origin = r.origin;
    m.expires_s = ExpiresAt(now_ms, lifetime);
    NoteMappingDeadline(mapping, uint64_t{m.expires_s} * 1000);
    return DpmGrant{external, Endpoint{}, lifetime};
  }
  if (lifetime_s == 0) return DpmGrant{};
  if (r.filters.size() > kMaxFiltersPerMapping) return GrantError::kExcessiveRemotePeers;

  Host& host = HostFor(internal.address);
  if (host.count >= config_.per_host_quota) {
    ReleaseHostIfUnused(internal.address);
    return GrantError::kUserExQuota;
  }
  size_t candidates[2];
  size_t n = 0;
  if (std::optional<size_t> suggested = ports_->IndexOf(suggested_external.address)) candidates[n++] = *suggested;
  const size_t paired = PairedPool(host, internal.address);
  if (ports_->pool_size() > 0 && (n == 0 || candidates[0] != paired)) candidates[n++] = paired;
  for (size_t c = 0; c < n; ++c) {
    const size_t pool = candidates[c];
    std::optional<uint16_t> port;
    const uint16_t wanted = suggested_external.port;
    if (wanted != 0 && (suggested_external.address == 0 || suggested_external.address == ports_->address(pool)) &&
        !ports_->InUse(pool, protocol, wanted)) {
      port = wanted;
    } else {
      port = ports_->Allocate(pool, protocol, internal.port);
    }
    if (!port) continue;
    const uint32_t lifetime = LifetimeFor(lifetime_s);
    if (host.pool_index == kNoPool) host.pool_index = static_cast<uint32_t>(pool);
    mapping = CreateMapping(protocol, MappingKind::kEndpointIndependent, internal, pool, *port, 0,
                            ExpiresAt(now_ms, lifetime));
    if (mapping == kNoIndex) {
      ports_->Release(pool, protocol, *port);
      break;
    }
    table_->mapping(mapping).origin = r.origin;
    UpdateFilters(mapping, r);  // within the limit: checked above
    return DpmGrant{table_->mapping(mapping).external(), Endpoint{}, lifetime};
  }
  ReleaseHostIfUnused(internal.address);
  return GrantError::kNoResources;
}

size_t NatEngine::PairedPool(const Host& host, uint32_t internal_address) const {
  if (host.pool_index != kNoPool) return host.pool_index;
  return ports_->pool_size() ? ports_->PairedIndex(internal_address) : 0;
}

uint32_t NatEngine::ExternalAddressFor(uint32_t internal_address) const {
  if (ports_->pool_size() == 0) return 0;
  auto it = hosts_.find(internal_address);
  return ports_->address(PairedPool(it != hosts_.end() ? it->second : Host{kNoPool, 0}, internal_address));
}

// ---- Listing -----------------------------------------------------------------------------

void NatEngine::ForEachSession(uint64_t now_ms, absl::FunctionRef<void(const SessionInfo&)> fn) const {
  for (uint32_t i = 0; i < table_->session_slots(); ++i) {
    const Session& s = table_->session(i);
    if (!s.live()) continue;
    SessionInfo info;
    info.protocol = s.protocol;
    info.internal = s.internal();
    info.external = s.external();
    info.remote = s.remote();
    info.gateway_endpoint = s.dpm() ? Endpoint{config_.gateway_inside_address, s.gateway_port} : Endpoint{};
    info.state = s.protocol == Protocol::kTcp ? TcpStateName(s.tcp_state) : "OPEN";
    const uint64_t last_used_ms = uint64_t{s.last_used_s} * 1000;
    info.idle_ms = now_ms > last_used_ms ? now_ms - last_used_ms : 0;
    info.dpm = s.dpm();
    fn(info);
  }
}

void NatEngine::ForEachMapping(uint64_t now_ms, absl::FunctionRef<void(const MappingInfo&)> fn) const {
  for (uint32_t i = 0; i < table_->mapping_slots(); ++i) {
    const Mapping& m = table_->mapping(i);
    if (!m.live()) continue;
    MappingInfo info;
    info.protocol = m.protocol;
    info.internal = m.kind == MappingKind::kDpm ? Endpoint{} : m.internal();
    info.external = m.external();
    info.sessions = m.sessions;
    info.dpm = m.kind == MappingKind::kDpm;
    info.fixed = m.flags & kMappingFixed;
    if (m.is_explicit()) {
      const uint64_t end = uint64_t{m.expires_s} * 1000;
      info.lifetime_left_ms = end > now_ms ? end - now_ms : 0;
    }
    info.origin = m.origin;
    if (auto it = filters_.find(i); it != filters_.end()) info.filters = it->second;
    fn(info);
  }
}

}  // namespace dpm::nat
