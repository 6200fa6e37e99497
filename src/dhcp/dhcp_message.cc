#include "dhcp/dhcp_message.h"

#include <cstring>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "wire/cursor.h"

namespace dpm::dhcp {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(absl::StrCat("dhcp: ", what)); }

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Option values by code, each the concatenation of its instances (RFC 3396 §7), in order of
// first appearance. A message carries a handful of options, so a linear search is enough.
class RawOptions {
 public:
  const std::vector<uint8_t>* Find(uint8_t code) const {
    for (const auto& [c, value] : items_) {
      if (c == code) return &value;
    }
    return nullptr;
  }
  void Append(uint8_t code, absl::Span<const uint8_t> value) {
    for (auto& [c, v] : items_) {
      if (c == code) {
        v.insert(v.end(), value.begin(), value.end());
        return;
      }
    }
    items_.emplace_back(code, std::vector<uint8_t>(value.begin(), value.end()));
  }

 private:
  std::vector<std::pair<uint8_t, std::vector<uint8_t>>> items_;
};

// Reads one options area (the options field, or an overloaded 'file' or 'sname' field).
// `require_end`: the area must contain an end option (the options field must).
absl::Status WalkOptions(absl::Span<const uint8_t> area, absl::string_view where, bool require_end,
                         RawOptions* out) {
  wire::Reader r(area);
  while (true) {
    uint8_t code;
    if (!r.ReadU8(&code)) {
      return require_end ? Invalid(absl::StrCat(where, ": no end option")) : absl::OkStatus();
    }
    if (code == option::kPad) continue;
    if (code == option::kEnd) return absl::OkStatus();
    uint8_t length;
    if (!r.ReadU8(&length)) return Invalid(absl::StrCat(where, ": truncated at option ", int{code}, " length"));
    if (r.remaining() < length) {
      return Invalid(absl::StrCat(where, ": option ", int{code}, " length ", int{length}, " runs past the end (",
                                  r.remaining(), " bytes left)"));
    }
    std::vector<uint8_t> value(length);
    r.ReadBytes(value.data(), length);
    out->Append(code, value);
  }
}

absl::Status LengthError(uint8_t code, size_t length, absl::string_view want) {
  return Invalid(absl::StrCat("options: option ", int{code}, " length ", length, ", want ", want));
}

// A fixed-size option: exactly `size` bytes.
absl::Status GetFixed(const RawOptions& raw, uint8_t code, size_t size, const std::vector<uint8_t>** out) {
  *out = raw.Find(code);
  if (*out != nullptr && (*out)->size() != size) return LengthError(code, (*out)->size(), absl::StrCat(size));
  return absl::OkStatus();
}

absl::Status GetU32(const RawOptions& raw, uint8_t code, std::optional<uint32_t>* out) {
  const std::vector<uint8_t>* v;
  if (absl::Status s = GetFixed(raw, code, 4, &v); !s.ok()) return s;
  if (v != nullptr) *out = Be32(v->data());
  return absl::OkStatus();
}

// A list of IPv4 addresses: a positive multiple of 4 bytes (RFC 2132 §3.5, §3.8).
absl::Status GetAddressList(const RawOptions& raw, uint8_t code, std::vector<uint32_t>* out) {
  const std::vector<uint8_t>* v = raw.Find(code);
  if (v == nullptr) return absl::OkStatus();
  if (v->empty() || v->size() % 4 != 0) return LengthError(code, v->size(), "a positive multiple of 4");
  for (size_t i = 0; i < v->size(); i += 4) out->push_back(Be32(v->data() + i));
  return absl::OkStatus();
}

// A variable-length option of at least `min` bytes.
absl::Status GetBytes(const RawOptions& raw, uint8_t code, size_t min, const std::vector<uint8_t>** out) {
  *out = raw.Find(code);
  if (*out != nullptr && (*out)->size() < min) return LengthError(code, (*out)->size(), absl::StrCat("at least ", min));
  return absl::OkStatus();
}

// The option overload value (1, 2 or 3), or 0 when absent.
absl::StatusOr<uint8_t> GetOverload(const RawOptions& raw) {
  const std::vector<uint8_t>* v;
  if (absl::Status s = GetFixed(raw, option::kOptionOverload, 1, &v); !s.ok()) return s;
  if (v == nullptr) return uint8_t{0};
  uint8_t value = (*v)[0];
  if (value < 1 || value > 3) {
    return Invalid(absl::StrCat("options: option 52 value ", int{value}, ", want 1, 2 or 3"));
  }
  return value;
}

absl::Status DecodeOptions(const RawOptions& raw, DhcpMessage* m) {
  const std::vector<uint8_t>* v;
  if (absl::Status s = GetFixed(raw, option::kMessageType, 1, &v); !s.ok()) return s;
  if (v != nullptr) m->message_type = static_cast<MessageType>((*v)[0]);
  if (absl::Status s = GetU32(raw, option::kSubnetMask, &m->subnet_mask); !s.ok()) return s;
  if (absl::Status s = GetAddressList(raw, option::kRouter, &m->routers); !s.ok()) return s;
  if (absl::Status s = GetAddressList(raw, option::kDomainNameServer, &m->domain_name_servers); !s.ok()) return s;
  if (absl::Status s = GetU32(raw, option::kRequestedIpAddress, &m->requested_ip_address); !s.ok()) return s;
  if (absl::Status s = GetU32(raw, option::kIpAddressLeaseTime, &m->lease_time); !s.ok()) return s;
  if (absl::Status s = GetU32(raw, option::kServerIdentifier, &m->server_identifier); !s.ok()) return s;
  if (absl::Status s = GetBytes(raw, option::kParameterRequestList, 1, &v); !s.ok()) return s;
  if (v != nullptr) m->parameter_request_list = *v;
  if (absl::Status s = GetBytes(raw, option::kMessage, 1, &v); !s.ok()) return s;
  if (v != nullptr) m->message.assign(v->begin(), v->end());
  if (absl::Status s = GetFixed(raw, option::kMaximumMessageSize, 2, &v); !s.ok()) return s;
  if (v != nullptr) m->maximum_message_size = static_cast<uint16_t>(((*v)[0] << 8) | (*v)[1]);
  if (absl::Status s = GetU32(raw, option::kRenewalTime, &m->renewal_time); !s.ok()) return s;
  if (absl::Status s = GetU32(raw, option::kRebindingTime, &m->rebinding_time); !s.ok()) return s;
  if (absl::Status s = GetBytes(raw, option::kClientIdentifier, 2, &v); !s.ok()) return s;
  if (v != nullptr) m->client_identifier = *v;
  return absl::OkStatus();
}

// Writes one option, split into instances of at most 255 bytes (RFC 3396 §5).
void WriteOption(wire::Writer& w, uint8_t code, absl::Span<const uint8_t> value) {
  do {
    size_t n = std::min<size_t>(value.size(), 255);
    w.WriteU8(code);
    w.WriteU8(static_cast<uint8_t>(n));
    w.WriteBytes(value.data(), n);
    value.remove_prefix(n);
  } while (!value.empty());
}

void WriteU32Option(wire::Writer& w, uint8_t code, const std::optional<uint32_t>& value) {
  if (!value) return;
  const uint8_t b[4] = {static_cast<uint8_t>(*value >> 24), static_cast<uint8_t>(*value >> 16),
                        static_cast<uint8_t>(*value >> 8), static_cast<uint8_t>(*value)};
  WriteOption(w, code, b);
}

void WriteAddressList(wire::Writer& w, uint8_t code, const std::vector<uint32_t>& addresses) {
  if (addresses.empty()) return;
  std::vector<uint8_t> bytes;
  wire::Writer list(&bytes);
  for (uint32_t a : addresses) list.WriteBe32(a);
  WriteOption(w, code, bytes);
}

}  // namespace

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kDiscover: return "DHCPDISCOVER";
    case MessageType::kOffer: return "DHCPOFFER";
    case MessageType::kRequest: return "DHCPREQUEST";
    case MessageType::kDecline: return "DHCPDECLINE";
    case MessageType::kAck: return "DHCPACK";
    case MessageType::kNak: return "DHCPNAK";
    case MessageType::kRelease: return "DHCPRELEASE";
    case MessageType::kInform: return "DHCPINFORM";
  }
  return "UNKNOWN";
}

absl::StatusOr<DhcpMessage> ParseDhcpMessage(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kFixedHeaderSize) {
    return Invalid(absl::StrCat("truncated at fixed header: ", bytes.size(), " of ", kFixedHeaderSize, " bytes"));
  }
  DhcpMessage m;
  wire::Reader r(bytes);
  // The fixed part is all there; these reads cannot fail.
  r.ReadU8(&m.op);
  r.ReadU8(&m.htype);
  r.ReadU8(&m.hlen);
  r.ReadU8(&m.hops);
  r.ReadBe32(&m.xid);
  r.ReadBe16(&m.secs);
  r.ReadBe16(&m.flags);
  r.ReadBe32(&m.ciaddr);
  r.ReadBe32(&m.yiaddr);
  r.ReadBe32(&m.siaddr);
  r.ReadBe32(&m.giaddr);
  r.ReadBytes(m.chaddr.data(), kChaddrSize);
  r.ReadBytes(m.sname.data(), kSnameSize);
  r.ReadBytes(m.file.data(), kFileSize);
  if (m.hlen > kChaddrSize) return Invalid(absl::StrCat("hlen ", int{m.hlen}, " is more than the 16-byte chaddr"));

  uint32_t cookie;
  if (!r.ReadBe32(&cookie)) {
    return Invalid(absl::StrCat("truncated at magic cookie: ", r.remaining(), " of 4 bytes"));
  }
  if (cookie != kMagicCookie) {
    return Invalid(absl::StrFormat("bad magic cookie 0x%08x, want 0x%08x (99.130.83.99)", cookie, kMagicCookie));
  }

  RawOptions raw;
  if (absl::Status s = WalkOptions(r.ReadRest(), "options", /*require_end=*/true, &raw); !s.ok()) return s;
  absl::StatusOr<uint8_t> overload = GetOverload(raw);
  if (!overload.ok()) return overload.status();
  // RFC 2131 §4.1: the options field first, then 'file', then 'sname'.
  if (*overload & 1) {
    if (absl::Status s = WalkOptions(m.file, "file (overloaded)", false, &raw); !s.ok()) return s;
    m.file.fill(0);
  }
  if (*overload & 2) {
    if (absl::Status s = WalkOptions(m.sname, "sname (overloaded)", false, &raw); !s.ok()) return s;
    m.sname.fill(0);
  }
  // Option 52 again: an instance inside 'file' or 'sname' makes its length wrong.
  if (absl::StatusOr<uint8_t> again = GetOverload(raw); !again.ok()) return again.status();
  if (absl::Status s = DecodeOptions(raw, &m); !s.ok()) return s;
  return m;
}

std::vector<uint8_t> SerializeDhcpMessage(const DhcpMessage& m) {
  std::vector<uint8_t> out;
  out.reserve(kMinBootpMessageSize);
  wire::Writer w(&out);
  w.WriteU8(m.op);
  w.WriteU8(m.htype);
  w.WriteU8(m.hlen);
  w.WriteU8(m.hops);
  w.WriteBe32(m.xid);
  w.WriteBe16(m.secs);
  w.WriteBe16(m.flags);
  w.WriteBe32(m.ciaddr);
  w.WriteBe32(m.yiaddr);
  w.WriteBe32(m.siaddr);
  w.WriteBe32(m.giaddr);
  w.WriteBytes(m.chaddr.data(), kChaddrSize);
  w.WriteBytes(m.sname.data(), kSnameSize);
  w.WriteBytes(m.file.data(), kFileSize);
  w.WriteBe32(kMagicCookie);

  if (m.message_type) {
    const uint8_t type = static_cast<uint8_t>(*m.message_type);
    WriteOption(w, option::kMessageType, absl::MakeConstSpan(&type, 1));
  }
  if (!m.client_identifier.empty()) WriteOption(w, option::kClientIdentifier, m.client_identifier);
  WriteU32Option(w, option::kRequestedIpAddress, m.requested_ip_address);
  WriteU32Option(w, option::kServerIdentifier, m.server_identifier);
  WriteU32Option(w, option::kIpAddressLeaseTime, m.lease_time);
  WriteU32Option(w, option::kRenewalTime, m.renewal_time);
  WriteU32Option(w, option::kRebindingTime, m.rebinding_time);
  WriteU32Option(w, option::kSubnetMask, m.subnet_mask);
  WriteAddressList(w, option::kRouter, m.routers);
  WriteAddressList(w, option::kDomainNameServer, m.domain_name_servers);
  if (!m.parameter_request_list.empty()) WriteOption(w, option::kParameterRequestList, m.parameter_request_list);
  if (m.maximum_message_size) {
    const uint8_t b[2] = {static_cast<uint8_t>(*m.maximum_message_size >> 8),
                          static_cast<uint8_t>(*m.maximum_message_size)};
    WriteOption(w, option::kMaximumMessageSize, b);
  }
  if (!m.message.empty()) {
    WriteOption(w, option::kMessage,
                absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(m.message.data()), m.message.size()));
  }
  w.WriteU8(option::kEnd);
  if (out.size() < kMinBootpMessageSize) out.resize(kMinBootpMessageSize, option::kPad);
  return out;
}

}  // namespace dpm::dhcp
