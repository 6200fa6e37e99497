/* tunnel_resolve — what a program sees of the preload hook's tunnel mode (docs/preload.md
 * "Tunnel mode"): the resolver calls on pseudo names and connects to pseudo addresses. Plain
 * libc, so the preload sees an unmodified program; run under `dpm-run --tunnel` against a
 * `dpmd redirector` (or directly, as the control: the C library's own answers).
 *
 * usage: tunnel_resolve resolve NAME...
 *          one line per result of each call, in this order, for each NAME:
 *            getaddrinfo NAME -> 100.64.0.2 port 80 stream|dgram|raw   (AF_UNSPEC, service "80")
 *            getaddrinfo-canon NAME -> CANONNAME                       (AF_INET, AI_CANONNAME)
 *            getaddrinfo6 NAME -> ...                                  (AF_INET6)
 *            gethostbyname NAME -> 100.64.0.2 name H_NAME
 *            gethostbyname_r NAME -> ...
 *            gethostbyname_r-small NAME -> ...                         (an 8-byte buffer)
 *            gethostbyname2 NAME -> ...                                (AF_INET)
 *            gethostbyname2-6 NAME -> ...                              (AF_INET6)
 *            gethostbyname2_r NAME -> ...                              (AF_INET)
 *          a failure prints its name instead of the address: EAI_NONAME, EAI_AGAIN, ...
 *          (getaddrinfo), HOST_NOT_FOUND, TRY_AGAIN, ... (h_errno; the _r calls also "rc=E...").
 *        tunnel_resolve connect|connect-nonblocking NAME PORT [MESSAGE]
 *          resolves NAME (getaddrinfo, AF_INET, SOCK_STREAM), connects — blocking, or with
 *          O_NONBLOCK, EINPROGRESS and poll() for POLLOUT (10 s) then SO_ERROR — and prints
 *            connect NAME PORT -> 0 peer 100.64.0.2:80          or  -> ECONNREFUSED
 *            connect-nonblocking NAME PORT -> EINPROGRESS, SO_ERROR 0 peer 100.64.0.2:80
 *          With MESSAGE, then writes it, shuts down the write side and prints what comes back
 *          until end-of-file: "received N bytes: TEXT" (non-printable bytes as \xHH).
 * Exit status: 0 (resolve: always; connect: connected), 1 connect failed, 2 bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char* ErrnoName(int e) {
  switch (e) {
    case 0: return "0";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINPROGRESS: return "EINPROGRESS";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case EPIPE: return "EPIPE";
    case EAGAIN: return "EAGAIN";
    case EALREADY: return "EALREADY";
    case EISCONN: return "EISCONN";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOTCONN: return "ENOTCONN";
    case ERANGE: return "ERANGE";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTO: return "EPROTO";
    default: return "E?";
  }
}

static const char* GaiName(int e) {
  switch (e) {
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
    case EAI_BADFLAGS: return "EAI_BADFLAGS";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_SYSTEM: return "EAI_SYSTEM";
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
    case EAI_NODATA: return "EAI_NODATA";
    default: return "EAI_?";
  }
}

static const char* HerrName(int e) {
  switch (e) {
    case HOST_NOT_FOUND: return "HOST_NOT_FOUND";
    case TRY_AGAIN: return "TRY_AGAIN";
    case NO_RECOVERY: return "NO_RECOVERY";
    case NO_DATA: return "NO_DATA";
    case NETDB_INTERNAL: return "NETDB_INTERNAL";
    default: return "H?";
  }
}

static const char* TypeName(int type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    case SOCK_RAW: return "raw";
    default: return "type?";
  }
}

static void PrintHost(const char* call, const char* name, const struct hostent* h, int herr) {
  if (h == NULL) {
    printf("%s %s -> %s\n", call, name, HerrName(herr));
    return;
  }
  printf("%s %s ->", call, name);
  for (char** a = h->h_addr_list; *a != NULL; ++a) {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(h->h_addrtype, *a, text, sizeof(text));
    printf(" %s", text);
  }
  printf(" name %s\n", h->h_name);
}

static void PrintHostR(const char* call, const char* name, int rc, const struct hostent* result, int herr) {
  if (result == NULL) {
    printf("%s %s -> %s rc=%s\n", call, name, HerrName(herr), ErrnoName(rc));
  } else {
    PrintHost(call, name, result, 0);
  }
}

static void Resolve(const char* name) {
  struct addrinfo hints, *res, *p;
  memset(&hints, 0, sizeof(hints));
  int e = getaddrinfo(name, "80", &hints, &res);
  if (e != 0) {
    printf("getaddrinfo %s -> %s\n", name, GaiName(e));
  } else {
    for (p = res; p != NULL; p = p->ai_next) {
      const struct sockaddr_in* in = (const struct sockaddr_in*)p->ai_addr;
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      printf("getaddrinfo %s -> %s port %d %s\n", name, text, ntohs(in->sin_port), TypeName(p->ai_socktype));
    }
    freeaddrinfo(res);
  }

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_CANONNAME;
  e = getaddrinfo(name, NULL, &hints, &res);
  if (e != 0) {
    printf("getaddrinfo-canon %s -> %s\n", name, GaiName(e));
  } else {
    printf("getaddrinfo-canon %s -> %s\n", name, res->ai_canonname != NULL ? res->ai_canonname : "(null)");
    freeaddrinfo(res);
  }

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET6;
  e = getaddrinfo(name, NULL, &hints, &res);
  if (e != 0) {
    printf("getaddrinfo6 %s -> %s\n", name, GaiName(e));
  } else {
    printf("getaddrinfo6 %s -> %d results\n", name, res != NULL);
    freeaddrinfo(res);
  }

  struct hostent* h = gethostbyname(name);
  PrintHost("gethostbyname", name, h, h_errno);

  struct hostent ret, *result = NULL;
  char buf[1024];
  int herr = 0;
  int rc = gethostbyname_r(name, &ret, buf, sizeof(buf), &result, &herr);
  PrintHostR("gethostbyname_r", name, rc, result, herr);
  rc = gethostbyname_r(name, &ret, buf, 8, &result, &herr);
  PrintHostR("gethostbyname_r-small", name, rc, result, herr);

  h = gethostbyname2(name, AF_INET);
  PrintHost("gethostbyname2", name, h, h_errno);
  h = gethostbyname2(name, AF_INET6);
  PrintHost("gethostbyname2-6", name, h, h_errno);
  rc = gethostbyname2_r(name, AF_INET, &ret, buf, sizeof(buf), &result, &herr);
  PrintHostR("gethostbyname2_r", name, rc, result, herr);
}

static void PrintPeer(int fd) {
  struct sockaddr_in peer;
  socklen_t len = sizeof(peer);
  if (getpeername(fd, (struct sockaddr*)&peer, &len) != 0) {
    printf(" peer %s\n", ErrnoName(errno));
    return;
  }
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  printf(" peer %s:%d\n", text, ntohs(peer.sin_port));
}

static int Exchange(int fd, const char* message) {
  size_t len = strlen(message);
  if (write(fd, message, len) != (ssize_t)len) {
    printf("write -> %s\n", ErrnoName(errno));
    return 1;
  }
  shutdown(fd, SHUT_WR);
  char buf[4096];
  size_t total = 0;
  char text[4 * sizeof(buf) + 1];
  size_t t = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < n && t + 5 < sizeof(text); ++i) {
      unsigned char c = (unsigned char)buf[i];
      t += (c >= 0x20 && c < 0x7f) ? (size_t)snprintf(text + t, 2, "%c", c)
                                   : (size_t)snprintf(text + t, 5, "\\x%02x", c);
    }
    total += (size_t)n;
  }
  text[t] = '\0';
  if (n < 0) printf("read -> %s\n", ErrnoName(errno));
  printf("received %zu bytes: %s\n", total, text);
  return n < 0;
}

static int Connect(const char* mode, const char* name, const char* port, const char* message) {
  const int nonblocking = strcmp(mode, "connect-nonblocking") == 0;
  struct addrinfo hints, *res;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int e = getaddrinfo(name, port, &hints, &res);
  if (e != 0) {
    printf("%s %s %s -> getaddrinfo %s\n", mode, name, port, GaiName(e));
    return 1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    printf("%s %s %s -> socket %s\n", mode, name, port, ErrnoName(errno));
    freeaddrinfo(res);
    return 1;
  }
  int r = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (!nonblocking) {
    printf("%s %s %s -> %s", mode, name, port, r == 0 ? "0" : ErrnoName(errno));
    if (r != 0) {
      printf("\n");
      return 1;
    }
    PrintPeer(fd);
  } else {
    if (r == 0) {
      printf("%s %s %s -> 0 at once", mode, name, port);
    } else if (errno != EINPROGRESS) {
      printf("%s %s %s -> %s\n", mode, name, port, ErrnoName(errno));
      return 1;
    } else {
      struct pollfd p = {fd, POLLOUT, 0};
      int ready = poll(&p, 1, 10000);
      int so_error = -1;
      socklen_t len = sizeof(so_error);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
      printf("%s %s %s -> EINPROGRESS, %sSO_ERROR %s", mode, name, port, ready == 1 ? "" : "not writable in 10 s, ",
             ErrnoName(so_error));
      if (ready != 1 || so_error != 0) {
        printf("\n");
        return 1;
      }
    }
    PrintPeer(fd);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
  fflush(stdout);
  int status = message != NULL ? Exchange(fd, message) : 0;
  close(fd);
  return status;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "resolve") == 0) {
    for (int i = 2; i < argc; ++i) Resolve(argv[i]);
    return 0;
  }
  if ((argc == 4 || argc == 5) && (strcmp(argv[1], "connect") == 0 || strcmp(argv[1], "connect-nonblocking") == 0)) {
    return Connect(argv[1], argv[2], argv[3], argc == 5 ? argv[4] : NULL);
  }
  fprintf(stderr,
          "usage: tunnel_resolve resolve NAME...\n"
          "       tunnel_resolve connect|connect-nonblocking NAME PORT [MESSAGE]\n");
  return 2;
}
