// The NAT engine alone (no I/O, no root): resident memory per session,
// per-packet lookup + rewrite time, and DPM setups per second, at 10^3, 10^5 and 10^6
// sessions. Each size runs in a child process of its own, so one measurement's heap does not
// pollute the next one's VmRSS.
//
//   nat_engine_bench [--sizes 1000,100000,1000000] [--packets 2000000] [--kinds dpm,napt]
//                    [--modes single,batch,hot] [--repeat 3]
//
// Per size and kind (dpm: sessions made by RequestDpm, each with a replaceable port; napt:
// made by the first UDP packet of each internal endpoint, so each also has its own mapping):
//   bytes/session   (VmRSS after - VmRSS before) / sessions, the engine built before
//   setup/s, p50/p99 the calls that made the sessions, each timed (dpm: RequestDpm; napt:
//                   FromInside of a flow's first packet)
//   out/in ns       FromInside / FromOutside of a UDP packet of an existing session: one
//                   lookup, the rewrite and incremental checksums; each packet picks a session
//                   at random among all of them (so cache and TLB misses grow with the table)
//   out/in bat      the same through FromInsideBatch / FromOutsideBatch, 32 packets a call
//                   (the table memory of a batch is prefetched before it is translated)
//   out/in hot      one packet a call, 1024 sessions over and over
// Packets are built in chunks of 8192 outside the timed loops; each figure is the median of
// the chunks' averages, and each cell the median of --repeat runs.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "nat_bench_config.h"
#include "nat/nat_engine.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace {

using dpm::nat::Endpoint;
using dpm::nat::NatConfig;
using dpm::nat::NatEngine;
using dpm::nat::Protocol;
using Clock = std::chrono::steady_clock;
namespace wire = dpm::wire;

constexpr size_t kPacketSize = 64;  // 20 IP + 8 UDP + 36 data
constexpr size_t kBatch = 8192;
constexpr size_t kHot = 1024;

struct Row {
  char kind[8] = {};
  uint64_t sessions = 0;
  double bytes_per_session = 0;
  double setups_per_second = 0;
  double setup_p50_us = 0;
  double setup_p99_us = 0;
  double out_uniform_ns = 0;
  double in_uniform_ns = 0;
  double out_hot_ns = 0;
  double in_hot_ns = 0;
  double out_batch_ns = 0;
  double in_batch_ns = 0;
  uint64_t failures = 0;
};

long VmRssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Flow i: 2000 internal endpoints per host (hosts 10.77.1.0 upward), 250 remotes.
Endpoint Internal(uint64_t i) {
  const uint32_t host = static_cast<uint32_t>(i / 2000);
  return {bench::Ip(10, 77, 1 + host / 250, 1 + host % 250), static_cast<uint16_t>(10000 + i % 2000)};
}
Endpoint Remote(uint64_t i) { return {bench::Ip(198, 51, 100, 1 + static_cast<uint32_t>(i % 250)), 443}; }

void WriteUdp(uint8_t* p, Endpoint src, Endpoint dst) {
  wire::Ipv4Repr repr;
  repr.source = src.address;
  repr.destination = dst.address;
  repr.protocol = wire::ipv4::kProtocolUdp;
  repr.ttl = 64;
  repr.payload_length = kPacketSize - 20;
  repr.Emit(absl::MakeSpan(p, kPacketSize));
  uint8_t* u = p + 20;
  wire::StoreBe16(u, src.port);
  wire::StoreBe16(u + 2, dst.port);
  wire::StoreBe16(u + 4, kPacketSize - 20);
  wire::StoreBe16(u + 6, 0);
  for (size_t k = 8; k < kPacketSize - 20; ++k) u[k] = static_cast<uint8_t>(k);
  wire::FillTransportChecksum(*wire::Ipv4View::Parse(absl::MakeSpan(p, kPacketSize)));
}

// Swaps source and destination (addresses and ports): the IP and UDP checksums stay right,
// and a translated outbound packet becomes the reply that comes back.
void Swap(uint8_t* p) {
  uint8_t tmp[4];
  std::memcpy(tmp, p + 12, 4);
  std::memcpy(p + 12, p + 16, 4);
  std::memcpy(p + 16, tmp, 4);
  std::memcpy(tmp, p + 20, 2);
  std::memcpy(p + 20, p + 22, 2);
  std::memcpy(p + 22, tmp, 2);
}

struct Flow {
  Endpoint source;       // the internal endpoint
  Endpoint destination;  // the remote (NAPT) or the gateway endpoint (DPM)
};

// Times FromInside over packets of the flows `pick` chooses, then FromOutside over their
// replies (each translated packet with source and destination swapped).
template <typename Pick>
void TimePackets(NatEngine& engine, const std::vector<Flow>& flows, uint64_t packets, Pick pick, double* out_ns,
                 double* in_ns, uint64_t* failures, size_t batch = 1) {
  std::vector<absl::Span<uint8_t>> spans(kBatch);
  std::vector<dpm::nat::Result> results(kBatch);
  std::vector<uint8_t> ring(kBatch * kPacketSize);
  std::vector<uint8_t> replies(kBatch * kPacketSize);
  // Per-chunk averages; the median of them resists the bursts of other load a shared
  // machine has.
  std::vector<double> out_chunks, in_chunks;
  uint64_t done = 0;
  while (done < packets) {
    for (size_t k = 0; k < kBatch; ++k) {
      const Flow& f = flows[pick()];
      WriteUdp(&ring[k * kPacketSize], f.source, f.destination);
    }
    for (size_t k = 0; k < kBatch; ++k) spans[k] = absl::MakeSpan(&ring[k * kPacketSize], kPacketSize);
    const auto t0 = Clock::now();
    if (batch == 1) {
      for (size_t k = 0; k < kBatch; ++k) results[k] = engine.FromInside(1000, spans[k]);
    } else {
      for (size_t k = 0; k < kBatch; k += batch) {
        engine.FromInsideBatch(1000, absl::MakeConstSpan(&spans[k], batch), absl::MakeSpan(&results[k], batch));
      }
    }
    const auto t1 = Clock::now();
    for (size_t k = 0; k < kBatch; ++k) *failures += results[k].verdict != dpm::nat::Verdict::kForwardOutside;
    std::memcpy(replies.data(), ring.data(), ring.size());
    for (size_t k = 0; k < kBatch; ++k) {
      Swap(&replies[k * kPacketSize]);
      spans[k] = absl::MakeSpan(&replies[k * kPacketSize], kPacketSize);
    }
    const auto t2 = Clock::now();
    if (batch == 1) {
      for (size_t k = 0; k < kBatch; ++k) results[k] = engine.FromOutside(1000, spans[k]);
    } else {
      for (size_t k = 0; k < kBatch; k += batch) {
        engine.FromOutsideBatch(1000, absl::MakeConstSpan(&spans[k], batch), absl::MakeSpan(&results[k], batch));
      }
    }
    const auto t3 = Clock::now();
    for (size_t k = 0; k < kBatch; ++k) *failures += results[k].verdict != dpm::nat::Verdict::kForwardInside;
    out_chunks.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / kBatch);
    in_chunks.push_back(std::chrono::duration<double, std::nano>(t3 - t2).count() / kBatch);
    done += kBatch;
  }
  *out_ns = bench::Percentile(out_chunks, 0.5);
  *in_ns = bench::Percentile(in_chunks, 0.5);
}

bool g_single = true, g_batch = true, g_hot = true;  // --modes

Row Measure(const std::string& kind, uint64_t sessions, uint64_t packets) {
  Row row;
  std::snprintf(row.kind, sizeof(row.kind), "%s", kind.c_str());
  row.sessions = sessions;
  NatEngine engine(bench::NatBenchConfig());
  std::vector<double> latencies(sessions);  // allocated and touched before the first reading
  std::vector<uint8_t> packet(kPacketSize);
  const long rss_before = VmRssKiB();
  const auto start = Clock::now();
  for (uint64_t i = 0; i < sessions; ++i) {
    if (kind == "dpm") {
      const dpm::nat::DpmRequest request{Protocol::kUdp, Internal(i), Remote(i), {}, false, 3600};
      const auto t0 = Clock::now();
      auto grant = engine.RequestDpm(1000, request);
      latencies[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      row.failures += !std::holds_alternative<dpm::nat::DpmGrant>(grant);
    } else {
      WriteUdp(packet.data(), Internal(i), Remote(i));
      const auto t0 = Clock::now();
      const dpm::nat::Result r = engine.FromInside(1000, absl::MakeSpan(packet));
      latencies[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      row.failures += r.verdict != dpm::nat::Verdict::kForwardOutside;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const long rss_after = VmRssKiB();
  row.bytes_per_session = static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(sessions);
  row.setups_per_second = static_cast<double>(sessions) / seconds;
  row.setup_p50_us = bench::Percentile(latencies, 0.50);
  row.setup_p99_us = bench::Percentile(latencies, 0.99);
  latencies = {};

  // As the gateway's one-second sweep does: finish any index growth the setups left half
  // done, so lookups see the table as it is in steady state (one probe, not two).
  for (int i = 0; i < 64; ++i) engine.Sweep(1000, 1u << 20);

  std::vector<Flow> flows;
  flows.reserve(sessions);
  engine.ForEachSession(1000, [&](const NatEngine::SessionInfo& s) {
    flows.push_back({s.internal, s.dpm ? s.gateway_endpoint : s.remote});
  });
  std::mt19937_64 rng(sessions);
  if (g_single) {
    TimePackets(engine, flows, packets, [&] { return rng() % flows.size(); }, &row.out_uniform_ns,
                &row.in_uniform_ns, &row.failures);
  }
  if (g_batch) {
    TimePackets(engine, flows, packets, [&] { return rng() % flows.size(); }, &row.out_batch_ns, &row.in_batch_ns,
                &row.failures, /*batch=*/32);
  }
  if (g_hot) {
    std::vector<uint64_t> hot(kHot);
    for (uint64_t& h : hot) h = rng() % flows.size();
    size_t next = 0;
    TimePackets(engine, flows, packets, [&] { return hot[next++ % kHot]; }, &row.out_hot_ns, &row.in_hot_ns,
                &row.failures);
  }
  return row;
}

Row RunChild(const std::string& kind, uint64_t sessions, uint64_t packets) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Row row = Measure(kind, sessions, packets);
    if (write(fds[1], &row, sizeof(row)) != static_cast<ssize_t>(sizeof(row))) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Row row;
  if (read(fds[0], &row, sizeof(row)) != static_cast<ssize_t>(sizeof(row))) {
    std::fprintf(stderr, "nat_engine_bench: the %s/%llu child failed\n", kind.c_str(),
                 static_cast<unsigned long long>(sessions));
    std::exit(1);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes = {1000, 100000, 1000000};
  std::vector<std::string> kinds = {"dpm", "napt"};
  uint64_t packets = 2000000;
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--sizes") {
      sizes.clear();
      for (const std::string& s : bench::Split(argv[i + 1])) sizes.push_back(std::strtoull(s.c_str(), nullptr, 10));
    } else if (flag == "--packets") {
      packets = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--kinds") {
      kinds = bench::Split(argv[i + 1]);
    } else if (flag == "--repeat") {
      repeat = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--modes") {
      const std::string modes = argv[i + 1];
      g_single = modes.find("single") != std::string::npos;
      g_batch = modes.find("batch") != std::string::npos;
      g_hot = modes.find("hot") != std::string::npos;
    } else {
      std::fprintf(stderr, "usage: %s [--sizes 1000,100000,1000000] [--packets N] [--kinds dpm,napt] "
                   "[--modes single,batch,hot] [--repeat 3]\n", argv[0]);
      return 2;
    }
  }
  // Every cell is the median over `repeat` runs, the runs interleaved so that a burst of
  // other load does not hit one size only.
  std::vector<std::vector<Row>> runs(kinds.size() * sizes.size());
  for (int r = 0; r < repeat; ++r) {
    for (size_t k = 0; k < kinds.size(); ++k) {
      for (size_t n = 0; n < sizes.size(); ++n) runs[k * sizes.size() + n].push_back(RunChild(kinds[k], sizes[n], packets));
    }
  }
  std::vector<Row> rows;
  for (std::vector<Row>& cell : runs) {
    Row row = cell.front();
    auto median = [&](double Row::*field) {
      std::vector<double> v;
      for (const Row& r : cell) v.push_back(r.*field);
      return bench::Percentile(v, 0.5);
    };
    for (double Row::*field : {&Row::bytes_per_session, &Row::setups_per_second, &Row::setup_p50_us, &Row::setup_p99_us,
                               &Row::out_uniform_ns, &Row::in_uniform_ns, &Row::out_hot_ns, &Row::in_hot_ns,
                               &Row::out_batch_ns, &Row::in_batch_ns}) {
      row.*field = median(field);
    }
    row.failures = 0;
    for (const Row& r : cell) row.failures += r.failures;
    rows.push_back(row);
  }
  std::printf("%-5s %9s %10s %10s %8s %8s %9s %9s %9s %9s %9s %9s %6s\n", "kind", "sessions", "B/session",
              "setup/s", "p50 us", "p99 us", "out ns", "in ns", "out bat", "in bat", "out hot", "in hot", "fails");
  for (const Row& r : rows) {
    std::printf("%-5s %9llu %10.1f %10.0f %8.2f %8.2f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %6llu\n", r.kind,
                static_cast<unsigned long long>(r.sessions), r.bytes_per_session, r.setups_per_second, r.setup_p50_us,
                r.setup_p99_us, r.out_uniform_ns, r.in_uniform_ns, r.out_batch_ns, r.in_batch_ns, r.out_hot_ns,
                r.in_hot_ns, static_cast<unsigned long long>(r.failures));
  }
  // The targets (bench/README.md §5), from the largest and smallest sizes measured.
  for (const std::string& kind : kinds) {
    const Row* small = nullptr;
    const Row* large = nullptr;
    for (const Row& r : rows) {
      if (kind != r.kind) continue;
      if (small == nullptr || r.sessions < small->sessions) small = &r;
      if (large == nullptr || r.sessions > large->sessions) large = &r;
    }
    if (small == nullptr || small == large) continue;
    auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
    const double single = large->out_uniform_ns / small->out_uniform_ns;
    const double batch = large->out_batch_ns / small->out_batch_ns;
    const double hot = large->out_hot_ns / small->out_hot_ns;
    std::printf("%s: <= 128 B/session at %llu: %s (%.1f); >= 100000 setups/s: %s (%.0f); lookup at %llu within 1.5x "
                "of %llu: single %.2fx %s, batch %.2fx %s, hot %.2fx %s\n",
                kind.c_str(), static_cast<unsigned long long>(large->sessions),
                verdict(large->bytes_per_session <= 128), large->bytes_per_session,
                verdict(large->setups_per_second >= 100000), large->setups_per_second,
                static_cast<unsigned long long>(large->sessions), static_cast<unsigned long long>(small->sessions),
                single, verdict(single <= 1.5), batch, verdict(batch <= 1.5), hot, verdict(hot <= 1.5));
  }
  return 0;
}
