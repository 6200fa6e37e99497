// The dpm sockets of one instance by id, and the dispatch of API requests (api/protocol.h) to
// them: SOCKET makes a socket pair and a TcpSocket or UdpSocket and hands the program its end;
// STATUS answers the status report; every other request names a socket by SocketRef (id and
// cookie) and goes to it, unknown refs answering EBADF. The dispatch is a std::visit over
// api::Request with one overload per request type, so a request type added to the protocol
// without a handler here does not compile.
//
// The per-socket-address patent's dynamic addresses: a DPM_TUPLE_DYNAMIC socket's SOCKET reply (address taken at
// socket()) or its first bind/connect/listen (taken later) waits for the DHCP exchange.
//
// Core thread only.
#ifndef DPM_STACK_SOCKET_REGISTRY_H_
#define DPM_STACK_SOCKET_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "api/protocol.h"
#include "stack/socket_base.h"

namespace dpm::stack {

class ControlConn;

class SocketRegistry {
 public:
  /// `max_sockets`: open sockets at most (more give ENOBUFS); `address_at_socket`: the per-socket-address patent's
  /// first embodiment (SocketServiceConfig::address_at_socket); `status`: the STATUS answer.
  SocketRegistry(SocketHost& host, size_t max_sockets, bool address_at_socket,
                 std::function<std::string(bool json)> status);
  /// Destroys every socket (Socket::Destroy).
  ~SocketRegistry();
  SocketRegistry(const SocketRegistry&) = delete;
  SocketRegistry& operator=(const SocketRegistry&) = delete;

  /// Serves one parsed request of opcode `op`, answering on `conn` now or later (Defer).
  void Handle(const std::shared_ptr<ControlConn>& conn, const api::Request& request, api::Opcode op);

  /// Gives `s` the next id and keeps it.
  void Register(std::shared_ptr<Socket> s);
  /// Destroys and forgets socket `id`; its own address goes back (after the closing
  /// handshake, when one is under way). Unknown ids are ignored.
  void Release(uint64_t id);
  /// The socket `ref` names, or nullptr (unknown id, or a cookie that does not match).
  std::shared_ptr<Socket> Find(const api::SocketRef& ref) const;
  /// True when max_sockets are open (a new dpm_socket() then gets ENOBUFS).
  bool Full() const { return sockets_.size() >= max_sockets_; }
  /// Sockets open.
  size_t size() const { return sockets_.size(); }
  /// Calls `fn` for every socket, in no particular order.
  void ForEach(const std::function<void(Socket&)>& fn) const;
  /// The sockets' status rows by id, at most `limit`.
  std::vector<SocketRow> Rows(size_t limit) const;

 private:
  // The dispatch: one function per request type (std::visit in Handle).
  void Open(const std::shared_ptr<ControlConn>& conn, const api::SocketRequest& q, api::Opcode op);
  // CONNECT; a non-blocking one (with the program's descriptor) is answered EINPROGRESS at once
  // and ends through the gate (TcpSocket::RaiseGate).
  void Connect(const std::shared_ptr<ControlConn>& conn, const api::Request& request, const api::ConnectRequest& q,
               api::Opcode op);
  // The socket a request names, or nullptr once the request is answered (EBADF) or deferred
  // for a lease (`takes_address`: bind/connect/listen of a DPM_TUPLE_DYNAMIC socket).
  std::shared_ptr<Socket> Target(const std::shared_ptr<ControlConn>& conn, const api::Request& request,
                                 const api::SocketRef& ref, api::Opcode op, bool takes_address);
  void SetOption(const std::shared_ptr<ControlConn>& conn, Socket& s, const api::SetSockOptRequest& q,
                 api::Opcode op);
  void GetOption(const std::shared_ptr<ControlConn>& conn, Socket& s, const api::GetSockOptRequest& q,
                 api::Opcode op);

  SocketHost& host_;
  size_t max_sockets_;
  bool address_at_socket_;
  std::function<std::string(bool json)> status_;
  uint64_t next_id_ = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Socket>> sockets_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_SOCKET_REGISTRY_H_
