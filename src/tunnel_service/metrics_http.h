// The Prometheus text endpoint of a tunnel role (`--metrics ADDR:PORT`): a minimal HTTP/1.1
// responder that answers `GET /metrics` with the text exposition format (version 0.0.4) and
// closes; anything else gets 404. Requests are read up to 8 KiB and 5 seconds, so a client
// cannot hold it with a slow or endless request. Core thread only.
#ifndef DPM_TUNNEL_SERVICE_METRICS_HTTP_H_
#define DPM_TUNNEL_SERVICE_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/statusor.h"

namespace dpm::tunnel_service {

class MetricsServer {
 public:
  /// Listens on `where` ("127.0.0.1:9100"); `body` makes the exposition text at each request.
  /// Errors: InvalidArgument (not ADDR:PORT), Unavailable (bind failed, with the reason).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(boost::asio::io_context& io, const std::string& where,
                                                               std::function<std::string()> body);
  ~MetricsServer();

 private:
  MetricsServer(boost::asio::io_context& io, std::function<std::string()> body);
  void Accept();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<std::string()> body_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// Parses "a.b.c.d:port" (port 1..65535; port 0 allowed when `allow_zero`).
absl::StatusOr<boost::asio::ip::tcp::endpoint> ParseHostPort(const std::string& text, bool allow_zero = false);

/// Escapes a Prometheus label value (backslash, double quote, newline).
std::string LabelValue(const std::string& value);

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_METRICS_HTTP_H_
