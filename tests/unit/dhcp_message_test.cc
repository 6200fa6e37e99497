// The DHCPv4 message codec (src/dhcp/dhcp_message.h, RFC 2131 §2, RFC 2132): a dnsmasq-like
// OFFER and ACK made with Scapy (fuzz/make_dhcp_seeds.py --hex prints them; the same bytes are
// the fuzz seeds, which a test compares), the encoder's layout byte by byte, truncation at
// every byte with the exact error, malformed option lengths, option overload and RFC 3396
// concatenation.
#include "dhcp/dhcp_message.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "test_bytes.h"

namespace dpm::dhcp {
namespace {

using dpm::testing::Cut;
using dpm::testing::FromHex;
using dpm::testing::Hex;

std::string Zeros(size_t n) { return std::string(2 * n, '0'); }

constexpr uint32_t kServer = 0x0a4d0001;   // 10.77.0.1
constexpr uint32_t kAddress = 0x0a4d0032;  // 10.77.0.50

const std::string kClientIdHex = "ff00000001 64706d2d736f636b65742d37";  // 255, 0.0.0.1, "dpm-socket-7"

// The fixed part of the Scapy fixtures: BOOTREPLY, Ethernet, xid 0x3903f326, BROADCAST flag,
// yiaddr 10.77.0.50, siaddr 10.77.0.1, chaddr 02:dd:00:00:00:01.
std::string ReplyFixed(const std::string& ciaddr = "00000000") {
  return "02 01 06 00 | 3903f326 | 0000 | 8000 | " + ciaddr + " | 0a4d0032 | 0a4d0001 | 00000000 | 02dd00000001" +
         Zeros(10) + Zeros(64) + Zeros(128) + "| 63825363 |";
}
// dnsmasq's option order: 53, 54, 51, 58, 59, 1, 28, 3, 6, then the echoed client id.
std::string DnsmasqOptions(const std::string& type) {
  return "35 01 " + type + " | 36 04 0a4d0001 | 33 04 00000e10 | 3a 04 00000708 | 3b 04 00000c4e | 01 04 ffff0000 |" +
         " 1c 04 0a4dffff | 03 04 0a4d0001 | 06 04 0a4d0001 | 3d 11 " + kClientIdHex + " | ff";
}
const std::string kOfferHex = ReplyFixed() + DnsmasqOptions("02");
const std::string kAckHex = ReplyFixed() + DnsmasqOptions("05");

// The options of kOfferHex as (code, length), for the truncation test.
const std::vector<std::pair<uint8_t, uint8_t>> kOfferOptions = {
    {53, 1}, {54, 4}, {51, 4}, {58, 4}, {59, 4}, {1, 4}, {28, 4}, {3, 4}, {6, 4}, {61, 17}};

std::vector<uint8_t> ReadSeed(const std::string& name) {
  std::ifstream f(std::filesystem::path(DPM_FUZZ_CORPUS_DIR) / "dhcp_message" / name, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A BOOTREPLY with no fixed-field content, then the given options (hex).
std::vector<uint8_t> WithOptions(const std::string& options_hex) {
  return FromHex("02 01 06 00" + Zeros(kFixedHeaderSize - 4) + "63825363" + options_hex);
}

TEST(DhcpMessage, MessageTypeNames) {
  EXPECT_STREQ(MessageTypeName(MessageType::kDiscover), "DHCPDISCOVER");
  EXPECT_STREQ(MessageTypeName(MessageType::kOffer), "DHCPOFFER");
  EXPECT_STREQ(MessageTypeName(MessageType::kNak), "DHCPNAK");
  EXPECT_STREQ(MessageTypeName(MessageType::kInform), "DHCPINFORM");
  EXPECT_STREQ(MessageTypeName(static_cast<MessageType>(9)), "UNKNOWN");
}

TEST(DhcpMessage, FixturesAreTheScapySeeds) {
  EXPECT_EQ(Hex(ReadSeed("offer")), Hex(FromHex(kOfferHex)));
  EXPECT_EQ(Hex(ReadSeed("ack")), Hex(FromHex(kAckHex)));
}

TEST(DhcpMessage, ParsesDnsmasqLikeOffer) {
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(FromHex(kOfferHex));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->op, kOpBootReply);
  EXPECT_EQ(m->htype, 1);
  EXPECT_EQ(m->hlen, 6);
  EXPECT_EQ(m->hops, 0);
  EXPECT_EQ(m->xid, 0x3903f326u);
  EXPECT_EQ(m->secs, 0);
  EXPECT_TRUE(m->broadcast());
  EXPECT_EQ(m->ciaddr, 0u);
  EXPECT_EQ(m->yiaddr, kAddress);
  EXPECT_EQ(m->siaddr, kServer);
  EXPECT_EQ(m->giaddr, 0u);
  EXPECT_EQ(Hex(m->chaddr), "02dd0000000100000000000000000000");
  ASSERT_TRUE(m->message_type.has_value());
  EXPECT_EQ(*m->message_type, MessageType::kOffer);
  EXPECT_EQ(m->server_identifier, kServer);
  EXPECT_EQ(m->lease_time, 3600u);
  EXPECT_EQ(m->renewal_time, 1800u);
  EXPECT_EQ(m->rebinding_time, 3150u);
  EXPECT_EQ(m->subnet_mask, 0xffff0000u);
  EXPECT_EQ(m->routers, std::vector<uint32_t>{kServer});
  EXPECT_EQ(m->domain_name_servers, std::vector<uint32_t>{kServer});
  EXPECT_EQ(Hex(m->client_identifier), Hex(FromHex(kClientIdHex)));
  // Not sent: stay absent.
  EXPECT_FALSE(m->requested_ip_address.has_value());
  EXPECT_FALSE(m->maximum_message_size.has_value());
  EXPECT_TRUE(m->parameter_request_list.empty());
  EXPECT_TRUE(m->message.empty());
}

TEST(DhcpMessage, ParsesAckAndNak) {
  absl::StatusOr<DhcpMessage> ack = ParseDhcpMessage(FromHex(kAckHex));
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(*ack->message_type, MessageType::kAck);
  EXPECT_EQ(ack->yiaddr, kAddress);

  absl::StatusOr<DhcpMessage> nak = ParseDhcpMessage(ReadSeed("nak"));
  ASSERT_TRUE(nak.ok()) << nak.status();
  EXPECT_EQ(*nak->message_type, MessageType::kNak);
  EXPECT_EQ(nak->yiaddr, 0u);
  EXPECT_EQ(nak->message, "address not available");
  EXPECT_FALSE(nak->lease_time.has_value());
}

TEST(DhcpMessage, SerializesDiscoverByteForByte) {
  DhcpMessage m;
  m.xid = 0x01020304;
  m.secs = 3;
  m.flags = kFlagBroadcast;
  m.chaddr = {0x02, 0xdd, 0, 0, 0, 1};
  m.message_type = MessageType::kDiscover;
  m.client_identifier = FromHex(kClientIdHex);
  m.parameter_request_list = {1, 3, 6, 51, 58, 59};
  m.maximum_message_size = 1500;
  const std::vector<uint8_t> bytes = SerializeDhcpMessage(m);
  ASSERT_EQ(bytes.size(), kMinBootpMessageSize);  // RFC 1542 §2.1
  const std::string options = "35 01 01 | 3d 11 " + kClientIdHex + " | 37 06 010306333a3b | 39 02 05dc | ff";
  const size_t used = kOffsetOptions + FromHex(options).size();
  const std::string want = "01 01 06 00 | 01020304 | 0003 | 8000 | 00000000 | 00000000 | 00000000 | 00000000 |"
                           " 02dd00000001" + Zeros(10) + Zeros(64) + Zeros(128) + "| 63825363 |" + options +
                           Zeros(kMinBootpMessageSize - used);
  EXPECT_EQ(Hex(bytes), Hex(FromHex(want)));
}

TEST(DhcpMessage, SerializesEveryOptionInOrder) {
  DhcpMessage m;
  m.op = kOpBootReply;
  m.message_type = MessageType::kAck;
  m.client_identifier = {1, 2};
  m.requested_ip_address = 0x01020304;
  m.server_identifier = kServer;
  m.lease_time = 60;
  m.renewal_time = 30;
  m.rebinding_time = 50;
  m.subnet_mask = 0xffffff00;
  m.routers = {1, 2};
  m.domain_name_servers = {3};
  m.parameter_request_list = {1};
  m.maximum_message_size = 576;
  m.message = "hi";
  const std::vector<uint8_t> bytes = SerializeDhcpMessage(m);
  const std::vector<uint8_t> options(bytes.begin() + kOffsetOptions, bytes.end());
  const std::string want = "350105 3d020102 320401020304 36040a4d0001 33040000003c 3a040000001e 3b0400000032"
                           " 0104ffffff00 03080000000100000002 060400000003 370101 39020240 38026869 ff";
  EXPECT_EQ(Hex(options).substr(0, FromHex(want).size() * 2), Hex(FromHex(want)));
  absl::StatusOr<DhcpMessage> back = ParseDhcpMessage(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
}

TEST(DhcpMessage, SeedsRoundTrip) {
  for (const char* name : {"offer", "ack", "ack_renewing", "nak", "discover", "request_selecting",
                           "request_renewing", "release", "offer_overloaded"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> seed = ReadSeed(name);
    ASSERT_FALSE(seed.empty());
    absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(seed);
    ASSERT_TRUE(m.ok()) << m.status();
    absl::StatusOr<DhcpMessage> again = ParseDhcpMessage(SerializeDhcpMessage(*m));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *m);
  }
}

TEST(DhcpMessage, CutAtEveryByte) {
  const std::vector<uint8_t> offer = FromHex(kOfferHex);
  // Where each option starts inside the options field (after the cookie).
  std::vector<size_t> starts;
  size_t at = 0;
  for (auto [code, length] : kOfferOptions) {
    starts.push_back(at);
    at += 2 + length;
  }
  ASSERT_EQ(kOffsetOptions + at + 1, offer.size());  // + the end option

  for (size_t n = 0; n < offer.size(); ++n) {
    SCOPED_TRACE(absl::StrCat("cut at ", n));
    std::string want;
    if (n < kFixedHeaderSize) {
      want = absl::StrCat("dhcp: truncated at fixed header: ", n, " of 236 bytes");
    } else if (n < kOffsetOptions) {
      want = absl::StrCat("dhcp: truncated at magic cookie: ", n - kFixedHeaderSize, " of 4 bytes");
    } else {
      const size_t o = n - kOffsetOptions;
      for (size_t i = 0; i < kOfferOptions.size(); ++i) {
        auto [code, length] = kOfferOptions[i];
        if (o == starts[i]) {
          want = "dhcp: options: no end option";
        } else if (o == starts[i] + 1) {
          want = absl::StrCat("dhcp: options: truncated at option ", code, " length");
        } else if (o > starts[i] + 1 && o < starts[i] + 2 + length) {
          want = absl::StrCat("dhcp: options: option ", code, " length ", length, " runs past the end (",
                              o - starts[i] - 2, " bytes left)");
        }
      }
      if (o == at) want = "dhcp: options: no end option";
    }
    ASSERT_FALSE(want.empty());
    absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(Cut(offer, n));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(m.status().message(), want);
  }
  EXPECT_TRUE(ParseDhcpMessage(offer).ok());
}

TEST(DhcpMessage, BadCookieAndHlen) {
  std::vector<uint8_t> offer = FromHex(kOfferHex);
  offer[kOffsetCookie + 3] = 0x64;
  EXPECT_EQ(ParseDhcpMessage(offer).status().message(),
            "dhcp: bad magic cookie 0x63825364, want 0x63825363 (99.130.83.99)");
  offer = FromHex(kOfferHex);
  offer[2] = 17;
  EXPECT_EQ(ParseDhcpMessage(offer).status().message(), "dhcp: hlen 17 is more than the 16-byte chaddr");
  offer[2] = 16;
  EXPECT_TRUE(ParseDhcpMessage(offer).ok());
}

TEST(DhcpMessage, MalformedOptionLengths) {
  struct Case {
    std::string options;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"35 02 0101 ff", "dhcp: options: option 53 length 2, want 1"},
      {"35 00 ff", "dhcp: options: option 53 length 0, want 1"},
      {"33 03 000e10 ff", "dhcp: options: option 51 length 3, want 4"},
      {"36 05 0a4d000100 ff", "dhcp: options: option 54 length 5, want 4"},
      {"01 03 ffff00 ff", "dhcp: options: option 1 length 3, want 4"},
      {"32 02 0000 ff", "dhcp: options: option 50 length 2, want 4"},
      {"3a 08 0000000100000002 ff", "dhcp: options: option 58 length 8, want 4"},
      {"3b 00 ff", "dhcp: options: option 59 length 0, want 4"},
      {"39 01 05 ff", "dhcp: options: option 57 length 1, want 2"},
      {"03 05 0a4d000100 ff", "dhcp: options: option 3 length 5, want a positive multiple of 4"},
      {"03 00 ff", "dhcp: options: option 3 length 0, want a positive multiple of 4"},
      {"06 06 0a4d00010a4d ff", "dhcp: options: option 6 length 6, want a positive multiple of 4"},
      {"3d 01 ff ff", "dhcp: options: option 61 length 1, want at least 2"},
      {"37 00 ff", "dhcp: options: option 55 length 0, want at least 1"},
      {"38 00 ff", "dhcp: options: option 56 length 0, want at least 1"},
      // A repeated single-valued option is concatenated (RFC 3396) and then too long.
      {"33 04 00000e10 33 04 00000e10 ff", "dhcp: options: option 51 length 8, want 4"},
      {"35 01 02 35 01 05 ff", "dhcp: options: option 53 length 2, want 1"},
      {"34 01 04 ff", "dhcp: options: option 52 value 4, want 1, 2 or 3"},
      {"34 01 00 ff", "dhcp: options: option 52 value 0, want 1, 2 or 3"},
      {"34 02 0101 ff", "dhcp: options: option 52 length 2, want 1"},
      {"33 ff 00000e10 ff", "dhcp: options: option 51 length 255 runs past the end (5 bytes left)"},
      {"", "dhcp: options: no end option"},
      {"00 00 00", "dhcp: options: no end option"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.options);
    absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(WithOptions(c.options));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(m.status().message(), c.error);
  }
}

TEST(DhcpMessage, PadUnknownOptionsAndTrailingBytes) {
  // Pads between options, an unknown option (28), and garbage after the end option.
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(WithOptions("00 00 35 01 02 00 1c 04 0a4dffff ff 33 01"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m->message_type, MessageType::kOffer);
  EXPECT_FALSE(m->lease_time.has_value());
  // A message type outside 1-8 parses; the client ignores it.
  m = ParseDhcpMessage(WithOptions("35 01 63 ff"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(static_cast<int>(*m->message_type), 0x63);
}

TEST(DhcpMessage, SplitOptionsAreConcatenated) {
  // RFC 3396: a client identifier in two instances, and a router list split mid-address.
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(WithOptions("3d 02 ff00 03 02 0a4d 3d 01 07 03 02 0001 ff"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Hex(m->client_identifier), "ff0007");
  EXPECT_EQ(m->routers, std::vector<uint32_t>{kServer});

  // And the encoder splits an option longer than 255 bytes.
  DhcpMessage big;
  big.message_type = MessageType::kDiscover;
  big.client_identifier.assign(300, 0xab);
  const std::vector<uint8_t> bytes = SerializeDhcpMessage(big);
  EXPECT_EQ(bytes[kOffsetOptions + 3], option::kClientIdentifier);
  EXPECT_EQ(bytes[kOffsetOptions + 4], 255);
  EXPECT_EQ(bytes[kOffsetOptions + 3 + 2 + 255], option::kClientIdentifier);
  EXPECT_EQ(bytes[kOffsetOptions + 3 + 2 + 255 + 1], 45);
  absl::StatusOr<DhcpMessage> back = ParseDhcpMessage(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, big);
}

TEST(DhcpMessage, OptionOverload) {
  // The Scapy seed: option 52 = 3, the router in 'file', T1 and T2 in 'sname'.
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(ReadSeed("offer_overloaded"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->routers, std::vector<uint32_t>{kServer});
  EXPECT_EQ(m->renewal_time, 1800u);
  EXPECT_EQ(m->rebinding_time, 3150u);
  EXPECT_EQ(m->lease_time, 3600u);
  EXPECT_EQ(m->sname, (std::array<uint8_t, kSnameSize>{}));
  EXPECT_EQ(m->file, (std::array<uint8_t, kFileSize>{}));

  // Only 'file' overloaded (value 1): 'sname' stays a name.
  std::vector<uint8_t> bytes = WithOptions("34 01 01 ff");
  bytes[kOffsetSname] = 'x';
  bytes[kOffsetFile] = 0x33;        // option 51 …
  bytes[kOffsetFile + 1] = 200;     // … longer than the field
  EXPECT_EQ(ParseDhcpMessage(bytes).status().message(),
            "dhcp: file (overloaded): option 51 length 200 runs past the end (126 bytes left)");
  bytes[kOffsetFile + 1] = 4;
  bytes[kOffsetFile + 5] = 60;  // lease time 60, and no end option: the field's end ends it
  m = ParseDhcpMessage(bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->lease_time, 60u);
  EXPECT_EQ(m->sname[0], 'x');

  // Option 52 inside the overloaded field makes option 52 two bytes long.
  bytes = WithOptions("34 01 01 ff");
  bytes[kOffsetFile] = 52;
  bytes[kOffsetFile + 1] = 1;
  bytes[kOffsetFile + 2] = 2;
  EXPECT_EQ(ParseDhcpMessage(bytes).status().message(), "dhcp: options: option 52 length 2, want 1");
  // 'sname' (value 2) with a cut option.
  bytes = WithOptions("34 01 02 ff");
  bytes[kOffsetSname + kSnameSize - 1] = 3;
  EXPECT_EQ(ParseDhcpMessage(bytes).status().message(), "dhcp: sname (overloaded): truncated at option 3 length");
}

}  // namespace
}  // namespace dpm::dhcp
