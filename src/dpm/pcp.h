// The DPM setup exchange as PCP, the Port Control Protocol (RFC 6887, version 2): a sans-I/O
// codec for requests and responses. Read RFC 6887 §7 (common header and options), §11 (MAP),
// §12 (PEER), §13 (THIRD_PARTY, PREFER_FAILURE, FILTER) and §8.3 (what a server does with a
// bad request) first; docs/pcp.md maps the DPM patent's setup exchange (claims 1-5)
// onto these fields and documents the two DPM options.
//
// Untrusted bytes enter only through ParseRequest/ParseResponse, which read through
// wire::Reader (never past the end) and name the field that is missing or wrong. Encoding
// never fails. All integers on the wire are big-endian; ports and lifetimes in the structs
// below are in host order. PCP carries every address in 16 bytes, IPv4 as the IPv4-mapped
// IPv6 address ::ffff:a.b.c.d (RFC 6887 §5).
//
// PCP and NAT-PMP (RFC 6886, natpmp.h) share UDP port 5351 and are told apart by the first
// byte: version 0 is NAT-PMP, anything else goes to ParseRequest (RFC 6887 §9, Appendix A).
#ifndef DPM_DPM_PCP_H_
#define DPM_DPM_PCP_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dpm::pcp {

/// UDP port the PCP server listens on (RFC 6887 §19.1).
inline constexpr uint16_t kServerPort = 5351;
/// UDP port a PCP client listens on for unsolicited ANNOUNCE responses (RFC 6887 §19.1).
inline constexpr uint16_t kClientPort = 5350;
/// The DPM patent's well-known port (¶32); the DPM server answers PCP on it too.
inline constexpr uint16_t kDpmPort = 1080;
inline constexpr uint8_t kVersion = 2;
/// Largest PCP message, bytes (RFC 6887 §7).
inline constexpr size_t kMaxMessage = 1100;

// Wire sizes, bytes.
inline constexpr size_t kCommonHeaderSize = 24;  // request (§7.1) and response (§7.2) alike
inline constexpr size_t kMapBodySize = 36;       // §11.1, Figures 9 and 10
inline constexpr size_t kPeerBodySize = 56;      // §12.1, Figures 11 and 12
inline constexpr size_t kOptionHeaderSize = 4;   // §7.3, Figure 4
inline constexpr size_t kVpmBodySize = 56;       // VPM (private use), docs/vpm.md "Negotiation"
/// Longest AID the VPM body carries, bytes (vpm/aid.h kMaxAidLength).
inline constexpr size_t kVpmMaxAid = 32;

/// The R bit in the second byte: 0 in a request, 1 in a response (§7.1, §7.2).
inline constexpr uint8_t kResponseBit = 0x80;

/// kVpm is dpm's virtual port multiplexing negotiation, the first opcode of the private-use
/// range 96-126 (IANA "PCP Opcodes"); docs/vpm.md "Negotiation" has its layout.
enum class Opcode : uint8_t { kAnnounce = 0, kMap = 1, kPeer = 2, kVpm = 96 };

/// Result codes (RFC 6887 §7.4).
enum class ResultCode : uint8_t {
  kSuccess = 0,
  kUnsuppVersion = 1,
  kNotAuthorized = 2,
  kMalformedRequest = 3,
  kUnsuppOpcode = 4,
  kUnsuppOption = 5,
  kMalformedOption = 6,
  kNetworkFailure = 7,
  kNoResources = 8,
  kUnsuppProtocol = 9,
  kUserExQuota = 10,
  kCannotProvideExternal = 11,
  kAddressMismatch = 12,
  kExcessiveRemotePeers = 13,
};

/// The RFC's name: "SUCCESS", "CANNOT_PROVIDE_EXTERNAL", ...; "UNKNOWN" for other values.
const char* ResultName(ResultCode result);
/// "ANNOUNCE", "MAP", "PEER", "VPM"; "UNKNOWN" for other values.
const char* OpcodeName(Opcode opcode);

// ---- options (RFC 6887 §7.3, §13; IANA "PCP Options") -------------------------------------
// Codes 0-127 are mandatory to process (a server that does not know one answers
// UNSUPP_OPTION), 128-255 optional (ignored when unknown). Private use: 96-126 (mandatory)
// and 224-254 (optional); the two DPM options take the first code of each (docs/pcp.md).

inline constexpr uint8_t kThirdParty = 1;     // §13.1: 16-byte internal address; MAP, PEER
inline constexpr uint8_t kPreferFailure = 2;  // §13.2: no data; MAP only
inline constexpr uint8_t kFilter = 3;         // §13.3: 20 bytes; MAP only, may repeat
/// DPM: the internal port is NOT replaceable (the DPM patent, claims 1-4); no data; MAP and PEER
/// requests. A PCP server that does not know it answers UNSUPP_OPTION, so a driver never
/// believes a fixed port was kept by a server that ignored the flag.
inline constexpr uint8_t kDpmPortFixed = 96;
/// DPM: in a MAP/PEER response, the gateway's private address and port the DPM driver must
/// aim the session's packets at (claim 5, ¶33): 16-byte address, 2-byte port, 2 reserved.
inline constexpr uint8_t kDpmSessionEndpoint = 224;

inline constexpr uint16_t kThirdPartyLength = 16;
inline constexpr uint16_t kFilterLength = 20;
inline constexpr uint16_t kDpmSessionEndpointLength = 20;

/// True for the mandatory-to-process range 0-127 (the option code's top bit clear).
constexpr bool IsMandatoryOption(uint8_t code) { return (code & 0x80) == 0; }
/// "THIRD_PARTY", "PREFER_FAILURE", "FILTER", "DPM_PORT_FIXED", "DPM_SESSION_ENDPOINT";
/// "UNKNOWN" for other codes.
const char* OptionName(uint8_t code);

// ---- values ---------------------------------------------------------------------------

/// A 16-byte PCP address field.
struct Address {
  std::array<uint8_t, 16> bytes{};

  /// ::ffff:a.b.c.d for a host-order IPv4 address.
  static Address FromIpv4(uint32_t host_order);
  /// True for an IPv4-mapped address: all of the first 96 bits are checked (RFC 6887 §5).
  bool is_ipv4() const;
  /// The IPv4 address in host order; meaningful when is_ipv4().
  uint32_t ipv4() const;
  /// :: or ::ffff:0.0.0.0 — "no preference" in a suggested external address (§11.1).
  bool is_unspecified() const;
  /// "203.0.113.7" for IPv4-mapped addresses, RFC 5952 text otherwise.
  std::string ToString() const;

  friend bool operator==(const Address&, const Address&) = default;
};

/// The MAP opcode-specific information (§11.1). In a request the external fields are the
/// suggested ones, in a response the assigned ones.
struct MapBody {
  std::array<uint8_t, 12> nonce{};
  uint8_t protocol = 0;  // IANA protocol number; 0 = all protocols
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  Address external_address;

  friend bool operator==(const MapBody&, const MapBody&) = default;
};

/// The PEER opcode-specific information (§12.1): MAP's fields plus the remote peer, which in
/// DPM is the session's final destination (claims 1, 4).
struct PeerBody : MapBody {
  uint16_t remote_port = 0;
  Address remote_address;

  friend bool operator==(const PeerBody&, const PeerBody&) = default;
};

/// A FILTER option (§13.3): accept inbound packets only from this remote prefix and port.
struct Filter {
  uint8_t prefix_length = 0;  // 0 = any address; for IPv4-mapped, 96 + the IPv4 prefix
  uint16_t remote_port = 0;   // 0 = any port
  Address remote_address;

  friend bool operator==(const Filter&, const Filter&) = default;
};

/// The VPM opcode-specific information (docs/vpm.md "Negotiation"): a client-side VPM asks the
/// server-side VPM which hidden port carries (protocol, virtual port, AID) for a connection
/// from its client port; the response echoes the request's fields with the hidden port filled
/// in (the virtual port multiplexing patent, Fig. 6: "the new port … negotiated between both
/// VPMs"). 56 bytes:
///   0 nonce (12) | 12 protocol, reserved, AID length, reserved | 16 virtual port, hidden port
///   | 20 client port, reserved (2) | 24 AID, zero-padded to 32 bytes.
struct VpmBody {
  std::array<uint8_t, 12> nonce{};
  uint8_t protocol = 0;        // IANA protocol number: 6 TCP, 17 UDP
  uint16_t virtual_port = 0;   // the port both programs see
  uint16_t hidden_port = 0;    // 0 in a request; the server's hidden port in a response
  uint16_t client_port = 0;    // the client's source port of the connection to come
  std::string aid;             // 1..kVpmMaxAid bytes (the parser checks only the length)
  friend bool operator==(const VpmBody&, const VpmBody&) = default;
};

struct Request {
  Opcode opcode = Opcode::kAnnounce;
  uint32_t lifetime = 0;  // requested lifetime, seconds; 0 deletes the mapping
  Address client_address;
  std::optional<MapBody> map;    // opcode kMap
  std::optional<PeerBody> peer;  // opcode kPeer
  std::optional<VpmBody> vpm;    // opcode kVpm
  std::optional<Address> third_party;
  bool prefer_failure = false;
  std::vector<Filter> filters;
  bool dpm_port_fixed = false;

  friend bool operator==(const Request&, const Request&) = default;
};

struct Response {
  Opcode opcode = Opcode::kAnnounce;
  ResultCode result = ResultCode::kSuccess;
  uint32_t lifetime = 0;  // granted lifetime, or how long an error will persist (§7.2)
  uint32_t epoch = 0;     // server's Epoch Time, seconds (§8.5)
  std::optional<MapBody> map;    // opcode kMap; absent in an error response cut short
  std::optional<PeerBody> peer;  // opcode kPeer; likewise
  std::optional<VpmBody> vpm;    // opcode kVpm; likewise
  /// The gateway endpoint (address, port) the driver aims the session at (kDpmSessionEndpoint).
  std::optional<std::pair<Address, uint16_t>> dpm_session_endpoint;
  // Request options a server echoes in a success response (§13); parsed, not interpreted.
  std::optional<Address> third_party;
  bool prefer_failure = false;
  std::vector<Filter> filters;

  friend bool operator==(const Response&, const Response&) = default;
};

// ---- requests (server side) -----------------------------------------------------------

/// Why a request was refused: the result code to answer with and a message naming the field
/// ("truncated PEER body: 20 bytes, want 56", "option 3 length 8, want 20", ...).
struct ParseError {
  ResultCode result = ResultCode::kSuccess;
  std::string message;
  /// RFC 6887 §8.3: drop without any reply (shorter than 24 bytes, or the R bit set).
  /// Exactly when EncodeErrorResponse returns no bytes for this request.
  bool silent = false;
};

struct ParsedRequest {
  std::optional<Request> request;  // set on success
  ParseError error;                // meaningful when !request
  bool ok() const { return request.has_value(); }
};

/// Parses a request, checking in RFC 6887 §8.3 order: R bit (silent), version
/// (UNSUPP_VERSION), length < 24 (silent MALFORMED_REQUEST), > 1100 or not a multiple of 4
/// (MALFORMED_REQUEST), opcode (UNSUPP_OPCODE), opcode-specific body (MALFORMED_REQUEST),
/// then each option in turn: truncated (MALFORMED_OPTION), unknown mandatory (UNSUPP_OPTION;
/// unknown optional ones are skipped), not valid with the opcode, wrong length, repeated
/// (MALFORMED_OPTION). Reserved fields and option padding are ignored (§7). Semantic checks
/// (address mismatch, protocol/port rules, quotas) are the server's.
///
/// `server` says which opcodes the caller serves: the DPM server (kGateway) ANNOUNCE, MAP and
/// PEER; a server-side VPM (kVpm) VPM only. Any other opcode is UNSUPP_OPCODE. A VPM body
/// whose AID length is 0 or over kVpmMaxAid is MALFORMED_REQUEST; no option is valid with VPM.
enum class Server : uint8_t { kGateway, kVpm };
ParsedRequest ParseRequest(absl::Span<const uint8_t> bytes, Server server = Server::kGateway);

/// Encodes a request: header, the body of its opcode (zeros if the optional is empty), then
/// THIRD_PARTY, PREFER_FAILURE, FILTERs, DPM_PORT_FIXED. Never fails; the result parses back
/// to an equal Request (the caller keeps it under kMaxMessage: at most 51 filters on MAP).
std::vector<uint8_t> EncodeRequest(const Request& request);

/// The error response to `request`, a request ParseRequest refused or the server rejected
/// (RFC 6887 §7.2, §7.3, §8.3). Never longer than the request (docs/design.md §6: no larger reply
/// than the request); empty means "send nothing":
///  - shorter than 24 bytes, or R bit set: empty (§8.3 drops these silently);
///  - version other than 2: the 24-byte response header only (version 2, so the client learns
///    which version to use, §9);
///  - otherwise a copy of the request (opcode-specific information and options included, as
///    §7.3 requires), cut to kMaxMessage and to a multiple of 4 bytes, with the response header
///    written over the request header: version 2, R bit, the request's opcode, `result`,
///    `lifetime` (how long the error persists), `epoch`, reserved bytes zero.
std::vector<uint8_t> EncodeErrorResponse(absl::Span<const uint8_t> request, ResultCode result,
                                         uint32_t lifetime, uint32_t epoch);

// ---- responses (client side) ----------------------------------------------------------

/// Parses a response (InvalidArgument naming the field on failure). Checks: length >= 24 and
/// <= 1100 and a multiple of 4, R bit set, version 2 (§8.3, client side). A success response
/// must have a known opcode and carry its opcode's whole body; an error response may name an
/// unknown opcode (kept in `opcode`, no body) or be cut short (its body is then absent), and
/// its options are not read, since they are a copy of the request. Unknown options are ignored (§7.3: clients ignore options they do not understand,
/// mandatory or not).
absl::StatusOr<Response> ParseResponse(absl::Span<const uint8_t> bytes);

/// Encodes a response: header, the body of its opcode when present, THIRD_PARTY,
/// PREFER_FAILURE, FILTERs, DPM_SESSION_ENDPOINT. Never fails.
std::vector<uint8_t> EncodeResponse(const Response& response);

}  // namespace dpm::pcp

#endif  // DPM_DPM_PCP_H_
