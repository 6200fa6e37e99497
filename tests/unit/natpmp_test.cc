// The NAT-PMP codec (src/dpm/natpmp.h, RFC 6886): every request and response against the
// RFC's byte layouts written by hand, truncation at every byte, bad versions and opcodes, and
// the error responses of §3.5 (with erratum 3618).
#include "dpm/natpmp.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "test_bytes.h"

namespace dpm::natpmp {
namespace {

using dpm::testing::Cut;
using dpm::testing::FromHex;
using dpm::testing::Hex;

TEST(NatPmp, ResultNames) {
  const std::vector<std::string> names = {"SUCCESS",         "UNSUPP_VERSION",   "NOT_AUTHORIZED",
                                          "NETWORK_FAILURE", "OUT_OF_RESOURCES", "UNSUPP_OPCODE"};
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(ResultName(static_cast<ResultCode>(i)), names[i]);
  EXPECT_STREQ(ResultName(static_cast<ResultCode>(6)), "UNKNOWN");
}

TEST(NatPmp, DispatchOnTheVersionByte) {
  // RFC 6887 §9: on port 5351, version 0 is NAT-PMP and everything else PCP.
  EXPECT_FALSE(IsNatPmp({}));
  EXPECT_TRUE(IsNatPmp(std::vector<uint8_t>{0}));
  EXPECT_TRUE(IsNatPmp(FromHex("0000")));
  EXPECT_TRUE(IsNatPmp(FromHex("0001 0000 1f90 1f90 00001c20")));
  EXPECT_FALSE(IsNatPmp(FromHex("0201 0000")));
  EXPECT_FALSE(IsNatPmp(FromHex("0100")));
}

// ---- requests --------------------------------------------------------------------------

struct RequestSample {
  std::string name;
  Request request;
  std::string hex;  // RFC 6886 §3.2 and §3.3 figures
};

std::vector<RequestSample> ValidRequests() {
  return {
      {"public_address", Request{kOpPublicAddress, 0, 0, 0}, "00 00"},
      // natpmpc -a 8080 8080 udp 7200
      {"map_udp", Request{kOpMapUdp, 8080, 8080, 7200}, "00 01 0000 | 1f90 1f90 | 00001c20"},
      // natpmpc -a 22 0 tcp 3600
      {"map_tcp", Request{kOpMapTcp, 22, 0, 3600}, "00 02 0000 | 0016 0000 | 00000e10"},
      // delete every TCP mapping of the client (§3.4): internal port 0, lifetime 0
      {"map_tcp_delete_all", Request{kOpMapTcp, 0, 0, 0}, "00 02 0000 | 0000 0000 | 00000000"},
  };
}

TEST(NatPmpRequest, EveryOpcodeMatchesTheRfcLayout) {
  for (const RequestSample& s : ValidRequests()) {
    SCOPED_TRACE(s.name);
    const std::vector<uint8_t> want = FromHex(s.hex);
    EXPECT_EQ(Hex(EncodeRequest(s.request)), Hex(want));
    const ParsedRequest parsed = ParseRequest(want);
    ASSERT_TRUE(parsed.ok()) << parsed.message;
    EXPECT_EQ(parsed.request->opcode, s.request.opcode);
    EXPECT_EQ(parsed.request->internal_port, s.request.internal_port);
    EXPECT_EQ(parsed.request->suggested_external_port, s.request.suggested_external_port);
    EXPECT_EQ(parsed.request->lifetime, s.request.lifetime);
  }
}

TEST(NatPmpRequest, ReservedBitsAndTrailingBytesAreIgnored) {
  const ParsedRequest map = ParseRequest(FromHex("00 01 ffff | 1f90 1f90 | 00001c20 | abcdef"));
  ASSERT_TRUE(map.ok()) << map.message;
  EXPECT_EQ(*map.request, (Request{kOpMapUdp, 8080, 8080, 7200}));
  const ParsedRequest pub = ParseRequest(FromHex("00 00 0000 0000 0000 0000 0000"));
  ASSERT_TRUE(pub.ok()) << pub.message;
  EXPECT_EQ(*pub.request, (Request{kOpPublicAddress, 0, 0, 0}));
}

TEST(NatPmpRequest, EveryCutIsDroppedWithTheFieldNamed) {
  for (const RequestSample& s : ValidRequests()) {
    const std::vector<uint8_t> full = FromHex(s.hex);
    for (size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(absl::StrCat(s.name, " cut at ", n));
      const ParsedRequest parsed = ParseRequest(Cut(full, n));
      ASSERT_FALSE(parsed.ok());
      EXPECT_TRUE(parsed.drop);
      if (n < 2) {
        EXPECT_EQ(parsed.message, absl::StrCat("truncated header: ", n, " bytes, want 2"));
      } else {
        EXPECT_EQ(parsed.message, absl::StrCat("truncated map request: ", n, " bytes, want 12"));
      }
      EXPECT_TRUE(EncodeErrorResponse(Cut(full, n), parsed.result, 1).empty());
    }
  }
}

TEST(NatPmpRequest, BadVersionGetsUnsupportedVersion) {
  for (uint8_t version : {1, 2, 255}) {
    SCOPED_TRACE(int{version});
    std::vector<uint8_t> b = FromHex("00 01 0000 | 1f90 1f90 | 00001c20");
    b[0] = version;
    const ParsedRequest parsed = ParseRequest(b);
    ASSERT_FALSE(parsed.ok());
    EXPECT_FALSE(parsed.drop);
    EXPECT_EQ(parsed.result, ResultCode::kUnsuppVersion);
    EXPECT_EQ(parsed.message, absl::StrCat("unsupported version ", version, ", want 0"));
    // §3.5 with erratum 3618: vers 0, op 128, result 1, epoch.
    EXPECT_EQ(Hex(EncodeErrorResponse(b, parsed.result, 0x1234)), Hex(FromHex("00 80 0001 | 00001234")));
    absl::StatusOr<Response> seen = ParseResponse(EncodeErrorResponse(b, parsed.result, 0x1234));
    ASSERT_TRUE(seen.ok()) << seen.status();
    EXPECT_EQ(seen->result, ResultCode::kUnsuppVersion);
    EXPECT_EQ(seen->epoch, 0x1234u);
  }
}

TEST(NatPmpRequest, ResponsesAreDroppedAndUnknownOpcodesEchoed) {
  for (uint8_t op : {128, 129, 130, 255}) {
    const ParsedRequest parsed = ParseRequest(std::vector<uint8_t>{0, op, 0, 0});
    ASSERT_FALSE(parsed.ok());
    EXPECT_TRUE(parsed.drop);
    EXPECT_EQ(parsed.message, absl::StrCat("opcode ", op, " is a response"));
  }
  // §3.5: the entire request comes back with the top bit of the opcode and result code 5.
  const std::vector<uint8_t> b = FromHex("00 03 0000 | 1f90 1f90 | 00001c20");
  const ParsedRequest parsed = ParseRequest(b);
  ASSERT_FALSE(parsed.ok());
  EXPECT_FALSE(parsed.drop);
  EXPECT_EQ(parsed.result, ResultCode::kUnsuppOpcode);
  EXPECT_EQ(parsed.message, "unsupported opcode 3");
  EXPECT_EQ(Hex(EncodeErrorResponse(b, parsed.result, 9)), Hex(FromHex("00 83 0005 | 1f90 1f90 | 00001c20")));
  // A bare 2-byte request gets room for the result code.
  EXPECT_EQ(Hex(EncodeErrorResponse(FromHex("00 7f"), ResultCode::kUnsuppOpcode, 9)), "00ff0005");
  EXPECT_EQ(ParseRequest(FromHex("00 7f")).result, ResultCode::kUnsuppOpcode);
  absl::StatusOr<Response> seen = ParseResponse(EncodeErrorResponse(b, parsed.result, 9));
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->opcode, 3);
  EXPECT_EQ(seen->result, ResultCode::kUnsuppOpcode);
  // Other results have no generic error form: the server uses the response encoders.
  EXPECT_TRUE(EncodeErrorResponse(b, ResultCode::kNotAuthorized, 9).empty());
}

// ---- responses -------------------------------------------------------------------------

struct ResponseSample {
  std::string name;
  std::vector<uint8_t> encoded;
  Response response;
  std::string hex;
};

std::vector<ResponseSample> ValidResponses() {
  return {
      // §3.2: public address 203.0.113.7, 12345 s since the epoch.
      {"public_address", EncodePublicAddressResponse(ResultCode::kSuccess, 12345, 0xcb007107),
       Response{0, ResultCode::kSuccess, 12345, 0xcb007107, 0, 0, 0},
       "00 80 0000 | 00003039 | cb007107"},
      // §3.3: UDP 8080 mapped to 40001 for 7200 s.
      {"map_udp", EncodeMapResponse(kOpMapUdp, ResultCode::kSuccess, 100, 8080, 40001, 7200),
       Response{1, ResultCode::kSuccess, 100, 0, 8080, 40001, 7200},
       "00 81 0000 | 00000064 | 1f90 9c41 | 00001c20"},
      {"map_tcp", EncodeMapResponse(kOpMapTcp, ResultCode::kSuccess, 101, 22, 2222, 3600),
       Response{2, ResultCode::kSuccess, 101, 0, 22, 2222, 3600},
       "00 82 0000 | 00000065 | 0016 08ae | 00000e10"},
      // Errors keep the full layout: internal port copied, external port and lifetime 0.
      {"map_tcp_refused", EncodeMapResponse(kOpMapTcp, ResultCode::kNotAuthorized, 102, 22, 0, 0),
       Response{2, ResultCode::kNotAuthorized, 102, 0, 22, 0, 0},
       "00 82 0002 | 00000066 | 0016 0000 | 00000000"},
      {"public_address_no_network",
       EncodePublicAddressResponse(ResultCode::kNetworkFailure, 5, 0),
       Response{0, ResultCode::kNetworkFailure, 5, 0, 0, 0, 0}, "00 80 0003 | 00000005 | 00000000"},
      {"map_udp_out_of_resources",
       EncodeMapResponse(kOpMapUdp, ResultCode::kOutOfResources, 6, 5060, 0, 0),
       Response{1, ResultCode::kOutOfResources, 6, 0, 5060, 0, 0},
       "00 81 0004 | 00000006 | 13c4 0000 | 00000000"},
  };
}

TEST(NatPmpResponse, EveryResponseMatchesTheRfcLayout) {
  for (const ResponseSample& s : ValidResponses()) {
    SCOPED_TRACE(s.name);
    EXPECT_EQ(Hex(s.encoded), Hex(FromHex(s.hex)));
    absl::StatusOr<Response> parsed = ParseResponse(FromHex(s.hex));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->opcode, s.response.opcode);
    EXPECT_EQ(parsed->result, s.response.result);
    EXPECT_EQ(parsed->epoch, s.response.epoch);
    EXPECT_EQ(parsed->external_address, s.response.external_address);
    EXPECT_EQ(parsed->internal_port, s.response.internal_port);
    EXPECT_EQ(parsed->external_port, s.response.external_port);
    EXPECT_EQ(parsed->lifetime, s.response.lifetime);
  }
}

TEST(NatPmpResponse, EveryCutOfASuccessResponseGetsTheExactError) {
  for (const ResponseSample& s : ValidResponses()) {
    if (s.response.result != ResultCode::kSuccess) continue;
    const std::vector<uint8_t> full = FromHex(s.hex);
    for (size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(absl::StrCat(s.name, " cut at ", n));
      absl::StatusOr<Response> parsed = ParseResponse(Cut(full, n));
      ASSERT_FALSE(parsed.ok());
      if (n < 4) {
        EXPECT_EQ(parsed.status().message(), absl::StrCat("truncated header: ", n, " bytes, want 4"));
      } else {
        EXPECT_EQ(parsed.status().message(),
                  absl::StrCat("truncated response: ", n, " bytes, want ", full.size()));
      }
    }
  }
}

TEST(NatPmpResponse, ErrorResponsesMayStopAfterTheHeader) {
  absl::StatusOr<Response> parsed = ParseResponse(FromHex("00 81 0003 | 00000007"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->result, ResultCode::kNetworkFailure);
  EXPECT_EQ(parsed->epoch, 7u);
  EXPECT_EQ(parsed->internal_port, 0);
  parsed = ParseResponse(FromHex("00 81 0003"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->epoch, 0u);
}

TEST(NatPmpResponse, RejectsRequestsBadVersionsAndUnknownSuccessOpcodes) {
  EXPECT_EQ(ParseResponse(FromHex("00 01 0000 | 1f90 1f90 | 00001c20")).status().message(),
            "opcode 1 is a request");
  EXPECT_EQ(ParseResponse(FromHex("02 80 0000 | 00000000 | 00000000")).status().message(),
            "unsupported version 2, want 0");
  EXPECT_EQ(ParseResponse(FromHex("00 83 0000 | 00000000")).status().message(), "unsupported opcode 131");
}

// ---- the checked-in fuzz seeds --------------------------------------------------------

TEST(NatPmpCorpus, SeedsCoverEveryOpcodeAndParse) {
  std::set<uint8_t> request_opcodes;
  for (const auto& entry : std::filesystem::directory_iterator(DPM_FUZZ_CORPUS_DIR "/natpmp")) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GE(bytes.size(), 2u);
    if ((bytes[1] & kResponseBit) != 0) {
      absl::StatusOr<Response> parsed = ParseResponse(bytes);
      EXPECT_TRUE(parsed.ok()) << parsed.status();
      continue;
    }
    const ParsedRequest parsed = ParseRequest(bytes);
    if (name.rfind("bad_", 0) == 0) {
      EXPECT_FALSE(parsed.ok());
      continue;
    }
    ASSERT_TRUE(parsed.ok()) << parsed.message;
    EXPECT_EQ(EncodeRequest(*parsed.request), bytes);
    request_opcodes.insert(parsed.request->opcode);
  }
  EXPECT_EQ(request_opcodes, (std::set<uint8_t>{0, 1, 2}));
}

}  // namespace
}  // namespace dpm::natpmp
