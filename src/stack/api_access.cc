#include "stack/api_access.h"

#include <grp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dpm::stack {

bool PeerAllowed(const ApiAccessPolicy& policy, const PeerCredentials& peer, absl::Span<const gid_t> groups) {
  if (peer.uid == 0 || peer.uid == policy.owner) return true;
  if (!policy.group) return false;
  return peer.gid == *policy.group || std::find(groups.begin(), groups.end(), *policy.group) != groups.end();
}

absl::StatusOr<bool> CheckPeer(const ApiAccessPolicy& policy, int fd, PeerCredentials* peer) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::InternalError(absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  *peer = PeerCredentials{cred.pid, cred.uid, cred.gid};
  std::vector<gid_t> groups;
  if (policy.group && cred.uid != 0 && cred.uid != policy.owner && cred.gid != *policy.group) {
    // Only needed when the primary group does not decide it. SO_PEERGROUPS (Linux 4.13)
    // answers ERANGE with the size needed when the buffer is too small.
    groups.resize(64);
    bool read = false;
    for (int tries = 0; tries < 4 && !read; ++tries) {
      socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
        groups.resize(bytes / sizeof(gid_t));
        read = true;
      } else if (errno == ERANGE) {
        groups.resize(bytes / sizeof(gid_t) + 1);
      } else {
        return absl::InternalError(absl::StrCat("SO_PEERGROUPS: ", std::strerror(errno)));
      }
    }
    if (!read) return absl::InternalError("SO_PEERGROUPS: the group list kept growing");
  }
  return PeerAllowed(policy, *peer, groups);
}

absl::StatusOr<gid_t> ResolveGroup(const std::string& name) {
  uint32_t number = 0;
  if (absl::SimpleAtoi(name, &number)) return static_cast<gid_t>(number);
  std::vector<char> buf(16384);
  group g{};
  group* found = nullptr;
  if (::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return absl::NotFoundError(absl::StrCat("no group '", name, "' (give a name from /etc/group or a number)"));
  }
  return found->gr_gid;
}

}  // namespace dpm::stack
