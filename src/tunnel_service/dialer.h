// Outbound TCP connections of the tunnel roles: through the kernel, or through a dpm instance
// (`--api-socket`: libdpm sockets are ordinary descriptors, so TLS and the bridges run on them
// unchanged — a service proxy behind a DPM gateway gets its mapping before its first SYN).
// Core thread only.
#ifndef DPM_TUNNEL_SERVICE_DIALER_H_
#define DPM_TUNNEL_SERVICE_DIALER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace dpm::tunnel_service {

class Dialer {
 public:
  /// `api_socket`: empty for the kernel, else the dpm instance's API socket ("@dpm/dpmd").
  Dialer(boost::asio::io_context& io, std::string api_socket);

  /// `error`: 0 or the errno (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ENOENT for a
  /// name that does not resolve, ...); `fd`: the connected, non-blocking descriptor (>= 0 only
  /// on success; the callee owns it).
  using Done = std::function<void(int error, int fd)>;
  /// Connects to `host` (an IPv4 literal, or a name the system resolver knows) port `port`
  /// (host byte order), giving up after `timeout`.
  void Dial(const std::string& host, uint16_t port, std::chrono::milliseconds timeout, Done done);
  bool through_dpm() const { return !api_socket_.empty(); }

 private:
  void DialAddress(const boost::asio::ip::address_v4& address, uint16_t port, std::chrono::milliseconds timeout,
                   Done done);

  boost::asio::io_context& io_;
  std::string api_socket_;
};

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_DIALER_H_
