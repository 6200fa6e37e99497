#include "tunnel_service/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpm::tunnel_service {
namespace {

namespace ssl = boost::asio::ssl;

std::string OpenSslReason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// The ALPN wire form: one length byte, then the id.
const unsigned char* AlpnWire(unsigned* len) {
  static unsigned char wire[sizeof(kAlpn)] = {};
  if (wire[0] == 0) {
    wire[0] = static_cast<unsigned char>(sizeof(kAlpn) - 1);
    std::memcpy(wire + 1, kAlpn, sizeof(kAlpn) - 1);
  }
  *len = sizeof(kAlpn);
  return wire;
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
               void*) {
  unsigned len = 0;
  const unsigned char* ours = AlpnWire(&len);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, len, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // a client of another protocol: no_application_protocol
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The select callback above runs only when the ClientHello carries ALPN (RFC 7301 §3.1): a
// client offering none is refused here, with the same alert, before the handshake goes on.
int RequireAlpn(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &len) != 1) {
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

std::unique_ptr<ssl::context> Tls13(ssl::context::method method) {
  auto ctx = std::make_unique<ssl::context>(method);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  return ctx;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ssl::context>> MakeServerContext(const std::string& cert_file,
                                                              const std::string& key_file) {
  auto ctx = Tls13(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("certificate ", cert_file, ": ", OpenSslReason()));
  }
  if (SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("key ", key_file, ": ", OpenSslReason()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("key ", key_file, " does not match certificate ", cert_file));
  }
  SSL_CTX_set_client_hello_cb(native, RequireAlpn, nullptr);
  SSL_CTX_set_alpn_select_cb(native, SelectAlpn, nullptr);
  return ctx;
}

absl::StatusOr<std::unique_ptr<ssl::context>> MakeClientContext(const std::string& ca_file) {
  auto ctx = Tls13(ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  if (ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(native) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("system trust store: ", OpenSslReason()));
    }
  } else if (SSL_CTX_load_verify_locations(native, ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("CA file ", ca_file, ": ", OpenSslReason()));
  }
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  unsigned len = 0;
  const unsigned char* alpn = AlpnWire(&len);
  SSL_CTX_set_alpn_protos(native, alpn, len);
  return ctx;
}

bool PrepareClient(TlsStream& stream, const std::string& server_name) {
  SSL* ssl = stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  in_addr ip{};
  if (inet_pton(AF_INET, server_name.c_str(), &ip) == 1) {
    return X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) == 1;
  }
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, server_name.c_str()) != 1) return false;
  return SSL_set_tlsext_host_name(ssl, server_name.c_str()) == 1;
}

bool AlpnAgreed(TlsStream& stream) {
  const unsigned char* selected = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(stream.native_handle(), &selected, &len);
  return len == sizeof(kAlpn) - 1 && std::memcmp(selected, kAlpn, len) == 0;
}

std::string VerifyFailure(TlsStream& stream) {
  long r = SSL_get_verify_result(stream.native_handle());
  if (r == X509_V_OK) return "";
  return X509_verify_cert_error_string(r);
}

}  // namespace dpm::tunnel_service
