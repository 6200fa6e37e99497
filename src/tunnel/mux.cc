// The stream layer on libnghttp2: one CONNECT stream (RFC 9113 §8.5) per tunneled connection,
// manual flow control per stream (§5.2), the send buffers the data providers read from.
#include "tunnel/mux.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dpm::tunnel {
namespace {

constexpr size_t kMaxAuthority = 300;   // "<pseudo name>:<port>"; a DNS name is at most 253
constexpr size_t kMaxServiceKey = 64;   // 32 hex digits today; room for a longer key
constexpr size_t kMaxErrorToken = 32;   // longer than any errors.h token
constexpr char kServiceKeyHeader[] = "dpm-service-key";
constexpr char kErrorHeader[] = "dpm-error";
// Incoming RST_STREAM rate limit (server side): every reset of a tunneled TCP connection is one
// RST_STREAM, so nghttp2's default (1000, then 33 per second) would end a busy but honest
// connection; the peer is authenticated (control HELLO) before the mux starts.
constexpr uint64_t kResetBurst = 1u << 20;
constexpr uint64_t kResetRate = 1u << 16;

// The :status of a failed CONNECT: 503 when a hop of ours is missing or full, 504 for a
// timeout, 502 (bad gateway) when the real server or its network failed.
int StatusOf(TunnelError error) {
  switch (error) {
    case TunnelError::kProxyDown:
    case TunnelError::kLimit:
    case TunnelError::kServerDown:
      return 503;
    case TunnelError::kTimeout:
      return 504;
    default:
      return 502;
  }
}

nghttp2_nv Header(absl::string_view name, absl::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

absl::string_view View(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// Header fields of a stream's first HEADERS, kept only until that block ends.
struct HeaderBlock {
  bool connect = false;  // :method CONNECT
  bool bad = false;      // a field over its length limit
  int status = 0;        // :status (client side)
  std::string authority;
  std::string service_key;
  std::string error_token;
};

struct Stream {
  std::unique_ptr<HeaderBlock> headers;  // while the first header block arrives
  std::vector<uint8_t> queued;           // send buffer, freed when drained; bytes from `head` on are unsent
  size_t head = 0;
  bool announced = false;      // the handler knows the stream (client: always)
  bool can_send = false;       // client: 200 received; server: 200 submitted
  bool end_queued = false;     // End: END_STREAM after the queued bytes
  bool done = false;           // Reset, a failed response, or EOF sent: Send takes nothing more
  bool silent = false;         // Reset or failed: no event but OnClosed
  bool want_writable = false;  // Send took less than given
  bool deferred = false;       // the data provider returned NGHTTP2_ERR_DEFERRED
  bool reset_after_answer = false;  // server: RST_STREAM NO_ERROR once the failed answer left

  size_t pending() const { return queued.size() - head; }
};

}  // namespace

struct Mux::Impl {
  Impl(Side side, Handler& handler, const Options& options);
  ~Impl() { nghttp2_session_del(session); }

  Stream* Find(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }
  // Lets the data provider run again after a Send, End or response.
  void Resume(int32_t id, Stream& s) {
    if (s.can_send && s.deferred && (s.pending() > 0 || s.end_queued)) {
      s.deferred = false;
      nghttp2_session_resume_data(session, id);
    }
  }
  void Drop(Stream& s) {
    buffered -= s.pending();
    std::vector<uint8_t>().swap(s.queued);
    s.head = 0;
  }
  void Fail(const char* what, int rv) {
    if (error.empty()) error = absl::StrCat(what, ": ", nghttp2_strerror(rv));
  }

  // nghttp2 callbacks.
  static ssize_t Read(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                      nghttp2_data_source*, void* user);
  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int OnClose(nghttp2_session*, int32_t id, uint32_t code, void* user);
  static int Sent(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int NotSent(nghttp2_session*, const nghttp2_frame* frame, int code, void* user);
  static int OnError(nghttp2_session*, int code, const char* msg, size_t len, void* user);

  // Serializes into `out` until nothing is left, `max` bytes are there, or (with
  // `until_data`) a DATA frame went out; delivers the events raised meanwhile.
  void Serialize(std::vector<uint8_t>* out, size_t max, bool until_data);
  void EndOfHeaders(int32_t id, Stream& s, bool end_stream);
  void Closed(int32_t id, uint32_t code);

  const Side side;
  Handler& handler;
  const Options options;
  nghttp2_session* session = nullptr;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams;
  size_t buffered = 0;
  bool going_away = false;  // GOAWAY sent or received: no new streams
  bool sent_data = false;   // the last mem_send serialized a DATA frame
  std::vector<uint8_t> staged;  // serialized by Receive, handed out first by TakeOutput
  bool sending = false;     // inside nghttp2_session_mem_send: events wait in `later`
  std::string error;        // the connection error nghttp2 reported, for Receive
  // Events raised inside mem_send, delivered after it returns (OnWritable, OnClosed).
  struct Later {
    int32_t id;
    bool closed;
    bool clean;
    bool reset;
  };
  std::vector<Later> later;
};

Mux::Impl::Impl(Side side_, Handler& handler_, const Options& options_)
    : side(side_), handler(handler_), options(options_) {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, &OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Sent);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, &NotSent);
  nghttp2_session_callbacks_set_error_callback2(cb, &OnError);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // stream windows reopen on Consume only
  nghttp2_option_set_no_closed_streams(opt, 1);      // a closed stream is freed at once
  nghttp2_option_set_stream_reset_rate_limit(opt, kResetBurst, kResetRate);
  if (side == Side::kClient) {
    nghttp2_session_client_new2(&session, cb, this, opt);
  } else {
    nghttp2_session_server_new2(&session, cb, this, opt);
  }
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  // RFC 9113 §6.5.2; no server push; RFC 9218 §2.1 drops the RFC 7540 priority tree.
  std::vector<nghttp2_settings_entry> settings = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.stream_window},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  if (side == Side::kClient) settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  int rv = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  if (rv != 0) Fail("SETTINGS", rv);
  // The connection window (§6.9.2 starts it at 65535) is raised with a WINDOW_UPDATE.
  rv = nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                             static_cast<int32_t>(std::min<uint32_t>(options.connection_window, (1u << 31) - 1)));
  if (rv != 0) Fail("WINDOW_UPDATE", rv);
}

ssize_t Mux::Impl::Read(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                        nghttp2_data_source*, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  Stream* s = m.Find(id);
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  // The client sends no DATA before the 200 (RFC 9113 §8.5); a reset stream sends none.
  if (!s->can_send || (s->silent && !s->end_queued)) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  const size_t n = std::min(length, s->pending());
  if (n > 0) {
    std::memcpy(buf, s->queued.data() + s->head, n);
    s->head += n;
    m.buffered -= n;
  }
  if (s->pending() == 0) {
    s->head = 0;
    std::vector<uint8_t>().swap(s->queued);  // an idle stream holds no buffer
    if (s->end_queued) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      s->done = true;
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  if (s->want_writable && !s->silent) {
    s->want_writable = false;
    m.later.push_back({id, false, false, false});
  }
  return static_cast<ssize_t>(n);
}

int Mux::Impl::BeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  const int32_t id = frame->hd.stream_id;
  // Only streams nghttp2 opened: their close callback frees the record.
  if (frame->hd.type != NGHTTP2_HEADERS || nghttp2_session_find_stream(session, id) == nullptr) return 0;
  if (m.side == Side::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto s = std::make_unique<Stream>();
    s->headers = std::make_unique<HeaderBlock>();
    m.streams[id] = std::move(s);
  } else if (Stream* s = m.Find(id); s != nullptr && m.side == Side::kClient && !s->can_send && !s->silent) {
    s->headers = std::make_unique<HeaderBlock>();  // a response (or a 1xx before it)
  }
  return 0;
}

int Mux::Impl::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                        const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Stream* s = m.Find(frame->hd.stream_id);
  if (s == nullptr || s->headers == nullptr) return 0;  // trailers, or a stream we dropped
  HeaderBlock& h = *s->headers;
  const absl::string_view n = View(name, namelen), v = View(value, valuelen);
  if (m.side == Side::kServer) {
    if (n == ":method") {
      h.connect = v == "CONNECT";
    } else if (n == ":authority") {
      if (v.size() > kMaxAuthority) h.bad = true;
      else h.authority = std::string(v);
    } else if (n == kServiceKeyHeader) {
      if (v.size() > kMaxServiceKey) h.bad = true;
      else h.service_key = std::string(v);
    }
  } else if (n == ":status") {
    if (!absl::SimpleAtoi(v, &h.status)) h.status = 0;
  } else if (n == kErrorHeader) {
    h.error_token = std::string(v.substr(0, kMaxErrorToken + 1));
  }
  return 0;
}

void Mux::Impl::EndOfHeaders(int32_t id, Stream& s, bool end_stream) {
  std::unique_ptr<HeaderBlock> h = std::move(s.headers);
  if (side == Side::kServer) {
    if (!h->connect || h->authority.empty() || h->bad) {  // RFC 9113 §8.5; our length limits
      s.done = s.silent = true;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    s.announced = true;
    StreamRequest request{std::move(h->authority), std::move(h->service_key)};
    h.reset();
    handler.OnStreamRequest(id, request);
  } else {
    if (h->status >= 100 && h->status < 200) return;  // interim; the final answer follows
    TunnelError result = TunnelError::kNone;
    if (h->status != 200) {
      result = ErrorFromToken(h->error_token).value_or(TunnelError::kProtocol);
      if (result == TunnelError::kNone) result = TunnelError::kProtocol;
    }
    if (result == TunnelError::kNone) {
      s.can_send = true;
      Resume(id, s);
    } else {
      // Our server follows a failed answer with RST_STREAM NO_ERROR (§8.1); for any other peer
      // the client ends its side too, or cancels an answer that left the stream open.
      s.silent = true;
      Drop(s);
      if (end_stream) {
        s.can_send = s.end_queued = true;
        Resume(id, s);
      } else {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      }
      s.done = true;
    }
    handler.OnStreamResponse(id, result);
  }
  // The handler may have reset the stream (it stays in the map until closed).
  if (end_stream && !s.silent) handler.OnEnd(id);
}

int Mux::Impl::OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  const int32_t id = frame->hd.stream_id;
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
      m.going_away = true;
      return 0;
    case NGHTTP2_HEADERS: {
      Stream* s = m.Find(id);
      if (s == nullptr) return 0;
      if (s->headers != nullptr) {
        m.EndOfHeaders(id, *s, end_stream);
      } else if (end_stream && s->announced && !s->silent) {
        m.handler.OnEnd(id);  // trailers ending the stream
      }
      return 0;
    }
    case NGHTTP2_DATA: {
      Stream* s = m.Find(id);
      if (s != nullptr && end_stream && s->announced && !s->silent) m.handler.OnEnd(id);
      return 0;
    }
    default:
      return 0;
  }
}

int Mux::Impl::OnChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len,
                       void* user) {
  Impl& m = *static_cast<Impl*>(user);
  // The connection window reopens on receipt: each stream's own window bounds what it holds.
  nghttp2_session_consume_connection(session, len);
  Stream* s = m.Find(id);
  if (s == nullptr || !s->announced || s->silent) {
    nghttp2_session_consume_stream(session, id, len);  // nobody will Consume these bytes
    return 0;
  }
  m.handler.OnData(id, absl::MakeConstSpan(data, len));
  return 0;
}

void Mux::Impl::Closed(int32_t id, uint32_t code) {
  auto it = streams.find(id);
  if (it == streams.end()) return;
  const bool announced = it->second->announced;
  buffered -= it->second->pending();
  streams.erase(it);
  if (!announced) return;
  const bool clean = code == NGHTTP2_NO_ERROR, reset = code == NGHTTP2_CONNECT_ERROR;
  if (sending) {
    later.push_back({id, true, clean, reset});
  } else {
    handler.OnClosed(id, clean, reset);
  }
}

int Mux::Impl::OnClose(nghttp2_session*, int32_t id, uint32_t code, void* user) {
  static_cast<Impl*>(user)->Closed(id, code);
  return 0;
}

// A failed answer is complete: the client need not end its side (RFC 9113 §8.1). The
// RST_STREAM waits for the HEADERS to leave, as nghttp2 drops frames queued behind a reset.
int Mux::Impl::Sent(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  if (frame->hd.type == NGHTTP2_DATA) m.sent_data = true;
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && m.error.empty()) {
    // nghttp2 ended the session over a connection error (RFC 9113 §5.4.1); its reason is the
    // GOAWAY's debug data.
    m.error = absl::StrCat("HTTP/2 ", nghttp2_http2_strerror(frame->goaway.error_code), ": ",
                           View(frame->goaway.opaque_data, frame->goaway.opaque_data_len));
  }
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Stream* s = m.Find(frame->hd.stream_id);
  if (s != nullptr && s->reset_after_answer) {
    s->reset_after_answer = false;
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

// A request HEADERS that never left (GOAWAY, Reset before it was sent): its stream never
// opened in nghttp2, so no close callback follows.
int Mux::Impl::NotSent(nghttp2_session* session, const nghttp2_frame* frame, int, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
      nghttp2_session_find_stream(session, frame->hd.stream_id) == nullptr) {
    m.Closed(frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
  }
  return 0;
}

int Mux::Impl::OnError(nghttp2_session*, int, const char* msg, size_t len, void* user) {
  Impl& m = *static_cast<Impl*>(user);
  if (m.error.empty()) m.error = std::string(msg, len);
  return 0;
}

Mux::Mux(Side side, Handler& handler, const Options& options)
    : impl_(std::make_unique<Impl>(side, handler, options)) {}

Mux::~Mux() = default;

absl::Status Mux::Receive(absl::Span<const uint8_t> bytes) {
  Impl& m = *impl_;
  if (!m.error.empty()) return absl::InvalidArgumentError(m.error);
  const ssize_t rv = nghttp2_session_mem_recv(m.session, bytes.data(), bytes.size());
  if (rv < 0) {
    m.Fail("HTTP/2", static_cast<int>(rv));
    return absl::InvalidArgumentError(m.error);
  }
  // nghttp2 answers most connection errors with a GOAWAY of its own and mem_recv still
  // returns the length; the control frames it queued (which leave before any DATA) show it.
  m.Serialize(&m.staged, SIZE_MAX, true);
  if (!m.error.empty()) return absl::InvalidArgumentError(m.error);
  return absl::OkStatus();
}

void Mux::Impl::Serialize(std::vector<uint8_t>* out, size_t max, bool until_data) {
  const size_t start = out->size();
  sent_data = false;
  while (out->size() - start < max && !(until_data && sent_data)) {
    const uint8_t* data = nullptr;
    sending = true;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    sending = false;
    if (n < 0) {
      Fail("HTTP/2 send", static_cast<int>(n));
      break;
    }
    if (n > 0) out->insert(out->end(), data, data + n);
    // Events raised while nghttp2 was serializing; the handler may Send more, so loop again.
    std::vector<Later> events;
    events.swap(later);
    for (const Later& e : events) {
      if (e.closed) {
        handler.OnClosed(e.id, e.clean, e.reset);
      } else if (Find(e.id) != nullptr) {
        handler.OnWritable(e.id);
      }
    }
    if (n == 0 && events.empty()) break;
  }
}

void Mux::TakeOutput(std::vector<uint8_t>* out, size_t max) {
  Impl& m = *impl_;
  const size_t start = out->size();
  out->insert(out->end(), m.staged.begin(), m.staged.end());
  m.staged.clear();
  if (out->size() - start < max) m.Serialize(out, max - (out->size() - start), false);
}

bool Mux::WantsOutput() const {
  return !impl_->staged.empty() || nghttp2_session_want_write(impl_->session) != 0;
}

bool Mux::Alive() const {
  return impl_->error.empty() && (!impl_->staged.empty() || nghttp2_session_want_read(impl_->session) != 0 ||
                                  nghttp2_session_want_write(impl_->session) != 0);
}

int32_t Mux::OpenStream(const StreamRequest& request) {
  Impl& m = *impl_;
  if (m.side != Side::kClient || m.going_away || !m.error.empty()) return -1;
  if (request.authority.empty() || request.authority.size() > kMaxAuthority ||
      request.service_key.size() > kMaxServiceKey) {
    return -1;
  }
  std::vector<nghttp2_nv> nva = {Header(":method", "CONNECT"), Header(":authority", request.authority)};
  if (!request.service_key.empty()) nva.push_back(Header(kServiceKeyHeader, request.service_key));
  nghttp2_data_provider provider{};
  provider.read_callback = &Impl::Read;
  const int32_t id = nghttp2_submit_request(m.session, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) return -1;
  auto s = std::make_unique<Stream>();
  s->announced = true;
  m.streams[id] = std::move(s);
  return id;
}

void Mux::Respond(int32_t id, TunnelError result) {
  Impl& m = *impl_;
  Stream* s = m.Find(id);
  if (m.side != Side::kServer || s == nullptr || !s->announced || s->can_send || s->done) return;
  if (result == TunnelError::kNone) {
    const nghttp2_nv nva[] = {Header(":status", "200")};
    nghttp2_data_provider provider{};
    provider.read_callback = &Impl::Read;
    if (nghttp2_submit_response(m.session, id, nva, 1, &provider) != 0) return;
    s->can_send = true;
    return;
  }
  const std::string status = absl::StrCat(StatusOf(result));
  const nghttp2_nv nva[] = {Header(":status", status), Header(kErrorHeader, ErrorToken(result))};
  s->done = s->silent = true;
  m.Drop(*s);
  if (nghttp2_submit_response(m.session, id, nva, 2, nullptr) == 0) {
    s->reset_after_answer = true;
  } else {
    nghttp2_submit_rst_stream(m.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  }
}

size_t Mux::Send(int32_t id, absl::Span<const uint8_t> bytes) {
  Impl& m = *impl_;
  Stream* s = m.Find(id);
  if (s == nullptr || s->done || s->end_queued) return 0;
  const size_t room = m.options.send_buffer - std::min(m.options.send_buffer, s->pending());
  const size_t n = std::min(room, bytes.size());
  if (n < bytes.size()) s->want_writable = true;
  if (n == 0) return 0;
  // Compact only when the sent prefix is at least as long as what is left: moving the rest
  // then costs no more than the bytes already sent, instead of up to a whole buffer per Send.
  if (s->head > 0 && s->head >= s->pending() && s->queued.size() + n > s->queued.capacity()) {
    s->queued.erase(s->queued.begin(), s->queued.begin() + static_cast<ptrdiff_t>(s->head));
    s->head = 0;
  }
  s->queued.insert(s->queued.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
  m.buffered += n;
  m.Resume(id, *s);
  return n;
}

size_t Mux::SendRoom(int32_t id) const {
  const Stream* s = impl_->Find(id);
  if (s == nullptr || s->done || s->end_queued) return 0;
  return impl_->options.send_buffer - std::min(impl_->options.send_buffer, s->pending());
}

void Mux::End(int32_t id) {
  Impl& m = *impl_;
  Stream* s = m.Find(id);
  if (s == nullptr || s->done || s->end_queued) return;
  s->end_queued = true;
  m.Resume(id, *s);
}

void Mux::Reset(int32_t id, bool connect_error) {
  Impl& m = *impl_;
  Stream* s = m.Find(id);
  if (s == nullptr || s->silent) return;
  s->done = s->silent = true;
  s->end_queued = false;
  m.Drop(*s);
  nghttp2_submit_rst_stream(m.session, NGHTTP2_FLAG_NONE, id,
                            connect_error ? NGHTTP2_CONNECT_ERROR : NGHTTP2_CANCEL);
}

void Mux::Consume(int32_t id, size_t n) {
  Impl& m = *impl_;
  if (n == 0 || m.Find(id) == nullptr) return;
  nghttp2_session_consume_stream(m.session, id, n);
}

void Mux::Ping() { nghttp2_submit_ping(impl_->session, NGHTTP2_FLAG_NONE, nullptr); }

void Mux::GoAway() {
  Impl& m = *impl_;
  m.going_away = true;
  // NO_ERROR with the last stream the peer opened: streams open now run to their end (§6.8).
  nghttp2_submit_goaway(m.session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(m.session),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

size_t Mux::open_streams() const { return impl_->streams.size(); }

size_t Mux::buffered() const { return impl_->buffered; }

}  // namespace dpm::tunnel
