// libFuzzer target: the tunnel's HTTP/2 stream layer (src/tunnel/mux.h) as a server, on the
// bytes a client sends after its connection preface — what a service proxy reads from the
// tunnel server, and the tunnel server from a redirector. The handler answers, sends, consumes,
// ends and resets by stream id so that every path of the Mux runs; an event after OnClosed,
// or a stream count that disagrees with the events, aborts.
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "tunnel/mux.h"

namespace {

using dpm::tunnel::Mux;
using dpm::tunnel::StreamRequest;
using dpm::tunnel::TunnelError;

constexpr char kMagic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 §3.4

class Handler : public Mux::Handler {
 public:
  Mux* mux = nullptr;
  std::set<int32_t> open;  // announced and not closed

  void OnStreamRequest(int32_t id, const StreamRequest& request) override {
    Live(id, true);
    if (request.authority.empty() || request.authority.size() > 300 || request.service_key.size() > 64) std::abort();
    open.insert(id);
    switch (id % 7) {
      case 1: mux->Respond(id, TunnelError::kRefused); break;
      case 3: break;  // never answered
      case 5: mux->Reset(id, true); break;
      default: mux->Respond(id, TunnelError::kNone); Echo(id, "hello");
    }
  }
  void OnStreamResponse(int32_t, TunnelError) override { std::abort(); }  // a server gets none
  void OnData(int32_t id, absl::Span<const uint8_t> bytes) override {
    Live(id, false);
    if (id % 11 == 0) {
      mux->Reset(id, false);
      return;
    }
    if (id % 4 != 2) mux->Consume(id, bytes.size());  // 2 mod 4: a stalled reader
    Echo(id, std::string(bytes.begin(), bytes.end()));
  }
  void OnEnd(int32_t id) override {
    Live(id, false);
    mux->End(id);
  }
  void OnClosed(int32_t id, bool, bool) override {
    Live(id, false);
    open.erase(id);
  }
  void OnWritable(int32_t id) override {
    Live(id, false);
    Echo(id, "more");
  }

 private:
  void Live(int32_t id, bool is_new) {
    if (open.count(id) == (is_new ? 1u : 0u)) std::abort();  // an event after OnClosed
  }
  void Echo(int32_t id, const std::string& s) {
    mux->Send(id, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Handler handler;
  Mux::Options options;
  options.stream_window = 4096;  // small windows and buffers reach the flow-control paths
  options.send_buffer = 1024;
  options.max_concurrent_streams = 64;
  Mux mux(Mux::Side::kServer, handler, options);
  handler.mux = &mux;
  std::vector<uint8_t> in(kMagic, kMagic + sizeof kMagic - 1);
  in.insert(in.end(), data, data + size);
  // In two pieces, so that frames cut across calls are covered too.
  const size_t half = in.size() / 2 + (size % 13);
  const size_t cut = half < in.size() ? half : in.size();
  std::vector<uint8_t> out;
  if (mux.Receive(absl::MakeConstSpan(in.data(), cut)).ok()) {
    mux.TakeOutput(&out);
    if (mux.Receive(absl::MakeConstSpan(in.data() + cut, in.size() - cut)).ok()) {
      mux.Ping();
      if (size % 3 == 0) mux.GoAway();
    }
  }
  for (int i = 0; i < 8 && mux.WantsOutput(); ++i) mux.TakeOutput(&out, 64 * 1024);
  if (mux.open_streams() < handler.open.size()) std::abort();  // the Mux forgot a stream it announced
  return 0;
}
