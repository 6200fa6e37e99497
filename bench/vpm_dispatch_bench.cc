// vpm_dispatch_bench: the VPM configurator's dispatch of new flows (dpm::vpm::Dispatcher::
// Dispatch, src/vpm/configurator.h) at 10, 10^3 and 10^4 source rules, no root (bench/vpm.sh
// runs it; bench/README.md §9). The rules are spread over every prefix length from /8 to /32
// (the worst case: one hash probe per length), the looked-up sources are random, a tenth of
// them inside a rule; each figure is the best of 5 passes of 10^6 lookups.
//
//   vpm_dispatch_bench [--rules N ...]     prints "rules=N ns_per_dispatch=T matched=M"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "vpm/configurator.h"

namespace {

namespace vpm = dpm::vpm;

vpm::ConfiguratorConfig Rules(size_t n, std::mt19937& rng, std::vector<uint32_t>* inside) {
  vpm::ConfiguratorConfig c;
  const vpm::PortKey key{vpm::Protocol::kTcp, 80};
  c.ports.push_back(vpm::PortPolicy{key, "default"});
  for (size_t i = 0; i < n; ++i) {
    vpm::ApplicationRule app;
    app.aid = "a" + std::to_string(i % 64);
    app.ports = {key};
    const int length = 8 + static_cast<int>(i % 25);  // /8 .. /32
    const uint32_t mask = ~uint32_t{0} << (32 - length);
    const uint32_t prefix = static_cast<uint32_t>(rng()) & mask;
    app.sources.push_back(vpm::SourcePattern{prefix, length, 0, 65535});
    inside->push_back(prefix | (static_cast<uint32_t>(rng()) & ~mask));
    c.applications.push_back(app);
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> counts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rules") == 0 && i + 1 < argc) {
      counts.push_back(std::strtoul(argv[++i], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: %s [--rules N ...]\n", argv[0]);
      return 2;
    }
  }
  if (counts.empty()) counts = {10, 1000, 10000};
  constexpr size_t kLookups = 1000000;
  for (size_t n : counts) {
    std::mt19937 rng(42);
    std::vector<uint32_t> inside;
    const vpm::Dispatcher d(Rules(n, rng, &inside));
    std::vector<uint32_t> sources(kLookups);
    for (size_t i = 0; i < kLookups; ++i) {
      sources[i] = (i % 10 == 0 && !inside.empty()) ? inside[rng() % inside.size()] : static_cast<uint32_t>(rng());
    }
    const vpm::PortKey key{vpm::Protocol::kTcp, 80};
    double best = 1e18;
    size_t matched = 0;
    for (int pass = 0; pass < 5; ++pass) {
      matched = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < kLookups; ++i) {
        matched += d.Dispatch(key, sources[i], static_cast<uint16_t>(i)).kind == vpm::Dispatcher::Decision::kRule;
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ns / kLookups);
    }
    std::printf("vpm_dispatch_bench: rules=%zu ns_per_dispatch=%.1f matched=%zu\n", n, best, matched);
  }
  return 0;
}
