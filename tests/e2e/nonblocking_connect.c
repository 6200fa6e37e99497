/* nonblocking_connect — the non-blocking connect() that event loops (nginx upstreams, curl,
 * Python asyncio) are built on, checked against whichever stack the calls reach: the kernel
 * (run directly: the control), the dpm instance through the preload hook (run under dpm-run),
 * or libdpm's own calls (the e2e_nonblocking_connect_libdpm build with --libdpm). Plain libc
 * otherwise, so the preload sees an unmodified program. Run by tests/e2e/preload_nonblocking.sh.
 *
 * usage: nonblocking_connect [--libdpm] [--gate] MECHANISM OUTCOME ADDRESS PORT
 *   MECHANISM  poll | select | epoll-lt | epoll-et  (how readiness is waited for; epoll
 *              registers the socket before connect(), as nginx does)
 *   OUTCOME    ok          a listening TCP echo server: writable, SO_ERROR 0, EISCONN, an echo
 *              refused     a closed port: writable, SO_ERROR ECONNREFUSED (then cleared)
 *              timeout     a port whose SYNs the caller drops: writable once the stack gives
 *                          up, SO_ERROR ETIMEDOUT (then cleared); waits up to 120 s
 *              unreachable no route: ENETUNREACH, from connect() itself as the kernel gives it
 *                          or through SO_ERROR after EINPROGRESS
 *   --gate     ok/refused: the handshake is held by the caller while the in-progress state is
 *              checked. The program prints "gate close" and waits for a line on stdin before
 *              connect(), then "gate open" and waits again before waiting for completion; the
 *              caller drops the server's answers in between, so "not yet writable" is
 *              deterministic, not a race against a fast handshake.
 *
 * Prints "PASS: ..." / "FAIL: ..." per check; exits 0 when every check passed, 1 otherwise,
 * 2 on bad usage or a setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef NBC_LIBDPM
#include "dpm/socket.h"
#endif

enum mechanism { MECH_POLL, MECH_SELECT, MECH_EPOLL_LT, MECH_EPOLL_ET };
enum outcome { OUT_OK, OUT_REFUSED, OUT_TIMEOUT, OUT_UNREACHABLE };

/* The socket calls under test: libc's (kernel or preload) or libdpm's. */
struct api {
  int (*socket)(int domain, int type, int protocol);
  int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
  int (*getsockopt)(int fd, int level, int name, void *value, socklen_t *len);
  int (*getpeername)(int fd, struct sockaddr *addr, socklen_t *len);
  int (*close)(int fd);
};

static int libc_socket(int domain, int type, int protocol) { return socket(domain, type, protocol); }
static const struct api kLibc = {libc_socket, connect, getsockopt, getpeername, close};

#ifdef NBC_LIBDPM
static int dpm_socket_common(int domain, int type, int protocol) {
  return dpm_socket(domain, type, protocol, DPM_TUPLE_COMMON);
}
static const struct api kLibdpm = {dpm_socket_common, dpm_connect, dpm_getsockopt, dpm_getpeername, dpm_close};
#endif

static int failures;
static int gated;

static void check(int ok, const char *what, const char *detail) {
  printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? " — " : "", detail);
  fflush(stdout);
  if (!ok) failures++;
}

static const char *errname(int e) {
  const char *n = strerrorname_np(e);
  return n != NULL ? n : "E?";
}

/* Checks that `call` (already made) returned -1 with errno `want`. */
static void check_errno(long rc, int err, int want, const char *what) {
  char detail[96];
  snprintf(detail, sizeof detail, "returned %ld, errno %s", rc, rc == -1 ? errname(err) : "-");
  check(rc == -1 && err == want, what, detail);
}

/* Asks the caller to close or open the gate and waits for its "ok". */
static void gate(const char *state) {
  if (!gated) return;
  printf("gate %s\n", state);
  fflush(stdout);
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "ok", 2) != 0) {
    fprintf(stderr, "nonblocking_connect: no answer to \"gate %s\"\n", state);
    exit(2);
  }
}

static void events_text(unsigned ev, char *buf, size_t size) {
  snprintf(buf, size, "events:%s%s%s%s%s%s", ev == 0 ? " none" : "", (ev & POLLIN) ? " IN" : "",
           (ev & POLLOUT) ? " OUT" : "", (ev & POLLERR) ? " ERR" : "", (ev & POLLHUP) ? " HUP" : "",
           (ev & POLLRDHUP) ? " RDHUP" : "");
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* Waits up to timeout_ms for `want` (POLLIN or POLLOUT) on fd with the given mechanism.
 * Returns 1 when it was reported, 0 when not within the time; *seen gets the last events
 * reported (poll(2) bits; select reports POLLIN/POLLOUT only). epfd: the epoll instance the
 * socket was registered with (epoll mechanisms). */
static int wait_for(enum mechanism m, int fd, int epfd, unsigned want, int timeout_ms, unsigned *seen) {
  long deadline = now_ms() + timeout_ms;
  *seen = 0;
  for (;;) {
    long left = deadline - now_ms();
    if (left < 0) left = 0;
    int n = 0;
    if (m == MECH_POLL) {
      struct pollfd p = {fd, (short)(want == POLLIN ? POLLIN | POLLRDHUP : POLLOUT), 0};
      n = poll(&p, 1, (int)left);
      if (n > 0) *seen = (unsigned)p.revents;
    } else if (m == MECH_SELECT) {
      fd_set r, w;
      FD_ZERO(&r);
      FD_ZERO(&w);
      if (want == POLLIN) FD_SET(fd, &r); else FD_SET(fd, &w);
      struct timeval tv = {left / 1000, (left % 1000) * 1000};
      n = select(fd + 1, &r, &w, NULL, &tv);
      if (n > 0) *seen = (FD_ISSET(fd, &r) ? POLLIN : 0) | (FD_ISSET(fd, &w) ? POLLOUT : 0);
    } else {
      struct epoll_event ev;
      n = epoll_wait(epfd, &ev, 1, (int)left);
      if (n > 0) {
        if (ev.data.fd != fd) return 0;
        *seen = ev.events;  /* EPOLLIN == POLLIN etc. */
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    if (*seen & want) return 1;
    if (left == 0) return 0;
    /* Something else was reported (epoll-et: another edge); wait for the rest of the time. */
    if (m != MECH_EPOLL_ET) {
      struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
    }
  }
}

static int so_error(const struct api *a, int fd, int *value) {
  socklen_t len = sizeof *value;
  *value = -1;
  return a->getsockopt(fd, SOL_SOCKET, SO_ERROR, value, &len);
}

static const char *kMechNames[] = {"poll", "select", "epoll-lt", "epoll-et"};

static int run(const struct api *a, enum mechanism m, enum outcome o, const struct sockaddr_in *to) {
  char what[160], detail[160];
  const char *mn = kMechNames[m];
  if (o == OUT_OK || o == OUT_REFUSED) gate("close");

  /* poll: the flag at socket(); the others: O_NONBLOCK set afterwards with fcntl. */
  int fd = a->socket(AF_INET, SOCK_STREAM | (m == MECH_POLL ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    snprintf(detail, sizeof detail, "errno %s", errname(errno));
    check(0, "socket(AF_INET, SOCK_STREAM)", detail);
    return 2;
  }
  if (m != MECH_POLL && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    perror("fcntl");
    return 2;
  }
  int epfd = -1;
  if (m == MECH_EPOLL_LT || m == MECH_EPOLL_ET) {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | (m == MECH_EPOLL_ET ? EPOLLET : 0),
                             .data = {.fd = fd}};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      snprintf(detail, sizeof detail, "errno %s", errname(errno));
      check(0, "epoll_ctl(ADD) before connect", detail);
      return 2;
    }
  }

  errno = 0;
  int rc = a->connect(fd, (const struct sockaddr *)to, sizeof *to);
  int err = errno;
  unsigned seen = 0;

  if (o == OUT_UNREACHABLE) {
    if (rc == -1 && err == ENETUNREACH) {
      check(1, "connect() with no route fails with ENETUNREACH", "at once, as the kernel does");
    } else {
      check_errno(rc, err, EINPROGRESS, "connect() with no route: ENETUNREACH at once or EINPROGRESS");
      if (rc == -1 && err == EINPROGRESS) {
        snprintf(what, sizeof what, "%s reports the failed connect writable", mn);
        int w = wait_for(m, fd, epfd, POLLOUT, 30000, &seen);
        events_text(seen, detail, sizeof detail);
        check(w, what, detail);
        int v;
        int g = so_error(a, fd, &v);
        snprintf(detail, sizeof detail, "getsockopt returned %d, value %s", g, errname(v));
        check(g == 0 && v == ENETUNREACH, "SO_ERROR gives ENETUNREACH", detail);
      }
    }
    a->close(fd);
    return failures ? 1 : 0;
  }

  snprintf(what, sizeof what, "%s: non-blocking connect() returns EINPROGRESS", mn);
  check_errno(rc, err, EINPROGRESS, what);
  if (rc != -1 || err != EINPROGRESS) return 1;

  /* The handshake is held (gate closed): nothing may be reported yet. */
  int w = wait_for(m, fd, epfd, POLLOUT, 0, &seen);
  events_text(seen, detail, sizeof detail);
  snprintf(what, sizeof what, "%s: not writable while the handshake is in progress", mn);
  check(!w, what, detail);
  if (m == MECH_POLL) {
    struct pollfd p = {fd, (short)(POLLIN | POLLOUT | POLLRDHUP), 0};
    int n = poll(&p, 1, 0);
    events_text(n > 0 ? (unsigned)p.revents : 0, detail, sizeof detail);
    check(n == 0, "poll: no event at all while in progress (no IN, ERR or HUP either)", detail);
  }
  if (m == MECH_EPOLL_LT || m == MECH_EPOLL_ET) {
    struct epoll_event ev;
    int n = epoll_wait(epfd, &ev, 1, 0);
    events_text(n > 0 ? ev.events : 0, detail, sizeof detail);
    check(n == 0, "epoll: no event at all while in progress (ADD before connect reported nothing stale)", detail);
  }
  struct sockaddr_in peer;
  socklen_t plen = sizeof peer;
  errno = 0;
  rc = a->getpeername(fd, (struct sockaddr *)&peer, &plen);
  check_errno(rc, errno, ENOTCONN, "getpeername while in progress is ENOTCONN");
  errno = 0;
  rc = a->connect(fd, (const struct sockaddr *)to, sizeof *to);
  check_errno(rc, errno, EALREADY, "a second connect() while in progress is EALREADY");
  char byte;
  errno = 0;
  long r = read(fd, &byte, 1);
  check_errno(r, errno, EAGAIN, "read() while in progress is EAGAIN");
  errno = 0;
  r = send(fd, "x", 1, MSG_NOSIGNAL);
  check_errno(r, errno, EAGAIN, "send() while in progress is EAGAIN (nothing is taken)");

  if (o != OUT_TIMEOUT) gate("open");
  w = wait_for(m, fd, epfd, POLLOUT, o == OUT_TIMEOUT ? 120000 : 30000, &seen);
  events_text(seen, detail, sizeof detail);
  snprintf(what, sizeof what, "%s: writable once the connection %s", mn, o == OUT_OK ? "is established" : "has failed");
  check(w, what, detail);
  if (o == OUT_OK && m == MECH_POLL) check(!(seen & (POLLERR | POLLHUP)), "poll: no ERR or HUP on success", detail);
  /* The kernel adds POLLERR|POLLHUP to a failed connect's POLLOUT. Programs take the result
   * from SO_ERROR (checked below), and a socket pair cannot raise POLLERR, so this is shown,
   * not required. */
  if (o != OUT_OK && m == MECH_POLL && (seen & (POLLERR | POLLHUP)) != (POLLERR | POLLHUP)) {
    printf("NOTE: poll: the failure came without POLLERR|POLLHUP (the kernel sets both) — %s\n", detail);
  }

  if (w && m == MECH_EPOLL_LT) {
    struct epoll_event ev;
    int n = epoll_wait(epfd, &ev, 1, 0);
    events_text(n > 0 ? ev.events : 0, detail, sizeof detail);
    check(n == 1 && (ev.events & EPOLLOUT), "epoll-lt: still reported writable on the next wait (level)", detail);
  }
  if (w && m == MECH_EPOLL_ET && o == OUT_OK) {
    struct epoll_event ev;
    int n = epoll_wait(epfd, &ev, 1, 0);
    events_text(n > 0 ? ev.events : 0, detail, sizeof detail);
    check(n == 0, "epoll-et: not reported again without a new event (edge)", detail);
  }

  int v;
  int g = so_error(a, fd, &v);
  snprintf(detail, sizeof detail, "getsockopt returned %d, value %s", g, errname(v));
  if (o == OUT_OK) {
    check(g == 0 && v == 0, "SO_ERROR gives 0 after success", detail);
    plen = sizeof peer;
    memset(&peer, 0, sizeof peer);
    rc = a->getpeername(fd, (struct sockaddr *)&peer, &plen);
    check(rc == 0 && peer.sin_addr.s_addr == to->sin_addr.s_addr && peer.sin_port == to->sin_port,
          "getpeername gives the server's address after success", "");
    /* The kernel answers the first connect() after completion with 0 (it reports the
     * finished connect: the portable way to ask) and only later ones with EISCONN. */
    errno = 0;
    rc = a->connect(fd, (const struct sockaddr *)to, sizeof *to);
    snprintf(detail, sizeof detail, "returned %d, errno %s", rc, rc == -1 ? errname(errno) : "-");
    check(rc == 0 || (rc == -1 && errno == EISCONN), "connect() again after success: 0 or EISCONN", detail);
    errno = 0;
    rc = a->connect(fd, (const struct sockaddr *)to, sizeof *to);
    check_errno(rc, errno, EISCONN, "connect() once more is EISCONN");

    /* The connection carries data: a line to the echo server and back, readiness by `m`. */
    char line[64], got[64];
    int len = snprintf(line, sizeof line, "nonblocking-connect %s\n", mn);
    r = write(fd, line, (size_t)len);
    snprintf(detail, sizeof detail, "wrote %ld of %d", r, len);
    check(r == len, "write() on the established connection", detail);
    if (m == MECH_EPOLL_LT) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data = {.fd = fd}};
      epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    size_t have = 0;
    while (have < (size_t)len) {
      if (!wait_for(m, fd, epfd, POLLIN, 30000, &seen)) break;
      r = read(fd, got + have, sizeof got - have);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) break;
      have += (size_t)r;
    }
    snprintf(what, sizeof what, "%s: readable when the echo arrives, and the echo is the line sent", mn);
    snprintf(detail, sizeof detail, "%zu of %d bytes", have, len);
    check(have == (size_t)len && memcmp(got, line, (size_t)len) == 0, what, detail);
  } else {
    if (o == OUT_REFUSED) check(g == 0 && v == ECONNREFUSED, "SO_ERROR gives ECONNREFUSED for a closed port", detail);
    else check(g == 0 && v == ETIMEDOUT, "SO_ERROR gives ETIMEDOUT when no SYN is answered", detail);
    g = so_error(a, fd, &v);
    snprintf(detail, sizeof detail, "getsockopt returned %d, value %s", g, errname(v));
    check(g == 0 && v == 0, "SO_ERROR is cleared by reading it", detail);
    plen = sizeof peer;
    errno = 0;
    rc = a->getpeername(fd, (struct sockaddr *)&peer, &plen);
    check_errno(rc, errno, ENOTCONN, "getpeername after the failure is ENOTCONN");
  }
  if (epfd >= 0) close(epfd);
  rc = a->close(fd);
  check(rc == 0, "close()", "");
  return failures ? 1 : 0;
}

static int usage(void) {
  fprintf(stderr, "usage: nonblocking_connect [--libdpm] [--gate] poll|select|epoll-lt|epoll-et ok|refused|timeout|unreachable ADDRESS PORT\n");
  return 2;
}

int main(int argc, char **argv) {
  const struct api *a = &kLibc;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--gate") == 0) {
      gated = 1;
    } else if (strcmp(argv[i], "--libdpm") == 0) {
#ifdef NBC_LIBDPM
      a = &kLibdpm;
#else
      fprintf(stderr, "nonblocking_connect: --libdpm needs the e2e_nonblocking_connect_libdpm build\n");
      return 2;
#endif
    } else {
      return usage();
    }
  }
  if (argc - i != 4) return usage();
  int m = -1;
  for (int k = 0; k < 4; k++) if (strcmp(argv[i], kMechNames[k]) == 0) m = k;
  enum outcome o;
  if (strcmp(argv[i + 1], "ok") == 0) o = OUT_OK;
  else if (strcmp(argv[i + 1], "refused") == 0) o = OUT_REFUSED;
  else if (strcmp(argv[i + 1], "timeout") == 0) o = OUT_TIMEOUT;
  else if (strcmp(argv[i + 1], "unreachable") == 0) o = OUT_UNREACHABLE;
  else return usage();
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i + 3]))};
  if (m < 0 || inet_pton(AF_INET, argv[i + 2], &to.sin_addr) != 1) return usage();
  setvbuf(stdin, NULL, _IONBF, 0);
  return run(a, (enum mechanism)m, o, &to);
}
