// A dpm TCP socket: the bridge between an lwIP tcp_pcb and the daemon's end of the program's
// stream socket pair (socket_service.h has the flow-control rule: bytes the program writes go
// to tcp_write() only while lwIP has send buffer; bytes lwIP received are acknowledged to the
// window, tcp_recved(), only once the pair took them). A listening socket's stream carries one
// api::AcceptRecord per new connection with the connection's descriptor in SCM_RIGHTS.
//
// Connections to peers outside the private network start with a DPM setup (the DPM patent,
// claims 1-5): connect() waits for the grant, the handshake goes to the gateway endpoint, and
// getsockname/getpeername show the registered endpoint and the true peer (claim 11).
//
// Core thread only.
#ifndef DPM_STACK_TCP_SOCKET_H_
#define DPM_STACK_TCP_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <netinet/tcp.h>

#include "lwip/tcp.h"
#include "stack/dpm_session_client.h"
#include "stack/socket_base.h"

namespace dpm::stack {

class TcpSocket : public Socket {
 public:
  /// A new socket on `pcb` (from tcp_new, owned from now on); `near_fd` is the daemon's end.
  TcpSocket(SocketHost& host, int near_fd, tcp_pcb* pcb);
  /// An accepted connection: already established.
  static std::shared_ptr<TcpSocket> Accepted(SocketHost& host, int near_fd, tcp_pcb* pcb);

  void Start() override;
  int Bind(const api::Endpoint& local) override;
  int Listen(int backlog) override;
  int Connect(const api::Endpoint& remote, const std::shared_ptr<ControlConn>& conn) override;
  int Name(bool peer, api::Endpoint* out) const override;
  int Shutdown(int how) override;
  int SetOption(int level, int name, const std::vector<uint8_t>& value) override;
  int GetOption(int level, int name, int* value) override;
  /// TCP_INFO and TCP_CONGESTION (below).
  int GetBytesOption(int level, int name, std::vector<uint8_t>* out) override;
  /// TCP_INFO (struct tcp_info, netinet/tcp.h) from what lwIP keeps of the connection: state,
  /// MSS, RTO, smoothed RTT and its variance (lwIP's 500 ms timer ticks, so coarse), cwnd and
  /// ssthresh in segments, segments unacknowledged, retransmissions of the segment in flight.
  /// Fields lwIP has no counterpart for are 0.
  void Info(tcp_info* out) const;
  void Destroy() override;
  SocketRow Describe() const override;
  void OnDpmEvent(const driver::Event& e) override;
  void Flush() override;

  /// Non-blocking connect (docs/api.md "Non-blocking connect"): before Connect(), fills the
  /// program's end of the pair (`program_fd`, the descriptor the program passed; not kept) with
  /// gate bytes until the kernel refuses more, so neither poll/select/epoll nor a write sees it
  /// writable while the handshake runs; Connect() is then called with no ControlConn, and the
  /// connect's end (established or failed, SO_ERROR set) empties the gate, which the kernel
  /// reports as writable. Bytes queued before the connect are dropped, as before any connect.
  /// *raised is false when the socket is not in a state to connect (Connect() answers at once).
  /// Errors: EINVAL (`program_fd` is not this socket's other end).
  int RaiseGate(int program_fd, bool* raised);
  /// Empties a raised gate at once (a Connect() that answered without starting a handshake).
  void LowerGate();

  /// Queues a new connection for the program listening here; false if the queue is full.
  bool QueueAccepted(api::AcceptRecord record, int far_fd);

 private:
  struct QueuedAccept {
    api::AcceptRecord record;
    int far_fd;
  };
  struct Chunk {
    pbuf* p;
    size_t offset;
  };
  // How a connection leaves lwIP: FIN (RST if received data was left unread, as tcp_close()
  // decides), RST, or without a word (the address is no longer ours to send from).
  enum class Leave { kGraceful, kReset, kSilent };

  void PresetLocalAddress(const ip_addr_t& address) override;
  int BindLwip(const ip_addr_t& ip, uint16_t port) override;
  void DropPcbForLostAddress() override;
  void Attach();
  void CacheNames();
  // A connect that cannot go on: answer it, and leave the socket closed with the error.
  void FailConnect(int error);
  // A cooperative VPM negotiation ended (Socket::Negotiate): connect, or fail.
  void OnNegotiated(int error, const api::Endpoint& remote) override;
  // The connect ended (0 or an errno): answers a blocking connect, or — non-blocking — lowers
  // the gate, keeps a failure for SO_ERROR and shuts the pair's way to the program (EOF).
  void ConnectDone(int error);
  void DetachPcb(bool graceful) { Detach(graceful ? Leave::kGraceful : Leave::kReset); }
  void Detach(Leave how);
  void FreePending();
  // Before a connection exists the near end is watched only for hang-up.
  void WaitIdle();
  // While a gate is up the near end holds it (always readable): hang-up alone is watched, so a
  // program that closes during a non-blocking connect releases the socket at once.
  void WaitGateHangUp();
  void OnIdleReadable();
  // Program → network. Reads from the pair only while lwIP has room to queue the bytes.
  void PumpFromApp();
  // Hands unsent_ to lwIP; false if lwIP has no room now.
  bool WriteUnsent();
  void WaitAppReadable();
  // Network → program. Received bytes are acknowledged to lwIP's window as the pair takes them.
  void FlushToApp();
  void Consume(size_t n);
  void WaitAppWritable();
  // Both directions finished: leave lwIP (it completes the close) and wait for the program
  // to close its descriptor.
  void MaybeFinish();
  void SendAccepts();
  void WaitAcceptWritable();
  // Virtual port multiplexing: the listening sockets of this socket's virtual stream (live
  // ones; null when it is on none), the one a new connection goes to (round robin among those
  // with room in their accept queue), and, at close, the hand-over of lwIP's listener to
  // another of them.
  std::vector<std::shared_ptr<TcpSocket>> StreamListeners();
  TcpSocket* PickListener();
  bool HandOverListener();

  // lwIP callbacks (arg is the TcpSocket, or null once detached).
  static err_t OnConnected(void* arg, tcp_pcb* pcb, err_t err);
  static err_t OnRecv(void* arg, tcp_pcb* pcb, pbuf* p, err_t err);
  static err_t OnSent(void* arg, tcp_pcb* pcb, u16_t len);
  // lwIP has freed the pcb (RST received, retransmissions exhausted, or aborted).
  static void OnError(void* arg, err_t err);
  static err_t OnAccept(void* arg, tcp_pcb* newpcb, err_t err);

  tcp_pcb* pcb_;
  bool bound_ = false;
  bool had_peer_ = false;
  // DPM: the session's grant (dpm_), the registered endpoint (what getsockname shows) and the
  // true peer.
  bool dpm_ = false, dpm_connecting_ = false;
  DpmSessionClient dpm_client_;
  api::Endpoint dpm_external_, true_remote_;
  api::Endpoint local_, peer_;
  std::shared_ptr<ControlConn> pending_connect_;  // answered when the handshake ends
  size_t gate_bytes_ = 0;  // non-blocking connect under way: gate bytes queued on the near end
  // Network → program.
  std::vector<Chunk> pending_;  // chunks before pending_head_ are consumed
  size_t pending_head_ = 0;
  size_t pending_bytes_ = 0;
  bool remote_fin_ = false, fin_to_app_ = false;
  // Program → network: bytes read from the pair that lwIP had no room for yet.
  std::vector<uint8_t> unsent_;
  bool app_eof_ = false;
  bool read_waiting_ = false, write_waiting_ = false, idle_waiting_ = false, gate_waiting_ = false;
  // Listening.
  size_t backlog_ = TCP_DEFAULT_LISTEN_BACKLOG;
  std::vector<QueuedAccept> accept_queue_;
  size_t next_listener_ = 0;  // PickListener's round robin
};

}  // namespace dpm::stack

#endif  // DPM_STACK_TCP_SOCKET_H_
