// The NAT-PMP subset (RFC 6886, with verified erratum 3618) the DPM server answers on UDP
// 5351 beside PCP, so the stock `natpmpc` client can read the public address and map TCP and
// UDP ports. Sans-I/O: bytes in, bytes out, no clock (the caller passes the epoch seconds).
//
// Dispatch on port 5351: IsNatPmp(bytes) (first byte 0) → natpmp::ParseRequest; anything else
// → pcp::ParseRequest, whose UNSUPP_VERSION answer (version 2) tells a client which versions
// this server speaks (RFC 6887 §9 and Appendix A).
//
// Messages (all big-endian; RFC 6886 §3.2, §3.3):
//   public address request  (2 bytes):  vers=0, op=0
//   public address response (12 bytes): vers=0, op=128, result(16), epoch(32), address(32)
//   map request             (12 bytes): vers=0, op=1 (UDP) | 2 (TCP), reserved(16),
//                                       internal port(16), suggested external port(16),
//                                       requested lifetime(32)
//   map response            (16 bytes): vers=0, op=128+op, result(16), epoch(32),
//                                       internal port(16), mapped external port(16),
//                                       lifetime(32)
#ifndef DPM_DPM_NATPMP_H_
#define DPM_DPM_NATPMP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dpm::natpmp {

inline constexpr uint16_t kServerPort = 5351;
inline constexpr uint8_t kVersion = 0;

// Request opcodes; a response's opcode is 128 + the request's (RFC 6886 §3.2, §3.3).
inline constexpr uint8_t kOpPublicAddress = 0;
inline constexpr uint8_t kOpMapUdp = 1;
inline constexpr uint8_t kOpMapTcp = 2;
inline constexpr uint8_t kResponseBit = 0x80;

inline constexpr size_t kPublicAddressRequestSize = 2;
inline constexpr size_t kPublicAddressResponseSize = 12;
inline constexpr size_t kMapRequestSize = 12;
inline constexpr size_t kMapResponseSize = 16;
/// The UNSUPP_VERSION response: vers=0, op=128, result=1, epoch (§3.5, erratum 3618).
inline constexpr size_t kUnsuppVersionResponseSize = 8;
/// An UNSUPP_OPCODE response echoes the request (§3.5), at most this many bytes of it.
inline constexpr size_t kMaxEcho = 1100;

/// Result codes (RFC 6886 §3.5), 16 bits on the wire. Unscoped, so natpmp::kSuccess and
/// natpmp::ResultCode::kSuccess both name them (NAT-PMP has no other enumerations to clash).
enum ResultCode : uint16_t {
  kSuccess = 0,
  kUnsuppVersion = 1,
  kNotAuthorized = 2,  // "Not Authorized/Refused"
  kNetworkFailure = 3,
  kOutOfResources = 4,
  kUnsuppOpcode = 5,
};
/// "SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "NETWORK_FAILURE", "OUT_OF_RESOURCES",
/// "UNSUPP_OPCODE"; "UNKNOWN" for other values.
const char* ResultName(ResultCode result);

/// True when `bytes` is a NAT-PMP message (version byte 0) rather than PCP (RFC 6887 §9).
bool IsNatPmp(absl::Span<const uint8_t> bytes);

struct Request {
  uint8_t opcode = kOpPublicAddress;
  // Map requests only (opcode 1 or 2); zero for the public address request.
  uint16_t internal_port = 0;
  uint16_t suggested_external_port = 0;
  uint32_t lifetime = 0;  // requested lifetime, seconds; 0 deletes (§3.4)

  friend bool operator==(const Request&, const Request&) = default;
};

struct ParsedRequest {
  std::optional<Request> request;  // set on success
  // When !request:
  ResultCode result = ResultCode::kSuccess;  // the code to answer with, unless `drop`
  bool drop = false;                         // send nothing
  std::string message;                       // names the field: "truncated map request: ..."
  bool ok() const { return request.has_value(); }
};

/// Parses a request (RFC 6886 §3.5 order):
///  - fewer than 2 bytes: drop ("truncated header");
///  - version not 0: UNSUPP_VERSION;
///  - opcode 128 or more: drop (it is a response);
///  - opcode other than 0, 1, 2: UNSUPP_OPCODE;
///  - map request shorter than 12 bytes: drop ("truncated map request"; the RFC defines no
///    answer to a short request, and guessing its port would be worse).
/// Bytes after a complete request are ignored, as are the map request's reserved bits.
ParsedRequest ParseRequest(absl::Span<const uint8_t> bytes);
/// Encodes a request: 2 bytes for opcode 0, 12 bytes for 1 and 2.
std::vector<uint8_t> EncodeRequest(const Request& request);

/// The public address response (12 bytes). `address_host` is the external IPv4 address in
/// host order (0 in an error response).
std::vector<uint8_t> EncodePublicAddressResponse(ResultCode result, uint32_t epoch_seconds,
                                                 uint32_t address_host);
/// The map response (16 bytes); `opcode` is the request's (1 or 2). In an error response the
/// server copies the internal port and sets external port and lifetime to 0 (§3.3).
std::vector<uint8_t> EncodeMapResponse(uint8_t opcode, ResultCode result, uint32_t epoch_seconds,
                                       uint16_t internal_port, uint16_t external_port,
                                       uint32_t lifetime);
/// The answer to a request ParseRequest refused (`result` its result, !drop):
///  - UNSUPP_VERSION: vers=0, op=128, result 1, epoch (8 bytes; §3.5 with erratum 3618);
///  - UNSUPP_OPCODE: the request itself (at most kMaxEcho bytes, at least 4) with the
///    opcode's top bit and the result code set (§3.5);
///  - anything else, or a request that must be dropped: no bytes.
std::vector<uint8_t> EncodeErrorResponse(absl::Span<const uint8_t> request, ResultCode result,
                                         uint32_t epoch_seconds);

/// Any NAT-PMP response, for tests and the client. Fields a response does not carry stay 0.
struct Response {
  uint8_t opcode = 0;  // the request's opcode (response opcode minus 128)
  ResultCode result = ResultCode::kSuccess;
  uint32_t epoch = 0;
  uint32_t external_address = 0;  // public address response, host order
  uint16_t internal_port = 0;     // map response
  uint16_t external_port = 0;     // map response
  uint32_t lifetime = 0;          // map response

  friend bool operator==(const Response&, const Response&) = default;
};

/// Parses a response: at least 4 bytes, version 0, opcode 128 or more. Epoch and body are
/// read for opcodes 128-130 when present; a success response must carry them whole (12 bytes
/// for 128, 16 for 129 and 130), an error response may stop after the epoch. An echoed
/// UNSUPP_OPCODE response yields only opcode and result.
absl::StatusOr<Response> ParseResponse(absl::Span<const uint8_t> bytes);

}  // namespace dpm::natpmp

#endif  // DPM_DPM_NATPMP_H_
