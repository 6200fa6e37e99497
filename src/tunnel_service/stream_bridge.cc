#include "tunnel_service/stream_bridge.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/post.hpp>

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;
using Wait = asio::posix::stream_descriptor::wait_type;
constexpr size_t kChunk = 64 * 1024;
}  // namespace

StreamBridge::StreamBridge(asio::io_context& io, int fd, std::function<void(const BridgeTotals&)> done)
    : sd_(io, fd), done_(std::move(done)) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

StreamBridge::~StreamBridge() {
  boost::system::error_code ignored;
  sd_.close(ignored);
}

int StreamBridge::fd() const { return const_cast<asio::posix::stream_descriptor&>(sd_).native_handle(); }

void StreamBridge::Join(std::shared_ptr<Session> session, int32_t id) {
  session_ = std::move(session);
  id_ = id;
  PumpIn();
  PumpOut();
}

void StreamBridge::Abort() { Finish(/*reset_socket=*/true); }

void StreamBridge::WaitReadable() {
  if (read_waiting_ || finished_) return;
  read_waiting_ = true;
  sd_.async_wait(Wait::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
    self->read_waiting_ = false;
    if (ec || self->finished_) return;
    self->PumpIn();
  });
}

void StreamBridge::WaitWritable() {
  if (write_waiting_ || finished_) return;
  write_waiting_ = true;
  sd_.async_wait(Wait::wait_write, [self = shared_from_this()](const boost::system::error_code& ec) {
    self->write_waiting_ = false;
    if (ec || self->finished_) return;
    self->PumpOut();
  });
}

// Socket → stream. What the stream's send buffer does not take waits in in_ for OnWritable
// (the Mux promises that call after a Send that took less than it was given). The socket is read
// into one buffer shared by the thread's bridges, so an idle connection holds no read buffer; a
// PumpIn run from inside another bridge's Send (the Mux's callbacks) reads into its own in_.
void StreamBridge::PumpIn() {
  if (finished_ || session_ == nullptr) return;
  thread_local std::vector<uint8_t> chunk(kChunk);
  thread_local bool chunk_busy = false;
  while (!stream_gone_) {
    if (!in_.empty()) {
      size_t n = session_->Send(id_, in_);
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
      if (!in_.empty()) return;  // OnWritable resumes
      std::vector<uint8_t>().swap(in_);
    }
    if (socket_eof_) return;
    ssize_t n;
    if (!chunk_busy) {
      chunk_busy = true;
      n = ::recv(fd(), chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n > 0) {
        size_t sent = session_->Send(id_, absl::MakeConstSpan(chunk.data(), static_cast<size_t>(n)));
        in_.assign(chunk.begin() + static_cast<std::ptrdiff_t>(sent), chunk.begin() + n);  // the rest
      }
      chunk_busy = false;
    } else {
      in_.resize(kChunk);
      n = ::recv(fd(), in_.data(), in_.size(), MSG_DONTWAIT);
      in_.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    if (n > 0) {
      totals_.to_stream += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      socket_eof_ = true;
      session_->End(id_);
      return MaybeDone();
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WaitReadable();
    return Finish(/*reset_socket=*/false);  // ECONNRESET and the like: reset the stream
  }
}

// Stream → socket; bytes are consumed (the peer's window reopened) only once written.
void StreamBridge::PumpOut() {
  if (finished_) return;
  while (out_off_ < out_.size()) {
    ssize_t n = ::send(fd(), out_.data() + out_off_, out_.size() - out_off_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += static_cast<size_t>(n);
      totals_.from_stream += static_cast<size_t>(n);
      if (!stream_gone_ && session_ != nullptr) session_->Consume(id_, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return WaitWritable();
    return Finish(/*reset_socket=*/false);  // EPIPE, ECONNRESET: the local side is gone
  }
  std::vector<uint8_t>().swap(out_);  // drained: an idle connection keeps no write buffer
  out_off_ = 0;
  if (stream_eof_ && !shut_written_) {
    shut_written_ = true;
    ::shutdown(fd(), SHUT_WR);
  }
  MaybeDone();
}

// The Mux hands over a DATA frame's payload in as many pieces as TLS records cut it into; the
// write waits for the end of this read's batch, so one send() carries them all.
void StreamBridge::OnData(absl::Span<const uint8_t> bytes) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  PostPumpOut();
}

void StreamBridge::OnEnd() {
  stream_eof_ = true;
  PostPumpOut();
}

void StreamBridge::PostPumpOut() {
  if (out_posted_ || finished_) return;
  out_posted_ = true;
  boost::asio::post(sd_.get_executor(), [self = shared_from_this()] {
    self->out_posted_ = false;
    self->PumpOut();
  });
}

void StreamBridge::OnClosed(bool clean, bool reset) {
  stream_gone_ = true;
  if (!clean) {
    totals_.reset = reset;
    return Finish(/*reset_socket=*/true);
  }
  stream_eof_ = true;
  PumpOut();
}

void StreamBridge::OnWritable() { PumpIn(); }

void StreamBridge::MaybeDone() {
  if (finished_) return;
  // Both ways ended: the stream closes cleanly (OnClosed) once the peer saw our END_STREAM.
  if (stream_gone_ && out_off_ >= out_.size()) Finish(/*reset_socket=*/false);
}

void StreamBridge::Finish(bool reset_socket) {
  if (finished_) return;
  finished_ = true;
  auto self = shared_from_this();
  if (reset_socket) {
    linger l{1, 0};  // close() then sends RST: the far end was reset
    ::setsockopt(fd(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (!stream_gone_ && session_ != nullptr) {
    stream_gone_ = true;
    totals_.reset = true;
    session_->Reset(id_, /*connect_error=*/true);
  }
  boost::system::error_code ignored;
  sd_.close(ignored);
  if (done_) {
    auto done = std::move(done_);
    done(totals_);
  }
}

}  // namespace dpm::tunnel_service
