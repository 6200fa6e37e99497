// The NAT engine's session and mapping bookkeeping (RFC 4787 §4 mappings, RFC 6146 §3.5
// sessions; docs/nat.md): making and removing them with their reference counts and the
// per-host quota, expiry (the sweep and its deadlines), and listing them.
#include <algorithm>
#include <optional>

#include "nat/fragments.h"
#include "nat/nat_engine.h"
#include "nat/port_allocator.h"

namespace dpm::nat {

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

bool NatEngine::TableFull() const { return table_->session_count() >= config_.max_sessions; }

Session NatEngine::NewSession(Protocol protocol, Endpoint internal, Endpoint external, Endpoint remote) const {
  Session s;
  s.protocol = protocol;
  s.internal_address = internal.address;
  s.internal_port = internal.port;
  s.external_address = external.address;
  s.external_port = external.port;
  s.remote_address = remote.address;
  s.remote_port = remote.port;
  if (IsExternalAddress(remote.address)) s.flags |= kSessionHairpin;
  return s;
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
  if (TableFull()) {
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
  Session s = NewSession(protocol, internal, table_->mapping(mapping).external(), remote);
  s.tcp_state = state;
  return InstallSession(now_ms, s, mapping, why);
}

uint32_t NatEngine::CreateInbound(uint64_t now_ms, uint32_t mapping, Endpoint remote, DropReason* why) {
  if (TableFull()) {
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
  Session s = NewSession(m.protocol, internal, m.external(), remote);
  s.tcp_state = m.protocol == Protocol::kTcp ? TcpState::kOutsideInit : TcpState::kClosed;
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

uint32_t NatEngine::LiveMapping(uint32_t mapping, uint64_t now_ms) {
  if (mapping == kNoIndex) return kNoIndex;
  const Mapping& m = table_->mapping(mapping);
  if (!m.is_explicit() || uint64_t{m.expires_s} * 1000 > now_ms) return mapping;
  ExpireExplicitMapping(mapping);
  return table_->mapping(mapping).live() ? mapping : kNoIndex;
}


// ---- Timers (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2, RFC 7857 §2) ------------------

void NatEngine::NoteMappingDeadline(uint32_t mapping, uint64_t deadline_ms) {
  mapping_sweep_.Note(mapping, deadline_ms);
}

uint32_t NatEngine::LifetimeFor(uint32_t requested_s) const {
  return std::clamp(requested_s, std::min(config_.min_lifetime_s, config_.max_lifetime_s), config_.max_lifetime_s);
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
  if (std::optional<uint64_t> fragments = fragments_->NextDeadline()) {
    next = std::min(next.value_or(UINT64_MAX), *fragments);
  }
  return next;
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
