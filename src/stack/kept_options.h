// Socket options a dpm socket takes and reports back without the stack acting on them.
//
// Real programs set options that lwIP has no counterpart for, or that change nothing a program
// can observe through a dpm socket (SO_REUSEPORT, SO_LINGER, TCP_QUICKACK, TCP_DEFER_ACCEPT,
// IP_MTU_DISCOVER, ...). Refusing them with ENOPROTOOPT makes some programs give up (nginx
// closes a listener whose option failed), so the socket service keeps each value as set and
// getsockopt() answers it, the way the kernel answers an option it stores. Options that would
// change what recvmsg() returns (SO_TIMESTAMP, IP_PKTINFO, ...) are not among them: those stay
// ENOPROTOOPT, so a program knows it will not get the control messages.
#ifndef DPM_STACK_KEPT_OPTIONS_H_
#define DPM_STACK_KEPT_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dpm::stack {

/// The size in bytes of option (level, name)'s value if it is one that is kept, else 0.
size_t KeptOptionSize(int level, int name);

/// One socket's kept option values (a short list: programs set a handful).
class KeptOptions {
 public:
  /// Keeps `value` for (level, name), a kept option. Errors: EINVAL (value shorter than the
  /// option's size, as the kernel says for a short optlen). Extra bytes are ignored.
  int Set(int level, int name, const std::vector<uint8_t>& value);
  /// The value last set, or zeros of the option's size when none was.
  std::vector<uint8_t> Get(int level, int name) const;

 private:
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> values_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_KEPT_OPTIONS_H_
