// The libdpm <-> dpmd control protocol codec (src/api/protocol.h): round trips, truncation at
// every byte with the exact "truncated <field>" message, and rejection of bad values.
#include "api/protocol.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "test_bytes.h"

namespace dpm::api {
namespace {

// ---- helpers -------------------------------------------------------------------------

Endpoint V4(const char* address, uint16_t port) {
  Endpoint e;
  e.family = AF_INET;
  e.port_be = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, address, e.address), 1) << address;
  return e;
}

Endpoint V6(const char* address, uint16_t port) {
  Endpoint e;
  e.family = AF_INET6;
  e.port_be = htons(port);
  EXPECT_EQ(inet_pton(AF_INET6, address, e.address), 1) << address;
  return e;
}

using dpm::testing::Hex;

std::string Describe(const SocketRef& r) { return absl::StrCat("ref{", r.id, ",", r.cookie, "}"); }
std::string Describe(const Endpoint& e) {
  return absl::StrCat("ep{family=", e.family, " port_be=", e.port_be, " addr=",
                      Hex(absl::MakeConstSpan(e.address, sizeof(e.address))), "}");
}

// A canonical text of every field, written independently of the codec, so a round trip that
// loses or swaps a field shows up as a readable difference.
std::string Describe(const Request& request) {
  struct Visitor {
    std::string operator()(const SocketRequest& q) {
      return absl::StrCat("socket ", q.domain, " ", q.type, " ", q.protocol, " ", q.tuple);
    }
    std::string operator()(const BindRequest& q) {
      return absl::StrCat("bind ", Describe(q.ref), " ", Describe(q.local));
    }
    std::string operator()(const ListenRequest& q) {
      return absl::StrCat("listen ", Describe(q.ref), " ", q.backlog);
    }
    std::string operator()(const ConnectRequest& q) {
      return absl::StrCat("connect ", Describe(q.ref), " ", Describe(q.remote), " flags=", q.flags);
    }
    std::string operator()(const NameRequest& q) {
      return absl::StrCat("name ", Describe(q.ref), " peer=", q.peer);
    }
    std::string operator()(const ShutdownRequest& q) {
      return absl::StrCat("shutdown ", Describe(q.ref), " ", q.how);
    }
    std::string operator()(const SetSockOptRequest& q) {
      return absl::StrCat("setsockopt ", Describe(q.ref), " ", q.level, " ", q.name, " ",
                          Hex(q.value));
    }
    std::string operator()(const GetSockOptRequest& q) {
      return absl::StrCat("getsockopt ", Describe(q.ref), " ", q.level, " ", q.name);
    }
    std::string operator()(const StatusRequest& q) { return absl::StrCat("status json=", q.json); }
    std::string operator()(const ResolveRequest& q) { return absl::StrCat("resolve '", q.name, "'"); }
    std::string operator()(const VpmConfigureRequest& q) { return absl::StrCat("vpm configure '", q.text, "'"); }
  };
  return std::visit(Visitor{}, request);
}

constexpr SocketRef kRef{0x0102030405060708ull, 0xf1e2d3c4b5a69788ull};

// One field of a message's wire layout: its name as the parser reports it when missing.
struct Field {
  std::string name;
  size_t size;
};

// A valid request of each kind, with its opcode and the wire layout after the header.
struct Sample {
  std::string label;
  Request request;
  Opcode opcode;
  std::vector<Field> body;
};

std::vector<Sample> Samples() {
  const Field ref{"socket reference", SocketRef::kWireSize};
  const Field endpoint{"endpoint", Endpoint::kWireSize};
  std::vector<uint8_t> option_value(kMaxOptionValue);
  for (size_t i = 0; i < option_value.size(); ++i) option_value[i] = static_cast<uint8_t>(0xa0 + i);
  return {
      {"socket", SocketRequest{AF_INET, SOCK_STREAM, IPPROTO_TCP, 3}, Opcode::kSocket,
       {{"socket arguments", 16}}},
      {"socket_negative", SocketRequest{-1, -2, -3, -4}, Opcode::kSocket, {{"socket arguments", 16}}},
      {"bind_v4", BindRequest{kRef, V4("10.77.1.2", 8080)}, Opcode::kBind, {ref, endpoint}},
      {"bind_v6", BindRequest{kRef, V6("2001:db8::1", 443)}, Opcode::kBind, {ref, endpoint}},
      {"bind_any", BindRequest{kRef, Endpoint{}}, Opcode::kBind, {ref, endpoint}},
      {"listen", ListenRequest{kRef, 128}, Opcode::kListen, {ref, {"backlog", 4}}},
      {"connect", ConnectRequest{kRef, V4("198.51.100.10", 80)}, Opcode::kConnect,
       {ref, endpoint, {"connect flags", 4}}},
      {"connect_nonblocking", ConnectRequest{kRef, V4("198.51.100.10", 80), ConnectRequest::kConnectNonBlocking},
       Opcode::kConnect, {ref, endpoint, {"connect flags", 4}}},
      {"getsockname", NameRequest{kRef, false}, Opcode::kGetSockName, {ref}},
      {"getpeername", NameRequest{kRef, true}, Opcode::kGetPeerName, {ref}},
      {"shutdown", ShutdownRequest{kRef, SHUT_WR}, Opcode::kShutdown, {ref, {"how", 4}}},
      {"setsockopt_empty", SetSockOptRequest{kRef, SOL_SOCKET, SO_REUSEADDR, {}},
       Opcode::kSetSockOpt, {ref, {"option name", 8}, {"option length", 2}}},
      {"setsockopt_int", SetSockOptRequest{kRef, IPPROTO_TCP, 1, {1, 0, 0, 0}}, Opcode::kSetSockOpt,
       {ref, {"option name", 8}, {"option length", 2}, {"option value", 4}}},
      {"setsockopt_max", SetSockOptRequest{kRef, SOL_SOCKET, SO_LINGER, option_value},
       Opcode::kSetSockOpt,
       {ref, {"option name", 8}, {"option length", 2}, {"option value", kMaxOptionValue}}},
      {"getsockopt", GetSockOptRequest{kRef, SOL_SOCKET, SO_ERROR}, Opcode::kGetSockOpt,
       {ref, {"option name", 8}}},
      {"status_text", StatusRequest{false}, Opcode::kStatus, {{"status format", 1}}},
      {"status_json", StatusRequest{true}, Opcode::kStatus, {{"status format", 1}}},
      {"resolve", ResolveRequest{"web.alpha.dpm.internal"}, Opcode::kResolve,
       {{"name length", 2}, {"name", 22}}},
      {"resolve_max", ResolveRequest{std::string(kMaxResolveName, 'a')}, Opcode::kResolve,
       {{"name length", 2}, {"name", kMaxResolveName}}},
      {"resolve_empty", ResolveRequest{""}, Opcode::kResolve, {{"name length", 2}}},
      {"vpm_configure", VpmConfigureRequest{R"({"ports": {"tcp/80": {"default": "blue"}}})"}, Opcode::kVpmConfigure,
       {{"text length", 4}, {"text", 42}}},
      {"vpm_configure_empty", VpmConfigureRequest{""}, Opcode::kVpmConfigure, {{"text length", 4}}},
  };
}

uint16_t HostU16At(const std::vector<uint8_t>& bytes, size_t offset) {
  uint16_t v;
  std::memcpy(&v, bytes.data() + offset, 2);
  return v;
}

void PutHostU16(std::vector<uint8_t>& bytes, size_t offset, uint16_t v) {
  std::memcpy(bytes.data() + offset, &v, 2);
}

std::vector<uint8_t> Header(uint16_t version, uint16_t opcode) {
  std::vector<uint8_t> out(4);
  PutHostU16(out, 0, version);
  PutHostU16(out, 2, opcode);
  return out;
}

// ---- requests ------------------------------------------------------------------------

TEST(ApiRequest, EveryRequestKindRoundTripsWithAllFields) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.label);
    std::vector<uint8_t> encoded = EncodeRequest(s.request);
    absl::StatusOr<Request> parsed = ParseRequest(encoded);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->index(), s.request.index());
    EXPECT_EQ(Describe(*parsed), Describe(s.request));
  }
}

TEST(ApiRequest, EncodingStartsWithVersionAndOpcodeAndHasTheDocumentedLength) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.label);
    std::vector<uint8_t> encoded = EncodeRequest(s.request);
    size_t expected = 4;
    for (const Field& f : s.body) expected += f.size;
    ASSERT_EQ(encoded.size(), expected);
    EXPECT_EQ(HostU16At(encoded, 0), kVersion);
    EXPECT_EQ(HostU16At(encoded, 2), static_cast<uint16_t>(s.opcode));
  }
}

TEST(ApiRequest, CutAtEveryByteNamesTheMissingField) {
  for (const Sample& s : Samples()) {
    std::vector<uint8_t> encoded = EncodeRequest(s.request);
    std::vector<Field> layout = {{"header", 4}};
    layout.insert(layout.end(), s.body.begin(), s.body.end());
    size_t field_start = 0;
    for (const Field& field : layout) {
      for (size_t cut = field_start; cut < field_start + field.size; ++cut) {
        SCOPED_TRACE(absl::StrCat(s.label, " cut at ", cut, " of ", encoded.size()));
        absl::StatusOr<Request> parsed = ParseRequest(absl::MakeConstSpan(encoded.data(), cut));
        ASSERT_FALSE(parsed.ok());
        EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(parsed.status().message(), "truncated " + field.name);
      }
      field_start += field.size;
    }
    EXPECT_EQ(field_start, encoded.size()) << s.label;
  }
}

TEST(ApiRequest, TrailingBytesAreRejected) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.label);
    std::vector<uint8_t> encoded = EncodeRequest(s.request);
    for (size_t extra : {1, 2, 100}) {
      std::vector<uint8_t> longer = encoded;
      longer.resize(encoded.size() + extra, 0);
      absl::StatusOr<Request> parsed = ParseRequest(longer);
      ASSERT_FALSE(parsed.ok()) << extra;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(parsed.status().message(), "trailing bytes");
    }
  }
}

TEST(ApiRequest, BadVersionIsRejectedAndNamed) {
  for (uint16_t version : {uint16_t{0}, uint16_t{1}, uint16_t{7}, uint16_t{0xffff}}) {
    std::vector<uint8_t> bytes = EncodeRequest(StatusRequest{false});
    PutHostU16(bytes, 0, version);
    absl::StatusOr<Request> parsed = ParseRequest(bytes);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), absl::StrCat("bad version ", version));
  }
}

TEST(ApiRequest, UnknownOpcodeIsRejectedAndNamed) {
  for (uint16_t op : {uint16_t{0}, uint16_t{13}, uint16_t{99}, uint16_t{0xffff}}) {
    absl::StatusOr<Request> parsed = ParseRequest(Header(kVersion, op));
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), absl::StrCat("unknown opcode ", op));
  }
}

TEST(ApiRequest, EndpointFamilyOtherThanNoneInetInet6IsRejected) {
  for (uint16_t family : {uint16_t{AF_UNIX}, uint16_t{3}, uint16_t{AF_PACKET}, uint16_t{0xffff}}) {
    for (const Request& request : {Request{BindRequest{kRef, V4("10.0.0.1", 1)}},
                                   Request{ConnectRequest{kRef, V4("10.0.0.1", 1)}}}) {
      std::vector<uint8_t> bytes = EncodeRequest(request);
      PutHostU16(bytes, 4 + SocketRef::kWireSize, family);  // endpoint starts after the ref
      absl::StatusOr<Request> parsed = ParseRequest(bytes);
      ASSERT_FALSE(parsed.ok()) << family;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(parsed.status().message(), absl::StrCat("bad endpoint family ", family));
    }
  }
}

TEST(ApiRequest, OptionValueUpToSixtyFourBytesIsAcceptedAndLongerRejected) {
  SetSockOptRequest q{kRef, SOL_SOCKET, SO_SNDBUF, std::vector<uint8_t>(kMaxOptionValue, 7)};
  ASSERT_TRUE(ParseRequest(EncodeRequest(q)).ok());

  // Declared length 65 with 65 bytes present: rejected for the length, not as truncated.
  q.value.resize(kMaxOptionValue + 1, 7);
  absl::StatusOr<Request> parsed = ParseRequest(EncodeRequest(q));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "option length 65 over 64");

  // A huge declared length with no value at all is rejected before any allocation of it.
  std::vector<uint8_t> bytes = EncodeRequest(SetSockOptRequest{kRef, 1, 2, {}});
  PutHostU16(bytes, bytes.size() - 2, 0xffff);
  parsed = ParseRequest(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "option length 65535 over 64");
}

TEST(ApiRequest, ResolveNameUpTo253BytesIsAcceptedAndLongerRejected) {
  ResolveRequest q{std::string(kMaxResolveName, 'x')};
  absl::StatusOr<Request> parsed = ParseRequest(EncodeRequest(q));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(std::get<ResolveRequest>(*parsed).name, q.name);

  // Declared 254 with 254 bytes present: rejected for the length, not as truncated.
  q.name.push_back('x');
  parsed = ParseRequest(EncodeRequest(q));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "name length 254 over 253");

  // A huge declared length with nothing after it is refused by its length alone.
  std::vector<uint8_t> bytes = Header(kVersion, static_cast<uint16_t>(Opcode::kResolve));
  bytes.resize(6);
  PutHostU16(bytes, 4, 0xffff);
  parsed = ParseRequest(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "name length 65535 over 253");
}

TEST(ApiRequest, VpmConfigureTextUpToTheLimitIsAcceptedAndLongerRejected) {
  VpmConfigureRequest q{std::string(kMaxVpmConfig, ' ')};
  std::vector<uint8_t> bytes = EncodeRequest(q);
  EXPECT_LE(bytes.size(), kMaxMessage) << "the longest text fits in one message";
  absl::StatusOr<Request> parsed = ParseRequest(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(std::get<VpmConfigureRequest>(*parsed).text.size(), kMaxVpmConfig);
  q.text.push_back(' ');
  parsed = ParseRequest(EncodeRequest(q));
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(std::string(parsed.status().message()).find("text length 65473 over 65472"), std::string::npos)
      << parsed.status();
}

TEST(ApiRequest, ResolveWireFormIsLengthThenNameBytes) {
  std::vector<uint8_t> bytes = EncodeRequest(ResolveRequest{"Ab."});
  std::vector<uint8_t> expected = Header(kVersion, 11);
  expected.resize(6);
  PutHostU16(expected, 4, 3);
  expected.insert(expected.end(), {'A', 'b', '.'});
  EXPECT_EQ(Hex(bytes), Hex(expected));
}

TEST(ApiRequest, StatusFormatOtherThanZeroOrOneIsRejected) {
  for (uint8_t format : {uint8_t{2}, uint8_t{0x80}, uint8_t{0xff}}) {
    std::vector<uint8_t> bytes = Header(kVersion, static_cast<uint16_t>(Opcode::kStatus));
    bytes.push_back(format);
    absl::StatusOr<Request> parsed = ParseRequest(bytes);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), absl::StrCat("bad status format ", format));
  }
}

TEST(ApiRequest, ConnectFlagsOtherThanNonBlockingAreRejectedAndNamed) {
  for (uint32_t flags : {2u, 3u, 0x80000000u}) {
    ConnectRequest q{kRef, V4("198.51.100.10", 80)};
    q.flags = flags;
    absl::StatusOr<Request> parsed = ParseRequest(EncodeRequest(q));
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().message(), absl::StrCat("unknown connect flags ", flags));
  }
}

TEST(ApiRequest, EmptyMessageIsATruncatedHeader) {
  absl::StatusOr<Request> parsed = ParseRequest({});
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "truncated header");
}

// The fuzzer's seed corpus (fuzz/corpus/api_request) holds one valid request of each opcode.
TEST(ApiRequest, FuzzSeedCorpusHasOneValidRequestOfEveryOpcode) {
  std::set<uint16_t> opcodes;
  for (const auto& entry : std::filesystem::directory_iterator(DPM_FUZZ_CORPUS_DIR "/api_request")) {
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    absl::StatusOr<Request> parsed = ParseRequest(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(EncodeRequest(*parsed), bytes);
    opcodes.insert(HostU16At(bytes, 2));
  }
  std::set<uint16_t> all;
  for (uint16_t op = static_cast<uint16_t>(Opcode::kSocket); op <= static_cast<uint16_t>(Opcode::kVpmConfigure); ++op) {
    all.insert(op);
  }
  EXPECT_EQ(opcodes, all);
}

// ---- replies, accept records, endpoints, socket references ---------------------------

TEST(ApiReply, RoundTripsOpcodeErrorAndBody) {
  std::vector<Reply> replies = {
      {Opcode::kSocket, 0, EncodeSocketRef(kRef)},
      {Opcode::kConnect, ECONNREFUSED, {}},
      {Opcode::kGetPeerName, 0, EncodeEndpoint(V6("2001:db8::7", 5351))},
      {Opcode::kGetSockOpt, 0, {4, 0, 1, 0, 0, 0}},
      {Opcode::kStatus, 0, std::vector<uint8_t>(5000, 'x')},
      {Opcode::kBind, -1, {}},
  };
  for (const Reply& reply : replies) {
    std::vector<uint8_t> encoded = EncodeReply(reply);
    ASSERT_EQ(encoded.size(), 8 + reply.body.size());
    absl::StatusOr<Reply> parsed = ParseReply(encoded);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->opcode, reply.opcode);
    EXPECT_EQ(parsed->error, reply.error);
    EXPECT_EQ(parsed->body, reply.body);
  }
}

TEST(ApiReply, CutBeforeTheErrorFieldNamesIt) {
  std::vector<uint8_t> encoded = EncodeReply({Opcode::kListen, EINVAL, {}});
  ASSERT_EQ(encoded.size(), 8u);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    absl::StatusOr<Reply> parsed = ParseReply(absl::MakeConstSpan(encoded.data(), cut));
    ASSERT_FALSE(parsed.ok()) << cut;
    EXPECT_EQ(parsed.status().message(), cut < 4 ? "truncated header" : "truncated error") << cut;
  }
}

TEST(ApiReply, BadVersionIsRejected) {
  std::vector<uint8_t> encoded = EncodeReply({Opcode::kListen, 0, {}});
  PutHostU16(encoded, 0, kVersion + 1);
  absl::StatusOr<Reply> parsed = ParseReply(encoded);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), absl::StrCat("bad version ", kVersion + 1));
}

TEST(ApiAcceptRecord, RoundTripsAllFields) {
  AcceptRecord record{kRef, V4("10.77.1.2", 80), V4("10.77.1.1", 51234)};
  std::vector<uint8_t> encoded = EncodeAcceptRecord(record);
  ASSERT_EQ(encoded.size(), AcceptRecord::kWireSize);
  ASSERT_EQ(AcceptRecord::kWireSize, 56u);
  absl::StatusOr<AcceptRecord> parsed = ParseAcceptRecord(encoded);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(Describe(parsed->ref), Describe(record.ref));
  EXPECT_EQ(Describe(parsed->local), Describe(record.local));
  EXPECT_EQ(Describe(parsed->peer), Describe(record.peer));
}

TEST(ApiAcceptRecord, CutAtEveryByteNamesTheMissingField) {
  std::vector<uint8_t> encoded = EncodeAcceptRecord({kRef, V4("10.77.1.2", 80), V4("10.77.1.1", 9)});
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    absl::StatusOr<AcceptRecord> parsed = ParseAcceptRecord(absl::MakeConstSpan(encoded.data(), cut));
    ASSERT_FALSE(parsed.ok()) << cut;
    const char* expected = cut < 16 ? "truncated socket reference"
                           : cut < 36 ? "truncated local endpoint"
                                      : "truncated peer endpoint";
    EXPECT_EQ(parsed.status().message(), expected) << cut;
  }
  encoded.push_back(0);
  absl::StatusOr<AcceptRecord> parsed = ParseAcceptRecord(encoded);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "trailing bytes");
}

TEST(ApiEndpoint, WireFormRoundTripsAndIsTwentyBytes) {
  for (const Endpoint& e : {V4("203.0.113.9", 1080), V6("::1", 65535), Endpoint{}}) {
    std::vector<uint8_t> encoded = EncodeEndpoint(e);
    ASSERT_EQ(encoded.size(), Endpoint::kWireSize);
    absl::StatusOr<Endpoint> parsed = ParseEndpoint(encoded);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(*parsed == e) << Describe(*parsed) << " vs " << Describe(e);
  }
}

TEST(ApiEndpoint, ParseRejectsTruncationTrailingBytesAndBadFamily) {
  std::vector<uint8_t> encoded = EncodeEndpoint(V4("10.0.0.1", 1));
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    absl::StatusOr<Endpoint> parsed = ParseEndpoint(absl::MakeConstSpan(encoded.data(), cut));
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().message(), "truncated endpoint") << cut;
  }
  std::vector<uint8_t> longer = encoded;
  longer.push_back(1);
  EXPECT_EQ(ParseEndpoint(longer).status().message(), "trailing bytes");
  std::vector<uint8_t> bad = encoded;
  PutHostU16(bad, 0, AF_UNIX);
  EXPECT_EQ(ParseEndpoint(bad).status().message(), absl::StrCat("bad endpoint family ", AF_UNIX));
}

TEST(ApiSocketRef, RoundTripsAndRejectsTruncationAndTrailingBytes) {
  std::vector<uint8_t> encoded = EncodeSocketRef(kRef);
  ASSERT_EQ(encoded.size(), SocketRef::kWireSize);
  absl::StatusOr<SocketRef> parsed = ParseSocketRef(encoded);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, kRef.id);
  EXPECT_EQ(parsed->cookie, kRef.cookie);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_EQ(ParseSocketRef(absl::MakeConstSpan(encoded.data(), cut)).status().message(),
              "truncated socket reference")
        << cut;
  }
  encoded.push_back(0);
  EXPECT_EQ(ParseSocketRef(encoded).status().message(), "trailing bytes");
}

TEST(ApiEndpoint, FromSockaddrConvertsIpv4AndIpv6) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  inet_pton(AF_INET, "10.77.1.2", &in.sin_addr);
  Endpoint e;
  ASSERT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in), &e), 0);
  EXPECT_EQ(e.family, AF_INET);
  EXPECT_EQ(e.port_host(), 8080);
  EXPECT_EQ(e.ipv4_host(), 0x0a4d0102u);
  EXPECT_EQ(e.ToString(), "10.77.1.2:8080");

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
  ASSERT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6), &e), 0);
  EXPECT_EQ(e.family, AF_INET6);
  EXPECT_EQ(e.port_host(), 443);
  EXPECT_EQ(std::memcmp(e.address, &in6.sin6_addr, 16), 0);
  EXPECT_EQ(e.ToString(), "[2001:db8::5]:443");
}

TEST(ApiEndpoint, FromSockaddrRejectsOtherFamiliesAndShortLengths) {
  Endpoint e;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(un), &e), EAFNOSUPPORT);

  sockaddr_in in{};
  in.sin_family = AF_INET;
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in) - 1, &e), EINVAL);
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in), 1, &e), EINVAL);
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in), 0, &e), EINVAL);

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(sockaddr_in), &e), EINVAL);
  EXPECT_EQ(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6) - 1, &e), EINVAL);

  EXPECT_EQ(Endpoint::FromSockaddr(nullptr, sizeof(in), &e), EFAULT);
}

// getsockname(2): the address is truncated to the caller's buffer and *len reports the
// full size, so the caller can tell it was truncated.
TEST(ApiEndpoint, ToSockaddrCopiesAtMostLenBytesAndReportsTheFullSize) {
  const Endpoint v4 = V4("10.77.1.2", 80);
  sockaddr_in full{};
  socklen_t len = sizeof(full);
  v4.ToSockaddr(reinterpret_cast<sockaddr*>(&full), &len);
  EXPECT_EQ(len, sizeof(sockaddr_in));
  EXPECT_EQ(full.sin_family, AF_INET);
  EXPECT_EQ(full.sin_port, htons(80));
  EXPECT_EQ(ntohl(full.sin_addr.s_addr), 0x0a4d0102u);

  for (socklen_t room : {socklen_t{0}, socklen_t{1}, socklen_t{4}, socklen_t{7}}) {
    SCOPED_TRACE(room);
    uint8_t buffer[sizeof(sockaddr_storage)];
    std::memset(buffer, 0xee, sizeof(buffer));
    len = room;
    v4.ToSockaddr(reinterpret_cast<sockaddr*>(buffer), &len);
    EXPECT_EQ(len, sizeof(sockaddr_in));
    EXPECT_EQ(std::memcmp(buffer, &full, room), 0);
    for (size_t i = room; i < sizeof(buffer); ++i) ASSERT_EQ(buffer[i], 0xee) << "byte " << i << " written";
  }

  // A buffer larger than needed gets exactly the sockaddr_in6, and *len shrinks to it.
  const Endpoint v6 = V6("2001:db8::1", 5351);
  sockaddr_storage storage;
  std::memset(&storage, 0xee, sizeof(storage));
  len = sizeof(storage);
  v6.ToSockaddr(reinterpret_cast<sockaddr*>(&storage), &len);
  EXPECT_EQ(len, sizeof(sockaddr_in6));
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  EXPECT_EQ(in6->sin6_family, AF_INET6);
  EXPECT_EQ(in6->sin6_port, htons(5351));
  EXPECT_EQ(std::memcmp(&in6->sin6_addr, v6.address, 16), 0);
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(&storage)[sizeof(sockaddr_in6)], 0xee);
}

TEST(ApiEndpoint, Ipv4ConstructorAndToString) {
  Endpoint e = Endpoint::Ipv4(0xcb007109, 1080);  // 203.0.113.9
  EXPECT_EQ(e.family, AF_INET);
  EXPECT_EQ(e.port_be, htons(1080));
  EXPECT_EQ(e.ipv4_host(), 0xcb007109u);
  EXPECT_EQ(e.ToString(), "203.0.113.9:1080");
  EXPECT_EQ(Endpoint{}.ToString(), "*");
  EXPECT_TRUE(e == V4("203.0.113.9", 1080));
  EXPECT_FALSE(e == V4("203.0.113.9", 1081));
  EXPECT_FALSE(e == V4("203.0.113.8", 1080));
}

}  // namespace
}  // namespace dpm::api
