// The table of virtual ports (docs/vpm.md "Virtual streams"): (protocol, virtual port, AID) →
// hidden port, with the sockets that share each one, and the queue of binds that wait for a
// hidden port (the virtual port multiplexing patent: "the same AID … will receive the same
// virtualized stream … a different AID … a new virtualized stream is created"; "if a port is
// not available … the request for the port is queued … if the port does not become available
// within a predefined period, the attempt fails and an error signal is returned").
//
// lwIP listens on the hidden port; the wire and the applications see only the virtual port.
// Hidden ports come from one range per protocol, the lowest free port first (predictable
// ports are no risk here: they never appear on the wire outside cooperative mode, where the
// peer is told them). Sans-I/O: time comes in as `now_ms`, waiters are the caller's opaque ids.
#ifndef DPM_VPM_VIRTUAL_PORTS_H_
#define DPM_VPM_VIRTUAL_PORTS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "vpm/configurator.h"

namespace dpm::vpm {

/// One virtual stream: the sockets of one AID on one virtual port.
struct VirtualStream {
  PortKey key;            // protocol and virtual port
  std::string aid;
  uint16_t hidden_port;   // where lwIP has it
  size_t members = 0;     // sockets bound to it
};

class VirtualPortTable {
 public:
  struct Config {
    uint16_t hidden_min = 40000, hidden_max = 40999;  // inclusive
    uint64_t queue_timeout_ms = 5000;                 // a queued bind fails after this long
    size_t max_waiters = 1024;                        // queued binds at most, all ports
  };
  explicit VirtualPortTable(const Config& config);

  /// What Bind did.
  enum class BindStatus : uint8_t {
    kNew,        // a new virtual stream on a fresh hidden port
    kJoined,     // the AID's stream existed: one more member, same hidden port
    kQueued,     // no hidden port free: `waiter` waits (TakeGranted / TakeExpired tell)
    kQueueFull,  // no hidden port free and max_waiters wait already
  };
  struct BindResult {
    BindStatus status;
    uint16_t hidden_port = 0;  // kNew, kJoined
  };
  /// A socket of `aid` (ValidAid) binds virtual port `key`. `waiter`: the caller's id for the
  /// socket, used only when it is queued. A waiter's deadline is now_ms + queue_timeout_ms.
  BindResult Bind(uint64_t now_ms, PortKey key, absl::string_view aid, uint64_t waiter);

  /// A member of `aid`'s stream on `key` is gone (its socket closed). The last one frees the
  /// hidden port, which goes to the first waiter of the protocol that still needs one
  /// (TakeGranted). False when there is no such stream.
  bool Release(PortKey key, absl::string_view aid);

  /// Withdraws a queued bind (its socket closed while it waited). False if not queued.
  bool Cancel(uint64_t waiter);

  /// A queued bind that got its stream, in queue order.
  struct Grant {
    uint64_t waiter;
    PortKey key;
    std::string aid;
    uint16_t hidden_port;
    bool joined;  // it joined a stream an earlier waiter's grant made
  };
  /// Grants made since the last call (by Release).
  std::vector<Grant> TakeGranted();
  /// Queued binds whose deadline is at or before `now_ms`, removed from the queue, in queue
  /// order: their bind fails (docs/vpm.md: ETIMEDOUT).
  std::vector<uint64_t> TakeExpired(uint64_t now_ms);
  /// The earliest waiter's deadline.
  std::optional<uint64_t> NextDeadline() const;

  /// The stream of `aid` on `key`, or null.
  const VirtualStream* Find(PortKey key, absl::string_view aid) const;
  /// The stream on hidden port `hidden` of `protocol`, or null.
  const VirtualStream* FindByHidden(Protocol protocol, uint16_t hidden) const;
  /// True while some stream uses virtual port `key`.
  bool InUse(PortKey key) const;
  /// Every stream, in no order (status).
  std::vector<const VirtualStream*> List() const;

  size_t waiting() const { return queue_.size(); }
  /// Binds ever queued and ever timed out (counters).
  uint64_t queued_total() const { return queued_total_; }
  uint64_t timeouts_total() const { return timeouts_total_; }
  /// The same per AID.
  struct QueueCounters {
    uint64_t queued = 0, timeouts = 0;
  };
  const absl::flat_hash_map<std::string, QueueCounters>& queue_by_aid() const { return queue_by_aid_; }
  /// Hidden ports in use for `protocol`.
  size_t hidden_in_use(Protocol protocol) const;
  /// Grows by one each time a hidden port is given to a new stream: while it stays the same,
  /// no hidden port changed hands (the multiplexer's flows skip their re-check).
  uint64_t generation() const { return generation_; }
  const Config& config() const { return config_; }

 private:
  struct StreamKey {
    PortKey key;
    std::string aid;
    friend bool operator==(const StreamKey&, const StreamKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const StreamKey& k) {
      return H::combine(std::move(h), k.key, k.aid);
    }
  };
  struct Waiter {
    uint64_t id;
    PortKey key;
    std::string aid;
    uint64_t deadline_ms;
  };
  std::optional<uint16_t> AllocateHidden(Protocol protocol);
  VirtualStream& Create(PortKey key, absl::string_view aid, uint16_t hidden);
  void GrantWaiters(Protocol protocol);

  Config config_;
  absl::node_hash_map<StreamKey, VirtualStream> streams_;  // node: by_hidden_ points into it
  absl::flat_hash_map<uint32_t, VirtualStream*> by_hidden_;  // (protocol << 16) | hidden port
  absl::flat_hash_map<PortKey, size_t> streams_per_port_;
  std::deque<Waiter> queue_;
  std::vector<Grant> granted_;
  uint64_t queued_total_ = 0, timeouts_total_ = 0;
  absl::flat_hash_map<std::string, QueueCounters> queue_by_aid_;
  uint64_t generation_ = 0;
};

}  // namespace dpm::vpm

#endif  // DPM_VPM_VIRTUAL_PORTS_H_
