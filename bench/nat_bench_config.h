// The NAT configuration both DPM benches (nat_engine_bench, setup_bench) measure against: 64
// registered addresses 203.0.113.1-64, private network 10.77.0.0/16 with the gateway at
// 10.77.0.1, room for 4 Mi sessions, a fixed seed so runs allocate the same ports, and the
// session table in huge pages as `dpmd gateway` has it.
#ifndef DPM_BENCH_NAT_BENCH_CONFIG_H_
#define DPM_BENCH_NAT_BENCH_CONFIG_H_

#include <cstdint>

#include "nat/nat_engine.h"
#include "nat/table_memory.h"

namespace bench {

/// a.b.c.d in host byte order.
constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }

inline dpm::nat::NatConfig NatBenchConfig() {
  dpm::nat::NatConfig c;
  for (uint32_t i = 1; i <= 64; ++i) c.external_addresses.push_back(Ip(203, 0, 113, i));
  c.inside_network = Ip(10, 77, 0, 0);
  c.inside_prefix = 16;
  c.gateway_inside_address = Ip(10, 77, 0, 1);
  c.gateway_outside_address = Ip(192, 0, 2, 1);
  c.max_sessions = 4u << 20;
  c.seed = 1;
  static dpm::nat::HugePageTableMemory table_memory;
  c.table_memory = &table_memory;
  return c;
}

}  // namespace bench

#endif  // DPM_BENCH_NAT_BENCH_CONFIG_H_
