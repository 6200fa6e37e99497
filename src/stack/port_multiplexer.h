// Virtual port multiplexing in a dpm instance (docs/vpm.md): the shell around the sans-I/O
// core of src/vpm/. It reads the configurator file (and reads it again on Reload, SIGHUP),
// puts the packet path on the stack's hook chain both ways, sends the refusals it asks for,
// sweeps idle flows on a timer, and serves the sockets: a socket that binds a multiplexed
// virtual port gets the hidden port of its AID's virtual stream, and its names show the
// virtual port. In cooperative mode (vpm/negotiation.h) it answers the peers' negotiations on
// a UDP port in lwIP (server side) and negotiates the hidden port before a socket's connect
// to a cooperative peer (client side).
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
#include "vpm/negotiation.h"
#include "vpm/virtual_ports.h"

struct udp_pcb;
struct pbuf;

namespace dpm::stack {

class Socket;
class Stack;

class PortMultiplexer : public InboundHook, public OutboundHook {
 public:
  /// Reads and checks the configurator file at `path` (vpm/configurator.h; user names through
  /// getpwnam_r), or takes `text` when given (dpm_vpm_configure: `path` is then ""), and joins
  /// `stack`'s hook chains. Errors: NotFound / PermissionDenied (the file), InvalidArgument (its
  /// content, naming the place), FailedPrecondition (cooperative.port taken).
  static absl::StatusOr<std::unique_ptr<PortMultiplexer>> Create(Stack& stack, const std::string& path,
                                                                 const std::string* text = nullptr);
  ~PortMultiplexer() override;

  /// Reads the file again: new flows follow the new rules and defaults, flows that exist keep
  /// their AID, sockets keep their streams. The hidden range and queue timeout stay as they
  /// were at start. On error the old rules stay. FailedPrecondition when the rules came from
  /// Configure and there is no file, or (the new rules in force) when cooperative mode's
  /// answering port could not be opened.
  absl::Status Reload();
  /// The same from configurator text (dpm_vpm_configure). Error: InvalidArgument naming the
  /// place, as for the file.
  absl::Status Configure(const std::string& text);

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

  /// Cooperative mode, client side: the peer entry a connect to `remote` (host order) on
  /// `key` negotiates under (valid until the next Reload), or null: it connects as usual.
  const vpm::CooperativePeer* PeerFor(vpm::PortKey key, uint32_t remote) const;
  /// The AID such a connect negotiates with: `requested` (DPM_AID), else the socket rule for
  /// the program and user, else the peer entry's default. Error: EACCES when none applies.
  int ChooseConnectAid(vpm::PortKey key, const vpm::CooperativePeer& peer, const std::string& requested, pid_t pid,
                       uid_t uid, std::string* aid) const;
  /// Called once when a negotiation ends: 0 and the hidden port (the client flow is recorded),
  /// or the errno for connect(): ETIMEDOUT (no answer in the file's timeout_ms), ECONNREFUSED
  /// (VPM_NO_LISTENER), EACCES (NOT_AUTHORIZED), EAGAIN (NO_RESOURCES, or our flow table is full),
  /// EPROTO (any other answer), EADDRINUSE (a flow holds the tuple already).
  using NegotiationDone = std::function<void(int error, uint16_t hidden)>;
  /// Asks the VPM at `remote` for the hidden port of (`key`, `aid`) for a connection (TCP) or
  /// association (UDP) from `local`:`local_port` (host order). `done` is called later, not if
  /// CancelNegotiation(socket_id) comes first.
  void Negotiate(uint64_t socket_id, vpm::PortKey key, const std::string& aid, uint32_t local, uint16_t local_port,
                 uint32_t remote, NegotiationDone done);
  /// Withdraws socket `socket_id`'s negotiation (the socket closed while it ran).
  void CancelNegotiation(uint64_t socket_id);

  /// `dpmd status`: virtual streams, rules, flows and counters.
  nlohmann::json StatusJson() const;
  std::string StatusText() const;

  HookAction OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) override;
  HookAction OnOutbound(const OutboundPacket& packet) override;

 private:
  PortMultiplexer(Stack& stack, std::string path, std::unique_ptr<vpm::Dispatcher> dispatcher);
  // Cooperative mode: the server side's UDP port (when "accept" names anyone), the client's
  // socket for its requests. Error: the port is taken.
  absl::Status OpenNegotiation();
  // Swaps in new rules (Reload, Configure), and opens what cooperative mode needs now.
  absl::Status Replace(std::unique_ptr<vpm::Dispatcher> d);
  void OnRequest(pbuf* p, uint32_t source, uint16_t source_port, uint32_t destination);
  void OnAnswer(pbuf* p, uint32_t source);
  void SendUdp(udp_pcb* pcb, absl::Span<const uint8_t> bytes, uint32_t source, uint32_t destination, uint16_t port);
  // Sends the retransmissions due, ends the negotiations that timed out, re-arms the timer.
  void PollNegotiations();
  void EndNegotiation(const vpm::NegotiationClient::Outcome& outcome);
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
  // Cooperative mode (the port and the client's timeout stay as they were at start).
  const uint64_t started_ms_;
  uint16_t negotiation_port_ = 0;
  udp_pcb* server_pcb_ = nullptr;
  udp_pcb* client_pcb_ = nullptr;
  vpm::NegotiationServerCounters server_counters_;
  std::unique_ptr<vpm::NegotiationClient> client_;
  struct Negotiation {
    NegotiationDone done;
    vpm::PortKey key;
    uint16_t local_port;
    std::string aid;
    uint32_t local, remote;
  };
  absl::flat_hash_map<uint64_t, Negotiation> negotiations_;  // by socket id
  std::unique_ptr<Timer> negotiation_timer_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_PORT_MULTIPLEXER_H_
