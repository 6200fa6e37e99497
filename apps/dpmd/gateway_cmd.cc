// `dpmd gateway`: options and start-up (see src/gateway/gateway.h, docs/dpmd.md).
#include "apps/dpmd/gateway_cmd.h"

#include <arpa/inet.h>

#include <cstdio>

#include <boost/asio/signal_set.hpp>

#include "absl/strings/numbers.h"
#include "apps/cli_number.h"
#include "os/entropy.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/gateway.h"
#include "nat/table_memory.h"
#include "stack/api_access.h"
#include "stack/socket_service.h"
#include "tun/pcap_link.h"
#include "tun/tun_link.h"
#include "tun/virtual_link.h"
#include "wire/ipv4.h"

namespace dpmd {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "dpmd: %s\n", message.c_str());
  std::exit(1);
}

// "A.B.C.D/N" → address and prefix (prefix defaults to `def`).
bool ParseCidr(const std::string& text, uint32_t* address, int* prefix, int def) {
  return dpm::wire::ParseIpv4Prefix(text, def, address, prefix);
}

// "203.0.113.1-203.0.113.8" or "203.0.113.0/29" (every address of the block) → addresses.
bool ParsePool(const std::string& text, std::vector<uint32_t>* out) {
  std::vector<std::string> range = absl::StrSplit(text, '-');
  uint32_t first = 0, last = 0;
  if (range.size() == 2) {
    if (!dpm::wire::ParseIpv4(range[0], &first) || !dpm::wire::ParseIpv4(range[1], &last) || last < first) return false;
  } else {
    int prefix = 32;
    if (!ParseCidr(text, &first, &prefix, 32) || prefix < 16) return false;
    uint32_t size = prefix == 32 ? 1 : (1u << (32 - prefix));
    first &= ~(size - 1);
    last = first + size - 1;
  }
  if (last - first > 65535) return false;
  for (uint64_t a = first; a <= last; ++a) out->push_back(static_cast<uint32_t>(a));
  return true;
}

std::unique_ptr<dpm::tun::Link> OpenLink(const std::string& what, const std::string& tun, const std::string& virt,
                                         bool attach, bool offload, size_t mtu, const std::string& host_address,
                                         const std::string& pcap, uint32_t snaplen) {
  std::unique_ptr<dpm::tun::Link> link;
  if (!virt.empty()) {
    std::vector<std::string> paths = absl::StrSplit(virt, ',');
    if (paths.size() != 2) Die(absl::StrCat("--", what, "-virtual wants LOCAL_PATH,PEER_PATH"));
    auto v = dpm::tun::VirtualLink::Open(paths[0], paths[1], mtu);
    if (!v.ok()) Die(std::string(v.status().message()));
    link = std::move(*v);
  } else {
    if (tun.empty()) Die(absl::StrCat("give --", what, "-tun or --", what, "-virtual"));
    dpm::tun::TunOptions t;
    t.name = tun;
    t.mtu = mtu;
    t.create = !attach;
    t.offload = offload;
    if (!host_address.empty()) {
      uint32_t a = 0;
      int p = 0;
      if (host_address.find('/') == std::string::npos) {
        Die(absl::StrCat("bad --", what, "-host-address '", host_address, "': give the prefix length too (e.g. ",
                         host_address, "/16)"));
      }
      if (!ParseCidr(host_address, &a, &p, 24)) Die(absl::StrCat("bad --", what, "-host-address '", host_address, "'"));
      t.host_address = a;
      t.host_prefix = p;
    }
    auto l = dpm::tun::TunLink::Open(t);
    if (!l.ok()) Die(std::string(l.status().message()));
    link = std::move(*l);
  }
  if (!pcap.empty()) {
    auto w = dpm::tun::PcapWriter::Open(pcap, snaplen);
    if (!w.ok()) Die(std::string(w.status().message()));
    link = std::make_unique<dpm::tun::PcapLink>(std::move(link), std::move(*w));
  }
  return link;
}

}  // namespace

std::optional<gid_t> ApiGroup(const std::string& name) {
  if (name.empty()) return std::nullopt;
  absl::StatusOr<gid_t> gid = dpm::stack::ResolveGroup(name);
  if (!gid.ok()) Die(absl::StrCat("--api-group: ", gid.status().message()));
  return *gid;
}

void AddGatewayOptions(CLI::App& app, GatewayOptions& o) {
  CLI::App* g = app.add_subcommand("gateway", "Run the DPM server and NAT between an inside and an outside link");
  g->fallthrough();
  g->add_option("--inside-tun", o.inside_tun, "TUN device on the private side");
  g->add_option("--inside-virtual", o.inside_virtual, "Virtual link on the private side: LOCAL_PATH,PEER_PATH");
  g->add_option("--inside-host-address", o.inside_host_address,
                "Give the kernel's side of the inside TUN this address/prefix");
  g->add_option("--outside-tun", o.outside_tun, "TUN device on the registered side");
  g->add_option("--outside-virtual", o.outside_virtual, "Virtual link on the registered side: LOCAL_PATH,PEER_PATH");
  g->add_flag("--attach", o.attach, "Only attach to TUN devices that exist");
  g->add_flag("--no-offload", o.no_offload,
              "TUN links without checksum and TCP segmentation offload (IFF_VNET_HDR): every packet at most MTU bytes");
  g->add_option("--mtu", o.mtu, "MTU of both links")->check(dpm::apps::WholeNumber(576, 65535))->capture_default_str();
  g->add_option("--address", o.address, "The gateway's private address/prefix: the DPM server answers here")
      ->capture_default_str();
  g->add_option("--inside-network", o.inside_network, "The private network behind the gateway")->capture_default_str();
  g->add_option("--pool", o.pool, "Registered addresses: FIRST-LAST or A.B.C.D/N")->capture_default_str();
  g->add_option("--outside-address", o.outside_address, "The gateway's own address on the outside (optional)");
  g->add_option("--port-range", o.port_range, "External ports given to replaceable ports: MIN-MAX")
      ->capture_default_str();
  g->add_option("--quota", o.quota, "Sessions per private address (PCP USER_EX_QUOTA beyond)")->capture_default_str();
  g->add_option("--max-sessions", o.max_sessions, "Sessions in all (PCP NO_RESOURCES beyond)")->capture_default_str();
  g->add_option("--reserve-sessions", o.reserve_sessions,
                "Size the NAT session table for this many sessions at start, memory backed up front "
                "(0: grow as needed; at most --max-sessions)")
      ->check(dpm::apps::WholeNumber(0, UINT32_MAX))
      ->capture_default_str();
  g->add_option("--min-lifetime", o.min_lifetime, "Shortest PCP lifetime granted, seconds")->capture_default_str();
  g->add_option("--max-lifetime", o.max_lifetime, "Longest PCP lifetime granted, seconds")->capture_default_str();
  g->add_option("--udp-timeout", o.udp_timeout, "UDP mapping idle timeout, seconds (RFC 4787: >= 120)")
      ->check(dpm::apps::WholeNumber(120, 86400))
      ->capture_default_str();
  g->add_option("--tcp-established-timeout", o.tcp_established_timeout,
                "Established TCP idle timeout, seconds (RFC 5382: >= 7440)")
      ->check(dpm::apps::WholeNumber(7440, 864000))
      ->capture_default_str();
  g->add_option("--tcp-transitory-timeout", o.tcp_transitory_timeout,
                "Transitory TCP timeout, seconds (RFC 5382: >= 240)")
      ->check(dpm::apps::WholeNumber(240, 86400))
      ->capture_default_str();
  g->add_option("--icmp-timeout", o.icmp_timeout, "ICMP query timeout, seconds (RFC 5508: >= 60)")
      ->check(dpm::apps::WholeNumber(60, 86400))
      ->capture_default_str();
  g->add_option("--api-socket", o.api_socket,
                "Where `dpmd status` reaches the gateway: @NAME, an abstract UNIX socket of this network namespace, "
                "or a file path in an existing directory")
      ->capture_default_str();
  g->add_option("--api-group", o.api_group,
                "Group (name or number) whose members may use the API besides this user and root");
  g->add_option("--pcap-inside", o.pcap_inside, "Record the inside link (setup exchanges included) to a pcap file");
  g->add_option("--pcap-outside", o.pcap_outside, "Record the outside link to a pcap file");
  g->add_option("--pcap-snaplen", o.pcap_snaplen, "Bytes kept of each captured packet (like tcpdump -s)")
      ->check(dpm::apps::WholeNumber(64, 65535))
      ->capture_default_str();
  o.command = g;
}

int RunGateway(const GatewayOptions& o) {
  dpm::gateway::GatewayConfig config;
  if (o.address.find('/') == std::string::npos) {
    Die("bad --address '" + o.address + "': give the prefix length too (e.g. " + o.address + "/16)");
  }
  if (!ParseCidr(o.address, &config.inside.address, &config.inside.prefix, 16)) Die("bad --address '" + o.address + "'");
  config.inside.gateway = 0;
  if (!ParseCidr(o.inside_network, &config.nat.inside_network, &config.nat.inside_prefix, 16)) {
    Die("bad --inside-network '" + o.inside_network + "'");
  }
  if (!ParsePool(o.pool, &config.nat.external_addresses)) Die("bad --pool '" + o.pool + "' (FIRST-LAST or A.B.C.D/N)");
  config.nat.gateway_inside_address = config.inside.address;
  if (!o.outside_address.empty() && !dpm::wire::ParseIpv4(o.outside_address, &config.nat.gateway_outside_address)) {
    Die("bad --outside-address '" + o.outside_address + "'");
  }
  std::vector<std::string> ports = absl::StrSplit(o.port_range, '-');
  int lo = 0, hi = 0;
  if (ports.size() != 2 || !absl::SimpleAtoi(ports[0], &lo) || !absl::SimpleAtoi(ports[1], &hi) || lo < 1 ||
      hi > 65535 || lo > hi) {
    Die("bad --port-range '" + o.port_range + "' (MIN-MAX within 1-65535)");
  }
  config.nat.port_min = static_cast<uint16_t>(lo);
  config.nat.port_max = static_cast<uint16_t>(hi);
  config.nat.per_host_quota = o.quota;
  config.nat.max_sessions = o.max_sessions;
  config.nat.reserve_sessions = o.reserve_sessions;
  config.nat.min_lifetime_s = o.min_lifetime;
  config.nat.max_lifetime_s = o.max_lifetime;
  config.nat.udp_timeout_ms = uint64_t{o.udp_timeout} * 1000;
  config.nat.tcp_established_ms = uint64_t{o.tcp_established_timeout} * 1000;
  config.nat.tcp_transitory_ms = uint64_t{o.tcp_transitory_timeout} * 1000;
  config.nat.icmp_timeout_ms = uint64_t{o.icmp_timeout} * 1000;
  if (o.min_lifetime > o.max_lifetime) Die("--min-lifetime is above --max-lifetime");
  if (absl::Status valid = dpm::nat::ValidateNatConfig(config.nat); !valid.ok()) {
    Die(absl::StrCat("bad gateway configuration: ", valid.message()));
  }
  config.nat.seed = dpm::os::RandomU64();  // RFC 6056: unpredictable external ports
  // Huge pages for the session table (docs/nat.md "Memory"): lives as long as the program.
  static dpm::nat::HugePageTableMemory table_memory;
  config.nat.table_memory = &table_memory;

  auto inside = OpenLink("inside", o.inside_tun, o.inside_virtual, o.attach, !o.no_offload, o.mtu, o.inside_host_address, o.pcap_inside,
                         o.pcap_snaplen);
  auto outside = OpenLink("outside", o.outside_tun, o.outside_virtual, o.attach, !o.no_offload, o.mtu, "", o.pcap_outside, o.pcap_snaplen);
  boost::asio::io_context io(1);
  auto gw = dpm::gateway::Gateway::Create(io, std::move(inside), std::move(outside), config);
  if (!gw.ok()) Die(std::string(gw.status().message()));
  dpm::gateway::Gateway* g = gw->get();
  dpm::stack::SocketServiceConfig api;
  api.path = o.api_socket;
  api.api_group = ApiGroup(o.api_group);
  api.role = "gateway";
  api.add_status_parts = [g](dpm::stack::StatusReport& report) {
    report.Add<dpm::gateway::GatewayStatus>(g->CollectStatus());
  };
  auto service = dpm::stack::SocketService::Create(io, g->stack(), api);
  if (!service.ok()) Die(std::string(service.status().message()));
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });
  std::printf("dpmd: gateway ready: private %s, pool %s (%zu addresses), DPM server on UDP %d and %d, api %s\n",
              o.address.c_str(), o.pool.c_str(), config.nat.external_addresses.size(), dpm::pcp::kDpmPort,
              dpm::pcp::kServerPort, o.api_socket.c_str());
  std::fflush(stdout);
  io.run();
  return 0;
}

}  // namespace dpmd
