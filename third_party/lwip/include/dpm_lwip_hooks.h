/* lwIP hooks used by dpm (included by lwIP through LWIP_HOOK_FILENAME). The functions are
 * implemented in src/stack/lwip_port.cc as extern "C" shims. */
#ifndef DPM_LWIP_HOOKS_H
#define DPM_LWIP_HOOKS_H

#include "lwip/arch.h"
#include "lwip/ip_addr.h"

#ifdef __cplusplus
extern "C" {
#endif

struct netif;

/** Initial sequence number for a new TCP connection, RFC 6528 §3: a 4-microsecond clock plus
 * a keyed hash of the connection 4-tuple. Ports are in host byte order. */
u32_t dpm_lwip_tcp_isn(const ip_addr_t *local_ip, u16_t local_port,
                       const ip_addr_t *remote_ip, u16_t remote_port);

/** Whether a unicast packet for `dest` is for this stack although `dest` is not the netif's
 * address: an address one of its sockets holds (docs/design.md §7). Added to ip4_input_accept() by
 * third_party/lwip/patches/0001-ip4-input-accept-hook.patch. Constant time. */
int dpm_lwip_accept_address(const struct netif *netif, const ip4_addr_t *dest);

#ifdef __cplusplus
}
#endif

/* Whether an ARP request for `target` on `netif` is answered although `target` is not the
 * netif's address: exactly the addresses dpm_lwip_accept_address() accepts (docs/design.md §7), so a
 * per-socket address on a TAP link is reachable from its neighbours. The reply's sender
 * protocol address is `target`. Added to etharp_input() by
 * third_party/lwip/patches/0002-etharp-answer-for-accepted-addresses.patch. */
#define LWIP_HOOK_ETHARP_FOR_US(netif, target) dpm_lwip_accept_address(netif, target)

#define LWIP_HOOK_IP4_INPUT_ACCEPT(netif, dest) dpm_lwip_accept_address(netif, dest)

#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) \
  dpm_lwip_tcp_isn(local_ip, local_port, remote_ip, remote_port)

#endif /* DPM_LWIP_HOOKS_H */
