// libdpm-preload.so, the resolver calls of tunnel mode (docs/preload.md "Tunnel mode"; the
// tunneling patent, Fig. 5, the hooked gethostbyname(), and Fig. 6 step 615): getaddrinfo(),
// gethostbyname(), gethostbyname_r(), gethostbyname2(), gethostbyname2_r(). A name under
// DPM_TUNNEL_SUFFIX (any case, one trailing dot allowed) is asked of the redirector in one
// RESOLVE request and answered with its pseudo IPv4 address; every other name, every call
// outside tunnel mode and every call made inside libdpm go to the C library unchanged.
//
// getaddrinfo() answers a pseudo name by asking the C library for the pseudo address in text
// form (AI_NUMERICHOST), so hints, services, the entries per socket type and the errors are
// exactly the C library's, and the result is its own, which its freeaddrinfo() frees; only the
// canonical name (AI_CANONNAME) is put back to the pseudo name. A pseudo name has IPv4 only:
// AF_INET6 gets EAI_NONAME, as glibc says of an IPv4-only name, also with AI_V4MAPPED (a
// mapped address would make the program use an AF_INET6 socket, which tunnel mode leaves to
// the kernel).
#include <arpa/inet.h>
#include <netdb.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "lib/internal.h"
#include "preload/hook_state.h"
#include "preload/in_dpm.h"
#include "preload/libc_calls.h"

namespace dpm::preload {
namespace {

// True when `name` is one the hook resolves itself: tunnel mode, under the suffix.
bool Pseudo(const char* name) {
  if (name == nullptr || InDpm()) return false;
  const HookConfig* c = Config();
  return c != nullptr && c->tunnel.enabled && c->tunnel.UnderSuffix(name);
}

enum class Answer { kFound, kNoName, kTryAgain };

// RESOLVE of pseudo name `name` at the redirector: its canonical form and address (network
// byte order). kNoName: the redirector has no such name (ENOENT); kTryAgain: anything else
// (no redirector, no address left, a daemon without RESOLVE).
Answer Ask(const char* name, std::string* canonical, uint32_t* address_be) {
  *canonical = CanonicalHostName(name);
  InDpmScope in_dpm;
  const int e = lib::Resolve(canonical->c_str(), address_be);
  if (e == 0) return Answer::kFound;
  return e == ENOENT ? Answer::kNoName : Answer::kTryAgain;
}

// A hostent for `canonical` with the one IPv4 address, laid out in buf (empty h_aliases,
// h_addr_list, the address, the name). ERANGE when `buflen` bytes are too few.
int FillHost(const std::string& canonical, uint32_t address_be, hostent* ret, char* buf, size_t buflen) {
  const size_t pad = (alignof(char*) - reinterpret_cast<uintptr_t>(buf) % alignof(char*)) % alignof(char*);
  const size_t need = pad + 3 * sizeof(char*) + sizeof(address_be) + canonical.size() + 1;
  if (buf == nullptr || buflen < need) return ERANGE;
  char** pointers = reinterpret_cast<char**>(buf + pad);
  char* address = reinterpret_cast<char*>(pointers + 3);
  char* name = address + sizeof(address_be);
  std::memcpy(address, &address_be, sizeof(address_be));
  std::memcpy(name, canonical.c_str(), canonical.size() + 1);
  pointers[0] = nullptr;  // no aliases
  pointers[1] = address;
  pointers[2] = nullptr;
  ret->h_name = name;
  ret->h_aliases = pointers;
  ret->h_addrtype = AF_INET;
  ret->h_length = sizeof(address_be);
  ret->h_addr_list = pointers + 1;
  return 0;
}

// gethostbyname2_r() for a pseudo name, with glibc's results: 0 and *result set; 0 and
// HOST_NOT_FOUND (no such name, or AF_INET6); EAGAIN and TRY_AGAIN; ERANGE and NETDB_INTERNAL
// (errno ERANGE) for a buffer too small. False when the C library answers instead (not a
// pseudo name, or a family other than AF_INET/AF_INET6, which it refuses).
bool PseudoHost(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop,
                int* rc) {
  if (!Pseudo(name) || (af != AF_INET && af != AF_INET6)) return false;
  *result = nullptr;
  *rc = 0;
  *h_errnop = HOST_NOT_FOUND;
  if (af == AF_INET6) return true;
  std::string canonical;
  uint32_t address_be = 0;
  if (const Answer a = Ask(name, &canonical, &address_be); a != Answer::kFound) {
    if (a == Answer::kTryAgain) {
      *h_errnop = TRY_AGAIN;
      *rc = EAGAIN;
    }
    return true;
  }
  if (FillHost(canonical, address_be, ret, buf, buflen) != 0) {
    *h_errnop = NETDB_INTERNAL;
    errno = ERANGE;
    *rc = ERANGE;
    return true;
  }
  *h_errnop = NETDB_SUCCESS;
  *result = ret;
  return true;
}

// gethostbyname2() for a pseudo name: one static result, as the C library's (the next call
// replaces it). False when the C library answers instead.
bool PseudoHostStatic(const char* name, int af, hostent** result) {
  static std::mutex mu;
  static hostent host;
  alignas(char*) static char buf[3 * sizeof(char*) + 4 + 256];  // names are at most 253 bytes
  std::lock_guard<std::mutex> lock(mu);
  int h_error = 0, rc = 0;
  if (!PseudoHost(name, af, &host, buf, sizeof(buf), result, &h_error, &rc)) return false;
  if (*result == nullptr) h_errno = h_error;
  return true;
}

}  // namespace
}  // namespace dpm::preload

using namespace dpm::preload;

extern "C" {

int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (!Pseudo(node) || (hints != nullptr && (hints->ai_flags & AI_NUMERICHOST) != 0)) {
    return libc::getaddrinfo(node, service, hints, res);  // a pseudo name is not numeric either
  }
  addrinfo h{};
  if (hints != nullptr) h = *hints;
  if (h.ai_family == AF_INET6) return EAI_NONAME;
  if (h.ai_family != AF_INET && h.ai_family != AF_UNSPEC) return libc::getaddrinfo(node, service, hints, res);
  std::string canonical;
  uint32_t address_be = 0;
  if (const Answer a = Ask(node, &canonical, &address_be); a != Answer::kFound) {
    return a == Answer::kNoName ? EAI_NONAME : EAI_AGAIN;
  }
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &address_be, text, sizeof(text));
  h.ai_family = AF_INET;
  // The redirector is reachable whatever addresses this host has: no AI_ADDRCONFIG check.
  h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~AI_ADDRCONFIG;
  const int r = libc::getaddrinfo(text, service, &h, res);
  if (r != 0 || (h.ai_flags & AI_CANONNAME) == 0 || *res == nullptr) return r;
  // glibc names a numeric host by its text; the program asked for the pseudo name.
  char* name = ::strdup(canonical.c_str());
  if (name == nullptr) {
    ::freeaddrinfo(*res);
    *res = nullptr;
    return EAI_MEMORY;
  }
  std::free((*res)->ai_canonname);
  (*res)->ai_canonname = name;
  return 0;
}

hostent* gethostbyname2(const char* name, int af) {
  hostent* result = nullptr;
  if (PseudoHostStatic(name, af, &result)) return result;
  return libc::gethostbyname2(name, af);
}

hostent* gethostbyname(const char* name) {
  hostent* result = nullptr;
  if (PseudoHostStatic(name, AF_INET, &result)) return result;
  return libc::gethostbyname(name);
}

int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result,
                     int* h_errnop) {
  int rc = 0;
  if (PseudoHost(name, af, ret, buf, buflen, result, h_errnop, &rc)) return rc;
  return libc::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}

int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop) {
  int rc = 0;
  if (PseudoHost(name, AF_INET, ret, buf, buflen, result, h_errnop, &rc)) return rc;
  return libc::gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
}

}  // extern "C"
