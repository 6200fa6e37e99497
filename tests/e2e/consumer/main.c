/* A program built out of tree against an installed dpm (e2e.install_consumer): it sees only
 * the installed <dpm/socket.h> and libdpm, found through pkg-config or find_package(dpm).
 *
 *   consumer down               dpm_socket() fails with ENETDOWN when nothing listens at
 *                               DPM_SOCKET, and dpm_daemon_path() names that socket
 *   consumer send HOST PORT TEXT  connects through the dpmd at DPM_SOCKET, prints the local and
 *                               peer address the stack gave, sends TEXT and closes
 */
#include <dpm/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_endpoint(const char *what, const struct sockaddr_in *a) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  printf("%s %s:%u", what, text, (unsigned)ntohs(a->sin_port));
}

static int down(void) {
  char path[256];
  size_t len = dpm_daemon_path(path, sizeof path);
  const char *env = getenv("DPM_SOCKET");
  if (env == NULL || strcmp(env, path) != 0 || len != strlen(env)) {
    fprintf(stderr, "consumer: dpm_daemon_path() gave '%s' (%zu), DPM_SOCKET is '%s'\n", path, len,
            env != NULL ? env : "(unset)");
    return 1;
  }
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (fd >= 0 || errno != ENETDOWN) {
    fprintf(stderr, "consumer: dpm_socket() gave %d (%s), want -1 with ENETDOWN\n", fd, strerror(errno));
    return 1;
  }
  printf("ENETDOWN at %s\n", path);
  return 0;
}

static int send_text(const char *host, const char *port, const char *text) {
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (fd < 0) { perror("consumer: dpm_socket"); return 1; }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1) { fprintf(stderr, "consumer: bad host %s\n", host); return 1; }
  if (dpm_connect(fd, (struct sockaddr *)&to, sizeof to) < 0) { perror("consumer: dpm_connect"); return 1; }
  struct sockaddr_in local, peer;
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (dpm_getsockname(fd, (struct sockaddr *)&local, &ll) < 0 || dpm_getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
    perror("consumer: dpm_getsockname/dpm_getpeername");
    return 1;
  }
  print_endpoint("local", &local);
  print_endpoint(" peer", &peer);
  printf("\n");
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) { perror("consumer: write"); return 1; }
  return dpm_close(fd) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "down") == 0) return down();
  if (argc == 5 && strcmp(argv[1], "send") == 0) return send_text(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: consumer down | consumer send HOST PORT TEXT\n");
  return 2;
}
