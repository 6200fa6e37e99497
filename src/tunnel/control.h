// The tunnel protocol's control messages (docs/tunnel.md "Message format"). Right after the
// TLS handshake the connecting side (a service proxy or a redirector) sends one HELLO; the
// tunnel server answers WELCOME — for a proxy, one publish result per service it asked for
// (the tunneling patent, Figs. 3 and 4: the service key and the pseudo DNS name, or an error) — or REFUSED
// and closes. After that both sides speak HTTP/2 (mux.h) on the same TLS connection.
//
// Every message: "DPMT" (4 bytes), u8 version (kProtocolVersion), u8 type (ControlType),
// u16 zero, u32 body length (at most kMaxControlBody), then the body. Integers are in network
// byte order; a string is u16 length and that many bytes.
//   HELLO   u8 role, string name, string token, u16 count, count × string service
//   WELCOME u32 keepalive seconds, u16 count, count × (string service, u8 PublishStatus,
//           string pseudo name, 16 bytes service key)
//   REFUSED u8 RefuseReason, string message
// Parsing takes untrusted bytes: every read is bounds-checked, and an error (InvalidArgument)
// names what is wrong ("truncated token", "bad magic", "257 services, at most 256", ...).
#ifndef DPM_TUNNEL_CONTROL_H_
#define DPM_TUNNEL_CONTROL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dpm::tunnel {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kControlHeaderSize = 12;
/// Largest control message body, bytes.
inline constexpr size_t kMaxControlBody = 64 * 1024;
/// Most services one HELLO may name.
inline constexpr size_t kMaxHelloServices = 256;
/// Longest token, bytes.
inline constexpr size_t kMaxTokenSize = 256;
/// The service key: 128 random bits made by the tunnel server at each publish (Fig. 4 step 405).
inline constexpr size_t kServiceKeySize = 16;
using ServiceKey = std::array<uint8_t, kServiceKeySize>;

enum class ControlType : uint8_t { kHello = 1, kWelcome = 2, kRefused = 3 };
enum class Role : uint8_t { kProxy = 1, kRedirector = 2 };

/// HELLO: who connects. `name` is the proxy's name (a names.h label; it is the middle label of
/// its pseudo DNS names) or the redirector's name (its entry in the access file); `token` its
/// secret; `services` the service names a proxy publishes (none for a redirector). Only names
/// travel: the real servers' addresses stay with the proxy.
struct Hello {
  Role role = Role::kProxy;
  std::string name;
  std::string token;
  std::vector<std::string> services;
  friend bool operator==(const Hello&, const Hello&) = default;
};

enum class PublishStatus : uint8_t {
  kPublished = 0,  // key and pseudo name are valid
  kBadName = 1,    // not a valid service name
  kLimit = 2,      // more services than this proxy may publish
  kDuplicate = 3,  // the same service twice in one HELLO
};

/// One service's publish result (proxy) or one service a redirector may use (status kPublished,
/// key all zero: keys stay between the server and the proxy).
struct ServiceEntry {
  std::string service;
  PublishStatus status = PublishStatus::kPublished;
  std::string pseudo_name;
  ServiceKey key{};
  friend bool operator==(const ServiceEntry&, const ServiceEntry&) = default;
};

/// WELCOME: the session is up. `keepalive_seconds`: how often each side pings (HTTP/2 PING);
/// a peer silent for three times that is taken as dead.
struct Welcome {
  uint32_t keepalive_seconds = 15;
  std::vector<ServiceEntry> services;
  friend bool operator==(const Welcome&, const Welcome&) = default;
};

enum class RefuseReason : uint8_t {
  kAuthentication = 1,  // unknown name or wrong token (one answer for both)
  kVersion = 2,         // a protocol version this server does not speak
  kLimit = 3,           // too many connections
  kMalformed = 4,       // the HELLO did not parse, or came too late (handshake deadline)
};

struct Refused {
  RefuseReason reason = RefuseReason::kAuthentication;
  std::string message;
  friend bool operator==(const Refused&, const Refused&) = default;
};

using ControlMessage = std::variant<Hello, Welcome, Refused>;

/// The whole message's size (header and body) from its first kControlHeaderSize bytes.
/// Errors: InvalidArgument ("bad magic", "bad version 2", "body of 70000 bytes, at most 65536").
absl::StatusOr<size_t> ControlMessageSize(absl::Span<const uint8_t> header);
/// Parses one whole message (exactly ControlMessageSize bytes; trailing bytes are an error).
absl::StatusOr<ControlMessage> ParseControl(absl::Span<const uint8_t> message);
/// Encodes a message. Strings longer than 65535 bytes are cut (callers keep to the limits above).
std::vector<uint8_t> EncodeControl(const ControlMessage& message);
/// Lower-case hex of a key (32 characters), the form the `dpm-service-key` header carries.
std::string KeyToHex(const ServiceKey& key);
/// Parses KeyToHex's form; false for anything else.
bool KeyFromHex(absl::string_view hex, ServiceKey* key);

}  // namespace dpm::tunnel

#endif  // DPM_TUNNEL_CONTROL_H_
