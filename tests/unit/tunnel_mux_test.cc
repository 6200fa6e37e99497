// The stream layer (src/tunnel/mux.h): a client and a server Mux wired in memory. CONNECT and
// its answers, every TunnelError through `dpm-error`, bytes both ways, half-close, reset,
// per-stream flow control (a stalled stream stops only itself), 1000 streams at once,
// malformed input, request validation, PING, GOAWAY, memory per idle stream, and the fuzz
// seeds (written by this test when DPM_WRITE_MUX_SEEDS names a directory).
#include "tunnel/mux.h"

#include <malloc.h>
#include <nghttp2/nghttp2.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "gtest/gtest.h"
#include "mux_pair.h"

namespace dpm::tunnel {
namespace {

using testing::ClientPreface;
using testing::Frame;
using testing::Frames;
using testing::HeaderBlock;
using testing::Peer;
using testing::Pump;
using testing::RstCode;

constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;
constexpr uint32_t kProtocolError = 0x1, kCancel = 0x8, kConnectError = 0xa;

StreamRequest Request(std::string authority = "db.corp.dpm:5432", std::string key = "") {
  return StreamRequest{std::move(authority), std::move(key)};
}

struct Pair {
  explicit Pair(const Mux::Options& options = {}) : client(Mux::Side::kClient, options), server(Mux::Side::kServer, options) {}
  // Opens a stream and pumps until it is answered.
  int32_t Open(const StreamRequest& request = Request()) {
    const int32_t id = client.mux.OpenStream(request);
    Pump(client, server);
    return id;
  }
  Peer client;
  Peer server;
};

TEST(TunnelMux, ConnectIsAnsweredWith200) {
  Pair p;
  const int32_t id = p.Open(Request("db.corp.dpm:5432", "00112233445566778899aabbccddeeff"));
  ASSERT_EQ(id, 1);
  ASSERT_EQ(p.server.requests, std::vector<int32_t>{1});
  EXPECT_EQ(p.server.log[1].request->authority, "db.corp.dpm:5432");
  EXPECT_EQ(p.server.log[1].request->service_key, "00112233445566778899aabbccddeeff");
  EXPECT_EQ(p.client.log[1].response, TunnelError::kNone);
  EXPECT_EQ(p.client.mux.open_streams(), 1u);
  EXPECT_EQ(p.server.mux.open_streams(), 1u);
  EXPECT_EQ(p.client.log[1].closes, 0);
}

TEST(TunnelMux, ServiceKeyIsEmptyWhenAbsent) {
  Pair p;
  p.Open(Request("web.corp.dpm:80"));
  ASSERT_EQ(p.server.requests.size(), 1u);
  EXPECT_EQ(p.server.log[1].request->service_key, "");
}

TEST(TunnelMux, EveryErrorRoundTripsAndEndsTheStream) {
  for (uint8_t e = 1; e <= static_cast<uint8_t>(TunnelError::kProtocol); ++e) {
    const TunnelError error = static_cast<TunnelError>(e);
    Pair p;
    p.server.answer = [error](const StreamRequest&) { return error; };
    const int32_t id = p.Open();
    EXPECT_EQ(p.client.log[id].response, error) << ErrorToken(error);
    // The failure ends the stream on both ends, with no OnEnd or data on the client.
    EXPECT_EQ(p.client.log[id].closes, 1) << ErrorToken(error);
    EXPECT_EQ(p.client.log[id].ends, 0);
    EXPECT_EQ(p.server.log[id].closes, 1);
    EXPECT_EQ(p.client.mux.open_streams(), 0u);
    EXPECT_EQ(p.server.mux.open_streams(), 0u);
    EXPECT_EQ(p.client.log[id].late_events + p.server.log[id].late_events, 0);
  }
}

// A server (not a Mux) answering stream 1 with `fields`; the client's verdict.
TunnelError ClientVerdict(const std::vector<std::pair<std::string, std::string>>& fields) {
  Peer client(Mux::Side::kClient);
  const int32_t id = client.mux.OpenStream(Request());
  std::vector<uint8_t> sink;
  client.mux.TakeOutput(&sink);
  std::vector<uint8_t> in = Frame(4, 0, 0, {});
  const std::vector<uint8_t> headers = Frame(1, kEndHeaders | kEndStream, id, HeaderBlock(fields));
  in.insert(in.end(), headers.begin(), headers.end());
  EXPECT_TRUE(client.mux.Receive(in).ok());
  EXPECT_TRUE(client.log[id].response.has_value());
  return client.log[id].response.value_or(TunnelError::kNone);
}

TEST(TunnelMux, ErrorStatusWithoutAKnownTokenIsAProtocolError) {
  EXPECT_EQ(ClientVerdict({{":status", "502"}, {"dpm-error", "refused"}}), TunnelError::kRefused);
  EXPECT_EQ(ClientVerdict({{":status", "502"}}), TunnelError::kProtocol);
  EXPECT_EQ(ClientVerdict({{":status", "503"}, {"dpm-error", "no-such-token"}}), TunnelError::kProtocol);
  EXPECT_EQ(ClientVerdict({{":status", "404"}}), TunnelError::kProtocol);
  EXPECT_EQ(ClientVerdict({{":status", "200"}}), TunnelError::kNone);
}

// The header fields of an HPACK block (RFC 7541), decoded by nghttp2's inflater.
std::vector<std::pair<std::string, std::string>> Decode(const std::vector<uint8_t>& block) {
  std::vector<std::pair<std::string, std::string>> out;
  nghttp2_hd_inflater* inflater = nullptr;
  if (nghttp2_hd_inflate_new(&inflater) != 0) return out;
  const uint8_t* in = block.data();
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t n = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, 1);
    if (n < 0) break;
    in += n;
    left -= static_cast<size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                       std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) break;
    if (n == 0 && left == 0) break;
  }
  nghttp2_hd_inflate_del(inflater);
  return out;
}

TEST(TunnelMux, ErrorStatusCodes) {
  // 503 for our own missing or full hops, 504 for a timeout, else 502; the token beside it.
  const std::pair<TunnelError, std::string> cases[] = {
      {TunnelError::kProxyDown, "503"}, {TunnelError::kLimit, "503"},   {TunnelError::kServerDown, "503"},
      {TunnelError::kTimeout, "504"},   {TunnelError::kRefused, "502"}, {TunnelError::kNoService, "502"},
      {TunnelError::kProtocol, "502"}};
  for (const auto& [error, status] : cases) {
    Peer client(Mux::Side::kClient), server(Mux::Side::kServer);
    server.answer = [error = error](const StreamRequest&) { return error; };
    client.mux.OpenStream(Request());
    std::vector<uint8_t> request, answer;
    client.mux.TakeOutput(&request);
    ASSERT_TRUE(server.mux.Receive(request).ok());
    server.mux.TakeOutput(&answer);
    std::vector<std::pair<std::string, std::string>> fields;
    for (const testing::RawFrame& f : Frames(answer)) {
      if (f.type == 1 && f.stream == 1) {
        fields = Decode(f.payload);
        EXPECT_TRUE(f.flags & kEndStream);
      }
    }
    const std::vector<std::pair<std::string, std::string>> want = {{":status", status},
                                                                   {"dpm-error", std::string(ErrorToken(error))}};
    EXPECT_EQ(fields, want) << ErrorToken(error);
    EXPECT_EQ(RstCode(answer, 1), 0u);  // then RST_STREAM NO_ERROR: the answer is complete
  }
}

TEST(TunnelMux, TenMebibytesEachWayByteExact) {
  Pair p;
  const int32_t id = p.Open();
  const uint64_t n = 10u << 20;
  p.client.SendPattern(id, n, true);
  p.server.SendPattern(id, n, true);
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.log[id].received, n);
  EXPECT_TRUE(p.server.log[id].pattern_ok);
  EXPECT_EQ(p.client.log[id].received, n);
  EXPECT_TRUE(p.client.log[id].pattern_ok);
  for (Peer* peer : {&p.client, &p.server}) {
    EXPECT_EQ(peer->log[id].ends, 1);
    EXPECT_EQ(peer->log[id].closes, 1);
    EXPECT_TRUE(peer->log[id].clean);
    EXPECT_FALSE(peer->log[id].reset);
    EXPECT_EQ(peer->log[id].late_events, 0);
    EXPECT_EQ(peer->mux.open_streams(), 0u);
    EXPECT_EQ(peer->mux.buffered(), 0u);
  }
}

void HalfClose(bool client_first) {
  Pair p;
  const int32_t id = p.Open();
  Peer& first = client_first ? p.client : p.server;
  Peer& second = client_first ? p.server : p.client;
  first.SendPattern(id, 5000, true);
  Pump(p.client, p.server);
  EXPECT_EQ(second.log[id].received, 5000u);
  EXPECT_EQ(second.log[id].ends, 1);
  EXPECT_EQ(first.log[id].closes + second.log[id].closes, 0);  // half-closed, not closed
  EXPECT_EQ(first.mux.Send(id, std::vector<uint8_t>{1}), 0u);  // the ended side takes nothing
  // The other direction still carries bytes.
  second.SendPattern(id, 7000, false);
  Pump(p.client, p.server);
  EXPECT_EQ(first.log[id].received, 7000u);
  EXPECT_TRUE(first.log[id].pattern_ok);
  EXPECT_EQ(first.log[id].closes, 0);
  second.mux.End(id);
  Pump(p.client, p.server);
  for (Peer* peer : {&first, &second}) {
    EXPECT_EQ(peer->log[id].closes, 1);
    EXPECT_TRUE(peer->log[id].clean);
    EXPECT_FALSE(peer->log[id].reset);
  }
}

TEST(TunnelMux, ClientHalfCloseLeavesTheServerSending) { HalfClose(true); }
TEST(TunnelMux, ServerHalfCloseLeavesTheClientSending) { HalfClose(false); }

TEST(TunnelMux, ResetPropagates) {
  for (bool from_client : {true, false}) {
    for (bool connect_error : {true, false}) {
      Pair p;
      const int32_t id = p.Open();
      Peer& resetter = from_client ? p.client : p.server;
      Peer& other = from_client ? p.server : p.client;
      resetter.SendPattern(id, 100000, false);
      resetter.mux.Reset(id, connect_error);
      EXPECT_EQ(resetter.mux.buffered(), 0u);  // the queued bytes are dropped
      std::vector<uint8_t> out;
      resetter.mux.TakeOutput(&out);
      EXPECT_EQ(RstCode(out, id), connect_error ? kConnectError : kCancel);
      ASSERT_TRUE(other.mux.Receive(out).ok());
      Pump(p.client, p.server);
      EXPECT_EQ(other.log[id].closes, 1);
      EXPECT_EQ(other.log[id].reset, connect_error);
      EXPECT_FALSE(other.log[id].clean);
      EXPECT_EQ(resetter.log[id].closes, 1);
      EXPECT_EQ(resetter.log[id].late_events + other.log[id].late_events, 0);
      EXPECT_EQ(p.client.mux.open_streams() + p.server.mux.open_streams(), 0u);
    }
  }
}

TEST(TunnelMux, ResetBeforeTheRequestLeftClosesLocally) {
  Pair p;
  const int32_t id = p.client.mux.OpenStream(Request());
  p.client.mux.Reset(id, false);
  Pump(p.client, p.server);
  EXPECT_EQ(p.client.log[id].closes, 1);
  EXPECT_EQ(p.client.mux.open_streams(), 0u);
  EXPECT_TRUE(p.server.requests.empty());
  EXPECT_EQ(p.server.mux.open_streams(), 0u);
}

TEST(TunnelMux, ResetInsideCallbacksIsSafe) {
  Pair p;
  p.server.answer_now = false;
  p.server.on_data = [&](int32_t id, absl::Span<const uint8_t>) { p.server.mux.Reset(id, true); };
  const int32_t a = p.Open();
  p.server.mux.Respond(a, TunnelError::kNone);
  Pump(p.client, p.server);
  p.client.SendPattern(a, 300000, true);  // many DATA frames after the one that triggers the reset
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.log[a].closes, 1);
  EXPECT_LE(p.server.log[a].received, 16384u);  // one frame, then no OnData
  EXPECT_EQ(p.server.log[a].late_events, 0);
  EXPECT_EQ(p.client.log[a].closes, 1);
  EXPECT_TRUE(p.client.log[a].reset);
  // The connection is still good.
  const int32_t b = p.client.mux.OpenStream(Request());
  p.server.on_data = nullptr;
  Pump(p.client, p.server);
  p.server.mux.Respond(b, TunnelError::kNone);
  Pump(p.client, p.server);
  EXPECT_EQ(p.client.log[b].response, TunnelError::kNone);
}

TEST(TunnelMux, ClientSendsNoDataBeforeThe200) {
  Pair p;
  p.server.answer_now = false;
  const int32_t id = p.client.mux.OpenStream(Request());
  p.client.SendPattern(id, 5000, true);  // queued before any answer
  Pump(p.client, p.server);
  ASSERT_EQ(p.server.requests.size(), 1u);
  EXPECT_EQ(p.server.log[id].received, 0u);
  EXPECT_EQ(p.client.mux.buffered(), 5000u);
  p.server.mux.Respond(id, TunnelError::kNone);
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.log[id].received, 5000u);
  EXPECT_TRUE(p.server.log[id].pattern_ok);
  EXPECT_EQ(p.server.log[id].ends, 1);
}

TEST(TunnelMux, ServerBytesQueuedBeforeTheAnswerFollowIt) {
  Pair p;
  p.server.answer_now = false;
  const int32_t id = p.Open();
  p.server.SendPattern(id, 3000, true);
  Pump(p.client, p.server);
  EXPECT_FALSE(p.client.log[id].response.has_value());
  p.server.mux.Respond(id, TunnelError::kNone);
  Pump(p.client, p.server);
  EXPECT_EQ(p.client.log[id].response, TunnelError::kNone);
  EXPECT_EQ(p.client.log[id].received, 3000u);
  EXPECT_EQ(p.client.log[id].ends, 1);
}

TEST(TunnelMux, StalledStreamStopsOnlyItself) {
  Mux::Options options;
  options.connection_window = 1u << 20;  // smaller than the 50 MiB the other stream moves
  Pair p(options);
  const int32_t stalled = p.Open();
  const int32_t moving = p.Open();
  p.server.stalled[stalled] = true;
  p.client.SendPattern(stalled, 4u << 20, true);
  const uint64_t n = 50u << 20;
  p.client.SendPattern(moving, n, true);
  Pump(p.client, p.server);
  // The stalled stream got exactly its window; the sender still holds the rest.
  EXPECT_EQ(p.server.log[stalled].received, options.stream_window);
  EXPECT_GT(p.client.mux.buffered(), 0u);
  EXPECT_EQ(p.server.log[moving].received, n);
  EXPECT_TRUE(p.server.log[moving].pattern_ok);
  EXPECT_EQ(p.server.log[moving].ends, 1);
  // Once the reader consumes, the stalled stream finishes too.
  p.server.stalled[stalled] = false;
  p.server.mux.Consume(stalled, p.server.log[stalled].received);
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.log[stalled].received, 4u << 20);
  EXPECT_TRUE(p.server.log[stalled].pattern_ok);
  EXPECT_EQ(p.server.log[stalled].ends, 1);
}

TEST(TunnelMux, SendBufferIsBoundedAndWritableFollows) {
  Mux::Options options;
  options.send_buffer = 64 * 1024;
  Pair p(options);
  const int32_t id = p.Open();
  std::vector<uint8_t> big(100 * 1024, 0);
  EXPECT_EQ(p.client.mux.Send(id, big), 64u * 1024);
  EXPECT_EQ(p.client.mux.SendRoom(id), 0u);
  EXPECT_EQ(p.client.mux.buffered(), 64u * 1024);
  EXPECT_EQ(p.client.mux.Send(id, big), 0u);
  std::vector<uint8_t> out;
  p.client.mux.TakeOutput(&out);
  EXPECT_GT(p.client.mux.SendRoom(id), 0u);
  EXPECT_TRUE(p.client.log.count(id) == 1);  // OnWritable noted the stream
  EXPECT_EQ(p.client.mux.Send(7, big), 0u);  // unknown stream
}

TEST(TunnelMux, WritableIsReportedAfterAShortSend) {
  Mux::Options options;
  options.send_buffer = 32 * 1024;
  Pair p(options);
  int writable = 0;
  struct Counting : Peer {
    using Peer::Peer;
    int* count = nullptr;
    void OnWritable(int32_t id) override {
      ++*count;
      Peer::OnWritable(id);
    }
  };
  Counting c(Mux::Side::kClient, options);
  c.count = &writable;
  const int32_t id = c.mux.OpenStream(Request());
  Pump(c, p.server);
  c.SendPattern(id, 200 * 1024, true);  // more than the buffer: Feed continues on OnWritable
  Pump(c, p.server);
  EXPECT_GT(writable, 0);
  EXPECT_EQ(p.server.log[id].received, 200u * 1024);
  EXPECT_TRUE(p.server.log[id].pattern_ok);
}

TEST(TunnelMux, ThousandStreamsEchoTheirOwnBytes) {
  Pair p;
  p.server.echo = true;
  std::vector<int32_t> ids;
  for (int i = 0; i < 1000; ++i) {
    ids.push_back(p.client.mux.OpenStream(Request("svc" + std::to_string(i) + ".corp.dpm:80")));
    ASSERT_GT(ids.back(), 0);
  }
  Pump(p.client, p.server);
  ASSERT_EQ(p.server.requests.size(), 1000u);
  EXPECT_EQ(p.server.mux.open_streams(), 1000u);
  for (size_t i = 0; i < ids.size(); ++i) p.client.SendPattern(ids[i], 3000 + 17 * i, true);
  Pump(p.client, p.server);
  for (size_t i = 0; i < ids.size(); ++i) {
    const testing::StreamLog& s = p.client.log[ids[i]];
    EXPECT_EQ(s.received, 3000 + 17 * i) << ids[i];
    EXPECT_TRUE(s.pattern_ok) << ids[i];  // its own pattern came back, no other stream's
    EXPECT_EQ(s.closes, 1);
    EXPECT_TRUE(s.clean);
    EXPECT_EQ(p.server.log[ids[i]].request->authority, "svc" + std::to_string(i) + ".corp.dpm:80");
  }
  EXPECT_EQ(p.client.mux.open_streams() + p.server.mux.open_streams(), 0u);
}

TEST(TunnelMux, ManyResetsDoNotEndTheConnection) {
  // nghttp2's default limit on incoming RST_STREAM (1000 at once) would send GOAWAY here.
  Pair p;
  for (int i = 0; i < 3000; ++i) {
    const int32_t id = p.client.mux.OpenStream(Request());
    std::vector<uint8_t> out;
    p.client.mux.TakeOutput(&out);
    ASSERT_TRUE(p.server.mux.Receive(out).ok());
    p.client.mux.Reset(id, true);
  }
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.requests.size(), 3000u);
  const int32_t id = p.Open();
  EXPECT_EQ(p.client.log[id].response, TunnelError::kNone);
  EXPECT_TRUE(p.server.mux.Alive());
}

TEST(TunnelMux, GarbageAfterThePrefaceIsAReceiveError) {
  const std::vector<uint8_t> garbage[] = {
      Frame(4, 0, 0, {1, 2, 3, 4, 5}),                     // SETTINGS of 5 bytes (§6.5)
      Frame(0, 0, 0, {'x'}),                               // DATA on stream 0 (§6.1)
      Frame(1, kEndHeaders, 1, {0xff, 0xff, 0xff, 0x7f}),  // HPACK index far past the tables
      Frame(1, kEndHeaders, 2, HeaderBlock({{":method", "CONNECT"}, {":authority", "a:1"}})),  // even id
      Frame(8, 0, 0, {0, 0, 0, 0}),                        // WINDOW_UPDATE of 0 (§6.9)
  };
  for (const std::vector<uint8_t>& g : garbage) {
    Peer server(Mux::Side::kServer);
    std::vector<uint8_t> in = ClientPreface();
    in.insert(in.end(), g.begin(), g.end());
    const absl::Status st = server.mux.Receive(in);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << testing::Frames(g)[0].type;
    EXPECT_FALSE(st.message().empty());
    EXPECT_FALSE(server.mux.Alive());
    EXPECT_FALSE(server.mux.Receive(in).ok());  // it stays failed
    EXPECT_TRUE(server.requests.empty());
    std::vector<uint8_t> out;
    server.mux.TakeOutput(&out);  // GOAWAY with the reason
    bool goaway = false;
    for (const testing::RawFrame& f : Frames(out)) goaway |= f.type == 7;
    EXPECT_TRUE(goaway);
  }
}

TEST(TunnelMux, BadMagicIsAReceiveError) {
  Peer server(Mux::Side::kServer);
  const std::string junk = "PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n";
  EXPECT_EQ(server.mux.Receive(std::vector<uint8_t>(junk.begin(), junk.end())).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TunnelMux, ByteAtATimeGivesTheSameRequest) {
  Peer client(Mux::Side::kClient), server(Mux::Side::kServer);
  client.mux.OpenStream(Request("a.corp.dpm:1", "ab"));
  std::vector<uint8_t> out;
  client.mux.TakeOutput(&out);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(server.mux.Receive(absl::MakeConstSpan(&out[i], 1)).ok()) << i;
    EXPECT_EQ(server.requests.size(), i + 1 == out.size() ? 1u : 0u) << i;
  }
  EXPECT_EQ(server.log[1].request->authority, "a.corp.dpm:1");
  EXPECT_EQ(server.log[1].request->service_key, "ab");
}

// A server fed a client preface and one HEADERS on stream 1 with `fields`; its output.
std::vector<uint8_t> ServerAnswer(Peer& server, const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<uint8_t> in = ClientPreface();
  const std::vector<uint8_t> h = Frame(1, kEndHeaders, 1, HeaderBlock(fields));
  in.insert(in.end(), h.begin(), h.end());
  EXPECT_TRUE(server.mux.Receive(in).ok());
  std::vector<uint8_t> out;
  server.mux.TakeOutput(&out);
  return out;
}

TEST(TunnelMux, NonConnectRequestIsRejected) {
  Peer server(Mux::Side::kServer);
  const std::vector<uint8_t> out =
      ServerAnswer(server, {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a:1"}});
  EXPECT_TRUE(server.requests.empty());
  EXPECT_EQ(RstCode(out, 1), kProtocolError);
  EXPECT_EQ(server.mux.open_streams(), 0u);
  EXPECT_TRUE(server.mux.Alive());  // a stream error, not a connection error
}

TEST(TunnelMux, ConnectWithoutAuthorityIsRejected) {
  Peer server(Mux::Side::kServer);
  const std::vector<uint8_t> out = ServerAnswer(server, {{":method", "CONNECT"}});
  EXPECT_TRUE(server.requests.empty());
  EXPECT_EQ(RstCode(out, 1), kProtocolError);
}

TEST(TunnelMux, HeaderLengthLimits) {
  for (auto [authority, key, accepted] :
       {std::tuple{std::string(296, 'a') + ":443", std::string(64, 'f'), true},
        std::tuple{std::string(297, 'a') + ":443", std::string(), false},
        std::tuple{std::string("a:1"), std::string(65, 'f'), false}}) {
    Peer server(Mux::Side::kServer);
    std::vector<std::pair<std::string, std::string>> fields = {{":method", "CONNECT"}, {":authority", authority}};
    if (!key.empty()) fields.push_back({"dpm-service-key", key});
    const std::vector<uint8_t> out = ServerAnswer(server, fields);
    EXPECT_EQ(server.requests.size(), accepted ? 1u : 0u) << authority.size() << " " << key.size();
    EXPECT_EQ(RstCode(out, 1).has_value(), !accepted);
  }
  Peer client(Mux::Side::kClient);
  EXPECT_EQ(client.mux.OpenStream(Request(std::string(301, 'a'))), -1);
  EXPECT_EQ(client.mux.OpenStream(Request("a:1", std::string(65, 'f'))), -1);
  EXPECT_EQ(client.mux.OpenStream(Request("")), -1);
}

TEST(TunnelMux, PingIsAnswered) {
  Pair p;
  p.Open();
  p.client.mux.Ping();
  EXPECT_TRUE(p.client.mux.WantsOutput());
  std::vector<uint8_t> ping;
  p.client.mux.TakeOutput(&ping);
  std::vector<testing::RawFrame> frames = Frames(ping);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 6);   // PING
  EXPECT_EQ(frames[0].flags, 0);  // not an ACK
  ASSERT_TRUE(p.server.mux.Receive(ping).ok());
  EXPECT_TRUE(p.server.mux.WantsOutput());
  std::vector<uint8_t> ack;
  p.server.mux.TakeOutput(&ack);
  frames = Frames(ack);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 6);
  EXPECT_EQ(frames[0].flags, 1);  // ACK, same payload
  EXPECT_EQ(frames[0].payload, Frames(ping)[0].payload);
  EXPECT_TRUE(p.client.mux.Receive(ack).ok());
  EXPECT_FALSE(p.client.mux.WantsOutput());
}

void GoAwayFrom(bool server_side) {
  Pair p;
  const int32_t id = p.Open();
  (server_side ? p.server : p.client).mux.GoAway();
  Pump(p.client, p.server);
  EXPECT_EQ(p.client.mux.OpenStream(Request()), -1);  // no new streams
  // The open stream runs to its end; then the session is over.
  EXPECT_TRUE(p.client.mux.Alive());
  p.client.SendPattern(id, 1000, true);
  p.server.SendPattern(id, 1000, true);
  Pump(p.client, p.server);
  EXPECT_EQ(p.server.log[id].received, 1000u);
  EXPECT_EQ(p.client.log[id].received, 1000u);
  EXPECT_TRUE(p.client.log[id].clean);
  EXPECT_FALSE(p.client.mux.Alive());
  EXPECT_FALSE(p.server.mux.Alive());
}

TEST(TunnelMux, ServerGoAwayStopsNewStreams) { GoAwayFrom(true); }
TEST(TunnelMux, ClientGoAwayStopsNewStreams) { GoAwayFrom(false); }

TEST(TunnelMux, ServerCannotOpenStreams) {
  Peer server(Mux::Side::kServer);
  EXPECT_EQ(server.mux.OpenStream(Request()), -1);
}

// A handler that keeps nothing: the server answers 200, the client ignores everything.
class Quiet : public Mux::Handler {
 public:
  explicit Quiet(Mux::Side side) : mux(side, *this, {}) {}
  void OnStreamRequest(int32_t id, const StreamRequest&) override { mux.Respond(id, TunnelError::kNone); }
  void OnStreamResponse(int32_t, TunnelError) override {}
  void OnData(int32_t, absl::Span<const uint8_t>) override {}
  void OnEnd(int32_t) override {}
  void OnClosed(int32_t, bool, bool) override {}
  void OnWritable(int32_t) override {}
  Mux mux;
};

TEST(TunnelMux, MemoryPerIdleStream) {
  // Heap bytes per open, answered, idle stream on each end (nghttp2's stream, our Stream and
  // its map slot), measured with mallinfo2 over 4000 streams.
  Quiet client(Mux::Side::kClient), server(Mux::Side::kServer);
  constexpr int kStreams = 4000;
  auto pump = [&] {
    for (bool any = true; any;) {
      any = false;
      std::vector<uint8_t> a, b;
      client.mux.TakeOutput(&a);
      if (!a.empty()) {
        ASSERT_TRUE(server.mux.Receive(a).ok());
      }
      server.mux.TakeOutput(&b);
      if (!b.empty()) {
        ASSERT_TRUE(client.mux.Receive(b).ok());
      }
      any = !a.empty() || !b.empty();
    }
  };
  client.mux.OpenStream(Request());
  pump();
  size_t used = mallinfo2().uordblks;
  // Client end alone: streams submitted and sent, no answer yet.
  for (int i = 0; i < kStreams; ++i) client.mux.OpenStream(Request("svc.corp.dpm:443"));
  std::vector<uint8_t> requests;
  client.mux.TakeOutput(&requests, SIZE_MAX);
  const double client_bytes = static_cast<double>(mallinfo2().uordblks - used - requests.capacity()) / kStreams;
  used = mallinfo2().uordblks - requests.capacity();
  ASSERT_TRUE(server.mux.Receive(requests).ok());
  std::vector<uint8_t>().swap(requests);
  pump();
  ASSERT_EQ(server.mux.open_streams(), kStreams + 1u);
  const double server_bytes = (static_cast<double>(mallinfo2().uordblks) - static_cast<double>(used)) / kStreams;
  std::cout << "heap per idle stream: client " << client_bytes << " bytes, server " << server_bytes << " bytes\n";
  ::testing::Test::RecordProperty("client_bytes_per_idle_stream", static_cast<int>(client_bytes));
  ::testing::Test::RecordProperty("server_bytes_per_idle_stream", static_cast<int>(server_bytes));
  EXPECT_LT(client_bytes, 1024.0);
  EXPECT_LT(server_bytes, 1024.0);
}

// --- fuzz seeds ---

// What a client Mux sends: the preface, a request, data, End; a request with a key and a
// reset; a PING; GOAWAY.
std::map<std::string, std::vector<uint8_t>> SeedStreams() {
  std::map<std::string, std::vector<uint8_t>> seeds;
  auto take = [](Peer& c) {
    std::vector<uint8_t> out;
    c.mux.TakeOutput(&out);
    return out;
  };
  {
    Peer c(Mux::Side::kClient);
    c.mux.OpenStream(Request("web.corp.dpm:80"));
    seeds["connect"] = take(c);
  }
  {
    Pair p;
    const int32_t id = p.Open(Request("db.corp.dpm:5432", "00112233445566778899aabbccddeeff"));
    std::vector<uint8_t> all;
    // Replay what the client sent from its first byte: a fresh client with a fake 200.
    Peer c(Mux::Side::kClient);
    c.mux.OpenStream(Request("db.corp.dpm:5432", "00112233445566778899aabbccddeeff"));
    all = take(c);
    std::vector<uint8_t> answer = Frame(4, 0, 0, {});
    const std::vector<uint8_t> h = Frame(1, kEndHeaders, id, {0x88});  // :status 200 (static 8)
    answer.insert(answer.end(), h.begin(), h.end());
    EXPECT_TRUE(c.mux.Receive(answer).ok());
    c.SendPattern(id, 3000, true);
    const std::vector<uint8_t> data = take(c);
    all.insert(all.end(), data.begin(), data.end());
    seeds["connect_data_end"] = all;
    const int32_t id2 = c.mux.OpenStream(Request("b.corp.dpm:22"));
    c.mux.Reset(id2, true);
    c.mux.Ping();
    c.mux.GoAway();
    const std::vector<uint8_t> rest = take(c);
    all.insert(all.end(), rest.begin(), rest.end());
    seeds["connect_data_reset_ping_goaway"] = all;
  }
  // The fuzzer prepends the magic itself.
  for (auto& [name, bytes] : seeds) bytes.erase(bytes.begin(), bytes.begin() + sizeof testing::kClientMagic - 1);
  return seeds;
}

TEST(TunnelMux, SeedsAreValidClientStreams) {
  if (const char* dir = std::getenv("DPM_WRITE_MUX_SEEDS")) {
    for (const auto& [name, bytes] : SeedStreams()) {
      std::ofstream(std::filesystem::path(dir) / name, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(DPM_FUZZ_CORPUS_DIR "/tunnel_mux")) {
    std::ifstream f(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes(testing::kClientMagic, testing::kClientMagic + sizeof testing::kClientMagic - 1);
    bytes.insert(bytes.end(), std::istreambuf_iterator<char>(f), {});
    Peer server(Mux::Side::kServer);
    EXPECT_TRUE(server.mux.Receive(bytes).ok()) << entry.path();
    EXPECT_GE(server.requests.size(), 1u) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 3);
}

}  // namespace
}  // namespace dpm::tunnel
