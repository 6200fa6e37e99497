#include "stack/address_ownership.h"

#include <cerrno>
#include <utility>

#include <boost/asio/post.hpp>

#include "stack/lwip_port.h"
#include "stack/socket_base.h"
#include "stack/stack.h"

namespace dpm::stack {
namespace {

// The tcp_ext_arg slot of lingering connections (allocated once per process).
u8_t LingerExtId() {
  static const u8_t id = tcp_ext_arg_alloc_id();
  return id;
}

}  // namespace

AddressOwnership::AddressOwnership(Stack& stack, SocketServiceCounters& counters, std::optional<AddressPool> pool,
                                   std::unique_ptr<DhcpLeases> dhcp, LoseSockets lose)
    : stack_(stack), counters_(counters), pool_(std::move(pool)), dhcp_(std::move(dhcp)), lose_(std::move(lose)) {}

AddressOwnership::~AddressOwnership() {
  *alive_ = false;
  // Every record belongs to a pcb lwIP still has (its end removes the record): detach them, so
  // that lwIP's later calls find nothing of ours.
  for (auto& [raw, record] : lingering_) {
    tcp_arg(record->pcb, nullptr);
    tcp_recv(record->pcb, nullptr);
    tcp_ext_arg_set(record->pcb, LingerExtId(), nullptr);
  }
}

void AddressOwnership::Begin(uint32_t address, uint64_t lease) {
  holders_[address] = Use{1, lease};
  AcceptAddress(address);
  stack_.AnnounceAddress(address);  // TAP: RFC 5227 announcement to the neighbours; no-op on TUN
  counters_.addresses_taken++;
}

std::optional<uint32_t> AddressOwnership::Take() {
  std::optional<uint32_t> a = pool_ ? pool_->Allocate() : std::nullopt;
  if (!a) {
    counters_.address_exhausted++;
    return std::nullopt;
  }
  Begin(*a, 0);
  return a;
}

void AddressOwnership::Hold(uint32_t address) { holders_[address].holders++; }

void AddressOwnership::Drop(uint32_t address) {
  auto it = holders_.find(address);
  if (it == holders_.end() || --it->second.holders > 0) return;
  const uint64_t lease = it->second.lease;
  holders_.erase(it);
  StopAcceptingAddress(address);
  stack_.SetAddressDscp(address, -1);
  if (lease != 0) {
    dhcp_->Release(lease);  // DHCPRELEASE (RFC 2131 §4.4.6)
  } else {
    pool_->Release(address);
  }
  counters_.addresses_released++;
}

void AddressOwnership::EndLinger(LingerRecord* record) {
  AddressOwnership* owner = record->owner;
  const uint32_t address = record->address;
  owner->lingering_.erase(record);  // frees the record
  boost::asio::post(owner->stack_.io(), [owner, address, alive = owner->alive_] {
    if (*alive) owner->Drop(address);
  });
}

void AddressOwnership::Linger(tcp_pcb* pcb, uint32_t address) {
  auto record = std::make_unique<LingerRecord>(LingerRecord{this, pcb, address});
  LingerRecord* raw = record.get();
  lingering_.emplace(raw, std::move(record));
  counters_.addresses_lingered++;
  // The pcb's end, however it comes (LAST_ACK acknowledged, reset, timed out, TIME_WAIT
  // over): lwIP's "destroyed" extension callback, the one call every freed pcb gets.
  static const tcp_ext_arg_callbacks callbacks{
      [](u8_t, void* data) {
        if (data != nullptr) EndLinger(static_cast<LingerRecord*>(data));
      },
      nullptr};
  tcp_ext_arg_set_callbacks(pcb, LingerExtId(), &callbacks);
  tcp_ext_arg_set(pcb, LingerExtId(), raw);
  // The peer's FIN ends it sooner: the handshake is done, TIME_WAIT need not hold the address.
  tcp_arg(pcb, raw);
  tcp_recv(pcb, [](void* arg, tcp_pcb* p, pbuf* data, err_t) -> err_t {
    if (data != nullptr) {  // data after close: lwIP resets the connection itself
      tcp_recved(p, data->tot_len);
      pbuf_free(data);
      return ERR_OK;
    }
    tcp_arg(p, nullptr);
    tcp_recv(p, nullptr);
    tcp_ext_arg_set(p, LingerExtId(), nullptr);
    if (arg != nullptr) EndLinger(static_cast<LingerRecord*>(arg));
    return ERR_OK;
  });
}

void AddressOwnership::ObtainLease(const std::shared_ptr<Socket>& s, std::function<void(int error)> done) {
  auto bound_once = std::make_shared<bool>(false);
  std::weak_ptr<Socket> weak = s;
  const uint64_t id = s->id();
  s->lease_requested = true;
  dhcp_->Obtain(
      id,
      [this, weak, id, bound_once, done](uint32_t address) {
        std::shared_ptr<Socket> socket = weak.lock();
        if (socket == nullptr || holders_.contains(address)) {
          dhcp_->Release(id);  // nobody wants it, or (a misconfigured server) it is in use here
          return done(socket == nullptr ? ECONNABORTED : EADDRNOTAVAIL);
        }
        *bound_once = true;
        Begin(address, id);
        socket->AdoptAddress(address);
        done(0);
        stack_.AfterCoreWork();
      },
      [this, weak, bound_once, done](int error) {
        if (!*bound_once) return done(error);  // no lease: the call waiting for it fails (ETIMEDOUT)
        std::shared_ptr<Socket> socket = weak.lock();
        if (socket != nullptr && socket->own_address() != 0) LoseLease(socket->own_address(), error);
      });
}

void AddressOwnership::LoseLease(uint32_t address, int error) {
  auto it = holders_.find(address);
  if (it == holders_.end()) return;
  holders_.erase(it);  // the client is gone already: nothing to release
  StopAcceptingAddress(address);
  stack_.SetAddressDscp(address, -1);
  lose_(address, error);
  stack_.AfterCoreWork();
}

std::optional<DhcpStatus> AddressOwnership::dhcp_status() const {
  if (!dhcp_) return std::nullopt;
  const DhcpLeaseCounters d = dhcp_->counters();
  return DhcpStatus{dhcp_->size(), dhcp_->held(), d.requested, d.bound, d.renewed, d.timed_out, d.expired,
                    d.naks, d.released, d.malformed, d.unrouted, d.ignored, d.send_errors};
}

}  // namespace dpm::stack
