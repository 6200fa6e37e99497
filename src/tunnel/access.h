// Who may use a tunnel server (docs/tunnel.md "Security"): the access file, JSON:
//   {
//     "proxies": { "alpha": { "token": "…", "max_services": 64, "max_streams": 4096 } },
//     "redirectors": { "bob": { "token": "…", "services": ["web.alpha", "*.alpha"],
//                               "max_streams": 4096 } },
//     "max_streams_per_service": 4096
//   }
// A proxy authenticates with its own token (a per-proxy token); a redirector with an access
// token that names the services it may use: "<service>.<proxy>", "*.<proxy>" or "*". Tokens are
// kept only as SHA-256 digests and compared in constant time (CRYPTO_memcmp of digests, so
// neither the content nor the length of a token leaks through timing); they are never logged.
#ifndef DPM_TUNNEL_ACCESS_H_
#define DPM_TUNNEL_ACCESS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dpm::tunnel {

/// SHA-256 of a token.
using TokenDigest = std::array<uint8_t, 32>;
TokenDigest DigestToken(absl::string_view token);
/// Constant-time: true when SHA-256(`presented`) equals `digest`.
bool TokenMatches(const TokenDigest& digest, absl::string_view presented);

inline constexpr size_t kDefaultMaxServices = 64;
inline constexpr size_t kDefaultMaxStreams = 4096;

struct ProxyAccess {
  std::string name;  // a names.h label
  TokenDigest token{};
  size_t max_services = kDefaultMaxServices;
  size_t max_streams = kDefaultMaxStreams;  // open tunneled streams through this proxy
};

struct RedirectorAccess {
  std::string name;
  TokenDigest token{};
  std::vector<std::string> services;  // patterns: "web.alpha", "*.alpha", "*"
  size_t max_streams = kDefaultMaxStreams;  // open tunneled streams from this redirector
  /// True when a pattern allows service `service` of proxy `proxy`.
  bool Permits(absl::string_view service, absl::string_view proxy) const;
};

struct AccessConfig {
  std::vector<ProxyAccess> proxies;
  std::vector<RedirectorAccess> redirectors;
  size_t max_streams_per_service = kDefaultMaxStreams;
  const ProxyAccess* FindProxy(absl::string_view name) const;
  const RedirectorAccess* FindRedirector(absl::string_view name) const;
};

/// Parses the access file. Errors: InvalidArgument naming the place ("proxies.alpha: token
/// missing", "redirectors.bob.services[1]: bad pattern 'x..y'", "not JSON: …"); a token shorter
/// than 16 bytes is refused ("proxies.alpha: token shorter than 16 bytes").
absl::StatusOr<AccessConfig> ParseAccessConfig(absl::string_view json_text);

/// Checks a HELLO's name and token against `config`: the proxy (role proxy) or redirector entry
/// it names, or nullopt for an unknown name or a wrong token. The time taken does not depend on
/// which of the two it was (an unknown name is compared against a dummy digest).
std::optional<size_t> AuthenticateProxy(const AccessConfig& config, absl::string_view name, absl::string_view token);
std::optional<size_t> AuthenticateRedirector(const AccessConfig& config, absl::string_view name,
                                             absl::string_view token);

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_ACCESS_H_
