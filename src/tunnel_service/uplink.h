// The connection a service proxy or a redirector keeps to the tunnel server (the tunneling patent, Fig. 3
// steps 305-335; Fig. 5's "redirector creates a connection" before any tunnel): dial (kernel or
// dpm), TLS 1.3 with the server's certificate verified, HELLO, then WELCOME (the session is up)
// or REFUSED. Whenever the connection fails or ends it is made again after an exponential
// backoff with jitter (a uniform wait between half and all of a backoff that starts at 1 s and
// doubles up to 30 s; back to 1 s once a WELCOME came),
// and a proxy republishes on each new session. Core thread only.
#ifndef DPM_TUNNEL_SERVICE_UPLINK_H_
#define DPM_TUNNEL_SERVICE_UPLINK_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "tunnel/control.h"
#include "tunnel/mux.h"
#include "tunnel_service/dialer.h"
#include "tunnel_service/session.h"

namespace dpm::tunnel_service {

struct UplinkConfig {
  std::string server_host;  // IPv4 literal or name
  uint16_t server_port = 7443;
  std::string server_name;  // the name the certificate must carry (default server_host)
  std::string ca_file;      // empty: the system's trust store
  std::chrono::seconds connect_timeout{10};  // dial + TLS + WELCOME
  std::chrono::milliseconds backoff_min{1000}, backoff_max{30000};
  tunnel::Mux::Options mux;
};

class Uplink {
 public:
  struct Callbacks {
    /// The HELLO to send (made again at each attempt: a proxy republishes everything).
    std::function<tunnel::Hello()> hello;
    /// The session is up: the server's WELCOME and the session (not yet started: the callee
    /// Start()s it after keeping it). Return the Session callbacks to use.
    std::function<Session::Callbacks(const tunnel::Welcome& welcome)> on_welcome;
    /// The new session, started.
    std::function<void(std::shared_ptr<Session>)> on_session;
    /// The session is down, or an attempt failed: the reason, for the log and status.
    std::function<void(const std::string& reason)> on_down;
  };
  /// Errors: InvalidArgument (the CA file).
  static absl::StatusOr<std::unique_ptr<Uplink>> Create(boost::asio::io_context& io, const UplinkConfig& config,
                                                        Dialer& dialer, tunnel::Mux::Side side, Callbacks callbacks);
  ~Uplink();
  /// Starts connecting (and reconnecting, for as long as the Uplink lives).
  void Start();
  /// The live session, or nullptr.
  const std::shared_ptr<Session>& session() const { return session_; }
  /// "up", "connecting", "waiting 4.2 s: <last error>".
  std::string State() const;
  /// The fields every role's JSON status starts with: role, name, server, state, attempts,
  /// sessions.
  nlohmann::json Describe(const std::string& role, const std::string& name) const;
  uint64_t attempts() const { return attempts_; }
  uint64_t sessions() const { return sessions_; }

 private:
  Uplink(boost::asio::io_context& io, const UplinkConfig& config, Dialer& dialer, tunnel::Mux::Side side,
         Callbacks callbacks, std::unique_ptr<boost::asio::ssl::context> tls);
  void Attempt();
  void Failed(const std::string& reason);
  void Retry();

  boost::asio::io_context& io_;
  UplinkConfig config_;
  Dialer& dialer_;
  tunnel::Mux::Side side_;
  Callbacks callbacks_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  boost::asio::steady_timer retry_timer_, deadline_;
  std::shared_ptr<Session> session_;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point session_started_, retry_at_;
  std::mt19937_64 rng_;
  std::string last_error_;
  bool connecting_ = false, waiting_ = false;
  uint64_t generation_ = 0;  // of the attempt in flight; a late callback of an old one is ignored
  uint64_t attempts_ = 0, sessions_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_UPLINK_H_
