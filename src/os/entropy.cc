#include "os/entropy.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace dpm::os {

void FillRandom(void* out, size_t length) {
  auto* p = static_cast<uint8_t*>(out);
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::getrandom(p + got, length - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      std::perror("dpm: getrandom");
      std::abort();
    }
  }
}

uint32_t RandomU32() {
  uint32_t v = 0;
  FillRandom(&v, sizeof(v));
  return v;
}

uint64_t RandomU64() {
  uint64_t v = 0;
  FillRandom(&v, sizeof(v));
  return v;
}

}  // namespace dpm::os
