// The status model (stack/status_report.h): parts render in order as text and as one JSON
// object made by the JSON library, so outside names are escaped and the JSON always parses;
// the Ethernet and gateway parts keep the lines and members `dpmd status` has always printed.
#include "stack/status_report.h"

#include <string>

#include <gtest/gtest.h>

#include "gateway/gateway_status.h"
#include "stack/ethernet_status.h"

namespace dpm::stack {
namespace {

struct NamePart : StatusPart {
  explicit NamePart(std::string n) : name(std::move(n)) {}
  std::string name;
  void AppendText(std::string& out) const override { out += "name " + name + "\n"; }
  void AddJson(StatusJson& report) const override { report["names"].push_back(name); }
};

TEST(StatusReport, RendersPartsInOrderAsTextAndJson) {
  StatusReport report;
  report.Add<NamePart>("first");
  report.Add<NamePart>("second");
  EXPECT_EQ(report.Text(), "name first\nname second\n");
  EXPECT_EQ(report.Json(), "{\"names\":[\"first\",\"second\"]}\n");
  EXPECT_EQ(report.Render(false), report.Text());
  EXPECT_EQ(report.Render(true), report.Json());
}

TEST(StatusReport, EscapesNamesAndReplacesBytesThatAreNotUtf8) {
  StatusReport report;
  report.Add<NamePart>("tun\"0\\\n");       // a quote, a backslash and a newline in a name
  report.Add<NamePart>(std::string("bad\xff", 4));  // not UTF-8
  const std::string json = report.Json();
  EXPECT_EQ(json, "{\"names\":[\"tun\\\"0\\\\\\n\",\"bad\xEF\xBF\xBD\"]}\n");
  nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["names"][0], "tun\"0\\\n");
}

TEST(StatusReport, EmptyReportIsAnEmptyObject) {
  StatusReport report;
  EXPECT_EQ(report.Text(), "");
  EXPECT_EQ(report.Json(), "{}\n");
}

TEST(EthernetStatus, TextAndJsonNameEveryDropReason) {
  EthernetStatus e;
  e.mac = {0x02, 0x64, 0x0a, 0x00, 0x00, 0x02};
  e.frame_drops[static_cast<size_t>(wire::FrameCheck::kTooShort)] = 3;
  e.arp_announcements = 2;
  e.arp_recv = 5;
  std::string text;
  e.AppendText(text);
  EXPECT_EQ(text.rfind("ethernet mac 02:64:0a:00:00:02; frames dropped ", 0), 0u) << text;
  EXPECT_NE(text.find(std::string(wire::FrameCheckName(wire::FrameCheck::kTooShort)) + "=3"), std::string::npos);
  EXPECT_NE(text.find("arp announcements 2, lwip arp recv 5 xmit 0 drop 0\n"), std::string::npos) << text;
  StatusJson j = StatusJson::object();
  e.AddJson(j);
  EXPECT_EQ(j["ethernet"]["mac"], "02:64:0a:00:00:02");
  EXPECT_EQ(j["ethernet"]["drops"][wire::FrameCheckName(wire::FrameCheck::kTooShort)], 3);
  EXPECT_EQ(j["ethernet"]["drops"].size(), static_cast<size_t>(wire::FrameCheck::kCount) - 1);
  EXPECT_EQ(j["ethernet"]["arp_announcements"], 2);
}

nat::NatEngine::SessionInfo Session(uint16_t port) {
  return {nat::Protocol::kTcp, {0x0a000002, port}, {0xc6336401, port}, {0xc6336464, 80}, {0, 0}, "ESTABLISHED", 4500,
          false};
}

TEST(GatewayStatus, ListsAtMostMaxRowsButCountsEverySession) {
  gateway::GatewayStatus g;
  const size_t total = gateway::GatewayStatus::kMaxRows + 5;
  for (size_t i = 0; i < total; ++i) g.AddSession(Session(static_cast<uint16_t>(1000 + i)));
  g.session_count = total;
  EXPECT_EQ(g.sessions.size(), gateway::GatewayStatus::kMaxRows);
  std::string text;
  g.AppendText(text);
  EXPECT_NE(text.find("sessions 1005\n"), std::string::npos);
  EXPECT_NE(text.find("... and 5 more\n"), std::string::npos);
  EXPECT_NE(text.find("tcp   10.0.0.2:1000"), std::string::npos) << text.substr(0, 600);
  StatusJson j = StatusJson::object();
  g.AddJson(j);
  EXPECT_EQ(j["gateway"]["session_count"], total);
  EXPECT_EQ(j["gateway"]["sessions"].size(), gateway::GatewayStatus::kMaxRows);
  EXPECT_EQ(j["gateway"]["sessions"][0]["internal"], "10.0.0.2:1000");
  EXPECT_EQ(j["gateway"]["sessions"][0]["remote"], "198.51.100.100:80");
  EXPECT_EQ(j["gateway"]["sessions"][0]["idle_ms"], 4500);
  EXPECT_EQ(j["gateway"]["sessions"][0]["dpm"], false);
}

TEST(GatewayStatus, MappingsShowLifetimeFiltersAndWhoMadeThem) {
  gateway::GatewayStatus g;
  nat::RemoteFilter filter{0xc6336400, 24, 53};
  nat::NatEngine::MappingInfo m{nat::Protocol::kUdp, {0x0a000002, 5000}, {0xc6336401, 6000}, 2, false, false,
                                uint64_t{90'500}, nat::MappingOrigin::kPcp, absl::MakeConstSpan(&filter, 1)};
  g.AddMapping(m);
  nat::NatEngine::MappingInfo implicit{nat::Protocol::kUdp, {0x0a000003, 5001}, {0xc6336401, 6001}, 1, false,
                                       false, std::nullopt, nat::MappingOrigin::kTraffic, {}};
  g.AddMapping(implicit);
  g.mapping_count = 2;
  std::string text;
  g.AppendText(text);
  EXPECT_NE(text.find("198.51.100.0/24 port 53"), std::string::npos) << text;
  EXPECT_NE(text.find("any remote"), std::string::npos) << text;
  StatusJson j = StatusJson::object();
  g.AddJson(j);
  const StatusJson& rows = j["gateway"]["mappings"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["explicit"], true);
  EXPECT_EQ(rows[0]["lifetime_left_s"], 90);
  EXPECT_EQ(rows[0]["made_by"], nat::MappingOriginName(nat::MappingOrigin::kPcp));
  EXPECT_EQ(rows[0]["filters"][0]["remote"], "198.51.100.0/24");
  EXPECT_EQ(rows[0]["filters"][0]["port"], 53);
  EXPECT_EQ(rows[1]["explicit"], false);
  EXPECT_TRUE(rows[1]["lifetime_left_s"].is_null());
}

}  // namespace
}  // namespace dpm::stack
