// The PCP codec (src/dpm/pcp.h, RFC 6887): every opcode against byte layouts written by hand
// from the RFC's figures, truncation at every byte with the exact result code and message,
// every error path of a server (§8.3), error responses never larger than the request, the
// client's response parser, the seed corpora, and tshark's decoding of an encoded PEER request.
#include "dpm/pcp.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "test_bytes.h"

namespace dpm::pcp {
namespace {

// ---- helpers -------------------------------------------------------------------------

using dpm::testing::Cut;
using dpm::testing::FromHex;
// PCP messages read in 32-bit words, as RFC 6887 draws them.
std::string Hex(absl::Span<const uint8_t> bytes) { return dpm::testing::Hex(bytes, 4); }

Address V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  Address out;
  out.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
  return out;
}

Address V6(std::initializer_list<uint8_t> sixteen) {
  Address out;
  std::copy(sixteen.begin(), sixteen.end(), out.bytes.begin());
  return out;
}

// 2001:db8::1:2
const Address kV6Client = V6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2});
const std::array<uint8_t, 12> kNonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

// ---- Address ---------------------------------------------------------------------------

TEST(PcpAddress, Ipv4MappedHelpers) {
  const Address a = Address::FromIpv4(0xcb007107);  // 203.0.113.7
  EXPECT_EQ(Hex(a.bytes), "00000000 00000000 0000ffff cb007107");
  EXPECT_TRUE(a.is_ipv4());
  EXPECT_EQ(a.ipv4(), 0xcb007107u);
  EXPECT_EQ(a.ToString(), "203.0.113.7");
  EXPECT_FALSE(a.is_unspecified());
  EXPECT_EQ(a, V4(203, 0, 113, 7));
}

TEST(PcpAddress, Ipv4MappedChecksAllOfTheFirst96Bits) {
  // RFC 6887 §5: checking only bits 81-96 for ones is not enough.
  for (size_t i = 0; i < 10; ++i) {
    Address a = Address::FromIpv4(0x0a000001);
    a.bytes[i] = 0x01;
    EXPECT_FALSE(a.is_ipv4()) << i;
  }
  Address half = Address::FromIpv4(0x0a000001);
  half.bytes[10] = 0x00;
  EXPECT_FALSE(half.is_ipv4());
  EXPECT_FALSE(kV6Client.is_ipv4());
  EXPECT_EQ(kV6Client.ToString(), "2001:db8::1:2");
}

TEST(PcpAddress, UnspecifiedIsAllZerosOrMappedZero) {
  EXPECT_TRUE(Address{}.is_unspecified());                  // ::
  EXPECT_TRUE(Address::FromIpv4(0).is_unspecified());       // ::ffff:0.0.0.0
  EXPECT_TRUE(Address::FromIpv4(0).is_ipv4());
  EXPECT_FALSE(Address::FromIpv4(1).is_unspecified());
  EXPECT_FALSE(V6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}).is_unspecified());  // ::1
  EXPECT_EQ(Address{}.ToString(), "::");
  EXPECT_EQ(Address::FromIpv4(0).ToString(), "0.0.0.0");
}

TEST(PcpNames, ResultOpcodeAndOptionNames) {
  const std::vector<std::string> names = {
      "SUCCESS",          "UNSUPP_VERSION",  "NOT_AUTHORIZED",         "MALFORMED_REQUEST",
      "UNSUPP_OPCODE",    "UNSUPP_OPTION",   "MALFORMED_OPTION",       "NETWORK_FAILURE",
      "NO_RESOURCES",     "UNSUPP_PROTOCOL", "USER_EX_QUOTA",          "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(ResultName(static_cast<ResultCode>(i)), names[i]);
  }
  EXPECT_STREQ(ResultName(static_cast<ResultCode>(14)), "UNKNOWN");
  EXPECT_STREQ(OpcodeName(Opcode::kAnnounce), "ANNOUNCE");
  EXPECT_STREQ(OpcodeName(Opcode::kMap), "MAP");
  EXPECT_STREQ(OpcodeName(Opcode::kPeer), "PEER");
  EXPECT_STREQ(OpcodeName(static_cast<Opcode>(5)), "UNKNOWN");
  EXPECT_STREQ(OptionName(1), "THIRD_PARTY");
  EXPECT_STREQ(OptionName(2), "PREFER_FAILURE");
  EXPECT_STREQ(OptionName(3), "FILTER");
  EXPECT_STREQ(OptionName(96), "DPM_PORT_FIXED");
  EXPECT_STREQ(OptionName(224), "DPM_SESSION_ENDPOINT");
  EXPECT_STREQ(OptionName(64), "UNKNOWN");
}

TEST(PcpNames, DpmOptionsSitInThePrivateUseRanges) {
  // IANA "PCP Options": 96-126 private use, mandatory to process; 224-254 private use,
  // optional to process.
  EXPECT_TRUE(IsMandatoryOption(kDpmPortFixed));
  EXPECT_GE(kDpmPortFixed, 96);
  EXPECT_LE(kDpmPortFixed, 126);
  EXPECT_FALSE(IsMandatoryOption(kDpmSessionEndpoint));
  EXPECT_GE(kDpmSessionEndpoint, 224);
  EXPECT_LE(kDpmSessionEndpoint, 254);
  EXPECT_TRUE(IsMandatoryOption(0));
  EXPECT_TRUE(IsMandatoryOption(127));
  EXPECT_FALSE(IsMandatoryOption(128));
}

// ---- the valid messages, each with its layout written by hand from the RFC -------------

struct Sample {
  std::string name;
  Request request;
  std::string hex;  // RFC 6887 Figures 2 (header), 9/11 (bodies), 4 (options), 13.x
};

std::vector<Sample> ValidRequests() {
  std::vector<Sample> out;

  // ANNOUNCE (§14.1): the common header only.
  Request announce;
  announce.opcode = Opcode::kAnnounce;
  announce.client_address = V4(10, 77, 1, 2);
  out.push_back({"announce", announce,
                 "02 00 0000 | 00000000 | 00000000 00000000 0000ffff 0a4d0102"});

  // The DPM setup exchange: PEER (§12.1) to 198.51.100.10:80 from TCP port 54321, any
  // external address/port, and the port fixed.
  Request peer;
  peer.opcode = Opcode::kPeer;
  peer.lifetime = 3600;
  peer.client_address = V4(10, 77, 1, 2);
  peer.peer.emplace();
  peer.peer->nonce = kNonce;
  peer.peer->protocol = 6;
  peer.peer->internal_port = 54321;
  peer.peer->external_port = 0;
  peer.peer->external_address = V4(0, 0, 0, 0);
  peer.peer->remote_port = 80;
  peer.peer->remote_address = V4(198, 51, 100, 10);
  peer.dpm_port_fixed = true;
  out.push_back({"peer_port_fixed", peer,
                 "02 02 0000 | 00000e10 | 00000000 00000000 0000ffff 0a4d0102 |"
                 "0102030405060708090a0b0c | 06 000000 | d431 0000 |"
                 "00000000 00000000 0000ffff 00000000 |"
                 "0050 0000 | 00000000 00000000 0000ffff c633640a |"
                 "60 00 0000"});

  // PEER, replaceable port (no option), a suggested external address and port, THIRD_PARTY.
  Request peer2;
  peer2.opcode = Opcode::kPeer;
  peer2.lifetime = 120;
  peer2.client_address = V4(10, 77, 1, 3);
  peer2.peer.emplace();
  peer2.peer->nonce = kNonce;
  peer2.peer->protocol = 17;
  peer2.peer->internal_port = 5060;
  peer2.peer->external_port = 40000;
  peer2.peer->external_address = V4(203, 0, 113, 9);
  peer2.peer->remote_port = 5061;
  peer2.peer->remote_address = V4(198, 51, 100, 20);
  peer2.third_party = V4(10, 77, 2, 8);
  out.push_back({"peer_third_party", peer2,
                 "02 02 0000 | 00000078 | 00000000 00000000 0000ffff 0a4d0103 |"
                 "0102030405060708090a0b0c | 11 000000 | 13c4 9c40 |"
                 "00000000 00000000 0000ffff cb007109 |"
                 "13c5 0000 | 00000000 00000000 0000ffff c6336414 |"
                 "01 00 0010 | 00000000 00000000 0000ffff 0a4d0208"});

  // MAP (§11.1) with every option a MAP may carry: THIRD_PARTY, PREFER_FAILURE, two FILTERs
  // (§13.3), DPM_PORT_FIXED.
  Request map;
  map.opcode = Opcode::kMap;
  map.lifetime = 7200;
  map.client_address = V4(10, 77, 1, 2);
  map.map.emplace();
  map.map->nonce = kNonce;
  map.map->protocol = 6;
  map.map->internal_port = 8080;
  map.map->external_port = 8080;
  map.map->external_address = V4(203, 0, 113, 7);
  map.third_party = V4(10, 77, 1, 9);
  map.prefer_failure = true;
  map.filters.push_back(Filter{120, 443, V4(198, 51, 100, 0)});
  map.filters.push_back(Filter{128, 0, V4(198, 51, 100, 77)});
  map.dpm_port_fixed = true;
  out.push_back({"map_all_options", map,
                 "02 01 0000 | 00001c20 | 00000000 00000000 0000ffff 0a4d0102 |"
                 "0102030405060708090a0b0c | 06 000000 | 1f90 1f90 |"
                 "00000000 00000000 0000ffff cb007107 |"
                 "01 00 0010 | 00000000 00000000 0000ffff 0a4d0109 |"
                 "02 00 0000 |"
                 "03 00 0014 | 00 78 01bb | 00000000 00000000 0000ffff c6336400 |"
                 "03 00 0014 | 00 80 0000 | 00000000 00000000 0000ffff c633644d |"
                 "60 00 0000"});

  // MAP from an IPv6 client, delete (lifetime 0), all protocols.
  Request map6;
  map6.opcode = Opcode::kMap;
  map6.lifetime = 0;
  map6.client_address = kV6Client;
  map6.map.emplace();
  map6.map->nonce = kNonce;
  out.push_back({"map_ipv6_delete", map6,
                 "02 01 0000 | 00000000 | 20010db8 00000000 00000000 00010002 |"
                 "0102030405060708090a0b0c | 00 000000 | 0000 0000 |"
                 "00000000 00000000 00000000 00000000"});
  return out;
}

struct ResponseSample {
  std::string name;
  Response response;
  std::string hex;  // RFC 6887 Figures 3 (header), 10/12 (bodies), 4 (options)
};

std::vector<ResponseSample> ValidResponses() {
  std::vector<ResponseSample> out;

  Response announce;
  announce.opcode = Opcode::kAnnounce;
  announce.epoch = 12345;
  out.push_back({"announce", announce,
                 "02 80 00 00 | 00000000 | 00003039 | 00000000 00000000 00000000"});

  // The DPM server's answer to the setup exchange above: registered 203.0.113.7 with the
  // fixed port 54321 kept, and the gateway endpoint 10.77.0.1:61000 the driver aims the
  // session at.
  Response peer;
  peer.opcode = Opcode::kPeer;
  peer.lifetime = 3600;
  peer.epoch = 99;
  peer.peer.emplace();
  peer.peer->nonce = kNonce;
  peer.peer->protocol = 6;
  peer.peer->internal_port = 54321;
  peer.peer->external_port = 54321;
  peer.peer->external_address = V4(203, 0, 113, 7);
  peer.peer->remote_port = 80;
  peer.peer->remote_address = V4(198, 51, 100, 10);
  peer.dpm_session_endpoint.emplace(V4(10, 77, 0, 1), 61000);
  out.push_back({"peer_session_endpoint", peer,
                 "02 82 00 00 | 00000e10 | 00000063 | 00000000 00000000 00000000 |"
                 "0102030405060708090a0b0c | 06 000000 | d431 d431 |"
                 "00000000 00000000 0000ffff cb007107 |"
                 "0050 0000 | 00000000 00000000 0000ffff c633640a |"
                 "e0 00 0014 | 00000000 00000000 0000ffff 0a4d0001 | ee48 0000"});

  Response map;
  map.opcode = Opcode::kMap;
  map.lifetime = 7200;
  map.epoch = 100;
  map.map.emplace();
  map.map->nonce = kNonce;
  map.map->protocol = 17;
  map.map->internal_port = 5060;
  map.map->external_port = 5060;
  map.map->external_address = V4(203, 0, 113, 7);
  map.third_party = V4(10, 77, 1, 9);
  map.prefer_failure = true;
  map.filters.push_back(Filter{120, 443, V4(198, 51, 100, 0)});
  out.push_back({"map_echoed_options", map,
                 "02 81 00 00 | 00001c20 | 00000064 | 00000000 00000000 00000000 |"
                 "0102030405060708090a0b0c | 11 000000 | 13c4 13c4 |"
                 "00000000 00000000 0000ffff cb007107 |"
                 "01 00 0010 | 00000000 00000000 0000ffff 0a4d0109 |"
                 "02 00 0000 |"
                 "03 00 0014 | 00 78 01bb | 00000000 00000000 0000ffff c6336400"});

  // An error: CANNOT_PROVIDE_EXTERNAL for a fixed port already used towards the same peer.
  Response refused = peer;
  refused.result = ResultCode::kCannotProvideExternal;
  refused.lifetime = 30;
  refused.peer->external_port = 0;
  refused.peer->external_address = V4(0, 0, 0, 0);
  refused.dpm_session_endpoint.reset();
  out.push_back({"peer_cannot_provide_external", refused,
                 "02 82 00 0b | 0000001e | 00000063 | 00000000 00000000 00000000 |"
                 "0102030405060708090a0b0c | 06 000000 | d431 0000 |"
                 "00000000 00000000 0000ffff 00000000 |"
                 "0050 0000 | 00000000 00000000 0000ffff c633640a"});
  return out;
}

TEST(PcpRequest, EveryOpcodeMatchesTheRfcLayout) {
  for (const Sample& s : ValidRequests()) {
    SCOPED_TRACE(s.name);
    const std::vector<uint8_t> want = FromHex(s.hex);
    EXPECT_EQ(Hex(EncodeRequest(s.request)), Hex(want));
    const ParsedRequest parsed = ParseRequest(want);
    ASSERT_TRUE(parsed.ok()) << parsed.error.message;
    EXPECT_EQ(*parsed.request, s.request);
    // Field by field too, so a failure says which one.
    EXPECT_EQ(parsed.request->opcode, s.request.opcode);
    EXPECT_EQ(parsed.request->lifetime, s.request.lifetime);
    EXPECT_EQ(parsed.request->client_address, s.request.client_address);
    EXPECT_EQ(parsed.request->map, s.request.map);
    EXPECT_EQ(parsed.request->peer, s.request.peer);
    EXPECT_EQ(parsed.request->third_party, s.request.third_party);
    EXPECT_EQ(parsed.request->prefer_failure, s.request.prefer_failure);
    EXPECT_EQ(parsed.request->filters, s.request.filters);
    EXPECT_EQ(parsed.request->dpm_port_fixed, s.request.dpm_port_fixed);
  }
}

TEST(PcpRequest, PeerFieldsLandAtTheirRfcOffsets) {
  // Figure 11 offsets counted from the start of the message, independent of the hex above.
  const Request& peer = ValidRequests()[1].request;
  const std::vector<uint8_t> b = EncodeRequest(peer);
  ASSERT_EQ(b.size(), 24u + 56u + 4u);
  EXPECT_EQ(b[0], 2);                                   // Version
  EXPECT_EQ(b[1], 2);                                   // R=0, Opcode PEER
  EXPECT_EQ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7], 3600);  // Requested Lifetime
  EXPECT_EQ(b[23], 2);                                  // client 10.77.1.2, last byte
  EXPECT_EQ(b[24], 1);                                  // Mapping Nonce starts at 24
  EXPECT_EQ(b[35], 12);
  EXPECT_EQ(b[36], 6);                                  // Protocol
  EXPECT_EQ((b[40] << 8) | b[41], 54321);               // Internal Port
  EXPECT_EQ((b[42] << 8) | b[43], 0);                   // Suggested External Port
  EXPECT_EQ(b[54], 0xff);                               // Suggested External IP ::ffff:0.0.0.0
  EXPECT_EQ((b[60] << 8) | b[61], 80);                  // Remote Peer Port
  EXPECT_EQ(b[76], 198);                                // Remote Peer IP, IPv4 part at 76
  EXPECT_EQ(b[79], 10);
  EXPECT_EQ(b[80], 96);                                 // option DPM_PORT_FIXED
  EXPECT_EQ((b[82] << 8) | b[83], 0);                   // length 0
}

TEST(PcpResponse, EveryOpcodeMatchesTheRfcLayout) {
  for (const ResponseSample& s : ValidResponses()) {
    SCOPED_TRACE(s.name);
    const std::vector<uint8_t> want = FromHex(s.hex);
    EXPECT_EQ(Hex(EncodeResponse(s.response)), Hex(want));
    absl::StatusOr<Response> parsed = ParseResponse(want);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, s.response);
    EXPECT_EQ(parsed->opcode, s.response.opcode);
    EXPECT_EQ(parsed->result, s.response.result);
    EXPECT_EQ(parsed->lifetime, s.response.lifetime);
    EXPECT_EQ(parsed->epoch, s.response.epoch);
    EXPECT_EQ(parsed->map, s.response.map);
    EXPECT_EQ(parsed->peer, s.response.peer);
    EXPECT_EQ(parsed->dpm_session_endpoint, s.response.dpm_session_endpoint);
  }
}

// ---- truncation at every byte ----------------------------------------------------------

// Start offsets of the options in a valid message, walked from the TLV lengths by hand.
std::vector<size_t> OptionStarts(const std::vector<uint8_t>& bytes, size_t body_end) {
  std::vector<size_t> starts;
  for (size_t at = body_end; at < bytes.size();) {
    starts.push_back(at);
    const size_t length = (bytes[at + 2] << 8) | bytes[at + 3];
    at += 4 + ((length + 3) / 4) * 4;
  }
  return starts;
}

size_t BodySize(Opcode opcode) {
  return opcode == Opcode::kMap ? 36 : opcode == Opcode::kPeer ? 56 : 0;
}

TEST(PcpRequest, EveryCutOfEveryValidRequestGetsTheExactError) {
  for (const Sample& s : ValidRequests()) {
    const std::vector<uint8_t> full = FromHex(s.hex);
    const size_t body_end = 24 + BodySize(s.request.opcode);
    const std::vector<size_t> starts = OptionStarts(full, body_end);
    for (size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(absl::StrCat(s.name, " cut at ", n));
      const std::vector<uint8_t> cut = Cut(full, n);
      const ParsedRequest parsed = ParseRequest(cut);
      const std::vector<uint8_t> reply = EncodeErrorResponse(cut, parsed.error.result, 1800, 7);
      EXPECT_LE(reply.size(), cut.size());
      if (n < 24) {
        ASSERT_FALSE(parsed.ok());
        EXPECT_EQ(parsed.error.result, ResultCode::kMalformedRequest);
        EXPECT_EQ(parsed.error.message, absl::StrCat("truncated common header: ", n, " bytes, want 24"));
        EXPECT_TRUE(parsed.error.silent);
        EXPECT_TRUE(reply.empty());
        continue;
      }
      EXPECT_FALSE(reply.empty());
      if (n % 4 != 0) {
        ASSERT_FALSE(parsed.ok());
        EXPECT_EQ(parsed.error.result, ResultCode::kMalformedRequest);
        EXPECT_EQ(parsed.error.message, absl::StrCat("length ", n, " is not a multiple of 4"));
        EXPECT_FALSE(parsed.error.silent);
        EXPECT_EQ(reply.size(), n / 4 * 4);
        continue;
      }
      if (n < body_end) {
        ASSERT_FALSE(parsed.ok());
        EXPECT_EQ(parsed.error.result, ResultCode::kMalformedRequest);
        EXPECT_EQ(parsed.error.message,
                  absl::StrCat("truncated ", OpcodeName(s.request.opcode), " body: ", n - 24,
                               " bytes, want ", BodySize(s.request.opcode)));
        EXPECT_EQ(reply.size(), n);
        continue;
      }
      // Inside the options: a cut on an option boundary is a valid request with fewer options;
      // anywhere else the last option is truncated.
      size_t start = 0;
      for (size_t st : starts) {
        if (st <= n) start = st;
      }
      if (start == n) {
        ASSERT_TRUE(parsed.ok()) << parsed.error.message;
        EXPECT_EQ(EncodeRequest(*parsed.request), cut);
        continue;
      }
      ASSERT_FALSE(parsed.ok());
      const size_t length = (full[start + 2] << 8) | full[start + 3];
      EXPECT_EQ(parsed.error.result, ResultCode::kMalformedOption);
      EXPECT_EQ(parsed.error.message, absl::StrCat("truncated option ", full[start], ": length ",
                                                   length, ", ", n - start - 4, " bytes left"));
      EXPECT_EQ(reply.size(), n);
    }
  }
}

TEST(PcpResponse, EveryCutOfEveryValidSuccessResponseGetsTheExactError) {
  for (const ResponseSample& s : ValidResponses()) {
    if (s.response.result != ResultCode::kSuccess) continue;
    const std::vector<uint8_t> full = FromHex(s.hex);
    const size_t body_end = 24 + BodySize(s.response.opcode);
    const std::vector<size_t> starts = OptionStarts(full, body_end);
    for (size_t n = 0; n < full.size(); ++n) {
      SCOPED_TRACE(absl::StrCat(s.name, " cut at ", n));
      absl::StatusOr<Response> parsed = ParseResponse(Cut(full, n));
      std::string want;
      if (n < 24) {
        want = absl::StrCat("truncated common header: ", n, " bytes, want 24");
      } else if (n % 4 != 0) {
        want = absl::StrCat("length ", n, " is not a multiple of 4");
      } else if (n < body_end) {
        want = absl::StrCat("truncated ", OpcodeName(s.response.opcode), " body: ", n - 24,
                            " bytes, want ", BodySize(s.response.opcode));
      } else {
        size_t start = 0;
        for (size_t st : starts) {
          if (st <= n) start = st;
        }
        if (start == n) {
          ASSERT_TRUE(parsed.ok()) << parsed.status();
          EXPECT_EQ(EncodeResponse(*parsed), Cut(full, n));
          continue;
        }
        const size_t length = (full[start + 2] << 8) | full[start + 3];
        want = absl::StrCat("truncated option ", full[start], ": length ", length, ", ",
                            n - start - 4, " bytes left");
      }
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(parsed.status().message(), want);
    }
  }
}

// ---- every error path of a server (§8.3) -----------------------------------------------

std::vector<uint8_t> PeerBytes() { return FromHex(ValidRequests()[1].hex); }
std::vector<uint8_t> MapBytes() { return FromHex(ValidRequests()[3].hex); }

// A MAP request (header and body, no options) followed by `options`.
std::vector<uint8_t> MapWith(const std::string& options_hex) {
  std::vector<uint8_t> b = Cut(MapBytes(), 60);
  const std::vector<uint8_t> o = FromHex(options_hex);
  b.insert(b.end(), o.begin(), o.end());
  return b;
}
std::vector<uint8_t> PeerWith(const std::string& options_hex) {
  std::vector<uint8_t> b = Cut(PeerBytes(), 80);
  const std::vector<uint8_t> o = FromHex(options_hex);
  b.insert(b.end(), o.begin(), o.end());
  return b;
}

void ExpectRefused(const std::vector<uint8_t>& bytes, ResultCode result, const std::string& message) {
  const ParsedRequest parsed = ParseRequest(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(ResultName(parsed.error.result), std::string(ResultName(result)));
  EXPECT_EQ(parsed.error.message, message);
  EXPECT_FALSE(parsed.error.silent);
  const std::vector<uint8_t> reply = EncodeErrorResponse(bytes, parsed.error.result, 1800, 7);
  EXPECT_FALSE(reply.empty());
  EXPECT_LE(reply.size(), bytes.size());
  // The client can read every error reply, and sees the result code.
  absl::StatusOr<Response> seen = ParseResponse(reply);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->result, result);
  EXPECT_EQ(seen->lifetime, 1800u);
  EXPECT_EQ(seen->epoch, 7u);
}

TEST(PcpRequestErrors, UnsupportedVersions0And1And3) {
  for (uint8_t version : {0, 1, 3, 255}) {
    SCOPED_TRACE(int{version});
    std::vector<uint8_t> b = PeerBytes();
    b[0] = version;
    const ParsedRequest parsed = ParseRequest(b);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.error.result, ResultCode::kUnsuppVersion);
    EXPECT_EQ(parsed.error.message, absl::StrCat("unsupported version ", version, ", want 2"));
    EXPECT_FALSE(parsed.error.silent);
    // RFC 6887 §9: the answer is in version 2, the header alone (Figure 3).
    EXPECT_EQ(Hex(EncodeErrorResponse(b, ResultCode::kUnsuppVersion, 1800, 7)),
              Hex(FromHex("02 82 00 01 | 00000708 | 00000007 | 00000000 00000000 00000000")));
  }
  // Too short for a 24-byte answer: nothing is sent (never a larger reply than the request).
  std::vector<uint8_t> natpmp_public_address = {0, 0};
  const ParsedRequest parsed = ParseRequest(natpmp_public_address);
  EXPECT_EQ(parsed.error.result, ResultCode::kUnsuppVersion);
  EXPECT_TRUE(parsed.error.silent);
  EXPECT_TRUE(EncodeErrorResponse(natpmp_public_address, ResultCode::kUnsuppVersion, 0, 0).empty());
}

TEST(PcpRequestErrors, RBitSetIsDroppedSilently) {
  std::vector<uint8_t> b = PeerBytes();
  b[1] |= 0x80;
  const ParsedRequest parsed = ParseRequest(b);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error.result, ResultCode::kMalformedRequest);
  EXPECT_EQ(parsed.error.message, "R bit set: a response, not a request");
  EXPECT_TRUE(parsed.error.silent);
  EXPECT_TRUE(EncodeErrorResponse(b, parsed.error.result, 1800, 7).empty());
  // Even with a bad version: the R bit is looked at first (§8.3).
  b[0] = 1;
  EXPECT_TRUE(ParseRequest(b).error.silent);
  EXPECT_TRUE(EncodeErrorResponse(b, ResultCode::kUnsuppVersion, 1800, 7).empty());
}

TEST(PcpRequestErrors, UnknownOpcode5IsCopiedBackWithTheResponseHeader) {
  std::vector<uint8_t> b = PeerBytes();
  b[1] = 5;
  ExpectRefused(b, ResultCode::kUnsuppOpcode, "unsupported opcode 5");
  // §7.2/§7.3: the header is the response's, the rest a copy of the request.
  std::vector<uint8_t> want = FromHex("02 85 00 04 | 00000708 | 00000007 | 00000000 00000000 00000000");
  want.insert(want.end(), b.begin() + 24, b.end());
  EXPECT_EQ(Hex(EncodeErrorResponse(b, ResultCode::kUnsuppOpcode, 1800, 7)), Hex(want));
  for (uint8_t op : {3, 63, 127}) {
    b[1] = op;
    EXPECT_EQ(ParseRequest(b).error.result, ResultCode::kUnsuppOpcode) << int{op};
  }
}

TEST(PcpRequestErrors, LengthNotAMultipleOf4) {
  std::vector<uint8_t> b = PeerBytes();
  b.push_back(0);
  b.push_back(0);
  ExpectRefused(b, ResultCode::kMalformedRequest, "length 86 is not a multiple of 4");
  EXPECT_EQ(EncodeErrorResponse(b, ResultCode::kMalformedRequest, 0, 0).size(), 84u);
}

TEST(PcpRequestErrors, LongerThan1100Bytes) {
  // A MAP request padded with unknown optional options (each 4 + 96 bytes) up to 1104 bytes.
  std::vector<uint8_t> b = Cut(MapBytes(), 60);
  while (b.size() + 100 <= 1060) {
    const std::vector<uint8_t> o = FromHex("c8 00 0060");
    b.insert(b.end(), o.begin(), o.end());
    b.insert(b.end(), 96, 0xab);
  }
  ASSERT_EQ(b.size(), 1060u);
  {
    const ParsedRequest parsed = ParseRequest(b);
    ASSERT_TRUE(parsed.ok()) << parsed.error.message;  // unknown optional options are ignored
  }
  const std::vector<uint8_t> o = FromHex("c8 00 0028");
  b.insert(b.end(), o.begin(), o.end());
  b.insert(b.end(), 40, 0xcd);
  ASSERT_EQ(b.size(), 1104u);
  ExpectRefused(b, ResultCode::kMalformedRequest, "length 1104 exceeds 1100");
  const std::vector<uint8_t> reply = EncodeErrorResponse(b, ResultCode::kMalformedRequest, 0, 0);
  ASSERT_EQ(reply.size(), 1100u);
  EXPECT_TRUE(std::equal(reply.begin() + 24, reply.end(), b.begin() + 24));
}

TEST(PcpRequestErrors, UnknownMandatoryOption64) {
  ExpectRefused(MapWith("40 00 0000"), ResultCode::kUnsuppOption, "unsupported mandatory option 64");
  ExpectRefused(PeerWith("40 00 0004 | 01020304"), ResultCode::kUnsuppOption,
                "unsupported mandatory option 64");
  // Option code 0 is reserved, and in the mandatory range.
  ExpectRefused(MapWith("00 00 0000"), ResultCode::kUnsuppOption, "unsupported mandatory option 0");
  ExpectRefused(MapWith("7f 00 0000"), ResultCode::kUnsuppOption, "unsupported mandatory option 127");
  // The reply carries the whole request, refused option included.
  const std::vector<uint8_t> b = MapWith("40 00 0000");
  const std::vector<uint8_t> reply = EncodeErrorResponse(b, ResultCode::kUnsuppOption, 0, 0);
  ASSERT_EQ(reply.size(), b.size());
  EXPECT_EQ(Hex(Cut(reply, 4)), "02810005");
  EXPECT_TRUE(std::equal(reply.begin() + 24, reply.end(), b.begin() + 24));
}

TEST(PcpRequestErrors, UnknownOptionalOption200IsIgnored) {
  // Length 5, then three padding bytes (not even zero: padding is ignored).
  const std::vector<uint8_t> b = PeerWith("c8 00 0005 | 0102030405 ffffff | 60 00 0000");
  const ParsedRequest parsed = ParseRequest(b);
  ASSERT_TRUE(parsed.ok()) << parsed.error.message;
  EXPECT_EQ(*parsed.request, ValidRequests()[1].request);
  // The session endpoint option is a response option; in a request it is optional and unknown.
  const ParsedRequest with_224 = ParseRequest(PeerWith("e0 00 0014 | " + std::string(40, '0')));
  ASSERT_TRUE(with_224.ok()) << with_224.error.message;
  EXPECT_FALSE(with_224.request->dpm_port_fixed);
}

TEST(PcpRequestErrors, ThirdPartyWithWrongLength) {
  ExpectRefused(PeerWith("01 00 0008 | 00000000 0a4d0208"), ResultCode::kMalformedOption,
                "option 1 length 8, want 16");
  ExpectRefused(MapWith("01 00 0000"), ResultCode::kMalformedOption, "option 1 length 0, want 16");
}

TEST(PcpRequestErrors, OptionsNotValidWithTheOpcode) {
  ExpectRefused(PeerWith("02 00 0000"), ResultCode::kMalformedOption,
                "option 2 (PREFER_FAILURE) not valid with PEER");
  ExpectRefused(PeerWith("03 00 0014 | 00 78 01bb | 00000000 00000000 0000ffff c6336400"),
                ResultCode::kMalformedOption, "option 3 (FILTER) not valid with PEER");
  std::vector<uint8_t> announce = FromHex(ValidRequests()[0].hex);
  const std::vector<uint8_t> third = FromHex("01 00 0010 | 00000000 00000000 0000ffff 0a4d0208");
  announce.insert(announce.end(), third.begin(), third.end());
  ExpectRefused(announce, ResultCode::kMalformedOption, "option 1 (THIRD_PARTY) not valid with ANNOUNCE");
  std::vector<uint8_t> announce_fixed = FromHex(ValidRequests()[0].hex + "60 00 0000");
  ExpectRefused(announce_fixed, ResultCode::kMalformedOption,
                "option 96 (DPM_PORT_FIXED) not valid with ANNOUNCE");
}

TEST(PcpRequestErrors, OptionsWithWrongLengths) {
  ExpectRefused(PeerWith("60 00 0004 | 00000000"), ResultCode::kMalformedOption,
                "option 96 length 4, want 0");
  ExpectRefused(MapWith("02 00 0001 | 00000000"), ResultCode::kMalformedOption,
                "option 2 length 1, want 0");
  ExpectRefused(MapWith("03 00 0008 | 00000000 00000000"), ResultCode::kMalformedOption,
                "option 3 length 8, want 20");
}

TEST(PcpRequestErrors, RepeatedOptions) {
  const std::string third = "01 00 0010 | 00000000 00000000 0000ffff 0a4d0208 |";
  ExpectRefused(PeerWith(third + third), ResultCode::kMalformedOption, "option 1 (THIRD_PARTY) repeated");
  ExpectRefused(MapWith("02 00 0000 | 02 00 0000"), ResultCode::kMalformedOption,
                "option 2 (PREFER_FAILURE) repeated");
  ExpectRefused(PeerWith("60 00 0000 | 60 00 0000"), ResultCode::kMalformedOption,
                "option 96 (DPM_PORT_FIXED) repeated");
  // FILTER may repeat.
  const std::string filter = "03 00 0014 | 00 78 01bb | 00000000 00000000 0000ffff c6336400 |";
  const ParsedRequest parsed = ParseRequest(MapWith(filter + filter + filter));
  ASSERT_TRUE(parsed.ok()) << parsed.error.message;
  EXPECT_EQ(parsed.request->filters.size(), 3u);
}

TEST(PcpRequestErrors, OptionRunningPastTheEnd) {
  ExpectRefused(MapWith("03 00 0028 | 00 78 01bb | 00000000 00000000 0000ffff c6336400"),
                ResultCode::kMalformedOption, "truncated option 3: length 40, 20 bytes left");
  // Padding counts: length 1 needs 4 bytes of data.
  ExpectRefused(MapWith("c8 00 0001"), ResultCode::kMalformedOption,
                "truncated option 200: length 1, 0 bytes left");
}

// ---- error responses never larger than the request -------------------------------------

TEST(PcpErrorResponse, NeverLargerThanTheRequestForAnyCutOrResult) {
  std::vector<std::vector<uint8_t>> messages;
  for (const Sample& s : ValidRequests()) messages.push_back(FromHex(s.hex));
  for (const ResponseSample& s : ValidResponses()) messages.push_back(FromHex(s.hex));
  for (const std::vector<uint8_t>& full : messages) {
    for (size_t n = 0; n <= full.size(); ++n) {
      const std::vector<uint8_t> cut = Cut(full, n);
      const ParsedRequest parsed = ParseRequest(cut);
      for (uint8_t result = 0; result <= 13; ++result) {
        const std::vector<uint8_t> reply =
            EncodeErrorResponse(cut, static_cast<ResultCode>(result), 0xffffffff, 0xffffffff);
        ASSERT_LE(reply.size(), cut.size()) << "cut " << n << " result " << int{result};
      }
      if (!parsed.ok()) {
        EXPECT_EQ(parsed.error.silent, EncodeErrorResponse(cut, parsed.error.result, 0, 0).empty())
            << "cut " << n << ": " << parsed.error.message;
      }
    }
  }
  // And for random bytes, with and without a version-2 PEER-looking start.
  std::mt19937 rng(6887);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b(rng() % 1200);
    for (uint8_t& x : b) x = static_cast<uint8_t>(rng());
    if (i % 2 == 0 && b.size() >= 2) {
      b[0] = 2;
      b[1] = static_cast<uint8_t>(rng() % 3);
    }
    const ParsedRequest parsed = ParseRequest(b);
    if (parsed.ok()) {
      EXPECT_EQ(ParseRequest(EncodeRequest(*parsed.request)).request, parsed.request);
      continue;
    }
    const std::vector<uint8_t> reply = EncodeErrorResponse(b, parsed.error.result, 1, 2);
    ASSERT_LE(reply.size(), b.size());
    ASSERT_EQ(reply.empty(), parsed.error.silent) << parsed.error.message;
    if (!reply.empty()) {
      absl::StatusOr<Response> seen = ParseResponse(reply);
      ASSERT_TRUE(seen.ok()) << seen.status() << " for " << parsed.error.message;
      EXPECT_EQ(seen->result, parsed.error.result);
    }
  }
}

// ---- the client's response parser ------------------------------------------------------

TEST(PcpResponseErrors, RejectsWhatAClientMustIgnore) {
  const std::vector<uint8_t> good = FromHex(ValidResponses()[1].hex);
  auto message = [](const std::vector<uint8_t>& b) {
    absl::StatusOr<Response> r = ParseResponse(b);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  std::vector<uint8_t> b = good;
  b[1] &= 0x7f;
  EXPECT_EQ(message(b), "R bit clear: a request, not a response");
  b = good;
  b[0] = 1;
  EXPECT_EQ(message(b), "unsupported version 1, want 2");
  b = good;
  b.push_back(0);
  EXPECT_EQ(message(b), "length 105 is not a multiple of 4");
  b = good;
  b.resize(1104, 0);
  EXPECT_EQ(message(b), "length 1104 exceeds 1100");
  b = good;
  b[1] = 0x85;
  EXPECT_EQ(message(b), "unsupported opcode 5");
  // DPM_SESSION_ENDPOINT with a wrong length, and repeated.
  b = Cut(good, 80);
  for (uint8_t x : FromHex("e0 00 0010 | 00000000 00000000 0000ffff 0a4d0001")) b.push_back(x);
  EXPECT_EQ(message(b), "option 224 length 16, want 20");
  b = good;
  for (size_t i = 80; i < good.size(); ++i) b.push_back(good[i]);
  EXPECT_EQ(message(b), "option 224 (DPM_SESSION_ENDPOINT) repeated");
}

TEST(PcpResponseErrors, UnknownOptionsAreIgnoredEvenMandatoryOnes) {
  // §7.3: a client cannot reject a response for an option it does not know.
  std::vector<uint8_t> b = FromHex(ValidResponses()[1].hex);
  for (uint8_t x : FromHex("40 00 0002 | abcd 0000 | 60 00 0000 | f0 00 0000")) b.push_back(x);
  absl::StatusOr<Response> parsed = ParseResponse(b);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, ValidResponses()[1].response);
}

TEST(PcpResponseErrors, ErrorResponsesCutShortOrWithBadOptionsStillParse) {
  // The reply to a request refused for a malformed option carries that option back.
  const std::vector<uint8_t> request = PeerWith("01 00 0008 | 00000000 0a4d0208");
  const std::vector<uint8_t> reply = EncodeErrorResponse(request, ResultCode::kMalformedOption, 60, 3);
  absl::StatusOr<Response> parsed = ParseResponse(reply);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->result, ResultCode::kMalformedOption);
  EXPECT_EQ(parsed->opcode, Opcode::kPeer);
  ASSERT_TRUE(parsed->peer.has_value());
  EXPECT_EQ(parsed->peer->nonce, kNonce);  // the client matches it to its request by nonce
  EXPECT_EQ(parsed->peer->internal_port, 54321);
  EXPECT_FALSE(parsed->third_party.has_value());
  // A body cut short: absent in an error, an error in a success.
  const std::vector<uint8_t> short_map = EncodeErrorResponse(Cut(MapBytes(), 40), ResultCode::kMalformedRequest, 0, 0);
  absl::StatusOr<Response> short_parsed = ParseResponse(short_map);
  ASSERT_TRUE(short_parsed.ok()) << short_parsed.status();
  EXPECT_EQ(short_parsed->opcode, Opcode::kMap);
  EXPECT_FALSE(short_parsed->map.has_value());
  std::vector<uint8_t> success = short_map;
  success[3] = 0;
  EXPECT_EQ(ParseResponse(success).status().message(), "truncated MAP body: 16 bytes, want 36");
}

TEST(PcpResponse, MapAndPeerBodiesAreKeptApart) {
  // A MAP response's body goes to `map`, a PEER's to `peer`; EncodeResponse writes the body
  // of the response's own opcode only.
  Response r = ValidResponses()[1].response;
  r.map = MapBody{};
  EXPECT_EQ(EncodeResponse(r), FromHex(ValidResponses()[1].hex));
}

// ---- the checked-in fuzz seeds --------------------------------------------------------

std::vector<std::pair<std::string, std::vector<uint8_t>>> Seeds(const std::string& dir) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(DPM_FUZZ_CORPUS_DIR "/") + dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(entry.path().filename().string(),
                     std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  return out;
}

TEST(PcpCorpus, RequestSeedsParseAndReencodeAndCoverEveryOpcode) {
  std::set<Opcode> opcodes;
  int valid = 0;
  for (const auto& [name, bytes] : Seeds("pcp_request")) {
    SCOPED_TRACE(name);
    const ParsedRequest parsed = ParseRequest(bytes);
    if (name.rfind("bad_", 0) == 0) {  // error-path seeds
      EXPECT_FALSE(parsed.ok());
      continue;
    }
    ASSERT_TRUE(parsed.ok()) << parsed.error.message;
    EXPECT_EQ(EncodeRequest(*parsed.request), bytes);
    opcodes.insert(parsed.request->opcode);
    ++valid;
  }
  EXPECT_EQ(opcodes, (std::set<Opcode>{Opcode::kAnnounce, Opcode::kMap, Opcode::kPeer}));
  EXPECT_GE(valid, 3);
}

TEST(PcpCorpus, ResponseSeedsParseAndReencode) {
  int n = 0;
  for (const auto& [name, bytes] : Seeds("pcp_response")) {
    SCOPED_TRACE(name);
    absl::StatusOr<Response> parsed = ParseResponse(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    if (parsed->result == ResultCode::kSuccess) {
      EXPECT_EQ(EncodeResponse(*parsed), bytes);
    }
    ++n;
  }
  EXPECT_GE(n, 3);
}

// ---- tshark decodes the setup exchange as PCP ------------------------------------------

void PutBe16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// A pcap file (link type 101, raw IP) of IPv4/UDP packets between the client 10.77.1.2:5350
// and the server 10.77.0.1:5351, each {payload, from the client?}. The IPv4 header checksum is
// computed; the UDP checksum is 0 ("none", allowed over IPv4).
std::vector<uint8_t> PcapOfUdp(const std::vector<std::pair<std::vector<uint8_t>, bool>>& packets) {
  std::vector<uint8_t> file;
  auto le32 = [&file](uint32_t v) {
    for (int i = 0; i < 4; ++i) file.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto le16 = [&file](uint16_t v) {
    file.push_back(static_cast<uint8_t>(v));
    file.push_back(static_cast<uint8_t>(v >> 8));
  };
  le32(0xa1b2c3d4);  // pcap magic, microseconds
  le16(2);
  le16(4);
  le32(0);
  le32(0);
  le32(65535);
  le32(101);  // LINKTYPE_RAW
  uint32_t seconds = 1700000000;
  for (const auto& [payload, from_client] : packets) {
    std::vector<uint8_t> ip(28, 0);
    ip[0] = 0x45;
    PutBe16(ip, 2, static_cast<uint16_t>(28 + payload.size()));
    ip[8] = 64;
    ip[9] = 17;
    const uint8_t client[4] = {10, 77, 1, 2}, server[4] = {10, 77, 0, 1};
    std::copy(from_client ? client : server, (from_client ? client : server) + 4, ip.begin() + 12);
    std::copy(from_client ? server : client, (from_client ? server : client) + 4, ip.begin() + 16);
    uint32_t sum = 0;
    for (size_t i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    PutBe16(ip, 10, static_cast<uint16_t>(~sum));
    PutBe16(ip, 20, from_client ? kClientPort : kServerPort);
    PutBe16(ip, 22, from_client ? kServerPort : kClientPort);
    PutBe16(ip, 24, static_cast<uint16_t>(8 + payload.size()));
    ip.insert(ip.end(), payload.begin(), payload.end());
    le32(seconds++);
    le32(0);
    le32(static_cast<uint32_t>(ip.size()));
    le32(static_cast<uint32_t>(ip.size()));
    file.insert(file.end(), ip.begin(), ip.end());
  }
  return file;
}

TEST(PcpTshark, DecodesAnEncodedPeerExchangeWithTheDpmOptions) {
  if (!std::filesystem::exists("/usr/bin/tshark")) GTEST_SKIP() << "tshark is not installed";
  Request request = ValidRequests()[1].request;  // PEER with DPM_PORT_FIXED
  request.third_party = V4(10, 77, 2, 8);
  const Response response = ValidResponses()[1].response;  // with DPM_SESSION_ENDPOINT
  const std::string path = ::testing::TempDir() + "/pcp_peer_exchange.pcap";
  {
    const std::vector<uint8_t> pcap =
        PcapOfUdp({{EncodeRequest(request), true}, {EncodeResponse(response), false}});
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(pcap.data()), static_cast<std::streamsize>(pcap.size()));
  }
  FILE* p = popen(("/usr/bin/tshark -n -r '" + path + "' -V 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  std::filesystem::remove(path);
  ASSERT_EQ(status, 0) << out;
  for (const char* want : {"Port Control Protocol, Peer Request", "Opcode: Peer (2)",
                           "Requested Lifetime: 3600", "Client IP Address: ::ffff:10.77.1.2",
                           "Internal Port: 54321", "Remote Peer Port: 80",
                           "Remote Peer IP Address: ::ffff:198.51.100.10",
                           "Internal IP Address: ::ffff:10.77.2.8",  // THIRD_PARTY
                           "Option: Unknown (96)",                   // DPM_PORT_FIXED
                           "Port Control Protocol, Peer Response", "Assigned External Port: 54321",
                           "Assigned External IP Address: ::ffff:203.0.113.7",
                           "Option: Unknown (224)"}) {            // DPM_SESSION_ENDPOINT
    EXPECT_NE(out.find(want), std::string::npos) << "no \"" << want << "\" in:\n" << out;
  }
  EXPECT_EQ(out.find("Malformed"), std::string::npos) << out;
}


// ---- the VPM opcode (private use; docs/vpm.md "Negotiation") ----------------------------

Request VpmRequest() {
  Request q;
  q.opcode = Opcode::kVpm;
  q.lifetime = 10;
  q.client_address = Address::FromIpv4(0x0a4d0901);
  q.vpm.emplace();
  q.vpm->nonce = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
  q.vpm->protocol = 6;
  q.vpm->virtual_port = 9000;
  q.vpm->client_port = 50123;
  q.vpm->aid = "green";
  return q;
}

TEST(PcpVpm, RequestAndResponseRoundTripAtTheDocumentedOffsets) {
  const Request q = VpmRequest();
  const std::vector<uint8_t> bytes = EncodeRequest(q);
  ASSERT_EQ(bytes.size(), kCommonHeaderSize + kVpmBodySize);
  EXPECT_EQ(bytes[1], 96);
  EXPECT_EQ(bytes[24 + 12], 6);       // protocol
  EXPECT_EQ(bytes[24 + 14], 5);       // AID length
  EXPECT_EQ(bytes[24 + 16], 9000 >> 8);
  EXPECT_EQ(bytes[24 + 17], 9000 & 0xff);
  EXPECT_EQ(bytes[24 + 20], 50123 >> 8);
  EXPECT_EQ(std::string(bytes.begin() + 48, bytes.begin() + 53), "green");
  EXPECT_EQ(bytes[53], 0);  // zero padding to 32 bytes
  ParsedRequest parsed = ParseRequest(bytes, Server::kVpm);
  ASSERT_TRUE(parsed.ok()) << parsed.error.message;
  EXPECT_EQ(*parsed.request, q);
  EXPECT_STREQ(OpcodeName(Opcode::kVpm), "VPM");

  Response r;
  r.opcode = Opcode::kVpm;
  r.lifetime = 10;
  r.epoch = 3;
  r.vpm = *q.vpm;
  r.vpm->hidden_port = 12760;
  absl::StatusOr<Response> back = ParseResponse(EncodeResponse(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->vpm, r.vpm);
  // A success without its body is refused; an error response may be cut short.
  std::vector<uint8_t> cut = EncodeResponse(r);
  cut.resize(kCommonHeaderSize + 52);
  EXPECT_FALSE(ParseResponse(cut).ok());
  cut[3] = static_cast<uint8_t>(ResultCode::kNotAuthorized);
  ASSERT_TRUE(ParseResponse(cut).ok());
  EXPECT_FALSE(ParseResponse(cut)->vpm);
}

TEST(PcpVpm, BadAidLengthsOptionsAndCutsAreRefused) {
  for (size_t length : {size_t{0}, size_t{33}, size_t{255}}) {
    std::vector<uint8_t> bytes = EncodeRequest(VpmRequest());
    bytes[24 + 14] = static_cast<uint8_t>(length);
    ParsedRequest parsed = ParseRequest(bytes, Server::kVpm);
    EXPECT_EQ(parsed.error.result, ResultCode::kMalformedRequest) << length;
    EXPECT_NE(parsed.error.message.find("AID length"), std::string::npos) << parsed.error.message;
  }
  Request with_option = VpmRequest();
  with_option.dpm_port_fixed = true;
  EXPECT_EQ(ParseRequest(EncodeRequest(with_option), Server::kVpm).error.result, ResultCode::kMalformedOption);
  const std::vector<uint8_t> bytes = EncodeRequest(VpmRequest());
  for (size_t n = 0; n < bytes.size(); ++n) {
    ParsedRequest parsed = ParseRequest(absl::MakeConstSpan(bytes.data(), n), Server::kVpm);
    ASSERT_FALSE(parsed.ok()) << n;
    EXPECT_EQ(parsed.error.silent, n < kCommonHeaderSize) << n;
  }
}

}  // namespace
}  // namespace dpm::pcp
