#include "tunnel/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tunnel/control.h"
#include "tunnel/names.h"
#include "wire/strict_json.h"

namespace dpm::tunnel {
namespace {

using nlohmann::json;

constexpr size_t kMinTokenSize = 16;

absl::Status ReadToken(const json& object, absl::string_view where, TokenDigest* out) {
  const auto it = object.find("token");
  if (it == object.end()) return wire::JsonError(where, "token missing");
  if (!it->is_string()) return wire::JsonError(where, "token is not a string");
  const auto& token = it->get_ref<const std::string&>();
  if (token.size() < kMinTokenSize) return wire::JsonError(where, absl::StrCat("token shorter than ", kMinTokenSize, " bytes"));
  if (token.size() > kMaxTokenSize) return wire::JsonError(where, absl::StrCat("token longer than ", kMaxTokenSize, " bytes"));
  *out = DigestToken(token);
  return absl::OkStatus();
}

// "<service>.<proxy>", "*.<proxy>" or "*".
bool ValidPattern(absl::string_view pattern) {
  if (pattern == "*") return true;
  const size_t dot = pattern.find('.');
  if (dot == absl::string_view::npos) return false;
  const absl::string_view service = pattern.substr(0, dot), proxy = pattern.substr(dot + 1);
  return (service == "*" || ValidLabel(service)) && ValidLabel(proxy);
}

// What proxy and redirector entries share: a valid name, an object of known keys only, the
// token and max_streams.
template <typename Entry>
absl::Status ReadEntry(const std::string& where, const std::string& name, const json& entry,
                       std::initializer_list<absl::string_view> known, Entry* out) {
  if (!ValidLabel(name)) return wire::JsonError(where, "not a valid name ([a-z0-9-], 1..63 bytes)");
  if (!entry.is_object()) return wire::JsonError(where, "not an object");
  if (absl::Status s = wire::OnlyKnownKeys(entry, where, known); !s.ok()) return s;
  out->name = name;
  if (absl::Status s = ReadToken(entry, where, &out->token); !s.ok()) return s;
  return wire::ReadPositiveInteger(entry, "max_streams", where, &out->max_streams);
}

absl::StatusOr<ProxyAccess> ParseProxy(const std::string& name, const json& entry) {
  const std::string where = absl::StrCat("proxies.", name);
  ProxyAccess proxy;
  if (absl::Status s = ReadEntry(where, name, entry, {"token", "max_services", "max_streams"}, &proxy); !s.ok()) {
    return s;
  }
  if (absl::Status s = wire::ReadPositiveInteger(entry, "max_services", where, &proxy.max_services); !s.ok()) return s;
  return proxy;
}

absl::StatusOr<RedirectorAccess> ParseRedirector(const std::string& name, const json& entry) {
  const std::string where = absl::StrCat("redirectors.", name);
  RedirectorAccess redirector;
  if (absl::Status s = ReadEntry(where, name, entry, {"token", "services", "max_streams"}, &redirector); !s.ok()) {
    return s;
  }
  const auto services = entry.find("services");
  if (services == entry.end()) return wire::JsonError(where, "services missing");
  if (!services->is_array()) return wire::JsonError(where, "services is not a list");
  for (size_t i = 0; i < services->size(); ++i) {
    const json& pattern = (*services)[i];
    const std::string at = absl::StrCat(where, ".services[", i, "]");
    if (!pattern.is_string()) return wire::JsonError(at, "not a string");
    const auto& text = pattern.get_ref<const std::string&>();
    if (!ValidPattern(text)) return wire::JsonError(at, absl::StrCat("bad pattern '", text, "'"));
    redirector.services.push_back(text);
  }
  return redirector;
}

// The entries of section `section` ("proxies", "redirectors"), an object by name; absent is empty.
template <typename Entry>
absl::Status ReadSection(const json& root, const char* section,
                         absl::StatusOr<Entry> (*parse)(const std::string&, const json&), std::vector<Entry>* out) {
  const auto it = root.find(section);
  if (it == root.end()) return absl::OkStatus();
  if (!it->is_object()) return wire::JsonError(section, "not an object");
  for (const auto& [name, entry] : it->items()) {
    absl::StatusOr<Entry> parsed = parse(name, entry);
    if (!parsed.ok()) return parsed.status();
    out->push_back(*std::move(parsed));
  }
  return absl::OkStatus();
}

template <typename Entry>
std::optional<size_t> Authenticate(const std::vector<Entry>& entries, absl::string_view name,
                                   absl::string_view token) {
  // Compared against when the name is unknown, so that an unknown name and a wrong token cost
  // the same: one digest and one constant-time comparison. No token digests to all zeros.
  static constexpr TokenDigest kDummy{};
  size_t found = entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {  // no early exit: the time is the same for every name
    if (entries[i].name == name) found = i;
  }
  const TokenDigest& expected = found < entries.size() ? entries[found].token : kDummy;
  const bool matches = TokenMatches(expected, token);
  if (!matches || found == entries.size()) return std::nullopt;
  return found;
}

}  // namespace

TokenDigest DigestToken(absl::string_view token) {
  TokenDigest digest{};
  unsigned int size = 0;
  EVP_Digest(token.data(), token.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

bool TokenMatches(const TokenDigest& digest, absl::string_view presented) {
  const TokenDigest seen = DigestToken(presented);
  return CRYPTO_memcmp(seen.data(), digest.data(), digest.size()) == 0;
}

bool RedirectorAccess::Permits(absl::string_view service, absl::string_view proxy) const {
  for (const std::string& pattern : services) {
    if (pattern == "*") return true;
    const size_t dot = pattern.find('.');
    const absl::string_view pattern_service = absl::string_view(pattern).substr(0, dot);
    const absl::string_view pattern_proxy = absl::string_view(pattern).substr(dot + 1);
    if (pattern_proxy == proxy && (pattern_service == "*" || pattern_service == service)) return true;
  }
  return false;
}

const ProxyAccess* AccessConfig::FindProxy(absl::string_view name) const {
  for (const ProxyAccess& proxy : proxies) {
    if (proxy.name == name) return &proxy;
  }
  return nullptr;
}

const RedirectorAccess* AccessConfig::FindRedirector(absl::string_view name) const {
  for (const RedirectorAccess& redirector : redirectors) {
    if (redirector.name == name) return &redirector;
  }
  return nullptr;
}

absl::StatusOr<AccessConfig> ParseAccessConfig(absl::string_view json_text) {
  absl::StatusOr<json> root = wire::ParseStrictJson(json_text);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (absl::Status s = wire::OnlyKnownKeys(*root, "access file", {"proxies", "redirectors", "max_streams_per_service"});
      !s.ok()) {
    return s;
  }
  AccessConfig config;
  if (absl::Status s = wire::ReadPositiveInteger(*root, "max_streams_per_service", "access file", &config.max_streams_per_service);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadSection(*root, "proxies", ParseProxy, &config.proxies); !s.ok()) return s;
  if (absl::Status s = ReadSection(*root, "redirectors", ParseRedirector, &config.redirectors); !s.ok()) return s;
  return config;
}

std::optional<size_t> AuthenticateProxy(const AccessConfig& config, absl::string_view name, absl::string_view token) {
  return Authenticate(config.proxies, name, token);
}

std::optional<size_t> AuthenticateRedirector(const AccessConfig& config, absl::string_view name,
                                             absl::string_view token) {
  return Authenticate(config.redirectors, name, token);
}

}  // namespace dpm::tunnel
