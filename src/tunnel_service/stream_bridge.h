// Joins a local stream socket — the service proxy's TCP connection to the real server, or the
// redirector's end of a hooked program's socket pair — to one stream of a Session, both ways:
// bytes read from the socket are sent while the stream's send buffer has room (so a stalled
// far reader stops only this socket's reads), bytes from the stream are written to the socket
// and consumed only once written (so a stalled local reader closes only this stream's window).
// End of stream either way is a half-close (shutdown(SHUT_WR) / END_STREAM); a reset either
// way is a reset (RST with SO_LINGER 0 / RST_STREAM CONNECT_ERROR), as RFC 9113 §8.5 asks.
// Core thread only.
#ifndef DPM_TUNNEL_SERVICE_STREAM_BRIDGE_H_
#define DPM_TUNNEL_SERVICE_STREAM_BRIDGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "tunnel_service/session.h"

namespace dpm::tunnel_service {

/// How a bridged connection ended, for counters.
struct BridgeTotals {
  uint64_t to_stream = 0, from_stream = 0;  // bytes
  bool reset = false;
};

class StreamBridge : public std::enable_shared_from_this<StreamBridge>, public Session::Stream {
 public:
  /// Takes `fd` (a connected stream socket, made non-blocking here). `done` runs once, when
  /// both directions have ended or either side reset; the bridge then holds nothing.
  StreamBridge(boost::asio::io_context& io, int fd, std::function<void(const BridgeTotals&)> done);
  ~StreamBridge() override;

  /// Joins stream `id` of `session` (already attached or opened with this bridge as its
  /// Stream) and starts moving bytes. Bytes the socket already holds go first.
  void Join(std::shared_ptr<Session> session, int32_t id);
  /// Ends the bridge now, resetting both sides.
  void Abort();
  int fd() const;

  // Session::Stream
  void OnData(absl::Span<const uint8_t> bytes) override;
  void OnEnd() override;
  void OnClosed(bool clean, bool reset) override;
  void OnWritable() override;

 private:
  void PumpIn();       // socket → stream
  void PumpOut();      // stream → socket
  void PostPumpOut();  // PumpOut after the current batch of events
  void WaitReadable();
  void WaitWritable();
  void MaybeDone();
  void Finish(bool reset_socket);

  boost::asio::posix::stream_descriptor sd_;
  std::shared_ptr<Session> session_;
  int32_t id_ = -1;
  std::function<void(const BridgeTotals&)> done_;
  std::vector<uint8_t> in_;   // from the socket, not yet taken by the stream
  std::vector<uint8_t> out_;  // from the stream, not yet written to the socket
  size_t out_off_ = 0;
  bool read_waiting_ = false, write_waiting_ = false, out_posted_ = false;
  bool socket_eof_ = false;    // the socket's reader side ended: END_STREAM sent
  bool stream_eof_ = false;    // END_STREAM received
  bool shut_written_ = false;  // shutdown(SHUT_WR) done after stream_eof_ and out_ drained
  bool stream_gone_ = false, finished_ = false;
  BridgeTotals totals_;
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_STREAM_BRIDGE_H_
