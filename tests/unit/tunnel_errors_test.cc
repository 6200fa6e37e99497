// The tunnel's error table (src/tunnel/errors.h): header tokens, the errno the hooked
// program's connect() gets, and the proxy's connect() errno mapped in.
#include "tunnel/errors.h"

#include <cerrno>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace dpm::tunnel {
namespace {

constexpr TunnelError kAll[] = {TunnelError::kNone,       TunnelError::kNoService,       TunnelError::kProxyDown,
                                TunnelError::kRefused,    TunnelError::kTimeout,         TunnelError::kHostUnreachable,
                                TunnelError::kNetUnreachable, TunnelError::kLimit,       TunnelError::kServerDown,
                                TunnelError::kProtocol};

TEST(TunnelErrors, TokensAreTheDocumentedOnes) {
  EXPECT_EQ(ErrorToken(TunnelError::kNone), "");
  EXPECT_EQ(ErrorToken(TunnelError::kNoService), "no-service");
  EXPECT_EQ(ErrorToken(TunnelError::kProxyDown), "proxy-down");
  EXPECT_EQ(ErrorToken(TunnelError::kRefused), "refused");
  EXPECT_EQ(ErrorToken(TunnelError::kTimeout), "timeout");
  EXPECT_EQ(ErrorToken(TunnelError::kHostUnreachable), "host-unreachable");
  EXPECT_EQ(ErrorToken(TunnelError::kNetUnreachable), "net-unreachable");
  EXPECT_EQ(ErrorToken(TunnelError::kLimit), "limit");
  EXPECT_EQ(ErrorToken(TunnelError::kServerDown), "server-down");
  EXPECT_EQ(ErrorToken(TunnelError::kProtocol), "protocol");
}

TEST(TunnelErrors, EveryTokenParsesBackAndNothingElseDoes) {
  for (TunnelError error : kAll) {
    if (error == TunnelError::kNone) continue;
    EXPECT_EQ(ErrorFromToken(ErrorToken(error)), error) << ErrorToken(error);
  }
  EXPECT_EQ(ErrorFromToken(""), std::nullopt);
  EXPECT_EQ(ErrorFromToken("Refused"), std::nullopt);
  EXPECT_EQ(ErrorFromToken("refused "), std::nullopt);
  EXPECT_EQ(ErrorFromToken("bogus"), std::nullopt);
}

TEST(TunnelErrors, ErrnoOfEachError) {
  EXPECT_EQ(ErrorToErrno(TunnelError::kNone), 0);
  EXPECT_EQ(ErrorToErrno(TunnelError::kNoService), EACCES);
  EXPECT_EQ(ErrorToErrno(TunnelError::kProxyDown), EHOSTUNREACH);
  EXPECT_EQ(ErrorToErrno(TunnelError::kRefused), ECONNREFUSED);
  EXPECT_EQ(ErrorToErrno(TunnelError::kTimeout), ETIMEDOUT);
  EXPECT_EQ(ErrorToErrno(TunnelError::kHostUnreachable), EHOSTUNREACH);
  EXPECT_EQ(ErrorToErrno(TunnelError::kNetUnreachable), ENETUNREACH);
  EXPECT_EQ(ErrorToErrno(TunnelError::kLimit), EAGAIN);
  EXPECT_EQ(ErrorToErrno(TunnelError::kServerDown), ENETUNREACH);
  EXPECT_EQ(ErrorToErrno(TunnelError::kProtocol), EPROTO);
}

TEST(TunnelErrors, ProxyConnectErrnoMapsIn) {
  EXPECT_EQ(ErrorFromConnectErrno(ECONNREFUSED), TunnelError::kRefused);
  EXPECT_EQ(ErrorFromConnectErrno(ETIMEDOUT), TunnelError::kTimeout);
  EXPECT_EQ(ErrorFromConnectErrno(EHOSTUNREACH), TunnelError::kHostUnreachable);
  EXPECT_EQ(ErrorFromConnectErrno(EHOSTDOWN), TunnelError::kHostUnreachable);
  EXPECT_EQ(ErrorFromConnectErrno(ENETUNREACH), TunnelError::kNetUnreachable);
  EXPECT_EQ(ErrorFromConnectErrno(ENETDOWN), TunnelError::kNetUnreachable);
  EXPECT_EQ(ErrorFromConnectErrno(EACCES), TunnelError::kRefused);
  EXPECT_EQ(ErrorFromConnectErrno(0), TunnelError::kRefused);
}

TEST(TunnelErrors, EveryErrorHasItsOwnText) {
  std::set<std::string> texts;
  for (TunnelError error : kAll) {
    EXPECT_FALSE(ErrorText(error).empty());
    texts.insert(std::string(ErrorText(error)));
  }
  EXPECT_EQ(texts.size(), std::size(kAll));
  EXPECT_EQ(ErrorText(TunnelError::kRefused), "real server refused the connection");
}

}  // namespace
}  // namespace dpm::tunnel
