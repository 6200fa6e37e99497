// The I/O side of the DPM driver (the DPM patent, claims 1-5; dpm/dpm_driver.h is the
// sans-I/O core): owns the driver::Driver, its lwIP UDP pcb to the DPM server and the one
// Timer of its deadlines, feeds it time from the stack's Clock, sends what it has due from
// each session's internal address, and hands its events to the sockets whose sessions they
// are (Socket::OnDpmEvent).
//
// Core thread only (lwIP raw API).
#ifndef DPM_STACK_DPM_DRIVER_HOST_H_
#define DPM_STACK_DPM_DRIVER_HOST_H_

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "api/protocol.h"
#include "dpm/dpm_driver.h"
#include "lwip/udp.h"
#include "stack/clock.h"
#include "stack/dpm_session_client.h"
#include "stack/service_status.h"

namespace dpm::stack {

class Socket;
class Stack;
struct DpmDriverSettings;

class DpmDriverHost {
 public:
  /// Starts the driver for `settings`: a UDP pcb on an ephemeral port of the stack, connected
  /// to the DPM server (settings.server_address:server_port).
  DpmDriverHost(Stack& stack, const DpmDriverSettings& settings);
  ~DpmDriverHost();
  DpmDriverHost(const DpmDriverHost&) = delete;
  DpmDriverHost& operator=(const DpmDriverHost&) = delete;

  /// True when a session to `remote` starts with a setup exchange: an IPv4 peer outside
  /// DpmDriverSettings::private_network/private_prefix.
  bool Applies(const api::Endpoint& remote) const;
  /// Begins a setup for `owner`'s session (its events go to owner->OnDpmEvent while it
  /// lives) and returns the session id. A socket with an address of its own gets a mapping
  /// of its own (docs/design.md §7).
  uint64_t Begin(std::weak_ptr<Socket> owner, const DpmSetupRequest& request);
  /// Ends session `id` (lifetime 0); no more events go to its socket.
  void Release(uint64_t id);

  /// The driver's grants and counters for status.
  DpmDriverStatus status() const;

 private:
  // Sends what the driver has due, delivers its events, re-arms the timer.
  void Work();
  void PostWork();

  Stack& stack_;
  Clock& clock_;
  uint32_t private_network_;
  int private_prefix_;
  std::unique_ptr<driver::Driver> driver_;
  udp_pcb* pcb_ = nullptr;
  std::unique_ptr<Timer> timer_;
  absl::flat_hash_map<uint64_t, std::weak_ptr<Socket>> sessions_;
  uint64_t setups_ = 0, failures_ = 0;
  // Tells posted work whether this object still exists.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_DPM_DRIVER_HOST_H_
