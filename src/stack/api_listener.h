// Where programs reach the daemon (docs/api.md): the listening UNIX SOCK_SEQPACKET socket
// (an abstract "@name" or a file path, api/unix_address.h) and one ControlConn per client
// thread. Each connection's peer credentials are checked once (stack/api_access.h); a refused
// peer has every request answered EACCES. Requests are parsed (api/protocol.h) and handed to
// the RequestHandler; malformed ones are answered EINVAL and counted.
//
// Core thread only.
#ifndef DPM_STACK_API_LISTENER_H_
#define DPM_STACK_API_LISTENER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/status/statusor.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "stack/api_access.h"
#include "stack/service_status.h"

namespace dpm::stack {

class ApiListener;

/// One client thread's control connection. At most one request is in flight: a request whose
/// answer must wait (TCP connect, a DHCP lease) stops reading until the answer is sent.
class ControlConn : public std::enable_shared_from_this<ControlConn> {
 public:
  /// `refused`: the peer's credentials do not allow it: every request is answered EACCES.
  ControlConn(ApiListener& listener, int fd, bool refused, const PeerCredentials& peer = {});
  ~ControlConn();

  /// The connecting program's credentials (SO_PEERCRED at accept): the VPM configurator's
  /// socket rules match its executable and user.
  const PeerCredentials& peer() const { return peer_; }

  void Start() { WaitRead(); }
  /// Sends the answer to the request of opcode `op`: `error` (0 or an errno), `body`, and
  /// `pass_fd` (>= 0) in SCM_RIGHTS. A client that is gone or not reading is disconnected. An
  /// answer that was deferred resumes reading.
  void Reply(api::Opcode op, int error, std::vector<uint8_t> body = {}, int pass_fd = -1);
  /// The request's answer comes later (Reply); reading stops until then.
  void Defer() { waiting_ = true; }

 private:
  void WaitRead();
  // Serves requests until the connection is drained (descriptors are edge-triggered) or a
  // request's answer has to wait.
  void OnReadable();
  // False when nothing more can be read now (a wait is armed, or the connection closed).
  bool ServeOne();

  ApiListener& listener_;
  std::shared_ptr<size_t> open_count_;  // the listener's control_connections(); may outlive it
  // False once the listener is gone: a connection the io_context still holds then serves no
  // more requests (its handler, counters and stack belong to the service that went away).
  std::shared_ptr<const bool> listener_alive_;
  boost::asio::posix::stream_descriptor sd_;
  bool waiting_ = false;
  bool refused_ = false;
  PeerCredentials peer_;
};

class ApiListener {
 public:
  /// Gets each parsed request with the connection to answer on and the request's opcode.
  using RequestHandler =
      std::function<void(const std::shared_ptr<ControlConn>& conn, const api::Request& request, api::Opcode op)>;

  /// Binds and listens on `where` (a stale socket file is replaced; a file-path socket gets
  /// mode 0600, or 0660 owned by `group`). Errors: AlreadyExists (a live daemon answers
  /// there), FailedPrecondition (the path's directory does not exist, the path is something
  /// other than a socket, or chown to `group` failed), Internal.
  /// `after_work` runs after each batch of requests is served (the stack re-arms its timers).
  static absl::StatusOr<std::unique_ptr<ApiListener>> Create(boost::asio::io_context& io,
                                                             std::function<void()> after_work,
                                                             const api::UnixAddress& where,
                                                             std::optional<gid_t> group,
                                                             SocketServiceCounters& counters,
                                                             RequestHandler handler);
  /// Stops listening; a file-path socket is removed.
  ~ApiListener();
  ApiListener(const ApiListener&) = delete;
  ApiListener& operator=(const ApiListener&) = delete;

  /// Starts accepting connections.
  void Start();
  /// Control connections open now.
  size_t control_connections() const { return *control_connections_; }

 private:
  friend class ControlConn;
  ApiListener(boost::asio::io_context& io, std::function<void()> after_work, const api::UnixAddress& where, std::optional<gid_t> group,
              SocketServiceCounters& counters, RequestHandler handler, int fd);

  boost::asio::io_context& io_;
  std::function<void()> after_work_;
  std::string path_;
  bool abstract_;  // an abstract socket name: nothing to remove from the file system
  ApiAccessPolicy access_;
  SocketServiceCounters& counters_;
  RequestHandler handler_;
  boost::asio::posix::stream_descriptor listener_;
  // Shared with the connections, which an io_context may destroy after the listener.
  std::shared_ptr<size_t> control_connections_ = std::make_shared<size_t>(0);
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dpm::stack

#endif  // DPM_STACK_API_LISTENER_H_
