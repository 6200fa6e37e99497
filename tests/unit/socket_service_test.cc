// The socket service (stack/socket_service.h) end to end in one process: a Stack on an
// in-memory link and a ManualClock, a SocketService on an abstract API socket, and a program
// speaking the modified socket API through libdpm (include/dpm/socket.h). Segments the stack
// sends are read off the link and answered with crafted ones, so connect, accept and close are
// seen on the wire; a DHCP server scripted from dhcp/dhcp_message.h gives a per-socket address
// whose lease then runs out as the clock is advanced.
//
// libdpm's calls block until the daemon answers, so each runs on a client thread while this
// thread — lwIP's core thread, which created the Stack — serves the io_context. Time moves only
// by ManualClock::Advance on this thread, so what is checked does not depend on the wall.
#include "stack/socket_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/strings/str_cat.h"
#include "dhcp/dhcp_message.h"
#include "dpm/socket.h"
#include "gtest/gtest.h"
#include "lwip/priv/tcp_priv.h"
#include "stack/clock.h"
#include "stack/stack.h"
#include "test_bytes.h"
#include "tun/memory_link.h"
#include "wire/checksum.h"
#include "wire/cursor.h"

namespace dpm::stack {
namespace {

using dpm::testing::Ip;
constexpr uint32_t kStackAddress = Ip(10, 77, 1, 2);
constexpr uint32_t kPeerAddress = Ip(10, 77, 1, 1);  // the peer, and the DHCP server
constexpr uint32_t kLeased = Ip(10, 77, 1, 50);
constexpr uint8_t kSyn = 0x02, kRst = 0x04, kAck = 0x10, kFin = 0x01;

// ---- packets, written and read here (independent of the code under test) ------------------

// A big-endian field of a packet the stack sent (the caller checked the length).
uint16_t Be16(const std::vector<uint8_t>& b, size_t off) {
  uint16_t v = 0;
  wire::Reader(absl::MakeConstSpan(b).subspan(off)).ReadBe16(&v);
  return v;
}
uint32_t Be32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  wire::Reader(absl::MakeConstSpan(b).subspan(off)).ReadBe32(&v);
  return v;
}

// An IPv4 packet (no options, TTL 64) around a TCP or UDP `l4` whose checksum field is zero;
// both checksums are filled in.
std::vector<uint8_t> Ipv4(uint32_t src, uint32_t dst, uint8_t protocol, std::vector<uint8_t> l4) {
  const uint16_t l4_sum = wire::TransportChecksum(src, dst, protocol, l4);
  const size_t at = protocol == IPPROTO_TCP ? 16 : 6;
  l4[at] = static_cast<uint8_t>(l4_sum >> 8);
  l4[at + 1] = static_cast<uint8_t>(l4_sum);
  std::vector<uint8_t> p;
  wire::Writer w(&p);
  w.WriteU8(0x45);
  w.WriteU8(0);
  w.WriteBe16(static_cast<uint16_t>(20 + l4.size()));
  w.WriteBe32(0);  // id, flags, fragment offset
  w.WriteU8(64);
  w.WriteU8(protocol);
  w.WriteBe16(0);
  w.WriteBe32(src);
  w.WriteBe32(dst);
  const uint16_t sum = wire::InternetChecksum(p);
  p[10] = static_cast<uint8_t>(sum >> 8);
  p[11] = static_cast<uint8_t>(sum);
  w.WriteBytes(l4.data(), l4.size());
  return p;
}

struct Segment {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  size_t data = 0;  // payload bytes
};

std::vector<uint8_t> Tcp(const Segment& s) {
  std::vector<uint8_t> t;
  wire::Writer w(&t);
  w.WriteBe16(s.sport);
  w.WriteBe16(s.dport);
  w.WriteBe32(s.seq);
  w.WriteBe32(s.ack);
  w.WriteU8(5 << 4);  // data offset: 5 words, no options
  w.WriteU8(s.flags);
  w.WriteBe16(65535);  // window
  w.WriteBe32(0);      // checksum, urgent pointer
  return Ipv4(s.src, s.dst, IPPROTO_TCP, std::move(t));
}

std::vector<uint8_t> Udp(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> u;
  wire::Writer w(&u);
  w.WriteBe16(sport);
  w.WriteBe16(dport);
  w.WriteBe16(static_cast<uint16_t>(8 + data.size()));
  w.WriteBe16(0);
  w.WriteBytes(data.data(), data.size());
  return Ipv4(src, dst, IPPROTO_UDP, std::move(u));
}

// A TCP segment the stack sent (an IPv4 packet starting at `at`), or nullopt.
std::optional<Segment> ParseTcp(const std::vector<uint8_t>& p, size_t at = 0) {
  if (p.size() < at + 40 || (p[at] >> 4) != 4 || p[at + 9] != IPPROTO_TCP) return std::nullopt;
  const size_t ihl = (p[at] & 15) * 4;
  const size_t total = Be16(p, at + 2);
  const size_t t = at + ihl;
  Segment s;
  s.src = Be32(p, at + 12);
  s.dst = Be32(p, at + 16);
  s.sport = Be16(p, t);
  s.dport = Be16(p, t + 2);
  s.seq = Be32(p, t + 4);
  s.ack = Be32(p, t + 8);
  s.flags = p[t + 13];
  s.data = total - ihl - (p[t + 12] >> 4) * 4;
  return s;
}

// ---- Ethernet and DHCP ---------------------------------------------------------------------

using Mac = std::array<uint8_t, 6>;
constexpr Mac kServerMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

std::vector<uint8_t> EthernetFrame(const Mac& dst, const Mac& src, const std::vector<uint8_t>& ipv4) {
  std::vector<uint8_t> f;
  wire::Writer w(&f);
  w.WriteBytes(dst.data(), dst.size());
  w.WriteBytes(src.data(), src.size());
  w.WriteBe16(0x0800);
  w.WriteBytes(ipv4.data(), ipv4.size());
  return f;
}

// The DHCP message in a frame the stack sent (UDP 68 → 67), or nullopt.
std::optional<dhcp::DhcpMessage> ParseDhcpFrame(const std::vector<uint8_t>& f) {
  if (f.size() < 14 + 28 || Be16(f, 12) != 0x0800 || f[14 + 9] != IPPROTO_UDP) return std::nullopt;
  const size_t udp = 14 + (f[14] & 15) * 4;
  if (Be16(f, udp + 2) != dhcp::kServerPort) return std::nullopt;
  const size_t length = Be16(f, udp + 4);
  absl::StatusOr<dhcp::DhcpMessage> m =
      dhcp::ParseDhcpMessage(absl::MakeConstSpan(f.data() + udp + 8, length - 8));
  if (!m.ok()) return std::nullopt;
  return *m;
}

// The scripted server's answer to `request`: an OFFER or ACK of kLeased for `lease_s` seconds,
// broadcast (the client has no address yet).
std::vector<uint8_t> DhcpReply(const dhcp::DhcpMessage& request, dhcp::MessageType type, uint32_t lease_s) {
  dhcp::DhcpMessage m;
  m.op = dhcp::kOpBootReply;
  m.xid = request.xid;
  m.chaddr = request.chaddr;
  m.yiaddr = kLeased;
  m.message_type = type;
  m.server_identifier = kPeerAddress;
  m.lease_time = lease_s;
  m.subnet_mask = 0xffffff00;
  m.client_identifier = request.client_identifier;
  return EthernetFrame(kBroadcastMac, kServerMac,
                       Udp(kPeerAddress, 0xffffffff, dhcp::kServerPort, dhcp::kClientPort,
                           dhcp::SerializeDhcpMessage(m)));
}

// ---- the fixture ---------------------------------------------------------------------------

class SocketServiceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    service_.reset();
    stack_.reset();
  }

  void Start(bool ethernet = false, bool dhcp = false) {
    auto link = std::make_unique<tun::MemoryLink>(1500, ethernet);
    link_ = link.get();
    StackConfig sc;
    sc.address = kStackAddress;
    sc.prefix = 24;
    auto stack = Stack::Create(io_, std::move(link), sc, &clock_);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    SocketServiceConfig c;
    c.path = absl::StrCat("@dpm-test/socket-service/", ::getpid(), "/", ++serial_);
    c.dhcp = dhcp;
    auto service = SocketService::Create(io_, *stack_, c);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    dpm_set_daemon_path(c.path.c_str());
    Serve([] { return false; }, 5);
    std::vector<uint8_t> p;
    while (link_->TakeOutbound(&p)) {
    }  // coming up (an Ethernet link announces its address)
  }

  // Serves the io_context on this thread until `done` or `ms` milliseconds of wall time.
  bool Serve(const std::function<bool()>& done, int ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(std::chrono::milliseconds(1));
    }
    return true;
  }
  // Runs a blocking libdpm call on a client thread while this thread serves the daemon.
  template <typename F>
  auto Call(F call) {
    auto result = std::async(std::launch::async, call);
    EXPECT_TRUE(Serve([&] { return result.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }))
        << "the call did not return";
    return result.get();
  }
  // The next packet (or frame) the stack sends that `match` accepts; others are skipped.
  template <typename T>
  std::optional<T> Next(const std::function<std::optional<T>(const std::vector<uint8_t>&)>& match) {
    std::optional<T> found;
    Serve([&] {
      std::vector<uint8_t> p;
      while (!found && link_->TakeOutbound(&p)) found = match(p);
      return found.has_value();
    });
    return found;
  }
  std::optional<Segment> NextSegment() {
    return Next<Segment>([](const std::vector<uint8_t>& p) { return ParseTcp(p); });
  }
  // Moves the clock in 100 ms steps, serving what falls due (posted handlers included).
  void Advance(uint64_t ms) {
    for (uint64_t done = 0; done < ms; done += 100) {
      clock_.Advance(100);
      Serve([] { return false; }, 1);
    }
  }

  // kPeerAddress:`port` as a sockaddr.
  static sockaddr_in PeerAt(uint16_t port) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(kPeerAddress);
    return to;
  }

  // A non-blocking dpm TCP socket whose connect to kPeerAddress:`port` answered EINPROGRESS, or -1.
  int ConnectingSocket(uint16_t port) {
    const int fd = Call([] { return dpm_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, DPM_TUPLE_COMMON); });
    if (fd < 0) return -1;
    sockaddr_in to = PeerAt(port);
    const int e = Call([&] { return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno; });
    EXPECT_EQ(e, EINPROGRESS);
    return e == EINPROGRESS ? fd : -1;
  }

  // A dpm TCP socket listening on `port` (backlog 4), or -1.
  int ListeningSocket(uint16_t port) {
    const int fd = Call([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); });
    if (fd < 0) return -1;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(port);
    if (Call([&] { return dpm_bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)); }) != 0 ||
        Call([&] { return dpm_listen(fd, 4); }) != 0) {
      return -1;
    }
    return fd;
  }

  // A connected dpm TCP socket to kPeerAddress:80, the handshake answered on the wire.
  int ConnectedSocket(Segment* syn_out = nullptr) {
    const int fd = Call([] { return dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON); });
    EXPECT_GE(fd, 0) << std::strerror(errno);
    auto connected = std::async(std::launch::async, [fd] {
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(80);
      to.sin_addr.s_addr = htonl(kPeerAddress);
      return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno;
    });
    std::optional<Segment> syn = NextSegment();
    EXPECT_TRUE(syn);
    if (!syn) return -1;
    EXPECT_EQ(syn->flags & (kSyn | kAck), kSyn) << "a SYN leaves the link";
    EXPECT_EQ(syn->src, kStackAddress);
    EXPECT_EQ(syn->dst, kPeerAddress);
    EXPECT_EQ(syn->dport, 80);
    link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 80, syn->sport, 5000, syn->seq + 1, kSyn | kAck}));
    EXPECT_TRUE(Serve([&] { return connected.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
    EXPECT_EQ(connected.get(), 0) << "connect() returns 0 once the SYN-ACK arrived";
    if (syn_out != nullptr) *syn_out = *syn;
    return fd;
  }

  ManualClock clock_;
  boost::asio::io_context io_;
  tun::MemoryLink* link_ = nullptr;  // owned by stack_
  std::unique_ptr<Stack> stack_;
  std::unique_ptr<SocketService> service_;
  int serial_ = 0;
};

TEST_F(SocketServiceTest, ConnectSendsASynAndReturnsZeroAfterTheSynAck) {
  Start();
  Segment syn;
  const int fd = ConnectedSocket(&syn);
  ASSERT_GE(fd, 0);
  std::optional<Segment> ack = NextSegment();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->flags & (kSyn | kAck), kAck) << "the handshake's last ACK";
  EXPECT_EQ(ack->ack, 5001u);
  // The program's bytes go out as a segment from the connection.
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  std::optional<Segment> data = NextSegment();
  ASSERT_TRUE(data);
  EXPECT_EQ(data->sport, syn.sport);
  EXPECT_EQ(data->data, 5u);
  EXPECT_EQ(data->seq, syn.seq + 1);
  EXPECT_NE(service_->Status(true).find("\"state\":\"connected\""), std::string::npos) << service_->Status(true);
  dpm_close(fd);
}

TEST_F(SocketServiceTest, AListenerAnswersASynWithASynAckAndAcceptReturnsAfterTheAck) {
  Start();
  const int fd = ListeningSocket(8080);
  ASSERT_GE(fd, 0);
  sockaddr_in peer{};
  auto accepted = std::async(std::launch::async, [fd, &peer] {
    socklen_t len = sizeof(peer);
    return dpm_accept(fd, reinterpret_cast<sockaddr*>(&peer), &len);
  });
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 1000, 0, kSyn}));
  std::optional<Segment> syn_ack = NextSegment();
  ASSERT_TRUE(syn_ack);
  EXPECT_EQ(syn_ack->flags & (kSyn | kAck), kSyn | kAck);
  EXPECT_EQ(syn_ack->sport, 8080);
  EXPECT_EQ(syn_ack->ack, 1001u);
  EXPECT_EQ(accepted.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "accept() waits for the handshake";
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 1001, syn_ack->seq + 1, kAck}));
  ASSERT_TRUE(Serve([&] { return accepted.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
  const int conn = accepted.get();
  ASSERT_GE(conn, 0) << std::strerror(errno);
  EXPECT_EQ(ntohl(peer.sin_addr.s_addr), kPeerAddress);
  EXPECT_EQ(ntohs(peer.sin_port), 5555);
  EXPECT_EQ(service_->socket_count(), 2u) << "the listener and the accepted connection";
  dpm_close(conn);
  dpm_close(fd);
}

// What poll(2) says of `fd` now (POLLOUT and friends), without waiting.
short PollNow(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 0) == 1 ? p.revents : 0;
}

int SoError(int fd) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (dpm_getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) != 0) return -errno;
  return value;
}

// A non-blocking connect is answered EINPROGRESS at once; until the handshake ends neither
// poll nor epoll (registered before connect, edge-triggered, as nginx does) sees the
// descriptor writable and a write gets EAGAIN; the SYN-ACK makes it writable, SO_ERROR is 0, and
// the program's first bytes are the connection's first (the gate never reaches the wire).
TEST_F(SocketServiceTest, NonBlockingConnectAnswersEinprogressAndTurnsWritableWhenEstablished) {
  Start();
  const int fd = Call([] { return dpm_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, DPM_TUPLE_COMMON); });
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
  ASSERT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
  sockaddr_in to = PeerAt(80);
  const int connect_errno =
      Call([&] { return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno; });
  EXPECT_EQ(connect_errno, EINPROGRESS);
  EXPECT_EQ(PollNow(fd, POLLIN | POLLOUT), 0) << "neither readable nor writable while connecting";
  EXPECT_EQ(::epoll_wait(ep, &ev, 1, 0), 0) << "epoll reports nothing while connecting";
  EXPECT_EQ(::write(fd, "x", 1), -1);
  EXPECT_EQ(errno, EAGAIN) << "a write while connecting waits, as on a kernel socket";
  EXPECT_EQ(Call([&] { return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno; }),
            EALREADY);
  std::optional<Segment> syn = NextSegment();
  ASSERT_TRUE(syn);
  EXPECT_EQ(syn->flags & (kSyn | kAck), kSyn);
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 80, syn->sport, 5000, syn->seq + 1, kSyn | kAck}));
  ASSERT_TRUE(Serve([&] { return (PollNow(fd, POLLOUT) & POLLOUT) != 0; })) << "writable once established";
  ASSERT_EQ(::epoll_wait(ep, &ev, 1, 0), 1);
  EXPECT_NE(ev.events & EPOLLOUT, 0u) << "epoll reports the connect's end";
  EXPECT_EQ(Call([&] { return SoError(fd); }), 0);
  EXPECT_EQ(Call([&] { return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno; }),
            EISCONN);
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  std::optional<Segment> data = Next<Segment>([](const std::vector<uint8_t>& p) -> std::optional<Segment> {
    std::optional<Segment> s = ParseTcp(p);
    if (s && s->data > 0) return s;
    return std::nullopt;
  });
  ASSERT_TRUE(data);
  EXPECT_EQ(data->data, 5u) << "only the program's bytes are sent";
  EXPECT_EQ(data->seq, syn->seq + 1);
  ::close(ep);
  dpm_close(fd);
}

// A refused non-blocking connect (RST) turns the descriptor writable with ECONNREFUSED in
// SO_ERROR (read once, then 0), and reads see end-of-file.
TEST_F(SocketServiceTest, NonBlockingConnectRefusedGivesEconnrefusedThroughSoError) {
  Start();
  const int fd = ConnectingSocket(81);
  ASSERT_GE(fd, 0);
  std::optional<Segment> syn = NextSegment();
  ASSERT_TRUE(syn);
  EXPECT_EQ(PollNow(fd, POLLOUT), 0);
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 81, syn->sport, 0, syn->seq + 1, kRst | kAck}));
  ASSERT_TRUE(Serve([&] { return (PollNow(fd, POLLOUT) & POLLOUT) != 0; })) << "writable once refused";
  EXPECT_EQ(Call([&] { return SoError(fd); }), ECONNREFUSED);
  EXPECT_EQ(Call([&] { return SoError(fd); }), 0) << "SO_ERROR is cleared by reading it";
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0) << "end-of-file after a failed connect";
  dpm_close(fd);
}

// A program that gives up on a non-blocking connect and closes the descriptor (a connect
// timeout of its own) releases the socket at once, as close(2) aborts a kernel connect: the
// gate must not hide the hang-up until lwIP's SYN retries run out.
TEST_F(SocketServiceTest, ClosingDuringANonBlockingConnectReleasesTheSocketAtOnce) {
  Start();
  const int fd = ConnectingSocket(80);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(NextSegment()) << "the SYN";
  ASSERT_EQ(service_->socket_count(), 1u);
  dpm_close(fd);
  EXPECT_TRUE(Serve([&] { return service_->socket_count() == 0; }, 2000)) << "released while still connecting";
}

// A descriptor number that dup2() pointed at another socket's pair behind libdpm's back is not
// taken for the socket it named (its inode changed): the non-blocking connect is refused with
// ENOTSOCK before the daemon is asked to fill anything.
TEST_F(SocketServiceTest, NonBlockingConnectOnAReplacedDescriptorIsRefused) {
  Start();
  const int fd = Call([] { return dpm_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, DPM_TUPLE_COMMON); });
  ASSERT_GE(fd, 0);
  const int other = Call([] { return dpm_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, DPM_TUPLE_COMMON); });
  ASSERT_GE(other, 0);
  sockaddr_in to = PeerAt(80);
  const int saved = ::dup(fd);
  ASSERT_EQ(::dup2(other, fd), fd);
  EXPECT_EQ(Call([&] { return dpm_connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ? 0 : errno; }),
            ENOTSOCK);
  ::dup2(saved, fd);
  ::close(saved);
  dpm_close(other);
  dpm_close(fd);
}

// A server that closes first keeps its side in TIME-WAIT; a client coming back from the same
// port with a SYN beyond the old connection's sequence space gets a new connection (a SYN-ACK),
// as on Linux (RFC 1122 4.2.2.13, RFC 6191; lwIP patch 0003), not the RST unpatched lwIP sends.
TEST_F(SocketServiceTest, ASynBeyondATimeWaitConnectionOpensANewOne) {
  Start();
  const int fd = ListeningSocket(8080);
  ASSERT_GE(fd, 0);
  auto accepted = std::async(std::launch::async, [fd] { return dpm_accept(fd, nullptr, nullptr); });
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 1000, 0, kSyn}));
  std::optional<Segment> syn_ack = NextSegment();
  ASSERT_TRUE(syn_ack);
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 1001, syn_ack->seq + 1, kAck}));
  ASSERT_TRUE(Serve([&] { return accepted.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
  const int conn = accepted.get();
  ASSERT_GE(conn, 0);
  dpm_close(conn);  // the server closes first: FIN
  std::optional<Segment> fin = NextSegment();
  ASSERT_TRUE(fin);
  ASSERT_NE(fin->flags & kFin, 0);
  // The client acknowledges and sends its FIN; the stack's ACK of it leaves it in TIME-WAIT.
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 1001, fin->seq + 1, kAck | kFin}));
  std::optional<Segment> last_ack = NextSegment();
  ASSERT_TRUE(last_ack);
  EXPECT_EQ(last_ack->flags & (kAck | kFin | kRst), kAck);
  ASSERT_EQ(tcp_tw_pcbs != nullptr, true) << "the stack's side waits in TIME-WAIT";
  // Back from the same port, beyond the old sequence space.
  link_->InjectInbound(Tcp({kPeerAddress, kStackAddress, 5555, 8080, 90000, 0, kSyn}));
  std::optional<Segment> answer = NextSegment();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->flags & (kSyn | kAck | kRst), kSyn | kAck) << "a new connection, not a reset";
  EXPECT_EQ(answer->ack, 90001u);
  dpm_close(fd);
}

// TCP_INFO answers from lwIP's view of the connection (iperf3 reads it every interval).
TEST_F(SocketServiceTest, TcpInfoGivesTheConnectionsStateAndMss) {
  Start();
  const int fd = ConnectedSocket();
  ASSERT_GE(fd, 0);
  tcp_info info{};
  socklen_t len = sizeof(info);
  ASSERT_EQ(Call([&] { return dpm_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len); }), 0) << std::strerror(errno);
  EXPECT_EQ(len, sizeof(info));
  EXPECT_EQ(info.tcpi_state, TCP_ESTABLISHED);
  EXPECT_EQ(info.tcpi_snd_mss, 536u) << "the peer's SYN-ACK carried no MSS option: RFC 9293's default";
  EXPECT_GT(info.tcpi_snd_cwnd, 0u);
  char cc[16] = {};
  socklen_t cc_len = sizeof(cc);
  ASSERT_EQ(Call([&] { return dpm_getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cc_len); }), 0);
  EXPECT_STREQ(cc, "reno");
  EXPECT_EQ(Call([&] { return dpm_setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5) == 0 ? 0 : errno; }),
            ENOENT);
  dpm_close(fd);
}

TEST_F(SocketServiceTest, CloseSendsAFinAndTheSocketLeavesTheRegistryAndStatus) {
  Start();
  const int fd = ConnectedSocket();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(NextSegment());  // the handshake's ACK
  EXPECT_EQ(service_->socket_count(), 1u);
  EXPECT_NE(service_->Status(true).find("\"socket_count\":1"), std::string::npos);
  ASSERT_EQ(dpm_close(fd), 0);
  std::optional<Segment> fin = NextSegment();
  ASSERT_TRUE(fin);
  EXPECT_NE(fin->flags & kFin, 0) << "close() sends a FIN";
  EXPECT_EQ(fin->flags & kRst, 0);
  ASSERT_TRUE(Serve([&] { return service_->socket_count() == 0; }));
  const std::string status = service_->Status(true);
  EXPECT_NE(status.find("\"socket_count\":0"), std::string::npos) << status;
  EXPECT_NE(status.find("\"sockets\":[]"), std::string::npos) << status;
  EXPECT_NE(status.find("\"sockets_closed\":1"), std::string::npos) << status;
}

// docs/api.md "Addresses per socket": a DPM_TUPLE_DYNAMIC socket's lease that expires without
// a renewal gives the address back and closes the socket: the program reads end-of-file and
// SO_ERROR is ETIMEDOUT.
TEST_F(SocketServiceTest, ALeasedAddressIsGivenBackWhenTheLeaseExpiresAndTheSocketSeesEtimedout) {
  Start(/*ethernet=*/true, /*dhcp=*/true);
  auto opened = std::async(std::launch::async, [] { return dpm_socket(AF_INET, SOCK_DGRAM, 0, DPM_TUPLE_DYNAMIC); });
  auto dhcp_of = [](dhcp::MessageType type) {
    return [type](const std::vector<uint8_t>& f) -> std::optional<dhcp::DhcpMessage> {
      std::optional<dhcp::DhcpMessage> m = ParseDhcpFrame(f);
      if (!m || m->message_type != type) return std::nullopt;
      return m;
    };
  };
  std::optional<dhcp::DhcpMessage> discover = Next<dhcp::DhcpMessage>(dhcp_of(dhcp::MessageType::kDiscover));
  ASSERT_TRUE(discover) << "dpm_socket() asks for a lease";
  EXPECT_EQ(opened.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "the reply waits for the lease";
  link_->InjectInbound(DhcpReply(*discover, dhcp::MessageType::kOffer, 60));
  std::optional<dhcp::DhcpMessage> request = Next<dhcp::DhcpMessage>(dhcp_of(dhcp::MessageType::kRequest));
  ASSERT_TRUE(request);
  link_->InjectInbound(DhcpReply(*request, dhcp::MessageType::kAck, 60));
  ASSERT_TRUE(Serve([&] { return opened.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
  const int fd = opened.get();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_in name{};
  socklen_t len = sizeof(name);
  ASSERT_EQ(Call([&] { return dpm_getsockname(fd, reinterpret_cast<sockaddr*>(&name), &len); }), 0);
  EXPECT_EQ(ntohl(name.sin_addr.s_addr), kLeased) << "the lease is the socket's own address";
  EXPECT_NE(service_->Status(true).find("\"in_use\":1"), std::string::npos);

  // No renewal is answered: at 60 s the lease is gone.
  Advance(59'000);
  EXPECT_NE(service_->Status(true).find("\"in_use\":1"), std::string::npos) << "still held before expiry";
  Advance(2'000);
  const std::string status = service_->Status(true);
  EXPECT_NE(status.find("\"in_use\":0"), std::string::npos) << status;
  EXPECT_NE(status.find("\"lost\":1"), std::string::npos) << status;
  EXPECT_NE(status.find("\"expired\":1"), std::string::npos) << status;
  char buf[64];
  EXPECT_EQ(::recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0) << "the program reads end-of-file";
  int error = 0;
  socklen_t error_len = sizeof(error);
  ASSERT_EQ(Call([&] { return dpm_getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len); }), 0);
  EXPECT_EQ(error, ETIMEDOUT);
  dpm_close(fd);
  ASSERT_TRUE(Serve([&] { return service_->socket_count() == 0; }));
}

}  // namespace
}  // namespace dpm::stack
