// idle_clients — the kernel side of bench/idle_memory.sh.
//
// Opens N TCP connections to HOST:PORT one after another (kernel sockets, distinct source
// ports) and holds them open. With --exchange B it sends B bytes on each connection right
// after connecting and, once all are open, reads a B-byte reply from each (the server's
// side of the same option); otherwise it never sends. Prints "idle_clients: connected=N"
// when all are up (and answered), then waits for SIGTERM/SIGINT. Each connect and read has
// a 10 s limit; the first failure ends the program with an error.
//
// Usage: idle_clients HOST PORT N [--exchange B]
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bench_util.h"

namespace {
constexpr const char* kProgram = "idle_clients";
}

int main(int argc, char** argv) {
  uint16_t port = 0;
  long exchange = 0;
  if (argc == 6 && std::string(argv[4]) == "--exchange") exchange = std::atol(argv[5]);
  if ((argc != 4 && argc != 6) || !bench::ParsePort(argv[2], &port) || std::atol(argv[3]) <= 0 || exchange < 0 ||
      exchange > 65536 || (argc == 6 && exchange == 0)) {
    std::fprintf(stderr,
                 "usage: %s HOST PORT N [--exchange B]\n  opens N idle TCP connections to HOST:PORT and holds "
                 "them\n",
                 kProgram);
    return 2;
  }
  long count = std::atol(argv[3]);
  sockaddr_in peer = bench::MakeAddress(kProgram, argv[1], port);
  rlim_t limit = bench::RaiseDescriptorLimit(static_cast<rlim_t>(count) + 64);
  if (limit < static_cast<rlim_t>(count) + 16) {
    bench::Die(kProgram, "descriptor limit %llu is too low for %ld connections (raise ulimit -Hn)",
               static_cast<unsigned long long>(limit), count);
  }

  std::vector<int> held;
  held.reserve(static_cast<size_t>(count));
  std::vector<char> message(static_cast<size_t>(exchange), 'q');
  timeval limit_tv{10, 0};  // SO_SNDTIMEO bounds a blocking connect(), SO_RCVTIMEO a read()
  double start = bench::NowSeconds();
  while (static_cast<long>(held.size()) < count) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) bench::Die(kProgram, "socket after %zu connections: %s", held.size(), std::strerror(errno));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit_tv, sizeof(limit_tv));
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit_tv, sizeof(limit_tv));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) != 0) {
      bench::Die(kProgram, "connect #%zu to %s:%u: %s", held.size() + 1, argv[1], port, std::strerror(errno));
    }
    if (exchange > 0 && !bench::WriteFull(fd, message.data(), message.size())) {
      bench::Die(kProgram, "send on connection #%zu: %s", held.size() + 1, std::strerror(errno));
    }
    held.push_back(fd);
  }
  for (size_t i = 0; exchange > 0 && i < held.size(); ++i) {
    if (!bench::ReadFull(held[i], message.data(), message.size())) {
      bench::Die(kProgram, "reply on connection #%zu: %s", i + 1, errno ? std::strerror(errno) : "early EOF");
    }
  }
  std::printf("%s: connected=%zu seconds=%.2f\n", kProgram, held.size(), bench::NowSeconds() - start);
  std::fflush(stdout);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  for (int fd : held) ::close(fd);
  return 0;
}
