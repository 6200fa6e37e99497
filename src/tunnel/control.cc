#include "tunnel/control.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/cursor.h"

namespace dpm::tunnel {
namespace {

constexpr uint8_t kMagic[4] = {'D', 'P', 'M', 'T'};
constexpr size_t kMaxString = 0xffff;

absl::Status Truncated(absl::string_view field) {
  return absl::InvalidArgumentError(absl::StrCat("truncated ", field));
}

// u16 length and that many bytes.
absl::Status ReadString(wire::Reader& in, absl::string_view field, std::string* out) {
  uint16_t length;
  if (!in.ReadBe16(&length) || in.remaining() < length) return Truncated(field);
  out->resize(length);
  in.ReadBytes(out->data(), length);
  return absl::OkStatus();
}

void WriteString(wire::Writer& out, absl::string_view text) {
  const size_t length = std::min(text.size(), kMaxString);
  out.WriteBe16(static_cast<uint16_t>(length));
  out.WriteBytes(text.data(), length);
}

absl::StatusOr<Hello> ParseHello(wire::Reader& in) {
  Hello hello;
  uint8_t role;
  if (!in.ReadU8(&role)) return Truncated("role");
  if (role != static_cast<uint8_t>(Role::kProxy) && role != static_cast<uint8_t>(Role::kRedirector)) {
    return absl::InvalidArgumentError(absl::StrCat("bad role ", role));
  }
  hello.role = static_cast<Role>(role);
  if (absl::Status s = ReadString(in, "name", &hello.name); !s.ok()) return s;
  if (absl::Status s = ReadString(in, "token", &hello.token); !s.ok()) return s;
  if (hello.token.size() > kMaxTokenSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("token of ", hello.token.size(), " bytes, at most ", kMaxTokenSize));
  }
  uint16_t count;
  if (!in.ReadBe16(&count)) return Truncated("service count");
  if (count > kMaxHelloServices) {
    return absl::InvalidArgumentError(absl::StrCat(count, " services, at most ", kMaxHelloServices));
  }
  hello.services.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (absl::Status s = ReadString(in, absl::StrCat("service ", i), &hello.services[i]); !s.ok()) return s;
  }
  return hello;
}

absl::StatusOr<Welcome> ParseWelcome(wire::Reader& in) {
  Welcome welcome;
  if (!in.ReadBe32(&welcome.keepalive_seconds)) return Truncated("keepalive");
  uint16_t count;
  if (!in.ReadBe16(&count)) return Truncated("service count");
  for (size_t i = 0; i < count; ++i) {
    ServiceEntry entry;
    if (absl::Status s = ReadString(in, absl::StrCat("service ", i), &entry.service); !s.ok()) return s;
    uint8_t status;
    if (!in.ReadU8(&status)) return Truncated(absl::StrCat("status of service ", i));
    if (status > static_cast<uint8_t>(PublishStatus::kDuplicate)) {
      return absl::InvalidArgumentError(absl::StrCat("bad status ", status, " of service ", i));
    }
    entry.status = static_cast<PublishStatus>(status);
    if (absl::Status s = ReadString(in, absl::StrCat("pseudo name of service ", i), &entry.pseudo_name); !s.ok()) {
      return s;
    }
    if (!in.ReadBytes(entry.key.data(), entry.key.size())) return Truncated(absl::StrCat("key of service ", i));
    welcome.services.push_back(std::move(entry));
  }
  return welcome;
}

absl::StatusOr<Refused> ParseRefused(wire::Reader& in) {
  Refused refused;
  uint8_t reason;
  if (!in.ReadU8(&reason)) return Truncated("reason");
  if (reason < static_cast<uint8_t>(RefuseReason::kAuthentication) ||
      reason > static_cast<uint8_t>(RefuseReason::kMalformed)) {
    return absl::InvalidArgumentError(absl::StrCat("bad refuse reason ", reason));
  }
  refused.reason = static_cast<RefuseReason>(reason);
  if (absl::Status s = ReadString(in, "message", &refused.message); !s.ok()) return s;
  return refused;
}

void EncodeBody(const Hello& hello, wire::Writer& out) {
  out.WriteU8(static_cast<uint8_t>(hello.role));
  WriteString(out, hello.name);
  WriteString(out, hello.token);
  const size_t count = std::min(hello.services.size(), kMaxString);
  out.WriteBe16(static_cast<uint16_t>(count));
  for (size_t i = 0; i < count; ++i) WriteString(out, hello.services[i]);
}

void EncodeBody(const Welcome& welcome, wire::Writer& out) {
  out.WriteBe32(welcome.keepalive_seconds);
  const size_t count = std::min(welcome.services.size(), kMaxString);
  out.WriteBe16(static_cast<uint16_t>(count));
  for (size_t i = 0; i < count; ++i) {
    const ServiceEntry& entry = welcome.services[i];
    WriteString(out, entry.service);
    out.WriteU8(static_cast<uint8_t>(entry.status));
    WriteString(out, entry.pseudo_name);
    out.WriteBytes(entry.key.data(), entry.key.size());
  }
}

void EncodeBody(const Refused& refused, wire::Writer& out) {
  out.WriteU8(static_cast<uint8_t>(refused.reason));
  WriteString(out, refused.message);
}

ControlType TypeOf(const Hello&) { return ControlType::kHello; }
ControlType TypeOf(const Welcome&) { return ControlType::kWelcome; }
ControlType TypeOf(const Refused&) { return ControlType::kRefused; }

}  // namespace

absl::StatusOr<size_t> ControlMessageSize(absl::Span<const uint8_t> header) {
  wire::Reader in(header);
  uint8_t magic[4], version, type;
  uint16_t zero;
  uint32_t body;
  if (!in.ReadBytes(magic, sizeof magic)) return Truncated("header");
  if (std::memcmp(magic, kMagic, sizeof magic) != 0) return absl::InvalidArgumentError("bad magic");
  if (!in.ReadU8(&version) || !in.ReadU8(&type) || !in.ReadBe16(&zero) || !in.ReadBe32(&body)) {
    return Truncated("header");
  }
  if (version != kProtocolVersion) return absl::InvalidArgumentError(absl::StrCat("bad version ", version));
  if (type < static_cast<uint8_t>(ControlType::kHello) || type > static_cast<uint8_t>(ControlType::kRefused)) {
    return absl::InvalidArgumentError(absl::StrCat("bad type ", type));
  }
  if (zero != 0) return absl::InvalidArgumentError(absl::StrCat("reserved field ", zero, ", not zero"));
  if (body > kMaxControlBody) {
    return absl::InvalidArgumentError(absl::StrCat("body of ", body, " bytes, at most ", kMaxControlBody));
  }
  return kControlHeaderSize + body;
}

absl::StatusOr<ControlMessage> ParseControl(absl::Span<const uint8_t> message) {
  absl::StatusOr<size_t> size = ControlMessageSize(message);
  if (!size.ok()) return size.status();
  if (message.size() < *size) return Truncated("body");
  if (message.size() > *size) {
    return absl::InvalidArgumentError(absl::StrCat(message.size() - *size, " bytes after the message"));
  }
  const auto type = static_cast<ControlType>(message[5]);
  wire::Reader in(message.subspan(kControlHeaderSize));
  absl::StatusOr<ControlMessage> parsed;
  switch (type) {
    case ControlType::kHello: parsed = ParseHello(in); break;
    case ControlType::kWelcome: parsed = ParseWelcome(in); break;
    case ControlType::kRefused: parsed = ParseRefused(in); break;
  }
  if (parsed.ok() && in.remaining() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(in.remaining(), " bytes after the body's last field"));
  }
  return parsed;
}

std::vector<uint8_t> EncodeControl(const ControlMessage& message) {
  std::vector<uint8_t> bytes;
  wire::Writer out(&bytes);
  out.WriteBytes(kMagic, sizeof kMagic);
  out.WriteU8(kProtocolVersion);
  std::visit([&](const auto& m) { out.WriteU8(static_cast<uint8_t>(TypeOf(m))); }, message);
  out.WriteBe16(0);
  out.WriteBe32(0);  // body length, set below
  std::visit([&](const auto& m) { EncodeBody(m, out); }, message);
  const auto body = static_cast<uint32_t>(bytes.size() - kControlHeaderSize);
  for (int i = 0; i < 4; ++i) bytes[8 + i] = static_cast<uint8_t>(body >> (24 - 8 * i));
  return bytes;
}

std::string KeyToHex(const ServiceKey& key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * key.size());
  for (uint8_t b : key) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 0xf]);
  }
  return hex;
}

bool KeyFromHex(absl::string_view hex, ServiceKey* key) {
  if (hex.size() != 2 * kServiceKeySize) return false;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  ServiceKey parsed;
  for (size_t i = 0; i < kServiceKeySize; ++i) {
    const int high = nibble(hex[2 * i]), low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    parsed[i] = static_cast<uint8_t>(high << 4 | low);
  }
  *key = parsed;
  return true;
}

}  // namespace dpm::tunnel
