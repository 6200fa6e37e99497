/* two_addresses — one program, two sockets, two network addresses of their own (docs/design.md
 * §7, docs/api.md "Addresses per socket"). Each socket takes a new address from the dpmd
 * instance's static pool — the first through the tuple argument, the second through the
 * AF_INET_TUPLE family — marks its packets with its own DSCP, fetches PATH from an HTTP
 * server, and prints the address the server saw it come from (dpm_getsockname) and the
 * server's status line. Both connections are open at the same time.
 *
 *   two_addresses HOST PORT [PATH]      (DPM_SOCKET names the dpmd API socket)
 *
 * Build: cc -I include two_addresses.c -L build -ldpm   (CMake target two_addresses) */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpm/socket.h"

static int open_call(int domain, int tuple, int dscp, const struct sockaddr_in *server) {
  int fd = dpm_socket(domain, SOCK_STREAM, 0, tuple);
  if (fd < 0) {
    fprintf(stderr, "two_addresses: dpm_socket: %s\n", strerror(errno));
    exit(1);
  }
  if (dpm_setsockopt(fd, DPM_SOL, DPM_ADDRESS_DSCP, &dscp, sizeof dscp) < 0 ||
      dpm_connect(fd, (const struct sockaddr *)server, sizeof *server) < 0) {
    fprintf(stderr, "two_addresses: %s\n", strerror(errno));
    exit(1);
  }
  return fd;
}

static void fetch(const char *name, int fd, const char *path) {
  char request[512], reply[4096], local[INET_ADDRSTRLEN];
  struct sockaddr_in me;
  socklen_t len = sizeof me;
  int dscp = -1;
  socklen_t dlen = sizeof dscp;
  dpm_getsockname(fd, (struct sockaddr *)&me, &len);
  dpm_getsockopt(fd, DPM_SOL, DPM_ADDRESS_DSCP, &dscp, &dlen);
  inet_ntop(AF_INET, &me.sin_addr, local, sizeof local);
  int n = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: demo\r\n\r\n", path);
  if (write(fd, request, (size_t)n) != n) {
    fprintf(stderr, "two_addresses: write: %s\n", strerror(errno));
    exit(1);
  }
  ssize_t got = read(fd, reply, sizeof reply - 1);
  reply[got > 0 ? got : 0] = '\0';
  reply[strcspn(reply, "\r\n")] = '\0';
  printf("%s: local %s:%u (DSCP %d) -> %s\n", name, local, ntohs(me.sin_port), dscp, reply);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: two_addresses HOST PORT [PATH]\n");
    return 2;
  }
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
    fprintf(stderr, "two_addresses: bad address %s\n", argv[1]);
    return 2;
  }
  const char *path = argc > 3 ? argv[3] : "/";
  int call1 = open_call(AF_INET, DPM_TUPLE_STATIC, 46, &server); /* EF: voice */
  int call2 = open_call(AF_INET_TUPLE, 0, 34, &server);          /* AF41: video */
  fetch("call 1", call1, path);
  fetch("call 2", call2, path);
  dpm_close(call1); /* each address goes back to the pool with its socket */
  dpm_close(call2);
  return 0;
}
