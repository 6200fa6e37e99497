// The C library's own socket, descriptor and resolver calls, for the preload hook to hand calls
// on to.
//
// The hook defines socket(), close(), read() ... itself, so calling those names reaches the
// hook again; these functions reach the next definition in the lookup order instead (the C
// library's), found once with dlsym(RTLD_NEXT) and kept. Same arguments, results and errno as
// the calls they stand for.
#ifndef DPM_PRELOAD_LIBC_CALLS_H_
#define DPM_PRELOAD_LIBC_CALLS_H_

#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

namespace dpm::preload::libc {

int socket(int domain, int type, int protocol);
int bind(int fd, const sockaddr* addr, socklen_t len);
int listen(int fd, int backlog);
int accept(int fd, sockaddr* addr, socklen_t* len);
int accept4(int fd, sockaddr* addr, socklen_t* len, int flags);
int connect(int fd, const sockaddr* addr, socklen_t len);
int getsockname(int fd, sockaddr* addr, socklen_t* len);
int getpeername(int fd, sockaddr* addr, socklen_t* len);
int setsockopt(int fd, int level, int name, const void* value, socklen_t len);
int getsockopt(int fd, int level, int name, void* value, socklen_t* len);
int shutdown(int fd, int how);
int close(int fd);
int close_range(unsigned first, unsigned last, int flags);
int dup(int fd);
int dup2(int fd, int to);
int dup3(int fd, int to, int flags);
/// fcntl(2) with its third argument as the C library receives it (an int or a pointer).
int fcntl(int fd, int cmd, void* arg);
int fcntl64(int fd, int cmd, void* arg);
ssize_t send(int fd, const void* buf, size_t len, int flags);
ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to, socklen_t tolen);
ssize_t sendmsg(int fd, const msghdr* message, int flags);
int sendmmsg(int fd, mmsghdr* messages, unsigned count, int flags);
ssize_t recv(int fd, void* buf, size_t len, int flags);
ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from, socklen_t* fromlen);
ssize_t recvmsg(int fd, msghdr* message, int flags);
int recvmmsg(int fd, mmsghdr* messages, unsigned count, int flags, struct timespec* timeout);
ssize_t read(int fd, void* buf, size_t len);
ssize_t write(int fd, const void* buf, size_t len);
ssize_t readv(int fd, const iovec* iov, int count);
ssize_t writev(int fd, const iovec* iov, int count);
int epoll_ctl(int epfd, int op, int fd, epoll_event* event);
int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res);
hostent* gethostbyname(const char* name);
hostent* gethostbyname2(const char* name, int af);
int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop);
int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result,
                     int* h_errnop);

}  // namespace dpm::preload::libc

#endif  // DPM_PRELOAD_LIBC_CALLS_H_
