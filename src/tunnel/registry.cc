#include "tunnel/registry.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "tunnel/names.h"

namespace dpm::tunnel {
namespace {

void CountErrorIn(ServiceCounters& counters, TunnelError error) {
  const auto index = static_cast<size_t>(error);
  if (error != TunnelError::kNone && index < std::size(counters.errors)) ++counters.errors[index];
}

void Decrement(size_t& count) {
  if (count > 0) --count;
}

}  // namespace

ServiceRegistry::ServiceRegistry(const AccessConfig& config, std::string suffix,
                                 std::function<void(uint8_t* out, size_t size)> random)
    : config_(config),
      suffix_(CanonicalName(suffix)),
      random_(std::move(random)),
      proxy_streams_(config.proxies.size(), 0),
      redirector_streams_(config.redirectors.size(), 0) {}

std::vector<ServiceEntry> ServiceRegistry::Publish(ConnId conn, size_t proxy, const std::vector<std::string>& services,
                                                   ConnId* replaced) {
  if (replaced != nullptr) *replaced = 0;
  if (const auto it = conn_of_proxy_.find(proxy); it != conn_of_proxy_.end()) {
    const ConnId previous = it->second;
    DropConnection(previous);  // its names are this proxy's own: the new connection takes them over
    if (replaced != nullptr && previous != conn) *replaced = previous;
  }
  proxy_of_conn_[conn] = proxy;
  conn_of_proxy_[proxy] = conn;

  const ProxyAccess& access = config_.proxies[proxy];
  std::vector<ServiceEntry> results;
  results.reserve(services.size());
  absl::flat_hash_set<absl::string_view> seen;
  size_t published = 0;
  for (const std::string& service : services) {
    ServiceEntry& entry = results.emplace_back();
    entry.service = service;
    if (!ValidLabel(service)) {
      entry.status = PublishStatus::kBadName;
    } else if (!seen.insert(service).second) {
      entry.status = PublishStatus::kDuplicate;
    } else if (published >= access.max_services) {
      entry.status = PublishStatus::kLimit;
    } else {
      ++published;
      entry.status = PublishStatus::kPublished;
      entry.pseudo_name = PseudoName(service, access.name, suffix_);
      random_(entry.key.data(), entry.key.size());  // a new key at each publish (Fig. 4 step 405)
      by_name_[entry.pseudo_name] = Published{service, access.name, entry.pseudo_name, entry.key, conn};
      counters_.try_emplace(entry.pseudo_name);
    }
  }
  return results;
}

void ServiceRegistry::DropConnection(ConnId conn) {
  const auto owner = proxy_of_conn_.find(conn);
  if (owner == proxy_of_conn_.end()) return;  // replaced already, or never a proxy
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    if (it->second.proxy_conn == conn) {
      by_name_.erase(it++);
    } else {
      ++it;
    }
  }
  if (const auto current = conn_of_proxy_.find(owner->second);
      current != conn_of_proxy_.end() && current->second == conn) {
    conn_of_proxy_.erase(current);
  }
  proxy_of_conn_.erase(owner);
}

std::vector<ServiceEntry> ServiceRegistry::Visible(size_t redirector) const {
  std::vector<ServiceEntry> visible;
  const RedirectorAccess& access = config_.redirectors[redirector];
  for (const Published& published : Services()) {
    if (!access.Permits(published.service, published.proxy)) continue;
    ServiceEntry& entry = visible.emplace_back();
    entry.service = published.service;
    entry.pseudo_name = published.pseudo_name;  // key left zero: keys stay with the server and the proxy
  }
  return visible;
}

std::variant<Route, TunnelError> ServiceRegistry::OpenStream(size_t redirector, absl::string_view pseudo_name) {
  // Every way of naming what this redirector may not use gives kNoService, the same answer as
  // a name nobody published: the answer tells nothing about other proxies' services.
  const std::optional<NameParts> parts = ParsePseudoName(pseudo_name, suffix_);
  if (!parts) return TunnelError::kNoService;
  const RedirectorAccess& access = config_.redirectors[redirector];
  if (!access.Permits(parts->service, parts->proxy)) return TunnelError::kNoService;
  const ProxyAccess* proxy = config_.FindProxy(parts->proxy);
  if (proxy == nullptr) return TunnelError::kNoService;
  const size_t proxy_index = static_cast<size_t>(proxy - config_.proxies.data());
  if (!conn_of_proxy_.contains(proxy_index)) return TunnelError::kProxyDown;
  const auto published = by_name_.find(CanonicalName(pseudo_name));
  if (published == by_name_.end()) return TunnelError::kNoService;

  ServiceCounters& counters = counters_[published->first];
  if (proxy_streams_[proxy_index] >= proxy->max_streams || redirector_streams_[redirector] >= access.max_streams ||
      counters.streams_open >= config_.max_streams_per_service) {
    return TunnelError::kLimit;
  }
  ++proxy_streams_[proxy_index];
  ++redirector_streams_[redirector];
  ++counters.streams_open;
  ++counters.streams_opened;
  return Route{published->second.proxy_conn, published->second.key, published->second.pseudo_name};
}

void ServiceRegistry::CloseStream(size_t redirector, absl::string_view pseudo_name, ConnId proxy_conn,
                                  TunnelError error) {
  // The proxy is found by name, not by `proxy_conn`: the stream counts against the proxy even
  // when the connection it went through has been dropped or replaced since.
  const std::string name = CanonicalName(pseudo_name);
  if (const std::optional<NameParts> parts = ParsePseudoName(name, suffix_)) {
    if (const ProxyAccess* proxy = config_.FindProxy(parts->proxy)) {
      Decrement(proxy_streams_[static_cast<size_t>(proxy - config_.proxies.data())]);
    }
  }
  if (redirector < redirector_streams_.size()) Decrement(redirector_streams_[redirector]);
  if (const auto it = counters_.find(name); it != counters_.end()) {
    if (it->second.streams_open > 0) --it->second.streams_open;
    CountErrorIn(it->second, error);
  }
}

void ServiceRegistry::CountBytes(absl::string_view pseudo_name, uint64_t to_service, uint64_t from_service) {
  const auto it = counters_.find(CanonicalName(pseudo_name));
  if (it == counters_.end()) return;
  it->second.bytes_to_service += to_service;
  it->second.bytes_from_service += from_service;
}

void ServiceRegistry::CountError(absl::string_view pseudo_name, TunnelError error) {
  // Only names that were published have counters: a probe of made-up names grows nothing.
  const auto it = counters_.find(CanonicalName(pseudo_name));
  if (it != counters_.end()) CountErrorIn(it->second, error);
}

const std::vector<Published> ServiceRegistry::Services() const {
  std::vector<Published> services;
  services.reserve(by_name_.size());
  for (const auto& [name, published] : by_name_) services.push_back(published);
  std::sort(services.begin(), services.end(),
            [](const Published& a, const Published& b) { return a.pseudo_name < b.pseudo_name; });
  return services;
}

const ServiceCounters* ServiceRegistry::Counters(absl::string_view pseudo_name) const {
  const auto it = counters_.find(CanonicalName(pseudo_name));
  return it == counters_.end() ? nullptr : &it->second;
}

size_t ServiceRegistry::ProxyStreams(size_t proxy) const {
  return proxy < proxy_streams_.size() ? proxy_streams_[proxy] : 0;
}

size_t ServiceRegistry::RedirectorStreams(size_t redirector) const {
  return redirector < redirector_streams_.size() ? redirector_streams_[redirector] : 0;
}

bool ServiceRegistry::ProxyConnected(size_t proxy) const { return conn_of_proxy_.contains(proxy); }

}  // namespace dpm::tunnel
