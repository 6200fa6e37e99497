#include "tunnel_service/uplink.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;

const char* RefuseText(tunnel::RefuseReason r) {
  switch (r) {
    case tunnel::RefuseReason::kAuthentication: return "authentication failed";
    case tunnel::RefuseReason::kVersion: return "protocol version not spoken";
    case tunnel::RefuseReason::kLimit: return "server at its connection limit";
    case tunnel::RefuseReason::kMalformed: return "server could not read our HELLO";
  }
  return "refused";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Uplink>> Uplink::Create(asio::io_context& io, const UplinkConfig& config,
                                                      Dialer& dialer, tunnel::Mux::Side side, Callbacks callbacks) {
  auto tls = MakeClientContext(config.ca_file);
  if (!tls.ok()) return tls.status();
  return std::unique_ptr<Uplink>(new Uplink(io, config, dialer, side, std::move(callbacks), std::move(*tls)));
}

Uplink::Uplink(asio::io_context& io, const UplinkConfig& config, Dialer& dialer, tunnel::Mux::Side side,
               Callbacks callbacks, std::unique_ptr<asio::ssl::context> tls)
    : io_(io),
      config_(config),
      dialer_(dialer),
      side_(side),
      callbacks_(std::move(callbacks)),
      tls_(std::move(tls)),
      retry_timer_(io),
      deadline_(io),
      backoff_(config.backoff_min),
      rng_(std::random_device{}()) {
  if (config_.server_name.empty()) config_.server_name = config_.server_host;
}

Uplink::~Uplink() {
  *alive_ = false;
  if (session_) session_->Close("stopping");
}

void Uplink::Start() { Attempt(); }

nlohmann::json Uplink::Describe(const std::string& role, const std::string& name) const {
  return {{"role", role},
          {"name", name},
          {"server", absl::StrCat(config_.server_host, ":", config_.server_port)},
          {"state", State()},
          {"attempts", attempts_},
          {"sessions", sessions_}};
}

std::string Uplink::State() const {
  if (session_ && session_->up()) return "up";
  if (connecting_) return "connecting";
  if (waiting_) {
    double left = std::chrono::duration<double>(retry_at_ - std::chrono::steady_clock::now()).count();
    return absl::StrFormat("waiting %.1f s to reconnect: %s", left < 0 ? 0.0 : left, last_error_);
  }
  return "idle";
}

void Uplink::Attempt() {
  connecting_ = true;
  waiting_ = false;
  attempts_++;
  const uint64_t gen = ++generation_;
  deadline_.expires_after(config_.connect_timeout);
  auto stream_slot = std::make_shared<std::unique_ptr<TlsStream>>();
  deadline_.async_wait([this, alive = alive_, gen, stream_slot](const boost::system::error_code& ec) {
    if (ec || !*alive || gen != generation_ || !connecting_) return;
    if (*stream_slot) {
      boost::system::error_code ignored;
      (*stream_slot)->lowest_layer().close(ignored);
    }
    Failed("timed out connecting to the tunnel server");
  });
  dialer_.Dial(config_.server_host, config_.server_port,
               std::chrono::duration_cast<std::chrono::milliseconds>(config_.connect_timeout),
               [this, alive = alive_, gen, stream_slot](int error, int fd) {
                 if (!*alive || gen != generation_ || !connecting_) {
                   if (fd >= 0) ::close(fd);
                   return;
                 }
                 if (error != 0) return Failed(absl::StrCat("connect: ", std::strerror(error)));
                 asio::ip::tcp::socket socket(io_);
                 boost::system::error_code ec;
                 socket.assign(asio::ip::tcp::v4(), fd, ec);
                 if (ec) {
                   ::close(fd);
                   return Failed(absl::StrCat("socket: ", ec.message()));
                 }
                 socket.set_option(asio::ip::tcp::no_delay(true), ec);  // fails harmlessly on a dpm socket
                 *stream_slot = std::make_unique<TlsStream>(std::move(socket), *tls_);
                 TlsStream& s = **stream_slot;
                 if (!PrepareClient(s, config_.server_name)) return Failed("bad --server-name");
                 s.async_handshake(asio::ssl::stream_base::client, [this, alive, gen, stream_slot](
                                                                       const boost::system::error_code& ec) {
                   if (!*alive || gen != generation_ || !connecting_) return;
                   TlsStream& s = **stream_slot;
                   if (ec) {
                     std::string why = VerifyFailure(s);
                     return Failed(why.empty() ? absl::StrCat("TLS: ", ec.message())
                                               : absl::StrCat("TLS: server certificate not accepted: ", why));
                   }
                   if (!AlpnAgreed(s)) return Failed("TLS: the server did not select ALPN dpm-tunnel/1");
                   WriteControl(s, callbacks_.hello(), [this, alive, gen, stream_slot](
                                                           const boost::system::error_code& ec) {
                     if (!*alive || gen != generation_ || !connecting_) return;
                     if (ec) return Failed(absl::StrCat("send HELLO: ", ec.message()));
                     ReadControl(**stream_slot, [this, alive, gen, stream_slot](
                                                    absl::StatusOr<tunnel::ControlMessage> m,
                                                    std::vector<uint8_t> rest) {
                       if (!*alive || gen != generation_ || !connecting_) return;
                       if (!m.ok()) return Failed(absl::StrCat("tunnel server: ", m.status().message()));
                       if (auto* r = std::get_if<tunnel::Refused>(&*m)) {
                         return Failed(absl::StrCat("tunnel server refused: ", RefuseText(r->reason)));
                       }
                       auto* w = std::get_if<tunnel::Welcome>(&*m);
                       if (w == nullptr) return Failed("tunnel server sent no WELCOME");
                       deadline_.cancel();
                       connecting_ = false;
                       backoff_ = config_.backoff_min;  // the server is there: a drop retries soon
                       Session::Callbacks cb = callbacks_.on_welcome(*w);
                       auto user_down = std::move(cb.on_down);
                       cb.on_down = [this, alive, user_down](const std::string& reason) {
                         if (user_down) user_down(reason);
                         if (!*alive) return;
                         session_.reset();
                         Failed(absl::StrCat("session ended: ", reason));
                       };
                       auto keepalive = std::chrono::seconds(std::max<uint32_t>(1, w->keepalive_seconds));
                       session_ = std::make_shared<Session>(io_, std::move(*stream_slot), side_, config_.mux,
                                                            keepalive, std::move(cb));
                       sessions_++;
                       session_started_ = std::chrono::steady_clock::now();
                       session_->Start(std::move(rest));
                       if (callbacks_.on_session && session_) callbacks_.on_session(session_);
                     });
                   });
                 });
               });
}

void Uplink::Failed(const std::string& reason) {
  connecting_ = false;
  deadline_.cancel();
  generation_++;
  last_error_ = reason;
  if (callbacks_.on_down && reason.rfind("session ended", 0) != 0) callbacks_.on_down(reason);
  Retry();
}

void Uplink::Retry() {
  // Full jitter: a uniform wait in [backoff/2, backoff], then double the backoff.
  std::uniform_int_distribution<int64_t> pick(backoff_.count() / 2, backoff_.count());
  std::chrono::milliseconds wait(pick(rng_));
  backoff_ = std::min(backoff_ * 2, config_.backoff_max);
  waiting_ = true;
  retry_at_ = std::chrono::steady_clock::now() + wait;
  retry_timer_.expires_after(wait);
  retry_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    Attempt();
  });
}

}  // namespace dpm::tunnel_service
