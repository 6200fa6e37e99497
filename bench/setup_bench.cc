// The DPM setup exchange alone (no I/O, no root): PCP PEER requests as the
// DPM driver sends them (dpm_driver.cc: EncodePeer), fed through DpmServer::Handle — the PCP
// codec, the NAT engine's session table and the port allocator, and the reply's encoding —
// with an injected clock. Target: >= 100,000 setup exchanges per second on one core.
//
//   setup_bench [--sizes 1000,100000,1000000] [--ops 200000] [--ports replaceable,fixed]
//               [--repeat 3] [--cpu N]
//
// For each size S and port kind, in a child process of its own (a fresh heap), the table is
// first filled with S sessions (row "fill": setups while the table grows from 0 to S); then,
// in rounds of B requests (B = S/10, at most 1000, so the
// table stays between S and S + B):
//   setup    B new sessions (a client endpoint and destination never seen before)
//   renew    B random live sessions asked for again (same nonce, the granted external
//            endpoint suggested, as the driver renews at half the lifetime)
//   release  the B oldest sessions, lifetime 0 (RFC 6887 §15; the driver's Release)
// until --ops setups were made (as many renewals and releases). Every call of Handle is timed
// (steady_clock, about 20 ns of it per call); exchanges/s is the requests of a kind divided by
// the time of the loops that ran them. Requests are encoded and replies checked (SUCCESS, the
// request's nonce, the DPM session endpoint, a fixed port kept) outside the timed loops.
//
// Port kinds:
//   replaceable  an ephemeral port: every session has an internal port of its own (2000 per
//                client address) and gets a new external port from the allocator
//   fixed        DPM_PORT_FIXED: each client uses 8 fixed ports (5060-5067) toward many
//                destinations, so a fixed external port is shared by ~250 sessions of the
//                client (claims 8-10, RFC 7857 port overlapping)
// Clients are 10.77.1.1 upward (2000 sessions each, under the default per-host quota of
// 4096); the registered pool is 64 addresses, as in nat_engine_bench.
//
// Same-run references (each in a child of its own, over the same requests):
//   codec    the server's codec alone: ParseRequest + EncodeResponse of the reply Handle would
//            send, no engine — so "codec %" shows how much of an exchange is the codec
//   driver   the driver's side of the codec: EncodeRequest + ParseResponse
// Each cell is the median over --repeat runs (runs interleaved). Exits 1 when a reply was wrong
// or the target was missed.
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "dpm/dpm_server.h"
#include "bench_util.h"
#include "nat_bench_config.h"
#include "nat/nat_engine.h"
#include "dpm/pcp.h"

namespace {

using dpm::nat::Endpoint;
using dpm::nat::NatConfig;
using dpm::nat::NatEngine;
using dpm::server::DpmServer;
namespace pcp = dpm::pcp;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPerHost = 2000;  // sessions per client address (the default quota is 4096)
constexpr uint32_t kLifetime = 600;  // what the driver asks for (DriverConfig::lifetime_s)
constexpr uint16_t kClientUdpPort = 40000;
constexpr uint16_t kFixedPortBase = 5060;
constexpr uint32_t kFixedPorts = 8;

enum class Op { kFill, kSetup, kRenew, kRelease, kCodec, kDriver, kClock, kCount };
const char* OpName(Op op) {
  switch (op) {
    case Op::kFill:
      return "fill";
    case Op::kSetup:
      return "setup";
    case Op::kRenew:
      return "renew";
    case Op::kRelease:
      return "release";
    case Op::kCodec:
      return "codec";
    case Op::kDriver:
      return "driver";
    case Op::kClock:
      return "clock";
    case Op::kCount:
      break;
  }
  return "?";
}

// One (op) line of a cell: written by the child, read by the parent through a pipe (POD).
struct Stat {
  double per_second = 0;
  double mean_us = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  uint64_t count = 0;
  uint64_t failures = 0;
};
struct Cell {
  Stat stats[static_cast<size_t>(Op::kCount)];
  uint64_t sessions_after = 0;
};

// Session key i → the driver's view of it.
struct Key {
  uint32_t client;  // the client's private address (PCP client address and UDP source)
  uint16_t internal_port;
  Endpoint remote;
};

Key KeyOf(uint64_t i, bool fixed) {
  const uint32_t host = static_cast<uint32_t>(i / kPerHost);
  Key k;
  k.client = bench::Ip(10, 77, 1 + host / 250, 1 + host % 250);
  if (fixed) {
    // 8 fixed ports per client; every destination distinct, so sessions of clients paired
    // with the same registered address never collide on (external, remote).
    k.internal_port = static_cast<uint16_t>(kFixedPortBase + i % kFixedPorts);
    k.remote = {bench::Ip(198, 51, 100, 1 + static_cast<uint32_t>(i % 250)), static_cast<uint16_t>(1024 + (i / 250) % 64000)};
  } else {
    k.internal_port = static_cast<uint16_t>(10000 + i % kPerHost);
    k.remote = {bench::Ip(198, 51, 100, 1 + static_cast<uint32_t>(i % 250)), 443};
  }
  return k;
}

std::array<uint8_t, 12> NonceOf(uint64_t i) {
  // splitmix64, as the driver's nonces (unique, not secret).
  uint64_t z = i * 0x9e3779b97f4a7c15ULL + 0x1234567ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  std::array<uint8_t, 12> n{};
  std::memcpy(n.data(), &z, 8);
  const uint32_t low = static_cast<uint32_t>(i);
  std::memcpy(n.data() + 8, &low, 4);
  return n;
}

// Exactly what Driver::EncodePeer sends (src/dpm/dpm_driver.cc): PEER, the client address,
// the nonce, TCP, the internal port; the granted external endpoint suggested once there is
// one, else the internal port when it is fixed; the remote; DPM_PORT_FIXED when fixed.
std::vector<uint8_t> EncodePeer(uint64_t i, bool fixed, uint32_t lifetime, const Endpoint* granted) {
  const Key k = KeyOf(i, fixed);
  pcp::Request q;
  q.opcode = pcp::Opcode::kPeer;
  q.lifetime = lifetime;
  q.client_address = pcp::Address::FromIpv4(k.client);
  pcp::PeerBody body;
  body.nonce = NonceOf(i);
  body.protocol = 6;
  body.internal_port = k.internal_port;
  if (granted != nullptr) {
    body.external_port = granted->port;
    body.external_address = pcp::Address::FromIpv4(granted->address);
  } else if (fixed) {
    body.external_port = k.internal_port;
  }
  body.remote_port = k.remote.port;
  body.remote_address = pcp::Address::FromIpv4(k.remote.address);
  q.peer = body;
  q.dpm_port_fixed = fixed;
  return pcp::EncodeRequest(q);
}

// Latencies and loop time of one op over a cell.
struct Samples {
  std::vector<double> us;
  double seconds = 0;
  uint64_t failures = 0;

  Stat Summarize() {
    Stat s;
    s.count = us.size();
    s.failures = failures;
    if (us.empty()) return s;
    double sum = 0;
    for (double x : us) sum += x;
    s.mean_us = sum / static_cast<double>(us.size());
    s.per_second = seconds > 0 ? static_cast<double>(us.size()) / seconds : 0;
    s.max_us = *std::max_element(us.begin(), us.end());
    s.p50_us = bench::Percentile(us, 0.50);
    s.p99_us = bench::Percentile(us, 0.99);
    s.p999_us = bench::Percentile(us, 0.999);
    return s;
  }
};

class Bench {
 public:
  Bench(bool fixed, uint64_t capacity)
      : fixed_(fixed), engine_(bench::NatBenchConfig()), server_(engine_, 0), granted_(capacity) {}

  // Runs `keys` through Handle with requests of `lifetime` (renewals and releases suggest the
  // granted endpoint), timing each call; checks the replies afterwards.
  void Run(const std::vector<uint64_t>& keys, uint32_t lifetime, bool renew_or_release, Samples* samples) {
    const size_t n = keys.size();
    requests_.resize(n);
    clients_.resize(n);
    replies_.resize(n);
    for (size_t k = 0; k < n; ++k) {
      requests_[k] = EncodePeer(keys[k], fixed_, lifetime, renew_or_release ? &granted_[keys[k]] : nullptr);
      clients_[k] = Endpoint{KeyOf(keys[k], fixed_).client, kClientUdpPort};
    }
    const size_t first = samples->us.size();
    samples->us.resize(first + n);
    double* lat = samples->us.data() + first;
    const auto start = Clock::now();
    for (size_t k = 0; k < n; ++k) {
      const auto t0 = Clock::now();
      replies_[k] = server_.Handle(now_ms_, clients_[k], pcp::kDpmPort, requests_[k]);
      const auto t1 = Clock::now();
      lat[k] = std::chrono::duration<double, std::micro>(t1 - t0).count();
      if (++ops_ % 1000 == 0) ++now_ms_;  // the injected clock: 1 ms per 1000 exchanges
    }
    samples->seconds += std::chrono::duration<double>(Clock::now() - start).count();
    for (size_t k = 0; k < n; ++k) {
      samples->failures += !Check(keys[k], lifetime, replies_[k]);
      // A stall this long is not the scheduler's 4 ms tick: name where it happened (table
      // growth shows up here).
      if (lat[k] > 50000) {
        std::fprintf(stderr,
                     "setup_bench: one exchange took %.0f ms (%s ports, lifetime %u, in a block of %zu that left "
                     "%zu sessions in the table)\n",
                     lat[k] / 1000, fixed_ ? "fixed" : "replaceable", lifetime, n, engine_.session_count());
      }
    }
  }

  size_t sessions() const { return engine_.session_count(); }

 private:
  bool Check(uint64_t i, uint32_t lifetime, const std::vector<uint8_t>& reply) {
    absl::StatusOr<pcp::Response> r = pcp::ParseResponse(reply);
    if (!r.ok() || r->result != pcp::ResultCode::kSuccess || !r->peer || r->peer->nonce != NonceOf(i)) return false;
    if (lifetime == 0) return r->lifetime == 0;
    const Key k = KeyOf(i, fixed_);
    if (!r->dpm_session_endpoint || r->peer->internal_port != k.internal_port) return false;
    if (fixed_ && r->peer->external_port != k.internal_port) return false;
    granted_[i] = Endpoint{r->peer->external_address.ipv4(), r->peer->external_port};
    return true;
  }

  bool fixed_;
  NatEngine engine_;
  DpmServer server_;
  std::vector<Endpoint> granted_;  // by key
  uint64_t now_ms_ = 1000;
  uint64_t ops_ = 0;
  std::vector<std::vector<uint8_t>> requests_, replies_;
  std::vector<Endpoint> clients_;
};

Cell MeasureEngine(bool fixed, uint64_t size, uint64_t ops) {
  Cell cell;
  const uint64_t block = std::clamp<uint64_t>(size / 10, 1, 1000);
  Bench bench(fixed, size + ops + block);
  Samples fill, setup, renew, release;
  setup.us.reserve(ops + block);
  renew.us.reserve(ops + block);
  release.us.reserve(ops + block);
  std::vector<uint64_t> keys;
  for (uint64_t next = 0; next < size;) {
    keys.clear();
    for (uint64_t k = 0; k < 8192 && next < size; ++k) keys.push_back(next++);
    bench.Run(keys, kLifetime, false, &fill);
  }
  cell.stats[static_cast<size_t>(Op::kFill)] = fill.Summarize();
  fill = {};

  std::mt19937_64 rng(size * 2 + fixed);
  uint64_t oldest = 0, next = size;  // live keys: [oldest, next)
  while (setup.us.size() < ops) {
    keys.clear();
    for (uint64_t k = 0; k < block; ++k) keys.push_back(next++);
    bench.Run(keys, kLifetime, false, &setup);
    keys.clear();
    for (uint64_t k = 0; k < block; ++k) keys.push_back(oldest + rng() % (next - oldest));
    bench.Run(keys, kLifetime, true, &renew);
    keys.clear();
    for (uint64_t k = 0; k < block; ++k) keys.push_back(oldest++);
    bench.Run(keys, 0, true, &release);
  }
  cell.stats[static_cast<size_t>(Op::kSetup)] = setup.Summarize();
  cell.stats[static_cast<size_t>(Op::kRenew)] = renew.Summarize();
  cell.stats[static_cast<size_t>(Op::kRelease)] = release.Summarize();
  cell.sessions_after = bench.sessions();
  return cell;
}

// The codec alone, over the same setup requests: the server's half (ParseRequest +
// EncodeResponse of a reply shaped like Handle's) and the driver's half (EncodeRequest +
// ParseResponse).
Cell MeasureCodec(uint64_t ops) {
  Cell cell;
  Samples server, driver;
  const size_t chunk = 8192;
  std::vector<std::vector<uint8_t>> requests(chunk), replies(chunk);
  std::vector<pcp::Request> values(chunk);
  uint64_t sink = 0;
  for (uint64_t done = 0; done < ops; done += chunk) {
    for (size_t k = 0; k < chunk; ++k) {
      requests[k] = EncodePeer(done + k, false, kLifetime, nullptr);
      values[k] = *pcp::ParseRequest(requests[k]).request;
    }
    // Server side: what HandlePcp does around the engine call.
    const size_t first = server.us.size();
    server.us.resize(first + chunk);
    auto start = Clock::now();
    for (size_t k = 0; k < chunk; ++k) {
      const auto t0 = Clock::now();
      pcp::ParsedRequest parsed = pcp::ParseRequest(requests[k]);
      pcp::Response r;
      if (parsed.ok()) {
        const pcp::Request& q = *parsed.request;
        r.opcode = q.opcode;
        r.epoch = 1;
        pcp::PeerBody peer = *q.peer;
        peer.external_port = static_cast<uint16_t>(1024 + k);
        peer.external_address = pcp::Address::FromIpv4(bench::Ip(203, 0, 113, 1 + k % 64));
        r.peer = peer;
        r.dpm_session_endpoint = std::make_pair(pcp::Address::FromIpv4(bench::Ip(10, 77, 0, 1)), peer.external_port);
        r.lifetime = q.lifetime;
      }
      replies[k] = pcp::EncodeResponse(r);
      const auto t1 = Clock::now();
      server.us[first + k] = std::chrono::duration<double, std::micro>(t1 - t0).count();
    }
    server.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    for (size_t k = 0; k < chunk; ++k) server.failures += replies[k].size() != 104;
    // Driver side: encode the request, parse the reply.
    driver.us.resize(first + chunk);
    start = Clock::now();
    for (size_t k = 0; k < chunk; ++k) {
      const auto t0 = Clock::now();
      std::vector<uint8_t> bytes = pcp::EncodeRequest(values[k]);
      absl::StatusOr<pcp::Response> r = pcp::ParseResponse(replies[k]);
      const auto t1 = Clock::now();
      driver.us[first + k] = std::chrono::duration<double, std::micro>(t1 - t0).count();
      sink += bytes.size();
      driver.failures += !r.ok() || !r->peer || r->peer->nonce != values[k].peer->nonce;
    }
    driver.seconds += std::chrono::duration<double>(Clock::now() - start).count();
  }
  if (sink == 0) std::abort();
  // What the timing itself costs: two clock reads around nothing.
  Samples clock;
  clock.us.resize(100000);
  for (double& x : clock.us) {
    const auto t0 = Clock::now();
    const auto t1 = Clock::now();
    x = std::chrono::duration<double, std::micro>(t1 - t0).count();
  }
  cell.stats[static_cast<size_t>(Op::kClock)] = clock.Summarize();
  cell.stats[static_cast<size_t>(Op::kCodec)] = server.Summarize();
  cell.stats[static_cast<size_t>(Op::kDriver)] = driver.Summarize();
  return cell;
}

int g_cpu = -1;  // --cpu

// kind: "replaceable", "fixed" or "codec".
Cell RunChild(const std::string& kind, uint64_t size, uint64_t ops) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (g_cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(g_cpu, &set);
      if (sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("setup_bench: sched_setaffinity");
    }
    Cell cell = kind == "codec" ? MeasureCodec(ops) : MeasureEngine(kind == "fixed", size, ops);
    if (write(fds[1], &cell, sizeof(cell)) != static_cast<ssize_t>(sizeof(cell))) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Cell cell;
  const ssize_t got = read(fds[0], &cell, sizeof(cell));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof(cell))) {
    std::fprintf(stderr, "setup_bench: the %s/%llu child failed\n", kind.c_str(),
                 static_cast<unsigned long long>(size));
    std::exit(1);
  }
  return cell;
}

Stat Median(const std::vector<Cell>& runs, Op op) {
  Stat m;
  auto median = [&](double Stat::*field) {
    std::vector<double> v;
    for (const Cell& c : runs) v.push_back(c.stats[static_cast<size_t>(op)].*field);
    return bench::Percentile(v, 0.5);
  };
  for (double Stat::*f :
       {&Stat::per_second, &Stat::mean_us, &Stat::p50_us, &Stat::p99_us, &Stat::p999_us, &Stat::max_us}) {
    m.*f = median(f);
  }
  for (const Cell& c : runs) {
    m.count += c.stats[static_cast<size_t>(op)].count;
    m.failures += c.stats[static_cast<size_t>(op)].failures;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes = {1000, 100000, 1000000};
  std::vector<std::string> kinds = {"replaceable", "fixed"};
  uint64_t ops = 200000;
  int repeat = 3;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (value != nullptr && flag == "--sizes") {
      sizes.clear();
      for (const std::string& s : bench::Split(value)) sizes.push_back(std::strtoull(s.c_str(), nullptr, 10));
    } else if (value != nullptr && flag == "--ops") {
      ops = std::max<uint64_t>(1, std::strtoull(value, nullptr, 10));
    } else if (value != nullptr && flag == "--ports") {
      kinds = bench::Split(value);
    } else if (value != nullptr && flag == "--repeat") {
      repeat = std::max(1, std::atoi(value));
    } else if (value != nullptr && flag == "--cpu") {
      g_cpu = std::atoi(value);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--sizes 1000,100000,1000000] [--ops 200000] [--ports replaceable,fixed] "
                   "[--repeat 3] [--cpu N]\n",
                   argv[0]);
      return 2;
    }
  }
  for (const std::string& k : kinds) {
    if (k != "replaceable" && k != "fixed") {
      std::fprintf(stderr, "setup_bench: --ports takes replaceable and/or fixed, not '%s'\n", k.c_str());
      return 2;
    }
  }
  for (uint64_t s : sizes) {
    if (s == 0 || s > 3000000) {
      std::fprintf(stderr, "setup_bench: sizes must be 1..3000000\n");
      return 2;
    }
  }

  // Runs interleaved (codec, then every kind and size, then again), so that a burst of other
  // load on a shared machine does not hit one cell only.
  std::vector<Cell> codec_runs;
  std::vector<std::vector<Cell>> runs(kinds.size() * sizes.size());
  for (int r = 0; r < repeat; ++r) {
    codec_runs.push_back(RunChild("codec", 0, ops));
    for (size_t k = 0; k < kinds.size(); ++k) {
      for (size_t n = 0; n < sizes.size(); ++n) runs[k * sizes.size() + n].push_back(RunChild(kinds[k], sizes[n], ops));
    }
  }

  const Stat codec = Median(codec_runs, Op::kCodec);
  const Stat driver = Median(codec_runs, Op::kDriver);
  std::printf("%-8s %-12s %8s %11s %8s %8s %9s %9s %9s %8s %7s\n", "op", "ports", "table", "exch/s", "mean us",
              "p50 us", "p99 us", "p99.9 us", "max us", "codec %", "fails");
  auto line = [&](const char* op, const char* ports, const std::string& table, const Stat& s, bool share) {
    char pct[16] = "-";
    if (share && s.p50_us > 0) std::snprintf(pct, sizeof(pct), "%.0f", 100.0 * codec.p50_us / s.p50_us);
    std::printf("%-8s %-12s %8s %11.0f %8.2f %8.2f %9.2f %9.2f %9.1f %8s %7llu\n", op, ports, table.c_str(),
                s.per_second, s.mean_us, s.p50_us, s.p99_us, s.p999_us, s.max_us, pct,
                static_cast<unsigned long long>(s.failures));
  };
  double worst_setup = 0;
  std::string worst_cell;
  uint64_t failures = 0;
  for (size_t k = 0; k < kinds.size(); ++k) {
    for (size_t n = 0; n < sizes.size(); ++n) {
      const std::vector<Cell>& cell = runs[k * sizes.size() + n];
      for (Op op : {Op::kFill, Op::kSetup, Op::kRenew, Op::kRelease}) {
        const Stat s = Median(cell, op);
        line(OpName(op), kinds[k].c_str(), std::to_string(sizes[n]), s, true);
        failures += s.failures;
        if (op == Op::kSetup && (worst_cell.empty() || s.per_second < worst_setup)) {
          worst_setup = s.per_second;
          worst_cell = kinds[k] + " ports at " + std::to_string(sizes[n]) + " sessions";
        }
      }
    }
  }
  line("codec", "(server)", "-", codec, false);
  line("driver", "(client)", "-", driver, false);
  failures += codec.failures + driver.failures;
  const Stat clock = Median(codec_runs, Op::kClock);
  std::printf(
      "(median of %d runs; codec %% = the server codec's p50 / the row's p50; each timed call includes "
      "~%.0f ns of clock reads)\n",
      repeat, clock.p50_us * 1000);
  std::printf("setup_bench: ops=%llu repeat=%d worst_setups_per_s=%.0f failures=%llu\n",
              static_cast<unsigned long long>(ops), repeat, worst_setup, static_cast<unsigned long long>(failures));
  std::printf("target >= 100000 setup exchanges/s on one core (codec + table + allocator): %s (slowest: %.0f/s, %s)\n",
              worst_setup >= 100000 ? "met" : "NOT met", worst_setup, worst_cell.c_str());
  return failures == 0 && worst_setup >= 100000 ? 0 : 1;
}
