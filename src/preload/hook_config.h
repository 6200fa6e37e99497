// What the preload hook does with a program's sockets, read once from the environment that
// dpm-run sets (docs/preload.md):
//   DPM_TUPLE        common (default) | static | dynamic — the address each socket gets
//                    (include/dpm/socket.h, enum dpm_tuple).
//   DPM_FIXED_PORTS  1: every socket's port is not replaceable (DPM_PORT_FIXED).
//   DPM_KERNEL_NETS  comma-separated IPv4 prefixes whose traffic stays with the kernel
//                    (default 127.0.0.0/8; empty: none).
//   DPM_SOCKET       the daemon's API socket (read by libdpm itself; in tunnel mode the
//                    default is the redirector's, kDefaultRedirectorSocket).
//   DPM_TUNNEL       1: tunnel mode (docs/preload.md "Tunnel mode"): sockets are the kernel's,
//                    and only pseudo names and connects to pseudo addresses go to the daemon
//                    (a `dpmd redirector`); the three variables above then do nothing.
//   DPM_TUNNEL_SUFFIX  the pseudo names' suffix (default dpm.internal).
//   DPM_TUNNEL_NET   the pseudo addresses' IPv4 prefix (default 100.64.0.0/10).
// Pure parsing here; the hook reads the variables.
#ifndef DPM_PRELOAD_HOOK_CONFIG_H_
#define DPM_PRELOAD_HOOK_CONFIG_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "api/unix_address.h"

namespace dpm::preload {

/// An IPv4 prefix; address in host byte order, length 0..32 bits.
struct Ipv4Prefix {
  uint32_t address = 0;
  int length = 0;
  bool Contains(uint32_t address_host) const;
  /// The prefix's netmask, host byte order (0 for length 0).
  uint32_t Mask() const { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
};

/// The API socket a `dpmd redirector` listens on by default: the daemon of tunnel mode when
/// DPM_SOCKET is unset.
using api::kDefaultRedirectorSocket;  // the redirector's default control socket

/// Tunnel mode (the tunneling patent, Figs. 5 and 6): which names and addresses are the
/// redirector's.
struct TunnelConfig {
  bool enabled = false;
  /// Lower case, no leading or trailing dot (ValidTunnelSuffix).
  std::string suffix = "dpm.internal";
  Ipv4Prefix net{0x64400000, 10};  // 100.64.0.0/10
  /// True when `name` (any case, one trailing dot allowed) ends in ".<suffix>" — a name the
  /// hook asks the redirector about, whether or not it resolves.
  bool UnderSuffix(absl::string_view name) const;
};

struct HookConfig {
  int tuple = 0;  // enum dpm_tuple
  bool fixed_ports = false;
  std::vector<Ipv4Prefix> kernel_nets;
  TunnelConfig tunnel;
  /// DPM_AID: every socket's application ID for virtual port multiplexing (docs/vpm.md;
  /// empty: none, the daemon's configurator decides).
  std::string aid;
  /// True when `address_host` is in one of kernel_nets.
  bool ForKernel(uint32_t address_host) const;
};

/// True for a pseudo name suffix: labels of 1..63 bytes of [a-z0-9-], not starting or ending
/// with '-', joined by single dots; at most 200 bytes (room for `<service>.<proxy>.` in a
/// 253-byte name). The same rule as the redirector's (tunnel/names.h ValidSuffix).
bool ValidTunnelSuffix(absl::string_view suffix);
/// `name` in lower case without its one trailing dot (the form sent in RESOLVE).
std::string CanonicalHostName(absl::string_view name);

/// "a.b.c.d/len,..." (spaces around items allowed; a bare address is /32; empty: none).
/// Errors: InvalidArgument naming the item ("bad prefix '10.0.0.0/33'").
absl::StatusOr<std::vector<Ipv4Prefix>> ParsePrefixes(absl::string_view text);

/// From the variables' values (null: unset). Errors: InvalidArgument naming the variable
/// and the value ("DPM_TUPLE: 'sometimes' is not common, static or dynamic"). The tunnel
/// variables are checked whether or not DPM_TUNNEL turns the mode on.
absl::StatusOr<HookConfig> ParseHookConfig(const char* tuple, const char* fixed_ports, const char* kernel_nets,
                                           const char* tunnel = nullptr, const char* tunnel_suffix = nullptr,
                                           const char* tunnel_net = nullptr, const char* aid = nullptr);
/// DPM_TUNNEL, DPM_TUNNEL_SUFFIX, DPM_TUNNEL_NET alone (null: unset), with the same errors
/// ("DPM_TUNNEL_SUFFIX: 'a..b' is not a DNS suffix (labels of a-z, 0-9, '-' joined by dots)",
/// "DPM_TUNNEL_NET: '100.64.0.0/40' is not one IPv4 prefix A.B.C.D/LEN").
absl::StatusOr<TunnelConfig> ParseTunnelConfig(const char* tunnel, const char* tunnel_suffix, const char* tunnel_net);

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_HOOK_CONFIG_H_
