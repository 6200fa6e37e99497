// The tunnel server's service registry (src/tunnel/registry.h): publishing (Fig. 4), the
// replacement of a proxy's older connection, lookups for tunnel requests (Fig. 7) with the
// no-oracle rule, stream limits and per-service counters.
#include "tunnel/registry.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

constexpr char kAccess[] = R"({
  "proxies": {
    "alpha": { "token": "alpha-token-0123456789", "max_services": 3, "max_streams": 3 },
    "beta": { "token": "beta-token-0123456789" },
    "gamma": { "token": "gamma-token-0123456789" }
  },
  "redirectors": {
    "bob": { "token": "bob-token-0123456789", "services": ["web.alpha", "*.gamma", "web.nowhere"], "max_streams": 2 },
    "root": { "token": "root-token-0123456789", "services": ["*"] }
  },
  "max_streams_per_service": 2
})";
constexpr size_t kAlpha = 0, kBeta = 1, kGamma = 2;
constexpr size_t kBob = 0, kRoot = 1;

class TunnelRegistry : public ::testing::Test {
 protected:
  TunnelRegistry()
      : config_(ParseAccessConfig(kAccess).value()),
        registry_(config_, "dpm.internal", [this](uint8_t* out, size_t size) {
          for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(next_random_++);
        }) {}

  std::vector<ServiceEntry> Publish(ConnId conn, size_t proxy, const std::vector<std::string>& services,
                                    ConnId* replaced = nullptr) {
    ConnId ignored;
    return registry_.Publish(conn, proxy, services, replaced != nullptr ? replaced : &ignored);
  }
  TunnelError ErrorOf(size_t redirector, absl::string_view name) {
    auto result = registry_.OpenStream(redirector, name);
    EXPECT_TRUE(std::holds_alternative<TunnelError>(result)) << name;
    return std::holds_alternative<TunnelError>(result) ? std::get<TunnelError>(result) : TunnelError::kNone;
  }
  Route RouteOf(size_t redirector, absl::string_view name) {
    auto result = registry_.OpenStream(redirector, name);
    EXPECT_TRUE(std::holds_alternative<Route>(result)) << name;
    return std::holds_alternative<Route>(result) ? std::get<Route>(result) : Route{};
  }

  AccessConfig config_;
  uint8_t next_random_ = 1;
  ServiceRegistry registry_;
};

TEST_F(TunnelRegistry, PublishGivesEachServiceANameAndANewKey) {
  const std::vector<ServiceEntry> entries = Publish(10, kAlpha, {"web", "ssh"});
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].service, "web");
  EXPECT_EQ(entries[0].status, PublishStatus::kPublished);
  EXPECT_EQ(entries[0].pseudo_name, "web.alpha.dpm.internal");
  EXPECT_EQ(entries[1].pseudo_name, "ssh.alpha.dpm.internal");
  EXPECT_EQ(entries[0].key[0], 1);
  EXPECT_EQ(entries[1].key[0], 17);  // the next 16 random bytes
  EXPECT_TRUE(registry_.ProxyConnected(kAlpha));
  EXPECT_FALSE(registry_.ProxyConnected(kBeta));
  const std::vector<Published> services = registry_.Services();
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0].pseudo_name, "ssh.alpha.dpm.internal");  // by pseudo name
  EXPECT_EQ(services[0].proxy, "alpha");
  EXPECT_EQ(services[0].proxy_conn, 10u);
  EXPECT_EQ(services[1].key, entries[0].key);
}

TEST_F(TunnelRegistry, PublishStatusPerEntry) {
  const std::vector<ServiceEntry> entries = Publish(10, kAlpha, {"web", "Bad_Name", "web", "a", "b", "c", ""});
  ASSERT_EQ(entries.size(), 7u);
  EXPECT_EQ(entries[0].status, PublishStatus::kPublished);
  EXPECT_EQ(entries[1].status, PublishStatus::kBadName);
  EXPECT_EQ(entries[2].status, PublishStatus::kDuplicate);
  EXPECT_EQ(entries[3].status, PublishStatus::kPublished);
  EXPECT_EQ(entries[4].status, PublishStatus::kPublished);
  EXPECT_EQ(entries[5].status, PublishStatus::kLimit);  // alpha: max_services 3
  EXPECT_EQ(entries[6].status, PublishStatus::kBadName);
  for (size_t i : {1, 2, 5, 6}) {
    EXPECT_TRUE(entries[i].pseudo_name.empty()) << i;
    EXPECT_EQ(entries[i].key, ServiceKey{}) << i;
  }
  EXPECT_EQ(registry_.Services().size(), 3u);
  EXPECT_EQ(registry_.Counters("c.alpha.dpm.internal"), nullptr);
}

TEST_F(TunnelRegistry, SecondConnectionOfAProxyReplacesTheFirst) {
  ConnId replaced = 99;
  Publish(10, kAlpha, {"web", "ssh"}, &replaced);
  EXPECT_EQ(replaced, 0u);
  const ServiceKey old_key = registry_.Services()[1].key;
  Publish(11, kAlpha, {"web"}, &replaced);
  EXPECT_EQ(replaced, 10u);
  const std::vector<Published> services = registry_.Services();
  ASSERT_EQ(services.size(), 1u);  // ssh went with the old connection
  EXPECT_EQ(services[0].proxy_conn, 11u);
  EXPECT_NE(services[0].key, old_key);  // a new key at each publish
  EXPECT_EQ(RouteOf(kRoot, "web.alpha.dpm.internal").proxy_conn, 11u);
  // The old connection closing later takes nothing with it.
  registry_.DropConnection(10);
  EXPECT_TRUE(registry_.ProxyConnected(kAlpha));
  EXPECT_EQ(registry_.Services().size(), 1u);
  // Another proxy's connection does not touch alpha's names.
  Publish(12, kBeta, {"web"}, &replaced);
  EXPECT_EQ(replaced, 0u);
  EXPECT_EQ(registry_.Services().size(), 2u);
}

TEST_F(TunnelRegistry, DropConnectionUnpublishesItsServices) {
  Publish(10, kAlpha, {"web"});
  Publish(20, kBeta, {"web"});
  registry_.DropConnection(10);
  EXPECT_FALSE(registry_.ProxyConnected(kAlpha));
  EXPECT_TRUE(registry_.ProxyConnected(kBeta));
  ASSERT_EQ(registry_.Services().size(), 1u);
  EXPECT_EQ(registry_.Services()[0].pseudo_name, "web.beta.dpm.internal");
  EXPECT_EQ(ErrorOf(kRoot, "web.alpha.dpm.internal"), TunnelError::kProxyDown);
  registry_.DropConnection(12345);  // not a proxy connection: nothing happens
  EXPECT_EQ(registry_.Services().size(), 1u);
}

TEST_F(TunnelRegistry, OpenStreamRoutesToThePublishingConnection) {
  const std::vector<ServiceEntry> entries = Publish(10, kAlpha, {"web"});
  const Route route = RouteOf(kBob, "Web.Alpha.dpm.internal.");
  EXPECT_EQ(route.proxy_conn, 10u);
  EXPECT_EQ(route.key, entries[0].key);
  EXPECT_EQ(route.pseudo_name, "web.alpha.dpm.internal");
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 1u);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 1u);
  EXPECT_EQ(registry_.Counters("web.alpha.dpm.internal")->streams_open, 1u);
  EXPECT_EQ(registry_.Counters("web.alpha.dpm.internal")->streams_opened, 1u);
}

TEST_F(TunnelRegistry, ForbiddenAndUnknownNamesGetTheSameAnswer) {
  Publish(10, kAlpha, {"web", "ssh"});
  Publish(20, kBeta, {"web"});
  // bob may use web.alpha and *.gamma only.
  const TunnelError forbidden_same_proxy = ErrorOf(kBob, "ssh.alpha.dpm.internal");
  const TunnelError forbidden_other_proxy = ErrorOf(kBob, "web.beta.dpm.internal");
  const TunnelError forbidden_proxy_down = ErrorOf(kBob, "web.zeta.dpm.internal");
  const TunnelError unknown_service = ErrorOf(kBob, "nope.alpha.dpm.internal");
  const TunnelError unknown_proxy = ErrorOf(kRoot, "web.zeta.dpm.internal");
  const TunnelError malformed = ErrorOf(kBob, "web.dpm.internal");
  const TunnelError other_suffix = ErrorOf(kBob, "web.alpha.example.com");
  for (TunnelError error : {forbidden_same_proxy, forbidden_other_proxy, forbidden_proxy_down, unknown_service,
                            unknown_proxy, malformed, other_suffix}) {
    EXPECT_EQ(error, TunnelError::kNoService);
  }
  // A permitted name whose proxy is in the access file but not connected.
  EXPECT_EQ(ErrorOf(kBob, "web.gamma.dpm.internal"), TunnelError::kProxyDown);
  // Permitted, but its proxy is not in the access file: nobody could ever publish it.
  EXPECT_EQ(ErrorOf(kBob, "web.nowhere.dpm.internal"), TunnelError::kNoService);
  // Permitted, proxy connected, service not published.
  Publish(30, kGamma, {"db"});
  EXPECT_EQ(ErrorOf(kBob, "web.gamma.dpm.internal"), TunnelError::kNoService);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 0u);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 0u);
}

TEST_F(TunnelRegistry, StreamLimitsPerServiceRedirectorAndProxy) {
  Publish(10, kAlpha, {"web", "ssh"});
  // Per service: 2.
  RouteOf(kRoot, "web.alpha.dpm.internal");
  RouteOf(kRoot, "web.alpha.dpm.internal");
  EXPECT_EQ(ErrorOf(kRoot, "web.alpha.dpm.internal"), TunnelError::kLimit);
  // Per proxy: alpha has 3.
  RouteOf(kRoot, "ssh.alpha.dpm.internal");
  EXPECT_EQ(ErrorOf(kRoot, "ssh.alpha.dpm.internal"), TunnelError::kLimit);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 3u);
  registry_.CloseStream(kRoot, "ssh.alpha.dpm.internal", 10, TunnelError::kNone);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 2u);
  RouteOf(kRoot, "ssh.alpha.dpm.internal");
  // Per redirector: bob has 2.
  Publish(30, kGamma, {"a", "b", "c"});
  RouteOf(kBob, "a.gamma.dpm.internal");
  RouteOf(kBob, "b.gamma.dpm.internal");
  EXPECT_EQ(ErrorOf(kBob, "c.gamma.dpm.internal"), TunnelError::kLimit);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 2u);
  RouteOf(kRoot, "c.gamma.dpm.internal");  // another redirector still gets through
  EXPECT_EQ(registry_.Counters("c.gamma.dpm.internal")->streams_opened, 1u);
}

TEST_F(TunnelRegistry, CloseStreamCountsHowItEnded) {
  Publish(10, kAlpha, {"web"});
  RouteOf(kBob, "web.alpha.dpm.internal");
  RouteOf(kBob, "web.alpha.dpm.internal");
  registry_.CloseStream(kBob, "web.alpha.dpm.internal", 10, TunnelError::kRefused);
  registry_.CloseStream(kBob, "web.alpha.dpm.internal", 10, TunnelError::kNone);
  const ServiceCounters* counters = registry_.Counters("web.alpha.dpm.internal");
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(counters->streams_open, 0u);
  EXPECT_EQ(counters->streams_opened, 2u);
  EXPECT_EQ(counters->errors[static_cast<size_t>(TunnelError::kRefused)], 1u);
  EXPECT_EQ(counters->errors[static_cast<size_t>(TunnelError::kNone)], 0u);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 0u);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 0u);
}

TEST_F(TunnelRegistry, StreamsOutliveTheirProxyConnectionUntilClosed) {
  Publish(10, kAlpha, {"web"});
  RouteOf(kBob, "web.alpha.dpm.internal");
  registry_.DropConnection(10);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 1u);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 1u);
  registry_.CloseStream(kBob, "web.alpha.dpm.internal", 10, TunnelError::kTimeout);
  EXPECT_EQ(registry_.ProxyStreams(kAlpha), 0u);
  EXPECT_EQ(registry_.RedirectorStreams(kBob), 0u);
  // Counters stay after the unpublish.
  const ServiceCounters* counters = registry_.Counters("web.alpha.dpm.internal");
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(counters->errors[static_cast<size_t>(TunnelError::kTimeout)], 1u);
  EXPECT_EQ(counters->streams_open, 0u);
}

TEST_F(TunnelRegistry, CountersOnlyForNamesOncePublished) {
  Publish(10, kAlpha, {"web"});
  registry_.CountError("web.alpha.dpm.internal", TunnelError::kNoService);
  registry_.CountBytes("web.alpha.dpm.internal", 100, 2000);
  registry_.CountError("probe1.alpha.dpm.internal", TunnelError::kNoService);
  registry_.CountBytes("probe2.alpha.dpm.internal", 1, 1);
  registry_.CountError("not even a name", TunnelError::kNoService);
  const ServiceCounters* counters = registry_.Counters("web.alpha.dpm.internal");
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(counters->errors[static_cast<size_t>(TunnelError::kNoService)], 1u);
  EXPECT_EQ(counters->bytes_to_service, 100u);
  EXPECT_EQ(counters->bytes_from_service, 2000u);
  EXPECT_EQ(registry_.Counters("probe1.alpha.dpm.internal"), nullptr);
  EXPECT_EQ(registry_.Counters("probe2.alpha.dpm.internal"), nullptr);
  EXPECT_EQ(registry_.Counters("not even a name"), nullptr);
  // After an unpublish the name keeps its counters and still counts.
  registry_.DropConnection(10);
  registry_.CountError("web.alpha.dpm.internal", TunnelError::kProxyDown);
  EXPECT_EQ(registry_.Counters("web.alpha.dpm.internal")->errors[static_cast<size_t>(TunnelError::kProxyDown)], 1u);
}

TEST_F(TunnelRegistry, VisibleListsPermittedPublishedServicesWithoutKeys) {
  Publish(10, kAlpha, {"web", "ssh"});
  Publish(20, kBeta, {"web"});
  Publish(30, kGamma, {"db"});
  std::vector<ServiceEntry> visible = registry_.Visible(kBob);
  ASSERT_EQ(visible.size(), 2u);
  EXPECT_EQ(visible[0].pseudo_name, "db.gamma.dpm.internal");
  EXPECT_EQ(visible[1].pseudo_name, "web.alpha.dpm.internal");
  for (const ServiceEntry& entry : visible) {
    EXPECT_EQ(entry.status, PublishStatus::kPublished);
    EXPECT_EQ(entry.key, ServiceKey{});
  }
  EXPECT_EQ(registry_.Visible(kRoot).size(), 4u);
  registry_.DropConnection(30);
  EXPECT_EQ(registry_.Visible(kBob).size(), 1u);
}

}  // namespace
}  // namespace dpm::tunnel
