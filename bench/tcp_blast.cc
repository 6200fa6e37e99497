// tcp_blast — kernel-socket TCP sender for bench/throughput.sh.
//
// Connects to HOST:PORT and writes from a 256 KiB buffer for --seconds T (default 5) or
// until --bytes N are written, then shuts down its sending side and waits for the receiver
// to close, so that when it exits the receiver has read everything. Prints the bytes it
// wrote ("tcp_blast: bytes=N seconds=S gbps=G"); the sink's count must match.
//
// Usage: tcp_blast HOST PORT [--seconds T | --bytes N] [--connect-timeout S]
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "bench_util.h"

namespace {
constexpr const char* kProgram = "tcp_blast";
constexpr size_t kBuffer = 256 * 1024;

void Usage() {
  std::fprintf(stderr,
               "usage: %s HOST PORT [--seconds T | --bytes N[K|M|G]] [--connect-timeout S]\n"
               "  writes to HOST:PORT for T seconds (default 5) or N bytes, then half-closes\n"
               "  and waits for the receiver to close\n",
               kProgram);
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
    } else {
      Usage();
    }
  }
  sockaddr_in peer = bench::MakeAddress(kProgram, host, port);

  // The receiver may still be starting: retry refused connections for a while.
  int fd = -1;
  double give_up = bench::NowSeconds() + connect_timeout;
  for (;;) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) == 0) break;
    int err = errno;
    ::close(fd);
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
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  while (::recv(fd, sink, sizeof(sink), 0) > 0) {
  }
  ::close(fd);
  bench::PrintRate(kProgram, sent, wrote);
  return 0;
}
