#include "tunnel_service/metrics_http.h"

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace dpm::tunnel_service {
namespace {
namespace asio = boost::asio;
using asio::ip::tcp;
constexpr size_t kMaxRequest = 8192;

struct Exchange {
  tcp::socket socket;
  asio::steady_timer deadline;
  asio::streambuf request{kMaxRequest};
  std::string response;
  Exchange(asio::io_context& io, tcp::socket s) : socket(std::move(s)), deadline(io) {}
};

}  // namespace

absl::StatusOr<tcp::endpoint> ParseHostPort(const std::string& text, bool allow_zero) {
  size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535 ||
      (port == 0 && !allow_zero)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not ADDRESS:PORT"));
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address_v4(text.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", text, "': bad IPv4 address"));
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

std::string LabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(asio::io_context& io, const std::string& where,
                                                                   std::function<std::string()> body) {
  absl::StatusOr<tcp::endpoint> ep = ParseHostPort(where, /*allow_zero=*/false);
  if (!ep.ok()) return absl::InvalidArgumentError(absl::StrCat("--metrics: ", ep.status().message()));
  std::unique_ptr<MetricsServer> m(new MetricsServer(io, std::move(body)));
  boost::system::error_code ec;
  m->acceptor_.open(ep->protocol(), ec);
  if (!ec) m->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) m->acceptor_.bind(*ep, ec);
  if (!ec) m->acceptor_.listen(64, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("--metrics ", where, ": ", ec.message()));
  m->Accept();
  return m;
}

MetricsServer::MetricsServer(asio::io_context& io, std::function<std::string()> body)
    : io_(io), acceptor_(io), body_(std::move(body)) {}

MetricsServer::~MetricsServer() {
  *alive_ = false;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void MetricsServer::Accept() {
  acceptor_.async_accept([this, alive = alive_](const boost::system::error_code& ec, tcp::socket s) {
    if (!*alive) return;
    if (!ec) {
      auto x = std::make_shared<Exchange>(io_, std::move(s));
      x->deadline.expires_after(std::chrono::seconds(5));
      x->deadline.async_wait([x](const boost::system::error_code& e) {
        if (!e) x->socket.close();
      });
      asio::async_read_until(x->socket, x->request, "\r\n\r\n",
                             [this, alive, x](const boost::system::error_code& e, size_t) {
                               if (e || !*alive) {
                                 x->deadline.cancel();
                                 return;
                               }
                               std::string line(asio::buffers_begin(x->request.data()),
                                                asio::buffers_begin(x->request.data()) +
                                                    static_cast<std::ptrdiff_t>(std::min<size_t>(
                                                        x->request.size(), 64)));
                               bool ok = absl::StartsWith(line, "GET /metrics ") ||
                                         absl::StartsWith(line, "GET /metrics?");
                               std::string body = ok ? body_() : "not found: try /metrics\n";
                               x->response = absl::StrCat(
                                   ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n",
                                   "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                                   "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
                               asio::async_write(x->socket, asio::buffer(x->response),
                                                 [x](const boost::system::error_code&, size_t) {
                                                   boost::system::error_code ignored;
                                                   x->socket.shutdown(tcp::socket::shutdown_both, ignored);
                                                   x->socket.close(ignored);
                                                   x->deadline.cancel();
                                                 });
                             });
    }
    Accept();
  });
}

}  // namespace dpm::tunnel_service
