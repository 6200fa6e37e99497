// The hidden-port negotiation of cooperative VPM (negotiation.h).
#include "vpm/negotiation.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "vpm/aid.h"

namespace dpm::vpm {
namespace {

constexpr uint64_t kFirstRetransmitMs = 250;
// How long the client asks the server to keep the negotiated flow for its SYN, seconds.
constexpr uint32_t kRequestedWaitS = 10;

// How long a client should not ask again after an error (RFC 6887 §7.2: long-lifetime
// errors for what will not change soon, short for the rest).
uint32_t ErrorLifetime(uint8_t result) {
  switch (static_cast<pcp::ResultCode>(result)) {
    case pcp::ResultCode::kNoResources:
    case pcp::ResultCode::kNetworkFailure:
      return 30;
    default:
      return result == kResultNoListener ? 5 : 1800;
  }
}

}  // namespace

const char* NegotiationResultName(uint8_t result) {
  if (result == kResultNoListener) return "VPM_NO_LISTENER";
  return pcp::ResultName(static_cast<pcp::ResultCode>(result));
}

int NegotiationErrno(uint8_t result) {
  if (result == kResultNoListener) return ECONNREFUSED;
  switch (static_cast<pcp::ResultCode>(result)) {
    case pcp::ResultCode::kSuccess: return 0;
    case pcp::ResultCode::kNotAuthorized: return EACCES;
    case pcp::ResultCode::kNoResources: return EAGAIN;
    default: return EPROTO;
  }
}

std::vector<uint8_t> AnswerNegotiation(uint64_t now_ms, uint32_t epoch, absl::Span<const uint8_t> request,
                                       uint32_t source, uint32_t local_address, const Dispatcher& dispatcher,
                                       const VirtualPortTable& ports, Multiplexer& mux,
                                       NegotiationServerCounters* counters) {
  ++counters->requests;
  auto answer_error = [&](uint8_t result) {
    std::vector<uint8_t> out = pcp::EncodeErrorResponse(request, static_cast<pcp::ResultCode>(result),
                                                        ErrorLifetime(result), epoch);
    if (out.empty()) {
      ++counters->dropped;
    } else {
      ++counters->results[result];
    }
    return out;
  };
  pcp::ParsedRequest parsed = pcp::ParseRequest(request, pcp::Server::kVpm);
  if (!parsed.ok()) {
    if (parsed.error.silent) {
      ++counters->dropped;
      return {};
    }
    return answer_error(static_cast<uint8_t>(parsed.error.result));
  }
  const pcp::Request& q = *parsed.request;
  const pcp::VpmBody& body = *q.vpm;
  if (!q.client_address.is_ipv4() || q.client_address.ipv4() != source) {
    return answer_error(static_cast<uint8_t>(pcp::ResultCode::kAddressMismatch));
  }
  if (!dispatcher.AcceptsNegotiation(source)) return answer_error(static_cast<uint8_t>(pcp::ResultCode::kNotAuthorized));
  if (body.protocol != static_cast<uint8_t>(Protocol::kTcp) && body.protocol != static_cast<uint8_t>(Protocol::kUdp)) {
    return answer_error(static_cast<uint8_t>(pcp::ResultCode::kUnsuppProtocol));
  }
  if (!ValidAid(body.aid) || body.client_port == 0 || body.virtual_port == 0) {
    return answer_error(static_cast<uint8_t>(pcp::ResultCode::kMalformedRequest));
  }
  const PortKey key{static_cast<Protocol>(body.protocol), body.virtual_port};
  // No such virtual port here, or no socket of the AID on it: nobody to connect to.
  const VirtualStream* stream = dispatcher.Multiplexed(key) ? ports.Find(key, body.aid) : nullptr;
  if (stream == nullptr) return answer_error(kResultNoListener);
  const uint32_t wait_s = std::clamp<uint32_t>(q.lifetime, 1, kMaxNegotiatedWaitS);
  if (!mux.AddNegotiatedFlow(now_ms, key, body.aid, stream->hidden_port, local_address, source, body.client_port,
                             uint64_t{wait_s} * 1000)
           .ok()) {
    return answer_error(static_cast<uint8_t>(pcp::ResultCode::kNoResources));
  }
  pcp::Response r;
  r.opcode = pcp::Opcode::kVpm;
  r.result = pcp::ResultCode::kSuccess;
  r.lifetime = wait_s;
  r.epoch = epoch;
  r.vpm = body;
  r.vpm->hidden_port = stream->hidden_port;
  ++counters->results[0];
  return pcp::EncodeResponse(r);
}

NegotiationClient::Send NegotiationClient::Start(uint64_t now_ms, uint64_t id, PortKey key, absl::string_view aid,
                                                 uint32_t local_address, uint16_t client_port, uint32_t peer_address,
                                                 const std::array<uint8_t, 12>& nonce) {
  Pending p;
  p.local_address = local_address;
  p.peer_address = peer_address;
  p.body.nonce = nonce;
  p.body.protocol = static_cast<uint8_t>(key.protocol);
  p.body.virtual_port = key.port;
  p.body.client_port = client_port;
  p.body.aid = std::string(aid);
  pcp::Request q;
  q.opcode = pcp::Opcode::kVpm;
  q.lifetime = kRequestedWaitS;
  q.client_address = pcp::Address::FromIpv4(local_address);
  q.vpm = p.body;
  p.bytes = pcp::EncodeRequest(q);
  p.wait_ms = kFirstRetransmitMs;
  p.next_send_ms = now_ms + p.wait_ms;
  p.give_up_ms = now_ms + timeout_ms_;
  Send send{id, local_address, peer_address, p.bytes};
  pending_[id] = std::move(p);
  ++sent_;
  return send;
}

std::optional<NegotiationClient::Outcome> NegotiationClient::OnResponse(absl::Span<const uint8_t> bytes,
                                                                        uint32_t from_address) {
  absl::StatusOr<pcp::Response> r = pcp::ParseResponse(bytes);
  if (!r.ok() || r->opcode != pcp::Opcode::kVpm || !r->vpm) {
    ++unmatched_;
    return std::nullopt;
  }
  const pcp::VpmBody& got = *r->vpm;
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    const Pending& p = it->second;
    // RFC 6887 §11.3: a response is matched by its nonce and the fields of the request.
    if (p.peer_address != from_address || got.nonce != p.body.nonce || got.protocol != p.body.protocol ||
        got.virtual_port != p.body.virtual_port || got.client_port != p.body.client_port || got.aid != p.body.aid) {
      continue;
    }
    const uint8_t result = static_cast<uint8_t>(r->result);
    Outcome o;
    o.id = it->first;
    o.result = result;
    o.error = NegotiationErrno(result);
    if (o.error == 0) {
      if (got.hidden_port == 0) {
        o.error = EPROTO;  // a success must name a port
      } else {
        o.hidden_port = got.hidden_port;
      }
    }
    ++results_[result];
    pending_.erase(it);
    return o;
  }
  ++unmatched_;
  return std::nullopt;
}

std::vector<NegotiationClient::Outcome> NegotiationClient::Poll(uint64_t now_ms, std::vector<Send>* sends) {
  std::vector<Outcome> ended;
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    if (now_ms >= p.give_up_ms) {
      ended.push_back(Outcome{it->first, ETIMEDOUT, 0, 0});
      ++timeouts_;
      pending_.erase(it++);
      continue;
    }
    if (now_ms >= p.next_send_ms) {
      sends->push_back(Send{it->first, p.local_address, p.peer_address, p.bytes});
      ++retransmitted_;
      p.wait_ms *= 2;  // RFC 6887 §8.1.1: each wait twice the one before
      p.next_send_ms = now_ms + p.wait_ms;
    }
    ++it;
  }
  return ended;
}

std::optional<uint64_t> NegotiationClient::NextDeadline() const {
  std::optional<uint64_t> next;
  for (const auto& [id, p] : pending_) {
    const uint64_t t = std::min(p.next_send_ms, p.give_up_ms);
    if (!next || t < *next) next = t;
  }
  return next;
}

}  // namespace dpm::vpm
