// slow_reader — a deliberately slow TCP reader on libdpm, for the flow-control test
// (tests/e2e/flow_control.sh). Listens on PORT, accepts one connection, waits PAUSE seconds
// without reading, then reads the first SLOW_BYTES at RATE bytes per second and the rest at
// full speed. Everything read goes to standard output; progress lines go to standard error.
//
//   slow_reader --socket API --port PORT [--pause S] [--rate BYTES_PER_S] [--slow-bytes N]
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dpm/socket.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "slow_reader: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string api;
  int port = 0;
  double pause_s = 0, rate = 1e6;
  long long slow_bytes = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--socket") {
      api = v;
    } else if (flag == "--port") {
      port = std::atoi(v);
    } else if (flag == "--pause") {
      pause_s = std::atof(v);
    } else if (flag == "--rate") {
      rate = std::atof(v);
    } else if (flag == "--slow-bytes") {
      slow_bytes = std::atoll(v);
    } else {
      std::fprintf(stderr, "slow_reader: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (port <= 0 || rate <= 0) {
    std::fprintf(stderr, "usage: slow_reader --socket API --port PORT [--pause S] [--rate B/s] [--slow-bytes N]\n");
    return 2;
  }
  if (!api.empty()) dpm_set_daemon_path(api.c_str());

  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (fd < 0) Die("dpm_socket");
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<uint16_t>(port));
  if (dpm_bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) Die("dpm_bind");
  if (dpm_listen(fd, 1) < 0) Die("dpm_listen");
  std::fprintf(stderr, "slow_reader: listening on port %d\n", port);
  int c = dpm_accept(fd, nullptr, nullptr);
  if (c < 0) Die("dpm_accept");
  std::fprintf(stderr, "slow_reader: accepted; pausing %.1f s\n", pause_s);
  std::this_thread::sleep_for(std::chrono::duration<double>(pause_s));
  std::fprintf(stderr, "slow_reader: reading\n");

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  std::vector<char> buf(64 * 1024);
  long long total = 0;
  for (;;) {
    size_t want = buf.size();
    if (total < slow_bytes) {
      // Never ahead of the allowed rate: sleep until the bytes read so far are "due".
      want = std::min<size_t>(want, 16 * 1024);
      auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(total / rate));
      std::this_thread::sleep_until(due);
    }
    ssize_t n = dpm_recv(c, buf.data(), want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("dpm_recv");
    if (n == 0) break;
    if (!WriteAll(1, buf.data(), static_cast<size_t>(n))) Die("write");
    total += n;
  }
  std::fprintf(stderr, "slow_reader: received %lld bytes\n", total);
  dpm_close(c);
  dpm_close(fd);
  return 0;
}
