// Why a tunneled connection failed, and how each failure reaches the program's connect()
// (docs/tunnel.md "Errors"). One table serves every role: the service proxy turns its
// connect() errno into a TunnelError, the tunnel server and the proxy carry it as the
// `dpm-error` header of a failed CONNECT response, and the redirector turns it back into the
// errno the hooked program's connect() returns (the tunneling patent, Fig. 6 steps 630-640).
#ifndef DPM_TUNNEL_ERRORS_H_
#define DPM_TUNNEL_ERRORS_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace dpm::tunnel {

/// A failure along the chain hook → redirector → tunnel server → service proxy → real server.
enum class TunnelError : uint8_t {
  kNone = 0,         // connected
  kNoService,        // unknown service, or one this access token may not use (one answer for both)
  kProxyDown,        // the service's proxy is not connected to the tunnel server
  kRefused,          // the real server refused the connection (RST)
  kTimeout,          // the real server, or a hop of the chain, did not answer in time
  kHostUnreachable,  // the proxy has no route to the real server's host
  kNetUnreachable,   // the proxy has no route to the real server's network
  kLimit,            // a stream limit (per proxy, per redirector, per service) is reached
  kServerDown,       // the redirector is not connected to the tunnel server
  kProtocol,         // a hop answered something this protocol does not allow
};

/// The `dpm-error` header value of `error` ("no-service", "proxy-down", "refused", "timeout",
/// "host-unreachable", "net-unreachable", "limit", "server-down", "protocol"; "" for kNone).
absl::string_view ErrorToken(TunnelError error);
/// The TunnelError a `dpm-error` header value names; nullopt for an unknown value.
std::optional<TunnelError> ErrorFromToken(absl::string_view token);
/// The errno the program's connect() gets for `error` (0 for kNone): EACCES, EHOSTUNREACH,
/// ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EAGAIN, ENETUNREACH, EPROTO.
int ErrorToErrno(TunnelError error);
/// The TunnelError for the errno of the service proxy's own connect() to the real server:
/// ECONNREFUSED → kRefused, ETIMEDOUT → kTimeout, EHOSTUNREACH/EHOSTDOWN → kHostUnreachable,
/// ENETUNREACH/ENETDOWN → kNetUnreachable, anything else → kRefused.
TunnelError ErrorFromConnectErrno(int error);
/// A short English phrase for logs and status ("real server refused the connection").
absl::string_view ErrorText(TunnelError error);

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_ERRORS_H_
