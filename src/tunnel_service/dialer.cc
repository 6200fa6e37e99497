#include "tunnel_service/dialer.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "dpm/socket.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;

struct Attempt {
  asio::posix::stream_descriptor sd;
  asio::steady_timer timer;
  Dialer::Done done;
  bool dpm = false, finished = false;
  Attempt(asio::io_context& io, int fd) : sd(io, fd), timer(io) {}
  void Finish(int error) {
    if (finished) return;
    finished = true;
    timer.cancel();
    int fd = sd.release();
    if (error != 0) {
      if (dpm) {
        dpm_close(fd);
      } else {
        ::close(fd);
      }
      fd = -1;
    }
    auto d = std::move(done);
    d(error, fd);
  }
};

}  // namespace

Dialer::Dialer(asio::io_context& io, std::string api_socket) : io_(io), api_socket_(std::move(api_socket)) {
  if (!api_socket_.empty()) dpm_set_daemon_path(api_socket_.c_str());
}

void Dialer::Dial(const std::string& host, uint16_t port, std::chrono::milliseconds timeout, Done done) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address_v4(host, ec);
  if (!ec) return DialAddress(address, port, timeout, std::move(done));
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(io_);
  resolver->async_resolve(asio::ip::tcp::v4(), host, std::to_string(port),
                          [this, resolver, port, timeout, done = std::move(done)](
                              const boost::system::error_code& e, asio::ip::tcp::resolver::results_type results) {
                            if (e || results.empty()) return done(ENOENT, -1);
                            DialAddress(results.begin()->endpoint().address().to_v4(), port, timeout, done);
                          });
}

void Dialer::DialAddress(const asio::ip::address_v4& address, uint16_t port, std::chrono::milliseconds timeout,
                         Done done) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(address.to_uint());
  const bool dpm = through_dpm();
  int fd = dpm ? dpm_socket(AF_INET, SOCK_STREAM, 0, DPM_TUPLE_COMMON)
               : ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return done(errno, -1);
  if (dpm) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  int r = dpm ? dpm_connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin))
              : ::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  auto a = std::make_shared<Attempt>(io_, fd);
  a->dpm = dpm;
  a->done = std::move(done);
  if (r == 0) return a->Finish(0);
  if (errno != EINPROGRESS) return a->Finish(errno);
  a->timer.expires_after(timeout);
  a->timer.async_wait([a](const boost::system::error_code& ec) {
    if (!ec) a->Finish(ETIMEDOUT);
  });
  a->sd.async_wait(asio::posix::stream_descriptor::wait_write, [a](const boost::system::error_code& ec) {
    if (a->finished) return;
    if (ec) return a->Finish(EIO);
    int error = 0;
    socklen_t len = sizeof(error);
    int fd = a->sd.native_handle();
    int g = a->dpm ? dpm_getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len)
                   : ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    a->Finish(g != 0 ? errno : error);
  });
}

}  // namespace dpm::tunnel_service
