#include "dpm/natpmp.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/cursor.h"

namespace dpm::natpmp {
namespace {

using wire::Reader;
using wire::Writer;

ParsedRequest Refuse(ResultCode result, std::string message) {
  ParsedRequest out;
  out.result = result;
  out.message = std::move(message);
  return out;
}

ParsedRequest Drop(std::string message) {
  ParsedRequest out;
  out.drop = true;
  out.message = std::move(message);
  return out;
}

void WriteHeader(Writer& w, uint8_t opcode, ResultCode result, uint32_t epoch_seconds) {
  w.WriteU8(kVersion);
  w.WriteU8(kResponseBit | opcode);
  w.WriteBe16(static_cast<uint16_t>(result));
  w.WriteBe32(epoch_seconds);
}

}  // namespace

const char* ResultName(ResultCode result) {
  switch (result) {
    case ResultCode::kSuccess: return "SUCCESS";
    case ResultCode::kUnsuppVersion: return "UNSUPP_VERSION";
    case ResultCode::kNotAuthorized: return "NOT_AUTHORIZED";
    case ResultCode::kNetworkFailure: return "NETWORK_FAILURE";
    case ResultCode::kOutOfResources: return "OUT_OF_RESOURCES";
    case ResultCode::kUnsuppOpcode: return "UNSUPP_OPCODE";
  }
  return "UNKNOWN";
}

bool IsNatPmp(absl::Span<const uint8_t> bytes) { return !bytes.empty() && bytes[0] == kVersion; }

ParsedRequest ParseRequest(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  uint8_t version = 0, opcode = 0;
  if (!r.ReadU8(&version) || !r.ReadU8(&opcode)) {
    return Drop(absl::StrCat("truncated header: ", bytes.size(), " bytes, want 2"));
  }
  if (version != kVersion) {
    return Refuse(ResultCode::kUnsuppVersion,
                  absl::StrCat("unsupported version ", version, ", want ", kVersion));
  }
  if ((opcode & kResponseBit) != 0) return Drop(absl::StrCat("opcode ", opcode, " is a response"));
  Request request;
  request.opcode = opcode;
  switch (opcode) {
    case kOpPublicAddress:
      break;
    case kOpMapUdp:
    case kOpMapTcp: {
      uint16_t reserved = 0;
      if (!r.ReadBe16(&reserved) || !r.ReadBe16(&request.internal_port) ||
          !r.ReadBe16(&request.suggested_external_port) || !r.ReadBe32(&request.lifetime)) {
        return Drop(absl::StrCat("truncated map request: ", bytes.size(), " bytes, want ",
                                 kMapRequestSize));
      }
      break;
    }
    default:
      return Refuse(ResultCode::kUnsuppOpcode, absl::StrCat("unsupported opcode ", opcode));
  }
  ParsedRequest out;
  out.request = request;
  return out;
}

std::vector<uint8_t> EncodeRequest(const Request& request) {
  std::vector<uint8_t> out;
  Writer w(&out);
  w.WriteU8(kVersion);
  w.WriteU8(request.opcode);
  if (request.opcode == kOpMapUdp || request.opcode == kOpMapTcp) {
    w.WriteBe16(0);
    w.WriteBe16(request.internal_port);
    w.WriteBe16(request.suggested_external_port);
    w.WriteBe32(request.lifetime);
  }
  return out;
}

std::vector<uint8_t> EncodePublicAddressResponse(ResultCode result, uint32_t epoch_seconds,
                                                 uint32_t address_host) {
  std::vector<uint8_t> out;
  out.reserve(kPublicAddressResponseSize);
  Writer w(&out);
  WriteHeader(w, kOpPublicAddress, result, epoch_seconds);
  w.WriteBe32(address_host);
  return out;
}

std::vector<uint8_t> EncodeMapResponse(uint8_t opcode, ResultCode result, uint32_t epoch_seconds,
                                       uint16_t internal_port, uint16_t external_port,
                                       uint32_t lifetime) {
  std::vector<uint8_t> out;
  out.reserve(kMapResponseSize);
  Writer w(&out);
  WriteHeader(w, static_cast<uint8_t>(opcode & ~kResponseBit), result, epoch_seconds);
  w.WriteBe16(internal_port);
  w.WriteBe16(external_port);
  w.WriteBe32(lifetime);
  return out;
}

std::vector<uint8_t> EncodeErrorResponse(absl::Span<const uint8_t> request, ResultCode result,
                                         uint32_t epoch_seconds) {
  if (request.size() < 2) return {};
  if (result == ResultCode::kUnsuppVersion) {
    std::vector<uint8_t> out;
    Writer w(&out);
    WriteHeader(w, kOpPublicAddress, result, epoch_seconds);
    return out;
  }
  if (result == ResultCode::kUnsuppOpcode && (request[1] & kResponseBit) == 0) {
    // §3.5: "the entire request MUST be returned to the sender, with the top bit of the opcode
    // set ... and the result code set to 5". A request of 2 or 3 bytes has no room for the
    // result code, so the echo is padded to 4.
    std::vector<uint8_t> out(request.begin(),
                             request.begin() + static_cast<ptrdiff_t>(std::min(request.size(), kMaxEcho)));
    if (out.size() < 4) out.resize(4);
    out[1] |= kResponseBit;
    out[2] = static_cast<uint8_t>(static_cast<uint16_t>(result) >> 8);
    out[3] = static_cast<uint8_t>(static_cast<uint16_t>(result));
    return out;
  }
  return {};
}

absl::StatusOr<Response> ParseResponse(absl::Span<const uint8_t> bytes) {
  auto invalid = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  Reader r(bytes);
  uint8_t version = 0, opcode = 0;
  uint16_t result = 0;
  if (!r.ReadU8(&version) || !r.ReadU8(&opcode) || !r.ReadBe16(&result)) {
    return invalid("truncated header: ", bytes.size(), " bytes, want 4");
  }
  if (version != kVersion) return invalid("unsupported version ", version, ", want ", kVersion);
  if ((opcode & kResponseBit) == 0) return invalid("opcode ", opcode, " is a request");
  Response response;
  response.opcode = static_cast<uint8_t>(opcode & ~kResponseBit);
  response.result = static_cast<ResultCode>(result);
  const bool success = response.result == ResultCode::kSuccess;
  switch (response.opcode) {
    case kOpPublicAddress:
    case kOpMapUdp:
    case kOpMapTcp:
      break;
    default:
      if (success) return invalid("unsupported opcode ", opcode);
      return response;  // an echoed request (UNSUPP_OPCODE): nothing more to read
  }
  const size_t want =
      response.opcode == kOpPublicAddress ? kPublicAddressResponseSize : kMapResponseSize;
  if (!r.ReadBe32(&response.epoch)) {
    if (success) return invalid("truncated response: ", bytes.size(), " bytes, want ", want);
    return response;
  }
  if (bytes.size() < want) {
    if (success) return invalid("truncated response: ", bytes.size(), " bytes, want ", want);
    return response;
  }
  if (response.opcode == kOpPublicAddress) {
    r.ReadBe32(&response.external_address);
  } else {
    r.ReadBe16(&response.internal_port);
    r.ReadBe16(&response.external_port);
    r.ReadBe32(&response.lifetime);
  }
  return response;
}

}  // namespace dpm::natpmp
