/* dpm/socket.h — the modified socket API of dpm (libdpm).
 *
 * Every call talks to a running `dpmd` over a UNIX socket (path from dpm_set_daemon_path(),
 * else the DPM_SOCKET environment variable, else DPM_DEFAULT_DAEMON_PATH). Sockets are
 * ordinary file descriptors: a TCP socket is one end of a UNIX stream socket pair whose other
 * end the daemon joins to an lwIP connection, so read(), write(), poll() and epoll work on it
 * as on a kernel socket. A UDP socket is one end of a UNIX seqpacket pair; use dpm_sendto() /
 * dpm_recvfrom() (or dpm_send() / dpm_recv() once connected) on it, because each datagram
 * travels with its address (see docs/api.md for the framing).
 *
 * Errors: every call returns -1 and sets errno to the value the Linux kernel would give for
 * the same mistake (EBADF, EINVAL, EAFNOSUPPORT, EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED,
 * ETIMEDOUT, ENOTCONN, EISCONN, EOPNOTSUPP, ENOPROTOOPT, ...). ECONNREFUSED / ENOENT from the
 * daemon's own socket (daemon not running) are reported as ENETDOWN; a socket file this user
 * may not open (or a daemon that refuses this user's credentials) gives EACCES.
 *
 * Threads: every function is reentrant and may be called from any thread; each thread has
 * its own control connection to the daemon, so a blocking dpm_connect() in one thread never
 * holds up another. Many programs may use one daemon at once.
 *
 * Byte order: addresses and ports are in network byte order inside struct sockaddr, as with
 * the kernel API.
 *
 * Source: the per-socket-address patent (its modified socket, bind, connect, getsockname and
 * close functions; docs/design.md §7), and docs/design.md §4.4 (the modified socket API
 * returns ordinary file descriptors).
 */
#ifndef DPM_SOCKET_H
#define DPM_SOCKET_H

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where the daemon listens when neither dpm_set_daemon_path() nor DPM_SOCKET says: the
 * abstract UNIX socket name "dpm/dpmd" ("@" marks an abstract name; unix(7)). Abstract names
 * belong to a network namespace, so a program reaches the `dpmd client` of its own network
 * namespace. Any other value is a file path. */
#define DPM_DEFAULT_DAEMON_PATH "@dpm/dpmd"

/** The `tuple` argument of dpm_socket() (the patent's modified socket function: which network
 * address the socket gets; docs/api.md "Addresses per socket").
 * DPM_TUPLE_STATIC: an address of the socket's own from the instance's static pool
 * (`dpmd client --address-pool`), taken at dpm_socket() or at the first bind/connect/listen/
 * send (`--address-at`), released by the last close with the port (an accepted connection
 * shares its listener's); EADDRNOTAVAIL when the pool is exhausted or there is none, never a
 * shared address. DPM_TUPLE_DYNAMIC: an address of its own leased from the link's DHCP
 * server (`dpmd client --link tap --dhcp`; RFC 2131), obtained where a static one is taken
 * (dpm_socket(), or the first bind/connect/listen with --address-at bind), which waits for it
 * and fails with ETIMEDOUT when no server answers within `--dhcp-timeout` (16 s by default),
 * or EADDRNOTAVAIL when the instance has no --dhcp; renewed while the socket
 * lives, released (DHCPRELEASE) by the last close. A lease that ends under the socket
 * (expired, or refused by a DHCPNAK) closes it: the program reads end-of-file and finds
 * ETIMEDOUT or EADDRNOTAVAIL in SO_ERROR (the patent: a lease's end closes its
 * socket). An unknown tuple is EINVAL. */
enum dpm_tuple {
  DPM_TUPLE_COMMON = 0,  /**< the instance's common address (default) */
  DPM_TUPLE_STATIC = 1,  /**< a new address of its own from the static pool */
  DPM_TUPLE_DYNAMIC = 2, /**< a new address of its own, leased by DHCP */
};

/** The per-socket-address patent's second form of the modified socket function (a new
 * address family value that asks for a new IP address for the socket):
 * dpm_socket(AF_INET_TUPLE, type, protocol, 0) is an IPv4 socket with a new address of its
 * own — from the static pool when the instance has one, else a DHCP lease. A tuple of
 * DPM_TUPLE_STATIC or DPM_TUPLE_DYNAMIC picks the source explicitly. Only dpm_socket() takes
 * it: sockets' addresses are AF_INET (getsockname, bind, connect). Not a kernel address
 * family (Linux uses values below 64). */
#define AF_INET_TUPLE 0x4454

/** Socket option level of dpm's own options (dpm_setsockopt / dpm_getsockopt). */
#define DPM_SOL 0x4450
/** DPM_SOL option (int, 0 or 1): the socket's port is not replaceable — the DPM server must
 * keep it as the registered port (the DPM patent, claims 1-4). A port bound explicitly with
 * dpm_bind() is not replaceable anyway; an ephemeral one is, unless this is set. */
#define DPM_PORT_FIXED 1
/** DPM_SOL option (int, 0..63, or -1 to clear): the DSCP (RFC 2474 §3) of the socket's own
 * address — every IPv4 packet from that address leaves with it in the upper six bits of the
 * TOS byte, ECN bits kept (the patent's aim: a quality of service per call). It belongs
 * to the address, so a listener's accepted connections share it, and it overrides IP_TOS's
 * DSCP bits. Set before a deferred address is taken, it applies when the address is.
 * dpm_getsockopt gives the current value (-1: none). Errors: EINVAL (value outside -1..63,
 * length not sizeof(int), or a DPM_TUPLE_COMMON socket, whose address others share). */
#define DPM_ADDRESS_DSCP 2
/** DPM_SOL option (bytes: 1-32 of letters, digits, '.', '_', '-'; a trailing NUL allowed;
 * empty clears): the socket's application ID (AID) for virtual port multiplexing
 * (docs/vpm.md, the virtual port multiplexing patent). A socket that then binds a virtual
 * port of the instance joins the virtual stream of that AID there — sockets of one AID share
 * its connections; another AID gets a stream of its own — whatever the configurator's socket
 * rules say. dpm_getsockopt gives it back. Errors: EINVAL (not an AID). */
#define DPM_AID 3

/** Sets the daemon's API socket for calls made after this one, in every thread: a file path,
 * or "@name" for an abstract name (copied; NULL resets to DPM_SOCKET or the default). Calls
 * already in flight finish against the daemon they started with. */
void dpm_set_daemon_path(const char *path);

/** Copies the API socket calls use now (set, DPM_SOCKET, or the default; "@name" for an
 * abstract name) into `buf`, NUL-terminated and cut to `size` bytes. Returns its full length
 * in bytes, without the NUL, like snprintf — so error messages can name the socket tried. */
size_t dpm_daemon_path(char *buf, size_t size);

/** Creates a socket in the dpm stack. domain: AF_INET, or AF_INET_TUPLE; type: SOCK_STREAM or SOCK_DGRAM,
 * optionally or-ed with SOCK_NONBLOCK and SOCK_CLOEXEC; protocol: 0 or the matching
 * IPPROTO_TCP / IPPROTO_UDP; tuple: see enum dpm_tuple. Returns a file descriptor.
 * Errors: EAFNOSUPPORT (domain), EINVAL (type, unknown tuple), EADDRNOTAVAIL (a new address
 * asked for: pool exhausted, no pool or no --dhcp), ETIMEDOUT (no DHCP lease in time),
 * EPROTONOSUPPORT (protocol),
 * EMFILE/ENFILE (descriptors), ENOBUFS (daemon's --max-sockets reached), ENETDOWN (no
 * daemon). */
int dpm_socket(int domain, int type, int protocol, int tuple);

/** Binds to a local address of the stack (INADDR_ANY or the instance's address; for a socket
 * with an address of its own, INADDR_ANY or that address, which bind takes if it was
 * deferred — the patent's modified bind function) and port (0 = ephemeral). Errors: EBADF,
 * ENOTSOCK (not a dpm socket), EINVAL (already bound, bad length), EAFNOSUPPORT,
 * EADDRNOTAVAIL (not an address of this socket / stack; pool exhausted), EADDRINUSE. */
int dpm_bind(int fd, const struct sockaddr *addr, socklen_t addrlen);

/** Marks a TCP socket as listening; backlog <= 0 takes the default (128).
 * Errors: EBADF, ENOTSOCK, EOPNOTSUPP (UDP), EINVAL (connected), EADDRINUSE. */
int dpm_listen(int fd, int backlog);

/** Takes the next established connection from a listening socket; blocks unless the
 * listening descriptor is non-blocking (then EAGAIN). The peer address is written to
 * addr/addrlen when they are not NULL. Returns the new connection's descriptor.
 * Errors: EBADF, ENOTSOCK, EINVAL (not listening), EAGAIN, EINTR (a signal whose handler does
 * not restart calls), EMFILE. */
int dpm_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);

/** Connects a TCP socket (blocks until established or failed) or sets the default peer of a
 * UDP socket. On a non-blocking TCP descriptor (O_NONBLOCK) it returns -1 with EINPROGRESS at
 * once, as connect(2) does: the descriptor turns writable for poll/select/epoll when the
 * connection is established or has failed, and SO_ERROR (dpm_getsockopt) then gives 0 or the
 * error; a second call meanwhile gives EALREADY, after success EISCONN. Errors: EBADF, ENOTSOCK, EAFNOSUPPORT, EINVAL, EISCONN, ECONNREFUSED (RST),
 * ETIMEDOUT (no answer after lwIP's SYN retries), ENETUNREACH (no route), EADDRNOTAVAIL. */
int dpm_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/** The socket's own address and port as the stack sees it. Errors: EBADF, ENOTSOCK, EINVAL. */
int dpm_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen);

/** The connected peer's address and port. Errors: EBADF, ENOTSOCK, ENOTCONN, EINVAL. */
int dpm_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen);

/** Shuts down reading (SHUT_RD), writing (SHUT_WR: the peer gets a FIN after the data already
 * written) or both. Errors: EBADF, ENOTSOCK, EINVAL (how), ENOTCONN. */
int dpm_shutdown(int fd, int how);

/** Closes the descriptor. When the last descriptor of the socket is closed the daemon closes
 * the connection (FIN, or RST if received data was left unread) and frees the port, exactly
 * as a process exit does. Errors: EBADF. */
int dpm_close(int fd);

/** Socket options carried to the stack: SOL_SOCKET SO_REUSEADDR, SO_KEEPALIVE;
 * IPPROTO_TCP TCP_NODELAY; IPPROTO_IP IP_TOS; DPM_SOL DPM_PORT_FIXED, DPM_ADDRESS_DSCP. SO_SNDBUF / SO_RCVBUF act on the local
 * descriptor. Errors: EBADF, ENOTSOCK, EINVAL (length), ENOPROTOOPT (unknown option). */
int dpm_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);

/** SOL_SOCKET SO_ERROR (the last asynchronous error, e.g. ECONNRESET, then cleared),
 * SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN; IPPROTO_TCP TCP_MAXSEG, TCP_INFO (struct
 * tcp_info from lwIP's view: state, MSS, RTO, RTT, cwnd, ssthresh; fields lwIP lacks are 0),
 * TCP_CONGESTION ("reno"); and the options of dpm_setsockopt(). At most *optlen bytes are
 * written and *optlen is set to the value's size. Errors as dpm_setsockopt(), and EOPNOTSUPP
 * (a level the socket's protocol does not have), EINVAL (negative *optlen). */
int dpm_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);

/** Virtual port multiplexing's application configurator as a library call (docs/vpm.md "The
 * library call"): `json` (`length` bytes, at most 65472) is the text of a configurator file
 * (virtual ports, their defaults, applications with their programs, users and source rules,
 * the cooperative object). It replaces the instance's rules as a SIGHUP reload of the file
 * does (new flows follow them, open ones keep their AID), and turns virtual port multiplexing
 * on in an instance started without --vpm-config. Only root and the daemon's own user may.
 * Returns 0, or -1 with errno: EPERM (another user), EINVAL (the text: when `why` is not
 * NULL, up to `why_size` bytes of the reason, NUL-terminated, e.g. "applications[0]: port
 * udp/53 is not in ports"), EMSGSIZE (longer than 65472 bytes), EADDRINUSE (the rules are in
 * force but cooperative mode's UDP port is taken), ENETDOWN (no daemon). */
int dpm_vpm_configure(const char *json, size_t length, char *why, size_t why_size);

/** Sends one datagram (UDP) to dest, or to the connected peer when dest is NULL; for TCP it
 * is send(2) and dest must be NULL. Returns bytes taken. A UDP datagram is at most 65507
 * bytes (EMSGSIZE). Errors: EBADF, ENOTSOCK, EDESTADDRREQ, EMSGSIZE, EAGAIN, EPIPE. */
ssize_t dpm_sendto(int fd, const void *buf, size_t len, int flags,
                   const struct sockaddr *dest, socklen_t destlen);

/** Receives one datagram (UDP; src gets its sender) or bytes (TCP). A datagram longer than
 * len is truncated (the rest is lost, as with recvfrom(2)). Returns bytes, 0 at TCP EOF.
 * Errors: EBADF, ENOTSOCK, EAGAIN, ECONNRESET. */
ssize_t dpm_recvfrom(int fd, void *buf, size_t len, int flags,
                     struct sockaddr *src, socklen_t *srclen);

/** dpm_sendto() to the connected peer. */
ssize_t dpm_send(int fd, const void *buf, size_t len, int flags);

/** dpm_recvfrom() without the sender. */
ssize_t dpm_recv(int fd, void *buf, size_t len, int flags);

#ifdef __cplusplus
}
#endif

#endif /* DPM_SOCKET_H */
