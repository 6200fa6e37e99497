// src/nat/table_memory: the session table's injected memory. The table takes every block from
// the TableMemory it is given and returns each one; the huge-page source gives aligned, zeroed
// blocks.
#include "nat/table_memory.h"

#include <cstdint>
#include <cstring>
#include <map>

#include "gtest/gtest.h"
#include "nat/nat_engine.h"
#include "nat/session_table.h"

namespace dpm::nat {
namespace {

// Counts what passes through it, and checks every Free matches an Allocate.
class CountingMemory final : public TableMemory {
 public:
  void* Allocate(size_t bytes, bool zeroed) override {
    void* memory = HeapTableMemory().Allocate(bytes, zeroed);
    live_[memory] = bytes;
    allocated_ += bytes;
    ++allocations_;
    return memory;
  }
  void Free(void* memory, size_t bytes) override {
    auto it = live_.find(memory);
    EXPECT_NE(it, live_.end()) << "freed a block it did not give";
    if (it == live_.end()) return;
    EXPECT_EQ(it->second, bytes) << "freed with another size";
    live_.erase(it);
    HeapTableMemory().Free(memory, bytes);
  }
  size_t live_blocks() const { return live_.size(); }
  size_t allocations() const { return allocations_; }
  size_t allocated() const { return allocated_; }

 private:
  std::map<void*, size_t> live_;
  size_t allocations_ = 0;
  size_t allocated_ = 0;
};

Session SessionNumber(uint32_t i) {
  Session s;
  s.protocol = Protocol::kUdp;
  s.internal_address = 0x0a4d0000 + (i >> 12);
  s.internal_port = static_cast<uint16_t>(1024 + (i & 4095));
  s.external_address = 0xcb007101 + (i >> 16);
  s.external_port = static_cast<uint16_t>(i);
  s.remote_address = 0xc633640a;
  s.remote_port = 443;
  return s;
}

TEST(NatTableMemory, TheTableTakesEveryBlockFromTheInjectedMemoryAndGivesItBack) {
  CountingMemory memory;
  {
    SessionTable table(0x0a4d0001, memory);
    for (uint32_t i = 0; i < 20000; ++i) ASSERT_EQ(table.AddSession(SessionNumber(i)), i);
    EXPECT_EQ(table.FindInside(FlowKey{Protocol::kUdp, SessionNumber(777).internal(), SessionNumber(777).remote()}),
              777u);
    // Slab chunks of 4096 + 8192 + 16384 sessions (32 bytes each) and the index arrays.
    EXPECT_GE(memory.allocated(), size_t{28672} * sizeof(Session));
    EXPECT_GT(memory.allocations(), 3u);
    EXPECT_GT(memory.live_blocks(), 0u);
  }
  EXPECT_EQ(memory.live_blocks(), 0u) << "every block returned when the table goes";
}

TEST(NatTableMemory, TheEngineUsesTheConfiguredMemory) {
  CountingMemory memory;
  {
    NatConfig config;
    config.external_addresses = {0xcb007101};
    config.inside_network = 0x0a4d0000;
    config.gateway_inside_address = 0x0a4d0001;
    config.reserve_sessions = 1000;
    config.table_memory = &memory;
    NatEngine engine(config);
    EXPECT_GT(memory.allocations(), 0u) << "the reservation came from it";
  }
  EXPECT_EQ(memory.live_blocks(), 0u);
}

TEST(NatTableMemory, HugePageBlocksAreAlignedAndZeroed) {
  HugePageTableMemory memory;
  constexpr size_t kBig = HugePageTableMemory::kHugePageBytes * 2 + 12345;
  auto* big = static_cast<uint8_t*>(memory.Allocate(kBig, /*zeroed=*/false));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % HugePageTableMemory::kHugePageBytes, 0u);
  EXPECT_EQ(big[0], 0);
  EXPECT_EQ(big[kBig - 1], 0) << "fresh mappings are zero, even unasked";
  std::memset(big, 0xab, kBig);  // all of it is writable
  memory.Free(big, kBig);

  auto* small = static_cast<uint8_t*>(memory.Allocate(4096, /*zeroed=*/true));
  EXPECT_EQ(small[4095], 0);
  memory.Free(small, 4096);

  // A table on huge pages works as on the heap.
  SessionTable table(0x0a4d0001, memory);
  for (uint32_t i = 0; i < 140000; ++i) ASSERT_EQ(table.AddSession(SessionNumber(i)), i);
  EXPECT_EQ(table.FindOutside(FlowKey{Protocol::kUdp, SessionNumber(9).external(), SessionNumber(9).remote()}), 9u);
}

}  // namespace
}  // namespace dpm::nat
