// What the two halves of the preload hook (socket_hooks.cc, data_hooks.cc) share.
#ifndef DPM_PRELOAD_HOOK_STATE_H_
#define DPM_PRELOAD_HOOK_STATE_H_

#include <sys/socket.h>

#include "preload/hook_config.h"

namespace dpm::preload {

/// The hook's configuration from the environment (hook_config.h), read at the first call;
/// null when a variable is malformed (said once on stderr; IPv4 sockets are then refused).
const HookConfig* Config();
/// True when `addr` is an IPv4 address the kernel keeps (DPM_KERNEL_NETS); for a connect or
/// send (`bind` false) 0.0.0.0 counts as 127.0.0.1, as Linux takes it.
bool ForKernel(const sockaddr* addr, socklen_t len, bool bind);
/// The first bind/connect/listen/sendto of a fresh socket decides where it lives (`bind`: the
/// call is a bind or listen): returns 1
/// when `addr` made it the kernel's (handover.h; the caller then calls the C library), 0 when
/// it stays a dpm socket (or was not fresh), -1 with errno when the hand-over failed.
int SettleFresh(int fd, const sockaddr* addr, socklen_t len, bool bind);

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_HOOK_STATE_H_
