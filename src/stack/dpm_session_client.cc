#include "stack/dpm_session_client.h"

#include <cerrno>
#include <utility>

namespace dpm::stack {

int ErrnoForPcp(pcp::ResultCode r) {
  switch (r) {
    case pcp::ResultCode::kCannotProvideExternal: return EADDRINUSE;   // fixed port taken for that peer
    case pcp::ResultCode::kNoResources: return EADDRNOTAVAIL;          // no registered address/port left
    case pcp::ResultCode::kUserExQuota: return EDQUOT;                 // this host's share used up
    case pcp::ResultCode::kNotAuthorized: return EACCES;
    case pcp::ResultCode::kAddressMismatch: return EADDRNOTAVAIL;
    case pcp::ResultCode::kUnsuppProtocol: return EPROTONOSUPPORT;
    case pcp::ResultCode::kUnsuppOption: return EOPNOTSUPP;            // the gateway speaks PCP but not DPM
    case pcp::ResultCode::kNetworkFailure: return ENETUNREACH;
    case pcp::ResultCode::kExcessiveRemotePeers: return ENOBUFS;
    default: return EPROTO;                                           // malformed/unsupported version
  }
}

DpmSessionClient::DpmSessionClient(nat::Protocol protocol, DpmSetupCalls calls)
    : protocol_(protocol), calls_(std::move(calls)) {}

DpmSessionClient::Peer* DpmSessionClient::FindOrBegin(const api::Endpoint& remote, const DpmSessionSource& source) {
  const uint64_t key = Key(remote);
  if (auto it = peers_.find(key); it != peers_.end()) return it->second.get();
  if (peers_.size() >= kMaxPeers) return nullptr;
  auto peer = std::make_unique<Peer>();
  peer->remote = remote;
  peer->id = calls_.begin(DpmSetupRequest{protocol_, source.port, remote, source.port_fixed, source.own_address});
  Peer* raw = peer.get();
  by_id_[peer->id] = raw;
  peers_[key] = std::move(peer);
  return raw;
}

void DpmSessionClient::Aim(Peer& peer, DpmClientActions* out) {
  out->connect = peer.gateway_endpoint;  // claim 5
  connected_ = &peer;
}

int DpmSessionClient::Connect(const api::Endpoint& remote, const DpmSessionSource& source, DpmClientActions* out) {
  Peer* peer = FindOrBegin(remote, source);
  if (peer == nullptr) return ENOBUFS;
  if (peer->granted) {
    Aim(*peer, out);
    return 0;
  }
  waiting_ = true;
  waiting_key_ = Key(remote);
  return -1;
}

void DpmSessionClient::Send(const api::Endpoint& to, absl::Span<const uint8_t> payload,
                            const DpmSessionSource& source, DpmClientActions* out) {
  Peer* peer = FindOrBegin(to, source);
  if (peer == nullptr) {
    out->error = ENOBUFS;
    out->dropped++;
    return;
  }
  if (peer->granted) {
    out->send.push_back(DpmDatagram{peer->gateway_endpoint, {payload.begin(), payload.end()}});
    return;
  }
  if (peer->queued.size() >= kMaxQueuedPerPeer) {
    out->dropped++;
    return;
  }
  peer->queued.emplace_back(payload.begin(), payload.end());
}

void DpmSessionClient::OnEvent(const driver::Event& e, DpmClientActions* out) {
  using Kind = driver::Event::Kind;
  auto it = by_id_.find(e.id);
  if (it == by_id_.end()) return;
  Peer* peer = it->second;
  if (e.kind == Kind::kLost) return;  // the driver is asking the restarted gateway again
  const uint64_t key = Key(peer->remote);
  if (e.kind == Kind::kGranted) {
    if (peer->granted) by_gateway_.erase(Key(peer->gateway_endpoint));
    peer->granted = true;
    peer->external = api::Endpoint::Ipv4(e.external.address, e.external.port);
    peer->gateway_endpoint = api::Endpoint::Ipv4(e.gateway_endpoint.address, e.gateway_endpoint.port);
    by_gateway_[Key(peer->gateway_endpoint)] = peer;
    const bool answers_waiting = waiting_ && waiting_key_ == key;
    if (connected_ == peer || answers_waiting) Aim(*peer, out);
    for (std::vector<uint8_t>& d : peer->queued) out->send.push_back(DpmDatagram{peer->gateway_endpoint, std::move(d)});
    peer->queued.clear();
    if (answers_waiting) {
      waiting_ = false;
      if (protocol_ == nat::Protocol::kUdp) out->connect_result = 0;  // TCP: the handshake answers
    }
    return;
  }
  // Failed or timed out: the datagrams waiting for it are dropped, the error is reported
  // (connect's answer, or SO_ERROR for sendto), and the next datagram asks again.
  const int error = e.kind == Kind::kTimedOut ? ETIMEDOUT : ErrnoForPcp(e.result);
  out->dropped += peer->queued.size();
  if (waiting_ && waiting_key_ == key) {
    waiting_ = false;
    out->connect_result = error;
  } else {
    out->error = error;
  }
  if (connected_ == peer) connected_ = nullptr;
  if (peer->granted) by_gateway_.erase(Key(peer->gateway_endpoint));
  by_id_.erase(it);
  peers_.erase(key);
}

void DpmSessionClient::ReleaseAll() {
  connected_ = nullptr;
  waiting_ = false;
  for (auto& [key, peer] : peers_) {
    if (peer->id != 0) calls_.release(peer->id);  // lifetime 0 for every grant
  }
  peers_.clear();
  by_id_.clear();
  by_gateway_.clear();
}

api::Endpoint DpmSessionClient::TrueSource(const api::Endpoint& from) const {
  if (by_gateway_.empty()) return from;
  auto it = by_gateway_.find(Key(from));
  return it != by_gateway_.end() ? it->second->remote : from;
}

size_t DpmSessionClient::queued(const api::Endpoint& remote) const {
  auto it = peers_.find(Key(remote));
  return it == peers_.end() ? 0 : it->second->queued.size();
}

}  // namespace dpm::stack
