// LinkPump (src/stack/link_pump.h) on an in-memory link: packets come in batches of at most
// the batch size, in the order read, each cut to its IPv4 total length, with bad ones dropped
// and counted before any batch; after_batch runs after each.
#include "stack/link_pump.h"

#include <cstdint>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "tun/memory_link.h"

namespace dpm::stack {
namespace {

// A 28-byte IPv4 packet (header only, protocol 253) whose identification is `id`, with
// `padding` bytes after its total length.
std::vector<uint8_t> Packet(uint16_t id, size_t padding = 0) {
  std::vector<uint8_t> p = {0x45, 0, 0, 28, static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0, 0, 64, 253,
                            0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
  p.resize(p.size() + padding, 0xee);
  return p;
}

class LinkPumpTest : public ::testing::Test {
 protected:
  void Poll() {
    for (int i = 0; i < 100; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }

  boost::asio::io_context io_;
  tun::MemoryLink link_{1500};
  std::vector<std::vector<uint16_t>> batches_;  // identifications, batch by batch
  std::vector<size_t> lengths_;
  int after_ = 0;
};

TEST_F(LinkPumpTest, HandsPacketsInOrderInBatchesOfAtMostTheBatchSize) {
  LinkPump pump(
      io_, link_,
      [&](absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload> offloads) {
        EXPECT_EQ(packets.size(), offloads.size());
        std::vector<uint16_t> ids;
        for (absl::Span<uint8_t> p : packets) {
          ids.push_back(static_cast<uint16_t>((p[4] << 8) | p[5]));
          lengths_.push_back(p.size());
        }
        batches_.push_back(ids);
      },
      [&] { after_++; }, /*batch_size=*/32);
  pump.Start();
  for (uint16_t id = 0; id < 40; ++id) link_.InjectInbound(Packet(id, id == 3 ? 10 : 0));
  Poll();
  ASSERT_EQ(batches_.size(), 2u);
  EXPECT_EQ(batches_[0].size(), 32u);
  EXPECT_EQ(batches_[1].size(), 8u);
  std::vector<uint16_t> all = batches_[0];
  all.insert(all.end(), batches_[1].begin(), batches_[1].end());
  for (uint16_t id = 0; id < 40; ++id) EXPECT_EQ(all[id], id);
  for (size_t n : lengths_) EXPECT_EQ(n, 28u) << "cut to the total length (padding gone)";
  EXPECT_EQ(after_, 2) << "after each batch";
  EXPECT_EQ(pump.batches(), 2u);
  EXPECT_EQ(pump.packets(), 40u);
}

TEST_F(LinkPumpTest, BadPacketsAreCountedAndLeaveNoHoleInTheBatch) {
  LinkPump pump(io_, link_, [&](absl::Span<const absl::Span<uint8_t>> packets, absl::Span<wire::Offload>) {
    std::vector<uint16_t> ids;
    for (absl::Span<uint8_t> p : packets) ids.push_back(static_cast<uint16_t>((p[4] << 8) | p[5]));
    batches_.push_back(ids);
  }, {}, /*batch_size=*/4);
  pump.Start();
  std::vector<uint8_t> v6 = Packet(99);
  v6[0] = 0x65;
  link_.InjectInbound(Packet(1));
  link_.InjectInbound(v6);
  link_.InjectInbound({0x45, 0});
  link_.InjectInbound(Packet(2));
  link_.InjectInbound(Packet(3));
  link_.InjectInbound(Packet(4));
  link_.InjectInbound(Packet(5));
  Poll();
  ASSERT_EQ(batches_.size(), 2u);
  EXPECT_EQ(batches_[0], (std::vector<uint16_t>{1, 2, 3, 4}));
  EXPECT_EQ(batches_[1], (std::vector<uint16_t>{5}));
  EXPECT_EQ(pump.drops()[static_cast<size_t>(wire::IpCheck::kBadVersion)], 1u);
  EXPECT_EQ(pump.drops()[static_cast<size_t>(wire::IpCheck::kTooShort)], 1u);
}

}  // namespace
}  // namespace dpm::stack
