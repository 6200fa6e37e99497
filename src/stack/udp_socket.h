// A dpm UDP socket: an lwIP udp_pcb joined to the daemon's end of the program's seqpacket
// pair. Each message on the pair is an api::Endpoint header plus the payload (the destination
// when the program sends, family 0 for the connected peer; the source when it receives).
// Datagrams the program does not read in time are dropped and counted, as UDP is.
//
// Datagrams to peers outside the private network go through the DPM driver (the DPM patent,
// ¶33): the socket's DpmSessionClient holds the per-peer grants and the datagrams waiting for
// them; the socket only applies what it says to the pcb and the pair.
//
// Core thread only.
#ifndef DPM_STACK_UDP_SOCKET_H_
#define DPM_STACK_UDP_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lwip/udp.h"
#include "stack/dpm_session_client.h"
#include "stack/socket_base.h"

namespace dpm::stack {

class UdpSocket : public Socket {
 public:
  /// A new socket on `pcb` (from udp_new, owned from now on); `near_fd` is the daemon's end.
  UdpSocket(SocketHost& host, int near_fd, udp_pcb* pcb);

  void Start() override;
  int Bind(const api::Endpoint& local) override;
  int Listen(int) override { return EOPNOTSUPP; }
  int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) override;
  int Name(bool peer, api::Endpoint* out) const override;
  int Shutdown(int how) override;
  int SetOption(int level, int name, const std::vector<uint8_t>& value) override;
  int GetOption(int level, int name, int* value) override;
  void Destroy() override;
  SocketRow Describe() const override;
  void OnDpmEvent(const driver::Event& e) override;

 private:
  void PresetLocalAddress(const ip_addr_t& address) override;
  int BindLwip(const ip_addr_t& ip, uint16_t port) override;
  // The source of a new DPM session, binding the pcb to an ephemeral port first if needed;
  // false when no address or port could be had.
  bool DpmSource(DpmSessionSource* source);
  // Does what the DPM client said: aims the pcb, sends (a failed send becomes SO_ERROR when
  // `report_send_errors`), answers the waiting connect, counts.
  void Apply(DpmClientActions& actions, bool report_send_errors = true);
  // Aims the pcb at a DPM peer's gateway endpoint (claim 5).
  void ConnectTo(const api::Endpoint& gateway_endpoint);
  // A cooperative VPM negotiation ended (Socket::Negotiate): connect to the virtual port, or
  // answer the error.
  void OnNegotiated(int error, const api::Endpoint& remote) override;
  err_t SendTo(const api::Endpoint& to, const uint8_t* data, size_t size);
  void WaitAppReadable();
  // Program → network: one datagram per message. False once the program has gone.
  bool OnAppReadable();
  static void OnRecv(void* arg, udp_pcb* pcb, pbuf* p, const ip_addr_t* addr, u16_t port);

  udp_pcb* pcb_;
  bool bound_ = false;
  bool read_waiting_ = false;
  DpmSessionClient dpm_client_;
  std::shared_ptr<ControlConn> pending_connect_;  // a connect() waiting for its grant
};

}  // namespace dpm::stack

#endif  // DPM_STACK_UDP_SOCKET_H_
