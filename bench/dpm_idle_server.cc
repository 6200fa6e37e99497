// dpm_idle_server — the libdpm side of bench/idle_memory.sh.
//
// Listens on --port in a dpm stack, accepts --count connections and holds them open. With
// --exchange B it first reads B bytes from each connection and writes B bytes back (a
// request and a reply, as a keep-alive connection has seen), otherwise it never reads or
// writes. Prints "dpm_idle_server: accepted=N" when all are in, then waits for
// SIGTERM/SIGINT. Exits 1 if they are not all in after --timeout seconds (default 120).
//
// Usage: dpm_idle_server --api-socket PATH --port P --count N [--exchange B] [--timeout S]
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bench_util.h"
#include "dpm/socket.h"

namespace {
constexpr const char* kProgram = "dpm_idle_server";

void Usage() {
  std::fprintf(stderr, "usage: %s --api-socket PATH --port P --count N [--exchange B] [--timeout S]\n", kProgram);
  std::exit(2);
}
}  // namespace

int main(int argc, char** argv) {
  uint16_t port = 0;
  long count = 0;
  long exchange = 0;
  unsigned timeout = 120;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    const char* value = argv[++i];
    if (flag == "--api-socket") {
      dpm_set_daemon_path(value);
    } else if (flag == "--port") {
      if (!bench::ParsePort(value, &port)) Usage();
    } else if (flag == "--count") {
      count = std::atol(value);
    } else if (flag == "--exchange") {
      exchange = std::atol(value);
      if (exchange < 0 || exchange > 65536) Usage();
    } else if (flag == "--timeout") {
      timeout = static_cast<unsigned>(std::atoi(value));
    } else {
      Usage();
    }
  }
  if (port == 0 || count <= 0) Usage();
  rlim_t limit = bench::RaiseDescriptorLimit(static_cast<rlim_t>(count) + 64);
  if (limit < static_cast<rlim_t>(count) + 16) {
    bench::Die(kProgram, "descriptor limit %llu is too low for %ld connections (raise ulimit -Hn)",
               static_cast<unsigned long long>(limit), count);
  }

  int listener = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (listener < 0) bench::Die(kProgram, "dpm_socket: %s", std::strerror(errno));
  sockaddr_in local = bench::MakeAddress(kProgram, "0.0.0.0", port);
  if (dpm_bind(listener, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    bench::Die(kProgram, "dpm_bind port %u: %s", port, std::strerror(errno));
  }
  if (dpm_listen(listener, 255) != 0) bench::Die(kProgram, "dpm_listen: %s", std::strerror(errno));
  std::printf("%s: listening on port %u for %ld connections\n", kProgram, port, count);
  std::fflush(stdout);

  // A watchdog: the accept loop blocks, so the deadline is an alarm.
  signal(SIGALRM, [](int) {
    static const char msg[] = "dpm_idle_server: timed out before all connections were accepted\n";
    ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    ::_exit(1);
  });
  alarm(timeout);

  std::vector<int> held;
  held.reserve(static_cast<size_t>(count));
  std::vector<char> message(static_cast<size_t>(exchange), 'r');
  while (static_cast<long>(held.size()) < count) {
    int fd = dpm_accept(listener, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR) continue;
      bench::Die(kProgram, "dpm_accept after %zu connections: %s", held.size(), std::strerror(errno));
    }
    if (exchange > 0) {
      if (!bench::ReadFull(fd, message.data(), message.size())) {
        bench::Die(kProgram, "reading the request on connection #%zu: %s", held.size() + 1,
                   errno ? std::strerror(errno) : "early EOF");
      }
      if (!bench::WriteFull(fd, message.data(), message.size())) {
        bench::Die(kProgram, "writing the reply on connection #%zu: %s", held.size() + 1, std::strerror(errno));
      }
    }
    held.push_back(fd);
  }
  alarm(0);
  std::printf("%s: accepted=%zu\n", kProgram, held.size());
  std::fflush(stdout);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  for (int fd : held) dpm_close(fd);
  dpm_close(listener);
  return 0;
}
