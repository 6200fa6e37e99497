// address_sockets — sockets with addresses of their own (docs/design.md §7),
// for bench/address_sockets.sh and tests/e2e/many_addresses.sh.
//
//   address_sockets --api-socket PATH churn SECONDS [--tuple static|common]
//       dpm_socket + dpm_getsockname + dpm_close in a loop for SECONDS (either tuple); prints
//       "address_sockets: churn tuple=T sockets=N seconds=S rate=R" (sockets per second).
//       With static, each socket takes a new address from the pool at dpm_socket() (dpmd's
//       default --address-at socket) and gives it back at close; getsockname checks it has one.
//   address_sockets kernel-churn SECONDS DEV BASE
//       The kernel's way to give a socket an address of its own, as the competitor: add a /32
//       to DEV (rtnetlink RTM_NEWADDR), socket + bind to it + getsockname + close, delete the
//       address (RTM_DELADDR); addresses BASE, BASE+1, ... Same result line, tuple=kernel.
//   address_sockets --api-socket PATH hold N [--tuple static|common] [--udp]
//                   [--connect HOST PORT [--http PATH]] [--threads T]
//       Opens N sockets and holds them: TCP sockets stay unconnected unless --connect; UDP
//       sockets bind to port 0. With --connect each connects to HOST:PORT from T threads (each
//       thread has its own libdpm control connection), and with --http sends
//       "GET PATH HTTP/1.1" and reads the whole response (Content-Length) — one complete TCP
//       exchange per socket. Checks that the sockets' addresses (getsockname) are all
//       different when the tuple is static. Prints
//       "address_sockets: held=N distinct=D exchanged=E seconds=S", then holds until
//       SIGTERM/SIGINT, closes everything and prints "address_sockets: closed=N".
//
// Exits 1 on the first failure, naming the socket and the errno.
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "dpm/socket.h"

namespace {
constexpr const char* kProgram = "address_sockets";

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: %s --api-socket PATH churn SECONDS [--tuple static|common]\n"
               "       %s kernel-churn SECONDS DEV BASE\n"
               "       %s --api-socket PATH hold N [--tuple static|common] [--udp] [--connect HOST PORT "
               "[--http PATH]] [--threads T]\n",
               kProgram, kProgram, kProgram);
  std::exit(2);
}

uint32_t LocalAddress(int fd, bool dpm) {
  sockaddr_in a{};
  socklen_t n = sizeof(a);
  int r = dpm ? dpm_getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n)
              : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  if (r != 0) bench::Die(kProgram, "getsockname: %s", std::strerror(errno));
  return ntohl(a.sin_addr.s_addr);
}

int Churn(double seconds, int tuple) {
  long count = 0;
  const double start = bench::NowSeconds();
  double now = start;
  while (now - start < seconds) {
    for (int i = 0; i < 64; ++i, ++count) {
      int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, tuple);
      if (fd < 0) bench::Die(kProgram, "dpm_socket #%ld: %s", count + 1, std::strerror(errno));
      const uint32_t address = LocalAddress(fd, true);  // both kinds: the same calls
      if (tuple == DPM_TUPLE_STATIC && address == 0) {
        bench::Die(kProgram, "socket #%ld has no address of its own", count + 1);
      }
      dpm_close(fd);
    }
    now = bench::NowSeconds();
  }
  std::printf("%s: churn tuple=%s sockets=%ld seconds=%.3f rate=%.0f\n", kProgram,
              tuple == DPM_TUPLE_STATIC ? "static" : "common", count, now - start, count / (now - start));
  return 0;
}

// ---- the kernel competitor: an address per socket through rtnetlink -----------------------

class Rtnetlink {
 public:
  Rtnetlink() {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd_ < 0) bench::Die(kProgram, "netlink socket: %s", std::strerror(errno));
  }
  ~Rtnetlink() { ::close(fd_); }
  // Adds (or deletes) address/32 on interface `index`; waits for the kernel's acknowledgement.
  void Address(bool add, int index, uint32_t address) {
    struct {
      nlmsghdr header;
      ifaddrmsg message;
      char attributes[2 * RTA_SPACE(4)];
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    request.header.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
    request.header.nlmsg_seq = ++sequence_;
    request.message.ifa_family = AF_INET;
    request.message.ifa_prefixlen = 32;
    request.message.ifa_index = static_cast<unsigned>(index);
    const uint32_t network = htonl(address);
    for (unsigned short type : {IFA_LOCAL, IFA_ADDRESS}) {
      auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&request) + NLMSG_ALIGN(request.header.nlmsg_len));
      rta->rta_type = type;
      rta->rta_len = RTA_LENGTH(4);
      std::memcpy(RTA_DATA(rta), &network, 4);
      request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_SPACE(4);
    }
    if (::send(fd_, &request, request.header.nlmsg_len, 0) < 0) {
      bench::Die(kProgram, "netlink send: %s", std::strerror(errno));
    }
    char reply[4096];
    ssize_t n = ::recv(fd_, reply, sizeof(reply), 0);
    auto* h = reinterpret_cast<nlmsghdr*>(reply);
    if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) || h->nlmsg_type != NLMSG_ERROR) {
      bench::Die(kProgram, "netlink: no acknowledgement");
    }
    int error = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    if (error != 0) bench::Die(kProgram, "netlink %s address: %s", add ? "add" : "delete", std::strerror(-error));
  }

 private:
  int fd_;
  uint32_t sequence_ = 0;
};

int KernelChurn(double seconds, const char* device, const char* base_text) {
  int index = static_cast<int>(if_nametoindex(device));
  if (index == 0) bench::Die(kProgram, "no interface %s", device);
  in_addr base{};
  if (inet_pton(AF_INET, base_text, &base) != 1) bench::Die(kProgram, "bad address %s", base_text);
  Rtnetlink rtnl;
  long count = 0;
  const double start = bench::NowSeconds();
  double now = start;
  while (now - start < seconds) {
    for (int i = 0; i < 64; ++i, ++count) {
      const uint32_t address = ntohl(base.s_addr) + static_cast<uint32_t>(count % 60000);
      rtnl.Address(true, index, address);
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(address);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        bench::Die(kProgram, "bind #%ld: %s", count + 1, std::strerror(errno));
      }
      if (LocalAddress(fd, false) != address) bench::Die(kProgram, "socket #%ld: wrong address", count + 1);
      ::close(fd);
      rtnl.Address(false, index, address);
    }
    now = bench::NowSeconds();
  }
  std::printf("%s: churn tuple=kernel sockets=%ld seconds=%.3f rate=%.0f\n", kProgram, count, now - start,
              count / (now - start));
  return 0;
}

// ---- hold --------------------------------------------------------------------------------

struct HoldOptions {
  long count = 0;
  int tuple = DPM_TUPLE_STATIC;
  bool udp = false;
  std::string host;
  uint16_t port = 0;
  std::string http_path;
  int threads = 16;
};

// One HTTP/1.1 exchange on a connected socket: the request, then the headers and
// Content-Length bytes of body. False with errno on failure (0: malformed or early EOF).
bool HttpExchange(int fd, const std::string& path) {
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: wan\r\n\r\n";
  if (!bench::WriteFull(fd, request.data(), request.size())) return false;
  std::string response;
  char buf[4096];
  size_t body_at = std::string::npos;
  size_t length = 0;
  for (;;) {
    if (body_at != std::string::npos && response.size() >= body_at + length) return true;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    response.append(buf, static_cast<size_t>(n));
    if (body_at == std::string::npos) {
      size_t end = response.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (response.compare(0, 12, "HTTP/1.1 200") != 0) {
        errno = 0;
        return false;
      }
      size_t cl = response.find("Content-Length: ");
      if (cl == std::string::npos || cl > end) {
        errno = 0;
        return false;
      }
      length = std::strtoul(response.c_str() + cl + 16, nullptr, 10);
      body_at = end + 4;
    }
  }
}

volatile sig_atomic_t g_stop = 0;

int Hold(const HoldOptions& o) {
  bench::RaiseDescriptorLimit(static_cast<rlim_t>(o.count) + 256);
  std::vector<int> fds(static_cast<size_t>(o.count), -1);
  std::vector<uint32_t> addresses(fds.size(), 0);
  std::atomic<long> exchanged{0};
  std::atomic<bool> failed{false};
  const double start = bench::NowSeconds();
  sockaddr_in peer{};
  if (!o.host.empty()) peer = bench::MakeAddress(kProgram, o.host.c_str(), o.port);
  auto open_range = [&](size_t first, size_t step) {
    for (size_t i = first; i < fds.size() && !failed; i += step) {
      int fd = dpm_socket(AF_INET, o.udp ? SOCK_DGRAM : SOCK_STREAM, 0, o.tuple);
      if (fd < 0) {
        std::fprintf(stderr, "%s: dpm_socket #%zu: %s\n", kProgram, i + 1, std::strerror(errno));
        failed = true;
        return;
      }
      fds[i] = fd;
      if (o.udp) {
        sockaddr_in any{};
        any.sin_family = AF_INET;
        if (dpm_bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) {
          std::fprintf(stderr, "%s: bind #%zu: %s\n", kProgram, i + 1, std::strerror(errno));
          failed = true;
          return;
        }
      }
      if (!o.host.empty()) {
        if (dpm_connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) != 0) {
          std::fprintf(stderr, "%s: connect #%zu: %s\n", kProgram, i + 1, std::strerror(errno));
          failed = true;
          return;
        }
        if (!o.http_path.empty()) {
          if (!HttpExchange(fd, o.http_path)) {
            std::fprintf(stderr, "%s: exchange #%zu: %s\n", kProgram, i + 1,
                         errno != 0 ? std::strerror(errno) : "bad or short response");
            failed = true;
            return;
          }
          exchanged++;
        }
      }
      addresses[i] = LocalAddress(fd, true);
    }
  };
  const int threads = o.host.empty() ? 1 : std::max(1, o.threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) workers.emplace_back(open_range, static_cast<size_t>(t), static_cast<size_t>(threads));
  for (auto& w : workers) w.join();
  if (failed) return 1;
  const double seconds = bench::NowSeconds() - start;
  std::set<uint32_t> distinct(addresses.begin(), addresses.end());
  std::printf("%s: held=%zu distinct=%zu exchanged=%ld seconds=%.3f\n", kProgram, fds.size(), distinct.size(),
              exchanged.load(), seconds);
  std::fflush(stdout);
  if (o.tuple == DPM_TUPLE_STATIC && distinct.size() != fds.size()) {
    std::fprintf(stderr, "%s: %zu sockets share addresses\n", kProgram, fds.size() - distinct.size());
    return 1;
  }
  while (!g_stop) ::pause();
  for (int fd : fds) dpm_close(fd);
  std::printf("%s: closed=%zu\n", kProgram, fds.size());
  return 0;
}

int ParseTuple(const std::string& s) {
  if (s == "static") return DPM_TUPLE_STATIC;
  if (s == "common") return DPM_TUPLE_COMMON;
  Usage();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 2 && args[0] == "--api-socket") {
    dpm_set_daemon_path(args[1].c_str());
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) Usage();
  const std::string mode = args[0];
  if (mode == "kernel-churn") {
    if (args.size() != 4) Usage();
    return KernelChurn(std::atof(args[1].c_str()), args[2].c_str(), args[3].c_str());
  }
  if (mode == "churn") {
    if (args.size() != 2 && !(args.size() == 4 && args[2] == "--tuple")) Usage();
    return Churn(std::atof(args[1].c_str()), args.size() == 4 ? ParseTuple(args[3]) : DPM_TUPLE_STATIC);
  }
  if (mode != "hold" || args.size() < 2) Usage();
  HoldOptions o;
  o.count = std::atol(args[1].c_str());
  if (o.count <= 0) Usage();
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string& flag = args[i];
    auto next = [&]() -> const std::string& {
      if (i + 1 >= args.size()) Usage();
      return args[++i];
    };
    if (flag == "--tuple") {
      o.tuple = ParseTuple(next());
    } else if (flag == "--udp") {
      o.udp = true;
    } else if (flag == "--connect") {
      o.host = next();
      if (!bench::ParsePort(next().c_str(), &o.port)) Usage();
    } else if (flag == "--http") {
      o.http_path = next();
    } else if (flag == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else {
      Usage();
    }
  }
  if (o.udp && !o.host.empty()) Usage();
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  return Hold(o);
}
