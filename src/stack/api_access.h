// Who may use a dpmd instance's API socket. An abstract UNIX socket has no file mode, so the
// daemon checks each connecting program's credentials (SO_PEERCRED, SO_PEERGROUPS; unix(7))
// itself, and applies the same rule to a file-path socket, whose mode it also sets.
//
// The rule: the daemon's own user, root, and — when an API group is configured — any process
// whose primary or supplementary groups include it. Everybody else is refused: each of their
// requests is answered EACCES (the kernel's errno for a socket whose file mode forbids it).
#ifndef DPM_STACK_API_ACCESS_H_
#define DPM_STACK_API_ACCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dpm::stack {

/// A connecting program's credentials as the kernel reports them.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;  // primary group
};

struct ApiAccessPolicy {
  uid_t owner = 0;                // the daemon's effective user
  std::optional<gid_t> group;     // --api-group; none: owner and root only
};

/// True when `peer` (with supplementary `groups`) may use the API under `policy`.
bool PeerAllowed(const ApiAccessPolicy& policy, const PeerCredentials& peer, absl::Span<const gid_t> groups);

/// Reads the credentials and supplementary groups of the peer of the connected UNIX socket
/// `fd` and applies PeerAllowed. Errors: Internal with the errno text if the kernel does not
/// report them (then the caller refuses the peer).
absl::StatusOr<bool> CheckPeer(const ApiAccessPolicy& policy, int fd, PeerCredentials* peer);

/// "dpm" or "1234" → the group's id. Errors: NotFound naming the group.
absl::StatusOr<gid_t> ResolveGroup(const std::string& name);

}  // namespace dpm::stack

#endif  // DPM_STACK_API_ACCESS_H_
