// The live setup exchange (bench/setup_latency.sh): a kernel-socket client
// that sends the DPM driver's PCP PEER requests (as src/dpm/dpm_driver.cc encodes them) to a
// running `dpmd gateway` and checks every reply, plus the same-path references the script
// compares them with: a NAT-PMP public address request (the gateway's UDP path and DPM server
// dispatch without the PCP codec and the table), a UDP datagram to a closed port of the
// gateway (answered by its lwIP with ICMP port unreachable), ICMP echo to the gateway, and a
// UDP echo (against a kernel echo server, which this program also is).
//
//   pcp_client pcp  --server A [--port 1080] --count N [--window W] [--fixed] [--base B]
//                   [--phases setup,renew,release] [--lifetime S] [--timeout-ms T]
//   pcp_client ping --server A --count N [--window W] [--size 84] [--timeout-ms T]     (root)
//   pcp_client udp-echo --server A --port P --count N [--window W] [--size 84] [--timeout-ms T]
//   pcp_client udp-closed --server A --port P --count N [--window W] [--size 84] [--timeout-ms T]
//   pcp_client natpmp --server A [--port 5351] --count N [--window W] [--timeout-ms T]
//   pcp_client echo-server --bind A --port P
//
// Window 1 is a sequential exchange (each request sent when the previous reply arrived: the
// latency); a larger window keeps W requests outstanding (the rate). Latency is from the
// request's send() to its reply's recv(), so with W > 1 it includes queueing. A request not
// answered within --timeout-ms (default 1000) is counted lost, never retried.
//
// pcp: request i is a PEER from this socket's address (the PCP client address) for TCP
// internal port 1024 + i % 60000 toward 198.51.100.(1 + (B + i / 60000) % 250):443
// (replaceable), or, with --fixed, DPM_PORT_FIXED on ports 5060-5067 toward a destination of
// its own (port 1024 + (i / 8) % 64000 on address 198.51.100.(1 + (B + i / 512000) % 250)),
// so fixed external ports are shared. Phases (default setup,release): setup creates the N
// sessions; renew asks for each again (same nonce, the granted endpoint suggested); release
// sends lifetime 0, so the gateway's table is empty again afterwards. A reply counts "ok" when it is
// a PEER response with SUCCESS, the request's nonce and internal port, and (setup/renew) the
// DPM session endpoint, a fixed port kept; lifetime 0 after a release. Anything else is "bad".
//
// One result line per phase:
//   pcp_client: mode=pcp phase=setup window=1 count=N ok=N bad=0 lost=0 seconds=S rate=R
//               mean_us=M p50_us=A p99_us=B p999_us=C max_us=D client_cpu=F
// (client_cpu: this process's CPU time over the phase's wall time; near 1.00 with a window
// means the client, not the gateway, sets the rate).
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "dpm/pcp.h"

namespace {

namespace pcp = dpm::pcp;
constexpr const char* kProgram = "pcp_client";

struct Options {
  std::string mode;
  std::string server;
  uint16_t port = pcp::kDpmPort;
  uint64_t count = 10000;
  uint64_t window = 1;
  bool fixed = false;
  uint32_t base = 0;
  std::string phases = "setup,release";
  uint32_t lifetime = 600;
  size_t size = 84;
  double timeout_s = 1.0;
};

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// One measured phase over a connected datagram socket: `send(i)` writes request i (false on
// EAGAIN: try again later), `match(bytes, n)` names the request a datagram answers — its
// index, -1 for a datagram that is not an answer of this run (ignored, e.g. another ICMP
// message on a raw socket), -2 for a wrong answer (counted bad), kOldest for a right answer
// that names no request (NAT-PMP): it answers the oldest outstanding one, as answers come
// back in order.
constexpr int64_t kOldest = -3;
struct PhaseResult {
  uint64_t ok = 0, bad = 0, lost = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // this process's user + system time during the phase
  std::vector<double> us;
};

// `icmp_answers`: the answer to each request is an ICMP port unreachable (udp-closed mode),
// read from the socket's error queue (IP_RECVERR) and taken as the answer to the oldest
// outstanding request (the answers come back in order; the quote holds no payload to match).
PhaseResult RunPhase(int fd, uint64_t count, uint64_t window, double timeout_s,
                     const std::function<bool(uint64_t)>& send,
                     const std::function<int64_t(const uint8_t*, size_t)>& match, bool icmp_answers = false) {
  PhaseResult r;
  r.us.reserve(count);
  std::vector<double> sent_at(count, 0);
  std::vector<uint8_t> state(count, 0);  // 0 not sent, 1 outstanding, 2 done
  uint64_t next = 0, low = 0, outstanding = 0, finished = 0;
  uint8_t buf[2048];
  const double cpu_start = CpuSeconds();
  const double start = bench::NowSeconds();
  while (finished < count) {
    bool blocked = false;  // the socket's send buffer was full
    while (outstanding < window && next < count) {
      const double t = bench::NowSeconds();
      if (!send(next)) {
        blocked = true;
        break;
      }
      sent_at[next] = t;
      state[next] = 1;
      ++next;
      ++outstanding;
    }
    // Wait for a reply, at most until the oldest outstanding request times out.
    while (low < next && state[low] == 2) ++low;
    int wait_ms = 1000;
    if (low < next) {
      const double left = sent_at[low] + timeout_s - bench::NowSeconds();
      wait_ms = left <= 0 ? 0 : static_cast<int>(left * 1000) + 1;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (blocked ? POLLOUT : 0)), 0};
    if (outstanding == window || next == count || blocked) {
      if (poll(&p, 1, wait_ms) < 0 && errno != EINTR) bench::Die(kProgram, "poll: %s", std::strerror(errno));
    }
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      const double t = bench::NowSeconds();
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        if (errno == ECONNREFUSED) {  // an ICMP error for an earlier datagram: no server there
          if (!icmp_answers) ++r.bad;
          continue;
        }
        bench::Die(kProgram, "recv: %s", std::strerror(errno));
      }
      int64_t i = match(buf, static_cast<size_t>(n));
      if (i == -1) continue;
      if (i == kOldest) {  // an answer that names no request: the oldest outstanding one's
        i = static_cast<int64_t>(low);
        while (static_cast<uint64_t>(i) < next && state[i] != 1) ++i;
      }
      if (i < 0 || static_cast<uint64_t>(i) >= next || state[i] != 1) {
        ++r.bad;
        continue;
      }
      state[i] = 2;
      --outstanding;
      ++finished;
      ++r.ok;
      r.us.push_back((t - sent_at[i]) * 1e6);
    }
    while (icmp_answers) {
      uint8_t data[64], control[256];
      iovec iov{data, sizeof(data)};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = control;
      m.msg_controllen = sizeof(control);
      if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
      const double t = bench::NowSeconds();
      bool unreachable = false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_IP || c->cmsg_type != IP_RECVERR) continue;
        sock_extended_err e;
        std::memcpy(&e, CMSG_DATA(c), sizeof(e));
        unreachable =
            e.ee_origin == SO_EE_ORIGIN_ICMP && e.ee_type == ICMP_DEST_UNREACH && e.ee_code == ICMP_PORT_UNREACH;
      }
      uint64_t i = low;
      while (i < next && state[i] != 1) ++i;
      if (!unreachable || i == next) {
        ++r.bad;
        continue;
      }
      state[i] = 2;
      --outstanding;
      ++finished;
      ++r.ok;
      r.us.push_back((t - sent_at[i]) * 1e6);
    }
    // Time out what waited too long (requests go out in order, so the oldest first).
    const double now = bench::NowSeconds();
    for (uint64_t i = low; i < next && sent_at[i] + timeout_s <= now; ++i) {
      if (state[i] != 1) continue;
      state[i] = 2;
      --outstanding;
      ++finished;
      ++r.lost;
    }
  }
  r.seconds = bench::NowSeconds() - start;
  r.cpu_seconds = CpuSeconds() - cpu_start;
  return r;
}

void Report(const Options& o, const char* phase, PhaseResult& r) {
  double sum = 0, max = 0;
  for (double x : r.us) {
    sum += x;
    max = std::max(max, x);
  }
  const double mean = r.us.empty() ? 0 : sum / static_cast<double>(r.us.size());
  const double p50 = Percentile(r.us, 0.5), p99 = Percentile(r.us, 0.99), p999 = Percentile(r.us, 0.999);
  std::printf(
      "%s: mode=%s phase=%s window=%llu count=%llu ok=%llu bad=%llu lost=%llu seconds=%.3f rate=%.0f "
      "mean_us=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f client_cpu=%.2f\n",
      kProgram, o.mode.c_str(), phase, static_cast<unsigned long long>(o.window),
      static_cast<unsigned long long>(o.count), static_cast<unsigned long long>(r.ok),
      static_cast<unsigned long long>(r.bad), static_cast<unsigned long long>(r.lost), r.seconds,
      r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0, mean, p50, p99, p999, max,
      r.seconds > 0 ? r.cpu_seconds / r.seconds : 0);
  std::fflush(stdout);
}

int ConnectedSocket(int type, int protocol, const sockaddr_in& to) {
  const int fd = socket(AF_INET, type, protocol);
  if (fd < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
  const int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) {
    bench::Die(kProgram, "connect: %s", std::strerror(errno));
  }
  return fd;
}

bool SendBytes(int fd, const std::vector<uint8_t>& bytes) {
  const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(bytes.size())) return true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)) return false;
  if (n < 0 && errno == ECONNREFUSED) return false;  // reported for an earlier datagram; send again
  bench::Die(kProgram, "send: %s", n < 0 ? std::strerror(errno) : "short write");
}

// ---- pcp ------------------------------------------------------------------------------

struct PcpKey {
  uint16_t internal_port;
  uint32_t remote_address;
  uint16_t remote_port;
};

PcpKey KeyOf(uint64_t i, bool fixed, uint32_t base) {
  auto remote = [&](uint64_t k) {
    return (198u << 24 | 51u << 16 | 100u << 8) + 1 + static_cast<uint32_t>((base + k) % 250);
  };
  if (fixed) {
    return {static_cast<uint16_t>(5060 + i % 8), remote(i / 512000), static_cast<uint16_t>(1024 + (i / 8) % 64000)};
  }
  return {static_cast<uint16_t>(1024 + i % 60000), remote(i / 60000), 443};
}

int RunPcp(const Options& o) {
  const sockaddr_in to = bench::MakeAddress(kProgram, o.server.c_str(), o.port);
  const int fd = ConnectedSocket(SOCK_DGRAM, 0, to);
  sockaddr_in me{};
  socklen_t len = sizeof(me);
  getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len);
  const uint32_t client = ntohl(me.sin_addr.s_addr);
  std::random_device rd;
  const uint32_t tag = rd();
  auto nonce_of = [&](uint64_t i) {
    std::array<uint8_t, 12> n{};
    std::memcpy(n.data(), &tag, 4);
    std::memcpy(n.data() + 4, &i, 8);
    return n;
  };
  struct Granted {
    uint32_t address = 0;
    uint16_t port = 0;
    bool valid = false;
  };
  std::vector<Granted> granted(o.count);
  // Driver::EncodePeer (src/dpm/dpm_driver.cc), field for field.
  auto encode = [&](uint64_t i, uint32_t lifetime) {
    const PcpKey k = KeyOf(i, o.fixed, o.base);
    pcp::Request q;
    q.opcode = pcp::Opcode::kPeer;
    q.lifetime = lifetime;
    q.client_address = pcp::Address::FromIpv4(client);
    pcp::PeerBody body;
    body.nonce = nonce_of(i);
    body.protocol = 6;
    body.internal_port = k.internal_port;
    if (granted[i].valid) {
      body.external_port = granted[i].port;
      body.external_address = pcp::Address::FromIpv4(granted[i].address);
    } else if (o.fixed) {
      body.external_port = k.internal_port;
    }
    body.remote_port = k.remote_port;
    body.remote_address = pcp::Address::FromIpv4(k.remote_address);
    q.peer = body;
    q.dpm_port_fixed = o.fixed;
    return pcp::EncodeRequest(q);
  };
  int rc = 0;
  for (const std::string& phase : {std::string("setup"), std::string("renew"), std::string("release")}) {
    if (("," + o.phases + ",").find("," + phase + ",") == std::string::npos) continue;
    const uint32_t lifetime = phase == "release" ? 0 : o.lifetime;
    std::vector<std::vector<uint8_t>> requests(o.count);
    for (uint64_t i = 0; i < o.count; ++i) requests[i] = encode(i, lifetime);
    auto send = [&](uint64_t i) { return SendBytes(fd, requests[i]); };
    auto match = [&](const uint8_t* bytes, size_t n) -> int64_t {
      absl::StatusOr<pcp::Response> r = pcp::ParseResponse(absl::MakeConstSpan(bytes, n));
      if (!r.ok() || r->opcode != pcp::Opcode::kPeer || !r->peer) return -2;
      uint32_t got_tag = 0;
      uint64_t i = 0;
      std::memcpy(&got_tag, r->peer->nonce.data(), 4);
      std::memcpy(&i, r->peer->nonce.data() + 4, 8);
      if (got_tag != tag || i >= o.count) return -2;
      if (r->result != pcp::ResultCode::kSuccess) {
        static int shown = 0;
        if (shown++ < 5) {
          std::fprintf(stderr, "%s: request %llu: %s\n", kProgram, static_cast<unsigned long long>(i),
                       pcp::ResultName(r->result));
        }
        return -2;
      }
      const PcpKey k = KeyOf(i, o.fixed, o.base);
      if (r->peer->internal_port != k.internal_port) return -2;
      if (lifetime == 0) return r->lifetime == 0 ? static_cast<int64_t>(i) : -2;
      if (!r->dpm_session_endpoint || (o.fixed && r->peer->external_port != k.internal_port)) return -2;
      granted[i] = {r->peer->external_address.ipv4(), r->peer->external_port, true};
      return static_cast<int64_t>(i);
    };
    PhaseResult result = RunPhase(fd, o.count, o.window, o.timeout_s, send, match);
    Report(o, phase.c_str(), result);
    if (result.ok != o.count) rc = 1;
  }
  close(fd);
  return rc;
}

// ---- ping (ICMP echo through a raw socket) ----------------------------------------------

uint16_t InternetChecksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

int RunPing(const Options& o) {
  const sockaddr_in to = bench::MakeAddress(kProgram, o.server.c_str(), 0);
  const int fd = ConnectedSocket(SOCK_RAW, IPPROTO_ICMP, to);
  std::random_device rd;
  const uint16_t id = static_cast<uint16_t>(rd());
  const uint32_t tag = rd();
  const size_t data = std::max<size_t>(o.size, 12);
  std::vector<uint8_t> packet(8 + data);
  auto send = [&](uint64_t i) {
    std::fill(packet.begin(), packet.end(), 0);
    packet[0] = ICMP_ECHO;
    packet[4] = static_cast<uint8_t>(id >> 8);
    packet[5] = static_cast<uint8_t>(id);
    packet[6] = static_cast<uint8_t>(i >> 8);
    packet[7] = static_cast<uint8_t>(i);
    std::memcpy(&packet[8], &tag, 4);
    std::memcpy(&packet[12], &i, 8);
    const uint16_t sum = InternetChecksum(packet.data(), packet.size());
    packet[2] = static_cast<uint8_t>(sum >> 8);
    packet[3] = static_cast<uint8_t>(sum);
    return SendBytes(fd, packet);
  };
  auto match = [&](const uint8_t* bytes, size_t n) -> int64_t {
    if (n < 20) return -1;
    const size_t ihl = static_cast<size_t>(bytes[0] & 0x0f) * 4;
    if (n < ihl + 8 + 12) return -1;
    const uint8_t* icmp = bytes + ihl;
    if (icmp[0] != ICMP_ECHOREPLY || (icmp[4] << 8 | icmp[5]) != id) return -1;
    uint32_t got_tag = 0;
    uint64_t i = 0;
    std::memcpy(&got_tag, icmp + 8, 4);
    std::memcpy(&i, icmp + 12, 8);
    if (got_tag != tag || n - ihl != packet.size() || InternetChecksum(icmp, n - ihl) != 0) return -2;
    return static_cast<int64_t>(i);
  };
  PhaseResult result = RunPhase(fd, o.count, o.window, o.timeout_s, send, match);
  Report(o, "echo", result);
  close(fd);
  return result.ok == o.count ? 0 : 1;
}

// ---- UDP echo (client and server) -------------------------------------------------------

int RunUdpEcho(const Options& o) {
  const sockaddr_in to = bench::MakeAddress(kProgram, o.server.c_str(), o.port);
  const int fd = ConnectedSocket(SOCK_DGRAM, 0, to);
  std::random_device rd;
  const uint32_t tag = rd();
  const size_t size = std::max<size_t>(o.size, 12);
  std::vector<uint8_t> payload(size);
  auto fill = [&](uint64_t i, uint8_t* p) {
    for (size_t k = 12; k < size; ++k) p[k] = static_cast<uint8_t>(i + k);
    std::memcpy(p, &tag, 4);
    std::memcpy(p + 4, &i, 8);
  };
  std::vector<uint8_t> expected(size);
  auto send = [&](uint64_t i) {
    fill(i, payload.data());
    return SendBytes(fd, payload);
  };
  auto match = [&](const uint8_t* bytes, size_t n) -> int64_t {
    if (n != size) return -2;
    uint32_t got_tag = 0;
    uint64_t i = 0;
    std::memcpy(&got_tag, bytes, 4);
    std::memcpy(&i, bytes + 4, 8);
    if (got_tag != tag) return -2;
    fill(i, expected.data());
    return std::memcmp(bytes, expected.data(), size) == 0 ? static_cast<int64_t>(i) : -2;
  };
  PhaseResult result = RunPhase(fd, o.count, o.window, o.timeout_s, send, match);
  Report(o, "echo", result);
  close(fd);
  return result.ok == o.count ? 0 : 1;
}

// NAT-PMP public address requests (RFC 6886 §3.2) to 5351: the gateway's DPM server answers
// them without the NAT engine, so this is the UDP round trip through the very same lwIP UDP
// path, callback and DpmServer::Handle dispatch as a PEER exchange, minus the PCP codec and
// the table (2-byte request, 12-byte reply).
int RunNatPmp(const Options& o) {
  const sockaddr_in to = bench::MakeAddress(kProgram, o.server.c_str(), o.port);
  const int fd = ConnectedSocket(SOCK_DGRAM, 0, to);
  const std::vector<uint8_t> request = {0, 0};  // version 0, opcode 0
  auto send = [&](uint64_t) { return SendBytes(fd, request); };
  auto match = [&](const uint8_t* b, size_t n) -> int64_t {
    // version 0, opcode 128, result 0 (SUCCESS), epoch, the public address.
    if (n != 12 || b[0] != 0 || b[1] != 128 || b[2] != 0 || b[3] != 0) return -2;
    return kOldest;
  };
  PhaseResult result = RunPhase(fd, o.count, o.window, o.timeout_s, send, match);
  Report(o, "public-address", result);
  close(fd);
  return result.ok == o.count ? 0 : 1;
}

// UDP to a port nobody listens on: the answer is the ICMP port unreachable the far stack
// sends (through the gateway: lwIP's udp_input finding no PCB) — the bare UDP round trip.
int RunUdpClosed(const Options& o) {
  const sockaddr_in to = bench::MakeAddress(kProgram, o.server.c_str(), o.port);
  const int fd = ConnectedSocket(SOCK_DGRAM, 0, to);
  const int on = 1;
  if (setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof(on)) != 0)
    bench::Die(kProgram, "IP_RECVERR: %s", std::strerror(errno));
  std::vector<uint8_t> payload(std::max<size_t>(o.size, 12), 0);
  auto send = [&](uint64_t i) {
    std::memcpy(payload.data(), &i, 8);
    return SendBytes(fd, payload);
  };
  auto match = [&](const uint8_t*, size_t) -> int64_t { return -2; };  // no datagram may come back
  PhaseResult result = RunPhase(fd, o.count, o.window, o.timeout_s, send, match, /*icmp_answers=*/true);
  Report(o, "unreachable", result);
  close(fd);
  return result.ok == o.count ? 0 : 1;
}

int RunEchoServer(const Options& o) {
  const sockaddr_in at = bench::MakeAddress(kProgram, o.server.c_str(), o.port);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) bench::Die(kProgram, "socket: %s", std::strerror(errno));
  const int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof(at)) != 0) {
    bench::Die(kProgram, "bind %s:%u: %s", o.server.c_str(), o.port, std::strerror(errno));
  }
  std::printf("%s: echo server ready on %s:%u\n", kProgram, o.server.c_str(), o.port);
  std::fflush(stdout);
  uint8_t data[2048];
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    const ssize_t n = recvfrom(fd, data, sizeof(data), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      bench::Die(kProgram, "recvfrom: %s", std::strerror(errno));
    }
    sendto(fd, data, static_cast<size_t>(n), 0, reinterpret_cast<const sockaddr*>(&from), len);
  }
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: %s pcp --server A [--port 1080] --count N [--window W] [--fixed] [--base B]\n"
               "                 [--phases setup,renew,release] [--lifetime S] [--timeout-ms T]\n"
               "       %s ping --server A --count N [--window W] [--size 84] [--timeout-ms T]\n"
               "       %s udp-echo --server A --port P --count N [--window W] [--size 84] [--timeout-ms T]\n"
               "       %s udp-closed --server A --port P --count N [--window W] [--size 84] [--timeout-ms T]\n"
               "       %s natpmp --server A [--port 5351] --count N [--window W] [--timeout-ms T]\n"
               "       %s echo-server --bind A --port P\n",
               kProgram, kProgram, kProgram, kProgram, kProgram, kProgram);
  std::exit(2);
}

uint64_t Number(const char* flag, const char* text, uint64_t min, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
    bench::Die(kProgram, "bad %s '%s' (%llu..%llu)", flag, text, static_cast<unsigned long long>(min),
               static_cast<unsigned long long>(max));
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage();
  Options o;
  o.mode = argv[1];
  bool port_given = false;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--fixed") {
      o.fixed = true;
      continue;
    }
    if (i + 1 >= argc) Usage();
    const char* v = argv[++i];
    if (flag == "--server" || flag == "--bind") {
      o.server = v;
    } else if (flag == "--port") {
      if (!bench::ParsePort(v, &o.port)) bench::Die(kProgram, "bad --port '%s'", v);
      port_given = true;
    } else if (flag == "--count") {
      o.count = Number("--count", v, 1, 100000000);
    } else if (flag == "--window") {
      o.window = Number("--window", v, 1, 65536);
    } else if (flag == "--base") {
      o.base = static_cast<uint32_t>(Number("--base", v, 0, 1u << 30));
    } else if (flag == "--phases") {
      o.phases = v;
    } else if (flag == "--lifetime") {
      o.lifetime = static_cast<uint32_t>(Number("--lifetime", v, 1, 1u << 31));
    } else if (flag == "--size") {
      o.size = Number("--size", v, 12, 1400);
    } else if (flag == "--timeout-ms") {
      o.timeout_s = static_cast<double>(Number("--timeout-ms", v, 1, 600000)) / 1000;
    } else {
      Usage();
    }
  }
  if (o.server.empty()) Usage();
  if (o.mode == "natpmp" && !port_given) o.port = pcp::kServerPort;
  if (o.mode == "pcp") {
    if (o.fixed && o.count > 512000 * 250) bench::Die(kProgram, "--count too large for distinct fixed-port sessions");
    if (!o.fixed && o.count > 60000 * 250) bench::Die(kProgram, "--count too large for distinct sessions");
    return RunPcp(o);
  }
  if (o.mode == "ping") return RunPing(o);
  if (o.mode == "udp-echo") return RunUdpEcho(o);
  if (o.mode == "udp-closed") return RunUdpClosed(o);
  if (o.mode == "natpmp") return RunNatPmp(o);
  if (o.mode == "echo-server") return RunEchoServer(o);
  Usage();
}
