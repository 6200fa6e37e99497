#include "stack/socket_service.h"

#include <utility>
#include <vector>

#include <boost/asio/post.hpp>

#include "api/protocol.h"
#include "api/unix_address.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "stack/address_ownership.h"
#include "stack/api_listener.h"
#include "stack/dhcp_leases.h"
#include "stack/dpm_driver_host.h"
#include "stack/port_multiplexer.h"
#include "stack/socket_base.h"
#include "stack/socket_registry.h"
#include "stack/status_report.h"

namespace dpm::stack {
namespace {

// The `vpm` part of `dpmd status` (stack/port_multiplexer.h renders both forms).
class VpmStatusPart : public StatusPart {
 public:
  VpmStatusPart(const nlohmann::json& json, std::string text) : json_(json), text_(std::move(text)) {}
  void AppendText(std::string& out) const override { out += text_; }
  void AddJson(StatusJson& report) const override { report["vpm"] = StatusJson::parse(json_.dump()); }

 private:
  nlohmann::json json_;
  std::string text_;
};

}  // namespace

// The composition: the parts, and the narrow SocketHost interface the sockets see.
class SocketService::Impl final : public SocketHost {
 public:
  Impl(boost::asio::io_context& io, Stack& stack, SocketServiceConfig config)
      : io_(io), stack_(stack), config_(std::move(config)) {}
  ~Impl() override {
    registry_.reset();   // sockets first: they release their DPM sessions, addresses, streams
    vpm_.reset();
    addresses_.reset();  // lingering connections let go
    dpm_.reset();
    listener_.reset();   // a file-path socket is removed
  }

  // SocketHost.
  boost::asio::io_context& io() override { return io_; }
  Stack& stack() override { return stack_; }
  SocketServiceCounters& counters() override { return counters_; }
  std::vector<uint8_t>& scratch() override { return scratch_; }
  AddressOwnership& addresses() override { return *addresses_; }
  DpmDriverHost* dpm() override { return dpm_.get(); }
  void MarkDirty(std::shared_ptr<Socket> s) override;
  void Register(std::shared_ptr<Socket> s) override { registry_->Register(std::move(s)); }
  void Release(uint64_t id) override { registry_->Release(id); }
  bool Full() const override { return registry_->Full(); }
  PortMultiplexer* vpm() override { return vpm_.get(); }
  absl::Status ConfigureVpm(const std::string& text) override {
    // The gateway's stack carries the DPM server, not programs' servers: nothing to multiplex.
    if (config_.role == "gateway") return absl::UnimplementedError("dpmd gateway multiplexes no ports");
    if (vpm_ != nullptr) return vpm_->Configure(text);
    absl::StatusOr<std::unique_ptr<PortMultiplexer>> vpm = PortMultiplexer::Create(stack_, "", &text);
    if (!vpm.ok()) return vpm.status();
    vpm_ = *std::move(vpm);
    return absl::OkStatus();
  }

  SocketServiceStatus Collect() const;
  // Collect() and the parts of SocketServiceConfig::add_status_parts, rendered.
  std::string Status(bool json) const;

  boost::asio::io_context& io_;
  Stack& stack_;
  SocketServiceConfig config_;
  SocketServiceCounters counters_;
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(api::kDatagramHeaderSize + 65536);
  std::unique_ptr<AddressOwnership> addresses_;
  std::unique_ptr<DpmDriverHost> dpm_;  // config_.dpm
  std::unique_ptr<PortMultiplexer> vpm_;  // config_.vpm_config
  std::unique_ptr<SocketRegistry> registry_;
  std::unique_ptr<ApiListener> listener_;
  // TCP sockets with received data to hand to their program, flushed once after the
  // current handler (see SocketHost::MarkDirty).
  std::vector<std::shared_ptr<Socket>> dirty_;
  bool flush_posted_ = false;

 private:
  void FlushDirty();
};

void SocketService::Impl::MarkDirty(std::shared_ptr<Socket> s) {
  if (s->dirty) return;
  s->dirty = true;
  dirty_.push_back(std::move(s));
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] { FlushDirty(); });
}

void SocketService::Impl::FlushDirty() {
  flush_posted_ = false;
  std::vector<std::shared_ptr<Socket>> batch;
  batch.swap(dirty_);
  for (auto& s : batch) {
    s->dirty = false;
    s->Flush();
  }
  stack_.AfterCoreWork();
}

SocketServiceStatus SocketService::Impl::Collect() const {
  SocketServiceStatus s;
  s.role = config_.role;
  s.api_path = config_.path;
  const tun::Link& link = stack_.link();
  const tun::LinkCounters& lc = link.counters();
  s.link_name = link.name();
  s.link_mtu = link.mtu();
  s.address = stack_.config().address;
  s.prefix = stack_.config().prefix;
  s.rx_packets = lc.rx_packets;
  s.rx_bytes = lc.rx_bytes;
  s.tx_packets = lc.tx_packets;
  s.tx_bytes = lc.tx_bytes;
  s.tx_dropped = lc.tx_dropped;
  s.ip_drops = stack_.counters().ip_drops;
  s.lwip_ip_drop = lwip_stats.ip.drop;
  s.lwip_ip_chkerr = lwip_stats.ip.chkerr;
  s.lwip_tcp_drop = lwip_stats.tcp.drop;
  s.lwip_tcp_chkerr = lwip_stats.tcp.chkerr;
  s.lwip_udp_drop = lwip_stats.udp.drop;
  s.lwip_udp_chkerr = lwip_stats.udp.chkerr;
  s.lwip_icmp_drop = lwip_stats.icmp.drop;
  s.counters = counters_;
  for (tcp_pcb* p = tcp_active_pcbs; p != nullptr; p = p->next) s.tcp_active++;
  for (tcp_pcb* p = tcp_tw_pcbs; p != nullptr; p = p->next) s.tcp_time_wait++;
  for (tcp_pcb_listen* p = tcp_listen_pcbs.listen_pcbs; p != nullptr; p = p->next) s.tcp_listen++;
  s.control_connections = listener_->control_connections();
  s.has_pool = addresses_->has_pool();
  s.pool_size = addresses_->pool_size();
  s.pool_available = addresses_->pool_available();
  s.addresses_in_use = addresses_->in_use();
  s.addresses_lingering = addresses_->lingering();
  s.dscp_marked = stack_.dscp_marked();
  s.address_at_socket = config_.address_at_socket;
  s.dhcp = addresses_->dhcp_status();
  s.sockets = registry_->Rows(kMaxStatusRows);
  s.socket_count = registry_->size();
  if (dpm_) s.dpm_driver = dpm_->status();
  return s;
}

std::string SocketService::Impl::Status(bool json) const {
  StatusReport report;
  report.Add<SocketServiceStatus>(Collect());
  if (vpm_) report.Add<VpmStatusPart>(vpm_->StatusJson(), vpm_->StatusText());
  if (config_.add_status_parts) config_.add_status_parts(report);
  return report.Render(json);
}

absl::StatusOr<std::unique_ptr<SocketService>> SocketService::Create(boost::asio::io_context& io, Stack& stack,
                                                                     const SocketServiceConfig& config) {
  absl::StatusOr<api::UnixAddress> where = api::ParseUnixAddress(config.path);
  if (!where.ok()) return where.status();
  std::optional<AddressPool> pool;
  if (!config.address_pool.empty()) {
    absl::StatusOr<AddressPool> p = AddressPool::Create(config.address_pool);
    if (!p.ok()) return p.status();
    for (const AddressRange& r : config.address_pool) {
      const uint32_t own = stack.config().address;
      if (own >= r.first && own <= r.last) {
        return absl::InvalidArgumentError("the address pool holds the instance's own address");
      }
    }
    pool = std::move(*p);
  }
  auto impl = std::make_unique<Impl>(io, stack, config);
  Impl* raw = impl.get();
  if (!config.vpm_config.empty()) {
    absl::StatusOr<std::unique_ptr<PortMultiplexer>> vpm = PortMultiplexer::Create(stack, config.vpm_config);
    if (!vpm.ok()) return vpm.status();
    impl->vpm_ = std::move(*vpm);
  }
  absl::StatusOr<std::unique_ptr<ApiListener>> listener = ApiListener::Create(
      io, [&stack] { stack.AfterCoreWork(); }, *where, config.api_group, impl->counters_,
      [raw](const std::shared_ptr<ControlConn>& conn, const api::Request& request, api::Opcode op) {
        raw->registry_->Handle(conn, request, op);
      });
  if (!listener.ok()) return listener.status();
  impl->listener_ = std::move(*listener);
  std::unique_ptr<DhcpLeases> dhcp;
  if (config.dhcp) {
    absl::StatusOr<std::unique_ptr<DhcpLeases>> leases =
        DhcpLeases::Create(io, stack, DhcpLeases::Config{config.dhcp_timeout_ms});
    if (!leases.ok()) return leases.status();
    dhcp = std::move(*leases);
  }
  impl->addresses_ = std::make_unique<AddressOwnership>(
      stack, impl->counters_, std::move(pool), std::move(dhcp), [raw](uint32_t address, int error) {
        raw->registry_->ForEach([&](Socket& socket) {
          if (socket.own_address() != address) return;
          socket.LoseAddress(error);
          raw->counters_.addresses_lost++;
        });
      });
  impl->registry_ = std::make_unique<SocketRegistry>(*impl, config.max_sockets, config.address_at_socket,
                                                     [raw](bool json) { return raw->Status(json); });
  impl->listener_->Start();
  if (config.dpm) impl->dpm_ = std::make_unique<DpmDriverHost>(stack, *config.dpm);
  return std::unique_ptr<SocketService>(new SocketService(std::move(impl)));
}

SocketService::SocketService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SocketService::~SocketService() = default;
size_t SocketService::socket_count() const { return impl_->registry_->size(); }
SocketServiceStatus SocketService::CollectStatus() const { return impl_->Collect(); }
std::string SocketService::Status(bool json) const { return impl_->Status(json); }
absl::Status SocketService::ReloadVpm() {
  if (!impl_->vpm_) return absl::FailedPreconditionError("virtual port multiplexing is off (no --vpm-config)");
  return impl_->vpm_->Reload();
}

}  // namespace dpm::stack
