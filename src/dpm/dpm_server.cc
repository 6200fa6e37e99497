#include "dpm/dpm_server.h"

#include <variant>

#include "dpm/natpmp.h"

namespace dpm::server {
namespace {

// RFC 6887 §7.2: error lifetimes. Long-lifetime errors (the request will not work however
// often it is repeated) tell the client to wait 30 minutes; short ones 30 seconds.
constexpr uint32_t kLongErrorLifetime = 1800;
constexpr uint32_t kShortErrorLifetime = 30;

bool IsShortLived(pcp::ResultCode r) {
  return r == pcp::ResultCode::kNetworkFailure || r == pcp::ResultCode::kNoResources ||
         r == pcp::ResultCode::kUserExQuota || r == pcp::ResultCode::kCannotProvideExternal ||
         r == pcp::ResultCode::kExcessiveRemotePeers;
}

uint32_t ErrorLifetime(pcp::ResultCode r) { return IsShortLived(r) ? kShortErrorLifetime : kLongErrorLifetime; }

std::optional<nat::Protocol> ProtocolOf(uint8_t number) {
  if (number == 6) return nat::Protocol::kTcp;
  if (number == 17) return nat::Protocol::kUdp;
  return std::nullopt;
}

// RFC 6887 §13.3: a FILTER for an IPv4 mapping names an IPv4-mapped prefix; its length counts
// the 96 bits of the ::ffff:0:0/96 prefix, and 0 removes the mapping's filters. False for a
// filter that cannot apply (another family, a length outside 96..128): MALFORMED_OPTION.
bool ToFilterUpdate(const std::vector<pcp::Filter>& filters, nat::MapRequest* out) {
  for (const pcp::Filter& f : filters) {
    if (f.prefix_length == 0) {
      out->clear_filters = true;
      continue;
    }
    if (!f.remote_address.is_ipv4() || f.prefix_length < 96 || f.prefix_length > 128) return false;
    out->filters.push_back(nat::RemoteFilter{f.remote_address.ipv4(), static_cast<uint8_t>(f.prefix_length - 96),
                                             f.remote_port});
  }
  return true;
}

}  // namespace

pcp::ResultCode ResultFor(nat::GrantError error) {
  switch (error) {
    case nat::GrantError::kNone: return pcp::ResultCode::kSuccess;
    case nat::GrantError::kCannotProvideExternal: return pcp::ResultCode::kCannotProvideExternal;
    case nat::GrantError::kNoResources: return pcp::ResultCode::kNoResources;
    case nat::GrantError::kUserExQuota: return pcp::ResultCode::kUserExQuota;
    case nat::GrantError::kUnsupportedProtocol: return pcp::ResultCode::kUnsuppProtocol;
    case nat::GrantError::kNotAuthorized: return pcp::ResultCode::kNotAuthorized;
    case nat::GrantError::kExcessiveRemotePeers: return pcp::ResultCode::kExcessiveRemotePeers;
  }
  return pcp::ResultCode::kNetworkFailure;
}

std::vector<uint8_t> DpmServer::Handle(uint64_t now_ms, nat::Endpoint client, uint16_t server_port,
                                       absl::Span<const uint8_t> request) {
  // PCP and NAT-PMP share 5351 and differ in the version byte (RFC 6887 §9); the DPM port
  // speaks PCP only.
  if (server_port == pcp::kServerPort && !request.empty() && request[0] == natpmp::kVersion) {
    return HandleNatPmp(now_ms, client, request);
  }
  return HandlePcp(now_ms, client, request);
}

std::vector<uint8_t> DpmServer::HandlePcp(uint64_t now_ms, nat::Endpoint client, absl::Span<const uint8_t> bytes) {
  const uint32_t epoch = Epoch(now_ms);
  pcp::ParsedRequest parsed = pcp::ParseRequest(bytes);
  if (!parsed.request && parsed.error.silent) {
    counters_.dropped++;  // RFC 6887 §8.3: too short to answer, or not a request
    return {};
  }
  if (!parsed.request) {
    std::vector<uint8_t> reply =
        pcp::EncodeErrorResponse(bytes, parsed.error.result, ErrorLifetime(parsed.error.result), epoch);
    if (reply.empty()) {
      counters_.dropped++;
    } else {
      counters_.pcp_results[static_cast<size_t>(parsed.error.result)]++;
    }
    return reply;
  }
  const pcp::Request& q = *parsed.request;
  auto fail = [&](pcp::ResultCode result) {
    counters_.pcp_results[static_cast<size_t>(result)]++;
    return pcp::EncodeErrorResponse(bytes, result, ErrorLifetime(result), epoch);
  };
  // The client address in the request must be the packet's source (RFC 6887 §8.3): a
  // request relayed or spoofed on behalf of another host gets no mapping.
  if (!q.client_address.is_ipv4() || q.client_address.ipv4() != client.address) {
    return fail(pcp::ResultCode::kAddressMismatch);
  }
  if (q.third_party) return fail(pcp::ResultCode::kNotAuthorized);  // RFC 6887 §13.1

  pcp::Response r;
  r.opcode = q.opcode;
  r.epoch = epoch;
  if (q.opcode == pcp::Opcode::kAnnounce) {
    counters_.pcp_results[0]++;
    return pcp::EncodeResponse(r);
  }
  const pcp::MapBody& body = q.opcode == pcp::Opcode::kPeer ? static_cast<const pcp::MapBody&>(*q.peer) : *q.map;
  std::optional<nat::Protocol> protocol = ProtocolOf(body.protocol);
  if (!protocol) return fail(pcp::ResultCode::kUnsuppProtocol);
  if (body.internal_port == 0) return fail(pcp::ResultCode::kMalformedRequest);
  nat::Endpoint suggested{body.external_address.is_ipv4() ? body.external_address.ipv4() : 0, body.external_port};

  std::variant<nat::DpmGrant, nat::GrantError> outcome;
  if (q.opcode == pcp::Opcode::kPeer) {
    const pcp::PeerBody& peer = *q.peer;
    if (!peer.remote_address.is_ipv4() || peer.remote_address.is_unspecified() || peer.remote_port == 0) {
      return fail(pcp::ResultCode::kMalformedRequest);
    }
    nat::DpmRequest dq;
    dq.protocol = *protocol;
    dq.internal = {client.address, body.internal_port};
    dq.remote = {peer.remote_address.ipv4(), peer.remote_port};
    dq.suggested_external = suggested;
    dq.port_fixed = q.dpm_port_fixed;
    dq.lifetime_s = q.lifetime;
    outcome = engine_.RequestDpm(now_ms, dq);
  } else {
    nat::MapRequest map;
    map.protocol = *protocol;
    map.internal = {client.address, body.internal_port};
    map.suggested_external = suggested;
    map.lifetime_s = q.lifetime;
    map.origin = nat::MappingOrigin::kPcp;
    if (!ToFilterUpdate(q.filters, &map)) return fail(pcp::ResultCode::kMalformedOption);
    outcome = engine_.RequestMap(now_ms, map);
  }
  if (const auto* error = std::get_if<nat::GrantError>(&outcome)) return fail(ResultFor(*error));
  const nat::DpmGrant& grant = std::get<nat::DpmGrant>(outcome);
  pcp::MapBody assigned = body;
  assigned.external_port = grant.external.port;
  assigned.external_address = pcp::Address::FromIpv4(grant.external.address);
  if (q.opcode == pcp::Opcode::kPeer) {
    pcp::PeerBody peer = *q.peer;
    static_cast<pcp::MapBody&>(peer) = assigned;
    r.peer = peer;
    // DPM patent, claim 5 / ¶33: where the driver aims the session's packets.
    r.dpm_session_endpoint =
        std::make_pair(pcp::Address::FromIpv4(grant.gateway_endpoint.address), grant.gateway_endpoint.port);
  } else {
    r.map = assigned;
    r.filters = q.filters;  // §13.3: the filters the server applied
  }
  r.lifetime = grant.lifetime_s;
  counters_.pcp_results[0]++;
  return pcp::EncodeResponse(r);
}

std::vector<uint8_t> DpmServer::HandleNatPmp(uint64_t now_ms, nat::Endpoint client, absl::Span<const uint8_t> bytes) {
  counters_.natpmp_requests++;
  const uint32_t epoch = Epoch(now_ms);
  natpmp::ParsedRequest parsed = natpmp::ParseRequest(bytes);
  if (!parsed.request) {
    if (parsed.drop) {
      counters_.dropped++;
      return {};
    }
    return natpmp::EncodeErrorResponse(bytes, parsed.result, epoch);
  }
  const natpmp::Request& q = *parsed.request;
  if (q.opcode == natpmp::kOpPublicAddress) {
    // RFC 6886 §3.2 with paired pooling (RFC 4787 REQ-2): the address this client's mappings
    // have, or will get, not one address for everybody.
    return natpmp::EncodePublicAddressResponse(natpmp::kSuccess, epoch, engine_.ExternalAddressFor(client.address));
  }
  nat::MapRequest map;
  map.protocol = q.opcode == natpmp::kOpMapUdp ? nat::Protocol::kUdp : nat::Protocol::kTcp;
  map.internal = {client.address, q.internal_port};
  map.suggested_external = {0, q.suggested_external_port};
  map.lifetime_s = q.lifetime;
  map.origin = nat::MappingOrigin::kNatPmp;
  auto outcome = engine_.RequestMap(now_ms, map);
  if (const auto* error = std::get_if<nat::GrantError>(&outcome)) {
    natpmp::ResultCode result =
        *error == nat::GrantError::kNotAuthorized ? natpmp::kNotAuthorized : natpmp::kOutOfResources;
    return natpmp::EncodeMapResponse(q.opcode, result, epoch, q.internal_port, 0, 0);
  }
  const nat::DpmGrant& grant = std::get<nat::DpmGrant>(outcome);
  return natpmp::EncodeMapResponse(q.opcode, natpmp::kSuccess, epoch, q.internal_port, grant.external.port,
                                   grant.lifetime_s);
}

}  // namespace dpm::server
