#include "stack/kept_options.h"

#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace dpm::stack {
namespace {

uint64_t Key(int level, int name) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(level)) << 32) | static_cast<uint32_t>(name);
}

}  // namespace

size_t KeptOptionSize(int level, int name) {
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_REUSEPORT: case SO_PRIORITY: case SO_BROADCAST: case SO_OOBINLINE: case SO_BUSY_POLL:
      case SO_INCOMING_CPU:
        return sizeof(int);
      case SO_LINGER: return sizeof(linger);
      default: return 0;
    }
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
      case TCP_QUICKACK: case TCP_USER_TIMEOUT: case TCP_DEFER_ACCEPT: case TCP_FASTOPEN: case TCP_CORK:
      case TCP_NOTSENT_LOWAT: case TCP_WINDOW_CLAMP: case TCP_SYNCNT: case TCP_LINGER2: case TCP_FASTOPEN_CONNECT:
        return sizeof(int);
      default: return 0;
    }
  }
  if (level == IPPROTO_IP) {
    switch (name) {
      case IP_MTU_DISCOVER: case IP_RECVERR: case IP_BIND_ADDRESS_NO_PORT: case IP_FREEBIND:
        return sizeof(int);
      default: return 0;
    }
  }
  return 0;
}

int KeptOptions::Set(int level, int name, const std::vector<uint8_t>& value) {
  const size_t size = KeptOptionSize(level, name);
  if (size == 0 || value.size() < size) return EINVAL;
  std::vector<uint8_t> kept(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(size));
  for (auto& [key, v] : values_) {
    if (key == Key(level, name)) {
      v = std::move(kept);
      return 0;
    }
  }
  values_.emplace_back(Key(level, name), std::move(kept));
  return 0;
}

std::vector<uint8_t> KeptOptions::Get(int level, int name) const {
  for (const auto& [key, v] : values_) {
    if (key == Key(level, name)) return v;
  }
  return std::vector<uint8_t>(KeptOptionSize(level, name), 0);
}

}  // namespace dpm::stack
