#include "nat/port_allocator.h"

#include <algorithm>
#include <bit>
#include <random>

namespace dpm::nat {
namespace {

constexpr uint64_t kEvenPorts = 0x5555555555555555ull;  // bit b of word w is port 64w + b
constexpr uint64_t kOddPorts = 0xaaaaaaaaaaaaaaaaull;
constexpr uint64_t kAllPorts = ~0ull;
constexpr uint32_t kLowPortMax = 1023;  // RFC 4787 REQ-3a: 0-1023 stays in 0-1023

absl::BitGen MakeGenerator(uint64_t seed) {
  std::seed_seq sequence{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  return absl::BitGen(sequence);
}

// splitmix64's finaliser: a keyed, well-spread map from an address to a pool slot.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

PortAllocator::PortAllocator(const std::vector<uint32_t>& pool, uint16_t port_min, uint16_t port_max, uint64_t seed)
    : port_min_(std::min(port_min, port_max)), port_max_(std::max(port_min, port_max)), random_(MakeGenerator(seed)) {
  for (uint32_t address : pool) {
    if (index_of_.contains(address)) continue;  // a duplicate in the configuration
    index_of_[address] = addresses_.size();
    addresses_.push_back(PoolAddress{address, {}, {}});
  }
  pairing_key_ = absl::Uniform<uint64_t>(random_);
}

std::optional<size_t> PortAllocator::IndexOf(uint32_t address) const {
  auto it = index_of_.find(address);
  if (it == index_of_.end()) return std::nullopt;
  return it->second;
}

size_t PortAllocator::ProtocolSlot(Protocol protocol) {
  switch (protocol) {
    case Protocol::kIcmp: return 0;
    case Protocol::kTcp: return 1;
    case Protocol::kUdp: return 2;
  }
  return 2;
}

bool PortAllocator::InUse(size_t index, Protocol protocol, uint16_t port) const {
  const std::vector<uint64_t>& taken = addresses_[index].taken[ProtocolSlot(protocol)];
  if (taken.empty()) return false;
  return (taken[port >> 6] >> (port & 63)) & 1;
}

void PortAllocator::Reserve(size_t index, Protocol protocol, uint16_t port) {
  PoolAddress& a = addresses_[index];
  const size_t slot = ProtocolSlot(protocol);
  std::vector<uint64_t>& taken = a.taken[slot];
  if (taken.empty()) {
    taken.assign(kWords, 0);
    taken[0] = 1;  // port 0 is never handed out
  }
  const uint64_t bit = uint64_t{1} << (port & 63);
  if (!(taken[port >> 6] & bit)) {
    taken[port >> 6] |= bit;
    ++a.count[slot];
  }
}

void PortAllocator::Release(size_t index, Protocol protocol, uint16_t port) {
  PoolAddress& a = addresses_[index];
  const size_t slot = ProtocolSlot(protocol);
  std::vector<uint64_t>& taken = a.taken[slot];
  if (taken.empty() || port == 0) return;
  const uint64_t bit = uint64_t{1} << (port & 63);
  if (taken[port >> 6] & bit) {
    taken[port >> 6] &= ~bit;
    --a.count[slot];
  }
}

uint32_t PortAllocator::used(size_t index, Protocol protocol) const {
  return addresses_[index].count[ProtocolSlot(protocol)];
}

int PortAllocator::FindFree(const std::vector<uint64_t>& taken, uint32_t begin, uint32_t end, uint64_t parity_mask) {
  if (begin > end) return -1;
  for (uint32_t word = begin >> 6; word <= (end >> 6); ++word) {
    uint64_t free = ~taken[word] & parity_mask;
    if (word == (begin >> 6)) free &= kAllPorts << (begin & 63);
    if (word == (end >> 6) && (end & 63) != 63) free &= (uint64_t{1} << ((end & 63) + 1)) - 1;
    if (free != 0) return static_cast<int>(word * 64 + static_cast<uint32_t>(std::countr_zero(free)));
  }
  return -1;
}

std::optional<uint16_t> PortAllocator::Allocate(size_t index, Protocol protocol, uint16_t internal_port) {
  uint32_t lo = std::max<uint32_t>(port_min_, 1);
  uint32_t hi = port_max_;
  if (protocol != Protocol::kIcmp) {
    if (internal_port <= kLowPortMax) {
      lo = 1;
      hi = kLowPortMax;
    } else {
      lo = std::max<uint32_t>(lo, kLowPortMax + 1);
    }
  }
  if (lo > hi) return std::nullopt;
  Reserve(index, protocol, 0);  // makes the bitmap
  const std::vector<uint64_t>& taken = addresses_[index].taken[ProtocolSlot(protocol)];
  const uint32_t start = Uniform(lo, hi);
  // Same parity first (RFC 4787 REQ-4), then any; from the random start, wrapping.
  const uint64_t same_parity = (internal_port & 1) ? kOddPorts : kEvenPorts;
  for (uint64_t mask : {same_parity, kAllPorts}) {
    int port = FindFree(taken, start, hi, mask);
    if (port < 0) port = FindFree(taken, lo, start - 1, mask);
    if (port >= 0) {
      Reserve(index, protocol, static_cast<uint16_t>(port));
      return static_cast<uint16_t>(port);
    }
  }
  return std::nullopt;
}

size_t PortAllocator::PairedIndex(uint32_t internal_address) const {
  if (addresses_.empty()) return 0;
  return static_cast<size_t>(Mix(internal_address ^ pairing_key_) % addresses_.size());
}

uint32_t PortAllocator::Uniform(uint32_t lo, uint32_t hi) {
  return absl::Uniform<uint32_t>(absl::IntervalClosedClosed, random_, lo, hi);
}

}  // namespace dpm::nat
