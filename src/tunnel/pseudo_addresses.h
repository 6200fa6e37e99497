// The redirector's pseudo addresses (the tunneling patent, Fig. 6 step 615): each pseudo DNS name the
// hook resolves gets one IPv4 address from a configured range (default 100.64.0.0/10, the
// RFC 6598 shared address space, which no host on a private network or the Internet uses as a
// destination of its own), the same address for the same name for as long as the redirector
// runs. connect() to such an address is what the hook sends to the redirector.
// Sans-I/O; addresses in host byte order.
#ifndef DPM_TUNNEL_PSEUDO_ADDRESSES_H_
#define DPM_TUNNEL_PSEUDO_ADDRESSES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dpm::tunnel {

inline constexpr absl::string_view kDefaultPseudoRange = "100.64.0.0/10";

class PseudoAddressTable {
 public:
  /// `base_host`/`length`: the range (length 8..30); its first and last addresses are never
  /// given. `max_names`: how many names it holds at most.
  PseudoAddressTable(uint32_t base_host, int length, size_t max_names);
  /// The address of `name` (CanonicalName form), given now if it has none. Errors:
  /// ResourceExhausted when max_names or the range is used up.
  absl::StatusOr<uint32_t> Assign(absl::string_view name);
  /// The name an address was given to; nullopt for an address never given.
  std::optional<std::string> NameOf(uint32_t address_host) const;
  /// True when `address_host` is inside the range.
  bool InRange(uint32_t address_host) const;
  size_t size() const { return by_name_.size(); }

 private:
  uint32_t base_, mask_;
  size_t max_names_;
  uint32_t next_ = 1;
  absl::flat_hash_map<std::string, uint32_t> by_name_;
  absl::flat_hash_map<uint32_t, std::string> by_address_;
};

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_PSEUDO_ADDRESSES_H_
