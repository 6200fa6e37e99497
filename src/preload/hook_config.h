// What the preload hook does with a program's sockets, read once from the environment that
// dpm-run sets (docs/preload.md):
//   DPM_TUPLE        common (default) | static | dynamic — the address each socket gets
//                    (include/dpm/socket.h, enum dpm_tuple).
//   DPM_FIXED_PORTS  1: every socket's port is not replaceable (DPM_PORT_FIXED).
//   DPM_KERNEL_NETS  comma-separated IPv4 prefixes whose traffic stays with the kernel
//                    (default 127.0.0.0/8; empty: none).
//   DPM_SOCKET       the daemon's API socket (read by libdpm itself).
// Pure parsing here; the hook reads the variables.
#ifndef DPM_PRELOAD_HOOK_CONFIG_H_
#define DPM_PRELOAD_HOOK_CONFIG_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace dpm::preload {

/// An IPv4 prefix; address in host byte order, length 0..32 bits.
struct Ipv4Prefix {
  uint32_t address = 0;
  int length = 0;
  bool Contains(uint32_t address_host) const;
};

struct HookConfig {
  int tuple = 0;  // enum dpm_tuple
  bool fixed_ports = false;
  std::vector<Ipv4Prefix> kernel_nets;
  /// True when `address_host` is in one of kernel_nets.
  bool ForKernel(uint32_t address_host) const;
};

/// "a.b.c.d/len,..." (spaces around items allowed; a bare address is /32; empty: none).
/// Errors: InvalidArgument naming the item ("bad prefix '10.0.0.0/33'").
absl::StatusOr<std::vector<Ipv4Prefix>> ParsePrefixes(absl::string_view text);

/// From the variables' values (null: unset). Errors: InvalidArgument naming the variable
/// and the value ("DPM_TUPLE: 'sometimes' is not common, static or dynamic").
absl::StatusOr<HookConfig> ParseHookConfig(const char* tuple, const char* fixed_ports, const char* kernel_nets);

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_HOOK_CONFIG_H_
