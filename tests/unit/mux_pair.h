// Two tunnel::Mux ends wired in memory for the stream layer tests: a Peer is a Mux with a
// handler that records every event per stream, answers requests, sends a byte pattern and
// optionally echoes; Pump moves bytes both ways until neither end has output. Raw frame
// helpers build and read HTTP/2 frames (RFC 9113 §4.1) and HPACK literals (RFC 7541 §6.2.2)
// for what a Mux would never send.
#ifndef DPM_TESTS_UNIT_MUX_PAIR_H_
#define DPM_TESTS_UNIT_MUX_PAIR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "tunnel/mux.h"

namespace dpm::tunnel::testing {

/// Byte `offset` of stream `id`'s test pattern (distinct per stream, period not a power of 2).
inline uint8_t PatternByte(int32_t id, uint64_t offset) {
  return static_cast<uint8_t>((offset * 131 + static_cast<uint64_t>(id) * 7 + (offset / 251)) & 0xff);
}

/// What one end saw of one stream.
struct StreamLog {
  std::optional<StreamRequest> request;
  std::optional<TunnelError> response;
  uint64_t received = 0;    // bytes delivered by OnData
  bool pattern_ok = true;   // every delivered byte matched PatternByte(pattern_id, offset)
  std::string bytes;        // delivered bytes, when Peer::keep_bytes
  int ends = 0;             // OnEnd calls
  int closes = 0;           // OnClosed calls
  bool clean = false, reset = false;
  int late_events = 0;      // events after OnClosed (must stay 0)
  uint64_t to_send = 0;     // pattern bytes still to Send
  uint64_t sent = 0;        // pattern bytes Send took
  bool end_after_send = false;
  std::string echo;         // echo mode: bytes received and not yet sent back
  bool echo_end = false;    // echo mode: End once `echo` drains
};

class Peer : public Mux::Handler {
 public:
  explicit Peer(Mux::Side side, const Mux::Options& options = {}) : mux(side, *this, options) {}

  Mux mux;
  std::map<int32_t, StreamLog> log;
  std::vector<int32_t> requests;                       // ids in OnStreamRequest order
  std::function<TunnelError(const StreamRequest&)> answer = [](const StreamRequest&) {
    return TunnelError::kNone;
  };
  bool answer_now = true;             // Respond inside OnStreamRequest
  bool consume = true;                // Consume everything delivered (unless echo)
  std::map<int32_t, bool> stalled;    // streams whose bytes are never consumed
  bool echo = false;                  // send every byte back, Consume once it is taken
  bool keep_bytes = false;
  int32_t pattern_of_peer = 0;        // 0: the pattern of the stream's own id
  std::function<void(int32_t, absl::Span<const uint8_t>)> on_data;  // extra re-entrant action

  /// Queues `n` bytes of the pattern on `id` (and End after them when `end`).
  void SendPattern(int32_t id, uint64_t n, bool end) {
    StreamLog& s = log[id];
    s.to_send += n;
    s.end_after_send = end;
    Feed(id);
  }

  void OnStreamRequest(int32_t id, const StreamRequest& request) override {
    StreamLog& s = Note(id);
    s.request = request;
    requests.push_back(id);
    if (answer_now) mux.Respond(id, answer(request));
  }
  void OnStreamResponse(int32_t id, TunnelError result) override {
    Note(id).response = result;
    if (result == TunnelError::kNone) Feed(id);
  }
  void OnData(int32_t id, absl::Span<const uint8_t> bytes) override {
    StreamLog& s = Note(id);
    const int32_t pid = pattern_of_peer != 0 ? pattern_of_peer : id;
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] != PatternByte(pid, s.received + i)) s.pattern_ok = false;
    }
    s.received += bytes.size();
    if (keep_bytes) s.bytes.append(bytes.begin(), bytes.end());
    if (echo) {
      s.echo.append(bytes.begin(), bytes.end());
      Flush(id);
    } else if (consume && !stalled[id]) {
      mux.Consume(id, bytes.size());
    }
    if (on_data) on_data(id, bytes);
  }
  void OnEnd(int32_t id) override {
    StreamLog& s = Note(id);
    ++s.ends;
    if (echo) {
      s.echo_end = true;
      Flush(id);
    }
  }
  void OnClosed(int32_t id, bool clean, bool reset) override {
    StreamLog& s = Note(id);
    ++s.closes;
    s.clean = clean;
    s.reset = reset;
  }
  void OnWritable(int32_t id) override {
    Note(id);
    if (echo) Flush(id);
    Feed(id);
  }

 private:
  StreamLog& Note(int32_t id) {
    StreamLog& s = log[id];
    if (s.closes > 0) ++s.late_events;
    return s;
  }
  void Feed(int32_t id) {
    StreamLog& s = log[id];
    uint8_t chunk[16384];
    while (s.to_send > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, s.to_send));
      for (size_t i = 0; i < n; ++i) chunk[i] = PatternByte(id, s.sent + i);
      const size_t took = mux.Send(id, absl::MakeConstSpan(chunk, n));
      s.sent += took;
      s.to_send -= took;
      if (took < n) return;
    }
    if (s.end_after_send) {
      s.end_after_send = false;
      mux.End(id);
    }
  }
  void Flush(int32_t id) {
    StreamLog& s = log[id];
    const size_t took = mux.Send(id, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.echo.data()), s.echo.size()));
    s.echo.erase(0, took);
    mux.Consume(id, took);
    if (s.echo.empty() && s.echo_end) {
      s.echo_end = false;
      mux.End(id);
    }
  }
};

/// Moves bytes between `a` and `b` until neither has output; every Receive must succeed.
/// Returns the number of bytes moved.
inline uint64_t Pump(Peer& a, Peer& b) {
  uint64_t moved = 0;
  std::vector<uint8_t> buf;
  for (int round = 0; round < 1000000; ++round) {
    bool any = false;
    for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      buf.clear();
      from->mux.TakeOutput(&buf);
      if (buf.empty()) continue;
      any = true;
      moved += buf.size();
      const absl::Status st = to->mux.Receive(buf);
      EXPECT_TRUE(st.ok()) << st;
      if (!st.ok()) return moved;
    }
    if (!any) return moved;
  }
  ADD_FAILURE() << "pump did not settle";
  return moved;
}

// --- raw frames ---

inline constexpr char kClientMagic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 §3.4

/// One frame: 24-bit length, type, flags, 31-bit stream id, payload (RFC 9113 §4.1).
inline std::vector<uint8_t> Frame(uint8_t type, uint8_t flags, int32_t stream, const std::vector<uint8_t>& payload) {
  const size_t n = payload.size();
  std::vector<uint8_t> f = {uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n), type, flags,
                            uint8_t(stream >> 24), uint8_t(stream >> 16), uint8_t(stream >> 8), uint8_t(stream)};
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

/// HPACK integer with an N-bit prefix (RFC 7541 §5.1), `first` holding the prefix's high bits.
inline void HpackInt(std::vector<uint8_t>* out, uint8_t first, int prefix_bits, size_t value) {
  const size_t max = (1u << prefix_bits) - 1;
  if (value < max) {
    out->push_back(static_cast<uint8_t>(first | value));
    return;
  }
  out->push_back(static_cast<uint8_t>(first | max));
  value -= max;
  while (value >= 128) {
    out->push_back(static_cast<uint8_t>(0x80 | (value & 0x7f)));
    value >>= 7;
  }
  out->push_back(static_cast<uint8_t>(value));
}

/// A header block of literals without indexing, new names (RFC 7541 §6.2.2).
inline std::vector<uint8_t> HeaderBlock(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<uint8_t> out;
  for (const auto& [name, value] : fields) {
    out.push_back(0x00);
    HpackInt(&out, 0, 7, name.size());
    out.insert(out.end(), name.begin(), name.end());
    HpackInt(&out, 0, 7, value.size());
    out.insert(out.end(), value.begin(), value.end());
  }
  return out;
}

/// A client's first bytes: the magic and an empty SETTINGS.
inline std::vector<uint8_t> ClientPreface() {
  std::vector<uint8_t> out(kClientMagic, kClientMagic + sizeof kClientMagic - 1);
  const std::vector<uint8_t> settings = Frame(4, 0, 0, {});
  out.insert(out.end(), settings.begin(), settings.end());
  return out;
}

struct RawFrame {
  uint8_t type = 0, flags = 0;
  int32_t stream = 0;
  std::vector<uint8_t> payload;
};

/// The frames of `bytes` (after the client magic when `skip_magic`); a cut frame ends the list.
inline std::vector<RawFrame> Frames(absl::Span<const uint8_t> bytes, bool skip_magic = false) {
  std::vector<RawFrame> out;
  size_t at = skip_magic ? sizeof kClientMagic - 1 : 0;
  while (at + 9 <= bytes.size()) {
    const size_t n = (size_t{bytes[at]} << 16) | (size_t{bytes[at + 1]} << 8) | bytes[at + 2];
    if (at + 9 + n > bytes.size()) break;
    RawFrame f;
    f.type = bytes[at + 3];
    f.flags = bytes[at + 4];
    f.stream = static_cast<int32_t>(((uint32_t{bytes[at + 5]} & 0x7f) << 24) | (uint32_t{bytes[at + 6]} << 16) |
                                    (uint32_t{bytes[at + 7]} << 8) | bytes[at + 8]);
    f.payload.assign(bytes.begin() + at + 9, bytes.begin() + at + 9 + n);
    out.push_back(std::move(f));
    at += 9 + n;
  }
  return out;
}

/// The error code of the RST_STREAM for `stream` in `bytes`, if there is one.
inline std::optional<uint32_t> RstCode(absl::Span<const uint8_t> bytes, int32_t stream) {
  for (const RawFrame& f : Frames(bytes)) {
    if (f.type == 3 && f.stream == stream && f.payload.size() == 4) {
      return (uint32_t{f.payload[0]} << 24) | (uint32_t{f.payload[1]} << 16) | (uint32_t{f.payload[2]} << 8) |
             f.payload[3];
    }
  }
  return std::nullopt;
}

}  // namespace dpm::tunnel::testing

#endif  // DPM_TESTS_UNIT_MUX_PAIR_H_
