// The tunnel control messages (src/tunnel/control.h): the wire layout, round trips, and a
// clean error for every malformed input (every cut of a valid message, bad header fields,
// limits, trailing bytes).
#include "tunnel/control.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

using ::testing::HasSubstr;

ServiceKey KeyOf(uint8_t first) {
  ServiceKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(first + i);
  return key;
}

// One valid message of each shape the protocol uses.
std::vector<std::pair<std::string, ControlMessage>> Samples() {
  return {
      {"hello_proxy", Hello{Role::kProxy, "alpha", "0123456789abcdef-token", {"web", "ssh", "db"}}},
      {"hello_redirector", Hello{Role::kRedirector, "bob", "bob-secret-token-1234", {}}},
      {"welcome_proxy",
       Welcome{15,
               {{"web", PublishStatus::kPublished, "web.alpha.dpm.internal", KeyOf(1)},
                {"Bad_Name", PublishStatus::kBadName, "", {}},
                {"web", PublishStatus::kDuplicate, "", {}},
                {"extra", PublishStatus::kLimit, "", {}}}}},
      {"welcome_redirector", Welcome{30, {{"web", PublishStatus::kPublished, "web.alpha.dpm.internal", {}}}}},
      {"welcome_empty", Welcome{15, {}}},
      {"refused_authentication", Refused{RefuseReason::kAuthentication, "unknown name or wrong token"}},
      {"refused_version", Refused{RefuseReason::kVersion, "version 1 only"}},
      {"refused_limit", Refused{RefuseReason::kLimit, ""}},
      {"refused_malformed", Refused{RefuseReason::kMalformed, "truncated token"}},
  };
}

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<ControlMessage> parsed = ParseControl(bytes);
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

// A message of `type` with `body` as its body.
std::vector<uint8_t> Framed(ControlType type, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> bytes = {'D', 'P', 'M', 'T', kProtocolVersion, static_cast<uint8_t>(type), 0, 0};
  const auto size = static_cast<uint32_t>(body.size());
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(size >> shift));
  bytes.insert(bytes.end(), body.begin(), body.end());
  return bytes;
}

void AppendString(std::vector<uint8_t>* out, const std::string& text) {
  out->push_back(static_cast<uint8_t>(text.size() >> 8));
  out->push_back(static_cast<uint8_t>(text.size()));
  out->insert(out->end(), text.begin(), text.end());
}

std::vector<uint8_t> HelloBody(const std::string& token, size_t services) {
  std::vector<uint8_t> body = {static_cast<uint8_t>(Role::kProxy)};
  AppendString(&body, "alpha");
  AppendString(&body, token);
  body.push_back(static_cast<uint8_t>(services >> 8));
  body.push_back(static_cast<uint8_t>(services));
  for (size_t i = 0; i < services; ++i) AppendString(&body, "s" + std::to_string(i));
  return body;
}

TEST(TunnelControl, EveryMessageRoundTrips) {
  for (const auto& [name, message] : Samples()) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = EncodeControl(message);
    absl::StatusOr<size_t> size = ControlMessageSize(bytes);
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_EQ(*size, bytes.size());
    absl::StatusOr<ControlMessage> parsed = ParseControl(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, message);
    EXPECT_EQ(EncodeControl(*parsed), bytes);
  }
}

TEST(TunnelControl, WireLayoutIsTheDocumentedOne) {
  // "DPMT", version 1, type 3, u16 zero, u32 body length 4, reason 2, string "v".
  EXPECT_EQ(EncodeControl(Refused{RefuseReason::kVersion, "v"}),
            (std::vector<uint8_t>{'D', 'P', 'M', 'T', 1, 3, 0, 0, 0, 0, 0, 4, 2, 0, 1, 'v'}));
  // Role 2, name "b", token "t", no services.
  EXPECT_EQ(EncodeControl(Hello{Role::kRedirector, "b", "t", {}}),
            (std::vector<uint8_t>{'D', 'P', 'M', 'T', 1, 1, 0, 0, 0, 0, 0, 9, 2, 0, 1, 'b', 0, 1, 't', 0, 0}));
  // Keepalive 0x0102 s, one entry: "w", status 0, pseudo name "p", the 16-byte key.
  std::vector<uint8_t> welcome = {'D', 'P', 'M', 'T', 1, 2, 0, 0, 0, 0, 0, 29,   // header
                                  0, 0, 1, 2, 0, 1, 0, 1, 'w', 0, 0, 1, 'p'};  // body before the key
  for (uint8_t b : KeyOf(0xa0)) welcome.push_back(b);
  EXPECT_EQ(EncodeControl(Welcome{0x0102, {{"w", PublishStatus::kPublished, "p", KeyOf(0xa0)}}}), welcome);
}

TEST(TunnelControl, EveryCutOfAValidMessageIsACleanError) {
  for (const auto& [name, message] : Samples()) {
    const std::vector<uint8_t> bytes = EncodeControl(message);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      SCOPED_TRACE(name + " cut at " + std::to_string(cut));
      const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      EXPECT_FALSE(ParseControl(prefix).ok());
      absl::StatusOr<size_t> size = ControlMessageSize(prefix);
      // A whole header tells the size; fewer bytes are an error, not a guess.
      EXPECT_EQ(size.ok(), cut >= kControlHeaderSize);
      if (size.ok()) {
        EXPECT_EQ(*size, bytes.size());
      }
    }
  }
}

TEST(TunnelControl, CutBodyNamesTheMissingField) {
  // The body is cut to the exact length of a prefix, so the header's length agrees with it.
  const std::vector<uint8_t> body = HelloBody("0123456789abcdef", 2);
  const auto cut = [&](size_t n) {
    return std::vector<uint8_t>(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
  };
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, cut(0))), "truncated role");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, cut(3))), "truncated name");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, cut(1 + 7 + 5))), "truncated token");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, cut(1 + 7 + 18 + 1))), "truncated service count");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, cut(1 + 7 + 18 + 2 + 4 + 1))), "truncated service 1");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kWelcome, {0, 0})), "truncated keepalive");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kRefused, {})), "truncated reason");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kRefused, {1, 0, 5, 'a'})), "truncated message");
  // The header promises more body than came.
  std::vector<uint8_t> whole = EncodeControl(Refused{RefuseReason::kLimit, "busy"});
  whole.pop_back();
  EXPECT_EQ(ErrorOf(whole), "truncated body");
}

TEST(TunnelControl, BadHeaderFieldsAreRefused) {
  const std::vector<uint8_t> good = EncodeControl(Refused{RefuseReason::kLimit, "x"});
  std::vector<uint8_t> bytes = good;
  bytes[0] = 'X';
  EXPECT_EQ(ErrorOf(bytes), "bad magic");
  EXPECT_EQ(ControlMessageSize(bytes).status().message(), "bad magic");
  bytes = good;
  bytes[4] = 2;
  EXPECT_EQ(ErrorOf(bytes), "bad version 2");
  bytes = good;
  bytes[5] = 9;
  EXPECT_EQ(ErrorOf(bytes), "bad type 9");
  bytes = good;
  bytes[7] = 1;
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("not zero"));
}

TEST(TunnelControl, OversizeBodyIsRefusedFromTheHeaderAlone) {
  std::vector<uint8_t> header = {'D', 'P', 'M', 'T', 1, 1, 0, 0, 0, 0x01, 0x11, 0x70};  // 70000
  absl::StatusOr<size_t> size = ControlMessageSize(header);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().message(), "body of 70000 bytes, at most 65536");
  header[9] = 0x01, header[10] = 0x00, header[11] = 0x00;  // exactly 65536: allowed
  size = ControlMessageSize(header);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, kControlHeaderSize + kMaxControlBody);
}

TEST(TunnelControl, TrailingBytesAreAnError) {
  std::vector<uint8_t> bytes = EncodeControl(Hello{Role::kProxy, "alpha", "0123456789abcdef", {"web"}});
  bytes.push_back(0);
  EXPECT_EQ(ErrorOf(bytes), "1 bytes after the message");
  // Bytes inside the declared body that no field reads.
  std::vector<uint8_t> body = HelloBody("0123456789abcdef", 1);
  body.push_back(0);
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, body)), "1 bytes after the body's last field");
}

TEST(TunnelControl, TokenAndServiceCountLimits) {
  EXPECT_TRUE(ParseControl(Framed(ControlType::kHello, HelloBody(std::string(kMaxTokenSize, 't'), 0))).ok());
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, HelloBody(std::string(kMaxTokenSize + 1, 't'), 0))),
            "token of 257 bytes, at most 256");
  EXPECT_TRUE(ParseControl(Framed(ControlType::kHello, HelloBody("0123456789abcdef", kMaxHelloServices))).ok());
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, HelloBody("0123456789abcdef", kMaxHelloServices + 1))),
            "257 services, at most 256");
}

TEST(TunnelControl, UnknownEnumValuesAreRefused) {
  std::vector<uint8_t> hello = HelloBody("0123456789abcdef", 0);
  hello[0] = 3;
  EXPECT_EQ(ErrorOf(Framed(ControlType::kHello, hello)), "bad role 3");
  std::vector<uint8_t> welcome = EncodeControl(Welcome{1, {{"w", PublishStatus::kPublished, "p", {}}}});
  welcome[kControlHeaderSize + 4 + 2 + 3] = 4;  // the status byte
  EXPECT_EQ(ErrorOf(welcome), "bad status 4 of service 0");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kRefused, {0, 0, 0})), "bad refuse reason 0");
  EXPECT_EQ(ErrorOf(Framed(ControlType::kRefused, {5, 0, 0})), "bad refuse reason 5");
}

TEST(TunnelControl, KeyHexRoundTripsAndRefusesOtherForms) {
  const ServiceKey key = KeyOf(0xf0);
  EXPECT_EQ(KeyToHex(key), "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  ServiceKey back{};
  ASSERT_TRUE(KeyFromHex(KeyToHex(key), &back));
  EXPECT_EQ(back, key);
  const ServiceKey untouched = KeyOf(7);
  for (const char* bad : {"F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfef", "",
                          "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0", "g0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                          "f0f1f2f3f4f5f6f7f8f9fafbfcfdfe f"}) {
    SCOPED_TRACE(bad);
    ServiceKey out = untouched;
    EXPECT_FALSE(KeyFromHex(bad, &out));
    EXPECT_EQ(out, untouched);
  }
}

TEST(TunnelControl, EverySeedParsesAndReencodesToItself) {
  std::set<uint8_t> types;
  for (const auto& entry : std::filesystem::directory_iterator(DPM_FUZZ_CORPUS_DIR "/tunnel_control")) {
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    absl::StatusOr<ControlMessage> parsed = ParseControl(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(EncodeControl(*parsed), bytes);
    types.insert(bytes[5]);
  }
  EXPECT_EQ(types, (std::set<uint8_t>{1, 2, 3}));
}

}  // namespace
}  // namespace dpm::tunnel
