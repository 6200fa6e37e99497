#include "dpm/session_table.h"

#include <sys/mman.h>

#include <cstdlib>

namespace dpm::nat {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

void* AllocateTableMemory(size_t bytes) {
  if (bytes < kHugePage) return ::operator new(bytes);
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* memory = std::aligned_alloc(kHugePage, rounded);
  if (memory == nullptr) throw std::bad_alloc();
  // Advice only: without transparent huge pages this fails and nothing changes.
  madvise(memory, rounded, MADV_HUGEPAGE);
  return memory;
}

void FreeTableMemory(void* memory, size_t bytes) {
  if (bytes < kHugePage) {
    ::operator delete(memory);
  } else {
    std::free(memory);
  }
}

const char* ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kIcmp: return "icmp";
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
  }
  return "unknown";
}

const char* TcpStateName(TcpState state) {
  switch (state) {
    case TcpState::kClosed: return "CLOSED";
    case TcpState::kInsideInit: return "INSIDE_INIT";
    case TcpState::kOutsideInit: return "OUTSIDE_INIT";
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kInsideFinRcv: return "INSIDE_FIN";
    case TcpState::kOutsideFinRcv: return "OUTSIDE_FIN";
    case TcpState::kBothFinRcv: return "BOTH_FIN";
    case TcpState::kTrans: return "TRANS";
  }
  return "unknown";
}

SessionTable::SessionTable(uint32_t gateway_inside_address) : gateway_inside_address_(gateway_inside_address) {}

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
  inside_.Erase(index, this);
  outside_.Erase(index, this);
  if (sessions_[index].dpm()) dpm_.Erase(index, this);
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
  mapping_external_.Erase(index, this);
  if (mappings_[index].kind == MappingKind::kEndpointIndependent) mapping_internal_.Erase(index, this);
  mappings_.Free(index);
}

}  // namespace dpm::nat
