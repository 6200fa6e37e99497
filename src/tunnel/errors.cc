#include "tunnel/errors.h"

#include <cerrno>
#include <cstddef>

namespace dpm::tunnel {
namespace {

// One row per TunnelError, in enum order (docs/tunnel.md "Errors").
struct ErrorRow {
  TunnelError error;
  absl::string_view token;
  int errno_value;
  absl::string_view text;
};

constexpr ErrorRow kErrors[] = {
    {TunnelError::kNone, "", 0, "connected"},
    {TunnelError::kNoService, "no-service", EACCES, "no such service, or not permitted"},
    {TunnelError::kProxyDown, "proxy-down", EHOSTUNREACH, "the service's proxy is not connected"},
    {TunnelError::kRefused, "refused", ECONNREFUSED, "real server refused the connection"},
    {TunnelError::kTimeout, "timeout", ETIMEDOUT, "no answer in time from the real server or a hop of the chain"},
    {TunnelError::kHostUnreachable, "host-unreachable", EHOSTUNREACH, "proxy has no route to the real server's host"},
    {TunnelError::kNetUnreachable, "net-unreachable", ENETUNREACH, "proxy has no route to the real server's network"},
    {TunnelError::kLimit, "limit", EAGAIN, "stream limit reached"},
    {TunnelError::kServerDown, "server-down", ENETUNREACH, "redirector is not connected to the tunnel server"},
    {TunnelError::kProtocol, "protocol", EPROTO, "protocol error"},
};
constexpr size_t kErrorCount = sizeof(kErrors) / sizeof(kErrors[0]);

constexpr bool RowsInEnumOrder() {
  for (size_t i = 0; i < kErrorCount; ++i) {
    if (static_cast<size_t>(kErrors[i].error) != i) return false;
  }
  return true;
}
static_assert(RowsInEnumOrder(), "kErrors is indexed by TunnelError");

const ErrorRow& Row(TunnelError error) {
  const auto index = static_cast<size_t>(error);
  return index < kErrorCount ? kErrors[index] : kErrors[static_cast<size_t>(TunnelError::kProtocol)];
}

}  // namespace

absl::string_view ErrorToken(TunnelError error) { return Row(error).token; }

std::optional<TunnelError> ErrorFromToken(absl::string_view token) {
  if (token.empty()) return std::nullopt;
  for (const ErrorRow& row : kErrors) {
    if (row.token == token) return row.error;
  }
  return std::nullopt;
}

int ErrorToErrno(TunnelError error) { return Row(error).errno_value; }

TunnelError ErrorFromConnectErrno(int error) {
  switch (error) {
    case ECONNREFUSED: return TunnelError::kRefused;
    case ETIMEDOUT: return TunnelError::kTimeout;
    case EHOSTUNREACH:
    case EHOSTDOWN: return TunnelError::kHostUnreachable;
    case ENETUNREACH:
    case ENETDOWN: return TunnelError::kNetUnreachable;
    default: return TunnelError::kRefused;
  }
}

absl::string_view ErrorText(TunnelError error) { return Row(error).text; }

}  // namespace dpm::tunnel
