// dpmd — one dpm stack instance (design §4.2). `dpmd client` runs lwIP on a TUN or TAP device
// or a virtual link and serves the modified socket API; `dpmd status` asks a running instance for
// its links, counters and sockets.
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>

#include <boost/asio/signal_set.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "apps/cli_number.h"
#include "apps/cli_parse.h"
#include "apps/dpmd/config_check.h"
#include "apps/dpmd/gateway_cmd.h"
#include "apps/dpmd/tunnel_cmd.h"
#include "dpm/socket.h"
#include "stack/ethernet_status.h"
#include "stack/socket_service.h"
#include "stack/stack.h"
#include "tun/pcap_link.h"
#include "tun/tun_link.h"
#include "tun/virtual_link.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"

namespace {

[[noreturn]] void Die(const std::string& message, int code = 1) {
  std::fprintf(stderr, "dpmd: %s\n", message.c_str());
  std::exit(code);
}

// "10.77.1.2/24" → address (host byte order) and prefix 1..32; "10.77.1.2" → `default_prefix`.
bool ParsePrefix(const std::string& text, uint32_t* address, int* prefix, int default_prefix) {
  return dpm::wire::ParseIpv4Prefix(text, default_prefix, address, prefix) && *prefix >= 1;
}

void RaiseDescriptorLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

namespace {

struct ClientOptions {
  std::string tun = "dpm0";
  std::string link = "tun";  // tun: IP packets; tap: Ethernet frames, with ARP
  std::string mac;           // tap: the stack's MAC; empty: 02:64 + the address
  bool attach = false;
  std::string virtual_link;
  size_t mtu = 1500;
  std::string address = "10.77.1.2/24";
  std::string gateway = "10.77.1.1";
  std::string host_address;
  std::string api_socket = dpm::api::kDefaultClientSocket;
  std::string api_group;
  std::string pcap;
  uint32_t pcap_snaplen = 65535;  // bytes kept of each captured packet
  size_t max_sockets = 65536;
  std::string dpm_gateway;  // the DPM server's address[:port]; empty: no DPM driver
  std::string private_network = "10.77.0.0/16";
  uint32_t dpm_lifetime = 600;
  std::vector<std::string> address_pool;  // static per-socket addresses (design §7)
  std::string address_at = "socket";       // when a socket takes its address: socket | bind
  bool dhcp = false;                       // per-socket DHCP leases (TAP, design §7)
  double dhcp_timeout_s = 16;              // no lease after this: dpm_socket gives ETIMEDOUT
  std::string vpm_config;                  // virtual port multiplexing (docs/vpm.md); empty: off
};

int RunClient(const ClientOptions& o) {
  uint32_t address = 0, gateway = 0;
  int prefix = 24, ignored = 0;
  if (o.address.find('/') == std::string::npos) {
    Die("bad --address '" + o.address + "': give the prefix length too (e.g. " + o.address + "/24)", 2);
  }
  if (!ParsePrefix(o.address, &address, &prefix, 24)) Die("bad --address '" + o.address + "' (want A.B.C.D/N)");
  if (!o.gateway.empty() && !ParsePrefix(o.gateway, &gateway, &ignored, 32)) Die("bad --gateway '" + o.gateway + "'");
  dpm::wire::MacAddress mac{};  // zero: the stack's default (02:64 + the address)
  if (!o.mac.empty()) {
    if (o.link != "tap" || !o.virtual_link.empty()) Die("--mac needs an Ethernet link (--link tap)");
    std::optional<dpm::wire::MacAddress> parsed = dpm::wire::ParseMac(o.mac);
    if (!parsed || dpm::wire::IsMulticast(*parsed)) Die("bad --mac '" + o.mac + "' (want a unicast XX:XX:XX:XX:XX:XX)");
    mac = *parsed;
  }
  if (o.link == "tap" && !o.virtual_link.empty()) Die("--link tap and --virtual exclude each other");

  std::unique_ptr<dpm::tun::Link> link;
  if (!o.virtual_link.empty()) {
    std::vector<std::string> paths = absl::StrSplit(o.virtual_link, ',');
    if (paths.size() != 2) Die("--virtual wants LOCAL_PATH,PEER_PATH");
    auto v = dpm::tun::VirtualLink::Open(paths[0], paths[1], o.mtu);
    if (!v.ok()) Die(std::string(v.status().message()));
    link = std::move(*v);
  } else {
    dpm::tun::TunOptions t;
    t.mode = o.link == "tap" ? dpm::tun::TunMode::kTap : dpm::tun::TunMode::kTun;
    t.name = o.tun;
    t.mtu = o.mtu;
    t.create = !o.attach;
    if (!o.host_address.empty()) {
      uint32_t host = 0;
      int host_prefix = 0;
      if (o.host_address.find('/') == std::string::npos) {
        Die("bad --host-address '" + o.host_address + "': give the prefix length too (e.g. " + o.host_address + "/" +
                std::to_string(prefix) + ")",
            2);
      }
      if (!ParsePrefix(o.host_address, &host, &host_prefix, prefix)) Die("bad --host-address '" + o.host_address + "'");
      t.host_address = host;
      t.host_prefix = host_prefix;
    }
    auto tun = dpm::tun::TunLink::Open(t);
    if (!tun.ok()) Die(std::string(tun.status().message()));
    link = std::move(*tun);
  }
  if (!o.pcap.empty()) {
    auto writer = dpm::tun::PcapWriter::Open(o.pcap, o.pcap_snaplen, link->ethernet());
    if (!writer.ok()) Die(std::string(writer.status().message()));
    link = std::make_unique<dpm::tun::PcapLink>(std::move(link), std::move(*writer));
  }
  std::string link_name = link->name();

  boost::asio::io_context io(1);
  dpm::stack::StackConfig stack_config{address, prefix, gateway};
  stack_config.mac = mac;
  auto stack = dpm::stack::Stack::Create(io, std::move(link), stack_config);
  if (!stack.ok()) Die(std::string(stack.status().message()));
  std::string mac_note;
  if ((*stack)->ethernet()) mac_note = " mac " + dpm::wire::FormatMac((*stack)->mac());
  dpm::stack::SocketServiceConfig api;
  api.path = o.api_socket;
  api.max_sockets = o.max_sockets;
  api.api_group = dpmd::ApiGroup(o.api_group);
  for (const std::string& text : o.address_pool) {
    for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
      absl::StatusOr<dpm::stack::AddressRange> r = dpm::stack::ParseAddressRange(std::string(part));
      if (!r.ok()) Die(absl::StrCat("--address-pool: ", r.status().message()));
      api.address_pool.push_back(*r);
    }
  }
  api.address_at_socket = o.address_at == "socket";
  if (o.dhcp && !(*stack)->ethernet()) Die("--dhcp needs an Ethernet link (--link tap)");
  api.dhcp = o.dhcp;
  api.dhcp_timeout_ms = static_cast<uint64_t>(o.dhcp_timeout_s * 1000);
  api.vpm_config = o.vpm_config;
  if ((*stack)->ethernet()) {
    const dpm::stack::Stack* s = stack->get();
    api.add_status_parts = [s](dpm::stack::StatusReport& report) {
      report.Add<dpm::stack::EthernetStatus>(dpm::stack::EthernetStatus::From(*s));
    };
  }
  if (!o.dpm_gateway.empty()) {
    dpm::stack::DpmDriverSettings d;
    std::vector<std::string> hp = absl::StrSplit(o.dpm_gateway, ':');
    int port = 1080;
    if (hp.size() > 2 || !ParsePrefix(hp[0], &d.server_address, &ignored, 32) ||
        (hp.size() == 2 && (!absl::SimpleAtoi(hp[1], &port) || port < 1 || port > 65535))) {
      Die("bad --dpm-gateway '" + o.dpm_gateway + "' (want A.B.C.D or A.B.C.D:PORT)");
    }
    d.server_port = static_cast<uint16_t>(port);
    if (!ParsePrefix(o.private_network, &d.private_network, &d.private_prefix, 16)) {
      Die("bad --private-network '" + o.private_network + "'");
    }
    d.lifetime_s = o.dpm_lifetime;
    api.dpm = d;
  }
  auto service = dpm::stack::SocketService::Create(io, **stack, api);
  if (!service.ok()) Die(std::string(service.status().message()));

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });
  // SIGHUP: the VPM configurator file again (flows that exist keep their AID).
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void()> wait_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      absl::Status s = (*service)->ReloadVpm();
      std::fprintf(stderr, "dpmd: SIGHUP: %s\n", s.ok() ? "VPM configurator reloaded" : std::string(s.message()).c_str());
      wait_hangup();
    });
  };
  wait_hangup();
  std::printf("dpmd: ready on %s%s address %s gateway %s mtu %zu api %s\n", link_name.c_str(), mac_note.c_str(),
              o.address.c_str(), o.gateway.c_str(), o.mtu, o.api_socket.c_str());
  std::fflush(stdout);
  io.run();
  return 0;
}

// Asks the instance at `where` for its status. Returns false, with the reason in `error`,
// when nothing answers there.
bool QueryStatus(const std::string& where, bool json, std::string* error) {
  absl::StatusOr<dpm::api::UnixAddress> addr = dpm::api::ParseUnixAddress(where);
  if (!addr.ok()) Die(std::string(addr.status().message()), 2);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(absl::StrCat("socket: ", std::strerror(errno)));
  if (::connect(fd, addr->sockaddr_ptr(), addr->length) != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return false;
  }
  std::vector<uint8_t> request = dpm::api::EncodeRequest(dpm::api::StatusRequest{json});
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) Die("send status request failed");
  std::vector<uint8_t> buf(dpm::api::kMaxMessage * 16);
  ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  ::close(fd);
  if (n <= 0) Die(absl::StrCat("the dpmd at ", where, " closed the connection"));
  auto reply = dpm::api::ParseReply(absl::MakeConstSpan(buf.data(), static_cast<size_t>(n)));
  if (!reply.ok()) Die(absl::StrCat("bad status reply from ", where));
  if (reply->error == EACCES) {
    Die(absl::StrCat("the dpmd at ", where, " refuses this user (not its user, root or in its --api-group)"));
  }
  if (reply->error != 0) Die(absl::StrCat("the dpmd at ", where, " answered: ", std::strerror(reply->error)));
  std::fwrite(reply->body.data(), 1, reply->body.size(), stdout);
  return true;
}

// No --api-socket: the client's default name, then the gateway's, both in this network
// namespace; the first that answers.
int RunStatus(const std::string& path, bool json) {
  std::vector<std::string> tried =
      path.empty() ? std::vector<std::string>{dpm::api::kDefaultClientSocket, dpm::api::kDefaultGatewaySocket,
                                              dpm::api::kDefaultTunnelServerSocket,
                                              dpm::api::kDefaultServiceProxySocket, dpm::api::kDefaultRedirectorSocket}
                   : std::vector<std::string>{path};
  std::string error;
  for (const std::string& where : tried) {
    if (QueryStatus(where, json, &error)) return 0;
  }
  Die(absl::StrCat("no dpmd answers at ", absl::StrJoin(tried, " or "),
                   path.empty() ? " in this network namespace" : "", ": ", error,
                   path.empty() ? " (give --api-socket for another)" : ""));
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"dpmd: a user-space TCP/IP stack instance (lwIP) on a TUN/TAP device or virtual link.\n"
               "Programs use it through libdpm (dpm/socket.h) over the API socket."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dpmd " DPM_VERSION);
  app.set_config("--config", "", "Read options from this file (TOML/INI: one 'option = value' per line)");

  ClientOptions o;
  CLI::App* client = app.add_subcommand("client", "Run a stack instance for programs linked with libdpm");
  client->fallthrough();  // `dpmd client --config FILE` as well as `dpmd --config FILE client`
  client->add_option("--tun", o.tun, "TUN (or, with --link tap, TAP) device to create or attach (max 15 characters)")
      ->capture_default_str();
  client->add_option("--link", o.link,
                     "Device kind: tun (IP packets) or tap (Ethernet frames; the stack answers ARP for its address "
                     "and every per-socket address)")
      ->check(CLI::IsMember({"tun", "tap"}))
      ->capture_default_str();
  client->add_option("--mac", o.mac,
                     "With --link tap: the stack's MAC address XX:XX:XX:XX:XX:XX (default: 02:64 followed by the "
                     "four bytes of --address, locally administered)");
  client->add_flag("--attach", o.attach, "Only attach: fail if the TUN device does not exist");
  client->add_option("--virtual", o.virtual_link,
                     "Use a virtual link instead of TUN: LOCAL_PATH,PEER_PATH of UNIX datagram sockets "
                     "(no root needed; the peer dpmd uses the same paths swapped)");
  client->add_option("--mtu", o.mtu, "Link MTU in bytes; TCP's MSS follows it")
      ->check(dpm::apps::WholeNumber(576, 65535))
      ->capture_default_str();
  client->add_option("--address", o.address, "The stack's IPv4 address and prefix")->capture_default_str();
  client->add_option("--gateway", o.gateway, "Next hop for addresses outside the prefix ('' for none)")
      ->capture_default_str();
  client->add_option("--host-address", o.host_address,
                     "Give the kernel's side of the TUN/TAP device this address/prefix (e.g. 10.77.1.1/24)");
  client->add_option("--api-socket", o.api_socket,
                     "Where libdpm programs reach this instance: @NAME, an abstract UNIX socket of this network "
                     "namespace (the default is what programs of this namespace reach), or a file path in an "
                     "existing directory")
      ->capture_default_str();
  client->add_option("--api-group", o.api_group,
                     "Group (name or number) whose members may use the API besides this user and root");
  client->add_option("--pcap", o.pcap, "Record every packet on the link to this pcap file (tshark reads it)");
  client->add_option("--pcap-snaplen", o.pcap_snaplen, "Bytes kept of each captured packet (like tcpdump -s)")
      ->check(dpm::apps::WholeNumber(64, 65535))
      ->capture_default_str();
  client->add_option("--dpm-gateway", o.dpm_gateway,
                     "Run the DPM driver: the DPM server's private address[:port] (port 1080 by default); "
                     "sessions to addresses outside --private-network first agree on a registered address and port");
  client->add_option("--private-network", o.private_network, "Destinations inside it need no DPM setup")
      ->capture_default_str();
  client->add_option("--dpm-lifetime", o.dpm_lifetime, "DPM mapping lifetime asked for, seconds (renewed at half)")
      ->check(dpm::apps::WholeNumber(1, 86400))
      ->capture_default_str();
  client->add_option("--max-sockets", o.max_sockets, "Most dpm sockets served at once (more get ENOBUFS)")
      ->check(dpm::apps::WholeNumber(1, 10000000))
      ->capture_default_str();
  client->add_option("--address-pool", o.address_pool,
                     "Static pool of per-socket addresses (DPM_TUPLE_STATIC): A.B.C.D, A.B.C.D-E.F.G.H or "
                     "A.B.C.D/N, comma-separated or repeated; route them to the link on the host side");
  client->add_option("--address-at", o.address_at,
                     "When a socket with its own address takes it: at dpm_socket() (socket) or at its first "
                     "bind/connect/listen/send (bind)")
      ->check(CLI::IsMember({"socket", "bind"}))
      ->capture_default_str();
  client->add_flag("--dhcp", o.dhcp,
                   "Per-socket addresses leased from the link's DHCP server (DPM_TUPLE_DYNAMIC; needs --link tap): "
                   "each socket gets a lease of its own, renews it, releases it at close");
  client->add_option("--vpm-config", o.vpm_config,
                     "Virtual port multiplexing: the configurator file (JSON, docs/vpm.md) naming the virtual "
                     "ports many programs may bind, and which program or source gets which; SIGHUP reads it again");
  client->add_option("--dhcp-timeout", o.dhcp_timeout_s,
                     "Seconds to wait for a lease before dpm_socket() fails with ETIMEDOUT")
      ->check(dpm::apps::Decimal(1.0, 600.0))
      ->capture_default_str();

  dpmd::GatewayOptions gw;
  dpmd::AddGatewayOptions(app, gw);
  dpmd::TunnelServerOptions tunnel_server;
  dpmd::AddTunnelServerOptions(app, tunnel_server);
  dpmd::ServiceProxyOptions service_proxy;
  dpmd::AddServiceProxyOptions(app, service_proxy);
  dpmd::RedirectorOptions redirector;
  dpmd::AddRedirectorOptions(app, redirector);

  std::string status_socket;
  bool status_json = false;
  CLI::App* status = app.add_subcommand("status", "Print a running instance's link, counters and sockets");
  status->add_option("--api-socket", status_socket,
                     absl::StrCat("The instance's API socket (default: the first that answers of ",
                                  dpm::api::kDefaultClientSocket, ", ", dpm::api::kDefaultGatewaySocket,
                                  " and the tunnel roles' control sockets, in this network namespace)"));
  status->add_flag("--json", status_json, "Print JSON instead of a table");

  if (const std::string config = dpmd::ConfigPathFromArgs(argc, argv); !config.empty()) {
    if (absl::Status keys = dpmd::CheckConfigKeys(config, app); !keys.ok()) {
      std::fprintf(stderr, "dpmd: %s\n", std::string(keys.message()).c_str());
      return 2;
    }
  }
  if (std::optional<int> done = dpm::apps::ParseCommandLine(app, argc, argv, "dpmd")) return *done;
  RaiseDescriptorLimit();
  if (client->parsed()) return RunClient(o);
  if (gw.command->parsed()) return dpmd::RunGateway(gw);
  if (tunnel_server.command->parsed()) return dpmd::RunTunnelServer(tunnel_server);
  if (service_proxy.command->parsed()) return dpmd::RunServiceProxy(service_proxy);
  if (redirector.command->parsed()) return dpmd::RunRedirector(redirector);
  return RunStatus(status_socket, status_json);
}
