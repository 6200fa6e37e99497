// Where a dpmd instance's API socket is: a file path, or an abstract UNIX socket name.
//
// An abstract name (written "@name", as `ss -x` shows it) lives in the network namespace of
// the socket that bound it, not in the file system (unix(7), "Abstract sockets"): a program
// reaches the dpmd of its own network namespace and never another namespace's stack, and
// dpmd instances in different namespaces can all use the default name. A file path is
// reachable from every namespace that shares the mount; its access is the file's mode.
#ifndef DPM_API_UNIX_ADDRESS_H_
#define DPM_API_UNIX_ADDRESS_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dpm::api {

/// The default API socket of `dpmd client` (and what libdpm programs reach when nothing else
/// is set): an abstract name, one per network namespace.
inline constexpr char kDefaultClientSocket[] = "@dpm/dpmd";
/// The default API socket of `dpmd gateway`.
inline constexpr char kDefaultGatewaySocket[] = "@dpm/gateway";
/// The default control sockets of the tunneling roles (docs/tunnel.md); the redirector's is
/// also where the preload hook's tunnel mode finds it.
inline constexpr char kDefaultTunnelServerSocket[] = "@dpm/tunnel-server";
inline constexpr char kDefaultServiceProxySocket[] = "@dpm/service-proxy";
inline constexpr char kDefaultRedirectorSocket[] = "@dpm/redirector";

/// A parsed API socket address, ready for bind() / connect().
struct UnixAddress {
  sockaddr_un addr{};
  socklen_t length = 0;  // bytes of `addr` to pass: an abstract name is not NUL-terminated
  bool abstract = false;
  std::string text;      // as given: "@name" or the path

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

/// "@name" → the abstract socket `name` (1..107 bytes); anything else → a file path (1..107
/// bytes). Errors: InvalidArgument naming the limit ("API socket path ... must be 1..107
/// bytes").
absl::StatusOr<UnixAddress> ParseUnixAddress(std::string_view text);

}  // namespace dpm::api

#endif  // DPM_API_UNIX_ADDRESS_H_
