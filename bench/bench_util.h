// Small helpers shared by the benchmark programs: errors, clocks, sizes, descriptor limits,
// and the one-line "key=value" result format the scripts parse.
#ifndef DPM_BENCH_BENCH_UTIL_H_
#define DPM_BENCH_BENCH_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace bench {

// The q-quantile (0..1) of `v` by nth_element (reorders v); 0 when v is empty.
inline double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// "a,b,c" → {"a", "b", "c"} (empty fields kept).
inline std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

[[noreturn]] inline void Die(const char* program, const char* format, ...) {
  std::fprintf(stderr, "%s: ", program);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
  std::exit(1);
}

inline double NowSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// "4096", "256K", "2G" (binary multiples) → bytes; false on garbage.
inline bool ParseSize(const char* text, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text) return false;
  uint64_t mult = 1;
  switch (*end) {
    case '\0': break;
    case 'k': case 'K': mult = 1ull << 10; ++end; break;
    case 'm': case 'M': mult = 1ull << 20; ++end; break;
    case 'g': case 'G': mult = 1ull << 30; ++end; break;
    default: return false;
  }
  if (*end != '\0') return false;
  *out = v * mult;
  return true;
}

inline bool ParsePort(const char* text, uint16_t* out) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

inline sockaddr_in MakeAddress(const char* program, const char* host, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) Die(program, "bad IPv4 address '%s'", host);
  return a;
}

// Raises the soft descriptor limit to at least `want` (up to the hard limit, or past it
// when root). Returns the soft limit now in force.
inline rlim_t RaiseDescriptorLimit(rlim_t want) {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur >= want) return r.rlim_cur;
  rlimit w = r;
  w.rlim_cur = want;
  if (w.rlim_max < want) w.rlim_max = want;
  if (setrlimit(RLIMIT_NOFILE, &w) != 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

// Reads exactly `len` bytes; false on error or early EOF (errno 0 then).
inline bool ReadFull(int fd, char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Writes exactly `len` bytes; false on error.
inline bool WriteFull(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// The result line the scripts parse: "<program>: bytes=N seconds=S gbps=G".
inline void PrintRate(const char* program, uint64_t bytes, double seconds) {
  double gbps = seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0;
  std::printf("%s: bytes=%llu seconds=%.3f gbps=%.3f\n", program, static_cast<unsigned long long>(bytes), seconds,
              gbps);
  std::fflush(stdout);
}

}  // namespace bench

#endif  // DPM_BENCH_BENCH_UTIL_H_
