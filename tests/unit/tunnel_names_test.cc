// Pseudo DNS names (src/tunnel/names.h): labels, suffixes, and splitting a name the hook
// resolves into its service and proxy.
#include "tunnel/names.h"

#include <string>

#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

TEST(TunnelNames, ValidLabels) {
  for (const std::string& label : {std::string("a"), std::string("web"), std::string("web-2"), std::string("0"),
                                   std::string("a-b-c"), std::string(63, 'x')}) {
    EXPECT_TRUE(ValidLabel(label)) << label;
  }
  for (const std::string& label : {std::string(""), std::string(64, 'x'), std::string("-web"), std::string("web-"),
                                   std::string("Web"), std::string("web.alpha"), std::string("we_b"),
                                   std::string("*"), std::string("web "), std::string("w\0b", 3)}) {
    EXPECT_FALSE(ValidLabel(label)) << label;
  }
}

TEST(TunnelNames, ValidSuffixes) {
  EXPECT_TRUE(ValidSuffix("dpm.internal"));
  EXPECT_TRUE(ValidSuffix("internal"));
  EXPECT_TRUE(ValidSuffix("a.b.c.d"));
  EXPECT_TRUE(ValidSuffix(kDefaultSuffix));
  std::string long_suffix;
  while (long_suffix.size() + 2 <= 200) long_suffix += long_suffix.empty() ? "a" : ".a";
  EXPECT_EQ(long_suffix.size(), 199u);
  EXPECT_TRUE(ValidSuffix(long_suffix));
  EXPECT_TRUE(ValidSuffix(long_suffix + "b"));   // 200 bytes
  EXPECT_FALSE(ValidSuffix(long_suffix + ".b"));  // 201 bytes
  for (const char* bad : {"", ".", "dpm.internal.", ".dpm.internal", "dpm..internal", "DPM.internal", "dpm_x.internal",
                          "-dpm.internal"}) {
    EXPECT_FALSE(ValidSuffix(bad)) << bad;
  }
}

TEST(TunnelNames, PseudoNameJoinsTheParts) {
  EXPECT_EQ(PseudoName("web", "alpha", "dpm.internal"), "web.alpha.dpm.internal");
}

TEST(TunnelNames, ParseSplitsServiceAndProxy) {
  for (const char* name : {"web.alpha.dpm.internal", "WEB.Alpha.DPM.internal", "web.alpha.dpm.internal."}) {
    SCOPED_TRACE(name);
    const std::optional<NameParts> parts = ParsePseudoName(name, "dpm.internal");
    ASSERT_TRUE(parts.has_value());
    EXPECT_EQ(parts->service, "web");
    EXPECT_EQ(parts->proxy, "alpha");
  }
}

TEST(TunnelNames, ParseRefusesAnythingElse) {
  for (const char* name : {"alpha.dpm.internal", "x.web.alpha.dpm.internal", "web..dpm.internal", ".alpha.dpm.internal",
                           "web.alpha.dpm.internal..", "web.alpha.other.internal", "web.alpha.xdpm.internal",
                           "we_b.alpha.dpm.internal", "web.-alpha.dpm.internal", "dpm.internal", "",
                           "web.alpha.dpm.internal.com"}) {
    EXPECT_FALSE(ParsePseudoName(name, "dpm.internal").has_value()) << name;
  }
  EXPECT_FALSE(ParsePseudoName(std::string(64, 'w') + ".alpha.dpm.internal", "dpm.internal").has_value());
}

TEST(TunnelNames, UnderSuffixIsAnyNameEndingInTheSuffix) {
  EXPECT_TRUE(UnderSuffix("web.alpha.dpm.internal", "dpm.internal"));
  EXPECT_TRUE(UnderSuffix("x.y.z.DPM.Internal.", "dpm.internal"));
  EXPECT_TRUE(UnderSuffix("bad_name.dpm.internal", "dpm.internal"));  // valid or not: the hook answers it
  EXPECT_FALSE(UnderSuffix("dpm.internal", "dpm.internal"));
  EXPECT_FALSE(UnderSuffix("xdpm.internal", "dpm.internal"));
  EXPECT_FALSE(UnderSuffix("example.com", "dpm.internal"));
  EXPECT_FALSE(UnderSuffix("", "dpm.internal"));
}

TEST(TunnelNames, CanonicalNameIsLowerCaseWithoutTheDot) {
  EXPECT_EQ(CanonicalName("Web.Alpha.DPM.internal."), "web.alpha.dpm.internal");
  EXPECT_EQ(CanonicalName("web.alpha.dpm.internal"), "web.alpha.dpm.internal");
  EXPECT_EQ(CanonicalName("a.."), "a.");
}

}  // namespace
}  // namespace dpm::tunnel
