// The stream layer (docs/tunnel.md "Streams"): many tunneled TCP connections over one TLS
// connection as HTTP/2 streams (RFC 9113) through libnghttp2. Each tunneled connection is one
// CONNECT stream (RFC 9113 §8.5): HEADERS `:method CONNECT`, `:authority <pseudo name>:<port>`
// and, from the tunnel server to a proxy, `dpm-service-key: <32 hex>`; the answer is
// `:status 200`, or an error status with `dpm-error: <errors.h token>`. DATA carries the bytes,
// END_STREAM is a half-close (shutdown(SHUT_WR)), RST_STREAM CONNECT_ERROR is a TCP reset and
// CANCEL an abort (§8.5).
//
// Flow control is per stream and manual: bytes a stream received are taken from the peer's
// window for that stream only until the receiver says they were delivered (Consume), so a
// stream whose reader stalls stops only its own sender. The connection window is returned on
// receipt (it is bounded by the sum of the stream windows anyway).
//
// Sans-I/O: bytes in (Receive), bytes out (TakeOutput), events to a Handler. No clock: the
// shell sends keepalive PINGs (Ping) and decides when a silent peer is dead.
#ifndef DPM_TUNNEL_MUX_H_
#define DPM_TUNNEL_MUX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "tunnel/errors.h"

namespace dpm::tunnel {

/// A new stream's request.
struct StreamRequest {
  std::string authority;    // "<pseudo name>:<port>"
  std::string service_key;  // hex, empty when the header is absent
};

class Mux {
 public:
  /// The HTTP/2 client opens streams: the redirector towards the server, the server towards a
  /// proxy. The other end is the HTTP/2 server.
  enum class Side { kClient, kServer };

  struct Options {
    uint32_t stream_window = 1024 * 1024;       // bytes each stream may have in flight
    uint32_t connection_window = 1u << 30;      // bytes the whole connection may have in flight
    uint32_t max_concurrent_streams = 16384;    // streams the peer may open at once
    size_t send_buffer = 1024 * 1024;           // bytes Send queues per stream at most
  };

  /// Stream events. Called from inside Receive and TakeOutput (OnWritable, and OnClosed once a
  /// stream's last frame left); the handler may call back into the Mux (Send, End, Reset,
  /// Consume, Respond, OpenStream) but must not destroy it.
  class Handler {
   public:
    virtual ~Handler() = default;
    /// Server side: the peer opened stream `id`; answer with Respond (now or later). Requests
    /// that are not CONNECT, lack `:authority`, or carry an `:authority` over 300 bytes or a
    /// `dpm-service-key` over 64 are reset (PROTOCOL_ERROR) without any event.
    virtual void OnStreamRequest(int32_t id, const StreamRequest& request) = 0;
    /// Client side: the answer to OpenStream — kNone (200) or the failure.
    virtual void OnStreamResponse(int32_t id, TunnelError result) = 0;
    /// Bytes of stream `id`, in order. Consume(id, n) once they are delivered.
    virtual void OnData(int32_t id, absl::Span<const uint8_t> bytes) = 0;
    /// The peer half-closed stream `id` (END_STREAM): no more OnData.
    virtual void OnEnd(int32_t id) = 0;
    /// Stream `id` is gone: the peer reset it (`reset`: true for CONNECT_ERROR, a TCP reset;
    /// false for another code), or it closed after both sides ended (`reset` false,
    /// `clean` true). Also after Reset (with the code Reset sent), after a failed answer, and
    /// for a client stream that never got an answer (refused, or cut by GOAWAY): then
    /// OnStreamResponse never comes. No more events for `id`.
    virtual void OnClosed(int32_t id, bool clean, bool reset) = 0;
    /// Room came back in stream `id`'s send buffer (after Send took less than it was given).
    virtual void OnWritable(int32_t id) = 0;
  };

  Mux(Side side, Handler& handler, const Options& options);
  ~Mux();
  Mux(const Mux&) = delete;
  Mux& operator=(const Mux&) = delete;

  /// Feeds bytes read from the peer. Errors (a protocol error, the connection must close):
  /// InvalidArgument with nghttp2's reason (RFC 9113 §5.4.1); TakeOutput then still holds the
  /// GOAWAY that tells the peer why, and every later Receive fails the same way. GOAWAY from the
  /// peer is not an error (Alive() turns false once its streams are done).
  absl::Status Receive(absl::Span<const uint8_t> bytes);
  /// Appends what must be sent to the peer now to `out` (at most about `max` bytes).
  void TakeOutput(std::vector<uint8_t>* out, size_t max = 256 * 1024);
  /// True when TakeOutput has bytes.
  bool WantsOutput() const;
  /// False once the session is over (GOAWAY both ways, or a fatal error).
  bool Alive() const;

  /// Client side: opens a CONNECT stream; its id, or -1 (no more stream ids, the session is
  /// going away, an empty `authority`, one over 300 bytes or a `service_key` over 64).
  int32_t OpenStream(const StreamRequest& request);
  /// Server side: answers stream `id`'s request: `:status 200`, or for a failure 503
  /// (kProxyDown, kLimit, kServerDown), 504 (kTimeout) or 502 (the rest) with `dpm-error`,
  /// END_STREAM and then RST_STREAM NO_ERROR (RFC 9113 §8.1), which ends the stream.
  void Respond(int32_t id, TunnelError result);
  /// Queues bytes on stream `id`; returns how many it took (at most the free room of its send
  /// buffer; 0 when full, then OnWritable follows). Unknown or ended streams take nothing.
  size_t Send(int32_t id, absl::Span<const uint8_t> bytes);
  /// Free room in stream `id`'s send buffer.
  size_t SendRoom(int32_t id) const;
  /// Half-closes stream `id` after its queued bytes (END_STREAM).
  void End(int32_t id);
  /// Resets stream `id`: CONNECT_ERROR when `connect_error` (the TCP side was reset), else
  /// CANCEL. No more events for `id` except OnClosed.
  void Reset(int32_t id, bool connect_error);
  /// The handler delivered `n` bytes of stream `id`: reopens that much of its window.
  void Consume(int32_t id, size_t n);
  /// Sends a PING (keepalive).
  void Ping();
  /// Starts a graceful end (GOAWAY): no new streams.
  void GoAway();

  /// Streams open now.
  size_t open_streams() const;
  /// Bytes queued in send buffers, all streams.
  size_t buffered() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_MUX_H_
