// One TLS connection of the tunnel protocol after its control exchange (tunnel/control.h): a
// Mux (tunnel/mux.h) driven by the connection's reads and writes, with keepalive PINGs, and
// the tunneled connections on it by stream id. Each role plugs in what a stream's end does
// (Session::Stream): the service proxy and the redirector bridge a local socket
// (stream_bridge.h), the tunnel server joins two sessions' streams (relay.h).
//
// Writes: the Mux's output is taken only when the previous write finished, so a slow peer
// holds at most one write's worth here and the rest stays in the streams' bounded buffers.
// Core thread only.
#ifndef DPM_TUNNEL_SERVICE_SESSION_H_
#define DPM_TUNNEL_SERVICE_SESSION_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tunnel/control.h"
#include "tunnel/mux.h"
#include "tunnel_service/tls.h"

namespace dpm::tunnel_service {

/// Reads one control message (the first bytes after the TLS handshake). `done` gets the message,
/// or the reason it failed (a parse error, end of stream, a read error), and the bytes read past
/// its end (the first HTTP/2 bytes). The caller bounds the time with its own deadline.
void ReadControl(TlsStream& stream,
                 std::function<void(absl::StatusOr<tunnel::ControlMessage>, std::vector<uint8_t> rest)> done);
/// Writes one control message; `done` gets the write's error (empty on success).
void WriteControl(TlsStream& stream, const tunnel::ControlMessage& message,
                  std::function<void(const boost::system::error_code&)> done);

class Session : public std::enable_shared_from_this<Session>, private tunnel::Mux::Handler {
 public:
  /// One tunneled connection's end on this session.
  class Stream {
   public:
    virtual ~Stream() = default;
    /// Client side: the answer to Open (kNone when the far end connected).
    virtual void OnResponse(tunnel::TunnelError result) {}
    /// Bytes from the peer; Consume() them once delivered.
    virtual void OnData(absl::Span<const uint8_t> bytes) = 0;
    /// The peer half-closed.
    virtual void OnEnd() = 0;
    /// The stream is gone: `reset` for a TCP reset from the far end, or the session ended
    /// (`clean` false, `reset` true). The session forgets the Stream before calling this.
    virtual void OnClosed(bool clean, bool reset) = 0;
    /// Room in the stream's send buffer again.
    virtual void OnWritable() = 0;
  };

  struct Callbacks {
    /// Server side of the Mux: a new stream asks to be tunneled (Attach or Respond it).
    std::function<void(int32_t id, const tunnel::StreamRequest& request)> on_request;
    /// The session ended (peer gone, silent past the keepalive, protocol error, Close()).
    std::function<void(const std::string& reason)> on_down;
  };

  /// `keepalive`: PING interval; a peer that sends nothing for three of them is dead.
  Session(boost::asio::io_context& io, std::unique_ptr<TlsStream> stream, tunnel::Mux::Side side,
          const tunnel::Mux::Options& options, std::chrono::seconds keepalive, Callbacks callbacks);
  ~Session() override;

  /// Starts reading; `first` are HTTP/2 bytes read with the control message.
  void Start(std::vector<uint8_t> first);
  /// Client side: opens a stream for `request` whose events go to `stream`; its id, or -1.
  int32_t Open(const tunnel::StreamRequest& request, Stream* stream);
  /// Server side: events of stream `id` (from on_request) go to `stream` from now on.
  void Attach(int32_t id, Stream* stream);
  /// Events of `id` go nowhere any more (its owner is going away); the stream is reset.
  void Detach(int32_t id);
  /// Events of `id` go nowhere any more; the stream is left as it is (answered with an error,
  /// it ends by itself).
  void Forget(int32_t id) { streams_.erase(id); }

  // Stream operations (tunnel/mux.h), each followed by a write when there is output.
  void Respond(int32_t id, tunnel::TunnelError result);
  size_t Send(int32_t id, absl::Span<const uint8_t> bytes);
  size_t SendRoom(int32_t id) const;
  void End(int32_t id);
  void Reset(int32_t id, bool connect_error);
  void Consume(int32_t id, size_t n);

  /// Ends the session: every stream gets OnClosed(false, true), then on_down(reason).
  void Close(const std::string& reason);
  bool up() const { return up_; }
  size_t streams() const { return streams_.size(); }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  /// The peer's address, "198.51.100.7:40112".
  const std::string& peer() const { return peer_; }

 private:
  // tunnel::Mux::Handler
  void OnStreamRequest(int32_t id, const tunnel::StreamRequest& request) override;
  void OnStreamResponse(int32_t id, tunnel::TunnelError result) override;
  void OnData(int32_t id, absl::Span<const uint8_t> bytes) override;
  void OnEnd(int32_t id) override;
  void OnClosed(int32_t id, bool clean, bool reset) override;
  void OnWritable(int32_t id) override;

  void Read();
  void Receive(absl::Span<const uint8_t> bytes);
  void Flush();
  void ArmKeepalive();
  Stream* Find(int32_t id) const;

  boost::asio::io_context& io_;
  std::unique_ptr<TlsStream> stream_;
  tunnel::Mux mux_;
  std::chrono::seconds keepalive_;
  Callbacks callbacks_;
  boost::asio::steady_timer keepalive_timer_;
  absl::flat_hash_map<int32_t, Stream*> streams_;
  std::vector<uint8_t> read_buf_, write_buf_;
  bool writing_ = false, up_ = true;
  int in_mux_ = 0;  // inside Mux::Receive or TakeOutput: Flush waits for the outer call
  std::chrono::steady_clock::time_point last_rx_;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::string peer_;
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_SESSION_H_
