// The NAT engine's state (seeds 000/001 "look-up table", claims 7, 14, 21; RFC 4787 §4 mappings,
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
// no per-record allocation, and growth never copies old records), and big blocks in huge
// pages (AllocateTableMemory). The indexes store only the
// 4-byte index: their hash and equality functors read the key out of the slab (transparent
// lookup by a key struct with AbslHashValue, as Envoy does for UDP sessions). A flat_hash_map
// holding the key itself would take 20-byte slots, over 40 bytes per entry at the load
// factor a table of 10^6 has, for each of the indexes.
#ifndef DPM_DPM_SESSION_TABLE_H_
#define DPM_DPM_SESSION_TABLE_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"

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

/// TCP session states for timers: RFC 6146 §3.5.2's machine as RFC 7857 §2.1 adapts it to
/// NAT44 ("V6" is the inside here, "V4" the outside).
enum class TcpState : uint8_t {
  kClosed = 0,     // no segment seen yet (a DPM session set up before its first SYN)
  kInsideInit,     // SYN from inside seen (V6 INIT): transitory timer
  kOutsideInit,    // SYN from outside seen (V4 INIT): transitory timer
  kEstablished,    // SYN seen both ways: established timer
  kInsideFinRcv,   // FIN from inside (V6 FIN RCV): established timer
  kOutsideFinRcv,  // FIN from outside (V4 FIN RCV): established timer
  kBothFinRcv,     // FIN both ways: transitory timer, not refreshed
  kTrans,          // after a RST, or picked up mid-stream: transitory timer
};
/// "CLOSED", "INSIDE_INIT", ..., "TRANS".
const char* TcpStateName(TcpState state);

/// Session flags.
inline constexpr uint8_t kSessionLive = 0x01;
inline constexpr uint8_t kSessionDpm = 0x02;      // set up by RequestDpm (seed claim 1)
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
  uint8_t reserved = 0;

  Endpoint internal() const { return {internal_address, internal_port}; }
  Endpoint external() const { return {external_address, external_port}; }
  bool live() const { return flags & kMappingLive; }
  bool is_explicit() const { return expires_s != 0; }
};
static_assert(sizeof(Mapping) == 24, "a mapping is 24 bytes: keep the memory target");

/// Memory for the tables. Blocks of 2 MiB or more are 2 MiB-aligned and the kernel is asked
/// to back them with transparent huge pages (madvise MADV_HUGEPAGE), so lookups in a table of
/// millions of entries do not miss the TLB on every access; smaller blocks come from
/// operator new.
void* AllocateTableMemory(size_t bytes);
void FreeTableMemory(void* memory, size_t bytes);

template <typename T>
struct TableAllocator {
  using value_type = T;
  TableAllocator() = default;
  template <typename U>
  TableAllocator(const TableAllocator<U>&) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(AllocateTableMemory(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { FreeTableMemory(p, n * sizeof(T)); }
  friend bool operator==(const TableAllocator&, const TableAllocator&) { return true; }
  friend bool operator!=(const TableAllocator&, const TableAllocator&) { return false; }
};

/// Records addressed by a 32-bit index, in chunks that double in size (4096, 8192, ...
/// records), so a small table stays small and a big one sits in a few huge-page blocks.
/// Growing adds a chunk and never moves a record; freed slots are reused first.
template <typename T>
class Slab {
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  static constexpr unsigned kFirstChunkBits = 12;
  static constexpr uint64_t kFirstChunk = uint64_t{1} << kFirstChunkBits;

  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  ~Slab() {
    for (size_t k = 0; k < chunks_.size(); ++k) FreeTableMemory(chunks_[k], ChunkSize(k) * sizeof(T));
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
      chunks_.push_back(static_cast<T*>(AllocateTableMemory(ChunkSize(chunk) * sizeof(T))));
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

  std::vector<T*> chunks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;
  size_t live_ = 0;
};

/// Mappings and sessions with their indexes. Pure bookkeeping: which endpoints to choose,
/// reference counts and timers are the NAT engine's. The indexes read keys out of the slabs,
/// so a record's key fields must not change while it is in the table. Not copyable or
/// movable (the indexes point back at it).
class SessionTable {
 public:
  /// `gateway_inside_address`: the address of every DPM session's gateway endpoint.
  explicit SessionTable(uint32_t gateway_inside_address);
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

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
  // A set of record indices hashed and compared by the key (table->*KeyOf)(index).
  template <typename Key, Key (SessionTable::*KeyOf)(uint32_t) const>
  class Index {
   public:
    explicit Index(const SessionTable* table) : set_(0, Hash{table}, Eq{table}) {}
    uint32_t Find(const Key& key) const {
      auto it = set_.find(key);
      return it == set_.end() ? kNoIndex : *it;
    }
    void Prefetch(const Key& key) const { set_.prefetch(key); }
    uint32_t Guess(const Key& key) const {
      auto it = set_.find(Probe{&key});
      return it == set_.end() ? kNoIndex : *it;
    }
    bool Insert(uint32_t index) { return set_.insert(index).second; }
    void Erase(uint32_t index, const SessionTable* table) { set_.erase((table->*KeyOf)(index)); }

   private:
    // A lookup key that "equals" the first entry whose hash tag matches: finds a candidate
    // while reading the index only (Guess).
    struct Probe {
      const Key* key;
    };
    struct Hash {
      using is_transparent = void;
      const SessionTable* table;
      size_t operator()(uint32_t index) const { return absl::Hash<Key>{}((table->*KeyOf)(index)); }
      size_t operator()(const Key& key) const { return absl::Hash<Key>{}(key); }
      size_t operator()(const Probe& probe) const { return absl::Hash<Key>{}(*probe.key); }
    };
    struct Eq {
      using is_transparent = void;
      const SessionTable* table;
      bool operator()(uint32_t a, uint32_t b) const { return (table->*KeyOf)(a) == (table->*KeyOf)(b); }
      bool operator()(uint32_t a, const Key& b) const { return (table->*KeyOf)(a) == b; }
      bool operator()(const Key& a, uint32_t b) const { return a == (table->*KeyOf)(b); }
      bool operator()(uint32_t, const Probe&) const { return true; }
      bool operator()(const Probe&, uint32_t) const { return true; }
    };
    absl::flat_hash_set<uint32_t, Hash, Eq, TableAllocator<uint32_t>> set_;
  };

  uint32_t gateway_inside_address_;
  Slab<Session> sessions_;
  Slab<Mapping> mappings_;
  Index<FlowKey, &SessionTable::InsideKey> inside_{this};
  Index<FlowKey, &SessionTable::OutsideKey> outside_{this};
  Index<FlowKey, &SessionTable::DpmKey> dpm_{this};
  Index<EndpointKey, &SessionTable::MappingExternalKey> mapping_external_{this};
  Index<EndpointKey, &SessionTable::MappingInternalKey> mapping_internal_{this};
};

}  // namespace dpm::nat

#endif  // DPM_DPM_SESSION_TABLE_H_
