#include "nat/nat_config.h"

#include "absl/strings/str_cat.h"

namespace dpm::nat {

absl::Status ValidateNatConfig(const NatConfig& c) {
  if (c.external_addresses.empty()) return absl::InvalidArgumentError("external_addresses: the pool is empty");
  if (c.inside_prefix < 0 || c.inside_prefix > 32) {
    return absl::InvalidArgumentError(absl::StrCat("inside_prefix: ", c.inside_prefix, " is not 0-32"));
  }
  const uint32_t mask = c.inside_prefix == 0 ? 0 : ~(0xffffffffu >> c.inside_prefix);
  if ((c.gateway_inside_address & mask) != (c.inside_network & mask)) {
    return absl::InvalidArgumentError("gateway_inside_address: not in the inside network");
  }
  for (uint32_t a : c.external_addresses) {
    if ((a & mask) == (c.inside_network & mask)) {
      return absl::InvalidArgumentError("external_addresses: a pool address is in the inside network");
    }
  }
  if (c.port_min == 0 || c.port_min > c.port_max) {
    return absl::InvalidArgumentError(absl::StrCat("port_min/port_max: ", c.port_min, "-", c.port_max,
                                                   " is not a range of non-zero ports"));
  }
  if (c.min_lifetime_s == 0 || c.min_lifetime_s > c.max_lifetime_s) {
    return absl::InvalidArgumentError("min_lifetime_s/max_lifetime_s: not a non-zero range");
  }
  if (c.udp_timeout_ms < 120000) return absl::InvalidArgumentError("udp_timeout_ms: below 2 min (RFC 4787 REQ-5)");
  if (c.tcp_established_ms < 7440000) {
    return absl::InvalidArgumentError("tcp_established_ms: below 2 h 4 min (RFC 5382 REQ-5)");
  }
  if (c.tcp_transitory_ms < 240000) {
    return absl::InvalidArgumentError("tcp_transitory_ms: below 4 min (RFC 5382 REQ-5)");
  }
  if (c.icmp_timeout_ms < 60000) return absl::InvalidArgumentError("icmp_timeout_ms: below 60 s (RFC 5508 REQ-2)");
  if (c.fragment_timeout_ms < 2000) {
    return absl::InvalidArgumentError("fragment_timeout_ms: below 2 s (RFC 6146 §4 FRAGMENT_MIN)");
  }
  return absl::OkStatus();
}

}  // namespace dpm::nat
