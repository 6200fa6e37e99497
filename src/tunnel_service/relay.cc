#include "tunnel_service/relay.h"

namespace dpm::tunnel_service {

Relay::Relay(std::function<void(const Totals&)> done) : done_(std::move(done)) {
  client_.relay = proxy_.relay = this;
  client_.other = &proxy_;
  proxy_.other = &client_;
  client_.is_client = true;
}

Relay::~Relay() = default;

bool Relay::Start(std::shared_ptr<Session> client, int32_t client_id, std::shared_ptr<Session> proxy,
                  const tunnel::StreamRequest& request) {
  client_.session = std::move(client);
  client_.id = client_id;
  proxy_.session = std::move(proxy);
  proxy_.id = proxy_.session->Open(request, &proxy_);
  if (proxy_.id < 0) {
    proxy_.gone = true;
    return false;
  }
  client_.session->Attach(client_id, &client_);
  return true;
}

void Relay::Abort() {
  for (Side* s : {&client_, &proxy_}) {
    if (!s->gone) {
      s->gone = true;
      s->session->Reset(s->id, /*connect_error=*/true);
    }
  }
  MaybeDone();
}

void Relay::Move(Side& from, Side& to) {
  if (to.gone) {
    from.pending.clear();
    return;
  }
  if (!from.pending.empty()) {
    size_t n = to.session->Send(to.id, from.pending);
    if (n > 0) {
      if (from.is_client) {
        totals_.to_service += n;
      } else {
        totals_.from_service += n;
      }
      from.pending.erase(from.pending.begin(), from.pending.begin() + static_cast<std::ptrdiff_t>(n));
      if (!from.gone) from.session->Consume(from.id, n);
    }
  }
  if (from.pending.empty() && from.eof && !from.ended_other) {
    from.ended_other = true;
    to.session->End(to.id);
  }
}

void Relay::MaybeDone() {
  if (finished_ || !client_.gone || !proxy_.gone) return;
  finished_ = true;
  auto done = std::move(done_);
  if (done) done(totals_);
}

void Relay::Side::OnResponse(tunnel::TunnelError result) {
  // Only the proxy's side is opened by the server: its answer goes to the redirector.
  Relay& r = *relay;
  if (r.answered_) return;
  r.answered_ = true;
  r.totals_.result = result;
  if (!r.client_.gone) r.client_.session->Respond(r.client_.id, result);
  if (result != tunnel::TunnelError::kNone) {
    r.client_.gone = true;  // a failed answer ends the redirector's stream
    r.client_.session->Forget(r.client_.id);
    if (!gone) {
      gone = true;
      session->Reset(id, /*connect_error=*/false);
    }
    r.MaybeDone();
  }
}

void Relay::Side::OnData(absl::Span<const uint8_t> bytes) {
  pending.insert(pending.end(), bytes.begin(), bytes.end());
  relay->Move(*this, *other);
}

void Relay::Side::OnEnd() {
  eof = true;
  relay->Move(*this, *other);
}

void Relay::Side::OnClosed(bool clean, bool reset) {
  gone = true;
  Relay& r = *relay;
  if (!clean) {
    if (!r.answered_ && !is_client) {  // the proxy's stream died before it answered
      r.answered_ = true;
      r.totals_.result = tunnel::TunnelError::kProxyDown;
      if (!other->gone) other->session->Respond(other->id, tunnel::TunnelError::kProxyDown);
    }
    if (!other->gone) {
      other->gone = true;
      other->session->Reset(other->id, reset);
    }
  }
  r.MaybeDone();
}

void Relay::Side::OnWritable() { relay->Move(*other, *this); }

}  // namespace dpm::tunnel_service
