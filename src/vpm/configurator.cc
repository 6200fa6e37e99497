// The configurator file and its compiled lookups (configurator.h).
#include "vpm/configurator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "wire/ipv4.h"
#include "wire/strict_json.h"

namespace dpm::vpm {
namespace {

using nlohmann::json;
using wire::JsonError;

constexpr char kRefuse[] = "refuse";

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// "LOW-HIGH" or "PORT" → an inclusive range; `allow_zero`: 0 may be the low end.
bool ParseRange(absl::string_view text, bool allow_zero, uint16_t* low, uint16_t* high) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(text, absl::MaxSplits('-', 1));
  if (text.find('-') == text.npos) parts.second = parts.first;
  uint32_t a, b;
  if (!AllDigits(parts.first) || !AllDigits(parts.second) || !absl::SimpleAtoi(parts.first, &a) ||
      !absl::SimpleAtoi(parts.second, &b) || a > 65535 || b > 65535 || a > b || (a == 0 && !allow_zero)) {
    return false;
  }
  *low = static_cast<uint16_t>(a);
  *high = static_cast<uint16_t>(b);
  return true;
}

absl::StatusOr<std::vector<std::string>> StringList(const json& object, const char* key, absl::string_view where) {
  std::vector<std::string> out;
  const auto it = object.find(key);
  if (it == object.end()) return out;
  if (!it->is_array()) return JsonError(where, absl::StrCat(key, " is not a list"));
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) return JsonError(absl::StrCat(where, ".", key, "[", i, "]"), "not a string");
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

absl::Status ParsePorts(const json& root, ConfiguratorConfig* config) {
  const auto it = root.find("ports");
  if (it == root.end()) {
    if (root.contains("cooperative")) return absl::OkStatus();  // connects only
    return JsonError("ports", "missing: no virtual port is multiplexed");
  }
  if (!it->is_object()) return JsonError("ports", "not an object");
  for (const auto& [name, entry] : it->items()) {
    const std::string where = absl::StrCat("ports.", name);
    std::optional<PortKey> key = ParsePortKey(name);
    if (!key) return JsonError(where, "not PROTOCOL/PORT (tcp/80, udp/53)");
    if (!entry.is_object()) return JsonError(where, "not an object");
    if (absl::Status s = wire::OnlyKnownKeys(entry, where, {"default"}); !s.ok()) return s;
    PortPolicy policy{*key, std::nullopt};
    const auto d = entry.find("default");
    if (d == entry.end() || !d->is_string()) return JsonError(where, "default (an AID or \"refuse\") missing");
    const std::string value = d->get<std::string>();
    if (value != kRefuse) {
      if (!ValidAid(value)) return JsonError(where, absl::StrCat("default '", value, "' is not an AID"));
      policy.default_aid = value;
    }
    config->ports.push_back(std::move(policy));
  }
  return absl::OkStatus();
}

absl::StatusOr<ApplicationRule> ParseApplication(const json& entry, const std::string& where,
                                                 const ConfiguratorConfig& config, UserLookup users) {
  if (!entry.is_object()) return JsonError(where, "not an object");
  if (absl::Status s = wire::OnlyKnownKeys(entry, where, {"aid", "ports", "programs", "users", "sources"}); !s.ok()) {
    return s;
  }
  ApplicationRule app;
  const auto aid = entry.find("aid");
  if (aid == entry.end() || !aid->is_string()) return JsonError(where, "aid missing");
  app.aid = aid->get<std::string>();
  if (!ValidAid(app.aid)) return JsonError(where, absl::StrCat("'", app.aid, "' is not an AID"));

  absl::StatusOr<std::vector<std::string>> ports = StringList(entry, "ports", where);
  if (!ports.ok()) return ports.status();
  if (ports->empty()) return JsonError(where, "ports missing: the virtual ports its rules apply to");
  for (const std::string& text : *ports) {
    std::optional<PortKey> key = ParsePortKey(text);
    if (!key) return JsonError(where, absl::StrCat("'", text, "' is not PROTOCOL/PORT"));
    const bool known = std::any_of(config.ports.begin(), config.ports.end(),
                                   [&](const PortPolicy& p) { return p.key == *key; }) ||
                       std::any_of(config.cooperative.peers.begin(), config.cooperative.peers.end(),
                                   [&](const CooperativePeer& peer) {
                                     return std::find(peer.ports.begin(), peer.ports.end(), *key) != peer.ports.end();
                                   });
    if (!known) return JsonError(where, absl::StrCat("port ", text, " is not in ports (nor a cooperative peer's)"));
    app.ports.push_back(*key);
  }

  absl::StatusOr<std::vector<std::string>> programs = StringList(entry, "programs", where);
  if (!programs.ok()) return programs.status();
  for (size_t i = 0; i < programs->size(); ++i) {
    if ((*programs)[i].empty() || (*programs)[i][0] != '/') {
      return JsonError(absl::StrCat(where, ".programs[", i, "]"), "not an absolute path");
    }
  }
  app.programs = *std::move(programs);

  absl::StatusOr<std::vector<std::string>> names = StringList(entry, "users", where);
  if (!names.ok()) return names.status();
  for (size_t i = 0; i < names->size(); ++i) {
    const std::string& name = (*names)[i];
    uint32_t uid;
    if (AllDigits(name) && absl::SimpleAtoi(name, &uid)) {
      app.users.push_back(static_cast<uid_t>(uid));
      continue;
    }
    std::optional<uid_t> found = users != nullptr ? users(name) : std::nullopt;
    if (!found) return JsonError(absl::StrCat(where, ".users[", i, "]"), absl::StrCat("no user '", name, "'"));
    app.users.push_back(*found);
  }

  absl::StatusOr<std::vector<std::string>> sources = StringList(entry, "sources", where);
  if (!sources.ok()) return sources.status();
  for (size_t i = 0; i < sources->size(); ++i) {
    absl::StatusOr<SourcePattern> p = ParseSourcePattern((*sources)[i]);
    if (!p.ok()) return JsonError(absl::StrCat(where, ".sources[", i, "]"), p.status().message());
    app.sources.push_back(*p);
  }
  return app;
}

// A list of prefixes without port parts.
absl::StatusOr<std::vector<SourcePattern>> PrefixList(const json& object, const char* key, absl::string_view where) {
  absl::StatusOr<std::vector<std::string>> texts = StringList(object, key, where);
  if (!texts.ok()) return texts.status();
  std::vector<SourcePattern> out;
  for (size_t i = 0; i < texts->size(); ++i) {
    const std::string place = absl::StrCat(where, ".", key, "[", i, "]");
    if ((*texts)[i].find(':') != std::string::npos) return JsonError(place, "a prefix takes no port part");
    absl::StatusOr<SourcePattern> p = ParseSourcePattern((*texts)[i]);
    if (!p.ok()) return JsonError(place, p.status().message());
    out.push_back(*p);
  }
  return out;
}

absl::Status ParseCooperative(const json& root, CooperativeConfig* out) {
  const auto it = root.find("cooperative");
  if (it == root.end()) return absl::OkStatus();
  const std::string where = "cooperative";
  if (!it->is_object()) return JsonError(where, "not an object");
  if (absl::Status s = wire::OnlyKnownKeys(*it, where, {"port", "timeout_ms", "accept", "peers"}); !s.ok()) return s;
  out->present = true;
  size_t port = out->port;
  if (absl::Status s = wire::ReadPositiveInteger(*it, "port", where, &port, 65535); !s.ok()) return s;
  out->port = static_cast<uint16_t>(port);
  size_t timeout = out->timeout_ms;
  if (absl::Status s = wire::ReadPositiveInteger(*it, "timeout_ms", where, &timeout, 600 * 1000); !s.ok()) return s;
  out->timeout_ms = timeout;
  absl::StatusOr<std::vector<SourcePattern>> accept = PrefixList(*it, "accept", where);
  if (!accept.ok()) return accept.status();
  out->accept = *std::move(accept);
  const auto peers = it->find("peers");
  if (peers == it->end()) return absl::OkStatus();
  if (!peers->is_array()) return JsonError("cooperative.peers", "not a list");
  for (size_t i = 0; i < peers->size(); ++i) {
    const json& entry = (*peers)[i];
    const std::string at = absl::StrCat("cooperative.peers[", i, "]");
    if (!entry.is_object()) return JsonError(at, "not an object");
    if (absl::Status s = wire::OnlyKnownKeys(entry, at, {"destinations", "ports", "default"}); !s.ok()) return s;
    CooperativePeer peer;
    absl::StatusOr<std::vector<SourcePattern>> d = PrefixList(entry, "destinations", at);
    if (!d.ok()) return d.status();
    if (d->empty()) return JsonError(at, "destinations missing");
    peer.destinations = *std::move(d);
    absl::StatusOr<std::vector<std::string>> ports = StringList(entry, "ports", at);
    if (!ports.ok()) return ports.status();
    if (ports->empty()) return JsonError(at, "ports missing");
    for (const std::string& text : *ports) {
      std::optional<PortKey> key = ParsePortKey(text);
      if (!key) return JsonError(at, absl::StrCat("'", text, "' is not PROTOCOL/PORT"));
      peer.ports.push_back(*key);
    }
    if (const auto d2 = entry.find("default"); d2 != entry.end()) {
      if (!d2->is_string() || !ValidAid(d2->get<std::string>())) return JsonError(at, "default is not an AID");
      peer.default_aid = d2->get<std::string>();
    }
    out->peers.push_back(std::move(peer));
  }
  return absl::OkStatus();
}

bool InPrefixes(const std::vector<SourcePattern>& prefixes, uint32_t address) {
  return std::any_of(prefixes.begin(), prefixes.end(), [&](const SourcePattern& p) {
    const uint32_t mask = p.length == 0 ? 0 : ~uint32_t{0} << (32 - p.length);
    return (address & mask) == p.prefix;
  });
}

}  // namespace

const char* ProtocolName(Protocol protocol) { return protocol == Protocol::kTcp ? "tcp" : "udp"; }

std::optional<PortKey> ParsePortKey(absl::string_view text) {
  PortKey key;
  if (absl::ConsumePrefix(&text, "tcp/")) {
    key.protocol = Protocol::kTcp;
  } else if (absl::ConsumePrefix(&text, "udp/")) {
    key.protocol = Protocol::kUdp;
  } else {
    return std::nullopt;
  }
  uint32_t port;
  if (!AllDigits(text) || !absl::SimpleAtoi(text, &port) || port == 0 || port > 65535) return std::nullopt;
  key.port = static_cast<uint16_t>(port);
  return key;
}

std::string FormatPortKey(const PortKey& key) { return absl::StrCat(ProtocolName(key.protocol), "/", key.port); }

absl::StatusOr<SourcePattern> ParseSourcePattern(absl::string_view text) {
  SourcePattern p;
  absl::string_view address = text;
  if (const size_t colon = text.find(':'); colon != text.npos) {
    address = text.substr(0, colon);
    if (!ParseRange(text.substr(colon + 1), /*allow_zero=*/true, &p.port_min, &p.port_max)) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': the port part is not PORT or LOW-HIGH"));
    }
  }
  uint32_t prefix;
  int length;
  if (!wire::ParseIpv4Prefix(address, 32, &prefix, &length) || length < 0 || length > 32) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a prefix (A.B.C.D/LEN)"));
  }
  const uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
  if ((prefix & ~mask) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' has bits set past its prefix length"));
  }
  p.prefix = prefix;
  p.length = length;
  return p;
}

std::string FormatSourcePattern(const SourcePattern& p) {
  std::string out = absl::StrCat(wire::FormatIpv4(p.prefix), "/", p.length);
  if (p.port_min == 0 && p.port_max == 65535) return out;
  if (p.port_min == p.port_max) return absl::StrCat(out, ":", p.port_min);
  return absl::StrCat(out, ":", p.port_min, "-", p.port_max);
}

absl::StatusOr<ConfiguratorConfig> ParseConfigurator(absl::string_view json_text, UserLookup users) {
  absl::StatusOr<json> root = wire::ParseStrictJson(json_text);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (absl::Status s = wire::OnlyKnownKeys(*root, "the file", {"hidden_ports", "queue_timeout_ms", "ports",
                                                                "applications", "cooperative"});
      !s.ok()) {
    return s;
  }
  ConfiguratorConfig config;
  if (const auto h = root->find("hidden_ports"); h != root->end()) {
    if (!h->is_string() || !ParseRange(h->get<std::string>(), /*allow_zero=*/false, &config.hidden_min,
                                       &config.hidden_max)) {
      return JsonError("hidden_ports", absl::StrCat("'", h->is_string() ? h->get<std::string>() : h->dump(),
                                                   "' is not LOW-HIGH (1-65535)"));
    }
  }
  size_t timeout = config.queue_timeout_ms;
  if (absl::Status s = wire::ReadPositiveInteger(*root, "queue_timeout_ms", "the file", &timeout, 3600 * 1000);
      !s.ok()) {
    return s;
  }
  config.queue_timeout_ms = timeout;
  if (absl::Status s = ParsePorts(*root, &config); !s.ok()) return s;
  if (absl::Status s = ParseCooperative(*root, &config.cooperative); !s.ok()) return s;
  for (const PortPolicy& p : config.ports) {
    if (p.key.port >= config.hidden_min && p.key.port <= config.hidden_max) {
      return JsonError(absl::StrCat("ports.", FormatPortKey(p.key)), "inside hidden_ports");
    }
  }
  if (const auto apps = root->find("applications"); apps != root->end()) {
    if (!apps->is_array()) return JsonError("applications", "not a list");
    for (size_t i = 0; i < apps->size(); ++i) {
      absl::StatusOr<ApplicationRule> app =
          ParseApplication((*apps)[i], absl::StrCat("applications[", i, "]"), config, users);
      if (!app.ok()) return app.status();
      config.applications.push_back(*std::move(app));
    }
  }
  return config;
}

Dispatcher::Dispatcher(const ConfiguratorConfig& config)
    : config_(config),
      cooperative_(config.cooperative),
      hidden_min_(config.hidden_min),
      hidden_max_(config.hidden_max),
      queue_timeout_ms_(config.queue_timeout_ms) {
  absl::flat_hash_map<std::string, uint32_t> index;
  auto intern = [&](const std::string& aid) {
    auto [it, added] = index.try_emplace(aid, static_cast<uint32_t>(aids_.size()));
    if (added) aids_.push_back(aid);
    return it->second;
  };
  for (const PortPolicy& p : config.ports) {
    Port& port = ports_[p.key];
    if (p.default_aid) port.default_aid = intern(*p.default_aid);
  }
  for (const ApplicationRule& app : config.applications) {
    const uint32_t aid = intern(app.aid);
    for (const PortKey& key : app.ports) {
      auto it = ports_.find(key);
      if (it == ports_.end()) {
        Port& connect = connect_ports_[key];  // a cooperative peer's port: socket rules only
        for (const std::string& program : app.programs) connect.programs.emplace_back(program, aid);
        for (uid_t uid : app.users) connect.users.emplace_back(uid, aid);
        continue;
      }
      Port& port = it->second;
      for (const std::string& program : app.programs) port.programs.emplace_back(program, aid);
      for (uid_t uid : app.users) port.users.emplace_back(uid, aid);
      for (const SourcePattern& s : app.sources) {
        port.lengths |= uint64_t{1} << s.length;
        port.by_length[s.length][s.prefix].push_back(Range{s.port_min, s.port_max, aid});
        ++source_rules_;
      }
    }
  }
  // Within one prefix the narrowest port range wins; equal widths keep the file's order.
  for (auto& [key, port] : ports_) {
    for (auto& table : port.by_length) {
      for (auto& [prefix, ranges] : table) {
        std::stable_sort(ranges.begin(), ranges.end(),
                         [](const Range& a, const Range& b) { return a.max - a.min < b.max - b.min; });
      }
    }
  }
}

Dispatcher::Decision Dispatcher::Dispatch(PortKey key, uint32_t source, uint16_t source_port) const {
  const auto it = ports_.find(key);
  if (it == ports_.end()) return {};
  const Port& port = it->second;
  for (uint64_t lengths = port.lengths; lengths != 0;) {
    const int length = 63 - __builtin_clzll(lengths);  // the longest prefix length left
    lengths &= ~(uint64_t{1} << length);
    const uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
    const auto& table = port.by_length[length];
    const auto found = table.find(source & mask);
    if (found == table.end()) continue;
    for (const Range& r : found->second) {
      if (source_port >= r.min && source_port <= r.max) return {Decision::kRule, aids_[r.aid]};
    }
  }
  if (port.default_aid) return {Decision::kDefault, aids_[*port.default_aid]};
  return {Decision::kRefuse, {}};
}

std::optional<absl::string_view> Dispatcher::AidForSocket(PortKey key, absl::string_view executable,
                                                          uid_t uid) const {
  const auto it = ports_.find(key);
  if (it == ports_.end()) return std::nullopt;
  for (const auto& [program, aid] : it->second.programs) {
    if (program == executable) return aids_[aid];
  }
  for (const auto& [user, aid] : it->second.users) {
    if (user == uid) return aids_[aid];
  }
  return std::nullopt;
}

const CooperativePeer* Dispatcher::PeerFor(PortKey key, uint32_t destination) const {
  for (const CooperativePeer& peer : cooperative_.peers) {
    if (std::find(peer.ports.begin(), peer.ports.end(), key) != peer.ports.end() &&
        InPrefixes(peer.destinations, destination)) {
      return &peer;
    }
  }
  return nullptr;
}

std::optional<absl::string_view> Dispatcher::AidForConnect(PortKey key, const CooperativePeer& peer,
                                                           absl::string_view executable, uid_t uid) const {
  for (const auto* table : {&connect_ports_, &ports_}) {
    const auto it = table->find(key);
    if (it == table->end()) continue;
    for (const auto& [program, aid] : it->second.programs) {
      if (program == executable) return aids_[aid];
    }
    for (const auto& [user, aid] : it->second.users) {
      if (user == uid) return aids_[aid];
    }
  }
  if (peer.default_aid) return *peer.default_aid;
  return std::nullopt;
}

bool Dispatcher::AcceptsNegotiation(uint32_t source) const { return InPrefixes(cooperative_.accept, source); }

std::optional<absl::string_view> Dispatcher::DefaultAid(PortKey key) const {
  const auto it = ports_.find(key);
  if (it == ports_.end() || !it->second.default_aid) return std::nullopt;
  return aids_[*it->second.default_aid];
}

}  // namespace dpm::vpm
