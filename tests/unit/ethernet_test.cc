// Ethernet II and ARP (src/wire/ethernet.h): MAC text forms, the views cut at every byte,
// the emitters against hand-written bytes (RFC 826, RFC 5227 §3), and CheckFrame's verdict for
// every cut of a valid frame.
#include "wire/ethernet.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace dpm::wire {
namespace {

constexpr MacAddress kOurs = {0x02, 0x64, 0x0a, 0x4d, 0x01, 0x02};
constexpr MacAddress kPeer = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

// An ARP request from 10.77.1.1 (kPeer) asking for 10.77.1.2, broadcast; written out by hand.
const std::vector<uint8_t> kArpRequestFrame = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // destination: broadcast
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // source
    0x08, 0x06,                          // EtherType ARP
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04,  // hardware Ethernet, protocol IPv4, lengths 6 and 4
    0x00, 0x01,                          // request
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // sender hardware
    0x0a, 0x4d, 0x01, 0x01,              // sender protocol 10.77.1.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // target hardware: unknown
    0x0a, 0x4d, 0x01, 0x02,              // target protocol 10.77.1.2
};

TEST(MacTest, FormatAndParseRoundTrip) {
  EXPECT_EQ(FormatMac(kOurs), "02:64:0a:4d:01:02");
  EXPECT_EQ(ParseMac("02:64:0a:4d:01:02"), kOurs);
  EXPECT_EQ(ParseMac("02:64:0A:4D:01:02"), kOurs);
  for (const char* bad : {"", "02:64:0a:4d:01", "02:64:0a:4d:01:02:03", "2:64:0a:4d:01:02", "02-64-0a-4d-01-02",
                          "02:64:0a:4d:01:0g", "02:64:0a:4d:01:020", "02:64:0a:4d::02"}) {
    EXPECT_EQ(ParseMac(bad), std::nullopt) << bad;
  }
}

TEST(MacTest, DefaultMacIsLocallyAdministeredUnicastFromTheAddress) {
  const MacAddress mac = MacForIpv4(0x0a4d0102);
  EXPECT_EQ(mac, kOurs);
  EXPECT_TRUE(IsLocalUnicast(mac));
  EXPECT_FALSE(IsMulticast(mac));
  EXPECT_NE(MacForIpv4(0x0a4d0103), mac);
  EXPECT_TRUE(IsMulticast(ethernet::kBroadcast));
  EXPECT_TRUE(IsBroadcast(ethernet::kBroadcast));
  EXPECT_TRUE(IsMulticast({0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}));
  EXPECT_FALSE(IsLocalUnicast({0x00, 0x16, 0x3e, 0x00, 0x00, 0x01})) << "a vendor (universal) address";
}

TEST(EthernetViewTest, ParsesTheHeaderAndRefusesEveryShorterCut) {
  std::optional<EthernetView> eth = EthernetView::Parse(kArpRequestFrame);
  ASSERT_TRUE(eth);
  EXPECT_EQ(eth->destination(), ethernet::kBroadcast);
  EXPECT_EQ(eth->source(), kPeer);
  EXPECT_EQ(eth->ether_type(), ethernet::kTypeArp);
  EXPECT_EQ(eth->payload().size(), 28u);
  for (size_t cut = 0; cut < kArpRequestFrame.size(); ++cut) {
    std::optional<EthernetView> v = EthernetView::Parse(absl::MakeConstSpan(kArpRequestFrame).first(cut));
    EXPECT_EQ(v.has_value(), cut >= 14) << cut;
    if (v) {
      EXPECT_EQ(v->payload().size(), cut - 14);
    }
  }
}

TEST(ArpViewTest, ParsesARequestAndRefusesEveryShorterCut) {
  const absl::Span<const uint8_t> packet = absl::MakeConstSpan(kArpRequestFrame).subspan(14);
  std::optional<ArpView> arp = ArpView::Parse(packet);
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->operation(), arp::kOperationRequest);
  EXPECT_EQ(arp->sender_hardware(), kPeer);
  EXPECT_EQ(arp->sender_protocol(), 0x0a4d0101u);
  EXPECT_EQ(arp->target_hardware(), MacAddress{});
  EXPECT_EQ(arp->target_protocol(), 0x0a4d0102u);
  for (size_t cut = 0; cut < packet.size(); ++cut) {
    EXPECT_FALSE(ArpView::Parse(packet.first(cut))) << cut;
  }
  std::vector<uint8_t> padded(packet.begin(), packet.end());
  padded.resize(46, 0);  // padded to the Ethernet minimum
  EXPECT_TRUE(ArpView::Parse(padded));
}

TEST(ArpViewTest, RefusesOtherHardwareProtocolsAndLengths) {
  for (size_t offset : {arp::kHardwareTypeOffset + 1, arp::kProtocolTypeOffset, arp::kHardwareLengthOffset,
                        arp::kProtocolLengthOffset}) {
    std::vector<uint8_t> packet(kArpRequestFrame.begin() + 14, kArpRequestFrame.end());
    packet[offset] ^= 0x01;
    EXPECT_FALSE(ArpView::Parse(packet)) << "byte " << offset;
  }
}

TEST(ArpReprTest, EmitsTheRequestByteForByte) {
  std::vector<uint8_t> frame(42, 0xee);
  ASSERT_TRUE((EthernetRepr{ethernet::kBroadcast, kPeer, ethernet::kTypeArp}.Emit(absl::MakeSpan(frame))));
  ASSERT_TRUE((ArpRepr{arp::kOperationRequest, kPeer, 0x0a4d0101, MacAddress{}, 0x0a4d0102}.Emit(
      absl::MakeSpan(frame).subspan(14))));
  EXPECT_EQ(frame, kArpRequestFrame);
  std::vector<uint8_t> short_buffer(27, 0xee);
  EXPECT_FALSE(ArpRepr{}.Emit(absl::MakeSpan(short_buffer)));
  EXPECT_EQ(short_buffer, std::vector<uint8_t>(27, 0xee)) << "nothing written";
  EXPECT_FALSE(EthernetRepr{}.Emit(absl::MakeSpan(short_buffer).first(13)));
}

// RFC 5227 §3: sender and target protocol address both the announced address, target
// hardware address zero, broadcast.
TEST(ArpReprTest, AnnouncementIsARequestForTheAddressItself) {
  const std::vector<uint8_t> expected = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x64, 0x0a, 0x4d, 0x01, 0x02, 0x08, 0x06,
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x64, 0x0a, 0x4d, 0x01, 0x02,
      0x0a, 0x4d, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x4d, 0x01, 0x64,
  };
  auto frame = ArpAnnouncement(kOurs, 0x0a4d0164);
  EXPECT_EQ(std::vector<uint8_t>(frame.begin(), frame.end()), expected);
}

TEST(CheckFrameTest, EveryCutOfAnArpFrameGetsItsReason) {
  for (size_t cut = 0; cut <= kArpRequestFrame.size(); ++cut) {
    const FrameCheck expected = cut < 14                            ? FrameCheck::kTooShort
                                : cut < kArpRequestFrame.size()     ? FrameCheck::kBadArp
                                                                    : FrameCheck::kOk;
    EXPECT_EQ(CheckFrame(absl::MakeConstSpan(kArpRequestFrame).first(cut), kOurs), expected)
        << cut << ": " << FrameCheckName(CheckFrame(absl::MakeConstSpan(kArpRequestFrame).first(cut), kOurs));
  }
}

TEST(CheckFrameTest, DestinationsAndTypes) {
  std::vector<uint8_t> frame = kArpRequestFrame;
  auto with_destination = [&](const MacAddress& mac) {
    std::copy(mac.begin(), mac.end(), frame.begin());
    return CheckFrame(frame, kOurs);
  };
  EXPECT_EQ(with_destination(kOurs), FrameCheck::kOk);
  EXPECT_EQ(with_destination(ethernet::kBroadcast), FrameCheck::kOk);
  EXPECT_EQ(with_destination({0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}), FrameCheck::kOk) << "IPv4 multicast";
  EXPECT_EQ(with_destination(kPeer), FrameCheck::kNotForUs);
  EXPECT_EQ(with_destination({0x02, 0x64, 0x0a, 0x4d, 0x01, 0x03}), FrameCheck::kNotForUs);

  frame = kArpRequestFrame;
  frame[12] = 0x08;
  frame[13] = 0x00;
  EXPECT_EQ(CheckFrame(frame, kOurs), FrameCheck::kOk) << "IPv4: the IP checks are the caller's";
  for (uint16_t type : {ethernet::kTypeIpv6, uint16_t{0x8100}, uint16_t{0x88cc}, uint16_t{0x0000}}) {
    frame[12] = static_cast<uint8_t>(type >> 8);
    frame[13] = static_cast<uint8_t>(type);
    EXPECT_EQ(CheckFrame(frame, kOurs), FrameCheck::kUnsupportedType) << type;
  }
  EXPECT_STREQ(FrameCheckName(FrameCheck::kNotForUs), "not_for_us");
}

}  // namespace
}  // namespace dpm::wire
