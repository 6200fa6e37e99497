// Links (src/tun): the virtual UNIX-datagram link, the in-memory link, pcap capture, and the
// TUN link's argument checks (creating a real TUN device needs root and a namespace: that is
// covered by the end-to-end tests).
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tun/link.h"
#include "tun/memory_link.h"
#include "tun/pcap_link.h"
#include "tun/tun_link.h"
#include "tun/virtual_link.h"

namespace dpm::tun {
namespace {

using ::testing::HasSubstr;

// A fresh directory under /tmp (short, so UNIX socket paths fit in sun_path), removed after.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dpm-unit-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    EXPECT_NE(made, nullptr) << std::strerror(errno);
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Waits up to a second for `fd` to poll readable (datagrams between sockets of one host
// arrive at once; the wait only guards against a loaded machine).
bool WaitReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 1000) == 1 && (p.revents & POLLIN) != 0;
}

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> p(size);
  for (size_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(seed + i * 31);
  return p;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> Fixture(const std::string& name) {
  std::vector<uint8_t> bytes = ReadFile(std::string(DPM_UNIT_FIXTURES_DIR) + "/" + name);
  EXPECT_FALSE(bytes.empty()) << "missing fixture " << name;
  return bytes;
}

// Reads one packet, expecting it to be there.
std::vector<uint8_t> ReadOne(Link& link, size_t room) {
  std::vector<uint8_t> buf(room);
  absl::StatusOr<size_t> n = link.Read(absl::MakeSpan(buf));
  EXPECT_TRUE(n.ok()) << n.status();
  if (!n.ok()) return {};
  buf.resize(std::min(*n, room));
  return buf;
}

// A socket file whose owner has gone: bound, then closed without unlinking.
void MakeStaleSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  ::close(fd);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
}

// ---- VirtualLink ---------------------------------------------------------------------

class VirtualLinkTest : public ::testing::Test {
 protected:
  static constexpr size_t kMtu = 1500;
  void SetUp() override {
    auto a = VirtualLink::Open(dir_.File("a"), dir_.File("b"), kMtu);
    ASSERT_TRUE(a.ok()) << a.status();
    auto b = VirtualLink::Open(dir_.File("b"), dir_.File("a"), kMtu);
    ASSERT_TRUE(b.ok()) << b.status();
    a_ = std::move(*a);
    b_ = std::move(*b);
  }
  TempDir dir_;
  std::unique_ptr<VirtualLink> a_, b_;
};

TEST_F(VirtualLinkTest, ExchangesPacketsOfEverySizeUpToTheMtuBothWays) {
  size_t sent_bytes = 0;
  for (size_t size : {size_t{1}, size_t{20}, size_t{576}, size_t{1499}, kMtu}) {
    SCOPED_TRACE(size);
    const std::vector<uint8_t> forward = Pattern(size, 1);
    const std::vector<uint8_t> back = Pattern(size, 2);
    ASSERT_TRUE(a_->WritePacket(forward).ok());
    ASSERT_TRUE(WaitReadable(b_->fd()));
    EXPECT_EQ(ReadOne(*b_, kMtu), forward);
    ASSERT_TRUE(b_->WritePacket(back).ok());
    ASSERT_TRUE(WaitReadable(a_->fd()));
    EXPECT_EQ(ReadOne(*a_, kMtu), back);
    sent_bytes += size;
  }
  EXPECT_EQ(a_->counters().tx_packets, 5u);
  EXPECT_EQ(a_->counters().tx_bytes, sent_bytes);
  EXPECT_EQ(b_->counters().rx_packets, 5u);
  EXPECT_EQ(b_->counters().rx_bytes, sent_bytes);
  EXPECT_EQ(a_->counters().tx_dropped, 0u);
  EXPECT_EQ(a_->name(), "virtual:" + dir_.File("a"));
  EXPECT_EQ(a_->mtu(), kMtu);
}

TEST_F(VirtualLinkTest, GathersPartsIntoOneDatagram) {
  const std::vector<uint8_t> head = Pattern(20, 3), body = Pattern(100, 4);
  iovec parts[] = {{const_cast<uint8_t*>(head.data()), head.size()},
                   {const_cast<uint8_t*>(body.data()), body.size()}};
  ASSERT_TRUE(a_->Write(parts).ok());
  ASSERT_TRUE(WaitReadable(b_->fd()));
  std::vector<uint8_t> expected = head;
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(ReadOne(*b_, kMtu), expected);
}

TEST_F(VirtualLinkTest, PacketOverTheMtuIsRejectedAndCounted) {
  absl::Status s = a_->WritePacket(Pattern(kMtu + 1, 5));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(a_->counters().tx_dropped, 1u);
  EXPECT_EQ(a_->counters().tx_packets, 0u);
  EXPECT_FALSE(WaitReadable(b_->fd())) << "nothing may reach the peer";
}

TEST_F(VirtualLinkTest, ReadOnAnEmptyLinkIsUnavailable) {
  std::vector<uint8_t> buf(kMtu);
  absl::StatusOr<size_t> n = a_->Read(absl::MakeSpan(buf));
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnavailable) << n.status();
  EXPECT_EQ(a_->counters().rx_packets, 0u);
}

TEST_F(VirtualLinkTest, ReadIntoASmallBufferReportsTheFullLength) {
  ASSERT_TRUE(a_->WritePacket(Pattern(1000, 6)).ok());
  ASSERT_TRUE(WaitReadable(b_->fd()));
  std::vector<uint8_t> buf(100);
  absl::StatusOr<size_t> n = b_->Read(absl::MakeSpan(buf));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1000u) << "a truncated packet is reported at its full length so it can be dropped";
}

TEST_F(VirtualLinkTest, WriteWhenThePeerHasGoneFailsAndIsCounted) {
  b_.reset();  // closes and unlinks b
  absl::Status s = a_->WritePacket(Pattern(60, 7));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(a_->counters().tx_dropped, 1u);
}

TEST(InterfaceName, TakesWhatTheKernelTakesAsItIs) {
  for (const char* name : {"dpm0", "gw-in", "tap_1", "a", "fifteen-chars-x", "x.y"}) {
    EXPECT_TRUE(ValidateInterfaceName(name).ok()) << name;
  }
}

TEST(InterfaceName, RefusesWhatTheKernelRefusesOrWouldRename) {
  for (const char* name : {"", "sixteen-chars-xx", ".", "..", "a/b", "a b", "weird name!", "tun:0", "dpm%d",
                           "\xc3\xbc%$", "tab\there", "nl\n"}) {
    absl::Status s = ValidateInterfaceName(name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_NE(ValidateInterfaceName("a/b").message().find("'/'"), std::string::npos);
  EXPECT_NE(ValidateInterfaceName("sixteen-chars-xx").message().find("1..15"), std::string::npos);
}

TEST(VirtualLink, WriteBeforeThePeerExistsFailsAndIsCounted) {
  TempDir dir;
  auto a = VirtualLink::Open(dir.File("a"), dir.File("absent"), 1500);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::Status s = (*a)->WritePacket(Pattern(60, 8));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ((*a)->counters().tx_dropped, 1u);
  EXPECT_EQ((*a)->counters().tx_packets, 0u);

  // The peer may start later: the next write reaches it.
  auto late = VirtualLink::Open(dir.File("absent"), dir.File("a"), 1500);
  ASSERT_TRUE(late.ok()) << late.status();
  ASSERT_TRUE((*a)->WritePacket(Pattern(60, 9)).ok());
  ASSERT_TRUE(WaitReadable((*late)->fd()));
  EXPECT_EQ(ReadOne(**late, 1500), Pattern(60, 9));
}

TEST(VirtualLink, SecondLinkOnALivePathIsAlreadyExistsAndLeavesTheFirstWorking) {
  TempDir dir;
  auto first = VirtualLink::Open(dir.File("a"), dir.File("b"), 1500);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = VirtualLink::Open(dir.File("a"), dir.File("c"), 1500);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(dir.File("a")));

  auto peer = VirtualLink::Open(dir.File("b"), dir.File("a"), 1500);
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->WritePacket(Pattern(40, 1)).ok()) << "the first link's path was taken away";
  ASSERT_TRUE(WaitReadable((*first)->fd()));
  EXPECT_EQ(ReadOne(**first, 1500), Pattern(40, 1));
}

TEST(VirtualLink, StaleSocketFileIsReplaced) {
  TempDir dir;
  MakeStaleSocket(dir.File("a"));
  auto a = VirtualLink::Open(dir.File("a"), dir.File("b"), 1500);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = VirtualLink::Open(dir.File("b"), dir.File("a"), 1500);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*b)->WritePacket(Pattern(64, 2)).ok());
  ASSERT_TRUE(WaitReadable((*a)->fd()));
  EXPECT_EQ(ReadOne(**a, 1500), Pattern(64, 2));
}

TEST(VirtualLink, ClosingRemovesTheSocketFile) {
  TempDir dir;
  {
    auto a = VirtualLink::Open(dir.File("a"), dir.File("b"), 1500);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(std::filesystem::exists(dir.File("a")));
  }
  EXPECT_FALSE(std::filesystem::exists(dir.File("a")));
}

TEST(VirtualLink, RejectsBadPathsAndMtus) {
  TempDir dir;
  const std::string too_long = "/tmp/" + std::string(sizeof(sockaddr_un::sun_path), 'x');
  EXPECT_EQ(VirtualLink::Open(too_long, dir.File("b"), 1500).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VirtualLink::Open(dir.File("a"), too_long, 1500).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VirtualLink::Open("", dir.File("b"), 1500).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VirtualLink::Open(dir.File("a"), dir.File("b"), 67).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VirtualLink::Open(dir.File("a"), dir.File("b"), 65536).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VirtualLink::Open(dir.File("a"), dir.File("b"), 68).ok());
  EXPECT_TRUE(VirtualLink::Open(dir.File("c"), dir.File("b"), 65535).ok());
}

// Only a socket file left by a dead process may be replaced: a path that holds anything
// else — a regular file, or a live socket of another type — belongs to someone.
TEST(VirtualLink, DoesNotDeleteARegularFileAtItsPath) {
  TempDir dir;
  const std::string path = dir.File("notes.txt");
  { std::ofstream(path) << "precious"; }
  auto link = VirtualLink::Open(path, dir.File("b"), 1500);
  EXPECT_FALSE(link.ok());
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(VirtualLink, DoesNotStealThePathOfALiveStreamSocket) {
  TempDir dir;
  const std::string path = dir.File("api.sock");
  int listener = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);

  auto link = VirtualLink::Open(path, dir.File("b"), 1500);
  int client = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  const bool listener_reachable = ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(client);
  ::close(listener);
  EXPECT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kAlreadyExists) << link.status();
  EXPECT_TRUE(listener_reachable);
}

// ---- MemoryLink ----------------------------------------------------------------------

TEST(MemoryLink, InjectedPacketsAreReadInOrderWhileTheFdPollsReadable) {
  MemoryLink link(1500);
  std::vector<uint8_t> buf(1500);
  EXPECT_FALSE(Readable(link.fd()));
  EXPECT_EQ(link.Read(absl::MakeSpan(buf)).status().code(), absl::StatusCode::kUnavailable);

  link.InjectInbound(Pattern(10, 1));
  link.InjectInbound(Pattern(20, 2));
  EXPECT_TRUE(Readable(link.fd()));
  EXPECT_EQ(ReadOne(link, 1500), Pattern(10, 1));
  EXPECT_TRUE(Readable(link.fd())) << "a packet is still waiting";
  EXPECT_EQ(ReadOne(link, 1500), Pattern(20, 2));
  EXPECT_EQ(link.Read(absl::MakeSpan(buf)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(Readable(link.fd())) << "drained: the fd must stop polling readable";
  EXPECT_EQ(link.counters().rx_packets, 2u);
  EXPECT_EQ(link.counters().rx_bytes, 30u);
}

TEST(MemoryLink, ReadIntoASmallBufferReportsTheFullLength) {
  MemoryLink link(1500);
  link.InjectInbound(Pattern(300, 1));
  std::vector<uint8_t> buf(100);
  absl::StatusOr<size_t> n = link.Read(absl::MakeSpan(buf));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 300u);
  EXPECT_EQ(buf, Pattern(100, 1)) << "the first bytes are delivered";
}

TEST(MemoryLink, EmptyPacketIsReadAsZeroBytes) {
  MemoryLink link(1500);
  link.InjectInbound({});
  std::vector<uint8_t> buf(1500);
  absl::StatusOr<size_t> n = link.Read(absl::MakeSpan(buf));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
}

TEST(MemoryLink, WritesAreGatheredAndTakenInOrder) {
  MemoryLink link(100);
  const std::vector<uint8_t> head = Pattern(20, 1), body = Pattern(80, 2);
  iovec parts[] = {{const_cast<uint8_t*>(head.data()), head.size()},
                   {const_cast<uint8_t*>(body.data()), body.size()}};
  ASSERT_TRUE(link.Write(parts).ok());
  ASSERT_TRUE(link.WritePacket(Pattern(5, 3)).ok());
  EXPECT_EQ(link.outbound_size(), 2u);

  std::vector<uint8_t> out;
  ASSERT_TRUE(link.TakeOutbound(&out));
  std::vector<uint8_t> expected = head;
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(out, expected);
  ASSERT_TRUE(link.TakeOutbound(&out));
  EXPECT_EQ(out, Pattern(5, 3));
  EXPECT_FALSE(link.TakeOutbound(&out));
  EXPECT_EQ(link.counters().tx_packets, 2u);
  EXPECT_EQ(link.counters().tx_bytes, 105u);
}

// An Ethernet link's frames carry 14 bytes of header on top of the IP MTU.
TEST(MemoryLink, EthernetFramesMayBeTheMtuPlusTheHeader) {
  MemoryLink link(100, /*ethernet=*/true);
  EXPECT_TRUE(link.ethernet());
  EXPECT_EQ(link.link_header_length(), 14u);
  EXPECT_EQ(link.max_read_size(), 114u);
  EXPECT_TRUE(link.WritePacket(Pattern(114, 1)).ok());
  EXPECT_EQ(link.WritePacket(Pattern(115, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(link.counters().tx_dropped, 1u);
  MemoryLink l3(100);
  EXPECT_FALSE(l3.ethernet());
  EXPECT_EQ(l3.max_read_size(), 100u);
}

TEST(MemoryLink, WriteOverTheMtuIsRejectedAndCounted) {
  MemoryLink link(100);
  EXPECT_TRUE(link.WritePacket(Pattern(100, 1)).ok());
  absl::Status s = link.WritePacket(Pattern(101, 1));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(link.counters().tx_dropped, 1u);
  EXPECT_EQ(link.outbound_size(), 1u);
}

// ---- pcap ----------------------------------------------------------------------------

uint32_t U32At(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
uint16_t U16At(const std::vector<uint8_t>& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, b.data() + off, 2);
  return v;
}

struct PcapRecord {
  uint32_t ts_sec, ts_usec, incl_len, orig_len;
  std::vector<uint8_t> data;
};

// Parses a classic pcap file written in host byte order; checks the global header.
std::vector<PcapRecord> ParsePcap(const std::vector<uint8_t>& file, uint32_t snaplen) {
  std::vector<PcapRecord> records;
  EXPECT_GE(file.size(), 24u);
  if (file.size() < 24) return records;
  EXPECT_EQ(U32At(file, 0), 0xa1b2c3d4u) << "magic (microsecond timestamps)";
  EXPECT_EQ(U16At(file, 4), 2) << "major version";
  EXPECT_EQ(U16At(file, 6), 4) << "minor version";
  EXPECT_EQ(U32At(file, 8), 0u) << "thiszone";
  EXPECT_EQ(U32At(file, 16), snaplen);
  EXPECT_EQ(U32At(file, 20), 101u) << "LINKTYPE_RAW";
  size_t off = 24;
  while (off + 16 <= file.size()) {
    PcapRecord r{U32At(file, off), U32At(file, off + 4), U32At(file, off + 8), U32At(file, off + 12), {}};
    off += 16;
    EXPECT_LE(off + r.incl_len, file.size()) << "record runs past the end of the file";
    if (off + r.incl_len > file.size()) break;
    r.data.assign(file.begin() + static_cast<ptrdiff_t>(off), file.begin() + static_cast<ptrdiff_t>(off + r.incl_len));
    off += r.incl_len;
    records.push_back(std::move(r));
  }
  EXPECT_EQ(off, file.size()) << "trailing bytes after the last record";
  return records;
}

TEST(Pcap, LinkRecordsBothDirectionsWithTheirLengths) {
  TempDir dir;
  const std::string path = dir.File("capture.pcap");
  const std::vector<uint8_t> echo = Fixture("icmp_echo_request.bin");
  const std::vector<uint8_t> syn = Fixture("tcp_syn_8080_ws.bin");
  const std::vector<uint8_t> syn2 = Fixture("tcp_syn_8080_ws_port2.bin");
  {
    auto writer = PcapWriter::Open(path, 65535);
    ASSERT_TRUE(writer.ok()) << writer.status();
    auto memory = std::make_unique<MemoryLink>(1500);
    MemoryLink* inner = memory.get();
    PcapLink link(std::move(memory), std::move(*writer));
    EXPECT_EQ(link.mtu(), 1500u);
    EXPECT_EQ(link.name(), "memory");
    EXPECT_EQ(link.fd(), inner->fd());

    // Outbound, gathered from two parts (header, payload).
    iovec parts[] = {{const_cast<uint8_t*>(echo.data()), 20},
                     {const_cast<uint8_t*>(echo.data() + 20), echo.size() - 20}};
    ASSERT_TRUE(link.Write(parts).ok());
    // Inbound.
    inner->InjectInbound(syn);
    EXPECT_EQ(ReadOne(link, 1500), syn);
    ASSERT_TRUE(link.WritePacket(syn2).ok());
    EXPECT_EQ(link.counters().tx_packets, 2u);
    EXPECT_EQ(link.counters().rx_packets, 1u);
    // An empty read records nothing.
    std::vector<uint8_t> buf(1500);
    EXPECT_FALSE(link.Read(absl::MakeSpan(buf)).ok());
  }
  std::vector<PcapRecord> records = ParsePcap(ReadFile(path), 65535);
  ASSERT_EQ(records.size(), 3u);
  const std::vector<uint8_t>* expected[] = {&echo, &syn, &syn2};
  for (size_t i = 0; i < records.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(records[i].incl_len, expected[i]->size());
    EXPECT_EQ(records[i].orig_len, expected[i]->size());
    EXPECT_EQ(records[i].data, *expected[i]);
    EXPECT_LT(records[i].ts_usec, 1'000'000u);
    EXPECT_GT(records[i].ts_sec, 1'600'000'000u) << "seconds since the Unix epoch";
  }
}

TEST(Pcap, WriterTruncatesToTheSnaplenAndKeepsTheOriginalLength) {
  TempDir dir;
  const std::string path = dir.File("snap.pcap");
  const std::vector<uint8_t> packet = Pattern(100, 1);
  {
    auto writer = PcapWriter::Open(path, 40);
    ASSERT_TRUE(writer.ok()) << writer.status();
    iovec parts[] = {{const_cast<uint8_t*>(packet.data()), 30},
                     {const_cast<uint8_t*>(packet.data() + 30), 70}};
    (*writer)->Write(parts, 1'700'000'000'123'456ull);
  }
  std::vector<PcapRecord> records = ParsePcap(ReadFile(path), 40);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].ts_sec, 1'700'000'000u);
  EXPECT_EQ(records[0].ts_usec, 123'456u);
  EXPECT_EQ(records[0].incl_len, 40u);
  EXPECT_EQ(records[0].orig_len, 100u);
  EXPECT_EQ(records[0].data, std::vector<uint8_t>(packet.begin(), packet.begin() + 40));
}

TEST(Pcap, WriterOpenFailsWithAClearError) {
  auto writer = PcapWriter::Open("/nonexistent-dir-dpm/x.pcap", 65535);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(writer.status().message(), HasSubstr("/nonexistent-dir-dpm/x.pcap"));
}

// A capture shows what crossed the link: a packet the link refused never left.
TEST(Pcap, PacketTheLinkRefusedIsNotRecorded) {
  TempDir dir;
  const std::string path = dir.File("refused.pcap");
  {
    auto writer = PcapWriter::Open(path, 65535);
    ASSERT_TRUE(writer.ok()) << writer.status();
    PcapLink link(std::make_unique<MemoryLink>(100), std::move(*writer));
    EXPECT_EQ(link.WritePacket(Pattern(101, 1)).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(link.counters().tx_dropped, 1u);
  }
  std::vector<PcapRecord> records = ParsePcap(ReadFile(path), 65535);
  EXPECT_TRUE(records.empty());
}

// tshark (users read state with ordinary tools) reads the capture and decodes each packet.
TEST(Pcap, TsharkReadsTheCapture) {
  if (::access("/usr/bin/tshark", X_OK) != 0) GTEST_SKIP() << "/usr/bin/tshark not installed";
  TempDir dir;
  const std::string path = dir.File("tshark.pcap");
  {
    auto writer = PcapWriter::Open(path, 65535);
    ASSERT_TRUE(writer.ok()) << writer.status();
    auto memory = std::make_unique<MemoryLink>(1500);
    MemoryLink* inner = memory.get();
    PcapLink link(std::move(memory), std::move(*writer));
    ASSERT_TRUE(link.WritePacket(Fixture("icmp_echo_request.bin")).ok());
    inner->InjectInbound(Fixture("tcp_syn_8080_ws.bin"));
    ReadOne(link, 1500);
  }
  const std::string command =
      absl::StrCat("/usr/bin/tshark -n -r ", path,
                   " -T fields -E separator=, -e ip.src -e ip.dst -e frame.len -e ip.proto 2>/dev/null");
  std::FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char chunk[512];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), p)) out.append(chunk, n);
  const int rc = ::pclose(p);
  ASSERT_EQ(rc, 0) << command << "\n" << out;
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_EQ(lines[0], "10.77.1.1,10.77.1.2,55,1");
  EXPECT_EQ(lines[1], "10.77.1.1,10.77.1.2,52,6");
}

// ---- TunLink -------------------------------------------------------------------------

TEST(TunLink, AttachToAMissingDeviceIsNotFoundAndNamesIt) {
  TunOptions o;
  o.name = absl::StrCat("dpmnx", ::getpid() % 100000);
  o.create = false;
  auto link = TunLink::Open(o);
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kNotFound) << link.status();
  EXPECT_THAT(link.status().message(), HasSubstr(o.name));
}

TEST(TunLink, NameLongerThanFifteenCharactersIsInvalid) {
  TunOptions o;
  o.name = "dpm-name-too-long";  // 17 characters; IFNAMSIZ is 16 with the NUL
  auto link = TunLink::Open(o);
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kInvalidArgument) << link.status();
  EXPECT_THAT(link.status().message(), HasSubstr(o.name));
  o.name = "sixteen-chars-xx";
  EXPECT_EQ(TunLink::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.name = "";
  EXPECT_EQ(TunLink::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// Offload parses IP packets (wire/offload.h), so it is refused on TAP before any syscall.
TEST(TunLink, TapWithOffloadIsInvalidArgument) {
  TunOptions o;
  o.mode = TunMode::kTap;
  o.name = "dpmtest0";
  o.offload = true;
  auto link = TunLink::Open(o);
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kInvalidArgument) << link.status();
  EXPECT_THAT(link.status().message(), HasSubstr("TAP"));
}

TEST(TunLink, AttachToAMissingTapDeviceNamesTheKind) {
  TunOptions o;
  o.mode = TunMode::kTap;
  o.name = absl::StrCat("dpmnx", ::getpid() % 100000);
  o.create = false;
  auto link = TunLink::Open(o);
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kNotFound) << link.status();
  EXPECT_THAT(link.status().message(), HasSubstr("tap device " + o.name));
}

TEST(TunLink, MtuOutsideTheIpv4RangeIsInvalid) {
  TunOptions o;
  o.name = "dpmtest0";
  o.create = false;
  for (size_t mtu : {size_t{0}, size_t{67}, size_t{65536}}) {
    o.mtu = mtu;
    auto link = TunLink::Open(o);
    ASSERT_FALSE(link.ok());
    EXPECT_EQ(link.status().code(), absl::StatusCode::kInvalidArgument) << mtu << ": " << link.status();
  }
}

}  // namespace
}  // namespace dpm::tun
