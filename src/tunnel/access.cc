#include "tunnel/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tunnel/control.h"
#include "tunnel/names.h"

namespace dpm::tunnel {
namespace {

using nlohmann::json;

constexpr size_t kMinTokenSize = 16;

absl::Status Bad(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Every key of `object` must be one of `known`: a typo in a security file is an error, not a
// setting silently left at its default.
absl::Status OnlyKnownKeys(const json& object, absl::string_view where,
                           std::initializer_list<absl::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (absl::string_view k : known) found = found || k == key;
    if (!found) return Bad(where, absl::StrCat("unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

// A positive integer field, left at `*out` when absent.
absl::Status ReadLimit(const json& object, const char* key, absl::string_view where, size_t* out) {
  const auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) {
    return Bad(where, absl::StrCat(key, " is not a positive integer"));
  }
  *out = static_cast<size_t>(it->get<uint64_t>());
  return absl::OkStatus();
}

absl::Status ReadToken(const json& object, absl::string_view where, TokenDigest* out) {
  const auto it = object.find("token");
  if (it == object.end()) return Bad(where, "token missing");
  if (!it->is_string()) return Bad(where, "token is not a string");
  const auto& token = it->get_ref<const std::string&>();
  if (token.size() < kMinTokenSize) return Bad(where, absl::StrCat("token shorter than ", kMinTokenSize, " bytes"));
  if (token.size() > kMaxTokenSize) return Bad(where, absl::StrCat("token longer than ", kMaxTokenSize, " bytes"));
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
  if (!ValidLabel(name)) return Bad(where, "not a valid name ([a-z0-9-], 1..63 bytes)");
  if (!entry.is_object()) return Bad(where, "not an object");
  if (absl::Status s = OnlyKnownKeys(entry, where, known); !s.ok()) return s;
  out->name = name;
  if (absl::Status s = ReadToken(entry, where, &out->token); !s.ok()) return s;
  return ReadLimit(entry, "max_streams", where, &out->max_streams);
}

absl::StatusOr<ProxyAccess> ParseProxy(const std::string& name, const json& entry) {
  const std::string where = absl::StrCat("proxies.", name);
  ProxyAccess proxy;
  if (absl::Status s = ReadEntry(where, name, entry, {"token", "max_services", "max_streams"}, &proxy); !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadLimit(entry, "max_services", where, &proxy.max_services); !s.ok()) return s;
  return proxy;
}

absl::StatusOr<RedirectorAccess> ParseRedirector(const std::string& name, const json& entry) {
  const std::string where = absl::StrCat("redirectors.", name);
  RedirectorAccess redirector;
  if (absl::Status s = ReadEntry(where, name, entry, {"token", "services", "max_streams"}, &redirector); !s.ok()) {
    return s;
  }
  const auto services = entry.find("services");
  if (services == entry.end()) return Bad(where, "services missing");
  if (!services->is_array()) return Bad(where, "services is not a list");
  for (size_t i = 0; i < services->size(); ++i) {
    const json& pattern = (*services)[i];
    const std::string at = absl::StrCat(where, ".services[", i, "]");
    if (!pattern.is_string()) return Bad(at, "not a string");
    const auto& text = pattern.get_ref<const std::string&>();
    if (!ValidPattern(text)) return Bad(at, absl::StrCat("bad pattern '", text, "'"));
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
  if (!it->is_object()) return Bad(section, "not an object");
  for (const auto& [name, entry] : it->items()) {
    absl::StatusOr<Entry> parsed = parse(name, entry);
    if (!parsed.ok()) return parsed.status();
    out->push_back(*std::move(parsed));
  }
  return absl::OkStatus();
}

// Reads nothing but the reason a text is not JSON (nlohmann::json's own message: "parse error at
// line 3, column 5: syntax error while parsing object - unexpected '}'; expected ...").
class SyntaxError : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override {
    // Without the "[json.exception.parse_error.101] " prefix, and without the "; last read: '…'"
    // part, which may quote a token (an unterminated string, say): tokens are never shown.
    absl::string_view text = error.what();
    if (const size_t end = text.find("] "); absl::StartsWith(text, "[json.exception.") && end != text.npos) {
      text.remove_prefix(end + 2);
    }
    message = std::string(text.substr(0, text.find("; last read:")));
    return false;
  }
  std::string message;
};

// Parses `text`, failing on a key that appears twice in one object (which nlohmann::json
// would otherwise resolve silently to the last one).
absl::StatusOr<json> ParseJson(absl::string_view text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json root = json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    SyntaxError error;
    json::sax_parse(text.begin(), text.end(), &error, nlohmann::detail::input_format_t::json, /*strict=*/true);
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", error.message));
  }
  if (!duplicate.empty()) return absl::InvalidArgumentError(absl::StrCat("key '", duplicate, "' given twice"));
  return root;
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
  absl::StatusOr<json> root = ParseJson(json_text);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (absl::Status s = OnlyKnownKeys(*root, "access file", {"proxies", "redirectors", "max_streams_per_service"});
      !s.ok()) {
    return s;
  }
  AccessConfig config;
  if (absl::Status s = ReadLimit(*root, "max_streams_per_service", "access file", &config.max_streams_per_service);
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
