#include "api/protocol.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/cursor.h"

namespace dpm::api {
namespace {

using wire::Reader;
using wire::Writer;

absl::Status Missing(const char* field) {
  return absl::InvalidArgumentError(absl::StrCat("truncated ", field));
}

bool ReadEndpoint(Reader& r, Endpoint* e) {
  Reader probe = r;
  if (!probe.ReadHost(&e->family) || !probe.ReadBytes(&e->port_be, 2) ||
      !probe.ReadBytes(e->address, sizeof(e->address))) {
    return false;
  }
  r = probe;
  return true;
}

void WriteEndpoint(Writer& w, const Endpoint& e) {
  w.WriteHost(e.family);
  w.WriteBytes(&e.port_be, 2);
  w.WriteBytes(e.address, sizeof(e.address));
}

bool ReadRef(Reader& r, SocketRef* ref) {
  Reader probe = r;
  if (!probe.ReadHost(&ref->id) || !probe.ReadHost(&ref->cookie)) return false;
  r = probe;
  return true;
}

void WriteRef(Writer& w, const SocketRef& ref) {
  w.WriteHost(ref.id);
  w.WriteHost(ref.cookie);
}

absl::Status ValidateEndpoint(const Endpoint& e) {
  if (e.family != 0 && e.family != AF_INET && e.family != AF_INET6) {
    return absl::InvalidArgumentError(absl::StrCat("bad endpoint family ", e.family));
  }
  return absl::OkStatus();
}

absl::Status ReadHeader(Reader& r, uint16_t* opcode) {
  uint16_t version = 0;
  if (!r.ReadHost(&version) || !r.ReadHost(opcode)) return Missing("header");
  if (version != kVersion) return absl::InvalidArgumentError(absl::StrCat("bad version ", version));
  return absl::OkStatus();
}

absl::Status ExpectEnd(const Reader& r) {
  if (r.remaining() != 0) return absl::InvalidArgumentError("trailing bytes");
  return absl::OkStatus();
}

}  // namespace

int Endpoint::FromSockaddr(const sockaddr* sa, socklen_t len, Endpoint* out) {
  if (sa == nullptr) return EFAULT;
  if (len < static_cast<socklen_t>(sizeof(sa_family_t))) return EINVAL;
  *out = Endpoint{};
  if (sa->sa_family == AF_INET) {
    if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return EINVAL;
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof(in));
    out->family = AF_INET;
    out->port_be = in.sin_port;
    std::memcpy(out->address, &in.sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    if (len < static_cast<socklen_t>(sizeof(sockaddr_in6))) return EINVAL;
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof(in6));
    out->family = AF_INET6;
    out->port_be = in6.sin6_port;
    std::memcpy(out->address, &in6.sin6_addr, 16);
    return 0;
  }
  return EAFNOSUPPORT;
}

void Endpoint::ToSockaddr(sockaddr* sa, socklen_t* len) const {
  if (sa == nullptr || len == nullptr) return;
  sockaddr_storage ss{};
  socklen_t full = 0;
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port_be;
    std::memcpy(&in6->sin6_addr, address, 16);
    full = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = port_be;
    std::memcpy(&in->sin_addr, address, 4);
    full = sizeof(sockaddr_in);
  }
  std::memcpy(sa, &ss, std::min<socklen_t>(*len, full));
  *len = full;
}

uint32_t Endpoint::ipv4_host() const {
  uint32_t be;
  std::memcpy(&be, address, 4);
  return ntohl(be);
}

Endpoint Endpoint::Ipv4(uint32_t address_host, uint16_t port_host) {
  Endpoint e;
  e.family = AF_INET;
  e.port_be = htons(port_host);
  uint32_t be = htonl(address_host);
  std::memcpy(e.address, &be, 4);
  return e;
}

std::string Endpoint::ToString() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == AF_INET6) {
    inet_ntop(AF_INET6, address, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", port_host());
  }
  if (family == 0) return "*";
  inet_ntop(AF_INET, address, buf, sizeof(buf));
  return absl::StrCat(buf, ":", port_host());
}

bool operator==(const Endpoint& a, const Endpoint& b) {
  return a.family == b.family && a.port_be == b.port_be &&
         std::memcmp(a.address, b.address, sizeof(a.address)) == 0;
}

absl::StatusOr<Request> ParseRequest(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  uint16_t op = 0;
  if (absl::Status s = ReadHeader(r, &op); !s.ok()) return s;
  Request out;
  switch (static_cast<Opcode>(op)) {
    case Opcode::kSocket: {
      SocketRequest q;
      if (!r.ReadHost(&q.domain) || !r.ReadHost(&q.type) || !r.ReadHost(&q.protocol) ||
          !r.ReadHost(&q.tuple)) {
        return Missing("socket arguments");
      }
      out = q;
      break;
    }
    case Opcode::kBind:
    case Opcode::kConnect: {
      SocketRef ref;
      Endpoint e;
      if (!ReadRef(r, &ref)) return Missing("socket reference");
      if (!ReadEndpoint(r, &e)) return Missing("endpoint");
      if (absl::Status s = ValidateEndpoint(e); !s.ok()) return s;
      if (static_cast<Opcode>(op) == Opcode::kBind) {
        out = BindRequest{ref, e};
      } else {
        ConnectRequest q{ref, e};
        if (!r.ReadHost(&q.flags)) return Missing("connect flags");
        if ((q.flags & ~ConnectRequest::kConnectNonBlocking) != 0) {
          return absl::InvalidArgumentError(absl::StrCat("unknown connect flags ", q.flags));
        }
        out = q;
      }
      break;
    }
    case Opcode::kListen: {
      ListenRequest q;
      if (!ReadRef(r, &q.ref)) return Missing("socket reference");
      if (!r.ReadHost(&q.backlog)) return Missing("backlog");
      out = q;
      break;
    }
    case Opcode::kGetSockName:
    case Opcode::kGetPeerName: {
      NameRequest q;
      if (!ReadRef(r, &q.ref)) return Missing("socket reference");
      q.peer = static_cast<Opcode>(op) == Opcode::kGetPeerName;
      out = q;
      break;
    }
    case Opcode::kShutdown: {
      ShutdownRequest q;
      if (!ReadRef(r, &q.ref)) return Missing("socket reference");
      if (!r.ReadHost(&q.how)) return Missing("how");
      out = q;
      break;
    }
    case Opcode::kSetSockOpt: {
      SetSockOptRequest q;
      uint16_t len = 0;
      if (!ReadRef(r, &q.ref)) return Missing("socket reference");
      if (!r.ReadHost(&q.level) || !r.ReadHost(&q.name)) return Missing("option name");
      if (!r.ReadHost(&len)) return Missing("option length");
      if (len > kMaxOptionValue) {
        return absl::InvalidArgumentError(absl::StrCat("option length ", len, " over ", kMaxOptionValue));
      }
      q.value.resize(len);
      if (!r.ReadBytes(q.value.data(), len)) return Missing("option value");
      out = std::move(q);
      break;
    }
    case Opcode::kGetSockOpt: {
      GetSockOptRequest q;
      if (!ReadRef(r, &q.ref)) return Missing("socket reference");
      if (!r.ReadHost(&q.level) || !r.ReadHost(&q.name)) return Missing("option name");
      out = q;
      break;
    }
    case Opcode::kStatus: {
      uint8_t json = 0;
      if (!r.ReadU8(&json)) return Missing("status format");
      if (json > 1) return absl::InvalidArgumentError(absl::StrCat("bad status format ", json));
      out = StatusRequest{json == 1};
      break;
    }
    case Opcode::kResolve: {
      uint16_t len = 0;
      if (!r.ReadHost(&len)) return Missing("name length");
      if (len > kMaxResolveName) {
        return absl::InvalidArgumentError(absl::StrCat("name length ", len, " over ", kMaxResolveName));
      }
      ResolveRequest q;
      q.name.resize(len);
      if (!r.ReadBytes(q.name.data(), len)) return Missing("name");
      out = std::move(q);
      break;
    }
    case Opcode::kVpmConfigure: {
      uint32_t len = 0;
      if (!r.ReadHost(&len)) return Missing("text length");
      if (len > kMaxVpmConfig) {
        return absl::InvalidArgumentError(absl::StrCat("text length ", len, " over ", kMaxVpmConfig));
      }
      VpmConfigureRequest q;
      q.text.resize(len);
      if (!r.ReadBytes(q.text.data(), len)) return Missing("text");
      out = std::move(q);
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown opcode ", op));
  }
  if (absl::Status s = ExpectEnd(r); !s.ok()) return s;
  return out;
}

namespace {
struct RequestEncoder {
  Writer& w;
  void Header(Opcode op) {
    w.WriteHost(kVersion);
    w.WriteHost(static_cast<uint16_t>(op));
  }
  void operator()(const SocketRequest& q) {
    Header(Opcode::kSocket);
    w.WriteHost(q.domain);
    w.WriteHost(q.type);
    w.WriteHost(q.protocol);
    w.WriteHost(q.tuple);
  }
  void operator()(const BindRequest& q) {
    Header(Opcode::kBind);
    WriteRef(w, q.ref);
    WriteEndpoint(w, q.local);
  }
  void operator()(const ListenRequest& q) {
    Header(Opcode::kListen);
    WriteRef(w, q.ref);
    w.WriteHost(q.backlog);
  }
  void operator()(const ConnectRequest& q) {
    Header(Opcode::kConnect);
    WriteRef(w, q.ref);
    WriteEndpoint(w, q.remote);
    w.WriteHost(q.flags);
  }
  void operator()(const NameRequest& q) {
    Header(q.peer ? Opcode::kGetPeerName : Opcode::kGetSockName);
    WriteRef(w, q.ref);
  }
  void operator()(const ShutdownRequest& q) {
    Header(Opcode::kShutdown);
    WriteRef(w, q.ref);
    w.WriteHost(q.how);
  }
  void operator()(const SetSockOptRequest& q) {
    Header(Opcode::kSetSockOpt);
    WriteRef(w, q.ref);
    w.WriteHost(q.level);
    w.WriteHost(q.name);
    w.WriteHost(static_cast<uint16_t>(q.value.size()));
    w.WriteBytes(q.value.data(), q.value.size());
  }
  void operator()(const GetSockOptRequest& q) {
    Header(Opcode::kGetSockOpt);
    WriteRef(w, q.ref);
    w.WriteHost(q.level);
    w.WriteHost(q.name);
  }
  void operator()(const StatusRequest& q) {
    Header(Opcode::kStatus);
    w.WriteU8(q.json ? 1 : 0);
  }
  void operator()(const ResolveRequest& q) {
    Header(Opcode::kResolve);
    w.WriteHost(static_cast<uint16_t>(q.name.size()));
    w.WriteBytes(q.name.data(), q.name.size());
  }
  void operator()(const VpmConfigureRequest& q) {
    Header(Opcode::kVpmConfigure);
    w.WriteHost(static_cast<uint32_t>(q.text.size()));
    w.WriteBytes(q.text.data(), q.text.size());
  }
};
}  // namespace

std::vector<uint8_t> EncodeRequest(const Request& request) {
  std::vector<uint8_t> out;
  Writer w(&out);
  std::visit(RequestEncoder{w}, request);
  return out;
}

absl::StatusOr<Reply> ParseReply(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  uint16_t op = 0;
  if (absl::Status s = ReadHeader(r, &op); !s.ok()) return s;
  Reply reply;
  reply.opcode = static_cast<Opcode>(op);
  if (!r.ReadHost(&reply.error)) return Missing("error");
  auto rest = r.ReadRest();
  reply.body.assign(rest.begin(), rest.end());
  return reply;
}

std::vector<uint8_t> EncodeReply(const Reply& reply) {
  std::vector<uint8_t> out;
  Writer w(&out);
  w.WriteHost(kVersion);
  w.WriteHost(static_cast<uint16_t>(reply.opcode));
  w.WriteHost(reply.error);
  w.WriteBytes(reply.body.data(), reply.body.size());
  return out;
}

std::vector<uint8_t> EncodeSocketRef(const SocketRef& ref) {
  std::vector<uint8_t> out;
  Writer w(&out);
  WriteRef(w, ref);
  return out;
}

absl::StatusOr<SocketRef> ParseSocketRef(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  SocketRef ref;
  if (!ReadRef(r, &ref)) return Missing("socket reference");
  if (absl::Status s = ExpectEnd(r); !s.ok()) return s;
  return ref;
}

std::vector<uint8_t> EncodeEndpoint(const Endpoint& endpoint) {
  std::vector<uint8_t> out;
  Writer w(&out);
  WriteEndpoint(w, endpoint);
  return out;
}

absl::StatusOr<Endpoint> ParseEndpoint(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  Endpoint e;
  if (!ReadEndpoint(r, &e)) return Missing("endpoint");
  if (absl::Status s = ValidateEndpoint(e); !s.ok()) return s;
  if (absl::Status s = ExpectEnd(r); !s.ok()) return s;
  return e;
}

std::vector<uint8_t> EncodeAcceptRecord(const AcceptRecord& record) {
  std::vector<uint8_t> out;
  Writer w(&out);
  WriteRef(w, record.ref);
  WriteEndpoint(w, record.local);
  WriteEndpoint(w, record.peer);
  return out;
}

absl::StatusOr<AcceptRecord> ParseAcceptRecord(absl::Span<const uint8_t> bytes) {
  Reader r(bytes);
  AcceptRecord a;
  if (!ReadRef(r, &a.ref)) return Missing("socket reference");
  if (!ReadEndpoint(r, &a.local)) return Missing("local endpoint");
  if (!ReadEndpoint(r, &a.peer)) return Missing("peer endpoint");
  if (absl::Status s = ValidateEndpoint(a.local); !s.ok()) return s;
  if (absl::Status s = ValidateEndpoint(a.peer); !s.ok()) return s;
  if (absl::Status s = ExpectEnd(r); !s.ok()) return s;
  return a;
}

}  // namespace dpm::api
