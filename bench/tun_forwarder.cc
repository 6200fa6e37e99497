// tun_forwarder — the "bare TUN-to-TUN forwarder" competitor of bench/throughput.sh.
//
// Attaches to two existing TUN devices (made beforehand with `ip tuntap add mode tun`) and
// copies every packet A→B and B→A: one thread, one epoll loop, each readable descriptor
// drained until EAGAIN, one static buffer, no per-packet allocation and no parsing. It is the
// least any user-space TUN program must do per packet (one read(), one write()), which is
// why dpm is compared with it: dpmd reads the same packets from its TUN device, but runs
// lwIP's TCP on them and hands the bytes to a program instead of writing them back.
//
// With --offload both devices run with IFF_VNET_HDR and TUN_F_CSUM | TUN_F_TSO4, as
// `dpmd gateway` does by default: the kernel hands over TCP super-packets of up to 64 KiB
// with partial checksums, and the forwarder copies each, virtio-net header and all, to the
// other device unchanged — the same least work per packet, with the same offload as dpm.
//
// Usage: tun_forwarder [--offload] TUN_A TUN_B
// Prints "tun_forwarder: ready" once both devices are attached (the devices may then be
// moved to other namespaces: the descriptors stay attached), and its counters on SIGINT or
// SIGTERM.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>

#include "bench_util.h"

namespace {

constexpr const char* kProgram = "tun_forwarder";
volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

bool g_offload = false;

int Attach(const char* name) {
  if (std::strlen(name) >= IFNAMSIZ) bench::Die(kProgram, "device name '%s' too long", name);
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) bench::Die(kProgram, "open /dev/net/tun: %s", std::strerror(errno));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (g_offload ? IFF_VNET_HDR : 0);
  std::memcpy(ifr.ifr_name, name, std::strlen(name));
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) bench::Die(kProgram, "attach %s: %s", name, std::strerror(errno));
  // The header's format does not matter here (it is copied as it is), only that both agree.
  if (g_offload && ::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) {
    bench::Die(kProgram, "offload on %s: %s", name, std::strerror(errno));
  }
  return fd;
}

struct Direction {
  int from, to;
  uint64_t packets = 0, bytes = 0, write_drops = 0;
};

uint8_t g_buffer[65536 + 16];  // one packet at a time (and its virtio-net header)

// Copies packets until the source is empty.
void Drain(Direction& d) {
  for (;;) {
    ssize_t n = ::read(d.from, g_buffer, sizeof(g_buffer));
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      bench::Die(kProgram, "read: %s", std::strerror(errno));
    }
    if (::write(d.to, g_buffer, static_cast<size_t>(n)) != n) {
      d.write_drops++;  // as a router would: the packet is lost, TCP recovers
      continue;
    }
    d.packets++;
    d.bytes += static_cast<uint64_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--offload") == 0) {
    g_offload = true;
    argv++;
    argc--;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s [--offload] TUN_A TUN_B\n  copies packets between two existing TUN devices\n",
                 kProgram);
    return 2;
  }
  int a = Attach(argv[1]);
  int b = Attach(argv[2]);
  Direction dirs[2] = {{a, b}, {b, a}};

  struct sigaction sa{};
  sa.sa_handler = OnSignal;  // no SA_RESTART: epoll_wait returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < 2; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, dirs[i].from, &ev) != 0) bench::Die(kProgram, "epoll_ctl: %s", std::strerror(errno));
  }
  std::printf("%s: ready %s <-> %s\n", kProgram, argv[1], argv[2]);
  std::fflush(stdout);

  while (!g_stop) {
    epoll_event events[2];
    int n = ::epoll_wait(ep, events, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      bench::Die(kProgram, "epoll_wait: %s", std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) Drain(dirs[events[i].data.u32]);
  }
  for (int i = 0; i < 2; ++i) {
    std::printf("%s: %s->%s packets=%llu bytes=%llu write_drops=%llu\n", kProgram, argv[1 + i], argv[2 - i],
                static_cast<unsigned long long>(dirs[i].packets), static_cast<unsigned long long>(dirs[i].bytes),
                static_cast<unsigned long long>(dirs[i].write_drops));
  }
  return 0;
}
