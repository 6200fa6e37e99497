// echo_server — a concurrent TCP and UDP echo server on libdpm, for the end-to-end tests.
// One thread per TCP connection (so it also exercises libdpm from many threads at once) and
// one thread echoing UDP datagrams on the same port. Runs until killed.
//
//   echo_server --socket API --port PORT
#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "dpm/socket.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "echo_server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void EchoTcp(int c) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = dpm_recv(c, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = dpm_send(c, buf + off, static_cast<size_t>(n - off), 0);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        dpm_close(c);
        return;
      }
      off += w;
    }
  }
  dpm_shutdown(c, SHUT_WR);  // our FIN after everything echoed
  dpm_close(c);
}

void EchoUdp(int u) {
  char buf[65536];
  for (;;) {
    sockaddr_in from{};
    socklen_t fl = sizeof(from);
    ssize_t n = dpm_recvfrom(u, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("dpm_recvfrom");
    dpm_sendto(u, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string api;
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--socket") == 0) api = argv[i + 1];
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: echo_server --socket API --port PORT\n");
    return 2;
  }
  if (!api.empty()) dpm_set_daemon_path(api.c_str());
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<uint16_t>(port));

  int u = dpm_socket(AF_INET, SOCK_DGRAM, 0, DPM_TUPLE_COMMON);
  if (u < 0) Die("dpm_socket udp");
  if (dpm_bind(u, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) Die("dpm_bind udp");
  std::thread(EchoUdp, u).detach();

  int l = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (l < 0) Die("dpm_socket tcp");
  if (dpm_bind(l, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) Die("dpm_bind tcp");
  if (dpm_listen(l, 128) < 0) Die("dpm_listen");
  std::fprintf(stderr, "echo_server: ready on port %d\n", port);
  for (;;) {
    int c = dpm_accept(l, nullptr, nullptr);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      Die("dpm_accept");
    }
    std::thread(EchoTcp, c).detach();
  }
}
