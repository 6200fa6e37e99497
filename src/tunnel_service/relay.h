// The tunnel server's join of two streams (the tunneling patent, Fig. 7 step 715): a redirector's stream
// and the stream the server opened toward the service's proxy. Bytes received on one side are
// consumed (its window reopened) only when the other side's send buffer took them, so flow
// control holds end to end per tunneled connection; END_STREAM and resets cross over; the
// proxy's answer (connected, or why not) is the redirector's answer. Core thread only.
#ifndef DPM_TUNNEL_SERVICE_RELAY_H_
#define DPM_TUNNEL_SERVICE_RELAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tunnel/errors.h"
#include "tunnel_service/session.h"

namespace dpm::tunnel_service {

class Relay : public std::enable_shared_from_this<Relay> {
 public:
  /// How the relay ended: its result, bytes each way.
  struct Totals {
    tunnel::TunnelError result = tunnel::TunnelError::kNone;
    uint64_t to_service = 0, from_service = 0;
  };
  /// `done` runs once when both streams are gone.
  explicit Relay(std::function<void(const Totals&)> done);
  ~Relay();

  /// Joins redirector stream `client_id` of `client` to a new stream on `proxy` for `request`.
  /// False when the proxy session cannot open a stream (the caller answers kProxyDown).
  bool Start(std::shared_ptr<Session> client, int32_t client_id, std::shared_ptr<Session> proxy,
             const tunnel::StreamRequest& request);
  /// Resets both streams and ends.
  void Abort();

 private:
  struct Side : Session::Stream {
    Relay* relay = nullptr;
    Side* other = nullptr;
    std::shared_ptr<Session> session;
    int32_t id = -1;
    std::vector<uint8_t> pending;  // received here, not yet taken by the other side
    bool eof = false, ended_other = false, gone = false, is_client = false;
    void OnResponse(tunnel::TunnelError result) override;
    void OnData(absl::Span<const uint8_t> bytes) override;
    void OnEnd() override;
    void OnClosed(bool clean, bool reset) override;
    void OnWritable() override;
  };
  // Moves `from`'s pending bytes into `to`'s send buffer.
  void Move(Side& from, Side& to);
  void MaybeDone();

  Side client_, proxy_;
  std::function<void(const Totals&)> done_;
  Totals totals_;
  bool answered_ = false, finished_ = false;
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_RELAY_H_
