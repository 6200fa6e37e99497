// The NAT's fragment state (RFC 4787 REQ-14, by the method of RFC 6146 §3.5; docs/nat.md
// "Fragments"): for each datagram whose first fragment was translated, a record of how it
// went, by which its later fragments are translated; and fragments that came before their
// datagram's first fragment, held (copied, bounded) until it comes or they time out.
//
// Pure bookkeeping, as the session table is: what the translation is, and every counter, is
// the engine's. Every limit bounds memory, so a flood of fragments costs at most these,
// whatever it holds. Times are ms of the caller's monotonic clock.
#ifndef DPM_NAT_FRAGMENTS_H_
#define DPM_NAT_FRAGMENTS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "nat/session_table.h"
#include "nat/verdict.h"
#include "wire/ipv4.h"

namespace dpm::nat {

/// A datagram is named by the fields every one of its fragments repeats (RFC 791 §3.2:
/// source, destination, protocol, identification), as it arrived, plus the side it arrived
/// on. Host byte order.
struct FragmentKey {
  uint32_t source = 0;
  uint32_t destination = 0;
  uint16_t identification = 0;
  uint8_t protocol = 0;
  bool from_inside = false;

  friend bool operator==(const FragmentKey& a, const FragmentKey& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FragmentKey& k) {
    return H::combine(std::move(h), k.source, k.destination, k.identification, k.protocol, k.from_inside);
  }
};

/// What a datagram's first fragment got, for the rest of it.
struct FragmentTranslation {
  Verdict verdict = Verdict::kDrop;  // kDrop: the first fragment was dropped
  uint32_t source = 0;               // the addresses it left with (forwarded verdicts)
  uint32_t destination = 0;
  bool hairpin = false;              // from inside, back inside
};

/// The bounds (NatConfig's fragment fields).
struct FragmentLimits {
  uint64_t timeout_ms = 30000;        // a record's or held datagram's life from its creation
  size_t max_records = 4096;          // beyond: the oldest record is replaced
  size_t max_held_datagrams = 256;    // 0: nothing is held
  size_t max_held_per_datagram = 64;  // fragments held for one datagram
  size_t max_held_bytes = size_t{1} << 20;  // held plus released-not-taken, whole packets
};

/// Records and held datagrams ("trains") in a slab, each on one of two lists in deadline
/// order (the timeout is one constant, so the order they were made in): expiry pops from the
/// front and nothing is scanned. Not thread-safe.
class FragmentTracker {
 public:
  explicit FragmentTracker(FragmentLimits limits) : limits_(limits) {}

  /// The train of `key` (a record or a held datagram), or kNoIndex. One whose deadline has
  /// passed at `now_ms` is removed first, and the fragments it held are added to
  /// `*timed_out` (the engine counts them kFragmentTimeout).
  uint32_t Find(const FragmentKey& key, uint64_t now_ms, size_t* timed_out);
  /// Whether train `train` (from Find) is a record (first fragment seen) or a held datagram.
  bool is_record(uint32_t train) const { return slots_[train].recorded; }
  /// A record's translation.
  const FragmentTranslation& translation(uint32_t record) const { return slots_[record].translation; }

  /// Counts `fragment`'s payload toward record `record`'s datagram; once as many bytes as the
  /// datagram has went through (its last fragment gave the length), the record is removed
  /// and true returned. (A duplicate may end it early; a fragment after that is held and
  /// expires.)
  bool NoteBytes(uint32_t record, const wire::Ipv4View& fragment);

  /// Holds a copy of `fragment` (its bytes up to the total length) for `key`, whose held
  /// datagram Find returned as `train` (kNoIndex: none yet, one is made). False, and nothing
  /// held, at any limit: max_held_per_datagram, max_held_bytes, max_held_datagrams.
  bool Hold(uint64_t now_ms, const wire::Ipv4View& fragment, const FragmentKey& key, uint32_t train);

  /// A first fragment of `key` came and got `translation`: whatever train Find returned
  /// (`train`, or kNoIndex) goes — a record is replaced (a duplicate first fragment, or the
  /// identification reused), a held datagram gives up its fragments into `*held` (oldest
  /// first; no longer counted in held_fragment_bytes) — and a record is made, replacing the
  /// oldest ones at max_records (counted in `*evicted`). Returns it, or kNoIndex when
  /// max_records is 0.
  uint32_t Record(uint64_t now_ms, const FragmentKey& key, uint32_t train, const FragmentTranslation& translation,
                  std::vector<std::vector<uint8_t>>* held, size_t* evicted);

  /// Queues a fragment released by its first fragment, translated, for TakeReleased; its
  /// bytes count against max_held_bytes until then.
  void Release(Verdict verdict, std::vector<uint8_t> packet);
  /// Hands every released fragment to `fn`, oldest first, and forgets it; returns how many.
  /// `fn` may call into the tracker (and release more: those wait for the next call).
  size_t TakeReleased(absl::FunctionRef<void(Verdict verdict, absl::Span<uint8_t> packet)> fn);

  /// Removes up to `budget` trains whose deadline has passed, held datagrams first, oldest
  /// first; returns the fragments they held (timed out).
  size_t Expire(uint64_t now_ms, size_t budget);
  /// The earliest deadline of a train, or nullopt when there is none.
  std::optional<uint64_t> NextDeadline() const;

  size_t record_count() const { return records_.size; }
  size_t held_fragment_count() const { return held_packets_; }
  size_t held_datagram_count() const { return held_.size; }
  /// Bytes held plus released-not-taken.
  size_t held_bytes() const { return bytes_; }
  size_t released_count() const { return released_.size(); }

 private:
  struct Train {
    FragmentKey key;
    uint64_t deadline_ms = 0;
    uint32_t prev = kNoIndex;
    uint32_t next = kNoIndex;
    bool recorded = false;       // on `records_` (else on `held_`)
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
  struct Released {
    Verdict verdict;
    std::vector<uint8_t> packet;
  };

  List& ListOf(const Train& t) { return t.recorded ? records_ : held_; }
  void Append(uint32_t i);
  void Unlink(uint32_t i);
  // A new train for `key` (not present), last on its list.
  uint32_t Add(const FragmentKey& key, bool recorded, uint64_t deadline_ms);
  // Forgets train `i`; its held packets must have been accounted for by the caller.
  void Remove(uint32_t i);
  // Removes train `i` with what it holds; returns how many fragments that was.
  size_t Drop(uint32_t i);

  FragmentLimits limits_;
  std::vector<Train> slots_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<FragmentKey, uint32_t> index_;
  List records_;
  List held_;
  size_t held_packets_ = 0;  // fragments on held trains
  size_t bytes_ = 0;         // held packets + released ones not taken yet
  std::vector<Released> released_;
};

}  // namespace dpm::nat

#endif  // DPM_NAT_FRAGMENTS_H_
