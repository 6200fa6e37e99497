// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the codec itself,
// so the seeds follow the protocol: one valid request of each opcode, and a few replies,
// accept records, endpoints and socket references. Run by hand after a protocol change:
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

namespace {

using namespace dpm::api;

void WriteSeed(const std::filesystem::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                     static_cast<std::streamsize>(bytes.size()));
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
  };
  for (const auto& [name, request] : requests) WriteSeed(root / "api_request", name, EncodeRequest(request));

  WriteSeed(root / "api_reply", "reply_socket", EncodeReply({Opcode::kSocket, 0, EncodeSocketRef(ref)}));
  WriteSeed(root / "api_reply", "reply_getsockname", EncodeReply({Opcode::kGetSockName, 0, EncodeEndpoint(local)}));
  WriteSeed(root / "api_reply", "reply_error", EncodeReply({Opcode::kConnect, ECONNREFUSED, {}}));
  WriteSeed(root / "api_reply", "reply_resolve",
            EncodeReply({Opcode::kResolve, 0, EncodeEndpoint(Endpoint::Ipv4(0x64400002, 0))}));  // 100.64.0.2
  WriteSeed(root / "api_reply", "accept_record", EncodeAcceptRecord({ref, local, remote}));
  WriteSeed(root / "api_reply", "endpoint", EncodeEndpoint(remote));
  WriteSeed(root / "api_reply", "socket_ref", EncodeSocketRef(ref));
  return 0;
}
