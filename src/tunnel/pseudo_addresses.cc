#include "tunnel/pseudo_addresses.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tunnel/names.h"

namespace dpm::tunnel {
namespace {

uint32_t MaskOf(int length) {
  length = std::clamp(length, 8, 30);
  return ~uint32_t{0} << (32 - length);
}

}  // namespace

PseudoAddressTable::PseudoAddressTable(uint32_t base_host, int length, size_t max_names)
    : base_(base_host & MaskOf(length)), mask_(MaskOf(length)), max_names_(max_names) {}

absl::StatusOr<uint32_t> PseudoAddressTable::Assign(absl::string_view name) {
  std::string canonical = CanonicalName(name);
  if (const auto it = by_name_.find(canonical); it != by_name_.end()) return it->second;
  if (by_name_.size() >= max_names_) {
    return absl::ResourceExhaustedError(absl::StrCat("pseudo address table full (", max_names_, " names)"));
  }
  // Offsets 1 .. ~mask_-1: the range's first (network) and last (broadcast) addresses are
  // never given, so no program mistakes a pseudo address for one of those.
  if (next_ >= ~mask_) return absl::ResourceExhaustedError("pseudo address range used up");
  const uint32_t address = base_ | next_++;
  by_address_.emplace(address, canonical);
  by_name_.emplace(std::move(canonical), address);
  return address;
}

std::optional<std::string> PseudoAddressTable::NameOf(uint32_t address_host) const {
  const auto it = by_address_.find(address_host);
  if (it == by_address_.end()) return std::nullopt;
  return it->second;
}

bool PseudoAddressTable::InRange(uint32_t address_host) const { return (address_host & mask_) == base_; }

}  // namespace dpm::tunnel
