// Per-socket DHCP leases on an Ethernet (TAP) link (the per-socket-address patent's dynamic
// assignment, RFC 2131; docs/design.md §7). The I/O side of src/dhcp/: one lwIP UDP pcb on
// port 68 shared by every socket's client, one Timer of the stack's Clock (Stack::clock())
// for their deadlines, and the bookkeeping from socket to lease. The protocol itself — states, retransmission, T1/T2,
// expiry — is dhcp::DhcpClientSet's (src/dhcp/README.md).
//
// Every socket asking for a dynamic address gets a client of its own with a client
// identifier of its own (option 61, type 0, "dpm/<MAC>/<socket id>"), all sharing the
// stack's MAC as chaddr. What the owner sees:
//   Obtain(id, …)   bound(address) once the server's DHCPACK arrives, or lost(ETIMEDOUT)
//                   when no server answered within the acquisition time (16 s by default).
//   Release(id)     the socket closed: a DHCPRELEASE if it held a lease, then forgotten.
//   lost(errno)     after bound, the lease is gone: ETIMEDOUT when it expired without a
//                   renewal, EADDRNOTAVAIL when the server refused a renewal (DHCPNAK). The
//                   owner closes the socket ("automatically close at the end of a lease time").
// Core thread only (lwIP raw API).
#ifndef DPM_STACK_DHCP_LEASES_H_
#define DPM_STACK_DHCP_LEASES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <random>

#include <boost/asio/io_context.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dhcp/dhcp_client.h"
#include "lwip/udp.h"
#include "stack/clock.h"

namespace dpm::stack {

class Stack;

/// Counters for status (the clients' own drop counters are summed in by Counters()).
struct DhcpLeaseCounters {
  uint64_t requested = 0;  // Obtain() calls
  uint64_t bound = 0;      // leases obtained
  uint64_t renewed = 0;
  uint64_t timed_out = 0;  // no lease within the acquisition time (ETIMEDOUT)
  uint64_t expired = 0;    // leases that ran out without a renewal
  uint64_t naks = 0;       // leases the server took back (DHCPNAK while renewing)
  uint64_t released = 0;   // DHCPRELEASEs sent
  uint64_t malformed = 0;  // datagrams on port 68 that are not DHCP messages
  uint64_t unrouted = 0;   // DHCP messages for no open transaction (another host's, late)
  uint64_t ignored = 0;    // routed, but refused by the client (wrong chaddr, client id, type …)
  uint64_t send_errors = 0;
};

class DhcpLeases {
 public:
  struct Config {
    /// Lost(ETIMEDOUT) this long after Obtain() when no lease was granted (milliseconds).
    uint64_t acquire_timeout_ms = 16'000;
  };
  /// Binds UDP port 68 on the stack's netif. Time (lease deadlines, retransmissions, the
  /// acquisition timeout) is the stack's clock. Errors: FailedPrecondition (the link is not
  /// Ethernet: DHCP needs broadcast and a MAC), Unavailable (port 68 taken, no memory).
  static absl::StatusOr<std::unique_ptr<DhcpLeases>> Create(boost::asio::io_context& io, Stack& stack,
                                                           const Config& config);
  ~DhcpLeases();
  DhcpLeases(const DhcpLeases&) = delete;
  DhcpLeases& operator=(const DhcpLeases&) = delete;

  /// Address in host byte order; errno values as above.
  using Bound = std::function<void(uint32_t address)>;
  using Lost = std::function<void(int error)>;
  /// Starts obtaining a lease for socket `id` (unique while it has one). Exactly one of
  /// `bound` or `lost` follows for the acquisition; after `bound`, `lost` may follow once.
  /// Neither is called from inside Obtain() or after Release(id).
  void Obtain(uint64_t id, Bound bound, Lost lost);
  /// The socket is done with its lease: DHCPRELEASE when one is held; forgets `id`.
  void Release(uint64_t id);
  /// Sockets with a client (obtaining or holding).
  size_t size() const { return owners_.size(); }
  size_t held() const;
  DhcpLeaseCounters counters() const;

 private:
  DhcpLeases(boost::asio::io_context& io, Stack& stack, const Config& config, udp_pcb* pcb);
  void OnDatagram(pbuf* p);
  void Apply(dhcp::DhcpActions& actions);  // sends, delivers events, re-arms the timer
  void ArmTimer();
  uint64_t NowMs() const;
  // Drops socket `id`'s client and owner, keeping what the client refused in the counters.
  void Forget(uint64_t id);

  struct Owner {
    Bound bound;
    Lost lost;
    bool holding = false;
  };
  boost::asio::io_context& io_;
  Stack& stack_;
  Config config_;
  udp_pcb* pcb_;
  std::unique_ptr<Timer> timer_;
  dhcp::DhcpClientSet clients_;
  absl::flat_hash_map<uint64_t, Owner> owners_;
  std::mt19937 random_;
  DhcpLeaseCounters counters_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_DHCP_LEASES_H_
