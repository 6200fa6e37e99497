// The tunnel server's access file (src/tunnel/access.h): what parses, each refusal naming its
// place, pattern matching, and authentication that answers an unknown name and a wrong token
// alike.
#include "tunnel/access.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

constexpr char kGood[] = R"({
  "proxies": {
    "alpha": { "token": "alpha-token-0123456789", "max_services": 8, "max_streams": 100 },
    "beta": { "token": "beta-token-0123456789" }
  },
  "redirectors": {
    "bob": { "token": "bob-token-0123456789", "services": ["web.alpha", "*.beta"], "max_streams": 10 },
    "root": { "token": "root-token-0123456789", "services": ["*"] }
  },
  "max_streams_per_service": 50
})";

AccessConfig Good() {
  absl::StatusOr<AccessConfig> config = ParseAccessConfig(kGood);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : AccessConfig{};
}

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<AccessConfig> config = ParseAccessConfig(text);
  EXPECT_FALSE(config.ok()) << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(TunnelAccess, GoodFileParses) {
  const AccessConfig config = Good();
  ASSERT_EQ(config.proxies.size(), 2u);
  const ProxyAccess* alpha = config.FindProxy("alpha");
  ASSERT_NE(alpha, nullptr);
  EXPECT_EQ(alpha->max_services, 8u);
  EXPECT_EQ(alpha->max_streams, 100u);
  EXPECT_EQ(alpha->token, DigestToken("alpha-token-0123456789"));
  const ProxyAccess* beta = config.FindProxy("beta");
  ASSERT_NE(beta, nullptr);
  EXPECT_EQ(beta->max_services, kDefaultMaxServices);
  EXPECT_EQ(beta->max_streams, kDefaultMaxStreams);
  const RedirectorAccess* bob = config.FindRedirector("bob");
  ASSERT_NE(bob, nullptr);
  EXPECT_EQ(bob->services, (std::vector<std::string>{"web.alpha", "*.beta"}));
  EXPECT_EQ(bob->max_streams, 10u);
  EXPECT_EQ(config.FindRedirector("root")->max_streams, kDefaultMaxStreams);
  EXPECT_EQ(config.max_streams_per_service, 50u);
  EXPECT_EQ(config.FindProxy("gamma"), nullptr);
  EXPECT_EQ(config.FindRedirector("alpha"), nullptr);
}

TEST(TunnelAccess, EmptyObjectIsAServerWithNobody) {
  absl::StatusOr<AccessConfig> config = ParseAccessConfig("{}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->proxies.empty());
  EXPECT_TRUE(config->redirectors.empty());
  EXPECT_EQ(config->max_streams_per_service, kDefaultMaxStreams);
}

TEST(TunnelAccess, PatternsPermitWhatTheyName) {
  const AccessConfig config = Good();
  const RedirectorAccess& bob = *config.FindRedirector("bob");
  EXPECT_TRUE(bob.Permits("web", "alpha"));
  EXPECT_FALSE(bob.Permits("ssh", "alpha"));
  EXPECT_TRUE(bob.Permits("ssh", "beta"));
  EXPECT_TRUE(bob.Permits("web", "beta"));
  EXPECT_FALSE(bob.Permits("web", "gamma"));
  EXPECT_FALSE(bob.Permits("web", "alphabeta"));
  const RedirectorAccess& root = *config.FindRedirector("root");
  EXPECT_TRUE(root.Permits("anything", "anywhere"));
}

TEST(TunnelAccess, EachRefusalNamesItsPlace) {
  const std::string t = R"("token": "0123456789abcdef")";
  EXPECT_THAT(ErrorOf("{"), ::testing::StartsWith("not JSON: "));
  EXPECT_THAT(ErrorOf("{\n  \"proxies\": {,}\n}"), ::testing::HasSubstr("line 2, column 15"));
  EXPECT_THAT(ErrorOf(""), ::testing::StartsWith("not JSON: "));
  EXPECT_EQ(ErrorOf("[]"), "not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"proxy": {}})"), "access file: unknown key 'proxy'");
  EXPECT_EQ(ErrorOf(R"({"proxies": []})"), "proxies: not an object");
  EXPECT_EQ(ErrorOf(R"({"redirectors": 1})"), "redirectors: not an object");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {}}})"), "proxies.alpha: token missing");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": 5}})"), "proxies.alpha: not an object");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {"token": 5}}})"), "proxies.alpha: token is not a string");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {"token": "0123456789abcde"}}})"),
            "proxies.alpha: token shorter than 16 bytes");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {"token": ")" + std::string(257, 'x') + R"("}}})"),
            "proxies.alpha: token longer than 256 bytes");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {)" + t + R"(, "max_service": 3}}})"),
            "proxies.alpha: unknown key 'max_service'");
  EXPECT_THAT(ErrorOf(R"({"proxies": {"Alpha": {)" + t + "}}}"),
              ::testing::StartsWith("proxies.Alpha: not a valid name"));
  EXPECT_THAT(ErrorOf(R"({"proxies": {"a.b": {)" + t + "}}}"), ::testing::StartsWith("proxies.a.b: not a valid name"));
  for (const char* limit : {"0", "-1", "1.5", "\"8\"", "true"}) {
    SCOPED_TRACE(limit);
    EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {)" + t + R"(, "max_streams": )" + limit + "}}}"),
              "proxies.alpha: max_streams is not a positive integer");
  }
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {)" + t + R"(, "max_services": 0}}})"),
            "proxies.alpha: max_services is not a positive integer");
  EXPECT_EQ(ErrorOf(R"({"max_streams_per_service": 0})"),
            "access file: max_streams_per_service is not a positive integer");
  EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {)" + t + "}}}"), "redirectors.bob: services missing");
  EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {)" + t + R"(, "services": "*"}}})"),
            "redirectors.bob: services is not a list");
  EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {)" + t + R"(, "services": ["*", 3]}}})"),
            "redirectors.bob.services[1]: not a string");
  for (const char* pattern : {"x..y", "web", "web.", ".alpha", "web.*", "*.*", "a.b.c", "Web.alpha", ""}) {
    SCOPED_TRACE(pattern);
    EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {)" + t + R"(, "services": ["*", ")" + pattern + R"("]}}})"),
              std::string("redirectors.bob.services[1]: bad pattern '") + pattern + "'");
  }
  EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {)" + t + R"(, "services": [], "service": []}}})"),
            "redirectors.bob: unknown key 'service'");
  EXPECT_EQ(ErrorOf(R"({"redirectors": {"bob": {"token": "short", "services": []}}})"),
            "redirectors.bob: token shorter than 16 bytes");
}

TEST(TunnelAccess, AKeyGivenTwiceIsAnError) {
  // A second "token" would otherwise win silently.
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {"token": "0123456789abcdef", "token": "fedcba9876543210"}}})"),
            "key 'token' given twice");
  EXPECT_EQ(ErrorOf(R"({"proxies": {"alpha": {"token": "0123456789abcdef"}, "alpha": {"token": "0123456789abcdef"}}})"),
            "key 'alpha' given twice");
  // The same key in two different objects is fine.
  EXPECT_TRUE(
      ParseAccessConfig(R"({"proxies": {"a": {"token": "0123456789abcdef"}, "b": {"token": "0123456789abcdef"}}})")
          .ok());
}

TEST(TunnelAccess, ErrorsNeverShowTheToken) {
  const std::string secret = "short-secret";
  EXPECT_THAT(ErrorOf(R"({"proxies": {"alpha": {"token": ")" + secret + R"("}}})"),
              ::testing::Not(::testing::HasSubstr(secret)));
  // A syntax error inside a token: the JSON parser's message would quote what it last read.
  const std::string unterminated = R"({"proxies": {"alpha": {"token": "a-long-secret-token)";
  const std::string error = ErrorOf(unterminated);
  EXPECT_THAT(error, ::testing::StartsWith("not JSON: parse error at line 1"));
  EXPECT_THAT(error, ::testing::Not(::testing::HasSubstr("secret")));
  EXPECT_THAT(ErrorOf("{\"proxies\": {\"alpha\": {\"token\": \"secret\ttoken\"}}}"),
              ::testing::Not(::testing::HasSubstr("secret")));
}

TEST(TunnelAccess, TokenMatchesOnlyItsOwnToken) {
  const TokenDigest digest = DigestToken("the-right-token-1234");
  EXPECT_TRUE(TokenMatches(digest, "the-right-token-1234"));
  EXPECT_FALSE(TokenMatches(digest, "the-right-token-1235"));
  EXPECT_FALSE(TokenMatches(digest, "the-right-token-123"));
  EXPECT_FALSE(TokenMatches(digest, ""));
  EXPECT_FALSE(TokenMatches(TokenDigest{}, ""));  // the all-zero dummy digest matches nothing
  // SHA-256("abc") (FIPS 180-2 appendix B.1).
  const TokenDigest abc = DigestToken("abc");
  EXPECT_EQ(abc[0], 0xba);
  EXPECT_EQ(abc[31], 0xad);
}

TEST(TunnelAccess, AuthenticationFindsTheEntryForTheRightToken) {
  const AccessConfig config = Good();
  EXPECT_EQ(AuthenticateProxy(config, "alpha", "alpha-token-0123456789"), std::optional<size_t>(0));
  EXPECT_EQ(AuthenticateProxy(config, "beta", "beta-token-0123456789"), std::optional<size_t>(1));
  EXPECT_EQ(AuthenticateRedirector(config, "root", "root-token-0123456789"), std::optional<size_t>(1));
  // Proxies and redirectors are separate tables.
  EXPECT_EQ(AuthenticateRedirector(config, "alpha", "alpha-token-0123456789"), std::nullopt);
  EXPECT_EQ(AuthenticateProxy(config, "bob", "bob-token-0123456789"), std::nullopt);
  // One proxy's token does not open another.
  EXPECT_EQ(AuthenticateProxy(config, "beta", "alpha-token-0123456789"), std::nullopt);
}

TEST(TunnelAccess, UnknownNameAndWrongTokenGiveTheSameAnswer) {
  const AccessConfig config = Good();
  const std::optional<size_t> unknown = AuthenticateProxy(config, "gamma", "alpha-token-0123456789");
  const std::optional<size_t> wrong = AuthenticateProxy(config, "alpha", "not-alpha-token-0000");
  EXPECT_EQ(unknown, std::nullopt);
  EXPECT_EQ(wrong, std::nullopt);
  EXPECT_EQ(unknown, wrong);
  // An empty token against an unknown name does not match the dummy digest either.
  EXPECT_EQ(AuthenticateRedirector(config, "nobody", ""), std::nullopt);
  EXPECT_EQ(AuthenticateRedirector(config, "bob", ""), std::nullopt);
  EXPECT_EQ(AuthenticateRedirector(AccessConfig{}, "", ""), std::nullopt);
}

}  // namespace
}  // namespace dpm::tunnel
