/* preload_helper — small plain-libc programs for the preload tests (tests/e2e/preload_*.sh).
 * Each is run under dpm-run (an unmodified program on the dpm instance) and, where the
 * expectation is the kernel's, directly against the kernel as the control.
 *
 *   preload_helper fork ADDR PORT         an echo connection shared by parent and forked child:
 *                                         the child writes on it, the parent reads the echo,
 *                                         then uses it alone; the child also opens its own
 *   preload_helper dup ADDR PORT          dup / dup2 / dup3 / fcntl(F_DUPFD_CLOEXEC) of a
 *                                         connection: every copy works, the connection lives
 *                                         until the last copy is closed
 *   preload_helper unix                   AF_UNIX socketpair and datagram traffic
 *   preload_helper loopback PORT HOLD     to a kernel echo listener on 127.0.0.1:PORT, its own
 *                                         listener on 127.0.0.1, UDP on 127.0.0.1; creates the
 *                                         file HOLD while the connections are open and waits
 *                                         (30 s at most) until it is removed
 *   preload_helper inet6                  socket(AF_INET6, ...) for TCP and UDP
 *   preload_helper mmsg ADDR PORT NAME IP sendmmsg / recvmmsg of DNS queries for NAME (A
 *                                         record IP expected), unconnected and connected
 *   preload_helper badargs ADDR ECHO CLOSED  bad calls, one result per line (the kernel's
 *                                         errno is the reference; the script compares)
 *   preload_helper socket-errno           socket() results, one per line
 *   preload_helper blocked-read ADDR PORT READY  connects, creates READY, blocks in read();
 *                                         then reports read(), write() and a new socket()
 *   preload_helper drain ADDR PORT        connects and reads until end-of-file
 *
 * Checking commands print "PASS: ..." / "FAIL: ..." and exit 1 on any failure; reporting ones
 * print "NAME: RESULT" lines. Exit 2: bad usage or setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what, const char *detail) {
  printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail && detail[0] ? " — " : "", detail ? detail : "");
  fflush(stdout);
  if (!ok) failures++;
}

static const char *en(int e) {
  const char *n = strerrorname_np(e);
  return n != NULL ? n : "E?";
}

static struct sockaddr_in addr_of(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "preload_helper: bad address %s\n", ip);
    exit(2);
  }
  return a;
}

static const char *name_of(const struct sockaddr_in *a, char *buf, size_t size) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
  snprintf(buf, size, "%s:%d", ip, ntohs(a->sin_port));
  return buf;
}

static int connect_to(const char *ip, int port) {
  struct sockaddr_in a = addr_of(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "preload_helper: connect %s:%d: %s\n", ip, port, strerror(errno));
    exit(2);
  }
  return fd;
}

/* Writes `line` on wfd and reads the same bytes back on rfd (an echo server between them). */
static int echo_round(int wfd, int rfd, const char *line) {
  size_t len = strlen(line), have = 0;
  if (write(wfd, line, len) != (ssize_t)len) return 0;
  char got[256];
  while (have < len) {
    ssize_t r = read(rfd, got + have, len - have);
    if (r <= 0) return 0;
    have += (size_t)r;
  }
  return memcmp(got, line, len) == 0;
}

/* ---- fork ---- */

static int cmd_fork(const char *ip, int port) {
  int fd = connect_to(ip, port);
  pid_t child = fork();
  if (child < 0) return 2;
  if (child == 0) {
    /* The child writes on the inherited socket, then opens a connection of its own. */
    int ok = write(fd, "from-child\n", 11) == 11;
    int own = connect_to(ip, port);
    ok = ok && echo_round(own, own, "child-own\n");
    close(own);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "the child wrote on the inherited socket and echoed on a connection of its own", "");
  char got[32] = {0};
  size_t have = 0;
  while (have < 11) {
    ssize_t r = read(fd, got + have, 11 - have);
    if (r <= 0) break;
    have += (size_t)r;
  }
  check(have == 11 && memcmp(got, "from-child\n", 11) == 0,
        "the parent read the echo of the child's write on the same socket", "");
  check(echo_round(fd, fd, "from-parent\n"), "the parent's socket still works after the child exited", "");
  check(close(fd) == 0, "close()", "");
  return failures ? 1 : 0;
}

/* ---- dup ---- */

static int cmd_dup(const char *ip, int port) {
  int fd = connect_to(ip, port);
  int d1 = dup(fd);
  int d2 = dup2(fd, 100);
  int d3 = fcntl(fd, F_DUPFD_CLOEXEC, 200);
  int d4 = dup3(fd, 150, O_CLOEXEC);
  char detail[128];
  snprintf(detail, sizeof detail, "dup %d, dup2 %d, F_DUPFD_CLOEXEC %d, dup3 %d", d1, d2, d3, d4);
  check(d1 >= 0 && d2 == 100 && d3 >= 200 && d4 == 150, "every kind of dup gives a descriptor", detail);
  check(!(fcntl(d1, F_GETFD) & FD_CLOEXEC) && (fcntl(d3, F_GETFD) & FD_CLOEXEC) && (fcntl(d4, F_GETFD) & FD_CLOEXEC),
        "close-on-exec set on the F_DUPFD_CLOEXEC and dup3(O_CLOEXEC) copies only", "");
  int copies[] = {d1, d2, d3, d4};
  int names_ok = 1;
  for (int i = 0; i < 4; i++) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    if (getpeername(copies[i], (struct sockaddr *)&peer, &len) != 0 || peer.sin_port != htons((uint16_t)port)) names_ok = 0;
    int type = 0;
    len = sizeof type;
    if (getsockopt(copies[i], SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) names_ok = 0;
  }
  check(names_ok, "getpeername and SO_TYPE work on every copy", "");
  check(close(fd) == 0, "the original closed", "");
  check(echo_round(d1, d2, "via-dup\n"), "write on the dup() copy, the echo read on the dup2() copy", "");
  close(d1);
  close(d2);
  close(d4);
  check(echo_round(d3, d3, "via-last\n"), "the connection lives on through the last copy", "");
  int so_error = -1;
  socklen_t len = sizeof so_error;
  check(getsockopt(d3, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error == 0, "SO_ERROR 0 on the last copy", "");
  check(close(d3) == 0, "the last copy closed", "");
  errno = 0;
  ssize_t w = write(d3, "x", 1);
  int err = errno;
  check(w == -1 && err == EBADF, "a closed copy is EBADF", w == -1 ? en(err) : "written");
  return failures ? 1 : 0;
}

/* ---- AF_UNIX ---- */

static int cmd_unix(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    check(0, "socketpair(AF_UNIX, SOCK_STREAM)", en(errno));
    return 1;
  }
  check(echo_round(sv[0], sv[1], "unix-stream\n"), "bytes cross the stream pair", "");
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  check(getsockname(sv[0], (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX, "getsockname says AF_UNIX", "");
  close(sv[0]);
  close(sv[1]);

  /* Datagrams between two bound abstract-name sockets. */
  int a = socket(AF_UNIX, SOCK_DGRAM, 0), b = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un ua = {.sun_family = AF_UNIX}, ub = {.sun_family = AF_UNIX};
  int na = snprintf(ua.sun_path + 1, sizeof ua.sun_path - 1, "dpm-preload-test-a-%d", (int)getpid());
  int nb = snprintf(ub.sun_path + 1, sizeof ub.sun_path - 1, "dpm-preload-test-b-%d", (int)getpid());
  socklen_t la = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)na);
  socklen_t lb = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)nb);
  int ok = a >= 0 && b >= 0 && bind(a, (struct sockaddr *)&ua, la) == 0 && bind(b, (struct sockaddr *)&ub, lb) == 0;
  check(ok, "two AF_UNIX datagram sockets bound", ok ? "" : en(errno));
  ok = sendto(a, "unix-dgram", 10, 0, (struct sockaddr *)&ub, lb) == 10;
  char got[32] = {0};
  struct sockaddr_un from;
  socklen_t fl = sizeof from;
  ok = ok && recvfrom(b, got, sizeof got, 0, (struct sockaddr *)&from, &fl) == 10 && memcmp(got, "unix-dgram", 10) == 0 &&
       fl == la && memcmp(from.sun_path, ua.sun_path, (size_t)na + 1) == 0;
  check(ok, "a datagram crosses with its sender's name", got);
  close(a);
  close(b);
  return failures ? 1 : 0;
}

/* ---- loopback ---- */

static int cmd_loopback(int port, const char *hold) {
  int c = connect_to("127.0.0.1", port);
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  char name[64];
  getsockname(c, (struct sockaddr *)&local, &len);
  check(local.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "the connection to 127.0.0.1 has a loopback source",
        name_of(&local, name, sizeof name));
  check(echo_round(c, c, "loopback\n"), "the kernel echo server on 127.0.0.1 echoed", "");

  /* A listener of its own on 127.0.0.1, and a connection to it. */
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in la = addr_of("127.0.0.1", 0);
  len = sizeof la;
  int ok = l >= 0 && bind(l, (struct sockaddr *)&la, sizeof la) == 0 && listen(l, 4) == 0 &&
           getsockname(l, (struct sockaddr *)&la, &len) == 0;
  check(ok, "listen on 127.0.0.1", name_of(&la, name, sizeof name));
  int c2 = connect_to("127.0.0.1", ntohs(la.sin_port));
  int s2 = accept(l, NULL, NULL);
  check(s2 >= 0 && echo_round(c2, s2, "to-own-listener\n") && echo_round(s2, c2, "and-back\n"),
        "a connection to its own loopback listener carries bytes both ways", "");

  /* UDP on 127.0.0.1. */
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ua = addr_of("127.0.0.1", 0);
  len = sizeof ua;
  ok = u >= 0 && bind(u, (struct sockaddr *)&ua, sizeof ua) == 0 && getsockname(u, (struct sockaddr *)&ua, &len) == 0 &&
       sendto(u, "udp-lo", 6, 0, (struct sockaddr *)&ua, sizeof ua) == 6;
  char got[16] = {0};
  ok = ok && recv(u, got, sizeof got, 0) == 6 && memcmp(got, "udp-lo", 6) == 0;
  check(ok, "a UDP datagram to itself on 127.0.0.1", name_of(&ua, name, sizeof name));

  if (hold != NULL) {
    FILE *f = fopen(hold, "w");
    if (f != NULL) fclose(f);
    struct timespec pause = {0, 10000000};
    for (int i = 0; i < 3000 && access(hold, F_OK) == 0; i++) nanosleep(&pause, NULL);
  }
  close(c);
  close(c2);
  close(s2);
  close(l);
  close(u);
  return failures ? 1 : 0;
}

/* ---- AF_INET6 ---- */

static int cmd_inet6(void) {
  int types[] = {SOCK_STREAM, SOCK_DGRAM};
  const char *names[] = {"stream", "dgram"};
  for (int i = 0; i < 2; i++) {
    errno = 0;
    int fd = socket(AF_INET6, types[i], 0);
    printf("inet6-%s: %s\n", names[i], fd >= 0 ? "ok" : en(errno));
    if (fd >= 0) close(fd);
  }
  return 0;
}

/* ---- sendmmsg / recvmmsg of DNS queries ---- */

static size_t dns_query(unsigned char *buf, uint16_t id, const char *name) {
  size_t n = 0;
  unsigned char header[12] = {(unsigned char)(id >> 8), (unsigned char)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  memcpy(buf, header, sizeof header);
  n = sizeof header;
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t l = dot ? (size_t)(dot - p) : strlen(p);
    buf[n++] = (unsigned char)l;
    memcpy(buf + n, p, l);
    n += l;
    p += l + (dot ? 1 : 0);
  }
  buf[n++] = 0;
  unsigned char tail[4] = {0, 1, 0, 1}; /* QTYPE A, QCLASS IN */
  memcpy(buf + n, tail, 4);
  return n + 4;
}

/* The first A record of a DNS answer as text, or "" (RFC 1035 §4.1). */
static void dns_answer(const unsigned char *m, size_t len, char *out, size_t size) {
  out[0] = '\0';
  if (len < 12 || m[7] == 0) return; /* ANCOUNT low byte: these answers are small */
  size_t i = 12;
  while (i < len && m[i] != 0) i += (size_t)m[i] + 1; /* QNAME */
  i += 5;                                               /* root label, QTYPE, QCLASS */
  for (int rr = 0; rr < m[7] && i < len; rr++) {
    if ((m[i] & 0xc0) == 0xc0) i += 2; else { while (i < len && m[i] != 0) i += (size_t)m[i] + 1; i++; }
    if (i + 10 > len) return;
    unsigned type = (unsigned)(m[i] << 8 | m[i + 1]);
    unsigned rdlen = (unsigned)(m[i + 8] << 8 | m[i + 9]);
    i += 10;
    if (i + rdlen > len) return;
    if (type == 1 && rdlen == 4) {
      snprintf(out, size, "%u.%u.%u.%u", m[i], m[i + 1], m[i + 2], m[i + 3]);
      return;
    }
    i += rdlen;
  }
}

enum { kQueries = 3 };

/* Sends kQueries queries in one sendmmsg (to `to`, or the connected peer when to is NULL) and
 * takes the answers with recvmmsg; checks ids, answers and (unconnected) sources. */
static void mmsg_round(int fd, const struct sockaddr_in *to, const char *qname, const char *want, const char *label) {
  unsigned char q[kQueries][512], r[kQueries][512];
  struct iovec qv[kQueries], rv[kQueries];
  struct mmsghdr qm[kQueries], rm[kQueries];
  struct sockaddr_in from[kQueries];
  memset(qm, 0, sizeof qm);
  memset(rm, 0, sizeof rm);
  for (int i = 0; i < kQueries; i++) {
    qv[i].iov_base = q[i];
    qv[i].iov_len = dns_query(q[i], (uint16_t)(0x4400 + i), qname);
    qm[i].msg_hdr.msg_iov = &qv[i];
    qm[i].msg_hdr.msg_iovlen = 1;
    if (to != NULL) {
      qm[i].msg_hdr.msg_name = (void *)to;
      qm[i].msg_hdr.msg_namelen = sizeof *to;
    }
  }
  char what[128], detail[160];
  int sent = sendmmsg(fd, qm, kQueries, 0);
  snprintf(what, sizeof what, "%s: sendmmsg took %d queries", label, kQueries);
  snprintf(detail, sizeof detail, "returned %d%s%s", sent, sent < 0 ? ", " : "", sent < 0 ? en(errno) : "");
  check(sent == kQueries, what, detail);
  int seen[kQueries] = {0}, got = 0, good = 0;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (got < kQueries) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    long left = 10000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) != 1) break;
    for (int i = 0; i < kQueries; i++) {
      rv[i].iov_base = r[i];
      rv[i].iov_len = sizeof r[i];
      memset(&rm[i], 0, sizeof rm[i]);
      rm[i].msg_hdr.msg_iov = &rv[i];
      rm[i].msg_hdr.msg_iovlen = 1;
      rm[i].msg_hdr.msg_name = &from[i];
      rm[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, rm, (unsigned)(kQueries - got), MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) {
      snprintf(detail, sizeof detail, "recvmmsg: %s", n < 0 ? en(errno) : "0");
      check(0, "recvmmsg", detail);
      break;
    }
    for (int i = 0; i < n; i++, got++) {
      char ans[32], src[64];
      unsigned id = rm[i].msg_len >= 2 ? (unsigned)(r[i][0] << 8 | r[i][1]) : 0;
      dns_answer(r[i], rm[i].msg_len, ans, sizeof ans);
      int from_ok = rm[i].msg_hdr.msg_namelen == sizeof from[i] && from[i].sin_family == AF_INET &&
                    (to == NULL || (from[i].sin_addr.s_addr == to->sin_addr.s_addr && from[i].sin_port == to->sin_port));
      if (id >= 0x4400 && id < 0x4400 + kQueries && !seen[id - 0x4400] && strcmp(ans, want) == 0 && from_ok) {
        seen[id - 0x4400] = 1;
        good++;
      } else {
        printf("  answer id %#x: A %s from %s (len %u)\n", id, ans[0] ? ans : "-",
               name_of(&from[i], src, sizeof src), rm[i].msg_len);
      }
    }
  }
  snprintf(what, sizeof what, "%s: recvmmsg gave an answer %s to each query, from the server", label, want);
  snprintf(detail, sizeof detail, "%d of %d", good, kQueries);
  check(good == kQueries, what, detail);
}

static int cmd_mmsg(const char *ip, int port, const char *qname, const char *want) {
  struct sockaddr_in to = addr_of(ip, port);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 2; }
  mmsg_round(fd, &to, qname, want, "unconnected");
  close(fd);
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 2; }
  mmsg_round(fd, NULL, qname, want, "connected");
  close(fd);
  return failures ? 1 : 0;
}

/* ---- bad arguments: one line per call, "name: ok [value]" or "name: ERRNO" ---- */

static void report(const char *name, long rc, const char *extra) {
  int e = errno;
  if (rc == -1) printf("%s: %s\n", name, en(e));
  else printf("%s: ok%s%s\n", name, extra && extra[0] ? " " : "", extra ? extra : "");
  fflush(stdout);
}

#define REPORT(name, call) do { errno = 0; long rc_ = (long)(call); report(name, rc_, NULL); } while (0)

/* Reports an int option's value (or the errno). */
static void report_int_option(const char *name, int fd, int level, int option) {
  int v = -1;
  socklen_t len = sizeof v;
  char extra[32];
  errno = 0;
  long rc = getsockopt(fd, level, option, &v, &len);
  snprintf(extra, sizeof extra, "%d", v);
  report(name, rc, extra);
}

static int tcp(void) { return socket(AF_INET, SOCK_STREAM, 0); }
static int udp(void) { return socket(AF_INET, SOCK_DGRAM, 0); }

static int cmd_badargs(const char *ip, int echo_port, int closed_port) {
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in any = addr_of("0.0.0.0", 0), foreign = addr_of("1.2.3.4", 0);
  struct sockaddr_in echo = addr_of(ip, echo_port), closed = addr_of(ip, closed_port);
  struct sockaddr_in6 six = {.sin6_family = AF_INET6};
  struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/dpm-test"};
  int one = 1, v = 0, fd, fd2;
  socklen_t len;
  char extra[64];

  REPORT("socket type 999", socket(AF_INET, 999, 0));
  REPORT("socket stream with IPPROTO_UDP", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
  REPORT("socket dgram with IPPROTO_TCP", socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP));

  fd = tcp();
  REPORT("bind addrlen 4", bind(fd, (struct sockaddr *)&any, 4));
  REPORT("bind AF_INET6 address on AF_INET", bind(fd, (struct sockaddr *)&six, sizeof six));
  REPORT("bind NULL address", bind(fd, NULL, sizeof any));
  REPORT("bind foreign address", bind(fd, (struct sockaddr *)&foreign, sizeof foreign));
  REPORT("connect addrlen 4", connect(fd, (struct sockaddr *)&echo, 4));
  REPORT("connect AF_UNIX address on AF_INET", connect(fd, (struct sockaddr *)&un, sizeof un));
  REPORT("connect NULL address", connect(fd, NULL, sizeof echo));
  REPORT("getpeername unconnected", ({ struct sockaddr_in p; len = sizeof p; getpeername(fd, (struct sockaddr *)&p, &len); }));
  REPORT("getsockname NULL address", ({ len = sizeof any; getsockname(fd, NULL, &len); }));
  errno = 0;
  struct sockaddr_in name;
  len = 0;
  long rc = getsockname(fd, (struct sockaddr *)&name, &len);
  snprintf(extra, sizeof extra, "len %u", (unsigned)len);
  report("getsockname addrlen 0", rc, extra);
  len = sizeof name;
  memset(&name, 0xff, sizeof name);
  errno = 0;
  rc = getsockname(fd, (struct sockaddr *)&name, &len);
  char buf[64];
  snprintf(extra, sizeof extra, "family %d %s len %u", name.sin_family, name_of(&name, buf, sizeof buf), (unsigned)len);
  report("getsockname unbound", rc, extra);
  REPORT("getsockopt unknown level", ({ len = sizeof v; getsockopt(fd, 12345, 1, &v, &len); }));
  REPORT("setsockopt unknown level", setsockopt(fd, 12345, 1, &one, sizeof one));
  REPORT("getsockopt SOL_SOCKET unknown option", ({ len = sizeof v; getsockopt(fd, SOL_SOCKET, 9999, &v, &len); }));
  REPORT("setsockopt SOL_SOCKET unknown option", setsockopt(fd, SOL_SOCKET, 9999, &one, sizeof one));
  REPORT("setsockopt IPPROTO_TCP unknown option", setsockopt(fd, IPPROTO_TCP, 9999, &one, sizeof one));
  REPORT("setsockopt SO_KEEPALIVE optlen 2", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, 2));
  REPORT("getsockopt SO_ERROR optlen -1", ({ len = (socklen_t)-1; getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len); }));
  int opts[][2] = {{SOL_SOCKET, SO_TYPE}, {SOL_SOCKET, SO_DOMAIN}, {SOL_SOCKET, SO_PROTOCOL}, {SOL_SOCKET, SO_ERROR},
                   {SOL_SOCKET, SO_ACCEPTCONN}};
  const char *opt_names[] = {"SO_TYPE", "SO_DOMAIN", "SO_PROTOCOL", "SO_ERROR", "SO_ACCEPTCONN"};
  for (int i = 0; i < 5; i++) {
    char what[64];
    snprintf(what, sizeof what, "tcp getsockopt %s", opt_names[i]);
    report_int_option(what, fd, opts[i][0], opts[i][1]);
  }
  REPORT("setsockopt SO_KEEPALIVE", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
  report_int_option("getsockopt SO_KEEPALIVE after setting it", fd, SOL_SOCKET, SO_KEEPALIVE);
  REPORT("shutdown how 42", shutdown(fd, 42));
  REPORT("shutdown unconnected", shutdown(fd, SHUT_WR));
  REPORT("recv unconnected", ({ char b[4]; recv(fd, b, sizeof b, MSG_DONTWAIT); }));
  REPORT("send unconnected", send(fd, "x", 1, MSG_NOSIGNAL));
  REPORT("accept not listening", accept(fd, NULL, NULL));
  REPORT("bind", bind(fd, (struct sockaddr *)&any, sizeof any));
  REPORT("bind twice", bind(fd, (struct sockaddr *)&any, sizeof any));
  REPORT("accept bound, not listening", accept(fd, NULL, NULL));
  REPORT("accept4 bad flags", accept4(fd, NULL, NULL, 0x1));
  len = sizeof name;
  getsockname(fd, (struct sockaddr *)&name, &len);
  fd2 = tcp();
  REPORT("bind a port in use", bind(fd2, (struct sockaddr *)&name, sizeof name));
  close(fd2);
  REPORT("listen", listen(fd, 4));
  report_int_option("getsockopt SO_ACCEPTCONN listening", fd, SOL_SOCKET, SO_ACCEPTCONN);
  REPORT("connect a listening socket", connect(fd, (struct sockaddr *)&echo, sizeof echo));
  REPORT("accept4 bad flags on a listener", accept4(fd, NULL, NULL, 0x1));
  close(fd);

  fd = tcp();
  REPORT("connect closed port", connect(fd, (struct sockaddr *)&closed, sizeof closed));
  close(fd);
  fd = tcp();
  REPORT("connect echo server", connect(fd, (struct sockaddr *)&echo, sizeof echo));
  REPORT("connect twice", connect(fd, (struct sockaddr *)&echo, sizeof echo));
  REPORT("listen connected", listen(fd, 4));
  REPORT("bind connected", bind(fd, (struct sockaddr *)&any, sizeof any));
  REPORT("shutdown SHUT_WR connected", shutdown(fd, SHUT_WR));
  REPORT("send after SHUT_WR", send(fd, "x", 1, MSG_NOSIGNAL));
  close(fd);

  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  snprintf(extra, sizeof extra, "nonblock %d cloexec %d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0,
           (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  report("socket SOCK_NONBLOCK|SOCK_CLOEXEC flags", fd, extra);
  REPORT("accept on a non-blocking unlistened socket", accept(fd, NULL, NULL));
  close(fd);
  fd = tcp();
  snprintf(extra, sizeof extra, "nonblock %d cloexec %d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0,
           (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  report("socket without flags", fd, extra);
  close(fd);

  fd = udp();
  REPORT("udp listen", listen(fd, 4));
  REPORT("udp send unconnected", send(fd, "x", 1, 0));
  REPORT("udp setsockopt TCP_NODELAY", setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  REPORT("udp getpeername unconnected", ({ struct sockaddr_in p; len = sizeof p; getpeername(fd, (struct sockaddr *)&p, &len); }));
  static char big[70000];
  REPORT("udp sendto 70000 bytes", sendto(fd, big, sizeof big, 0, (struct sockaddr *)&echo, sizeof echo));
  REPORT("udp sendto addrlen 4", sendto(fd, "x", 1, 0, (struct sockaddr *)&echo, 4));
  REPORT("udp sendto AF_INET6 address", sendto(fd, "x", 1, 0, (struct sockaddr *)&six, sizeof six));
  REPORT("udp recv nothing waiting", ({ char b[4]; recv(fd, b, sizeof b, MSG_DONTWAIT); }));
  report_int_option("udp getsockopt SO_TYPE", fd, SOL_SOCKET, SO_TYPE);
  REPORT("udp connect", connect(fd, (struct sockaddr *)&echo, sizeof echo));
  REPORT("udp getpeername connected", ({ struct sockaddr_in p; len = sizeof p; getpeername(fd, (struct sockaddr *)&p, &len); }));
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  REPORT("udp connect AF_UNSPEC (dissolve)", connect(fd, &unspec, sizeof unspec));
  REPORT("udp getpeername after dissolving", ({ struct sockaddr_in p; len = sizeof p; getpeername(fd, (struct sockaddr *)&p, &len); }));
  close(fd);
  fd = udp();
  REPORT("udp bind", bind(fd, (struct sockaddr *)&any, sizeof any));
  len = sizeof name;
  getsockname(fd, (struct sockaddr *)&name, &len);
  fd2 = udp();
  REPORT("udp bind a port in use", bind(fd2, (struct sockaddr *)&name, sizeof name));
  close(fd2);
  close(fd);
  REPORT("close a closed descriptor", close(fd));
  return 0;
}

/* ---- no daemon ---- */

static int cmd_socket_errno(void) {
  int fd;
  errno = 0;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  report("socket AF_INET SOCK_STREAM", fd, NULL);
  if (fd >= 0) close(fd);
  errno = 0;
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  report("socket AF_INET SOCK_DGRAM", fd, NULL);
  if (fd >= 0) close(fd);
  errno = 0;
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  report("socket AF_UNIX SOCK_STREAM", fd, NULL);
  if (fd >= 0) close(fd);
  return 0;
}

/* ---- daemon killed under a blocked read ---- */

static int cmd_blocked_read(const char *ip, int port, const char *ready) {
  signal(SIGPIPE, SIG_IGN);
  int fd = connect_to(ip, port);
  FILE *f = fopen(ready, "w");
  if (f != NULL) fclose(f);
  char b[64];
  errno = 0;
  ssize_t r = read(fd, b, sizeof b);
  if (r < 0) printf("read: %s\n", en(errno)); else printf("read: %zd\n", r);
  errno = 0;
  ssize_t w = write(fd, "after", 5);
  if (w < 0) printf("write: %s\n", en(errno)); else printf("write: %zd\n", w);
  errno = 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) printf("socket: %s\n", en(errno)); else printf("socket: ok\n");
  fflush(stdout);
  return 0;
}

static int cmd_drain(const char *ip, int port) {
  int fd = connect_to(ip, port);
  fprintf(stderr, "connected\n");
  char b[65536];
  unsigned long long total = 0;
  ssize_t r;
  while ((r = read(fd, b, sizeof b)) > 0) total += (unsigned long long)r;
  printf("drained %llu\n", total);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: preload_helper fork|dup|unix|loopback|inet6|mmsg|badargs|socket-errno|blocked-read|drain ...\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  const char *c = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(c, "fork") == 0 && argc == 4) return cmd_fork(argv[2], atoi(argv[3]));
  if (strcmp(c, "dup") == 0 && argc == 4) return cmd_dup(argv[2], atoi(argv[3]));
  if (strcmp(c, "unix") == 0 && argc == 2) return cmd_unix();
  if (strcmp(c, "loopback") == 0 && argc == 4) return cmd_loopback(atoi(argv[2]), argv[3]);
  if (strcmp(c, "inet6") == 0 && argc == 2) return cmd_inet6();
  if (strcmp(c, "mmsg") == 0 && argc == 6) return cmd_mmsg(argv[2], atoi(argv[3]), argv[4], argv[5]);
  if (strcmp(c, "badargs") == 0 && argc == 5) return cmd_badargs(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (strcmp(c, "socket-errno") == 0 && argc == 2) return cmd_socket_errno();
  if (strcmp(c, "blocked-read") == 0 && argc == 5) return cmd_blocked_read(argv[2], atoi(argv[3]), argv[4]);
  if (strcmp(c, "drain") == 0 && argc == 4) return cmd_drain(argv[2], atoi(argv[3]));
  return usage();
}
