// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the codec itself,
// so the seeds follow the protocol: one valid request of each opcode, and a few replies,
// accept records, endpoints and socket references; one tunnel control message of each type
// and shape, and a few tunnel access files. Run by hand after a protocol change:
//   build-fuzz/fuzz/make_corpus fuzz/corpus
#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "api/protocol.h"
#include "tunnel/control.h"

namespace {

using namespace dpm::api;

void WriteSeed(const std::filesystem::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                     static_cast<std::streamsize>(bytes.size()));
}

void WriteSeed(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  WriteSeed(dir, name, std::vector<uint8_t>(text.begin(), text.end()));
}

void WriteTunnelSeeds(const std::filesystem::path& root) {
  namespace tunnel = dpm::tunnel;
  tunnel::ServiceKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0xa0 + i);
  const std::vector<std::pair<std::string, tunnel::ControlMessage>> messages = {
      {"hello_proxy", tunnel::Hello{tunnel::Role::kProxy, "alpha", "alpha-token-0123456789", {"web", "ssh"}}},
      {"hello_redirector", tunnel::Hello{tunnel::Role::kRedirector, "bob", "bob-token-0123456789", {}}},
      {"welcome_proxy", tunnel::Welcome{15,
                                        {{"web", tunnel::PublishStatus::kPublished, "web.alpha.dpm.internal", key},
                                         {"Bad", tunnel::PublishStatus::kBadName, "", {}},
                                         {"web", tunnel::PublishStatus::kDuplicate, "", {}},
                                         {"db", tunnel::PublishStatus::kLimit, "", {}}}}},
      {"welcome_redirector",
       tunnel::Welcome{15, {{"web", tunnel::PublishStatus::kPublished, "web.alpha.dpm.internal", {}}}}},
      {"refused", tunnel::Refused{tunnel::RefuseReason::kAuthentication, "unknown name or wrong token"}},
  };
  for (const auto& [name, message] : messages) WriteSeed(root / "tunnel_control", name, tunnel::EncodeControl(message));

  WriteSeed(root / "tunnel_access", "full",
            std::string(R"({"proxies": {"alpha": {"token": "alpha-token-0123456789", "max_services": 8, )"
                        R"("max_streams": 100}}, "redirectors": {"bob": {"token": "bob-token-0123456789", )"
                        R"("services": ["web.alpha", "*.beta", "*"], "max_streams": 10}}, )"
                        R"("max_streams_per_service": 50})"));
  WriteSeed(root / "tunnel_access", "minimal", std::string(R"({"proxies": {"a": {"token": "0123456789abcdef"}}})"));
  WriteSeed(root / "tunnel_access", "bad_pattern",
            std::string(R"({"redirectors": {"b": {"token": "0123456789abcdef", "services": ["x..y"]}}})"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const SocketRef ref{1, 0x5eed5eed5eed5eedull};
  const Endpoint local = Endpoint::Ipv4(0x0a4d0102, 8080);       // 10.77.1.2:8080
  const Endpoint remote = Endpoint::Ipv4(0xc633640a, 80);        // 198.51.100.10:80
  const std::vector<std::pair<std::string, Request>> requests = {
      {"socket", SocketRequest{AF_INET, SOCK_STREAM, 0, 0}},
      {"bind", BindRequest{ref, local}},
      {"listen", ListenRequest{ref, 128}},
      {"connect", ConnectRequest{ref, remote}},
      {"connect_nonblocking", ConnectRequest{ref, remote, ConnectRequest::kConnectNonBlocking}},
      {"getsockname", NameRequest{ref, false}},
      {"getpeername", NameRequest{ref, true}},
      {"shutdown", ShutdownRequest{ref, SHUT_WR}},
      {"setsockopt", SetSockOptRequest{ref, SOL_SOCKET, SO_REUSEADDR, {1, 0, 0, 0}}},
      {"getsockopt", GetSockOptRequest{ref, SOL_SOCKET, SO_ERROR}},
      {"status", StatusRequest{true}},
      {"resolve", ResolveRequest{"web.alpha.dpm.internal"}},
      {"vpm_configure", VpmConfigureRequest{R"({"ports": {"tcp/80": {"default": "blue"}}})"}},
  };
  for (const auto& [name, request] : requests) WriteSeed(root / "api_request", name, EncodeRequest(request));

  WriteSeed(root / "api_reply", "reply_socket", EncodeReply({Opcode::kSocket, 0, EncodeSocketRef(ref)}));
  WriteSeed(root / "api_reply", "reply_getsockname", EncodeReply({Opcode::kGetSockName, 0, EncodeEndpoint(local)}));
  WriteSeed(root / "api_reply", "reply_error", EncodeReply({Opcode::kConnect, ECONNREFUSED, {}}));
  const std::string why = "dpm_vpm_configure: ports: missing: no virtual port is multiplexed";
  WriteSeed(root / "api_reply", "reply_vpm_configure_error",
            EncodeReply({Opcode::kVpmConfigure, EINVAL, std::vector<uint8_t>(why.begin(), why.end())}));
  WriteSeed(root / "api_reply", "reply_resolve",
            EncodeReply({Opcode::kResolve, 0, EncodeEndpoint(Endpoint::Ipv4(0x64400002, 0))}));  // 100.64.0.2
  WriteSeed(root / "api_reply", "accept_record", EncodeAcceptRecord({ref, local, remote}));
  WriteSeed(root / "api_reply", "endpoint", EncodeEndpoint(remote));
  WriteSeed(root / "api_reply", "socket_ref", EncodeSocketRef(ref));
  WriteTunnelSeeds(root);
  return 0;
}
