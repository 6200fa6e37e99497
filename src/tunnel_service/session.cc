#include "tunnel_service/session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"

namespace dpm::tunnel_service {
namespace {

namespace asio = boost::asio;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kWriteChunk = 256 * 1024;

struct ControlRead {
  TlsStream& stream;
  std::function<void(absl::StatusOr<tunnel::ControlMessage>, std::vector<uint8_t>)> done;
  std::vector<uint8_t> buf;
};

void ContinueControl(std::shared_ptr<ControlRead> r) {
  if (r->buf.size() >= tunnel::kControlHeaderSize) {
    absl::StatusOr<size_t> size = tunnel::ControlMessageSize(r->buf);
    if (!size.ok()) return r->done(size.status(), {});
    if (r->buf.size() >= *size) {
      std::vector<uint8_t> rest(r->buf.begin() + static_cast<std::ptrdiff_t>(*size), r->buf.end());
      r->buf.resize(*size);
      return r->done(tunnel::ParseControl(r->buf), std::move(rest));
    }
  }
  auto chunk = std::make_shared<std::vector<uint8_t>>(4096);
  r->stream.async_read_some(asio::buffer(*chunk), [r, chunk](const boost::system::error_code& ec, size_t n) {
    if (ec) {
      return r->done(absl::UnavailableError(ec == asio::error::eof ? "connection closed" : ec.message()), {});
    }
    r->buf.insert(r->buf.end(), chunk->begin(), chunk->begin() + static_cast<std::ptrdiff_t>(n));
    ContinueControl(r);
  });
}

}  // namespace

void ReadControl(TlsStream& stream,
                 std::function<void(absl::StatusOr<tunnel::ControlMessage>, std::vector<uint8_t>)> done) {
  auto r = std::make_shared<ControlRead>(ControlRead{stream, std::move(done), {}});
  ContinueControl(r);
}

void WriteControl(TlsStream& stream, const tunnel::ControlMessage& message,
                  std::function<void(const boost::system::error_code&)> done) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(tunnel::EncodeControl(message));
  asio::async_write(stream, asio::buffer(*bytes),
                    [bytes, done = std::move(done)](const boost::system::error_code& ec, size_t) { done(ec); });
}

Session::Session(asio::io_context& io, std::unique_ptr<TlsStream> stream, tunnel::Mux::Side side,
                 const tunnel::Mux::Options& options, std::chrono::seconds keepalive, Callbacks callbacks)
    : io_(io),
      stream_(std::move(stream)),
      mux_(side, *this, options),
      keepalive_(keepalive),
      callbacks_(std::move(callbacks)),
      keepalive_timer_(io),
      read_buf_(kReadChunk),
      last_rx_(std::chrono::steady_clock::now()) {
  boost::system::error_code ec;
  auto ep = stream_->lowest_layer().remote_endpoint(ec);
  peer_ = ec ? "?" : absl::StrCat(ep.address().to_string(), ":", ep.port());
}

Session::~Session() = default;

void Session::Start(std::vector<uint8_t> first) {
  ArmKeepalive();
  if (!first.empty()) Receive(first);
  Flush();
  Read();
}

void Session::Read() {
  if (!up_) return;
  stream_->async_read_some(asio::buffer(read_buf_),
                           [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                             if (!self->up_) return;
                             if (ec) {
                               return self->Close(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                                                      ? "peer closed the connection"
                                                      : absl::StrCat("read: ", ec.message()));
                             }
                             self->Receive(absl::MakeConstSpan(self->read_buf_.data(), n));
                             self->Flush();
                             self->Read();
                           });
}

void Session::Receive(absl::Span<const uint8_t> bytes) {
  last_rx_ = std::chrono::steady_clock::now();
  bytes_in_ += bytes.size();
  auto self = shared_from_this();  // a stream's handler may Close() the session
  in_mux_++;
  absl::Status s = mux_.Receive(bytes);
  in_mux_--;
  if (!s.ok() && up_) Close(absl::StrCat("protocol error: ", s.message()));
}

void Session::Flush() {
  // Called again from inside the Mux (a stream's handler sending): the outer call writes.
  if (!up_ || writing_ || in_mux_ > 0) return;
  write_buf_.clear();
  in_mux_++;
  mux_.TakeOutput(&write_buf_, kWriteChunk);
  in_mux_--;
  if (write_buf_.empty()) {
    if (!mux_.Alive()) Close("session ended");
    return;
  }
  writing_ = true;
  bytes_out_ += write_buf_.size();
  asio::async_write(*stream_, asio::buffer(write_buf_),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                      self->writing_ = false;
                      if (!self->up_) return;
                      if (ec) return self->Close(absl::StrCat("write: ", ec.message()));
                      self->Flush();
                    });
}

void Session::ArmKeepalive() {
  keepalive_timer_.expires_after(keepalive_);
  keepalive_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || !self->up_) return;
    if (std::chrono::steady_clock::now() - self->last_rx_ > 3 * self->keepalive_) {
      return self->Close("peer silent past three keepalive intervals");
    }
    self->mux_.Ping();
    self->Flush();
    self->ArmKeepalive();
  });
}

Session::Stream* Session::Find(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

int32_t Session::Open(const tunnel::StreamRequest& request, Stream* stream) {
  if (!up_) return -1;
  int32_t id = mux_.OpenStream(request);
  if (id < 0) return -1;
  streams_[id] = stream;
  Flush();
  return id;
}

void Session::Attach(int32_t id, Stream* stream) { streams_[id] = stream; }

void Session::Detach(int32_t id) {
  if (streams_.erase(id) == 0) return;
  mux_.Reset(id, /*connect_error=*/false);
  Flush();
}

void Session::Respond(int32_t id, tunnel::TunnelError result) {
  mux_.Respond(id, result);
  Flush();
}
size_t Session::Send(int32_t id, absl::Span<const uint8_t> bytes) {
  size_t n = mux_.Send(id, bytes);
  Flush();
  return n;
}
size_t Session::SendRoom(int32_t id) const { return mux_.SendRoom(id); }
void Session::End(int32_t id) {
  mux_.End(id);
  Flush();
}
void Session::Reset(int32_t id, bool connect_error) {
  streams_.erase(id);
  mux_.Reset(id, connect_error);
  Flush();
}
void Session::Consume(int32_t id, size_t n) {
  mux_.Consume(id, n);
  Flush();
}

void Session::Close(const std::string& reason) {
  if (!up_) return;
  up_ = false;
  auto self = shared_from_this();
  keepalive_timer_.cancel();
  boost::system::error_code ignored;
  stream_->lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_->lowest_layer().close(ignored);
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->OnClosed(false, true);
  if (callbacks_.on_down) callbacks_.on_down(reason);
}

void Session::OnStreamRequest(int32_t id, const tunnel::StreamRequest& request) {
  if (callbacks_.on_request) {
    callbacks_.on_request(id, request);
  } else {
    mux_.Respond(id, tunnel::TunnelError::kProtocol);
  }
}

void Session::OnStreamResponse(int32_t id, tunnel::TunnelError result) {
  if (Stream* s = Find(id)) s->OnResponse(result);
}
void Session::OnData(int32_t id, absl::Span<const uint8_t> bytes) {
  if (Stream* s = Find(id)) {
    s->OnData(bytes);
  } else {
    mux_.Consume(id, bytes.size());  // a stream nobody holds: its bytes go nowhere
  }
}
void Session::OnEnd(int32_t id) {
  if (Stream* s = Find(id)) s->OnEnd();
}
void Session::OnClosed(int32_t id, bool clean, bool reset) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream* s = it->second;
  streams_.erase(it);
  s->OnClosed(clean, reset);
}
void Session::OnWritable(int32_t id) {
  if (Stream* s = Find(id)) s->OnWritable();
}

}  // namespace dpm::tunnel_service
