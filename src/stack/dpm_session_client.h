// The client side of the DPM driver for one dpm socket (the DPM patent, claims 1-5 and 11;
// ¶33 for datagram sessions): which remote peers the socket has a grant for, the connect()
// that waits for its grant, and the datagrams held while a peer's setup exchange runs.
//
// Sans-I/O: the socket tells it what the program did (Connect, Send) and what the DPM driver
// said (OnEvent); it answers with DpmClientActions — where to aim the pcb, which datagrams to
// send to which gateway endpoint, how the waiting connect() ends, what to count — and touches
// no lwIP pcb, descriptor or clock. Setups are begun and released through DpmSetupCalls (the
// driver host in dpmd, a driver::Driver in tests). It keeps no deadlines of its own:
// retransmission, renewal at half the lifetime and the setup timeout are the driver's
// (dpm/dpm_driver.h), which reports them as events.
//
// TCP sockets use it for their one peer: the connect waits for the grant, then the handshake
// goes to the gateway endpoint and the connect is answered when it ends (by the TCP socket).
// UDP sockets may hold grants for up to kMaxPeers peers; connect() is answered at the grant.
#ifndef DPM_STACK_DPM_SESSION_CLIENT_H_
#define DPM_STACK_DPM_SESSION_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "api/protocol.h"
#include "dpm/dpm_driver.h"
#include "nat/nat_engine.h"

namespace dpm::stack {

/// One setup exchange to begin (driver::Driver::Begin's arguments). Host byte order.
struct DpmSetupRequest {
  nat::Protocol protocol = nat::Protocol::kUdp;
  uint16_t internal_port = 0;
  api::Endpoint remote;
  bool port_fixed = false;       // not replaceable (claims 1-4)
  uint32_t internal_address = 0;  // the socket's own address (docs/design.md §7); 0: the host's
};

/// How the client reaches the DPM driver. `begin` returns the session's id (never 0);
/// `release` ends a session (lifetime 0). Events for the ids come back through OnEvent.
struct DpmSetupCalls {
  std::function<uint64_t(const DpmSetupRequest&)> begin;
  std::function<void(uint64_t id)> release;
};

/// Where the socket's sessions start from: its bound local port (host order; the caller
/// binds the pcb before a new peer is begun), DPM_PORT_FIXED, and its own address or 0.
struct DpmSessionSource {
  uint16_t port = 0;
  bool port_fixed = false;
  uint32_t own_address = 0;
};

/// A datagram to send to a peer's gateway endpoint (claim 5: aimed at the gateway, which
/// sends it on to the true peer).
struct DpmDatagram {
  api::Endpoint to;
  std::vector<uint8_t> payload;
};

/// What the socket must do after a call. Apply in this order: connect, send, connect_result.
struct DpmClientActions {
  /// Aim (connect) the pcb at this gateway endpoint now.
  std::optional<api::Endpoint> connect;
  /// Datagrams to send now, in the order the program sent them.
  std::vector<DpmDatagram> send;
  /// The waiting connect()'s answer: 0 (UDP, granted) or an errno (the setup failed).
  std::optional<int> connect_result;
  /// A failed setup no connect() waits for: the socket's SO_ERROR. 0: none.
  int error = 0;
  /// Datagrams given up (SocketServiceCounters::udp_dpm_dropped).
  uint64_t dropped = 0;
};

class DpmSessionClient {
 public:
  static constexpr size_t kMaxPeers = 1024;         // remote peers with a grant, per socket
  static constexpr size_t kMaxQueuedPerPeer = 64;   // datagrams held while a setup runs

  /// `protocol`: kTcp answers no connect() at the grant (the handshake does); kUdp does.
  DpmSessionClient(nat::Protocol protocol, DpmSetupCalls calls);
  DpmSessionClient(const DpmSessionClient&) = delete;
  DpmSessionClient& operator=(const DpmSessionClient&) = delete;

  /// The program's connect() to `remote` (outside the private network). Returns 0 when the
  /// peer is granted already (`out->connect` names its gateway endpoint), -1 when the answer
  /// waits for the grant (a setup is begun if none runs; `connect_result` comes with the
  /// event), ENOBUFS when the socket holds kMaxPeers grants. One connect waits at a time.
  int Connect(const api::Endpoint& remote, const DpmSessionSource& source, DpmClientActions* out);
  /// A datagram to `to` from an unconnected socket: sent to the gateway endpoint once
  /// granted, held in order (at most kMaxQueuedPerPeer, more are dropped) while the setup
  /// runs. No room for another peer: dropped, `error` ENOBUFS.
  void Send(const api::Endpoint& to, absl::Span<const uint8_t> payload, const DpmSessionSource& source,
            DpmClientActions* out);
  /// The DPM driver's news about one of this client's sessions; other ids are ignored.
  /// kGranted: the peer's held datagrams are sent, a waiting connect is aimed (and, UDP,
  /// answered 0), a connected peer is re-aimed (a re-grant may name a new endpoint).
  /// kFailed/kTimedOut: held datagrams are dropped, the waiting connect (or else SO_ERROR)
  /// gets ETIMEDOUT or ErrnoForPcp(result), and the peer is forgotten (the next datagram asks
  /// again). kLost: nothing (the driver is asking the restarted gateway again).
  void OnEvent(const driver::Event& e, DpmClientActions* out);
  /// The socket was connected elsewhere (a peer inside the private network) or dissolved
  /// its association (connect(AF_UNSPEC)): no peer is the connected one.
  void Disconnect() { connected_ = nullptr; }
  /// The waiting connect was answered otherwise (the socket closed): no answer is owed.
  void CancelConnect() { waiting_ = false; }
  /// Releases every session (lifetime 0 for each grant) and forgets every peer.
  void ReleaseAll();

  /// True when a setup runs or a grant is held for `remote`.
  bool HasPeer(const api::Endpoint& remote) const { return peers_.contains(Key(remote)); }
  /// True when the socket is connect()ed to `remote` through its grant.
  bool IsConnectedPeer(const api::Endpoint& remote) const {
    return connected_ != nullptr && Key(connected_->remote) == Key(remote);
  }
  /// The connected peer's true address (claim 11), or nullptr.
  const api::Endpoint* connected_remote() const { return connected_ ? &connected_->remote : nullptr; }
  /// The connected peer's registered address and port (claim 11), or nullptr before its grant.
  const api::Endpoint* connected_external() const {
    return connected_ && connected_->granted ? &connected_->external : nullptr;
  }
  /// The true peer behind a datagram from gateway endpoint `from` (claim 11), or `from`.
  api::Endpoint TrueSource(const api::Endpoint& from) const;
  /// Peers with a setup running or a grant held.
  size_t peer_count() const { return peers_.size(); }
  bool empty() const { return peers_.empty(); }
  bool waiting() const { return waiting_; }
  /// Datagrams held for `remote`'s grant.
  size_t queued(const api::Endpoint& remote) const;

 private:
  struct Peer {
    uint64_t id = 0;  // the driver's session id
    api::Endpoint remote;
    bool granted = false;
    api::Endpoint external, gateway_endpoint;
    std::vector<std::vector<uint8_t>> queued;  // datagrams sent before the grant
  };
  static uint64_t Key(const api::Endpoint& e) { return (uint64_t{e.ipv4_host()} << 16) | e.port_host(); }
  // The peer for `remote`, beginning its setup if there is none; nullptr at kMaxPeers.
  Peer* FindOrBegin(const api::Endpoint& remote, const DpmSessionSource& source);
  void Aim(Peer& peer, DpmClientActions* out);

  nat::Protocol protocol_;
  DpmSetupCalls calls_;
  // Peers by remote endpoint; the same peers by driver id and by gateway endpoint.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Peer>> peers_;
  absl::flat_hash_map<uint64_t, Peer*> by_id_;
  absl::flat_hash_map<uint64_t, Peer*> by_gateway_;
  Peer* connected_ = nullptr;  // connect()ed through this peer's grant
  bool waiting_ = false;       // a connect() waits for waiting_key_'s grant
  uint64_t waiting_key_ = 0;
};

/// The PCP result (RFC 6887 §7.4) of a failed DPM setup → the errno dpm_connect() returns
/// (docs/api.md has the table); EPROTO for a malformed or unsupported reply.
int ErrnoForPcp(pcp::ResultCode r);

}  // namespace dpm::stack

#endif  // DPM_STACK_DPM_SESSION_CLIENT_H_
