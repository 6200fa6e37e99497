#include "dpm/dpm_driver.h"

#include <cstring>

namespace dpm::driver {
namespace {

// splitmix64: a small, well-mixed sequence for nonces (they need to be unique, not secret;
// RFC 6887 §11.1 — the seed comes from the OS's random source).
uint64_t Next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Driver::Driver(DriverConfig config, uint64_t nonce_seed) : config_(config), nonce_state_(nonce_seed) {}

Outgoing Driver::EncodePeer(const Session& s, uint32_t lifetime) const {
  pcp::Request q;
  q.opcode = pcp::Opcode::kPeer;
  q.lifetime = lifetime;
  q.client_address = pcp::Address::FromIpv4(s.internal_address);
  pcp::PeerBody body;
  body.nonce = s.nonce;
  body.protocol = static_cast<uint8_t>(s.protocol);
  body.internal_port = s.internal_port;
  // Suggest what we hold already, so a renewal or a re-creation after a restart asks for the
  // same registered endpoint (RFC 6887 §11.3).
  if (s.granted) {
    body.external_port = s.external.port;
    body.external_address = pcp::Address::FromIpv4(s.external.address);
  } else if (s.port_fixed) {
    body.external_port = s.internal_port;
  }
  body.remote_port = s.remote.port;
  body.remote_address = pcp::Address::FromIpv4(s.remote.address);
  q.peer = body;
  q.dpm_port_fixed = s.port_fixed;
  return Outgoing{pcp::EncodeRequest(q), s.internal_address};
}

uint64_t Driver::Begin(uint64_t now_ms, nat::Protocol protocol, uint16_t internal_port, nat::Endpoint remote,
                       bool port_fixed, uint32_t internal_address) {
  uint64_t id = next_id_++;
  Session s;
  s.internal_address = internal_address != 0 ? internal_address : config_.client_address;
  s.protocol = protocol;
  s.internal_port = internal_port;
  s.remote = remote;
  s.port_fixed = port_fixed;
  uint64_t a = Next(nonce_state_), b = Next(nonce_state_);
  std::memcpy(s.nonce.data(), &a, 8);
  std::memcpy(s.nonce.data() + 8, &b, 4);
  s.next_send_ms = now_ms;
  s.retry_ms = config_.first_retry_ms;
  sessions_.emplace(id, s);
  return id;
}

void Driver::Release(uint64_t now_ms, uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  if (it->second.granted || it->second.in_flight) {
    pending_out_.push_back(EncodePeer(it->second, 0));  // RFC 6887 §15: lifetime 0 deletes
  }
  sessions_.erase(it);
}

void Driver::OnReply(uint64_t now_ms, absl::Span<const uint8_t> payload) {
  absl::StatusOr<pcp::Response> r = pcp::ParseResponse(payload);
  if (!r.ok() || r->opcode != pcp::Opcode::kPeer || !r->peer) {
    ignored_replies_++;
    return;
  }
  // Epoch check (RFC 6887 §8.5): the server's epoch must advance with our clock, give or
  // take; one that went back means the gateway restarted and lost every mapping.
  bool restarted = false;
  if (last_epoch_) {
    uint64_t elapsed_s = (now_ms - last_epoch_at_ms_) / 1000;
    uint64_t expected = *last_epoch_ + elapsed_s;
    if (r->epoch + 1 < *last_epoch_ || r->epoch + 2 + elapsed_s / 8 < expected) restarted = true;
  }
  last_epoch_ = r->epoch;
  last_epoch_at_ms_ = now_ms;

  uint64_t match = 0;
  for (auto& [id, s] : sessions_) {
    if (s.nonce == r->peer->nonce && s.internal_port == r->peer->internal_port &&
        static_cast<uint8_t>(s.protocol) == r->peer->protocol) {
      match = id;
      break;
    }
  }
  if (restarted) {
    gateway_restarts_++;
    // Every grant the old gateway gave is gone: ask again (same nonce, suggesting the same
    // endpoints) and tell the owners their sessions were lost until re-granted.
    for (auto& [id, s] : sessions_) {
      if (id == match || !s.granted) continue;
      s.next_send_ms = now_ms;
      s.retry_ms = config_.first_retry_ms;
      s.tries = 0;
      s.in_flight = false;
      pending_events_.push_back(Event{Event::Kind::kLost, id, s.external, s.gateway_endpoint, 0});
    }
  }
  if (match == 0) {
    ignored_replies_++;
    return;
  }
  Session& s = sessions_[match];
  s.in_flight = false;
  s.tries = 0;
  s.retry_ms = config_.first_retry_ms;
  if (r->result != pcp::ResultCode::kSuccess) {
    Event e{Event::Kind::kFailed, match, {}, {}, r->lifetime, r->result};
    sessions_.erase(match);
    pending_events_.push_back(e);
    return;
  }
  nat::Endpoint external{r->peer->external_address.ipv4(), r->peer->external_port};
  nat::Endpoint gateway_endpoint{config_.server_address, 0};
  if (r->dpm_session_endpoint) {
    gateway_endpoint = {r->dpm_session_endpoint->first.ipv4(), r->dpm_session_endpoint->second};
  }
  bool changed = !s.granted || !(external == s.external) || !(gateway_endpoint == s.gateway_endpoint);
  s.granted = true;
  s.external = external;
  s.gateway_endpoint = gateway_endpoint;
  uint32_t lifetime = r->lifetime == 0 ? 1 : r->lifetime;
  s.next_send_ms = now_ms + uint64_t{lifetime} * 1000 / 2;  // renew at half the lifetime
  if (changed) pending_events_.push_back(Event{Event::Kind::kGranted, match, external, gateway_endpoint, lifetime});
}

void Driver::Poll(uint64_t now_ms, std::vector<Outgoing>* out, std::vector<Event>* events) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    if (s.next_send_ms > now_ms) {
      ++it;
      continue;
    }
    if (s.in_flight && s.tries >= config_.max_tries) {
      // No answer: the gateway is unreachable (a granted session keeps running on the mapping
      // it has until that expires; a new one fails).
      if (!s.granted) {
        pending_events_.push_back(Event{Event::Kind::kTimedOut, it->first, {}, {}, 0});
        sessions_.erase(it++);
        continue;
      }
      s.tries = 0;
      s.in_flight = false;
      s.next_send_ms = now_ms + 30000;  // keep trying to renew, slowly
      ++it;
      continue;
    }
    out->push_back(EncodePeer(s, config_.lifetime_s));
    s.in_flight = true;
    s.tries++;
    s.next_send_ms = now_ms + s.retry_ms;
    s.retry_ms *= 2;
    ++it;
  }
  for (Outgoing& o : pending_out_) out->push_back(std::move(o));
  pending_out_.clear();
  for (Event& e : pending_events_) events->push_back(e);
  pending_events_.clear();
}

std::optional<uint64_t> Driver::NextDeadline() const {
  std::optional<uint64_t> next;
  for (const auto& [id, s] : sessions_) {
    if (!next || s.next_send_ms < *next) next = s.next_send_ms;
  }
  if (!pending_out_.empty() || !pending_events_.empty()) next = 0;
  return next;
}

}  // namespace dpm::driver
