#include "api/unix_address.h"

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpm::api {

absl::StatusOr<UnixAddress> ParseUnixAddress(std::string_view text) {
  UnixAddress out;
  out.text = std::string(text);
  out.addr.sun_family = AF_UNIX;
  constexpr size_t kRoom = sizeof(out.addr.sun_path);
  if (!text.empty() && text[0] == '@') {
    // unix(7): sun_path[0] = '\0', then the name; the length given to bind() says where it
    // ends, so it is not NUL-terminated.
    const std::string_view name = text.substr(1);
    if (name.empty() || name.size() > kRoom - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("abstract API socket name '", out.text, "' must be 1..", kRoom - 1, " bytes after the '@'"));
    }
    std::memcpy(out.addr.sun_path + 1, name.data(), name.size());
    out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    out.abstract = true;
    return out;
  }
  if (text.empty() || text.size() > kRoom - 1) {
    return absl::InvalidArgumentError(absl::StrCat("API socket path '", out.text, "' must be 1..", kRoom - 1, " bytes"));
  }
  std::memcpy(out.addr.sun_path, text.data(), text.size());
  out.length = static_cast<socklen_t>(sizeof(out.addr));
  return out;
}

}  // namespace dpm::api
