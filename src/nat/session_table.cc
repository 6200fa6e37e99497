#include "nat/session_table.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace dpm::nat {

namespace {
// What an unallocated HashIndex array probes: one empty slot.
uint16_t g_empty_control[1] = {0};
}  // namespace

void PopulateTableMemory(void* memory, size_t bytes) {
  constexpr size_t kPage = 4096;
  auto* bytes_at = static_cast<uint8_t*>(memory);
  // Atomic or-0: a write access (a read would map the shared zero page and fault again on the
  // first write) that cannot change what is there.
  for (size_t at = 0; at < bytes; at += kPage) __atomic_fetch_or(bytes_at + at, uint8_t{0}, __ATOMIC_RELAXED);
}

// ---- HashIndex ----------------------------------------------------------------------------

size_t HashIndex::SlotsFor(size_t entries) {
  size_t slots = kMinSlots;
  while (GrowthThreshold(slots) < entries) slots *= 2;
  return slots;
}

HashIndex::Array::Array() : control(g_empty_control) {}

HashIndex::Array HashIndex::Allocate(size_t slots) {
  // One block: the control words, then the values (zeroed control words are empty slots).
  auto* memory =
      static_cast<uint8_t*>(memory_.Allocate(slots * (sizeof(uint16_t) + sizeof(uint32_t)), /*zeroed=*/true));
  Array array;
  array.control = reinterpret_cast<uint16_t*>(memory);
  array.values = reinterpret_cast<uint32_t*>(memory + slots * sizeof(uint16_t));
  array.mask = slots - 1;
  return array;
}

void HashIndex::Free(Array& array) {
  if (array.values != nullptr) {
    memory_.Free(array.control, Bytes(array));
  }
  array = Array();
}

HashIndex::~HashIndex() {
  Free(current_);
  Free(next_);
  Free(old_);
}

uint32_t HashIndex::Array::Place(uint64_t hash, uint32_t value) {
  size_t i = hash & mask;
  uint32_t c = kStep | Tag(hash);
  for (;;) {
    const uint32_t here = control[i];
    if (here == 0) {
      control[i] = static_cast<uint16_t>(c);
      values[i] = value;
      ++size;
      return kNoIndex;
    }
    // Robin Hood: the entry nearer its home gives up its slot and moves on.
    if ((here >> 8) < (c >> 8)) {
      control[i] = static_cast<uint16_t>(c);
      std::swap(values[i], value);
      c = here;
    }
    i = (i + 1) & mask;
    c += kStep;
    // The entry carried now (`value` itself or one it displaced) has no slot; size is right.
    if ((c >> 8) > kMaxDistance + 1) return value;
  }
}

bool HashIndex::Array::Erase(uint64_t hash, uint32_t value) {
  size_t i = hash & mask;
  uint32_t want = kStep | Tag(hash);
  for (;;) {
    const uint32_t c = control[i];
    if (c == want && values[i] == value) break;
    if ((c >> 8) < (want >> 8)) return false;
    i = (i + 1) & mask;
    want += kStep;
  }
  RemoveAt(i);
  return true;
}

void HashIndex::Array::RemoveAt(size_t i) {
  // Backward shift: the entries after it that are away from their home move one slot nearer.
  for (;;) {
    const size_t next = (i + 1) & mask;
    const uint32_t c = control[next];
    if ((c >> 8) <= 1) break;  // empty, or at its home
    control[i] = static_cast<uint16_t>(c - kStep);
    values[i] = values[next];
    i = next;
  }
  control[i] = 0;
  --size;
}

void HashIndex::Reserve(size_t entries) {
  const size_t slots = SlotsFor(entries);
  if (slots <= current_.slots()) return;
  Rebuild(slots);
  PopulateTableMemory(current_.control, Bytes(current_));
}

void HashIndex::Insert(uint64_t hash, uint32_t value) {
  if (current_.size + 1 > current_.slots() - current_.slots() / 4) {
    // Past 3/4 load: the first insert, or growth fell behind (not reached: the steps finish
    // long before, see kMoveEntries). Everything moves now rather than keep three arrays.
    Rebuild(current_.slots() * 2);
  } else {
    Step();
  }
  Place(hash, value);
}

void HashIndex::Erase(uint64_t hash, uint32_t value) {
  if (!current_.Erase(hash, value) && !(old_.values != nullptr && old_.Erase(hash, value))) {
    auto it = std::find(overflow_.begin(), overflow_.end(), value);
    if (it != overflow_.end()) {
      *it = overflow_.back();
      overflow_.pop_back();
    }
  }
  Step();
}

void HashIndex::Advance(size_t entries) {
  for (size_t moved = 0; old_.values != nullptr && moved < entries; moved += kMoveEntries) MoveSome();
}

void HashIndex::Step() {
  ++steps_;  // every call, so that indexes used in step keep equal counts
  if (current_.values == nullptr) return;
  if (old_.values != nullptr) {
    MoveSome();
    return;
  }
  if (next_.values == nullptr) {
    if (current_.size + 1 <= GrowthThreshold(current_.slots())) return;
    next_ = Allocate(current_.slots() * 2);
    populated_ = 0;
  }
  // Phase 1: populate next_, a slice on this index's turn (a small array at once: it has
  // fewer calls to spare before 3/4 load).
  const size_t bytes = Bytes(next_);
  if (steps_ % kPopulateEvery != turn_ && bytes > kPopulateBytes) return;
  const size_t slice = std::min(kPopulateBytes, bytes - populated_);
  PopulateTableMemory(reinterpret_cast<uint8_t*>(next_.control) + populated_, slice);
  populated_ += slice;
  if (populated_ < bytes) return;
  // Phase 2: next_ takes the inserts; the entries move over.
  old_ = current_;
  current_ = next_;
  next_ = Array();
  cursor_ = 0;
  if (old_.slots() <= kMoveAtOnceSlots) {
    while (old_.values != nullptr) MoveSome();
  }
}

void HashIndex::Place(uint64_t hash, uint32_t value) {
  const uint32_t homeless = current_.Place(hash, value);
  // A probe of 255 slots: not met with a good hash at 3/4 load, but keys chosen to collide
  // must not break the index (or make it double its memory until they part).
  if (homeless != kNoIndex) overflow_.push_back(homeless);
}

void HashIndex::MoveSome() {
  size_t moved = 0;
  for (size_t scanned = 0; old_.size > 0 && moved < kMoveEntries && scanned < kScanSlots;) {
    if (old_.control[cursor_] == 0) {
      ++cursor_;
      ++scanned;
      continue;
    }
    // Slots below the cursor are empty, so this slot is its entry's home (or the entry
    // wrapped round from the end of the array). Removing it with a backward shift keeps every
    // other entry of old_ findable; an entry shifted into this slot is moved next.
    const uint32_t value = old_.values[cursor_];
    old_.RemoveAt(cursor_);
    Place(hash_of_(context_, value), value);
    ++moved;
  }
  if (old_.size == 0) {
    Free(old_);
    cursor_ = 0;
  }
}

void HashIndex::Rebuild(size_t slots) {
  Array previous = std::exchange(current_, Allocate(std::max(slots, kMinSlots)));
  for (Array* from : {&previous, &old_}) {
    for (size_t i = 0; i < from->slots(); ++i) {
      if (from->control[i] != 0) Place(hash_of_(context_, from->values[i]), from->values[i]);
    }
    Free(*from);
  }
  Free(next_);
  cursor_ = 0;
}

const char* ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kIcmp: return "icmp";
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
  }
  return "unknown";
}

SessionTable::SessionTable(uint32_t gateway_inside_address, TableMemory& memory)
    : gateway_inside_address_(gateway_inside_address), memory_(memory) {}

void SessionTable::Reserve(size_t sessions) {
  sessions_.Reserve(sessions);
  mappings_.Reserve(sessions);
  inside_.Reserve(sessions);
  outside_.Reserve(sessions);
  dpm_.Reserve(sessions);
  mapping_external_.Reserve(sessions);
  mapping_internal_.Reserve(sessions);
}

size_t SessionTable::index_slots() const {
  return inside_.hash_index().slots() + outside_.hash_index().slots() + dpm_.hash_index().slots() +
         mapping_external_.hash_index().slots() + mapping_internal_.hash_index().slots();
}

void SessionTable::AdvanceGrowth(size_t entries) {
  inside_.Advance(entries);
  outside_.Advance(entries);
  dpm_.Advance(entries);
  mapping_external_.Advance(entries);
  mapping_internal_.Advance(entries);
}

bool SessionTable::index_growing() const {
  return inside_.hash_index().growing() || outside_.hash_index().growing() || dpm_.hash_index().growing() ||
         mapping_external_.hash_index().growing() || mapping_internal_.hash_index().growing();
}

FlowKey SessionTable::InsideKey(uint32_t index) const {
  const Session& s = sessions_[index];
  // A DPM session's packets come from inside aimed at the gateway endpoint (claim 5).
  const Endpoint peer = s.dpm() ? Endpoint{gateway_inside_address_, s.gateway_port} : s.remote();
  return FlowKey{s.protocol, s.internal(), peer};
}

FlowKey SessionTable::OutsideKey(uint32_t index) const {
  const Session& s = sessions_[index];
  return FlowKey{s.protocol, s.external(), s.remote()};
}

FlowKey SessionTable::DpmKey(uint32_t index) const {
  const Session& s = sessions_[index];
  return FlowKey{s.protocol, s.internal(), s.remote()};
}

EndpointKey SessionTable::MappingExternalKey(uint32_t index) const {
  const Mapping& m = mappings_[index];
  return EndpointKey{m.protocol, m.external()};
}

EndpointKey SessionTable::MappingInternalKey(uint32_t index) const {
  const Mapping& m = mappings_[index];
  return EndpointKey{m.protocol, m.internal()};
}

uint32_t SessionTable::FindInside(const FlowKey& key) const { return inside_.Find(key); }
uint32_t SessionTable::FindOutside(const FlowKey& key) const { return outside_.Find(key); }
uint32_t SessionTable::FindDpm(const FlowKey& key) const { return dpm_.Find(key); }

uint32_t SessionTable::AddSession(const Session& session) {
  const uint32_t index = sessions_.Allocate();
  if (index == kNoIndex) return kNoIndex;
  Session& s = sessions_[index];
  s = session;
  s.flags |= kSessionLive;
  inside_.Insert(index);
  outside_.Insert(index);
  if (s.dpm()) dpm_.Insert(index);
  return index;
}

void SessionTable::RemoveSession(uint32_t index) {
  // Out of the indexes while the record still holds the keys, then freed.
  inside_.Erase(index);
  outside_.Erase(index);
  if (sessions_[index].dpm()) dpm_.Erase(index);
  sessions_.Free(index);
}

uint32_t SessionTable::FindMappingByExternal(const EndpointKey& key) const { return mapping_external_.Find(key); }
uint32_t SessionTable::FindMappingByInternal(const EndpointKey& key) const { return mapping_internal_.Find(key); }

uint32_t SessionTable::AddMapping(const Mapping& mapping) {
  const uint32_t index = mappings_.Allocate();
  if (index == kNoIndex) return kNoIndex;
  Mapping& m = mappings_[index];
  m = mapping;
  m.flags |= kMappingLive;
  mapping_external_.Insert(index);
  if (m.kind == MappingKind::kEndpointIndependent) mapping_internal_.Insert(index);
  return index;
}

void SessionTable::RemoveMapping(uint32_t index) {
  mapping_external_.Erase(index);
  if (mappings_[index].kind == MappingKind::kEndpointIndependent) mapping_internal_.Erase(index);
  mappings_.Free(index);
}

const char* MappingOriginName(MappingOrigin origin) {
  switch (origin) {
    case MappingOrigin::kTraffic: return "traffic";
    case MappingOrigin::kPcp: return "pcp";
    case MappingOrigin::kNatPmp: return "nat-pmp";
    case MappingOrigin::kDpm: return "dpm";
  }
  return "unknown";
}

}  // namespace dpm::nat
