/* connect_rate / connect_rate_dpm — TCP connections set up and closed per second
 * (bench/preload.sh), built twice from this file: connect_rate on kernel sockets (run plainly,
 * or under dpm-run, where the preload hook maps its calls onto a dpm instance) and
 * connect_rate_dpm (CONNECT_RATE_DPM) through libdpm's own calls.
 *
 *   connect_rate HOST PORT [--count N] [--timeout S]          (connect_rate_dpm: [--api-socket PATH])
 *   connect_rate --listen PORT [--address A] [--timeout S]    (kernel sockets in both builds)
 *
 * The client does N times: socket(), a blocking connect(), read() until end-of-file, close().
 * The listener accepts each connection and closes it at once, so every connection is a whole
 * three-way handshake and close, the listener's side holds TIME_WAIT and the client's
 * ephemeral ports come free again (the client closes second: no TIME_WAIT there). The client
 * prints "<program>: connections=N seconds=S per_second=R p50_us=A p99_us=B" (time per
 * connection, socket() to close()) and exits 1 on the first failure or after --timeout
 * seconds (default 120); the listener prints "<program>: listening" when ready and runs
 * until killed or --timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef CONNECT_RATE_DPM
#include "dpm/socket.h"
static const char *const kProgram = "connect_rate_dpm";
static int Socket(void) { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }
static int Connect(int fd, const struct sockaddr_in *a) {
  return dpm_connect(fd, (const struct sockaddr *)a, sizeof(*a));
}
static int Close(int fd) { return dpm_close(fd); }
#else
static const char *const kProgram = "connect_rate";
static int Socket(void) { return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }
static int Connect(int fd, const struct sockaddr_in *a) {
  return connect(fd, (const struct sockaddr *)a, sizeof(*a));
}
static int Close(int fd) { return close(fd); }
#endif

static void Die(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", kProgram, what, strerror(errno));
  exit(1);
}

static void OnAlarm(int sig) {
  (void)sig;
  static const char msg[] = ": timed out\n";
  ssize_t ignored = write(2, kProgram, strlen(kProgram));
  ignored = write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  _exit(1);
}

static void Usage(void) {
  fprintf(stderr,
          "usage: %s HOST PORT [--count N] [--timeout S]%s\n"
          "       %s --listen PORT [--address A] [--timeout S]\n",
          kProgram,
#ifdef CONNECT_RATE_DPM
          " [--api-socket PATH]",
#else
          "",
#endif
          kProgram);
  exit(2);
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int CompareDoubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static struct sockaddr_in Address(const char *host, const char *port_text) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  char *end = NULL;
  long port = strtol(port_text, &end, 10);
  if (end == port_text || *end != '\0' || port < 1 || port > 65535) Usage();
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "%s: bad IPv4 address '%s'\n", kProgram, host);
    exit(2);
  }
  return a;
}

/* The listener: accept and close at once, forever. Kernel sockets in both builds. */
static int Listen(const struct sockaddr_in *local) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (const struct sockaddr *)local, sizeof(*local)) != 0) Die("bind");
  if (listen(fd, 1024) != 0) Die("listen");
  printf("%s: listening on port %u\n", kProgram, ntohs(local->sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      Die("accept");
    }
    close(c);
  }
}

int main(int argc, char **argv) {
  const char *host = NULL, *port = NULL, *listen_port = NULL, *address = "0.0.0.0";
  long count = 10000;
  unsigned timeout = 120;
  for (int i = 1; i < argc; ++i) {
    const char *flag = argv[i];
    if (flag[0] != '-' || flag[1] != '-') {
      if (host == NULL) host = flag;
      else if (port == NULL) port = flag;
      else Usage();
      continue;
    }
    if (i + 1 >= argc) Usage();
    const char *value = argv[++i];
    if (strcmp(flag, "--count") == 0) {
      count = strtol(value, NULL, 10);
      if (count < 1) Usage();
    } else if (strcmp(flag, "--timeout") == 0) {
      timeout = (unsigned)strtoul(value, NULL, 10);
    } else if (strcmp(flag, "--listen") == 0) {
      listen_port = value;
    } else if (strcmp(flag, "--address") == 0) {
      address = value;
#ifdef CONNECT_RATE_DPM
    } else if (strcmp(flag, "--api-socket") == 0) {
      dpm_set_daemon_path(value);
#endif
    } else {
      Usage();
    }
  }
  signal(SIGALRM, OnAlarm);
  alarm(timeout);
  if (listen_port != NULL) {
    if (host != NULL) Usage();
    struct sockaddr_in local = Address(address, listen_port);
    return Listen(&local);
  }
  if (host == NULL || port == NULL) Usage();
  struct sockaddr_in peer = Address(host, port);

  double *each = malloc(sizeof(double) * (size_t)count);
  if (each == NULL) Die("malloc");
  char buf[256];
  double start = Now();
  for (long i = 0; i < count; ++i) {
    double t0 = Now();
    int fd = Socket();
    if (fd < 0) Die("socket");
    if (Connect(fd, &peer) != 0) {
      fprintf(stderr, "%s: connect %s:%s (connection %ld): %s\n", kProgram, host, port, i + 1, strerror(errno));
      return 1;
    }
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
    }
    if (n < 0 && errno != ECONNRESET) Die("read");
    if (Close(fd) != 0) Die("close");
    each[i] = Now() - t0;
  }
  double seconds = Now() - start;
  qsort(each, (size_t)count, sizeof(double), CompareDoubles);
  printf("%s: connections=%ld seconds=%.3f per_second=%.0f p50_us=%.1f p99_us=%.1f\n", kProgram, count, seconds,
         (double)count / seconds, each[count / 2] * 1e6, each[(count * 99) / 100] * 1e6);
  free(each);
  return 0;
}
