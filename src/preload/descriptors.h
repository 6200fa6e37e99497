// Which descriptors of the program are dpm sockets, answered without a system call or a lock:
// read(), write() and close() of every descriptor ask, so the answer is one relaxed load from
// a table indexed by descriptor number (1 byte each; the pages of numbers never used are never
// touched). libdpm's own table (lib/internal.h) stays the authority for the socket behind a
// number; this one says only "ours, of this kind" (or, in tunnel mode, "a kernel socket that
// may still move to the redirector"), and is kept in step by socket(), accept(),
// dup*(), fcntl(F_DUPFD*), close() and close_range().
#ifndef DPM_PRELOAD_DESCRIPTORS_H_
#define DPM_PRELOAD_DESCRIPTORS_H_

#include <atomic>
#include <cstdint>

namespace dpm::preload {

/// Bits of a descriptor's entry.
enum DescriptorKind : uint8_t {
  kNotOurs = 0,
  kTcp = 1,
  kUdp = 2,
  /// Neither bound nor connected yet: its first bind/connect/sendto may still hand it to the
  /// kernel (an address in DPM_KERNEL_NETS).
  kFresh = 4,
  /// TCP, neither connected nor connecting (new, or listening): its data calls fail as the
  /// kernel's do on such a socket (reads ENOTCONN, writes EPIPE) instead of reaching the pair.
  kIdleTcp = 8,
  /// Tunnel mode: a kernel AF_INET TCP socket, not connected yet (and never duplicated): a
  /// connect to DPM_TUNNEL_NET puts a dpm socket of the redirector in its place (handover.h
  /// TunnelConnect). Alone, never with the bits above; every other call on it is the kernel's.
  kTunnel = 16,
};

/// True for an entry naming a dpm socket (not kNotOurs, not a tunnel mode kernel socket).
inline bool IsDpmKind(uint8_t kind) { return (kind & (kTcp | kUdp)) != 0; }

/// Descriptor numbers the table covers; a dpm socket is never given a number above.
inline constexpr int kMaxTracked = 1 << 20;

namespace internal {
extern std::atomic<uint8_t> g_kinds[kMaxTracked];
}

/// The entry of `fd` (kNotOurs for negative or untracked numbers).
inline uint8_t KindOf(int fd) {
  if (fd < 0 || fd >= kMaxTracked) return kNotOurs;
  return internal::g_kinds[fd].load(std::memory_order_relaxed);
}
inline void SetKind(int fd, uint8_t kind) {
  if (fd >= 0 && fd < kMaxTracked) internal::g_kinds[fd].store(kind, std::memory_order_relaxed);
}

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_DESCRIPTORS_H_
