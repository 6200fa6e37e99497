#include "stack/address_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "wire/ipv4.h"

namespace dpm::stack {

absl::StatusOr<AddressRange> ParseAddressRange(const std::string& text) {
  const auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("bad address range '", text, "'")); };
  AddressRange r;
  if (size_t dash = text.find('-'); dash != std::string::npos) {
    if (!wire::ParseIpv4(text.substr(0, dash), &r.first) || !wire::ParseIpv4(text.substr(dash + 1), &r.last)) {
      return bad();
    }
  } else if (size_t slash = text.find('/'); slash != std::string::npos) {
    uint32_t base = 0;
    const std::string bits = text.substr(slash + 1);
    if (!wire::ParseIpv4(text.substr(0, slash), &base) || bits.empty() || bits.size() > 2 ||
        !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return bad();
    }
    const int prefix = std::stoi(bits);
    if (prefix < 1 || prefix > 32) return bad();
    const uint32_t mask = prefix == 32 ? ~uint32_t{0} : ~(~uint32_t{0} >> prefix);
    r.first = base & mask;
    r.last = r.first | ~mask;
    if (prefix <= 30) {  // not the network's own address nor its broadcast address
      r.first++;
      r.last--;
    }
  } else {
    if (!wire::ParseIpv4(text, &r.first)) return bad();
    r.last = r.first;
  }
  if (r.last < r.first) return bad();
  return r;
}

absl::StatusOr<AddressPool> AddressPool::Create(const std::vector<AddressRange>& ranges) {
  if (ranges.empty()) return absl::InvalidArgumentError("the address pool has no range");
  std::vector<AddressRange> sorted = ranges;
  std::sort(sorted.begin(), sorted.end(), [](const AddressRange& a, const AddressRange& b) { return a.first < b.first; });
  uint64_t total = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const AddressRange& r = sorted[i];
    if (r.last < r.first) return absl::InvalidArgumentError("an address range ends before it starts");
    if (i > 0 && r.first <= sorted[i - 1].last) return absl::InvalidArgumentError("address ranges overlap");
    if (r.first == 0 || r.last >= 0xe0000000u) {
      return absl::InvalidArgumentError("a pool address must be a unicast address (not 0.0.0.0, multicast or broadcast)");
    }
    total += uint64_t{r.last} - r.first + 1;
    if (total > kMaxAddresses) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxAddresses, " addresses in the pool"));
    }
  }
  AddressPool pool;
  pool.addresses_.reserve(total);
  pool.slot_.reserve(total);
  for (const AddressRange& r : sorted) {
    for (uint64_t a = r.first; a <= r.last; ++a) {
      pool.slot_.emplace(static_cast<uint32_t>(a), static_cast<uint32_t>(pool.addresses_.size()));
      pool.addresses_.push_back(static_cast<uint32_t>(a));
    }
  }
  pool.allocated_.assign(total, 0);
  pool.ring_.resize(total);
  for (uint32_t i = 0; i < total; ++i) pool.ring_[i] = i;  // in address order at first
  pool.free_count_ = total;
  return pool;
}

std::optional<uint32_t> AddressPool::Allocate() {
  if (free_count_ == 0) return std::nullopt;
  const uint32_t slot = ring_[head_];
  head_ = (head_ + 1) % ring_.size();
  free_count_--;
  allocated_[slot] = 1;
  return addresses_[slot];
}

bool AddressPool::Release(uint32_t address) {
  auto it = slot_.find(address);
  if (it == slot_.end() || !allocated_[it->second]) return false;
  allocated_[it->second] = 0;
  ring_[(head_ + free_count_) % ring_.size()] = it->second;  // to the back of the queue
  free_count_++;
  return true;
}

bool AddressPool::IsAllocated(uint32_t address) const {
  auto it = slot_.find(address);
  return it != slot_.end() && allocated_[it->second];
}

}  // namespace dpm::stack
