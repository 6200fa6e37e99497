// TLS 1.3 for the tunnel roles (docs/tunnel.md "Security"), OpenSSL through Boost.Asio. The
// tunnel server presents a certificate and key from files; the service proxy and the
// redirector verify it against a CA file (or the system's trust store) and the server's name
// (RFC 6125 through OpenSSL's X509_check_host) before sending their token. Only TLS 1.3 is
// offered, with ALPN "dpm-tunnel/1" (RFC 7301) so a stray client of another protocol, or of
// none, is refused during the handshake (alert no_application_protocol).
#ifndef DPM_TUNNEL_SERVICE_TLS_H_
#define DPM_TUNNEL_SERVICE_TLS_H_

#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/status/statusor.h"

namespace dpm::tunnel_service {

using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

/// The ALPN protocol id of the tunnel protocol.
inline constexpr char kAlpn[] = "dpm-tunnel/1";

/// A server context: certificate chain and private key (PEM files). Errors: InvalidArgument
/// naming the file and OpenSSL's reason ("--cert server.pem: no such file", "key does not
/// match the certificate").
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerContext(const std::string& cert_file,
                                                                             const std::string& key_file);
/// A client context verifying the server: `ca_file` (PEM; empty: the system's trust store).
/// Errors: InvalidArgument naming the file.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeClientContext(const std::string& ca_file);
/// Sets up a client stream for `server_name` before its handshake: SNI and host name
/// verification (a DNS name or an IPv4 literal). False when OpenSSL refuses the name.
bool PrepareClient(TlsStream& stream, const std::string& server_name);
/// After a client's handshake: true when the server selected ALPN "dpm-tunnel/1" (a server
/// that ignores ALPN selects nothing).
bool AlpnAgreed(TlsStream& stream);
/// The reason a verification failed, for the log ("certificate has expired",
/// "hostname mismatch"), or "" when it did not.
std::string VerifyFailure(TlsStream& stream);

}  // namespace dpm::tunnel_service

#endif  // DPM_TUNNEL_SERVICE_TLS_H_
