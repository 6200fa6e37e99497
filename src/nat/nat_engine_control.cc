// The NAT engine's control operations (docs/nat.md): DPM setups (the DPM patent, claims 1-10,
// 20-23), explicit mappings for PCP MAP and NAT-PMP (RFC 6887 §11-13, RFC 6886 §3.3), and
// which pool address a host is paired with (RFC 4787 REQ-2).
#include <algorithm>
#include <optional>
#include <variant>

#include "nat/nat_engine.h"
#include "nat/port_allocator.h"

namespace dpm::nat {

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
  if (std::optional<GrantError> refused = CheckRequester(r.protocol, r.internal)) return *refused;
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

  if (TableFull()) return GrantError::kNoResources;
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
  const size_t n = PoolCandidates(host, r.internal.address, r.suggested_external.address, candidates);

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
      std::optional<uint16_t> port = SuggestedOrNewPort(pool, r.protocol, r.suggested_external, r.internal.port);
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
    Session s = NewSession(r.protocol, r.internal, m.external(), r.remote);
    s.flags |= kSessionDpm | (r.port_fixed ? kSessionFixed : 0);
    s.gateway_port = *gateway_port;
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
  const uint32_t lifetime_s = r.lifetime_s;
  if (std::optional<GrantError> refused = CheckRequester(protocol, internal)) return *refused;

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
  const size_t n = PoolCandidates(host, internal.address, r.suggested_external.address, candidates);
  for (size_t c = 0; c < n; ++c) {
    const size_t pool = candidates[c];
    std::optional<uint16_t> port = SuggestedOrNewPort(pool, protocol, r.suggested_external, internal.port);
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

std::optional<GrantError> NatEngine::CheckRequester(Protocol protocol, Endpoint internal) const {
  if (protocol != Protocol::kTcp && protocol != Protocol::kUdp) return GrantError::kUnsupportedProtocol;
  if (!IsInsideHost(internal.address) || internal.port == 0) return GrantError::kNotAuthorized;
  return std::nullopt;
}

size_t NatEngine::PoolCandidates(const Host& host, uint32_t internal_address, uint32_t suggested_address,
                                 size_t (&candidates)[2]) const {
  size_t n = 0;
  if (std::optional<size_t> suggested = ports_->IndexOf(suggested_address)) candidates[n++] = *suggested;
  const size_t paired = PairedPool(host, internal_address);
  if (ports_->pool_size() > 0 && (n == 0 || candidates[0] != paired)) candidates[n++] = paired;
  return n;
}

std::optional<uint16_t> NatEngine::SuggestedOrNewPort(size_t pool, Protocol protocol, Endpoint suggested,
                                                      uint16_t internal_port) {
  if (suggested.port != 0 && (suggested.address == 0 || suggested.address == ports_->address(pool)) &&
      !ports_->InUse(pool, protocol, suggested.port)) {
    return suggested.port;
  }
  return ports_->Allocate(pool, protocol, internal_port);
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


}  // namespace dpm::nat
