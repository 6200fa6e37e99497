// tcp_blast / dpm_blast — the TCP sender of bench/throughput.sh and bench/preload.sh, built
// twice from this file: tcp_blast on kernel sockets, dpm_blast (BENCH_BLAST_DPM) through
// libdpm (dpm_socket / dpm_connect / dpm_shutdown / dpm_close; the data with plain send()).
//
// Connects to HOST:PORT and writes from a 256 KiB buffer for --seconds T (default 5) or
// until --bytes N are written, then shuts down its sending side and waits for the receiver
// to close, so that when it exits the receiver has read everything. Prints the bytes it
// wrote ("tcp_blast: bytes=N seconds=S gbps=G"); the sink's count must match.
//
// Usage: tcp_blast HOST PORT [--seconds T | --bytes N] [--connect-timeout S]
//        dpm_blast HOST PORT [...] [--api-socket PATH]
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "bench_util.h"

#ifdef BENCH_BLAST_DPM
#include "dpm/socket.h"
#endif

namespace {
#ifdef BENCH_BLAST_DPM
constexpr const char* kProgram = "dpm_blast";
int Socket() { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }
int Connect(int fd, const sockaddr_in& a) { return dpm_connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)); }
int ShutdownWrite(int fd) { return dpm_shutdown(fd, SHUT_WR); }
int Close(int fd) { return dpm_close(fd); }
#else
constexpr const char* kProgram = "tcp_blast";
int Socket() { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }
int Connect(int fd, const sockaddr_in& a) { return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)); }
int ShutdownWrite(int fd) { return ::shutdown(fd, SHUT_WR); }
int Close(int fd) { return ::close(fd); }
#endif
constexpr size_t kBuffer = 256 * 1024;

void Usage() {
  std::fprintf(stderr,
               "usage: %s HOST PORT [--seconds T | --bytes N[K|M|G]] [--connect-timeout S]%s\n"
               "  writes to HOST:PORT for T seconds (default 5) or N bytes, then half-closes\n"
               "  and waits for the receiver to close\n",
               kProgram,
#ifdef BENCH_BLAST_DPM
               " [--api-socket PATH]"
#else
               ""
#endif
  );
  std::exit(2);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) Usage();
  const char* host = argv[1];
  uint16_t port = 0;
  if (!bench::ParsePort(argv[2], &port)) Usage();
  double seconds = 5;
  uint64_t limit = 0;
  double connect_timeout = 10;
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    const char* value = argv[++i];
    if (flag == "--seconds") {
      seconds = std::atof(value);
      if (seconds <= 0) Usage();
    } else if (flag == "--bytes") {
      if (!bench::ParseSize(value, &limit) || limit == 0) Usage();
    } else if (flag == "--connect-timeout") {
      connect_timeout = std::atof(value);
#ifdef BENCH_BLAST_DPM
    } else if (flag == "--api-socket") {
      dpm_set_daemon_path(value);
#endif
    } else {
      Usage();
    }
  }
  sockaddr_in peer = bench::MakeAddress(kProgram, host, port);

  // The receiver may still be starting: retry refused connections for a while.
  int fd = -1;
  double give_up = bench::NowSeconds() + connect_timeout;
  for (;;) {
    fd = Socket();
    if (fd < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
    if (Connect(fd, peer) == 0) break;
    int err = errno;
    Close(fd);
    if (bench::NowSeconds() > give_up) bench::Die(kProgram, "connect %s:%u: %s", host, port, std::strerror(err));
    ::usleep(50 * 1000);
  }

  std::vector<char> buf(kBuffer);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131 + 7);
  uint64_t sent = 0;
  double start = bench::NowSeconds();
  double deadline = limit ? 0 : start + seconds;
  for (;;) {
    size_t want = kBuffer;
    if (limit) {
      if (sent >= limit) break;
      if (limit - sent < want) want = static_cast<size_t>(limit - sent);
    } else if (bench::NowSeconds() >= deadline) {
      break;  // a vDSO clock read costs nothing next to a 256 KiB send()
    }
    ssize_t n = ::send(fd, buf.data(), want, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      bench::Die(kProgram, "send after %llu bytes: %s", static_cast<unsigned long long>(sent), std::strerror(errno));
    }
    sent += static_cast<uint64_t>(n);
  }
  double wrote = bench::NowSeconds() - start;
  // Half-close and wait for the receiver's close: it has then read every byte.
  ShutdownWrite(fd);
  char sink[4096];
  while (::recv(fd, sink, sizeof(sink), 0) > 0) {
  }
  Close(fd);
  bench::PrintRate(kProgram, sent, wrote);
  return 0;
}
