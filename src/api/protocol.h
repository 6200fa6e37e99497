// The control protocol between libdpm and dpmd (docs/api.md).
//
// Transport: one UNIX SOCK_SEQPACKET connection per client thread to dpmd's API socket; each
// request is one message, each reply one message (a SOCKET reply carries the new socket's
// descriptor in SCM_RIGHTS). Both ends run on the same host, so integers are in host byte
// order; addresses and ports inside an Endpoint are in network byte order, as in sockaddr.
//
// Every message starts with a 4-byte header: u16 version (kVersion), u16 opcode. Requests are
// parsed from untrusted bytes (any local program may connect) through Reader, which never
// reads past the end and names the missing field on failure.
#ifndef DPM_API_PROTOCOL_H_
#define DPM_API_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dpm::api {

inline constexpr uint16_t kVersion = 2;  // 2: CONNECT carries flags
/// Largest request or reply the daemon reads or writes, bytes.
inline constexpr size_t kMaxMessage = 64 * 1024;
/// Largest socket option value a SETSOCKOPT request carries, bytes.
inline constexpr size_t kMaxOptionValue = 64;
/// Largest option value a GETSOCKOPT reply carries (a struct tcp_info), bytes.
inline constexpr size_t kMaxOptionReply = 512;
/// Longest name a RESOLVE request carries, bytes (a DNS name in text form, RFC 1035 §2.3.4).
inline constexpr size_t kMaxResolveName = 253;

enum class Opcode : uint16_t {
  kSocket = 1,
  kBind = 2,
  kListen = 3,
  kConnect = 4,
  kGetSockName = 5,
  kGetPeerName = 6,
  kShutdown = 7,
  kSetSockOpt = 8,
  kGetSockOpt = 9,
  kStatus = 10,
  kResolve = 11,
  kVpmConfigure = 12,
};

/// An IPv4 or IPv6 endpoint. family is AF_INET, AF_INET6 or 0 (none: "the connected peer").
/// address holds 4 (IPv4) or 16 bytes in network byte order; port is in network byte order.
/// Wire form: u16 family, u16 port, 16 address bytes (20 bytes).
struct Endpoint {
  uint16_t family = 0;
  uint16_t port_be = 0;
  uint8_t address[16] = {};

  static constexpr size_t kWireSize = 20;
  /// Converts from a sockaddr; errors: EAFNOSUPPORT (family), EINVAL (length).
  static int FromSockaddr(const sockaddr* sa, socklen_t len, Endpoint* out);
  /// Writes a sockaddr_in/_in6 truncated to *len bytes and sets *len to the full size, as
  /// getsockname(2) does.
  void ToSockaddr(sockaddr* sa, socklen_t* len) const;
  /// Host-order IPv4 address (family AF_INET).
  uint32_t ipv4_host() const;
  static Endpoint Ipv4(uint32_t address_host, uint16_t port_host);
  uint16_t port_host() const { return ntohs(port_be); }
  std::string ToString() const;  // "10.77.1.2:80"
  friend bool operator==(const Endpoint& a, const Endpoint& b);
};

/// Names a daemon socket: id, plus a random cookie so no program can act on another's socket
/// by guessing ids.
struct SocketRef {
  uint64_t id = 0;
  uint64_t cookie = 0;
  static constexpr size_t kWireSize = 16;
};

struct SocketRequest { int32_t domain = 0, type = 0, protocol = 0, tuple = 0; };
struct BindRequest { SocketRef ref; Endpoint local; };
struct ListenRequest { SocketRef ref; int32_t backlog = 0; };
/// CONNECT. flags: kConnectNonBlocking — answer at once (EINPROGRESS, or an error found
/// before the handshake) and report the result as a kernel socket does: the program's
/// descriptor turns writable when the connection is up or has failed, and SO_ERROR holds the
/// failure. Such a request carries the program's own end of the socket pair in SCM_RIGHTS
/// (`descriptor`, not part of the bytes), which the daemon fills until the kernel reports it not
/// writable and empties when the connect ends (docs/api.md "Non-blocking connect").
/// Wire: SocketRef, Endpoint, u32 flags.
struct ConnectRequest {
  static constexpr uint32_t kConnectNonBlocking = 1;
  SocketRef ref;
  Endpoint remote;
  uint32_t flags = 0;
  int descriptor = -1;  // out of band (SCM_RIGHTS); -1 when none came
};
struct NameRequest { SocketRef ref; bool peer = false; };
struct ShutdownRequest { SocketRef ref; int32_t how = 0; };
struct SetSockOptRequest {
  SocketRef ref;
  int32_t level = 0, name = 0;
  std::vector<uint8_t> value;  // at most kMaxOptionValue bytes
};
struct GetSockOptRequest { SocketRef ref; int32_t level = 0, name = 0; };
struct StatusRequest { bool json = false; };
/// RESOLVE (the tunneling patent, Fig. 6 step 615): the pseudo IPv4 address of a pseudo DNS
/// name, asked of a `dpmd redirector` by the preload hook's resolver in tunnel mode. `name` is as the program
/// gave it (any case, maybe a trailing dot), at most kMaxResolveName bytes.
/// Wire: u16 length, the name's bytes. Reply body on success: an Endpoint (AF_INET, port 0,
/// the pseudo address); errors ENOENT (not a name the daemon resolves), ENOSPC (no pseudo
/// address left). A daemon that resolves no names (dpmd client) answers ENOENT; one older
/// than the opcode answers EINVAL.
struct ResolveRequest { std::string name; };
/// VPM_CONFIGURE (docs/vpm.md "The library call"): the text of a VPM configurator file, which
/// replaces the instance's rules as a reload does (and turns VPM on when it was off). At most
/// kMaxVpmConfig bytes. Wire: u32 length, the bytes. Errors: EPERM (a caller other than root
/// and the daemon's user), EINVAL (the text; the reply body then says why, as the file's
/// errors do).
struct VpmConfigureRequest { std::string text; };
/// Largest VPM_CONFIGURE text, bytes: what fits in one message beside the header and length.
inline constexpr size_t kMaxVpmConfig = kMaxMessage - 64;

using Request = std::variant<SocketRequest, BindRequest, ListenRequest, ConnectRequest,
                             NameRequest, ShutdownRequest, SetSockOptRequest, GetSockOptRequest,
                             StatusRequest, ResolveRequest, VpmConfigureRequest>;

/// Parses one request message. Errors (InvalidArgument) name the field that is missing or
/// wrong: "truncated header", "bad version 7", "unknown opcode 99", "truncated endpoint", ...
/// Trailing bytes after a complete request are an error ("trailing bytes").
absl::StatusOr<Request> ParseRequest(absl::Span<const uint8_t> bytes);
/// Encodes a request; never fails (a ResolveRequest name over kMaxResolveName bytes gives
/// bytes ParseRequest refuses: callers check the length first).
std::vector<uint8_t> EncodeRequest(const Request& request);

/// Reply: header (opcode of the request), i32 error (0 or an errno value), then a body that
/// depends on the opcode: SOCKET → SocketRef; GETSOCKNAME/GETPEERNAME/RESOLVE → Endpoint;
/// GETSOCKOPT → the value's bytes (an int for most options, at most kMaxOptionReply);
/// STATUS → text; VPM_CONFIGURE → on EINVAL, the reason as text; the others → nothing.
struct Reply {
  Opcode opcode = Opcode::kSocket;
  int32_t error = 0;
  std::vector<uint8_t> body;
};
absl::StatusOr<Reply> ParseReply(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeReply(const Reply& reply);

std::vector<uint8_t> EncodeSocketRef(const SocketRef& ref);
absl::StatusOr<SocketRef> ParseSocketRef(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeEndpoint(const Endpoint& endpoint);
absl::StatusOr<Endpoint> ParseEndpoint(absl::Span<const uint8_t> bytes);

/// Sent by the daemon on a listening socket's stream for each new connection, with the
/// connection's descriptor in SCM_RIGHTS: SocketRef, local Endpoint, peer Endpoint.
struct AcceptRecord {
  SocketRef ref;
  Endpoint local, peer;
  static constexpr size_t kWireSize = SocketRef::kWireSize + 2 * Endpoint::kWireSize;
};
std::vector<uint8_t> EncodeAcceptRecord(const AcceptRecord& record);
absl::StatusOr<AcceptRecord> ParseAcceptRecord(absl::Span<const uint8_t> bytes);

/// Each UDP datagram on a dpm UDP descriptor is one seqpacket message: an Endpoint (the
/// destination when the program sends — family 0 for the connected peer — the source when it
/// receives) followed by the payload.
inline constexpr size_t kDatagramHeaderSize = Endpoint::kWireSize;

}  // namespace dpm::api

#endif  // DPM_API_PROTOCOL_H_
