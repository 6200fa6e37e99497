// The NAT engine's fragment path (RFC 4787 REQ-14 by the method of RFC 6146 §3.5; docs/nat.md
// "Fragments"): a first fragment is translated like a whole packet and leaves a record
// (nat/fragments.h) by which the later ones follow it; later fragments that come first are
// held until it comes. Off the fast path: only a packet with MF set or a non-zero offset
// gets here.
#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "nat/engine_packet.h"
#include "nat/fragments.h"
#include "nat/nat_engine.h"
#include "nat/port_allocator.h"
#include "wire/ipv4.h"

namespace dpm::nat {

using wire::Ipv4View;
using wire::QuotedTransport;

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
  if (train != kNoIndex && fragments_->is_record(train)) {
    const FragmentTranslation translation = fragments_->translation(train);
    const Result r = FollowFirstFragment(translation, ip);
    fragments_->NoteBytes(train, ip);
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
        wire::LoadBe16(&p.l4[wire::udp::kLengthOffset]) < p.l4.size()) {
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
    r = TranslateParsed(now_ms, p, from_inside, for_gateway);
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
  // A held datagram gives up its fragments; an existing record (a duplicate first fragment,
  // or the identification reused) is replaced.
  std::vector<std::vector<uint8_t>> held;
  size_t evicted = 0;
  uint32_t record = fragments_->Record(now_ms, key, LiveTrain(key, now_ms), translation, &held, &evicted);
  counters_.fragment_records_evicted += evicted;
  if (record != kNoIndex && fragments_->NoteBytes(record, ip)) record = kNoIndex;
  // Release what was held, translated the same way, in the order it came.
  size_t released = 0;
  for (std::vector<uint8_t>& packet : held) {
    std::optional<Ipv4View> view = Ipv4View::Parse(absl::MakeSpan(packet));  // parsed before it was held
    if (!view) continue;
    if (record != kNoIndex && fragments_->NoteBytes(record, *view)) record = kNoIndex;
    const Result fate = FollowFirstFragment(translation, *view);
    if (fate.verdict == Verdict::kDrop) continue;
    fragments_->Release(fate.verdict, std::move(packet));
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
  if (!fragments_->Hold(now_ms, ip, key, train)) return Drop(DropReason::kFragmentLimit);
  ++counters_.fragments_held;
  return Result{Verdict::kHeld};
}

uint32_t NatEngine::LiveTrain(const FragmentKey& key, uint64_t now_ms) {
  size_t timed_out = 0;
  const uint32_t train = fragments_->Find(key, now_ms, &timed_out);
  drops_[static_cast<size_t>(DropReason::kFragmentTimeout)] += timed_out;
  return train;
}

void NatEngine::ExpireFragments(uint64_t now_ms, size_t budget) {
  drops_[static_cast<size_t>(DropReason::kFragmentTimeout)] += fragments_->Expire(now_ms, budget);
}

size_t NatEngine::TakeReleasedFragments(absl::FunctionRef<void(Verdict, absl::Span<uint8_t>)> fn) {
  return fragments_->TakeReleased(fn);
}

}  // namespace dpm::nat
