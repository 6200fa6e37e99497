#include "preload/hook_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "dpm/socket.h"
#include "wire/ipv4.h"

namespace dpm::preload {

bool Ipv4Prefix::Contains(uint32_t address_host) const {
  return (address_host & Mask()) == (address & Mask());
}

bool HookConfig::ForKernel(uint32_t address_host) const {
  for (const Ipv4Prefix& p : kernel_nets) {
    if (p.Contains(address_host)) return true;
  }
  return false;
}

absl::StatusOr<std::vector<Ipv4Prefix>> ParsePrefixes(absl::string_view text) {
  std::vector<Ipv4Prefix> out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) continue;
    Ipv4Prefix p;
    if (!wire::ParseIpv4Prefix(item, 32, &p.address, &p.length)) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix '", item, "'"));
    }
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<HookConfig> ParseHookConfig(const char* tuple, const char* fixed_ports, const char* kernel_nets) {
  HookConfig c;
  const absl::string_view t = tuple != nullptr ? tuple : "";
  if (t.empty() || t == "common") {
    c.tuple = DPM_TUPLE_COMMON;
  } else if (t == "static") {
    c.tuple = DPM_TUPLE_STATIC;
  } else if (t == "dynamic") {
    c.tuple = DPM_TUPLE_DYNAMIC;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("DPM_TUPLE: '", t, "' is not common, static or dynamic"));
  }
  const absl::string_view f = fixed_ports != nullptr ? fixed_ports : "";
  if (f == "1" || f == "yes" || f == "true") {
    c.fixed_ports = true;
  } else if (!f.empty() && f != "0" && f != "no" && f != "false") {
    return absl::InvalidArgumentError(absl::StrCat("DPM_FIXED_PORTS: '", f, "' is not 0 or 1"));
  }
  absl::StatusOr<std::vector<Ipv4Prefix>> nets = ParsePrefixes(kernel_nets != nullptr ? kernel_nets : "127.0.0.0/8");
  if (!nets.ok()) return absl::InvalidArgumentError(absl::StrCat("DPM_KERNEL_NETS: ", nets.status().message()));
  c.kernel_nets = std::move(*nets);
  return c;
}

}  // namespace dpm::preload
