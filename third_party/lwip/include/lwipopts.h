/* lwIP configuration for dpm (see third_party/lwip/README.md).
 *
 * dpm runs one lwIP instance per dpmd process on a Boost.Asio io_context (NO_SYS=1, raw API
 * only). Options are chosen for throughput and scale on a Linux host, not for a
 * microcontroller: all memory comes from the C library heap, so the number of connections
 * is limited by configuration (dpmd --max-sockets) and not by static pools. */
#ifndef DPM_LWIPOPTS_H
#define DPM_LWIPOPTS_H

/* ---- system ---- */
#define NO_SYS                        1
#define LWIP_TIMERS                   1
#define SYS_LIGHTWEIGHT_PROT          0
#define LWIP_NETCONN                  0
#define LWIP_SOCKET                   0
#define LWIP_NETIF_API                0

/* Every pbuf, pcb and segment comes from malloc(): pools are sized by configuration at run
 * time instead of compile-time arrays. */
#define MEM_LIBC_MALLOC               1
#define MEMP_MEM_MALLOC               1
#define MEM_ALIGNMENT                 8
#define MEM_SIZE                      (16 * 1024 * 1024) /* unused with MEM_LIBC_MALLOC */
#define MEMP_NUM_TCP_PCB              65535
#define MEMP_NUM_TCP_PCB_LISTEN       4096
#define MEMP_NUM_UDP_PCB              65535
#define MEMP_NUM_TCP_SEG              65535
#define MEMP_NUM_PBUF                 65535
#define MEMP_NUM_REASSDATA            256
#define MEMP_NUM_FRAG_PBUF            1024
#define MEMP_NUM_SYS_TIMEOUT          (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 8)
#define PBUF_POOL_SIZE                4096
#define PBUF_POOL_BUFSIZE             2048
/* Room for the Ethernet header in front of every pbuf lwIP sends (TAP links; on TUN links
 * the room is unused: 16 bytes per pbuf). ETH_PAD_SIZE 2 puts the 14-byte header at offset 2,
 * so the IP header behind it stays 4-byte aligned as lwIP's header structs expect (without
 * it, every received IP header would sit at an address 2 mod 4: undefined behaviour that
 * UBSan reports). The link glue (src/stack/stack.cc) skips the pad on output and reserves
 * it on input. */
#define ETH_PAD_SIZE                  2
#define PBUF_LINK_HLEN                (14 + ETH_PAD_SIZE)

/* ---- IP ---- */
#define LWIP_IPV4                     1
#define LWIP_IPV6                     0
#define IP_FORWARD                    0
#define IP_REASSEMBLY                 1
#define IP_FRAG                       1
#define IP_REASS_MAX_PBUFS            64
#define IP_DEFAULT_TTL                64
/* Ethernet and ARP (RFC 826) for TAP links (src/tun/README.md "TAP"). TUN links are L3:
 * their netif has no NETIF_FLAG_ETHARP and sets `output` itself, so none of this runs there.
 * The ARP table holds the neighbours this instance talks to directly (the router, a DHCP
 * server, hosts on the LAN), not its own addresses: 256 entries cover a /24 LAN. lwIP scans
 * it linearly, but only when a pcb's cached entry (LWIP_NETIF_HWADDRHINT) misses, on ARP
 * input and once a second in etharp_tmr, so the size does not cost per packet. Packets for a
 * neighbour being resolved wait in a queue (ARP_QUEUEING) instead of being dropped. */
#define LWIP_ARP                      1
#define LWIP_ETHERNET                 1
#define ARP_TABLE_SIZE                256
#define ARP_QUEUEING                  1
#define ARP_QUEUE_LEN                 16
#define MEMP_NUM_ARP_QUEUE            1024
#define ETHARP_SUPPORT_STATIC_ENTRIES 0
#define ETHARP_SUPPORT_VLAN           0
#define LWIP_NETIF_HWADDRHINT         1
#define LWIP_ICMP                     1
#define LWIP_RAW                      0
#define LWIP_DHCP                     0
#define LWIP_AUTOIP                   0
#define LWIP_IGMP                     0
#define LWIP_DNS                      0
#define LWIP_SINGLE_NETIF             0
#define LWIP_NETIF_STATUS_CALLBACK    0
#define LWIP_NETIF_LINK_CALLBACK      0

/* ---- UDP ---- */
#define LWIP_UDP                      1
#define LWIP_UDPLITE                  0

/* ---- TCP, sized for speed ----
 * TCP_MSS is the largest MSS dpm will use (MTU 9000 - 40); lwIP lowers it to the link MTU
 * minus headers for each connection (TCP_CALCULATE_EFF_SEND_MSS), so the MSS follows the MTU. */
#define LWIP_TCP                      1
#define TCP_MSS                       8960
#define TCP_CALCULATE_EFF_SEND_MSS    1
#define LWIP_WND_SCALE                1
#define TCP_RCV_SCALE                 6                     /* windows up to 4 MiB */
#define TCP_WND                       (1024 * 1024)         /* bytes, per connection */
#define TCP_SND_BUF                   (1024 * 1024)         /* bytes, per connection */
#define TCP_SND_QUEUELEN              4096                  /* segments, >= 2*SND_BUF/1460 */
#define TCP_SNDLOWAT                  16384   /* lwIP checks it against u16_t - 4*MSS */
#define TCP_SNDQUEUELOWAT             (TCP_SND_QUEUELEN / 2)
#define TCP_QUEUE_OOSEQ               1
#define TCP_OOSEQ_MAX_BYTES           (TCP_WND)
#define TCP_OOSEQ_MAX_PBUFS           1024
#define LWIP_TCP_SACK_OUT             1
#define LWIP_TCP_MAX_SACK_NUM         4
#define TCP_LISTEN_BACKLOG            1
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1  /* RFC 6056: no predictable first port */
#define TCP_DEFAULT_LISTEN_BACKLOG    128
/* One extension argument per pcb: its "destroyed" callback tells the socket service when a
 * closed connection's pcb is finally freed, so a per-socket address lingers exactly as long
 * as the closing handshake (src/stack/socket_service.cc, LingerAddress). */
#define LWIP_TCP_PCB_NUM_EXT_ARGS     1
#define LWIP_TCP_TIMESTAMPS           0
#define TCP_OVERSIZE                  TCP_MSS
#define LWIP_TCP_KEEPALIVE            1
#define SO_REUSE                      1   /* SO_REUSEADDR: bind over TIME-WAIT */
/* patch 0003: a SYN beyond a TIME-WAIT connection's sequence space opens a new connection on its
   4-tuple (RFC 1122 4.2.2.13, RFC 6191), as Linux accepts it, instead of a RST or an ACK. */
#define LWIP_TCP_TIMEWAIT_SYN_REUSE   1
#define TCP_SYNMAXRTX                 6
#define TCP_MAXRTX                    12
#define LWIP_CALLBACK_API             1
#define LWIP_EVENT_API                0
#define TCP_WND_UPDATE_THRESHOLD      (TCP_WND / 8)

/* ---- checksums: computed and checked in software (TUN gives us full packets) ---- */
#define CHECKSUM_GEN_IP               1
#define CHECKSUM_GEN_UDP              1
#define CHECKSUM_GEN_TCP              1
#define CHECKSUM_GEN_ICMP             1
#define CHECKSUM_CHECK_IP             1
#define CHECKSUM_CHECK_UDP            1
#define CHECKSUM_CHECK_TCP            1
#define CHECKSUM_CHECK_ICMP           1
#define LWIP_CHKSUM_ALGORITHM         3
#define LWIP_CHECKSUM_ON_COPY         1

/* ---- statistics: dpmd reports lwIP's drop counters next to its own ---- */
#define LWIP_STATS                    1
#define LWIP_STATS_DISPLAY            0
#define LINK_STATS                    1
#define IP_STATS                      1
#define ICMP_STATS                    1
#define UDP_STATS                     1
#define TCP_STATS                     1
#define MEM_STATS                     0
#define MEMP_STATS                    0
#define SYS_STATS                     0

#define LWIP_NETIF_HOSTNAME           0
#define LWIP_NETIF_TX_SINGLE_PBUF     0
#define LWIP_PROVIDE_ERRNO            0
#define LWIP_ERRNO_STDINCLUDE         1

/* Core-lock assertion and hooks (RFC 6528 ISNs) live in our hook header. */
#define LWIP_HOOK_FILENAME            "dpm_lwip_hooks.h"
#define LWIP_TCPIP_CORE_LOCKING       0

#ifdef __cplusplus
extern "C" {
#endif
/** Aborts unless called on the thread that owns the lwIP core (docs/design.md §4.2). */
void dpm_lwip_assert_core_locked(void);
#ifdef __cplusplus
}
#endif
#define LWIP_ASSERT_CORE_LOCKED()     dpm_lwip_assert_core_locked()

#endif /* DPM_LWIPOPTS_H */
