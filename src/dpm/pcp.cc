#include "dpm/pcp.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/cursor.h"

namespace dpm::pcp {
namespace {

using wire::Reader;
using wire::Writer;

constexpr uint8_t kOpcodeMask = 0x7f;

bool ReadAddress(Reader& r, Address* a) { return r.ReadBytes(a->bytes.data(), a->bytes.size()); }
void WriteAddress(Writer& w, const Address& a) { w.WriteBytes(a.bytes.data(), a.bytes.size()); }

void WriteZeros(Writer& w, size_t n) {
  for (size_t i = 0; i < n; ++i) w.WriteU8(0);
}

// The opcode-specific bodies are read from a span already known to hold them whole, so the
// Reader calls cannot fail; they stay checked all the same.
bool ReadMapBody(Reader& r, MapBody* m) {
  uint8_t reserved[3];
  return r.ReadBytes(m->nonce.data(), m->nonce.size()) && r.ReadU8(&m->protocol) &&
         r.ReadBytes(reserved, sizeof(reserved)) && r.ReadBe16(&m->internal_port) &&
         r.ReadBe16(&m->external_port) && ReadAddress(r, &m->external_address);
}

bool ReadPeerBody(Reader& r, PeerBody* p) {
  uint16_t reserved = 0;
  return ReadMapBody(r, p) && r.ReadBe16(&p->remote_port) && r.ReadBe16(&reserved) &&
         ReadAddress(r, &p->remote_address);
}

void WriteMapBody(Writer& w, const MapBody& m) {
  w.WriteBytes(m.nonce.data(), m.nonce.size());
  w.WriteU8(m.protocol);
  WriteZeros(w, 3);
  w.WriteBe16(m.internal_port);
  w.WriteBe16(m.external_port);
  WriteAddress(w, m.external_address);
}

void WritePeerBody(Writer& w, const PeerBody& p) {
  WriteMapBody(w, p);
  w.WriteBe16(p.remote_port);
  WriteZeros(w, 2);
  WriteAddress(w, p.remote_address);
}

// A VPM body whose AID length is out of range is refused (false, *error set).
bool ReadVpmBody(Reader& r, VpmBody* v, std::string* error) {
  uint8_t reserved = 0, aid_length = 0;
  uint16_t reserved16 = 0;
  uint8_t aid[kVpmMaxAid];
  if (!r.ReadBytes(v->nonce.data(), v->nonce.size()) || !r.ReadU8(&v->protocol) || !r.ReadU8(&reserved) ||
      !r.ReadU8(&aid_length) || !r.ReadU8(&reserved) || !r.ReadBe16(&v->virtual_port) ||
      !r.ReadBe16(&v->hidden_port) || !r.ReadBe16(&v->client_port) || !r.ReadBe16(&reserved16) ||
      !r.ReadBytes(aid, sizeof(aid))) {
    *error = "truncated VPM body";
    return false;
  }
  if (aid_length == 0 || aid_length > kVpmMaxAid) {
    *error = absl::StrCat("VPM AID length ", aid_length, ", want 1-", kVpmMaxAid);
    return false;
  }
  v->aid.assign(reinterpret_cast<const char*>(aid), aid_length);
  return true;
}

void WriteVpmBody(Writer& w, const VpmBody& v) {
  const size_t n = std::min(v.aid.size(), kVpmMaxAid);
  w.WriteBytes(v.nonce.data(), v.nonce.size());
  w.WriteU8(v.protocol);
  w.WriteU8(0);
  w.WriteU8(static_cast<uint8_t>(n));
  w.WriteU8(0);
  w.WriteBe16(v.virtual_port);
  w.WriteBe16(v.hidden_port);
  w.WriteBe16(v.client_port);
  w.WriteBe16(0);
  w.WriteBytes(reinterpret_cast<const uint8_t*>(v.aid.data()), n);
  WriteZeros(w, kVpmMaxAid - n);
}

bool KnownOpcode(uint8_t op) {
  return op <= static_cast<uint8_t>(Opcode::kPeer) || op == static_cast<uint8_t>(Opcode::kVpm);
}

bool Serves(Server server, uint8_t op) {
  if (server == Server::kVpm) return op == static_cast<uint8_t>(Opcode::kVpm);
  return op <= static_cast<uint8_t>(Opcode::kPeer);
}

void WriteOptionHeader(Writer& w, uint8_t code, uint16_t length) {
  w.WriteU8(code);
  w.WriteU8(0);
  w.WriteBe16(length);
}

// Option data of the three lengths used here are multiples of 4, so no padding is written.
void WriteFilterOption(Writer& w, const Filter& f) {
  WriteOptionHeader(w, kFilter, kFilterLength);
  w.WriteU8(0);
  w.WriteU8(f.prefix_length);
  w.WriteBe16(f.remote_port);
  WriteAddress(w, f.remote_address);
}

Filter ReadFilter(absl::Span<const uint8_t> data) {
  Reader r(data);
  Filter f;
  uint8_t reserved = 0;
  r.ReadU8(&reserved);
  r.ReadU8(&f.prefix_length);
  r.ReadBe16(&f.remote_port);
  ReadAddress(r, &f.remote_address);
  return f;
}

Address ReadAddressAt(absl::Span<const uint8_t> data) {
  Address a;
  Reader r(data);
  ReadAddress(r, &a);
  return a;
}

// One option TLV (§7.3, Figure 4) as found in a message.
struct RawOption {
  uint8_t code = 0;
  uint16_t length = 0;                // semantic length, without padding
  absl::Span<const uint8_t> data;     // `length` bytes
};

// Reads the next option. Returns false, with *error set, when the option header or its data
// (padded to 4 bytes) runs past the end.
bool NextOption(Reader& r, RawOption* out, std::string* error) {
  Reader probe = r;
  uint8_t reserved = 0;
  if (!probe.ReadU8(&out->code) || !probe.ReadU8(&reserved) || !probe.ReadBe16(&out->length)) {
    *error = absl::StrCat("truncated option header: ", r.remaining(), " bytes left");
    return false;
  }
  const size_t padded = (size_t{out->length} + 3) & ~size_t{3};
  if (probe.remaining() < padded) {
    *error = absl::StrCat("truncated option ", out->code, ": length ", out->length, ", ",
                          probe.remaining(), " bytes left");
    return false;
  }
  absl::Span<const uint8_t> rest = probe.ReadRest();
  out->data = rest.subspan(0, out->length);
  r = Reader(rest.subspan(padded));
  return true;
}

ParsedRequest Fail(ResultCode result, std::string message, bool silent = false) {
  ParsedRequest out;
  out.error = ParseError{result, std::move(message), silent};
  return out;
}

std::string WrongLength(uint8_t code, uint16_t length, uint16_t want) {
  return absl::StrCat("option ", code, " length ", length, ", want ", want);
}

bool OptionValidFor(uint8_t code, Opcode opcode) {
  switch (code) {
    case kThirdParty:
    case kDpmPortFixed:
      return opcode == Opcode::kMap || opcode == Opcode::kPeer;
    case kPreferFailure:
    case kFilter:
      return opcode == Opcode::kMap;
    default:
      return false;
  }
}

}  // namespace

const char* ResultName(ResultCode result) {
  switch (result) {
    case ResultCode::kSuccess: return "SUCCESS";
    case ResultCode::kUnsuppVersion: return "UNSUPP_VERSION";
    case ResultCode::kNotAuthorized: return "NOT_AUTHORIZED";
    case ResultCode::kMalformedRequest: return "MALFORMED_REQUEST";
    case ResultCode::kUnsuppOpcode: return "UNSUPP_OPCODE";
    case ResultCode::kUnsuppOption: return "UNSUPP_OPTION";
    case ResultCode::kMalformedOption: return "MALFORMED_OPTION";
    case ResultCode::kNetworkFailure: return "NETWORK_FAILURE";
    case ResultCode::kNoResources: return "NO_RESOURCES";
    case ResultCode::kUnsuppProtocol: return "UNSUPP_PROTOCOL";
    case ResultCode::kUserExQuota: return "USER_EX_QUOTA";
    case ResultCode::kCannotProvideExternal: return "CANNOT_PROVIDE_EXTERNAL";
    case ResultCode::kAddressMismatch: return "ADDRESS_MISMATCH";
    case ResultCode::kExcessiveRemotePeers: return "EXCESSIVE_REMOTE_PEERS";
  }
  return "UNKNOWN";
}

const char* OpcodeName(Opcode opcode) {
  switch (opcode) {
    case Opcode::kAnnounce: return "ANNOUNCE";
    case Opcode::kMap: return "MAP";
    case Opcode::kPeer: return "PEER";
    case Opcode::kVpm: return "VPM";
  }
  return "UNKNOWN";
}

const char* OptionName(uint8_t code) {
  switch (code) {
    case kThirdParty: return "THIRD_PARTY";
    case kPreferFailure: return "PREFER_FAILURE";
    case kFilter: return "FILTER";
    case kDpmPortFixed: return "DPM_PORT_FIXED";
    case kDpmSessionEndpoint: return "DPM_SESSION_ENDPOINT";
  }
  return "UNKNOWN";
}

// ---- Address ------------------------------------------------------------------------------

Address Address::FromIpv4(uint32_t host_order) {
  Address a;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<uint8_t>(host_order);
  return a;
}

bool Address::is_ipv4() const {
  for (size_t i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

uint32_t Address::ipv4() const {
  return (uint32_t{bytes[12]} << 24) | (uint32_t{bytes[13]} << 16) | (uint32_t{bytes[14]} << 8) |
         bytes[15];
}

bool Address::is_unspecified() const {
  if (bytes == Address{}.bytes) return true;
  return is_ipv4() && ipv4() == 0;
}

std::string Address::ToString() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (is_ipv4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

// ---- requests -----------------------------------------------------------------------------

ParsedRequest ParseRequest(absl::Span<const uint8_t> bytes, Server server) {
  // §8.3: fewer than two bytes, or the R bit set: dropped without a reply.
  if (bytes.size() >= 2 && (bytes[1] & kResponseBit) != 0) {
    return Fail(ResultCode::kMalformedRequest, "R bit set: a response, not a request", true);
  }
  if (bytes.size() >= 1 && bytes[0] != kVersion) {
    // Answered (version 2, §9) only when a whole response header fits in the request's size.
    return Fail(ResultCode::kUnsuppVersion,
                absl::StrCat("unsupported version ", bytes[0], ", want ", kVersion),
                bytes.size() < kCommonHeaderSize);
  }
  if (bytes.size() < kCommonHeaderSize) {
    return Fail(ResultCode::kMalformedRequest,
                absl::StrCat("truncated common header: ", bytes.size(), " bytes, want ",
                             kCommonHeaderSize),
                true);
  }
  if (bytes.size() > kMaxMessage) {
    return Fail(ResultCode::kMalformedRequest,
                absl::StrCat("length ", bytes.size(), " exceeds ", kMaxMessage));
  }
  if (bytes.size() % 4 != 0) {
    return Fail(ResultCode::kMalformedRequest,
                absl::StrCat("length ", bytes.size(), " is not a multiple of 4"));
  }

  Reader r(bytes);
  uint8_t version = 0, op = 0;
  uint16_t reserved = 0;
  Request request;
  r.ReadU8(&version);
  r.ReadU8(&op);
  r.ReadBe16(&reserved);
  r.ReadBe32(&request.lifetime);
  ReadAddress(r, &request.client_address);

  op &= kOpcodeMask;
  if (!Serves(server, op)) {
    return Fail(ResultCode::kUnsuppOpcode, absl::StrCat("unsupported opcode ", op));
  }
  request.opcode = static_cast<Opcode>(op);
  switch (request.opcode) {
    case Opcode::kAnnounce:
      break;
    case Opcode::kMap:
      if (r.remaining() < kMapBodySize) {
        return Fail(ResultCode::kMalformedRequest,
                    absl::StrCat("truncated MAP body: ", r.remaining(), " bytes, want ", kMapBodySize));
      }
      request.map.emplace();
      ReadMapBody(r, &*request.map);
      break;
    case Opcode::kPeer:
      if (r.remaining() < kPeerBodySize) {
        return Fail(ResultCode::kMalformedRequest,
                    absl::StrCat("truncated PEER body: ", r.remaining(), " bytes, want ", kPeerBodySize));
      }
      request.peer.emplace();
      ReadPeerBody(r, &*request.peer);
      break;
    case Opcode::kVpm: {
      if (r.remaining() < kVpmBodySize) {
        return Fail(ResultCode::kMalformedRequest,
                    absl::StrCat("truncated VPM body: ", r.remaining(), " bytes, want ", kVpmBodySize));
      }
      std::string error;
      request.vpm.emplace();
      if (!ReadVpmBody(r, &*request.vpm, &error)) return Fail(ResultCode::kMalformedRequest, std::move(error));
      break;
    }
  }

  while (r.remaining() > 0) {
    RawOption option;
    std::string error;
    if (!NextOption(r, &option, &error)) return Fail(ResultCode::kMalformedOption, std::move(error));
    const uint8_t code = option.code;
    const bool known = code == kThirdParty || code == kPreferFailure || code == kFilter ||
                       code == kDpmPortFixed;
    if (!known) {
      if (IsMandatoryOption(code)) {
        return Fail(ResultCode::kUnsuppOption, absl::StrCat("unsupported mandatory option ", code));
      }
      continue;  // §7.3: an unknown optional-to-process option is ignored
    }
    if (!OptionValidFor(code, request.opcode)) {
      return Fail(ResultCode::kMalformedOption,
                  absl::StrCat("option ", code, " (", OptionName(code), ") not valid with ",
                               OpcodeName(request.opcode)));
    }
    const std::string repeated = absl::StrCat("option ", code, " (", OptionName(code), ") repeated");
    switch (code) {
      case kThirdParty:
        if (option.length != kThirdPartyLength) {
          return Fail(ResultCode::kMalformedOption, WrongLength(code, option.length, kThirdPartyLength));
        }
        if (request.third_party) return Fail(ResultCode::kMalformedOption, repeated);
        request.third_party = ReadAddressAt(option.data);
        break;
      case kPreferFailure:
        if (option.length != 0) {
          return Fail(ResultCode::kMalformedOption, WrongLength(code, option.length, 0));
        }
        if (request.prefer_failure) return Fail(ResultCode::kMalformedOption, repeated);
        request.prefer_failure = true;
        break;
      case kFilter:
        if (option.length != kFilterLength) {
          return Fail(ResultCode::kMalformedOption, WrongLength(code, option.length, kFilterLength));
        }
        request.filters.push_back(ReadFilter(option.data));
        break;
      case kDpmPortFixed:
        if (option.length != 0) {
          return Fail(ResultCode::kMalformedOption, WrongLength(code, option.length, 0));
        }
        if (request.dpm_port_fixed) return Fail(ResultCode::kMalformedOption, repeated);
        request.dpm_port_fixed = true;
        break;
    }
  }
  ParsedRequest out;
  out.request = std::move(request);
  return out;
}

std::vector<uint8_t> EncodeRequest(const Request& request) {
  std::vector<uint8_t> out;
  out.reserve(kCommonHeaderSize + kVpmBodySize + kOptionHeaderSize + kThirdPartyLength +
              kOptionHeaderSize);
  Writer w(&out);
  w.WriteU8(kVersion);
  w.WriteU8(static_cast<uint8_t>(request.opcode) & kOpcodeMask);
  w.WriteBe16(0);
  w.WriteBe32(request.lifetime);
  WriteAddress(w, request.client_address);
  switch (request.opcode) {
    case Opcode::kAnnounce:
      break;
    case Opcode::kMap:
      WriteMapBody(w, request.map.value_or(MapBody{}));
      break;
    case Opcode::kPeer:
      WritePeerBody(w, request.peer.value_or(PeerBody{}));
      break;
    case Opcode::kVpm:
      WriteVpmBody(w, request.vpm.value_or(VpmBody{}));
      break;
  }
  if (request.third_party) {
    WriteOptionHeader(w, kThirdParty, kThirdPartyLength);
    WriteAddress(w, *request.third_party);
  }
  if (request.prefer_failure) WriteOptionHeader(w, kPreferFailure, 0);
  for (const Filter& f : request.filters) WriteFilterOption(w, f);
  if (request.dpm_port_fixed) WriteOptionHeader(w, kDpmPortFixed, 0);
  return out;
}

std::vector<uint8_t> EncodeErrorResponse(absl::Span<const uint8_t> request, ResultCode result,
                                         uint32_t lifetime, uint32_t epoch) {
  // §8.3: too short to carry a reply no larger than itself, or not a request at all.
  if (request.size() < kCommonHeaderSize || (request[1] & kResponseBit) != 0) return {};
  // A version we do not speak has a layout we do not know: the header alone (§9); otherwise
  // the whole request is copied (§7.3), cut to what a client accepts (§8.3: at most 1100
  // bytes, a multiple of 4).
  const size_t size = request[0] != kVersion
                          ? kCommonHeaderSize
                          : std::min(request.size(), kMaxMessage) & ~size_t{3};
  std::vector<uint8_t> out(request.begin(), request.begin() + static_cast<ptrdiff_t>(size));
  std::vector<uint8_t> header;
  Writer w(&header);
  w.WriteU8(kVersion);
  w.WriteU8(kResponseBit | (request[1] & kOpcodeMask));
  w.WriteU8(0);
  w.WriteU8(static_cast<uint8_t>(result));
  w.WriteBe32(lifetime);
  w.WriteBe32(epoch);
  WriteZeros(w, 12);
  std::copy(header.begin(), header.end(), out.begin());
  return out;
}

// ---- responses ----------------------------------------------------------------------------

absl::StatusOr<Response> ParseResponse(absl::Span<const uint8_t> bytes) {
  auto invalid = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (bytes.size() < kCommonHeaderSize) {
    return invalid("truncated common header: ", bytes.size(), " bytes, want ", kCommonHeaderSize);
  }
  if ((bytes[1] & kResponseBit) == 0) return invalid("R bit clear: a request, not a response");
  if (bytes[0] != kVersion) return invalid("unsupported version ", bytes[0], ", want ", kVersion);
  if (bytes.size() > kMaxMessage) return invalid("length ", bytes.size(), " exceeds ", kMaxMessage);
  if (bytes.size() % 4 != 0) return invalid("length ", bytes.size(), " is not a multiple of 4");

  Reader r(bytes);
  Response response;
  uint8_t version = 0, op = 0, reserved = 0, result = 0;
  r.ReadU8(&version);
  r.ReadU8(&op);
  r.ReadU8(&reserved);
  r.ReadU8(&result);
  r.ReadBe32(&response.lifetime);
  r.ReadBe32(&response.epoch);
  uint8_t reserved12[12];
  r.ReadBytes(reserved12, sizeof(reserved12));
  op &= kOpcodeMask;
  response.opcode = static_cast<Opcode>(op);
  response.result = static_cast<ResultCode>(result);
  const bool success = response.result == ResultCode::kSuccess;
  // An error response (UNSUPP_OPCODE above all) may name an opcode we do not know; it is
  // kept as is, without a body.
  if (!KnownOpcode(op)) {
    if (success) return invalid("unsupported opcode ", op);
    return response;
  }

  switch (response.opcode) {
    case Opcode::kAnnounce:
      break;
    case Opcode::kMap:
      if (r.remaining() >= kMapBodySize) {
        response.map.emplace();
        ReadMapBody(r, &*response.map);
      } else if (success) {
        return invalid("truncated MAP body: ", r.remaining(), " bytes, want ", kMapBodySize);
      }
      break;
    case Opcode::kPeer:
      if (r.remaining() >= kPeerBodySize) {
        response.peer.emplace();
        ReadPeerBody(r, &*response.peer);
      } else if (success) {
        return invalid("truncated PEER body: ", r.remaining(), " bytes, want ", kPeerBodySize);
      }
      break;
    case Opcode::kVpm:
      if (r.remaining() >= kVpmBodySize) {
        std::string error;
        response.vpm.emplace();
        if (!ReadVpmBody(r, &*response.vpm, &error)) {
          if (success) return absl::InvalidArgumentError(error);
          response.vpm.reset();  // an error response's copy of a request that was refused for it
        }
      } else if (success) {
        return invalid("truncated VPM body: ", r.remaining(), " bytes, want ", kVpmBodySize);
      }
      break;
  }
  // An error response carries a copy of the request's options, possibly the very option that
  // was refused: they are not read.
  if (!success) return response;

  while (r.remaining() > 0) {
    RawOption option;
    std::string error;
    if (!NextOption(r, &option, &error)) return absl::InvalidArgumentError(error);
    const uint8_t code = option.code;
    const std::string repeated = absl::StrCat("option ", code, " (", OptionName(code), ") repeated");
    switch (code) {
      case kThirdParty:
        if (option.length != kThirdPartyLength) {
          return absl::InvalidArgumentError(WrongLength(code, option.length, kThirdPartyLength));
        }
        if (response.third_party) return absl::InvalidArgumentError(repeated);
        response.third_party = ReadAddressAt(option.data);
        break;
      case kPreferFailure:
        if (option.length != 0) return absl::InvalidArgumentError(WrongLength(code, option.length, 0));
        if (response.prefer_failure) return absl::InvalidArgumentError(repeated);
        response.prefer_failure = true;
        break;
      case kFilter:
        if (option.length != kFilterLength) {
          return absl::InvalidArgumentError(WrongLength(code, option.length, kFilterLength));
        }
        response.filters.push_back(ReadFilter(option.data));
        break;
      case kDpmSessionEndpoint: {
        if (option.length != kDpmSessionEndpointLength) {
          return absl::InvalidArgumentError(
              WrongLength(code, option.length, kDpmSessionEndpointLength));
        }
        if (response.dpm_session_endpoint) return absl::InvalidArgumentError(repeated);
        Reader data(option.data);
        Address address;
        uint16_t port = 0;
        ReadAddress(data, &address);
        data.ReadBe16(&port);
        response.dpm_session_endpoint.emplace(address, port);
        break;
      }
      default:
        break;  // §7.3: clients ignore options they do not understand, mandatory or not
    }
  }
  return response;
}

std::vector<uint8_t> EncodeResponse(const Response& response) {
  std::vector<uint8_t> out;
  out.reserve(kCommonHeaderSize + kVpmBodySize + kOptionHeaderSize + kDpmSessionEndpointLength);
  Writer w(&out);
  w.WriteU8(kVersion);
  w.WriteU8(kResponseBit | (static_cast<uint8_t>(response.opcode) & kOpcodeMask));
  w.WriteU8(0);
  w.WriteU8(static_cast<uint8_t>(response.result));
  w.WriteBe32(response.lifetime);
  w.WriteBe32(response.epoch);
  WriteZeros(w, 12);
  if (response.opcode == Opcode::kMap && response.map) WriteMapBody(w, *response.map);
  if (response.opcode == Opcode::kPeer && response.peer) WritePeerBody(w, *response.peer);
  if (response.opcode == Opcode::kVpm && response.vpm) WriteVpmBody(w, *response.vpm);
  if (response.third_party) {
    WriteOptionHeader(w, kThirdParty, kThirdPartyLength);
    WriteAddress(w, *response.third_party);
  }
  if (response.prefer_failure) WriteOptionHeader(w, kPreferFailure, 0);
  for (const Filter& f : response.filters) WriteFilterOption(w, f);
  if (response.dpm_session_endpoint) {
    WriteOptionHeader(w, kDpmSessionEndpoint, kDpmSessionEndpointLength);
    WriteAddress(w, response.dpm_session_endpoint->first);
    w.WriteBe16(response.dpm_session_endpoint->second);
    w.WriteBe16(0);
  }
  return out;
}

}  // namespace dpm::pcp
