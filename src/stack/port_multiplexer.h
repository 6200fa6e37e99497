// Virtual port multiplexing in a dpm instance (docs/vpm.md): the shell around the sans-I/O
// core of src/vpm/. It reads the configurator file (and reads it again on Reload, SIGHUP),
// puts the packet path on the stack's hook chain both ways, sends the refusals it asks for,
// sweeps idle flows on a timer, and serves the sockets: a socket that binds a multiplexed
// virtual port gets the hidden port of its AID's virtual stream, and its names show the
// virtual port.
//
// Core thread only.
#ifndef DPM_STACK_PORT_MULTIPLEXER_H_
#define DPM_STACK_PORT_MULTIPLEXER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "stack/clock.h"
#include "stack/packet_hooks.h"
#include "vpm/configurator.h"
#include "vpm/multiplexer.h"
#include "vpm/virtual_ports.h"

namespace dpm::stack {

class Socket;
class Stack;

class PortMultiplexer : public InboundHook, public OutboundHook {
 public:
  /// Reads and checks the configurator file at `path` (vpm/configurator.h; user names through
  /// getpwnam_r) and joins `stack`'s hook chains. Errors: NotFound / PermissionDenied (the
  /// file), InvalidArgument (its content, naming the place).
  static absl::StatusOr<std::unique_ptr<PortMultiplexer>> Create(Stack& stack, const std::string& path);
  ~PortMultiplexer() override;

  /// Reads the file again: new flows follow the new rules and defaults, flows that exist keep
  /// their AID, sockets keep their streams. The hidden range and queue timeout stay as they
  /// were at start. On error the old rules stay.
  absl::Status Reload();

  /// True when `key` is a multiplexed virtual port.
  bool Multiplexed(vpm::PortKey key) const { return dispatcher_->Multiplexed(key); }
  /// The AID of a socket that binds `key`: `requested` (DPM_AID) when set, else the socket
  /// rule for the program `peer` (its executable, read from /proc) and user, else the port's
  /// default. Error: EACCES when none applies (a port whose default refuses, and no rule).
  int ChooseAid(vpm::PortKey key, const std::string& requested, pid_t pid, uid_t uid, std::string* aid) const;
  /// Called when a queued bind ends: 0 and the hidden port, or EADDRINUSE (no hidden port
  /// became free within the queue timeout).
  using BindDone = std::function<void(int error, uint16_t hidden)>;
  /// Joins or makes `aid`'s virtual stream on `key`; *hidden gets the port lwIP binds. When no
  /// hidden port is free the bind waits in the queue (FIFO, up to the file's queue_timeout_ms):
  /// returns kQueued, and `done` is called later, once (not if Cancel comes first). Errors:
  /// EADDRINUSE when the queue is full as well.
  static constexpr int kQueued = -1;
  int Bind(vpm::PortKey key, const std::string& aid, uint64_t socket_id, uint16_t* hidden, BindDone done = nullptr);
  /// Withdraws socket `socket_id`'s queued bind (the socket closed while it waited).
  void Cancel(uint64_t socket_id);
  /// One more member of an existing stream (an accepted connection keeps its hidden port).
  void Hold(vpm::PortKey key, const std::string& aid);
  /// A member is gone (the socket closed).
  void Release(vpm::PortKey key, const std::string& aid);
  /// The listening TCP sockets of `aid`'s stream on `key`: the first holds lwIP's listener on
  /// the hidden port, and new connections are shared among them all (a reuseport group; the
  /// virtual port multiplexing patent: the same AID "will receive the same virtualized
  /// stream"). Entries of closed sockets are left for the caller to prune.
  std::vector<std::weak_ptr<Socket>>& Listeners(vpm::PortKey key, const std::string& aid) {
    return listeners_[absl::StrCat(vpm::FormatPortKey(key), " ", aid)];
  }

  /// `dpmd status`: virtual streams, rules, flows and counters.
  nlohmann::json StatusJson() const;
  std::string StatusText() const;

  HookAction OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) override;
  HookAction OnOutbound(const OutboundPacket& packet) override;

 private:
  PortMultiplexer(Stack& stack, std::string path, std::unique_ptr<vpm::Dispatcher> dispatcher);
  void ArmSweep();
  // Answers the queued binds the table granted or let expire, and re-arms the queue's timer.
  void ServeQueue();

  Stack& stack_;
  const std::string path_;
  std::unique_ptr<vpm::Dispatcher> dispatcher_;
  vpm::VirtualPortTable ports_;
  vpm::Multiplexer mux_;
  HookHandle inbound_, outbound_;
  std::unique_ptr<Timer> sweep_timer_;
  uint64_t reloads_ = 0;
  absl::flat_hash_map<std::string, std::vector<std::weak_ptr<Socket>>> listeners_;  // "tcp/80 AID"
  absl::flat_hash_map<uint64_t, BindDone> waiting_;  // queued binds by socket id
  std::unique_ptr<Timer> queue_timer_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_PORT_MULTIPLEXER_H_
