#include "preload/hook_config.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "dpm/socket.h"
#include "vpm/aid.h"
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

namespace {

// A yes/no variable: 1/yes/true, 0/no/false, or unset/empty (no). nullopt for anything else.
std::optional<bool> Flag(const char* value) {
  const absl::string_view f = value != nullptr ? value : "";
  if (f == "1" || f == "yes" || f == "true") return true;
  if (f.empty() || f == "0" || f == "no" || f == "false") return false;
  return std::nullopt;
}

bool ValidLabel(absl::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  for (char ch : label) {
    if (!absl::ascii_islower(ch) && !absl::ascii_isdigit(ch) && ch != '-') return false;
  }
  return true;
}

}  // namespace

bool ValidTunnelSuffix(absl::string_view suffix) {
  if (suffix.empty() || suffix.size() > 200) return false;
  for (absl::string_view label : absl::StrSplit(suffix, '.')) {
    if (!ValidLabel(label)) return false;
  }
  return true;
}

std::string CanonicalHostName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(name);
}

bool TunnelConfig::UnderSuffix(absl::string_view name) const {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.size() <= suffix.size() + 1) return false;
  const size_t dot = name.size() - suffix.size() - 1;
  return name[dot] == '.' && absl::EqualsIgnoreCase(name.substr(dot + 1), suffix);
}

absl::StatusOr<TunnelConfig> ParseTunnelConfig(const char* tunnel, const char* tunnel_suffix, const char* tunnel_net) {
  TunnelConfig c;
  const std::optional<bool> on = Flag(tunnel);
  if (!on.has_value()) return absl::InvalidArgumentError(absl::StrCat("DPM_TUNNEL: '", tunnel, "' is not 0 or 1"));
  c.enabled = *on;
  if (tunnel_suffix != nullptr && *tunnel_suffix != '\0') {
    if (!ValidTunnelSuffix(tunnel_suffix)) {
      return absl::InvalidArgumentError(absl::StrCat("DPM_TUNNEL_SUFFIX: '", tunnel_suffix,
                                                     "' is not a DNS suffix (labels of a-z, 0-9, '-' joined by dots)"));
    }
    c.suffix = tunnel_suffix;
  }
  if (tunnel_net != nullptr && *tunnel_net != '\0') {
    absl::StatusOr<std::vector<Ipv4Prefix>> net = ParsePrefixes(tunnel_net);
    if (!net.ok() || net->size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("DPM_TUNNEL_NET: '", tunnel_net, "' is not one IPv4 prefix A.B.C.D/LEN"));
    }
    c.net = net->front();
  }
  return c;
}

absl::StatusOr<HookConfig> ParseHookConfig(const char* tuple, const char* fixed_ports, const char* kernel_nets,
                                           const char* tunnel, const char* tunnel_suffix, const char* tunnel_net,
                                           const char* aid) {
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
  const std::optional<bool> fixed = Flag(fixed_ports);
  if (!fixed.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("DPM_FIXED_PORTS: '", fixed_ports, "' is not 0 or 1"));
  }
  c.fixed_ports = *fixed;
  absl::StatusOr<std::vector<Ipv4Prefix>> nets = ParsePrefixes(kernel_nets != nullptr ? kernel_nets : "127.0.0.0/8");
  if (!nets.ok()) return absl::InvalidArgumentError(absl::StrCat("DPM_KERNEL_NETS: ", nets.status().message()));
  c.kernel_nets = std::move(*nets);
  absl::StatusOr<TunnelConfig> tc = ParseTunnelConfig(tunnel, tunnel_suffix, tunnel_net);
  if (!tc.ok()) return tc.status();
  c.tunnel = std::move(*tc);
  if (aid != nullptr && *aid != '\0') {
    if (!vpm::ValidAid(aid)) {
      return absl::InvalidArgumentError(
          absl::StrCat("DPM_AID: '", aid, "' is not an AID (1-32 of letters, digits, '.', '_', '-')"));
    }
    c.aid = aid;
  }
  return c;
}

}  // namespace dpm::preload
