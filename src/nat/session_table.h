// The NAT engine's state (the DPM patent's "look-up table", claims 7, 14, 21; RFC 4787 §4 mappings,
// RFC 6146 §3.5 sessions): mappings and sessions in slabs, found through hash indexes that
// cover both directions, so a packet costs one hash lookup whichever way it travels.
//
//   Mapping  an external endpoint (protocol, registered address, port) reserved for one use:
//            endpoint-independent (NAPT, RFC 4787 REQ-1; PCP MAP / NAT-PMP), bound to one
//            internal endpoint and indexed by both; or DPM, the external endpoint of one or
//            more DPM sessions (several only for a fixed port shared between remotes,
//            claims 8-10, RFC 7857 §3), indexed by the external endpoint only.
//   Session  one flow through a mapping: internal endpoint, external endpoint, remote
//            endpoint, and for DPM the gateway endpoint the driver aims the flow at
//            (claim 5). Indexed by
//              inside:  (protocol, internal, remote) — or (protocol, internal, gateway
//                       endpoint) for DPM — what a packet from inside carries;
//              outside: (protocol, external, remote) — what a packet from outside carries;
//              DPM:     (protocol, internal, remote) for DPM sessions, to renew them.
//
// Memory (the target is <= 128 bytes per session at 10^6 sessions): records live in
// chunked slabs addressed by 32-bit indices (32-byte sessions, 24-byte mappings; no pointer,
// no per-record allocation, and growth never copies old records), their memory from an
// injected TableMemory (nat/table_memory.h: huge pages in the gateway). The indexes (HashIndex) store only the 4-byte index and a
// 2-byte control word per slot: the key is read out of the slab (lookup by a key struct with
// AbslHashValue, as Envoy does for UDP sessions). A hash map holding the key itself would take
// 20-byte slots, over 40 bytes per entry at the load factor a table of 10^6 has, for each of
// the indexes.
//
// Latency: the data path is single-threaded, so no index operation may take time in
// proportion to the table. HashIndex has no tombstones (erasing never leads to a rehash) and
// grows incrementally (docs/nat.md "Growing without stalls").
#ifndef DPM_NAT_SESSION_TABLE_H_
#define DPM_NAT_SESSION_TABLE_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "nat/table_memory.h"
#include "nat/tcp_tracking.h"

namespace dpm::nat {

/// IP protocol numbers.
enum class Protocol : uint8_t { kIcmp = 1, kTcp = 6, kUdp = 17 };
/// "icmp", "tcp", "udp".
const char* ProtocolName(Protocol protocol);

/// An address and port in host byte order. For ICMP query messages the port is the query
/// identifier (RFC 5508 §3.1), and a remote's "port" is 0.
struct Endpoint {
  uint32_t address = 0;
  uint16_t port = 0;

  friend bool operator==(const Endpoint& a, const Endpoint& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Endpoint& e) {
    return H::combine(std::move(h), e.address, e.port);
  }
};

/// A flow as one side of the NAT sees it: (protocol, local endpoint, peer endpoint).
struct FlowKey {
  Protocol protocol = Protocol::kUdp;
  Endpoint local;
  Endpoint peer;

  friend bool operator==(const FlowKey& a, const FlowKey& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FlowKey& k) {
    // Two 64-bit words: cheaper to mix than five fields.
    return H::combine(std::move(h), (uint64_t{k.local.address} << 32) | k.peer.address,
                      (uint64_t{k.local.port} << 32) | (uint64_t{k.peer.port} << 16) |
                          static_cast<uint8_t>(k.protocol));
  }
};

/// (protocol, endpoint): the key of a mapping on one side.
struct EndpointKey {
  Protocol protocol = Protocol::kUdp;
  Endpoint endpoint;

  friend bool operator==(const EndpointKey& a, const EndpointKey& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const EndpointKey& k) {
    return H::combine(std::move(h), (uint64_t{k.endpoint.address} << 24) | (uint64_t{k.endpoint.port} << 8) |
                                        static_cast<uint8_t>(k.protocol));
  }
};

inline constexpr uint32_t kNoIndex = 0xffffffffu;

// TcpState: nat/tcp_tracking.h.

/// Session flags.
inline constexpr uint8_t kSessionLive = 0x01;
inline constexpr uint8_t kSessionDpm = 0x02;      // set up by RequestDpm (DPM patent, claim 1)
inline constexpr uint8_t kSessionFixed = 0x04;    // DPM: the port was not replaceable
inline constexpr uint8_t kSessionHairpin = 0x08;  // the remote is one of our external endpoints

struct Session {
  // Times in whole seconds of the caller's clock (now_ms / 1000, rounded up so that a timer
  // never runs short): a 32-bit field lasts 136 years, and 32-byte records never straddle
  // two cache lines.
  uint32_t last_used_s = 0;       // last packet translated (ICMP errors do not count)
  uint32_t expires_s = 0;         // DPM: the end of the granted lifetime
  uint32_t internal_address = 0;
  uint32_t external_address = 0;
  uint32_t remote_address = 0;
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  uint16_t remote_port = 0;
  uint16_t gateway_port = 0;      // DPM: the gateway endpoint is (gateway inside address, this)
  Protocol protocol = Protocol::kUdp;
  TcpState tcp_state = TcpState::kClosed;
  uint8_t flags = 0;
  uint8_t reserved = 0;
  // The mapping holding the external endpoint is not stored: it is the endpoint-independent
  // mapping of the internal endpoint, or for DPM the mapping of the external endpoint.

  Endpoint internal() const { return {internal_address, internal_port}; }
  Endpoint external() const { return {external_address, external_port}; }
  Endpoint remote() const { return {remote_address, remote_port}; }
  bool live() const { return flags & kSessionLive; }
  bool dpm() const { return flags & kSessionDpm; }
};
static_assert(sizeof(Session) == 32, "a session is 32 bytes: the memory target, and one cache line");

enum class MappingKind : uint8_t {
  kEndpointIndependent = 0,  // NAPT (RFC 4787 REQ-1) or explicit (PCP MAP, NAT-PMP)
  kDpm = 1,                  // holds DPM sessions' external endpoint
};

/// Who made a mapping (`dpmd status` lists it; RFC 6887 §11 MAP, RFC 6886 §3.3 NAT-PMP).
enum class MappingOrigin : uint8_t {
  kTraffic = 0,  // implicit: an internal host's first outbound packet (RFC 4787 REQ-1)
  kPcp = 1,      // explicit: PCP MAP
  kNatPmp = 2,   // explicit: NAT-PMP map request
  kDpm = 3,      // a DPM setup exchange (PCP PEER from a DPM driver)
};
/// "traffic", "pcp", "nat-pmp", "dpm".
const char* MappingOriginName(MappingOrigin origin);

/// Mapping flags.
inline constexpr uint8_t kMappingLive = 0x01;
inline constexpr uint8_t kMappingFixed = 0x02;  // DPM: a non-replaceable port, shareable by remote

struct Mapping {
  uint32_t internal_address = 0;  // endpoint-independent mappings only
  uint32_t external_address = 0;
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  uint32_t sessions = 0;          // sessions using it
  uint32_t expires_s = 0;         // explicit (PCP MAP / NAT-PMP) mapping: lifetime end; 0: implicit
  Protocol protocol = Protocol::kUdp;
  MappingKind kind = MappingKind::kEndpointIndependent;
  uint8_t flags = 0;
  MappingOrigin origin = MappingOrigin::kTraffic;

  Endpoint internal() const { return {internal_address, internal_port}; }
  Endpoint external() const { return {external_address, external_port}; }
  bool live() const { return flags & kMappingLive; }
  bool is_explicit() const { return expires_s != 0; }
};
static_assert(sizeof(Mapping) == 24, "a mapping is 24 bytes: keep the memory target");

/// Has the kernel back every page of `memory` now (a write to each 4 KiB, keeping its
/// contents), so that first use does not fault: zeroing a fresh 2 MiB huge page took 0.3-5 ms
/// on a shared VM, which a data-path call should not pay. Plain memory writes, no system call.
void PopulateTableMemory(void* memory, size_t bytes);

/// Records addressed by a 32-bit index, in chunks that double in size (4096, 8192, ...
/// records), so a small table stays small and a big one sits in a few huge-page blocks.
/// Growing adds a chunk and never moves a record; freed slots are reused first.
template <typename T>
class Slab {
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  static constexpr unsigned kFirstChunkBits = 12;
  static constexpr uint64_t kFirstChunk = uint64_t{1} << kFirstChunkBits;

  /// Chunks come from `memory`, which must outlive the slab.
  explicit Slab(TableMemory& memory = HeapTableMemory()) : memory_(memory) {}
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  ~Slab() {
    for (size_t k = 0; k < chunks_.size(); ++k) memory_.Free(chunks_[k], ChunkSize(k) * sizeof(T));
  }

  /// A slot holding T{}; kNoIndex when 2^32 - 1 slots are in use.
  uint32_t Allocate() {
    if (!free_.empty()) {
      const uint32_t i = free_.back();
      free_.pop_back();
      ++live_;
      return i;
    }
    if (next_ == kNoIndex) return kNoIndex;
    const size_t chunk = Chunk(next_);
    if (chunk == chunks_.size()) {
      chunks_.push_back(static_cast<T*>(memory_.Allocate(ChunkSize(chunk) * sizeof(T), /*zeroed=*/false)));
    }
    new (&(*this)[next_]) T{};  // slots are constructed when first handed out
    ++live_;
    return next_++;
  }
  void Free(uint32_t i) {
    (*this)[i] = T{};
    free_.push_back(i);
    --live_;
  }
  T& operator[](uint32_t i) { return chunks_[Chunk(i)][Offset(i)]; }
  const T& operator[](uint32_t i) const { return chunks_[Chunk(i)][Offset(i)]; }
  /// The chunks holding the first `n` slots, allocated and their pages backed now, and room in
  /// the free list for `n`: below `n` slots, neither Allocate nor Free allocates memory or
  /// faults a fresh page. (Growing never copies records anyway; this takes the page faults
  /// off the data path.)
  void Reserve(size_t n) {
    n = std::min<size_t>(n, kNoIndex);
    free_.reserve(n);
    for (size_t k = chunks_.size(); n > 0 && k <= Chunk(static_cast<uint32_t>(n - 1)); ++k) {
      chunks_.push_back(static_cast<T*>(memory_.Allocate(ChunkSize(k) * sizeof(T), /*zeroed=*/false)));
    }
    for (uint64_t i = next_; i < n;) {  // slots never handed out
      const uint32_t at = static_cast<uint32_t>(i);
      const size_t count = std::min<uint64_t>(n - i, ChunkSize(Chunk(at)) - Offset(at));
      PopulateTableMemory(&(*this)[at], count * sizeof(T));
      i += count;
    }
  }
  /// Slots ever handed out: indices below this are valid to read (free ones hold T{}).
  uint32_t slots() const { return next_; }
  size_t live() const { return live_; }

 private:
  // Index i is at position i + kFirstChunk of a sequence of chunks sized kFirstChunk << k.
  static size_t Chunk(uint32_t i) {
    return static_cast<size_t>(std::bit_width(uint64_t{i} + kFirstChunk)) - 1 - kFirstChunkBits;
  }
  static size_t Offset(uint32_t i) {
    const uint64_t position = uint64_t{i} + kFirstChunk;
    return static_cast<size_t>(position - (kFirstChunk << Chunk(i)));
  }
  static size_t ChunkSize(size_t chunk) { return static_cast<size_t>(kFirstChunk << chunk); }

  TableMemory& memory_;
  std::vector<T*> chunks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;
  size_t live_ = 0;
};

/// A set of 32-bit record indices found by a 64-bit hash of their record's key. The owner
/// computes hashes (from a key, or from a record: `hash_of`) and compares keys; the index holds
/// no key, only a control word and the record index per slot.
///
/// Open addressing with Robin Hood ordering: every slot knows how far it is from its home
/// slot (hash & mask), entries of one probe sequence stay ordered by that distance, and a
/// lookup stops at the first slot nearer its home than the key would be. An erase shifts the
/// following entries of the cluster back by one (backward-shift deletion), so there are no
/// tombstones: a table that churns at a steady size never needs a clean-up rehash (the stall
/// absl::flat_hash_set has when erase + insert have filled its deleted slots).
///
/// Growth is incremental, in two phases. Past 11/16 load an array of twice the slots is
/// allocated and its pages populated, kPopulateBytes every kPopulateEvery inserts or erases
/// (the kernel zeroes fresh memory, 0.3-5 ms per 2 MiB huge page measured on a shared VM:
/// that is spread too, and indexes given different `turn`s populate on different calls, so
/// indexes that grow in step do not fault pages in the same call). Then the new array takes
/// every insert, and each insert or erase moves at most kMoveEntries entries (kScanSlots
/// slots) of the old array, reading their records for the hash; lookups look in both meanwhile. The old array is
/// empty, and freed, long before the new one reaches 3/4 load (beyond which Insert would grow
/// at once). So no call does more than a bounded amount of work (one that moves everything
/// only while the old array has <= kMoveAtOnceSlots slots), and memory is at most the new
/// array plus the old one.
///
/// Not thread-safe. Values are never kNoIndex.
class HashIndex {
 public:
  using HashOf = uint64_t (*)(const void* context, uint32_t value);

  static constexpr size_t kMinSlots = 16;
  static constexpr size_t kPopulateEvery = 8;                // inserts or erases, phase 1
  static constexpr size_t kPopulateBytes = size_t{512} << 10;  // each time, phase 1
  static constexpr size_t kMoveEntries = 16;                 // per insert or erase, phase 2
  static constexpr size_t kScanSlots = 128;                  // per insert or erase, phase 2
  static constexpr size_t kMoveAtOnceSlots = 4096;           // an old array this small moves at once
  /// Entries `slots` hold before growing starts: 11/16 of them.
  static size_t GrowthThreshold(size_t slots) { return slots / 16 * 11; }
  /// Slots that hold `entries` without growing (a power of two).
  static size_t SlotsFor(size_t entries);

  /// `hash_of(context, value)`: the hash of value's key, as given to Insert. `turn` (below
  /// kPopulateEvery): which of the calls this index populates its next array on.
  /// The arrays come from `memory`, which must outlive the index.
  HashIndex(HashOf hash_of, const void* context, unsigned turn = 0, TableMemory& memory = HeapTableMemory())
      : hash_of_(hash_of), context_(context), turn_(turn % kPopulateEvery), memory_(memory) {}
  ~HashIndex();
  HashIndex(const HashIndex&) = delete;
  HashIndex& operator=(const HashIndex&) = delete;

  /// Room for `entries` without growing: the slots are allocated and their pages populated
  /// now. Moves what the index holds at once: meant for an empty index.
  void Reserve(size_t entries);

  /// The value whose key has `hash` and satisfies `eq(value)`, or kNoIndex. `eq` is called
  /// only on values whose 8 bits of stored hash match.
  template <typename Eq>
  uint32_t Find(uint64_t hash, Eq eq) const {
    uint32_t value = current_.Find(hash, eq);
    if (value != kNoIndex) return value;
    if (old_.values != nullptr) value = old_.Find(hash, eq);
    if (value == kNoIndex && !overflow_.empty()) value = FindOverflow(eq);
    return value;
  }
  /// The first value whose stored hash bits match `hash` (reads the index only), or kNoIndex.
  uint32_t Guess(uint64_t hash) const {
    auto any = [](uint32_t) { return true; };
    const uint32_t value = current_.Find(hash, any);
    return value != kNoIndex || old_.values == nullptr ? value : old_.Find(hash, any);
  }
  /// Prefetches the slots a Find of `hash` reads first.
  void Prefetch(uint64_t hash) const {
    current_.Prefetch(hash);
    if (old_.values != nullptr) old_.Prefetch(hash);
  }
  /// Adds `value`, which must not be present, under `hash`.
  void Insert(uint64_t hash, uint32_t value);
  /// Removes `value`, stored under `hash`; nothing if it is absent.
  void Erase(uint64_t hash, uint32_t value);
  /// Moves up to about `entries` entries of a growth in phase 2 (for a timer: a table that
  /// stops changing mid-growth would otherwise keep looking in two arrays).
  void Advance(size_t entries);

  size_t size() const { return current_.size + old_.size + overflow_.size(); }
  /// Slots allocated (6 bytes each), the arrays of a growth in progress included.
  size_t slots() const { return current_.slots() + old_.slots() + next_.slots(); }
  /// Whether a growth is in progress (either phase).
  bool growing() const { return old_.values != nullptr || next_.values != nullptr; }

 private:
  // Control word: (distance from the home slot + 1) << 8 | the hash's top 8 bits; 0 = empty.
  static constexpr uint32_t kStep = 0x100;
  static constexpr uint32_t kMaxDistance = 254;  // stored as 255 in the high byte
  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 56); }

  struct Array {
    uint16_t* control;  // a shared empty slot while nothing is allocated: every probe ends there
    uint32_t* values = nullptr;
    size_t mask = 0;
    size_t size = 0;

    Array();
    size_t slots() const { return values == nullptr ? 0 : mask + 1; }
    template <typename Eq>
    uint32_t Find(uint64_t hash, Eq& eq) const {
      size_t i = hash & mask;
      uint32_t want = kStep | Tag(hash);
      for (;;) {
        const uint32_t c = control[i];
        if (c == want && eq(values[i])) return values[i];
        // Empty, or an entry nearer its home than the key would be: the key is not here.
        if ((c >> 8) < (want >> 8)) return kNoIndex;
        i = (i + 1) & mask;
        want += kStep;
      }
    }
    void Prefetch(uint64_t hash) const {
      const size_t i = hash & mask;
      __builtin_prefetch(control + i);
      __builtin_prefetch(values + i);
    }
    // Places `value` (the array has a free slot). Returns kNoIndex, or the entry left without
    // a slot (`value` or one it displaced) when a probe would pass kMaxDistance; the array is
    // otherwise intact. Only keys made to collide get that far.
    uint32_t Place(uint64_t hash, uint32_t value);
    bool Erase(uint64_t hash, uint32_t value);
    void RemoveAt(size_t i);
  };
  Array Allocate(size_t slots);
  void Free(Array& array);

  static size_t Bytes(const Array& array) { return array.slots() * (sizeof(uint16_t) + sizeof(uint32_t)); }
  template <typename Eq>
  uint32_t FindOverflow(Eq& eq) const {
    for (uint32_t value : overflow_) {
      if (eq(value)) return value;
    }
    return kNoIndex;
  }
  // Into current_, or overflow_ when a probe would be too long.
  void Place(uint64_t hash, uint32_t value);
  // One bounded step of growth, if it is due or in progress.
  void Step();
  // Moves a bounded number of old_'s entries to current_; frees old_ once empty.
  void MoveSome();
  // Everything in the arrays into a new array of `slots`, at once.
  void Rebuild(size_t slots);

  HashOf hash_of_;
  const void* context_;
  size_t turn_;
  TableMemory& memory_;
  size_t steps_ = 0;      // inserts and erases
  Array current_;
  Array next_;            // phase 1: twice current_'s slots, being populated
  size_t populated_ = 0;  // bytes of next_
  Array old_;             // phase 2: the array being emptied into current_
  size_t cursor_ = 0;     // old_'s slots below this are empty
  // Entries whose probe would pass kMaxDistance (only keys made to collide, and absl::Hash is
  // seeded per process), searched one by one after a miss: slow, but right.
  std::vector<uint32_t> overflow_;
};

/// Mappings and sessions with their indexes. Pure bookkeeping: which endpoints to choose,
/// reference counts and timers are the NAT engine's. The indexes read keys out of the slabs,
/// so a record's key fields must not change while it is in the table. Not copyable or
/// movable (the indexes point back at it).
class SessionTable {
 public:
  /// `gateway_inside_address`: the address of every DPM session's gateway endpoint. Every
  /// block of the slabs and indexes comes from `memory` (nat/table_memory.h), which must
  /// outlive the table.
  explicit SessionTable(uint32_t gateway_inside_address, TableMemory& memory = HeapTableMemory());
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  /// Sizes every index for `sessions` sessions and as many mappings (one per session is the
  /// most NAPT and replaceable DPM ports make), and the slabs' free lists, so that none grows
  /// below that (NatConfig::reserve_sessions). Call it while the table is empty.
  void Reserve(size_t sessions);
  /// Slots of all the indexes (6 bytes each), arrays being grown out of included.
  size_t index_slots() const;
  /// Whether some index is growing (populating or moving into a bigger array).
  bool index_growing() const;
  /// Moves up to about `entries` entries of each index that is moving into a bigger array
  /// (HashIndex::Advance).
  void AdvanceGrowth(size_t entries);

  // Sessions. Find… return kNoIndex when absent.
  uint32_t FindInside(const FlowKey& key) const;
  uint32_t FindOutside(const FlowKey& key) const;
  /// DPM sessions by (protocol, internal, remote).
  uint32_t FindDpm(const FlowKey& key) const;
  /// Adds `session` (flags get kSessionLive); none of its keys may be in use. Returns its
  /// index, or kNoIndex when the slab is full.
  uint32_t AddSession(const Session& session);
  void RemoveSession(uint32_t index);
  Session& session(uint32_t index) { return sessions_[index]; }
  const Session& session(uint32_t index) const { return sessions_[index]; }
  uint32_t session_slots() const { return sessions_.slots(); }
  size_t session_count() const { return sessions_.live(); }

  /// Prefetch hints (no effect on results): the index memory a Find… of `key` will read,
  /// and a session record. A batch issues these for all its packets before translating any.
  void PrefetchInside(const FlowKey& key) const { inside_.Prefetch(key); }
  void PrefetchOutside(const FlowKey& key) const { outside_.Prefetch(key); }
  /// The session FindInside / FindOutside would most likely return, found without reading
  /// any session record (only the index: the first entry whose hash tag matches), or
  /// kNoIndex. A guess to prefetch; the caller must check its key before using it.
  uint32_t GuessInside(const FlowKey& key) const { return inside_.Guess(key); }
  uint32_t GuessOutside(const FlowKey& key) const { return outside_.Guess(key); }
  void PrefetchSession(uint32_t index) const {
    __builtin_prefetch(&sessions_[index]);  // 32-byte records in aligned chunks: one line
  }

  // Mappings.
  uint32_t FindMappingByExternal(const EndpointKey& key) const;
  /// Endpoint-independent mappings by internal endpoint (RFC 4787 REQ-1).
  uint32_t FindMappingByInternal(const EndpointKey& key) const;
  uint32_t AddMapping(const Mapping& mapping);
  void RemoveMapping(uint32_t index);
  Mapping& mapping(uint32_t index) { return mappings_[index]; }
  const Mapping& mapping(uint32_t index) const { return mappings_[index]; }
  uint32_t mapping_slots() const { return mappings_.slots(); }
  size_t mapping_count() const { return mappings_.live(); }

  // The keys each index reads out of a record.
  FlowKey InsideKey(uint32_t index) const;
  FlowKey OutsideKey(uint32_t index) const;
  FlowKey DpmKey(uint32_t index) const;
  EndpointKey MappingExternalKey(uint32_t index) const;
  EndpointKey MappingInternalKey(uint32_t index) const;

 private:
  // Record indices hashed and compared by the key (table->*KeyOf)(index).
  template <typename Key, Key (SessionTable::*KeyOf)(uint32_t) const>
  class Index {
   public:
    Index(const SessionTable* table, unsigned turn) : table_(table), slots_(&HashOfRecord, table, turn, table->memory_) {}
    uint32_t Find(const Key& key) const {
      return slots_.Find(HashOf(key), [this, &key](uint32_t index) { return (table_->*KeyOf)(index) == key; });
    }
    void Prefetch(const Key& key) const { slots_.Prefetch(HashOf(key)); }
    // The first entry whose stored hash bits match: a candidate found while reading the
    // index only.
    uint32_t Guess(const Key& key) const { return slots_.Guess(HashOf(key)); }
    void Insert(uint32_t index) { slots_.Insert(HashOfRecord(table_, index), index); }
    void Erase(uint32_t index) { slots_.Erase(HashOfRecord(table_, index), index); }
    void Reserve(size_t entries) { slots_.Reserve(entries); }
    void Advance(size_t entries) { slots_.Advance(entries); }
    const HashIndex& hash_index() const { return slots_; }

   private:
    static uint64_t HashOf(const Key& key) { return absl::Hash<Key>{}(key); }
    static uint64_t HashOfRecord(const void* table, uint32_t index) {
      return HashOf((static_cast<const SessionTable*>(table)->*KeyOf)(index));
    }
    const SessionTable* table_;
    HashIndex slots_;
  };

  uint32_t gateway_inside_address_;
  TableMemory& memory_;  // before the slabs and indexes, which take it
  Slab<Session> sessions_{memory_};
  Slab<Mapping> mappings_{memory_};
  // Turns 0, 2, 4, 6, 1: the indexes grow in step (one entry each per session), so they take
  // turns to fault fresh pages.
  Index<FlowKey, &SessionTable::InsideKey> inside_{this, 0};
  Index<FlowKey, &SessionTable::OutsideKey> outside_{this, 2};
  Index<FlowKey, &SessionTable::DpmKey> dpm_{this, 4};
  Index<EndpointKey, &SessionTable::MappingExternalKey> mapping_external_{this, 6};
  Index<EndpointKey, &SessionTable::MappingInternalKey> mapping_internal_{this, 1};
};

}  // namespace dpm::nat

#endif  // DPM_NAT_SESSION_TABLE_H_
