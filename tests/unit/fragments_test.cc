// src/nat/fragments: the fragment tracker behind RFC 4787 REQ-14 (the method of RFC 6146
// §3.5): fragments held until their first fragment comes, released by it in arrival order,
// timed out, and bounded in count and bytes.
#include "nat/fragments.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "wire/ipv4.h"

namespace dpm::nat {
namespace {

using wire::Ipv4View;

constexpr uint32_t kInside = 0x0a4d010a;   // 10.77.1.10
constexpr uint32_t kRemote = 0xc633640a;   // 198.51.100.10
constexpr uint16_t kMoreFragments = 0x2000;

// A UDP fragment of datagram `id`: `payload` bytes at `offset_bytes` (a multiple of 8), MF set
// unless `last`.
std::vector<uint8_t> Fragment(uint16_t id, size_t offset_bytes, size_t payload, bool last) {
  wire::Ipv4Repr repr;
  repr.source = kInside;
  repr.destination = kRemote;
  repr.protocol = wire::ipv4::kProtocolUdp;
  repr.ttl = 64;
  repr.identification = id;
  repr.flags_fragment = static_cast<uint16_t>((last ? 0 : kMoreFragments) | (offset_bytes / 8));
  repr.payload_length = payload;
  std::vector<uint8_t> p(repr.buffer_len());
  EXPECT_TRUE(repr.Emit(absl::MakeSpan(p)));
  for (size_t i = 0; i < payload; ++i) p[20 + i] = static_cast<uint8_t>(offset_bytes + i);
  Ipv4View::Parse(absl::MakeSpan(p))->FillChecksum();
  return p;
}

Ipv4View View(std::vector<uint8_t>& p) { return *Ipv4View::Parse(absl::MakeSpan(p)); }

FragmentKey KeyOf(uint16_t id) { return FragmentKey{kInside, kRemote, id, wire::ipv4::kProtocolUdp, true}; }

// Small bounds, so the tests reach each of them.
FragmentLimits Limits() {
  return FragmentLimits{.timeout_ms = 2000, .max_records = 4, .max_held_datagrams = 2, .max_held_per_datagram = 3,
                        .max_held_bytes = 1000};
}

FragmentTranslation Forwarded() {
  FragmentTranslation t;
  t.verdict = Verdict::kForwardOutside;
  t.source = 0xcb007101;  // 203.0.113.1
  t.destination = kRemote;
  return t;
}

TEST(NatFragmentTracker, HeldUntilTheFirstFragmentReleasesThemInOrder) {
  FragmentTracker f(Limits());
  size_t timed_out = 0;
  std::vector<uint8_t> second = Fragment(7, 96, 96, false);
  std::vector<uint8_t> third = Fragment(7, 192, 40, true);
  ASSERT_EQ(f.Find(KeyOf(7), 0, &timed_out), kNoIndex);
  ASSERT_TRUE(f.Hold(0, View(second), KeyOf(7), kNoIndex));
  const uint32_t train = f.Find(KeyOf(7), 10, &timed_out);
  ASSERT_NE(train, kNoIndex);
  EXPECT_FALSE(f.is_record(train)) << "held, not recorded: no first fragment yet";
  ASSERT_TRUE(f.Hold(10, View(third), KeyOf(7), train));
  EXPECT_EQ(f.held_fragment_count(), 2u);
  EXPECT_EQ(f.held_datagram_count(), 1u);
  EXPECT_EQ(f.held_bytes(), second.size() + third.size());

  // The first fragment: a record replaces the held datagram and hands over its fragments.
  std::vector<std::vector<uint8_t>> held;
  size_t evicted = 0;
  const uint32_t record =
      f.Record(20, KeyOf(7), f.Find(KeyOf(7), 20, &timed_out), Forwarded(), &held, &evicted);
  ASSERT_NE(record, kNoIndex);
  EXPECT_TRUE(f.is_record(f.Find(KeyOf(7), 20, &timed_out)));
  EXPECT_EQ(f.translation(record).source, Forwarded().source);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0], second) << "oldest first";
  EXPECT_EQ(held[1], third);
  EXPECT_EQ(f.held_fragment_count(), 0u);
  EXPECT_EQ(f.held_datagram_count(), 0u);
  EXPECT_EQ(f.held_bytes(), 0u) << "handed-over fragments no longer count";
  EXPECT_EQ(evicted, 0u);

  // Released (translated by the engine): counted until taken, then handed out in order.
  for (auto& p : held) f.Release(Verdict::kForwardOutside, std::move(p));
  EXPECT_EQ(f.released_count(), 2u);
  EXPECT_EQ(f.held_bytes(), second.size() + third.size());
  std::vector<std::vector<uint8_t>> taken;
  EXPECT_EQ(f.TakeReleased([&](Verdict v, absl::Span<uint8_t> p) {
    EXPECT_EQ(v, Verdict::kForwardOutside);
    taken.emplace_back(p.begin(), p.end());
  }),
            2u);
  EXPECT_EQ(taken, (std::vector<std::vector<uint8_t>>{second, third}));
  EXPECT_EQ(f.held_bytes(), 0u);
  EXPECT_EQ(f.released_count(), 0u);
}

TEST(NatFragmentTracker, ARecordEndsWhenEveryByteWentThrough) {
  FragmentTracker f(Limits());
  size_t timed_out = 0, evicted = 0;
  std::vector<std::vector<uint8_t>> held;
  std::vector<uint8_t> first = Fragment(9, 0, 96, false);
  std::vector<uint8_t> middle = Fragment(9, 96, 96, false);
  std::vector<uint8_t> last = Fragment(9, 192, 40, true);
  const uint32_t record = f.Record(0, KeyOf(9), kNoIndex, Forwarded(), &held, &evicted);
  EXPECT_FALSE(f.NoteBytes(record, View(first)));
  EXPECT_FALSE(f.NoteBytes(record, View(last))) << "the length is known, 96 bytes are missing";
  EXPECT_EQ(f.record_count(), 1u);
  EXPECT_TRUE(f.NoteBytes(record, View(middle)));
  EXPECT_EQ(f.record_count(), 0u);
  EXPECT_EQ(f.Find(KeyOf(9), 0, &timed_out), kNoIndex);
}

TEST(NatFragmentTracker, HeldFragmentsTimeOut) {
  FragmentTracker f(Limits());
  size_t timed_out = 0;
  std::vector<uint8_t> a = Fragment(1, 96, 96, false);
  std::vector<uint8_t> b = Fragment(1, 192, 96, false);
  std::vector<uint8_t> c = Fragment(2, 96, 96, false);
  ASSERT_TRUE(f.Hold(0, View(a), KeyOf(1), kNoIndex));
  ASSERT_TRUE(f.Hold(0, View(b), KeyOf(1), f.Find(KeyOf(1), 0, &timed_out)));
  ASSERT_TRUE(f.Hold(500, View(c), KeyOf(2), kNoIndex));
  EXPECT_EQ(f.NextDeadline(), std::optional<uint64_t>(2000));
  // Still alive just before the deadline; gone at it, its two fragments counted.
  EXPECT_NE(f.Find(KeyOf(1), 1999, &timed_out), kNoIndex);
  EXPECT_EQ(f.Find(KeyOf(1), 2000, &timed_out), kNoIndex);
  EXPECT_EQ(timed_out, 2u);
  EXPECT_EQ(f.held_bytes(), c.size());
  EXPECT_EQ(f.NextDeadline(), std::optional<uint64_t>(2500));
  // Expire: the rest, without a lookup.
  EXPECT_EQ(f.Expire(2499, 8), 0u);
  EXPECT_EQ(f.Expire(2500, 8), 1u);
  EXPECT_EQ(f.held_datagram_count(), 0u);
  EXPECT_EQ(f.held_bytes(), 0u);
  EXPECT_EQ(f.NextDeadline(), std::nullopt);
}

TEST(NatFragmentTracker, ExpiryIsBoundedPerCall) {
  FragmentTracker f(Limits());
  size_t evicted = 0;
  std::vector<std::vector<uint8_t>> held;
  for (uint16_t id = 0; id < 4; ++id) f.Record(0, KeyOf(id), kNoIndex, Forwarded(), &held, &evicted);
  EXPECT_EQ(f.record_count(), 4u);
  f.Expire(5000, 3);
  EXPECT_EQ(f.record_count(), 1u) << "three removed, one left for the next call";
  f.Expire(5000, 3);
  EXPECT_EQ(f.record_count(), 0u);
}

TEST(NatFragmentTracker, BoundedInBytesFragmentsAndDatagrams) {
  FragmentTracker f(Limits());  // 1000 bytes, 3 per datagram, 2 datagrams
  size_t timed_out = 0;
  std::vector<uint8_t> big = Fragment(1, 96, 600, false);   // 620 bytes
  std::vector<uint8_t> more = Fragment(2, 96, 400, false);  // 420: would pass 1000
  ASSERT_TRUE(f.Hold(0, View(big), KeyOf(1), kNoIndex));
  EXPECT_FALSE(f.Hold(0, View(more), KeyOf(2), kNoIndex)) << "max_held_bytes";
  EXPECT_EQ(f.held_bytes(), big.size());
  EXPECT_EQ(f.held_datagram_count(), 1u) << "a refused fragment makes no datagram";

  // Per datagram: three fragments, not four.
  std::vector<uint8_t> small = Fragment(2, 96, 16, false);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.Hold(0, View(small), KeyOf(2), f.Find(KeyOf(2), 0, &timed_out)));
  EXPECT_FALSE(f.Hold(0, View(small), KeyOf(2), f.Find(KeyOf(2), 0, &timed_out))) << "max_held_per_datagram";
  // Datagrams: two held at once.
  EXPECT_FALSE(f.Hold(0, View(small), KeyOf(3), kNoIndex)) << "max_held_datagrams";
  EXPECT_EQ(f.held_fragment_count(), 4u);
  EXPECT_EQ(f.held_bytes(), big.size() + 3 * small.size());

  // Released fragments count until taken: no room for more meanwhile.
  std::vector<std::vector<uint8_t>> held;
  size_t evicted = 0;
  f.Record(0, KeyOf(1), f.Find(KeyOf(1), 0, &timed_out), Forwarded(), &held, &evicted);
  ASSERT_EQ(held.size(), 1u);
  f.Release(Verdict::kForwardOutside, std::move(held[0]));
  EXPECT_FALSE(f.Hold(0, View(more), KeyOf(4), kNoIndex)) << "a released fragment still counts";
  f.TakeReleased([](Verdict, absl::Span<uint8_t>) {});
  EXPECT_TRUE(f.Hold(0, View(more), KeyOf(4), kNoIndex));
}

TEST(NatFragmentTracker, RecordsBeyondTheLimitReplaceTheOldest) {
  FragmentTracker f(Limits());  // 4 records
  size_t timed_out = 0, evicted = 0;
  std::vector<std::vector<uint8_t>> held;
  for (uint16_t id = 0; id < 6; ++id) f.Record(id, KeyOf(id), kNoIndex, Forwarded(), &held, &evicted);
  EXPECT_EQ(evicted, 2u);
  EXPECT_EQ(f.record_count(), 4u);
  EXPECT_EQ(f.Find(KeyOf(0), 10, &timed_out), kNoIndex);
  EXPECT_EQ(f.Find(KeyOf(1), 10, &timed_out), kNoIndex);
  EXPECT_NE(f.Find(KeyOf(2), 10, &timed_out), kNoIndex);
  EXPECT_EQ(timed_out, 0u) << "evicted, not timed out";

  FragmentLimits none = Limits();
  none.max_records = 0;
  FragmentTracker off(none);
  EXPECT_EQ(off.Record(0, KeyOf(1), kNoIndex, Forwarded(), &held, &evicted), kNoIndex);
  EXPECT_EQ(off.record_count(), 0u);
}

TEST(NatFragmentTracker, TheKeyIncludesTheSide) {
  FragmentTracker f(Limits());
  size_t timed_out = 0;
  std::vector<uint8_t> p = Fragment(5, 96, 96, false);
  ASSERT_TRUE(f.Hold(0, View(p), KeyOf(5), kNoIndex));
  FragmentKey outside = KeyOf(5);
  outside.from_inside = false;
  EXPECT_EQ(f.Find(outside, 0, &timed_out), kNoIndex);
  EXPECT_NE(f.Find(KeyOf(5), 0, &timed_out), kNoIndex);
}

}  // namespace
}  // namespace dpm::nat
