// Pseudo DNS names (the tunneling patent, Fig. 4 step 405): `<service>.<proxy>.<suffix>`, e.g.
// `web.alpha.dpm.internal`. A name is made from the service's and the proxy's own names, so it
// stays the same across reconnects and restarts of every role. No DNS server answers for it:
// only the preload hook resolves names under the suffix (docs/tunnel.md "Names").
#ifndef DPM_TUNNEL_NAMES_H_
#define DPM_TUNNEL_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace dpm::tunnel {

/// The default pseudo suffix.
inline constexpr absl::string_view kDefaultSuffix = "dpm.internal";

/// True for a service or proxy name: 1..63 bytes of [a-z0-9-], not starting or ending with '-'
/// (an RFC 1123 host label, lower case only).
bool ValidLabel(absl::string_view label);
/// True for a suffix: one or more ValidLabel labels joined by '.', at most 200 bytes, no
/// leading or trailing dot.
bool ValidSuffix(absl::string_view suffix);
/// "<service>.<proxy>.<suffix>". The parts must be valid (not checked here).
std::string PseudoName(absl::string_view service, absl::string_view proxy, absl::string_view suffix);

/// The two names a pseudo DNS name is made of.
struct NameParts {
  std::string service, proxy;
};
/// Splits `name` (any case; one trailing dot allowed) into service and proxy when it is
/// exactly `<service>.<proxy>.<suffix>` with valid labels; nullopt otherwise.
std::optional<NameParts> ParsePseudoName(absl::string_view name, absl::string_view suffix);
/// True when `name` (any case; one trailing dot allowed) ends in ".<suffix>" — a name the hook
/// resolves itself, valid or not.
bool UnderSuffix(absl::string_view name, absl::string_view suffix);
/// `name` in lower case without its trailing dot.
std::string CanonicalName(absl::string_view name);

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_NAMES_H_
