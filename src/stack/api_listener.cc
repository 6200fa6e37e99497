#include "stack/api_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "os/fd_passing.h"

namespace dpm::stack {

using Wait = boost::asio::posix::stream_descriptor::wait_type;

namespace {

// Binds and listens. An abstract name needs nothing else: the kernel frees it when its socket
// closes, so a name in use is a live daemon of this network namespace (EADDRINUSE).
absl::StatusOr<int> BindAndListen(const api::UnixAddress& where) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (::bind(fd, where.sockaddr_ptr(), where.length) != 0 || ::listen(fd, 1024) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat("API socket ", where.text,
                                                   " is in use by a running dpmd in this network namespace "
                                                   "(give another with --api-socket)"));
    }
    return absl::InternalError(absl::StrCat("listen on ", where.text, ": ", std::strerror(err)));
  }
  return fd;
}

// A file path: its directory must exist (the daemon creates no directories on a user's
// behalf). A live daemon answers a connect; a stale socket file from a dead one refuses it
// and is replaced. Anything else at the path (a file, another program's socket) is left alone.
absl::StatusOr<int> ListenOnPath(const api::UnixAddress& where, std::optional<gid_t> group) {
  const std::string& path = where.text;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("API socket directory ", dir, " does not exist (create it, or use an abstract name like @dpm/x)"));
  }
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("API socket path ", path, " exists and is not a socket"));
  }
  int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  bool live = probe >= 0 && (::connect(probe, where.sockaddr_ptr(), where.length) == 0 ||
                             (errno != ECONNREFUSED && errno != ENOENT));
  if (probe >= 0) ::close(probe);
  if (live) return absl::AlreadyExistsError(absl::StrCat("API socket ", path, " is in use by a running dpmd"));
  ::unlink(path.c_str());
  // The socket file is made with the right mode (no moment in which others may connect).
  const mode_t old_mask = ::umask(group ? 0117 : 0177);
  absl::StatusOr<int> fd = BindAndListen(where);
  ::umask(old_mask);
  if (!fd.ok()) return fd;
  // Owner only, or owner and the API group (the daemon checks credentials as well).
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    const int err = errno;
    ::close(*fd);
    ::unlink(path.c_str());
    return absl::FailedPreconditionError(absl::StrCat("chown ", path, " to group ", *group, ": ", std::strerror(err)));
  }
  ::chmod(path.c_str(), group ? 0660 : 0600);
  return fd;
}


}  // namespace

// ---- ControlConn -------------------------------------------------------------------------

ControlConn::ControlConn(ApiListener& listener, int fd, bool refused, const PeerCredentials& peer)
    : listener_(listener),
      open_count_(listener.control_connections_),
      listener_alive_(listener.alive_),
      sd_(listener.io_, fd),
      refused_(refused),
      peer_(peer) {
  (*open_count_)++;
}

ControlConn::~ControlConn() { (*open_count_)--; }

void ControlConn::Reply(api::Opcode op, int error, std::vector<uint8_t> body, int pass_fd) {
  std::vector<uint8_t> bytes = api::EncodeReply(api::Reply{op, error, std::move(body)});
  iovec v{bytes.data(), bytes.size()};
  ssize_t n = os::SendWithFd(sd_.native_handle(), &v, 1, pass_fd);
  if (n < 0) {
    // The client is gone or not reading: nothing else can be said to it.
    boost::system::error_code ignored;
    sd_.close(ignored);
    return;
  }
  if (waiting_ && *listener_alive_) {
    // Resume reading; requests may already be queued, and descriptors are edge-triggered.
    waiting_ = false;
    boost::asio::post(listener_.io_, [self = shared_from_this()] {
      if (!*self->listener_alive_) return;
      self->OnReadable();
      self->listener_.after_work_();
    });
  }
}

void ControlConn::WaitRead() {
  sd_.async_wait(Wait::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || !*self->listener_alive_) return;
    self->OnReadable();
    self->listener_.after_work_();
  });
}

void ControlConn::OnReadable() {
  while (!waiting_ && sd_.is_open()) {
    if (!ServeOne()) return;
  }
}

bool ControlConn::ServeOne() {
  uint8_t buf[api::kMaxMessage];
  int received = -1;  // a non-blocking CONNECT carries the program's descriptor
  ssize_t n = os::RecvWithFd(sd_.native_handle(), buf, sizeof(buf), MSG_DONTWAIT, &received);
  // Only a CONNECT takes the descriptor; any other request's is closed on the way out.
  os::ScopedFd passed(received);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    WaitRead();
    return false;
  }
  if (n <= 0) {
    boost::system::error_code ignored;
    sd_.close(ignored);
    return false;
  }
  auto bytes = absl::MakeConstSpan(buf, static_cast<size_t>(n));
  uint16_t op = 0;
  if (n >= 4) std::memcpy(&op, buf + 2, sizeof(op));
  if (refused_) {
    Reply(static_cast<api::Opcode>(op), EACCES);
    return true;
  }
  absl::StatusOr<api::Request> request = api::ParseRequest(bytes);
  if (!request.ok()) {
    listener_.counters_.bad_requests++;
    Reply(static_cast<api::Opcode>(op), EINVAL);
  } else {
    if (auto* connect = std::get_if<api::ConnectRequest>(&*request)) {
      connect->descriptor = passed.release();  // the handler owns it from here
    }
    listener_.handler_(shared_from_this(), *request, static_cast<api::Opcode>(op));
  }
  return true;
}

// ---- ApiListener -------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ApiListener>> ApiListener::Create(boost::asio::io_context& io, std::function<void()> after_work,
                                                                 const api::UnixAddress& where,
                                                                 std::optional<gid_t> group,
                                                                 SocketServiceCounters& counters,
                                                                 RequestHandler handler) {
  absl::StatusOr<int> listening = where.abstract ? BindAndListen(where) : ListenOnPath(where, group);
  if (!listening.ok()) return listening.status();
  return std::unique_ptr<ApiListener>(
      new ApiListener(io, std::move(after_work), where, group, counters, std::move(handler), *listening));
}

ApiListener::ApiListener(boost::asio::io_context& io, std::function<void()> after_work, const api::UnixAddress& where,
                         std::optional<gid_t> group, SocketServiceCounters& counters, RequestHandler handler, int fd)
    : io_(io),
      after_work_(std::move(after_work)),
      path_(where.text),
      abstract_(where.abstract),
      counters_(counters),
      handler_(std::move(handler)),
      listener_(io, fd) {
  access_.owner = ::geteuid();
  access_.group = group;
}

ApiListener::~ApiListener() {
  *alive_ = false;
  if (!abstract_) ::unlink(path_.c_str());
}

void ApiListener::Start() {
  listener_.async_wait(Wait::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;
    for (;;) {
      int fd = ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      PeerCredentials peer;
      absl::StatusOr<bool> allowed = CheckPeer(access_, fd, &peer);
      const bool refused = !allowed.ok() || !*allowed;
      if (refused) {
        counters_.api_refused++;
        std::fprintf(stderr, "dpmd: API connection refused: pid %d uid %u gid %u is neither this daemon's user nor root%s\n",
                     static_cast<int>(peer.pid), static_cast<unsigned>(peer.uid), static_cast<unsigned>(peer.gid),
                     access_.group ? ", nor in the API group" : ", and there is no --api-group");
      }
      auto conn = std::make_shared<ControlConn>(*this, fd, refused, peer);
      conn->Start();
    }
    Start();
  });
}

}  // namespace dpm::stack
