#include "preload/handover.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "lib/internal.h"
#include "preload/descriptors.h"
#include "preload/in_dpm.h"
#include "preload/libc_calls.h"

namespace dpm::preload {
namespace {

struct Option {
  int level, name;
  std::vector<uint8_t> value;
};

struct Registration {
  int epfd;
  epoll_event event;
};

// What a fresh socket was given: options, and epoll registrations.
struct Fresh {
  std::vector<Option> options;
  std::vector<Registration> registrations;
};

std::mutex g_mu;
absl::flat_hash_map<int, Fresh>& Kept() {
  static auto* kept = new absl::flat_hash_map<int, Fresh>();
  return *kept;
}
// A fork() while another thread holds the lock must not leave the child's copy held.
[[maybe_unused]] const int g_atfork = [] {
  return pthread_atfork([] { g_mu.lock(); }, [] { g_mu.unlock(); }, [] { g_mu.unlock(); });
}();

}  // namespace

void RecordFreshOption(int fd, int level, int name, const void* value, socklen_t len) {
  if (value == nullptr || len > 64) return;
  const auto* p = static_cast<const uint8_t*>(value);
  std::lock_guard<std::mutex> lock(g_mu);
  Kept()[fd].options.push_back(Option{level, name, std::vector<uint8_t>(p, p + len)});
}

void RecordFreshEpoll(int epfd, int op, int fd, const epoll_event* event) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<Registration>& list = Kept()[fd].registrations;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->epfd != epfd) continue;
    if (op == EPOLL_CTL_MOD && event != nullptr) it->event = *event;
    if (op == EPOLL_CTL_DEL) list.erase(it);
    return;
  }
  if (op == EPOLL_CTL_ADD && event != nullptr) list.push_back(Registration{epfd, *event});
}

void DropFreshOptions(int fd) {
  std::lock_guard<std::mutex> lock(g_mu);
  Kept().erase(fd);
}

int HandToKernel(int fd, uint8_t kind) {
  const int status = libc::fcntl(fd, F_GETFL, nullptr);
  const int descriptor = libc::fcntl(fd, F_GETFD, nullptr);
  if (status < 0 || descriptor < 0) return -1;
  const int type = (kind & kTcp) != 0 ? SOCK_STREAM : SOCK_DGRAM;
  const int kernel = libc::socket(AF_INET, type | ((status & O_NONBLOCK) != 0 ? SOCK_NONBLOCK : 0), 0);
  if (kernel < 0) return -1;
  Fresh fresh;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = Kept().find(fd);
    if (it != Kept().end()) {
      fresh = std::move(it->second);
      Kept().erase(it);
    }
  }
  for (const Option& o : fresh.options) {
    // What the kernel refuses it would have refused at the time; the program was told then.
    libc::setsockopt(kernel, o.level, o.name, o.value.data(), static_cast<socklen_t>(o.value.size()));
  }
  // dup3 closes the dpm socket's descriptor (the daemon sees it go) and puts the kernel's there.
  if (libc::dup3(kernel, fd, (descriptor & FD_CLOEXEC) != 0 ? O_CLOEXEC : 0) < 0) {
    const int e = errno;
    libc::close(kernel);
    errno = e;
    return -1;
  }
  SetKind(fd, kNotOurs);
  {
    InDpmScope in_dpm;
    lib::ForgetEntry(fd);
  }
  for (Registration& r : fresh.registrations) libc::epoll_ctl(r.epfd, EPOLL_CTL_ADD, fd, &r.event);
  libc::close(kernel);
  return 0;
}

}  // namespace dpm::preload
