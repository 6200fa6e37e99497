// Who holds which per-socket address (the per-socket-address patent; docs/design.md
// §7): addresses from the static pool (DPM_TUPLE_STATIC) and from DHCP leases
// (DPM_TUPLE_DYNAMIC), how many sockets hold each (a listener and its accepted connections
// share one), the addresses a closed TCP connection keeps while lwIP finishes the closing
// handshake (linger), and what happens when a lease ends under its sockets.
//
// While an address is held lwIP accepts packets for it (AcceptAddress) and, on an Ethernet
// link, it is announced (RFC 5227 §3); the last holder's drop stops that, clears its DSCP and
// gives the address back (to the pool, or DHCPRELEASE, RFC 2131 §4.4.6).
//
// Core thread only (lwIP raw API).
#ifndef DPM_STACK_ADDRESS_OWNERSHIP_H_
#define DPM_STACK_ADDRESS_OWNERSHIP_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "lwip/tcp.h"
#include "stack/address_pool.h"
#include "stack/dhcp_leases.h"
#include "stack/service_status.h"

namespace dpm::stack {

class Socket;
class Stack;

class AddressOwnership {
 public:
  /// Called when a lease ended under its sockets: each socket whose own address is `address`
  /// (host order) loses the address and its connection — the program reads end of file and
  /// SO_ERROR gives `error` (ETIMEDOUT: expired; EADDRNOTAVAIL: DHCPNAK) — and lives on until
  /// the program closes its descriptor, as a kernel socket would.
  using LoseSockets = std::function<void(uint32_t address, int error)>;

  /// `pool`: the static pool, or none; `dhcp`: the leases, or null (no --dhcp).
  AddressOwnership(Stack& stack, SocketServiceCounters& counters, std::optional<AddressPool> pool,
                   std::unique_ptr<DhcpLeases> dhcp, LoseSockets lose);
  /// Lingering connections are let go: their pcbs no longer call back into this object.
  ~AddressOwnership();
  AddressOwnership(const AddressOwnership&) = delete;
  AddressOwnership& operator=(const AddressOwnership&) = delete;

  /// True when a static pool was configured (SocketServiceConfig::address_pool).
  bool has_pool() const { return pool_.has_value(); }
  /// True when DHCP leases run (SocketServiceConfig::dhcp).
  bool has_dhcp() const { return dhcp_ != nullptr; }

  /// Allocates an address from the static pool, held once, accepted and announced; nullopt
  /// when there is no pool or it is exhausted (counted: address_exhausted).
  std::optional<uint32_t> Take();
  /// Holds `address` once more (an accepted connection shares its listener's).
  void Hold(uint32_t address);
  /// Lets go once; the last drop gives the address back and lwIP stops accepting it.
  void Drop(uint32_t address);
  /// A closed TCP connection's own address stays held while lwIP finishes the closing
  /// handshake (FIN_WAIT/LAST_ACK), so the peer's FIN and ACK still reach it and the last
  /// segments keep its DSCP; it is dropped when the peer's FIN arrives or the pcb ends.
  /// `pcb` has been detached from its socket (tcp_arg and tcp_recv are taken over).
  void Linger(tcp_pcb* pcb, uint32_t address);
  /// DPM_TUPLE_DYNAMIC: obtains a lease for socket `s` (its id names the lease), then
  /// `done(0)` once the address is the socket's (Socket::AdoptAddress), or `done(errno)`
  /// when there is none (ETIMEDOUT: no server answered; ECONNABORTED: the socket went
  /// meanwhile; EADDRNOTAVAIL: the server offered an address already in use here). A lease
  /// lost later closes its sockets (LoseSockets).
  void ObtainLease(const std::shared_ptr<Socket>& s, std::function<void(int error)> done);

  /// For status: addresses held, connections lingering, the pool's size and free addresses.
  size_t in_use() const { return holders_.size(); }
  size_t lingering() const { return lingering_.size(); }
  size_t pool_size() const { return pool_ ? pool_->size() : 0; }
  size_t pool_available() const { return pool_ ? pool_->available() : 0; }
  /// The leases' part of the status; nullopt without --dhcp.
  std::optional<DhcpStatus> dhcp_status() const;

 private:
  struct Use {
    uint32_t holders = 0;  // sockets using it (a listener and its accepted connections)
    uint64_t lease = 0;    // DHCP: the socket id its lease is kept under; 0: the static pool
  };
  // One lingering connection: lwIP's arg and ext arg of `pcb` point here.
  struct LingerRecord {
    AddressOwnership* owner;
    tcp_pcb* pcb;
    uint32_t address;
  };
  // Starts holding `address` once under `lease`: accepted, announced, counted.
  void Begin(uint32_t address, uint64_t lease);
  // Ends a linger once: the address is dropped after lwIP has sent what this input causes.
  static void EndLinger(LingerRecord* record);
  // A lease ended under its sockets.
  void LoseLease(uint32_t address, int error);

  Stack& stack_;
  SocketServiceCounters& counters_;
  std::optional<AddressPool> pool_;
  std::unique_ptr<DhcpLeases> dhcp_;
  LoseSockets lose_;
  absl::flat_hash_map<uint32_t, Use> holders_;  // own address -> its use
  absl::flat_hash_map<LingerRecord*, std::unique_ptr<LingerRecord>> lingering_;
  // Tells posted drops whether this object still exists.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_ADDRESS_OWNERSHIP_H_
