// dpm-cat — a netcat-like tool on libdpm: connect or listen, TCP or UDP, through a dpmd.
// Standard input goes to the socket, the socket to standard output; the local and peer
// addresses the stack gave are printed on standard error.
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/cli_number.h"
#include "apps/cli_parse.h"
#include "dpm/socket.h"

namespace {

struct Options {
  bool listen = false;
  bool udp = false;
  bool sendto = false;  // UDP client: no connect(), every datagram goes out with sendto()
  bool keep = false;
  bool echo = false;
  bool quiet = false;
  bool shutdown = false;
  std::string host;
  int port = 0;
  int local_port = 0;
  std::string local_address = "0.0.0.0";
  std::string socket_path;
  double wait_seconds = 2.0;
  long count = 0;
  int dscp = -1;                 // DPM_ADDRESS_DSCP, -1: not set
  std::string tuple = "common";  // docs/design.md §7: which address the socket gets
};

Options g;
unsigned long long g_sent = 0, g_received = 0;

void Note(const char* fmt, const std::string& a, const std::string& b = "") {
  if (!g.quiet) std::fprintf(stderr, fmt, a.c_str(), b.c_str());
}

std::string Str(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "dpm-cat: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// The socket the library tried, for errors that mean "no daemon there".
std::string DaemonPath() {
  char path[256];
  dpm_daemon_path(path, sizeof(path));
  return path;
}

// dpm_socket failed: say which daemon socket, when that is what went wrong.
[[noreturn]] void DieNoSocket() {
  if (errno == ENETDOWN) {
    std::fprintf(stderr, "dpm-cat: no dpmd answers at %s (start one, or give --socket / DPM_SOCKET)\n",
                 DaemonPath().c_str());
    std::exit(1);
  }
  if (errno == EACCES) {
    std::fprintf(stderr, "dpm-cat: the dpmd at %s refuses this user (not its user, root or in its --api-group)\n",
                 DaemonPath().c_str());
    std::exit(1);
  }
  Die("dpm_socket");
}

// "80" → 80; anything that is not a whole number in lo..hi is a usage error (exit 2).
int Port(const std::string& text, int lo) {
  std::string copy = text;
  if (!dpm::apps::WholeNumber(lo, 65535)(copy).empty()) {
    std::fprintf(stderr, "dpm-cat: bad port '%s': want a whole number from %d to 65535\n", text.c_str(), lo);
    std::exit(2);
  }
  return std::atoi(text.c_str());
}

sockaddr_in Address(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "dpm-cat: '%s' is not an IPv4 address\n", host.c_str());
    std::exit(2);
  }
  return a;
}

void PrintNames(int fd) {
  sockaddr_in local{}, peer{};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  dpm_getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll);
  if (dpm_getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) {
    Note("dpm-cat: local %s peer %s\n", Str(local), Str(peer));
  } else {
    Note("dpm-cat: local %s%s\n", Str(local));
  }
}

// At end of file: a socket the stack closed under the program (RST, or its address's lease
// ended) carries the reason in SO_ERROR; say it and fail.
void CheckClosedByStack(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (dpm_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
    std::fprintf(stderr, "dpm-cat: socket closed: %s\n", std::strerror(err));
    std::exit(1);
  }
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

// Copies both ways until the peer's FIN arrives. With -N, stdin's end is sent as our FIN and
// the copy goes on until both directions are finished (half-close, like OpenBSD nc -N).
// Without -N nothing is sent at stdin's end: HTTP servers such as nginx treat a client's FIN
// as "client went away" and stop sending.
void PumpTcp(int fd) {
  static char buf[256 * 1024];
  bool stdin_open = !g.echo;
  bool sock_open = true;
  while (sock_open || stdin_open) {
    pollfd p[2] = {{sock_open ? fd : -1, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Die("poll");
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = dpm_recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0) CheckClosedByStack(fd);
        sock_open = false;
        if (g.echo) dpm_shutdown(fd, SHUT_WR);
        if (!g.shutdown) stdin_open = false;
        continue;
      }
      g_received += static_cast<unsigned long long>(n);
      if (!WriteAll(g.echo ? fd : 1, buf, static_cast<size_t>(n))) Die("write");
      if (g.echo) g_sent += static_cast<unsigned long long>(n);
    }
    if (stdin_open && (p[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n <= 0) {
        stdin_open = false;
        if (g.shutdown) dpm_shutdown(fd, SHUT_WR);  // the peer gets FIN after everything sent
      } else {
        if (!WriteAll(fd, buf, static_cast<size_t>(n))) Die("send");
        g_sent += static_cast<unsigned long long>(n);
      }
    }
  }
}

void PumpUdp(int fd, bool have_peer, sockaddr_in peer) {
  static char buf[65536];
  bool stdin_open = !g.echo;
  long got = 0;
  bool noted_first = false;
  for (;;) {
    int timeout = stdin_open || g.listen ? -1 : static_cast<int>(g.wait_seconds * 1000);
    pollfd p[2] = {{fd, POLLIN, 0}, {0, static_cast<short>(stdin_open ? POLLIN : 0), 0}};
    int r = ::poll(p, stdin_open ? 2 : 1, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      Die("poll");
    }
    if (r == 0) return;  // quiet for --wait seconds after stdin ended
    if (p[0].revents & POLLIN) {
      sockaddr_in from{};
      socklen_t fl = sizeof(from);
      ssize_t n = dpm_recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 0) Die("recvfrom");
      if (n == 0) CheckClosedByStack(fd);  // end of file, or an empty datagram
      g_received += static_cast<unsigned long long>(n);
      if (!have_peer) {
        peer = from;
        have_peer = true;
        Note("dpm-cat: datagram from %s%s\n", Str(from));
      } else if (g.sendto && !noted_first) {
        Note("dpm-cat: datagram from %s%s\n", Str(from));
      }
      noted_first = true;
      if (g.echo) {
        if (dpm_sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl) < 0) Die("sendto");
        g_sent += static_cast<unsigned long long>(n);
      } else {
        WriteAll(1, buf, static_cast<size_t>(n));
      }
      if (g.count > 0 && ++got >= g.count) return;
    }
    if (stdin_open && (p[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n <= 0) {
        stdin_open = false;  // a listener keeps receiving; a sender waits --wait for replies
        continue;
      }
      if (!have_peer) continue;  // listening, nobody to send to yet
      if (dpm_sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) < 0) {
        Die("sendto");
      }
      g_sent += static_cast<unsigned long long>(n);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"dpm-cat: netcat through a dpm stack (libdpm). Connect: dpm-cat HOST PORT. Listen: dpm-cat -l PORT."};
  app.add_flag("-l,--listen", g.listen, "Listen for a connection (TCP) or datagrams (UDP) on PORT");
  app.add_flag("-u,--udp", g.udp, "UDP instead of TCP");
  app.add_flag("--sendto", g.sendto, "UDP client: do not connect; send each datagram with sendto() to HOST PORT");
  app.add_flag("-k,--keep-open", g.keep, "Listening: serve connections one after another until killed");
  app.add_flag("-e,--echo", g.echo, "Send back what arrives instead of using stdin/stdout");
  app.add_flag("-N,--shutdown", g.shutdown, "TCP: send FIN when stdin ends, then read until the peer's FIN");
  app.add_flag("-q,--quiet", g.quiet, "Do not print addresses and byte counts on stderr");
  app.set_version_flag("--version", "dpm-cat " DPM_VERSION);
  app.add_option("-p,--local-port", g.local_port, "Connect from this local port (bound explicitly)")
      ->check(dpm::apps::WholeNumber(1, 65535));
  app.add_option("-s,--source", g.local_address, "Local address to bind (default 0.0.0.0)");
  app.add_option("--socket", g.socket_path, "dpmd API socket: a file path, or @NAME for an abstract name of this network namespace "
                 "(default: $DPM_SOCKET, else " DPM_DEFAULT_DAEMON_PATH ")");
  app.add_option("-w,--wait", g.wait_seconds, "UDP: seconds to wait for replies after stdin ends")->capture_default_str();
  app.add_option("-c,--count", g.count, "UDP: exit after this many datagrams arrive");
  app.add_option("-t,--tuple", g.tuple,
                 "The socket's address: the instance's common one, a new one of its own from the static pool, "
                 "or a leased one (dpm_socket's tuple); new: family AF_INET_TUPLE (a new address "
                 "from the instance's default source)")
      ->check(CLI::IsMember({"common", "static", "dynamic", "new"}))
      ->capture_default_str();
  app.add_option("--dscp", g.dscp, "DSCP (0..63) marked on every packet of the socket's own address (DPM_ADDRESS_DSCP)")
      ->check(dpm::apps::WholeNumber(0, 63));
  std::vector<std::string> positional;
  app.add_option("args", positional, "HOST PORT to connect, or PORT to listen")->required();
  if (std::optional<int> done = dpm::apps::ParseCommandLine(app, argc, argv, "dpm-cat")) return *done;

  if (!g.socket_path.empty()) dpm_set_daemon_path(g.socket_path.c_str());
  if (g.listen) {
    if (positional.size() != 1) {
      std::fprintf(stderr, "dpm-cat: listening wants one argument, PORT\n");
      return 2;
    }
    g.port = Port(positional[0], 0);
  } else {
    if (positional.size() != 2) {
      std::fprintf(stderr, "dpm-cat: connecting wants HOST PORT\n");
      return 2;
    }
    g.host = positional[0];
    g.port = Port(positional[1], 1);
  }

  const int tuple = g.tuple == "static" ? DPM_TUPLE_STATIC : g.tuple == "dynamic" ? DPM_TUPLE_DYNAMIC : DPM_TUPLE_COMMON;
  int fd = dpm_socket(g.tuple == "new" ? AF_INET_TUPLE : AF_INET, g.udp ? SOCK_DGRAM : SOCK_STREAM, 0, tuple);
  if (fd < 0) DieNoSocket();
  if (g.dscp >= 0 && dpm_setsockopt(fd, DPM_SOL, DPM_ADDRESS_DSCP, &g.dscp, sizeof(g.dscp)) < 0) Die("DPM_ADDRESS_DSCP");
  int one = 1;
  dpm_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

  if (g.listen) {
    sockaddr_in local = Address(g.local_address, g.port);
    if (dpm_bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) Die("bind");
    if (g.udp) {
      PrintNames(fd);
      PumpUdp(fd, false, {});
    } else {
      if (dpm_listen(fd, 16) < 0) Die("listen");
      PrintNames(fd);
      do {
        sockaddr_in peer{};
        socklen_t pl = sizeof(peer);
        int c = dpm_accept(fd, reinterpret_cast<sockaddr*>(&peer), &pl);
        if (c < 0) Die("accept");
        PrintNames(c);
        PumpTcp(c);
        dpm_close(c);
      } while (g.keep);
    }
  } else {
    sockaddr_in remote = Address(g.host, g.port);
    if (g.local_port != 0 || g.local_address != "0.0.0.0") {
      sockaddr_in local = Address(g.local_address, g.local_port);
      if (dpm_bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) Die("bind");
    }
    if (!(g.udp && g.sendto) && dpm_connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) < 0) {
      Die("connect");
    }
    PrintNames(fd);
    if (g.udp) {
      PumpUdp(fd, true, remote);
    } else {
      PumpTcp(fd);
    }
  }
  if (!g.quiet) std::fprintf(stderr, "dpm-cat: sent %llu bytes, received %llu bytes\n", g_sent, g_received);
  dpm_close(fd);
  return 0;
}
