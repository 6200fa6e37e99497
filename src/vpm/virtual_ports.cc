// Virtual streams, hidden ports and the bind queue (virtual_ports.h).
#include "vpm/virtual_ports.h"

#include <algorithm>
#include <utility>

namespace dpm::vpm {
namespace {
uint32_t HiddenKey(Protocol protocol, uint16_t port) { return (static_cast<uint32_t>(protocol) << 16) | port; }
}  // namespace

VirtualPortTable::VirtualPortTable(const Config& config) : config_(config) {}

std::optional<uint16_t> VirtualPortTable::AllocateHidden(Protocol protocol) {
  for (uint32_t p = config_.hidden_min; p <= config_.hidden_max; ++p) {
    if (!by_hidden_.contains(HiddenKey(protocol, static_cast<uint16_t>(p)))) return static_cast<uint16_t>(p);
  }
  return std::nullopt;
}

VirtualStream& VirtualPortTable::Create(PortKey key, absl::string_view aid, uint16_t hidden) {
  VirtualStream& s = streams_[StreamKey{key, std::string(aid)}];
  s = VirtualStream{key, std::string(aid), hidden, 1};
  by_hidden_[HiddenKey(key.protocol, hidden)] = &s;
  ++streams_per_port_[key];
  ++generation_;
  return s;
}

VirtualPortTable::BindResult VirtualPortTable::Bind(uint64_t now_ms, PortKey key, absl::string_view aid,
                                                     uint64_t waiter) {
  if (auto it = streams_.find(StreamKey{key, std::string(aid)}); it != streams_.end()) {
    ++it->second.members;
    return {BindStatus::kJoined, it->second.hidden_port};
  }
  // A bind behind queued ones waits its turn even if its AID's stream is about to exist.
  const bool queue_ahead = std::any_of(queue_.begin(), queue_.end(),
                                       [&](const Waiter& w) { return w.key.protocol == key.protocol; });
  if (!queue_ahead) {
    if (std::optional<uint16_t> hidden = AllocateHidden(key.protocol)) {
      return {BindStatus::kNew, Create(key, aid, *hidden).hidden_port};
    }
  }
  if (queue_.size() >= config_.max_waiters) return {BindStatus::kQueueFull};
  queue_.push_back(Waiter{waiter, key, std::string(aid), now_ms + config_.queue_timeout_ms});
  ++queued_total_;
  ++queue_by_aid_[aid].queued;
  return {BindStatus::kQueued};
}

bool VirtualPortTable::Release(PortKey key, absl::string_view aid) {
  auto it = streams_.find(StreamKey{key, std::string(aid)});
  if (it == streams_.end()) return false;
  if (--it->second.members > 0) return true;
  by_hidden_.erase(HiddenKey(key.protocol, it->second.hidden_port));
  if (--streams_per_port_[key] == 0) streams_per_port_.erase(key);
  streams_.erase(it);
  GrantWaiters(key.protocol);
  return true;
}

// FIFO per protocol: waiters that need a hidden port take the free ones in queue order; one
// that finds none keeps its place, and so does every later one that needs a port, but a later
// waiter whose AID's stream now exists joins it (joining takes no port from anyone).
void VirtualPortTable::GrantWaiters(Protocol protocol) {
  bool ports_left = true;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->key.protocol != protocol) {
      ++it;
      continue;
    }
    if (auto s = streams_.find(StreamKey{it->key, it->aid}); s != streams_.end()) {
      ++s->second.members;
      granted_.push_back(Grant{it->id, it->key, it->aid, s->second.hidden_port, true});
      it = queue_.erase(it);
      continue;
    }
    std::optional<uint16_t> hidden = ports_left ? AllocateHidden(protocol) : std::nullopt;
    if (!hidden) {
      ports_left = false;
      ++it;
      continue;
    }
    Create(it->key, it->aid, *hidden);
    granted_.push_back(Grant{it->id, it->key, it->aid, *hidden, false});
    it = queue_.erase(it);
  }
}

bool VirtualPortTable::Cancel(uint64_t waiter) {
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Waiter& w) { return w.id == waiter; });
  if (it == queue_.end()) return false;
  const Protocol protocol = it->key.protocol;
  queue_.erase(it);
  GrantWaiters(protocol);  // the next in line may join a stream that exists
  return true;
}

std::vector<VirtualPortTable::Grant> VirtualPortTable::TakeGranted() { return std::exchange(granted_, {}); }

std::vector<uint64_t> VirtualPortTable::TakeExpired(uint64_t now_ms) {
  std::vector<uint64_t> out;
  std::vector<Protocol> touched;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->deadline_ms <= now_ms) {
      out.push_back(it->id);
      touched.push_back(it->key.protocol);
      ++queue_by_aid_[it->aid].timeouts;
      it = queue_.erase(it);
      ++timeouts_total_;
    } else {
      ++it;
    }
  }
  for (Protocol p : {Protocol::kTcp, Protocol::kUdp}) {
    if (std::find(touched.begin(), touched.end(), p) != touched.end()) GrantWaiters(p);
  }
  return out;
}

std::optional<uint64_t> VirtualPortTable::NextDeadline() const {
  std::optional<uint64_t> best;
  for (const Waiter& w : queue_) {
    if (!best || w.deadline_ms < *best) best = w.deadline_ms;
  }
  return best;
}

const VirtualStream* VirtualPortTable::Find(PortKey key, absl::string_view aid) const {
  auto it = streams_.find(StreamKey{key, std::string(aid)});
  return it == streams_.end() ? nullptr : &it->second;
}

const VirtualStream* VirtualPortTable::FindByHidden(Protocol protocol, uint16_t hidden) const {
  auto it = by_hidden_.find(HiddenKey(protocol, hidden));
  return it == by_hidden_.end() ? nullptr : it->second;
}

bool VirtualPortTable::InUse(PortKey key) const { return streams_per_port_.contains(key); }

std::vector<const VirtualStream*> VirtualPortTable::List() const {
  std::vector<const VirtualStream*> out;
  out.reserve(streams_.size());
  for (const auto& [k, s] : streams_) out.push_back(&s);
  return out;
}

size_t VirtualPortTable::hidden_in_use(Protocol protocol) const {
  return static_cast<size_t>(std::count_if(by_hidden_.begin(), by_hidden_.end(), [&](const auto& e) {
    return (e.first >> 16) == static_cast<uint32_t>(protocol);
  }));
}

}  // namespace dpm::vpm
