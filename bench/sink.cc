// kernel_sink / dpm_sink — the TCP receiver of bench/throughput.sh, built twice from this file.
//
// Listens, accepts one connection, read()s it with a 256 KiB buffer until end-of-file,
// closes it and prints "<program>: bytes=N seconds=S gbps=G" timed from the first byte to
// EOF. kernel_sink uses kernel sockets; dpm_sink (BENCH_SINK_DPM) listens in a dpm stack
// through libdpm (dpm_socket / dpm_bind / dpm_listen / dpm_accept) and then reads the
// accepted descriptor with plain read(), as any libdpm program may.
//
// Usage: kernel_sink --port P [--address A] [--timeout S]
//        dpm_sink --api-socket PATH --port P [--timeout S]
// Prints "<program>: listening" when a sender may connect. Exits 1 after --timeout seconds
// (default 60) without finishing, so a broken path cannot hang the benchmark.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bench_util.h"

#ifdef BENCH_SINK_DPM
#include "dpm/socket.h"
#endif

namespace {

#ifdef BENCH_SINK_DPM
constexpr const char* kProgram = "dpm_sink";
int Socket() { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }
int Bind(int fd, const sockaddr_in& a) { return dpm_bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)); }
int Listen(int fd) { return dpm_listen(fd, 16); }
int Accept(int fd, sockaddr_in* peer, socklen_t* len) { return dpm_accept(fd, reinterpret_cast<sockaddr*>(peer), len); }
int Close(int fd) { return dpm_close(fd); }
#else
constexpr const char* kProgram = "kernel_sink";
int Socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  return fd;
}
int Bind(int fd, const sockaddr_in& a) { return ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)); }
int Listen(int fd) { return ::listen(fd, 16); }
int Accept(int fd, sockaddr_in* peer, socklen_t* len) { return ::accept(fd, reinterpret_cast<sockaddr*>(peer), len); }
int Close(int fd) { return ::close(fd); }
#endif

constexpr size_t kBuffer = 256 * 1024;

void OnAlarm(int) {
  static const char msg[] = ": timed out\n";
  ssize_t ignored = ::write(2, kProgram, std::strlen(kProgram));
  ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  ::_exit(1);
}

void Usage() {
#ifdef BENCH_SINK_DPM
  std::fprintf(stderr, "usage: %s --api-socket PATH --port P [--timeout S]\n", kProgram);
#else
  std::fprintf(stderr, "usage: %s --port P [--address A] [--timeout S]\n", kProgram);
#endif
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  uint16_t port = 0;
  std::string address = "0.0.0.0";
  unsigned timeout = 60;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    const char* value = argv[++i];
    if (flag == "--port") {
      if (!bench::ParsePort(value, &port)) Usage();
    } else if (flag == "--address") {
      address = value;
    } else if (flag == "--timeout") {
      timeout = static_cast<unsigned>(std::atoi(value));
#ifdef BENCH_SINK_DPM
    } else if (flag == "--api-socket") {
      dpm_set_daemon_path(value);
#endif
    } else {
      Usage();
    }
  }
  if (port == 0) Usage();
  signal(SIGALRM, OnAlarm);
  alarm(timeout);

  sockaddr_in local = bench::MakeAddress(kProgram, address.c_str(), port);
  int listener = Socket();
  if (listener < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
  if (Bind(listener, local) != 0) bench::Die(kProgram, "bind %s:%u: %s", address.c_str(), port, std::strerror(errno));
  if (Listen(listener) != 0) bench::Die(kProgram, "listen: %s", std::strerror(errno));
  std::printf("%s: listening on %s:%u\n", kProgram, address.c_str(), port);
  std::fflush(stdout);

  sockaddr_in peer{};
  socklen_t peer_len = sizeof(peer);
  int fd = Accept(listener, &peer, &peer_len);
  if (fd < 0) bench::Die(kProgram, "accept: %s", std::strerror(errno));
  char peer_text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &peer.sin_addr, peer_text, sizeof(peer_text));
  std::printf("%s: connection from %s:%u\n", kProgram, peer_text, ntohs(peer.sin_port));
  std::fflush(stdout);

  std::vector<char> buf(kBuffer);
  uint64_t received = 0;
  double first = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      bench::Die(kProgram, "read after %llu bytes: %s", static_cast<unsigned long long>(received), std::strerror(errno));
    }
    if (n == 0) break;
    if (received == 0) first = bench::NowSeconds();
    received += static_cast<uint64_t>(n);
  }
  double elapsed = received ? bench::NowSeconds() - first : 0;
  Close(fd);
  Close(listener);
  bench::PrintRate(kProgram, received, elapsed);
  return 0;
}
