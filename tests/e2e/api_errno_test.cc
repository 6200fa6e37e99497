// api_errno_test — libdpm against live daemons (run by tests/e2e/api_errors.sh, which starts
// two dpmd instances on a virtual link and an echo_server on the peer).
//
// Every bad call must return -1 with the errno the Linux kernel gives for the same mistake
// (include/dpm/socket.h), and must not disturb the daemon: the suite ends with ordinary
// traffic, and the wrapper script checks `dpmd status` afterwards.
//
// Environment (set by the wrapper):
//   DPM_SOCKET            API socket of instance A (this process's stack), address DPM_TEST_LOCAL_ADDR
//   DPM_TEST_PEER_API     API socket of instance B, address DPM_TEST_PEER_ADDR
//   DPM_TEST_ECHO_PORT    TCP and UDP echo_server port on B
//   DPM_TEST_CLOSED_PORT  a port nobody listens on at B
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dpm/socket.h"

namespace {

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

struct Config {
  std::string api = Env("DPM_SOCKET");
  std::string peer_api = Env("DPM_TEST_PEER_API");
  std::string local_addr = Env("DPM_TEST_LOCAL_ADDR", "10.77.9.1");
  std::string peer_addr = Env("DPM_TEST_PEER_ADDR", "10.77.9.2");
  int echo_port = std::atoi(Env("DPM_TEST_ECHO_PORT", "7").c_str());
  int closed_port = std::atoi(Env("DPM_TEST_CLOSED_PORT", "9").c_str());
};

const Config& Cfg() {
  static const Config* c = new Config();
  return *c;
}

sockaddr_in Addr(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

const sockaddr* SA(const sockaddr_in& a) { return reinterpret_cast<const sockaddr*>(&a); }
sockaddr* SA(sockaddr_in& a) { return reinterpret_cast<sockaddr*>(&a); }

std::string Str(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

std::string Ip(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

// Runs `call` and returns errno if it returned -1, or 0 if it succeeded.
template <typename F>
int ErrnoOf(F call) {
  errno = 0;
  long r = static_cast<long>(call());
  return r == -1 ? errno : 0;
}

// A dpm socket closed at scope exit.
class Sock {
 public:
  explicit Sock(int type = SOCK_STREAM, int protocol = 0) : fd_(dpm_socket(AF_INET, type, protocol, DPM_TUPLE_COMMON)) {}
  ~Sock() {
    if (fd_ >= 0) dpm_close(fd_);
  }
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = dpm_send(fd, p, n, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool RecvAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = dpm_recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// One echo exchange with the peer's echo_server: connect, send `size` random bytes, read
// them back, close. Returns "" or what went wrong.
std::string EchoRound(size_t size, unsigned seed) {
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  if (fd < 0) return std::string("dpm_socket: ") + std::strerror(errno);
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  std::string err;
  std::vector<char> out(size), in(size);
  std::mt19937 rng(seed);
  for (char& c : out) c = static_cast<char>(rng());
  if (dpm_connect(fd, SA(to), sizeof(to)) != 0) {
    err = std::string("dpm_connect: ") + std::strerror(errno);
  } else if (!SendAll(fd, out.data(), out.size())) {
    err = std::string("send: ") + std::strerror(errno);
  } else if (!RecvAll(fd, in.data(), in.size())) {
    err = std::string("recv: ") + std::strerror(errno);
  } else if (in != out) {
    err = "echoed bytes differ";
  }
  dpm_close(fd);
  return err;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Cfg().api.empty()) GTEST_SKIP() << "DPM_SOCKET is not set: run through tests/e2e/api_errors.sh";
  }
};

// ---- descriptors that are not dpm sockets ----

TEST_F(ApiTest, ClosedDescriptorIsEBADF) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);
  ::close(p[1]);
  sockaddr_in a = Addr("0.0.0.0", 0);
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(p[0], SA(a), sizeof(a)); }), EBADF);
  EXPECT_EQ(ErrnoOf([&] { return dpm_listen(p[0], 1); }), EBADF);
  EXPECT_EQ(ErrnoOf([&] { return dpm_connect(p[0], SA(a), sizeof(a)); }), EBADF);
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(-1, SA(a), sizeof(a)); }), EBADF);
}

TEST_F(ApiTest, ClosedDpmSocketIsEBADF) {
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(dpm_close(fd), 0);
  sockaddr_in a = Addr("0.0.0.0", 0);
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(fd, SA(a), sizeof(a)); }), EBADF);
  EXPECT_EQ(ErrnoOf([&] { return dpm_close(fd); }), EBADF);
}

TEST_F(ApiTest, PipeIsENOTSOCK) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  sockaddr_in a = Addr("0.0.0.0", 0);
  socklen_t len = sizeof(a);
  int one = 1;
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(p[0], SA(a), sizeof(a)); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_listen(p[0], 1); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_accept(p[0], nullptr, nullptr); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_connect(p[0], SA(a), sizeof(a)); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_getsockname(p[0], SA(a), &len); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_getpeername(p[0], SA(a), &len); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(p[0], SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)); }), ENOTSOCK);
  EXPECT_EQ(ErrnoOf([&] { return dpm_shutdown(p[0], SHUT_WR); }), ENOTSOCK);
  ::close(p[0]);
  ::close(p[1]);
}

// ---- dpm_socket arguments ----

TEST_F(ApiTest, SocketDomainIsEAFNOSUPPORT) {
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET6, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }), EAFNOSUPPORT);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_UNIX, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }), EAFNOSUPPORT);
}

TEST_F(ApiTest, SocketTypeIsEINVAL) {
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, 999, 0, DPM_TUPLE_COMMON); }), EINVAL);
}

TEST_F(ApiTest, UnknownTupleIsEINVALAndNewAddressesWithoutASourceEADDRNOTAVAIL) {
  // This instance has no --address-pool and no --dhcp (e2e.socket_addresses and
  // e2e.dhcp_leases cover instances that have).
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_STATIC); }), EADDRNOTAVAIL);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_DYNAMIC); }), EADDRNOTAVAIL);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET_TUPLE, SOCK_DGRAM, 0, DPM_TUPLE_COMMON); }), EADDRNOTAVAIL);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET_TUPLE, SOCK_DGRAM, 0, 7); }), EINVAL);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, 99); }), EINVAL);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_DGRAM, 0, -1); }), EINVAL);
}

TEST_F(ApiTest, AddressDscpOnTheCommonAddressIsEINVAL) {
  // DPM_ADDRESS_DSCP marks a socket's own address; the common one is every socket's.
  int fd = dpm_socket(AF_INET, SOCK_DGRAM, 0, DPM_TUPLE_COMMON);
  ASSERT_GE(fd, 0);
  int dscp = 46;
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(fd, DPM_SOL, DPM_ADDRESS_DSCP, &dscp, sizeof(dscp)); }), EINVAL);
  int value = 0;
  socklen_t len = sizeof(value);
  ASSERT_EQ(dpm_getsockopt(fd, DPM_SOL, DPM_ADDRESS_DSCP, &value, &len), 0);
  EXPECT_EQ(value, -1) << "none set";
  dpm_close(fd);
}

TEST_F(ApiTest, SocketProtocolMismatchIsEPROTONOSUPPORT) {
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP, DPM_TUPLE_COMMON); }), EPROTONOSUPPORT);
  EXPECT_EQ(ErrnoOf([] { return dpm_socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP, DPM_TUPLE_COMMON); }), EPROTONOSUPPORT);
}

TEST_F(ApiTest, SocketWithMatchingProtocolWorks) {
  Sock t(SOCK_STREAM, IPPROTO_TCP), u(SOCK_DGRAM, IPPROTO_UDP);
  EXPECT_GE(t.fd(), 0) << std::strerror(errno);
  EXPECT_GE(u.fd(), 0) << std::strerror(errno);
  int type = 0;
  socklen_t len = sizeof(type);
  ASSERT_EQ(dpm_getsockopt(u.fd(), SOL_SOCKET, SO_TYPE, &type, &len), 0) << std::strerror(errno);
  EXPECT_EQ(type, SOCK_DGRAM);
}

// ---- bind ----

TEST_F(ApiTest, DoubleBindIsEINVAL) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    Sock s(type);
    ASSERT_GE(s.fd(), 0);
    sockaddr_in a = Addr("0.0.0.0", 0);
    ASSERT_EQ(dpm_bind(s.fd(), SA(a), sizeof(a)), 0) << std::strerror(errno);
    EXPECT_EQ(ErrnoOf([&] { return dpm_bind(s.fd(), SA(a), sizeof(a)); }), EINVAL) << "type " << type;
  }
}

TEST_F(ApiTest, SamePortOnTwoSocketsIsEADDRINUSE) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    Sock a(type), b(type);
    ASSERT_GE(a.fd(), 0);
    ASSERT_GE(b.fd(), 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(dpm_bind(a.fd(), SA(any), sizeof(any)), 0) << std::strerror(errno);
    sockaddr_in bound{};
    socklen_t len = sizeof(bound);
    ASSERT_EQ(dpm_getsockname(a.fd(), SA(bound), &len), 0);
    ASSERT_NE(bound.sin_port, 0);
    sockaddr_in same = Addr("0.0.0.0", ntohs(bound.sin_port));
    EXPECT_EQ(ErrnoOf([&] { return dpm_bind(b.fd(), SA(same), sizeof(same)); }), EADDRINUSE) << "type " << type;
  }
}

TEST_F(ApiTest, BindForeignAddressIsEADDRNOTAVAIL) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    Sock s(type);
    sockaddr_in a = Addr("1.2.3.4", 0);
    EXPECT_EQ(ErrnoOf([&] { return dpm_bind(s.fd(), SA(a), sizeof(a)); }), EADDRNOTAVAIL) << "type " << type;
  }
}

TEST_F(ApiTest, BindShortAddressIsEINVAL) {
  Sock s;
  sockaddr_in a = Addr("0.0.0.0", 0);
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(s.fd(), SA(a), 4); }), EINVAL);
}

TEST_F(ApiTest, BindOtherFamilyIsEAFNOSUPPORT) {
  Sock s;
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  EXPECT_EQ(ErrnoOf([&] { return dpm_bind(s.fd(), reinterpret_cast<sockaddr*>(&a6), sizeof(a6)); }), EAFNOSUPPORT);
}

// ---- connect, listen, accept ----

TEST_F(ApiTest, ConnectToClosedPortIsECONNREFUSED) {
  Sock s;
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().closed_port);
  EXPECT_EQ(ErrnoOf([&] { return dpm_connect(s.fd(), SA(to), sizeof(to)); }), ECONNREFUSED);
}

TEST_F(ApiTest, ConnectTwiceIsEISCONN) {
  Sock s;
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  ASSERT_EQ(dpm_connect(s.fd(), SA(to), sizeof(to)), 0) << std::strerror(errno);
  EXPECT_EQ(ErrnoOf([&] { return dpm_connect(s.fd(), SA(to), sizeof(to)); }), EISCONN);
}

TEST_F(ApiTest, GetpeernameUnconnectedIsENOTCONN) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    Sock s(type);
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    EXPECT_EQ(ErrnoOf([&] { return dpm_getpeername(s.fd(), SA(a), &len); }), ENOTCONN) << "type " << type;
  }
}

TEST_F(ApiTest, ListenOnUdpIsEOPNOTSUPP) {
  Sock s(SOCK_DGRAM);
  EXPECT_EQ(ErrnoOf([&] { return dpm_listen(s.fd(), 1); }), EOPNOTSUPP);
}

TEST_F(ApiTest, AcceptOnNonListeningIsEINVAL) {
  Sock s;
  sockaddr_in a = Addr("0.0.0.0", 0);
  ASSERT_EQ(dpm_bind(s.fd(), SA(a), sizeof(a)), 0);
  EXPECT_EQ(ErrnoOf([&] { return dpm_accept(s.fd(), nullptr, nullptr); }), EINVAL);
}

TEST_F(ApiTest, NonBlockingAcceptWithNothingQueuedIsEAGAIN) {
  int fd = dpm_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, DPM_TUPLE_COMMON);
  ASSERT_GE(fd, 0);
  sockaddr_in a = Addr("0.0.0.0", 0);
  ASSERT_EQ(dpm_bind(fd, SA(a), sizeof(a)), 0);
  ASSERT_EQ(dpm_listen(fd, 4), 0);
  EXPECT_EQ(ErrnoOf([&] { return dpm_accept(fd, nullptr, nullptr); }), EAGAIN);
  dpm_close(fd);
}

TEST_F(ApiTest, ShutdownErrors) {
  Sock s;
  EXPECT_EQ(ErrnoOf([&] { return dpm_shutdown(s.fd(), SHUT_WR); }), ENOTCONN);
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  ASSERT_EQ(dpm_connect(s.fd(), SA(to), sizeof(to)), 0) << std::strerror(errno);
  EXPECT_EQ(ErrnoOf([&] { return dpm_shutdown(s.fd(), 42); }), EINVAL);
}

// ---- options ----

TEST_F(ApiTest, UnknownOptionIsENOPROTOOPT) {
  Sock s;
  int one = 1;
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(s.fd(), SOL_SOCKET, 9999, &one, sizeof(one)); }), ENOPROTOOPT);
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(s.fd(), IPPROTO_TCP, 9999, &one, sizeof(one)); }), ENOPROTOOPT);
}

TEST_F(ApiTest, ShortOptionLengthIsEINVAL) {
  Sock s;
  int one = 1;
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(s.fd(), SOL_SOCKET, SO_KEEPALIVE, &one, 2); }), EINVAL);
  EXPECT_EQ(ErrnoOf([&] { return dpm_setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, 0); }), EINVAL);
}

TEST_F(ApiTest, KnownOptionsWork) {
  Sock s;
  int one = 1, v = 0;
  socklen_t len = sizeof(v);
  ASSERT_EQ(dpm_setsockopt(s.fd(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)), 0) << std::strerror(errno);
  ASSERT_EQ(dpm_getsockopt(s.fd(), SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0) << std::strerror(errno);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(dpm_setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0) << std::strerror(errno);
}

// ---- UDP ----

TEST_F(ApiTest, UdpSendErrors) {
  Sock s(SOCK_DGRAM);
  char b[8] = {};
  EXPECT_EQ(ErrnoOf([&] { return dpm_send(s.fd(), b, sizeof(b), 0); }), EDESTADDRREQ);
  std::vector<char> big(70000);
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  EXPECT_EQ(ErrnoOf([&] { return dpm_sendto(s.fd(), big.data(), big.size(), 0, SA(to), sizeof(to)); }), EMSGSIZE);
}

TEST_F(ApiTest, UdpEchoAndNames) {
  Sock s(SOCK_DGRAM);
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  ASSERT_EQ(dpm_connect(s.fd(), SA(to), sizeof(to)), 0) << std::strerror(errno);
  sockaddr_in local{}, peer{};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  ASSERT_EQ(dpm_getpeername(s.fd(), SA(peer), &pl), 0) << std::strerror(errno);
  EXPECT_EQ(Str(peer), Str(to));
  ASSERT_EQ(dpm_getsockname(s.fd(), SA(local), &ll), 0) << std::strerror(errno);
  EXPECT_NE(local.sin_port, 0);
  // Like the kernel: connect() on a UDP socket picks the source address, getsockname() shows it.
  EXPECT_EQ(Ip(local), Cfg().local_addr) << "getsockname after UDP connect";
  const char msg[] = "udp ping";
  char got[64] = {};
  bool ok = false;
  for (int attempt = 0; attempt < 3 && !ok; ++attempt) {
    ASSERT_EQ(dpm_send(s.fd(), msg, sizeof(msg), 0), static_cast<ssize_t>(sizeof(msg))) << std::strerror(errno);
    pollfd p{s.fd(), POLLIN, 0};
    if (::poll(&p, 1, 2000) == 1) {
      sockaddr_in from{};
      socklen_t fl = sizeof(from);
      ssize_t n = dpm_recvfrom(s.fd(), got, sizeof(got), 0, SA(from), &fl);
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof(msg)));
      EXPECT_EQ(Str(from), Str(to));
      ok = true;
    }
  }
  ASSERT_TRUE(ok) << "no echo";
  EXPECT_STREQ(got, msg);
}

// ---- names ----

TEST_F(ApiTest, NamesAfterConnect) {
  Sock s;
  sockaddr_in to = Addr(Cfg().peer_addr, Cfg().echo_port);
  ASSERT_EQ(dpm_connect(s.fd(), SA(to), sizeof(to)), 0) << std::strerror(errno);
  sockaddr_in local{}, peer{};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  ASSERT_EQ(dpm_getsockname(s.fd(), SA(local), &ll), 0) << std::strerror(errno);
  ASSERT_EQ(dpm_getpeername(s.fd(), SA(peer), &pl), 0) << std::strerror(errno);
  EXPECT_EQ(ll, sizeof(sockaddr_in));
  EXPECT_EQ(local.sin_family, AF_INET);
  EXPECT_EQ(Ip(local), Cfg().local_addr);
  EXPECT_GE(ntohs(local.sin_port), 1024) << "an ephemeral port";
  EXPECT_EQ(Str(peer), Str(to));
}

// The peer's side of AcceptReturnsPeerAddress: a child process that uses instance B.
[[noreturn]] void ConnectFromPeer(int port, int report_fd) {
  dpm_set_daemon_path(Cfg().peer_api.c_str());
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  sockaddr_in to = Addr(Cfg().local_addr, port);
  if (fd < 0 || dpm_connect(fd, SA(to), sizeof(to)) != 0) _exit(10);
  sockaddr_in local{};
  socklen_t ll = sizeof(local);
  if (dpm_getsockname(fd, SA(local), &ll) != 0) _exit(11);
  std::string name = Str(local);
  if (::write(report_fd, name.c_str(), name.size()) != static_cast<ssize_t>(name.size())) _exit(12);
  ::close(report_fd);
  if (dpm_send(fd, "hello", 5, 0) != 5) _exit(13);
  char b[16];
  while (dpm_recv(fd, b, sizeof(b), 0) > 0) {
  }
  dpm_close(fd);
  _exit(0);
}

TEST_F(ApiTest, AcceptReturnsPeerAddress) {
  if (Cfg().peer_api.empty()) GTEST_SKIP() << "DPM_TEST_PEER_API not set";
  Sock l;
  sockaddr_in any = Addr("0.0.0.0", 0);
  ASSERT_EQ(dpm_bind(l.fd(), SA(any), sizeof(any)), 0);
  ASSERT_EQ(dpm_listen(l.fd(), 4), 0);
  sockaddr_in bound{};
  socklen_t bl = sizeof(bound);
  ASSERT_EQ(dpm_getsockname(l.fd(), SA(bound), &bl), 0);
  int port = ntohs(bound.sin_port);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    ConnectFromPeer(port, report[1]);
  }
  ::close(report[1]);
  sockaddr_in peer{};
  socklen_t pl = sizeof(peer);
  int c = dpm_accept(l.fd(), SA(peer), &pl);
  ASSERT_GE(c, 0) << std::strerror(errno);
  char name[64] = {};
  ASSERT_GT(::read(report[0], name, sizeof(name) - 1), 0);
  ::close(report[0]);
  EXPECT_EQ(pl, sizeof(sockaddr_in));
  EXPECT_EQ(Str(peer), std::string(name)) << "accept's peer address is the client's getsockname";
  EXPECT_EQ(Ip(peer), Cfg().peer_addr);
  sockaddr_in local{}, peer2{};
  socklen_t ll = sizeof(local), pl2 = sizeof(peer2);
  ASSERT_EQ(dpm_getsockname(c, SA(local), &ll), 0);
  EXPECT_EQ(Str(local), Cfg().local_addr + ":" + std::to_string(port));
  ASSERT_EQ(dpm_getpeername(c, SA(peer2), &pl2), 0);
  EXPECT_EQ(Str(peer2), std::string(name));
  char hello[5];
  ASSERT_TRUE(RecvAll(c, hello, sizeof(hello)));
  EXPECT_EQ(std::string(hello, 5), "hello");
  dpm_close(c);  // the child reads end-of-file and exits
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// ---- the daemon's own socket ----

TEST_F(ApiTest, NoDaemonIsENETDOWN) {
  // A fresh thread has no control connection yet, so it meets the new path.
  dpm_set_daemon_path("/nonexistent/dpm-test/no-daemon.sock");
  int err = 0;
  std::thread([&] { err = ErrnoOf([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); }); }).join();
  dpm_set_daemon_path(nullptr);
  EXPECT_EQ(err, ENETDOWN);
}

TEST_F(ApiTest, SetDaemonPathAppliesToLaterCallsOfThisThread) {
  // socket.h: "Sets the daemon's UNIX socket path for calls made after this one".
  Sock warm;  // this thread now has a control connection to instance A
  ASSERT_GE(warm.fd(), 0);
  dpm_set_daemon_path("/nonexistent/dpm-test/no-daemon.sock");
  int fd = dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) dpm_close(fd);
  dpm_set_daemon_path(nullptr);
  EXPECT_EQ(err, ENETDOWN) << "dpm_socket after dpm_set_daemon_path(<no daemon>) still reached the old daemon";
}

TEST_F(ApiTest, GarbageOnControlSocketDoesNotDisturbDaemon) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, Cfg().api.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
  std::mt19937 rng(7);
  int replies = 0;
  // Random requests of several lengths; the empty message last (it reads as end-of-file).
  for (size_t len : {1u, 3u, 4u, 17u, 200u, 4000u, 0u}) {
    std::vector<uint8_t> junk(len);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) < 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) == 1) {
      char reply[65536];
      if (::recv(fd, reply, sizeof(reply), 0) <= 0) break;  // the daemon may hang up on us
      replies++;
    }
  }
  ::close(fd);
  EXPECT_GT(replies, 0) << "the daemon answers a malformed request with an error";
  EXPECT_EQ(EchoRound(1000, 1), "");
}

// ---- many at once ----

TEST_F(ApiTest, ManyThreadsAtOnce) {
  constexpr int kThreads = 8, kRounds = 25;
  std::atomic<int> failures{0};
  std::vector<std::string> first_error(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures, &first_error] {
      for (int i = 0; i < kRounds; ++i) {
        std::string e = EchoRound(1000 + 517 * static_cast<size_t>(t) + 13 * static_cast<size_t>(i),
                                  static_cast<unsigned>(t * 1000 + i));
        if (!e.empty()) {
          if (first_error[t].empty()) first_error[t] = e;
          failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(first_error[t], "") << "thread " << t;
  EXPECT_EQ(failures.load(), 0) << "of " << kThreads * kRounds << " echo rounds";
}

TEST_F(ApiTest, DaemonStillServesAfterAllThat) {
  EXPECT_EQ(EchoRound(256 * 1024, 99), "");
}

}  // namespace
