#include "dhcp/dhcp_client.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace dpm::dhcp {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// Options asked for in DHCPDISCOVER and DHCPREQUEST (RFC 2132 §9.8): subnet mask, router,
// DNS servers, lease time, T1, T2.
constexpr uint8_t kParameterRequestList[] = {option::kSubnetMask,         option::kRouter,
                                             option::kDomainNameServer,   option::kIpAddressLeaseTime,
                                             option::kRenewalTime,        option::kRebindingTime};

std::optional<uint64_t> Earliest(std::optional<uint64_t> a, std::optional<uint64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// What every DHCPOFFER and DHCPACK must carry to be usable (RFC 2131 §4.3.1, Table 3).
bool UsableLease(const DhcpMessage& m) {
  return m.yiaddr != 0 && m.server_identifier.has_value() && m.lease_time.has_value();
}

}  // namespace

const char* DhcpStateName(DhcpState state) {
  switch (state) {
    case DhcpState::kInit: return "INIT";
    case DhcpState::kSelecting: return "SELECTING";
    case DhcpState::kRequesting: return "REQUESTING";
    case DhcpState::kBound: return "BOUND";
    case DhcpState::kRenewing: return "RENEWING";
    case DhcpState::kRebinding: return "REBINDING";
  }
  return "UNKNOWN";
}

const char* LostReasonName(LostReason reason) {
  switch (reason) {
    case LostReason::kTimedOut: return "timed out";
    case LostReason::kNak: return "NAK";
    case LostReason::kExpired: return "expired";
  }
  return "UNKNOWN";
}

absl::StatusOr<DhcpClient> DhcpClient::Create(DhcpClientConfig config) {
  if (config.client_identifier.size() < 2 || config.client_identifier.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat("dhcp client: client_identifier is ",
                                                   config.client_identifier.size(),
                                                   " bytes, want 2 to 255 (RFC 2132 §9.14)"));
  }
  if (!config.random) return absl::InvalidArgumentError("dhcp client: random is not set");
  if (config.first_retransmit_ms == 0 || config.first_retransmit_ms > config.max_retransmit_ms) {
    return absl::InvalidArgumentError("dhcp client: want 0 < first_retransmit_ms <= max_retransmit_ms");
  }
  if (config.retransmit_jitter_ms >= config.first_retransmit_ms) {
    return absl::InvalidArgumentError("dhcp client: want retransmit_jitter_ms < first_retransmit_ms");
  }
  return DhcpClient(std::move(config));
}

uint32_t DhcpClient::NewXid() {
  uint32_t x = 1;
  for (int i = 0; i < 16; ++i) {
    uint32_t candidate = config_.random();
    if (candidate == 0) continue;  // 0 means "no transaction" here
    x = candidate;
    if (!config_.xid_in_use || !config_.xid_in_use(x)) break;
  }
  return x;
}

int64_t DhcpClient::Jitter() {
  const uint64_t j = config_.retransmit_jitter_ms;
  if (j == 0) return 0;
  return static_cast<int64_t>(config_.random() % (2 * j + 1)) - static_cast<int64_t>(j);
}

uint64_t DhcpClient::AcquireRetransmitDelay() const {
  uint64_t base = config_.first_retransmit_ms;
  for (int i = 0; i < retransmit_count_ && base < config_.max_retransmit_ms; ++i) base *= 2;
  return std::min(base, config_.max_retransmit_ms);
}

absl::Status DhcpClient::Start(uint64_t now_ms, DhcpActions* out) {
  if (state_ != DhcpState::kInit) {
    return absl::FailedPreconditionError(absl::StrCat("dhcp client: Start() in ", DhcpStateName(state_)));
  }
  BeginAcquisition(now_ms, out);
  return absl::OkStatus();
}

void DhcpClient::BeginAcquisition(uint64_t now_ms, DhcpActions* out) {
  restart_at_ms_.reset();
  lease_.reset();
  acquire_deadline_ms_ = now_ms + config_.acquire_timeout_ms;
  process_start_ms_ = now_ms;
  SendDiscover(now_ms, out);
}

void DhcpClient::SendDiscover(uint64_t now_ms, DhcpActions* out) {
  state_ = DhcpState::kSelecting;
  xid_ = NewXid();
  retransmit_count_ = 0;
  request_first_sent_ms_.reset();
  offered_address_ = 0;
  selected_server_ = 0;
  Emit(BaseRequest(MessageType::kDiscover, now_ms), 0, kLimitedBroadcast, out);
  retransmit_at_ms_ = now_ms + AcquireRetransmitDelay() + Jitter();
}

DhcpMessage DhcpClient::BaseRequest(MessageType type, uint64_t now_ms) const {
  DhcpMessage m;
  m.op = kOpBootRequest;
  m.htype = kHtypeEthernet;
  m.hlen = kHlenEthernet;
  m.xid = xid_;
  std::copy(config_.chaddr.begin(), config_.chaddr.end(), m.chaddr.begin());
  m.message_type = type;
  m.client_identifier = config_.client_identifier;
  if (type == MessageType::kDiscover || type == MessageType::kRequest) {
    // 'secs': seconds since the acquisition or renewal process began (RFC 2131 §2).
    m.secs = static_cast<uint16_t>(std::min<uint64_t>((now_ms - process_start_ms_) / 1000, 0xffff));
    m.flags = kFlagBroadcast;  // see the header: replies must be broadcast on the shared link
    m.parameter_request_list.assign(std::begin(kParameterRequestList), std::end(kParameterRequestList));
    if (config_.maximum_message_size >= 576) m.maximum_message_size = config_.maximum_message_size;
    if (config_.requested_lease_s != 0) m.lease_time = config_.requested_lease_s;
  }
  return m;
}

void DhcpClient::Emit(DhcpMessage message, uint32_t source, uint32_t destination, DhcpActions* out) {
  counters_.transmitted++;
  DhcpTransmit t;
  t.tag = config_.tag;
  t.type = *message.message_type;
  t.payload = SerializeDhcpMessage(message);
  t.source = source;
  t.destination = destination;
  t.broadcast = destination == kLimitedBroadcast;
  out->transmits.push_back(std::move(t));
}

void DhcpClient::SendRequest(uint64_t now_ms, DhcpActions* out) {
  DhcpMessage m = BaseRequest(MessageType::kRequest, now_ms);
  if (!request_first_sent_ms_) request_first_sent_ms_ = now_ms;
  switch (state_) {
    case DhcpState::kRequesting:
      // SELECTING → REQUESTING (RFC 2131 §4.3.2, §4.4.1): ciaddr 0, options 50 and 54.
      m.requested_ip_address = offered_address_;
      m.server_identifier = selected_server_;
      Emit(std::move(m), 0, kLimitedBroadcast, out);
      return;
    case DhcpState::kRenewing:
      // §4.4.5: ciaddr set, no 50 or 54, unicast to the server that granted the lease.
      m.ciaddr = lease_->address;
      Emit(std::move(m), lease_->address, lease_->server, out);
      return;
    case DhcpState::kRebinding:
      m.ciaddr = lease_->address;
      Emit(std::move(m), lease_->address, kLimitedBroadcast, out);
      return;
    default:
      return;
  }
}

void DhcpClient::ScheduleRenewRetransmit(uint64_t now_ms, uint64_t until_ms) {
  // §4.4.5: half the time left, at least 60 s; none past T2 (RENEWING) or expiry (REBINDING),
  // where the next state takes over.
  const uint64_t left = until_ms > now_ms ? until_ms - now_ms : 0;
  const uint64_t delay = std::max(left / 2, config_.min_renew_retransmit_ms);
  if (now_ms + delay < until_ms) {
    retransmit_at_ms_ = now_ms + delay;
  } else {
    retransmit_at_ms_.reset();
  }
}

void DhcpClient::OnTimer(uint64_t now_ms, DhcpActions* out) {
  switch (state_) {
    case DhcpState::kInit:
      if (restart_at_ms_ && now_ms >= *restart_at_ms_) BeginAcquisition(now_ms, out);
      return;
    case DhcpState::kSelecting:
    case DhcpState::kRequesting:
      if (now_ms >= acquire_deadline_ms_) {
        Lose(LostReason::kTimedOut, "", out);
        return;
      }
      if (retransmit_at_ms_ && now_ms >= *retransmit_at_ms_) {
        retransmit_count_++;
        counters_.retransmissions++;
        if (state_ == DhcpState::kSelecting) {
          Emit(BaseRequest(MessageType::kDiscover, now_ms), 0, kLimitedBroadcast, out);
        } else {
          SendRequest(now_ms, out);
        }
        retransmit_at_ms_ = now_ms + AcquireRetransmitDelay() + Jitter();
      }
      return;
    case DhcpState::kBound:
    case DhcpState::kRenewing:
    case DhcpState::kRebinding: {
      const DhcpLease& lease = *lease_;
      if (now_ms >= lease.expiry_ms) {
        Lose(LostReason::kExpired, "", out);
        return;
      }
      if (now_ms >= lease.t2_ms && state_ != DhcpState::kRebinding) {
        // → REBINDING: a new transaction, broadcast to any server (§4.4.5).
        state_ = DhcpState::kRebinding;
        xid_ = NewXid();
        request_first_sent_ms_.reset();
        SendRequest(now_ms, out);
        ScheduleRenewRetransmit(now_ms, lease.expiry_ms);
        return;
      }
      if (now_ms >= lease.t1_ms && state_ == DhcpState::kBound) {
        // → RENEWING: the renewal process begins ('secs' counts from here).
        state_ = DhcpState::kRenewing;
        xid_ = NewXid();
        process_start_ms_ = now_ms;
        request_first_sent_ms_.reset();
        SendRequest(now_ms, out);
        ScheduleRenewRetransmit(now_ms, lease.t2_ms);
        return;
      }
      if (state_ != DhcpState::kBound && retransmit_at_ms_ && now_ms >= *retransmit_at_ms_) {
        counters_.retransmissions++;
        SendRequest(now_ms, out);
        ScheduleRenewRetransmit(now_ms, state_ == DhcpState::kRenewing ? lease.t2_ms : lease.expiry_ms);
      }
      return;
    }
  }
}

std::optional<uint64_t> DhcpClient::NextDeadline() const {
  std::optional<uint64_t> at;
  switch (state_) {
    case DhcpState::kInit:
      return restart_at_ms_;
    case DhcpState::kSelecting:
    case DhcpState::kRequesting:
      return Earliest(retransmit_at_ms_, acquire_deadline_ms_);
    case DhcpState::kBound:
      at = lease_->t1_ms;
      break;
    case DhcpState::kRenewing:
      at = Earliest(retransmit_at_ms_, lease_->t2_ms);
      break;
    case DhcpState::kRebinding:
      at = Earliest(retransmit_at_ms_, lease_->expiry_ms);
      break;
  }
  if (at == kNever) return std::nullopt;
  return at;
}

void DhcpClient::OnMessage(uint64_t now_ms, absl::Span<const uint8_t> payload, DhcpActions* out) {
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(payload);
  if (!m.ok()) {
    counters_.malformed++;
    return;
  }
  OnMessage(now_ms, *m, out);
}

void DhcpClient::OnMessage(uint64_t now_ms, const DhcpMessage& m, DhcpActions* out) {
  if (m.op != kOpBootReply) {
    counters_.not_reply++;
    return;
  }
  // RFC 2131 §4.4.5: replies whose xid is not the open transaction's are silently discarded.
  if (!transaction_open() || m.xid != xid_) {
    counters_.wrong_xid++;
    return;
  }
  if (m.htype != kHtypeEthernet || m.hlen != kHlenEthernet ||
      !std::equal(config_.chaddr.begin(), config_.chaddr.end(), m.chaddr.begin())) {
    counters_.wrong_chaddr++;
    return;
  }
  if (!m.client_identifier.empty() && m.client_identifier != config_.client_identifier) {
    counters_.wrong_client_id++;
    return;
  }
  if (!m.message_type) {
    counters_.unexpected_type++;
    return;
  }
  const MessageType type = *m.message_type;

  switch (state_) {
    case DhcpState::kSelecting:
      if (type != MessageType::kOffer) break;
      if (!UsableLease(m)) {
        counters_.invalid_lease++;
        return;
      }
      // The first acceptable offer wins (§4.4.1 lets the client choose; waiting buys nothing
      // here). REQUESTING keeps the xid (§4.4.1: the DHCPREQUEST carries the offer's xid).
      counters_.offers++;
      state_ = DhcpState::kRequesting;
      offered_address_ = m.yiaddr;
      selected_server_ = *m.server_identifier;
      retransmit_count_ = 0;
      request_first_sent_ms_.reset();
      SendRequest(now_ms, out);
      retransmit_at_ms_ = now_ms + AcquireRetransmitDelay() + Jitter();
      return;

    case DhcpState::kRequesting:
      if (type == MessageType::kAck) {
        if (!UsableLease(m) || *m.server_identifier != selected_server_) {
          counters_.invalid_lease++;
          return;
        }
        counters_.acks++;
        EnterBound(now_ms, m, out);
        AppendEvent(DhcpEvent::Kind::kBound, out);
        return;
      }
      if (type == MessageType::kNak) {
        if (m.server_identifier && *m.server_identifier != selected_server_) {
          counters_.invalid_lease++;
          return;
        }
        // §3.1 step 5 / §4.4.1: restart with a DHCPDISCOVER, within the same give-up time.
        counters_.naks++;
        SendDiscover(now_ms, out);
        return;
      }
      break;

    case DhcpState::kRenewing:
    case DhcpState::kRebinding:
      if (type == MessageType::kAck) {
        if (!UsableLease(m) || m.yiaddr != lease_->address) {
          counters_.invalid_lease++;
          return;
        }
        counters_.acks++;
        EnterBound(now_ms, m, out);
        AppendEvent(DhcpEvent::Kind::kRenewed, out);
        return;
      }
      if (type == MessageType::kNak) {
        // §4.4.5 with §3.1: the address may no longer be used; the socket using it is closed.
        counters_.naks++;
        Lose(LostReason::kNak, m.message, out);
        return;
      }
      break;

    default:
      break;
  }
  counters_.unexpected_type++;
}

void DhcpClient::EnterBound(uint64_t now_ms, const DhcpMessage& ack, DhcpActions* out) {
  DhcpLease lease;
  lease.address = ack.yiaddr;
  lease.subnet_mask = ack.subnet_mask.value_or(0);
  lease.router = ack.routers.empty() ? 0 : ack.routers.front();
  lease.domain_name_servers = ack.domain_name_servers;
  lease.server = *ack.server_identifier;
  lease.lease_s = *ack.lease_time;
  // §4.4.1, §4.4.5: the lease runs from when the client sent its DHCPREQUEST.
  lease.start_ms = request_first_sent_ms_.value_or(now_ms);
  if (lease.lease_s == kInfiniteLease) {
    lease.t1_s = lease.t2_s = kInfiniteLease;
    lease.t1_ms = lease.t2_ms = lease.expiry_ms = kNever;
  } else {
    // §4.4.5: T1 and T2 from options 58 and 59, defaults 0.5 and 0.875 of the lease (in ms, so
    // short leases stay exact). Values that break T1 <= T2 <= lease are replaced, both of
    // them, by the defaults.
    const uint64_t l = lease.lease_s;
    uint64_t t1_ms = ack.renewal_time ? uint64_t{*ack.renewal_time} * 1000 : l * 500;
    uint64_t t2_ms = ack.rebinding_time ? uint64_t{*ack.rebinding_time} * 1000 : l * 875;
    if (!(t1_ms <= t2_ms && t2_ms <= l * 1000)) {
      t1_ms = l * 500;
      t2_ms = l * 875;
    }
    lease.t1_ms = lease.start_ms + t1_ms;
    lease.t2_ms = lease.start_ms + t2_ms;
    lease.expiry_ms = lease.start_ms + l * 1000;
    lease.t1_s = static_cast<uint32_t>((lease.t1_ms - lease.start_ms) / 1000);
    lease.t2_s = static_cast<uint32_t>((lease.t2_ms - lease.start_ms) / 1000);
  }
  lease_ = std::move(lease);
  state_ = DhcpState::kBound;
  retransmit_at_ms_.reset();
  request_first_sent_ms_.reset();
}

void DhcpClient::AppendEvent(DhcpEvent::Kind kind, DhcpActions* out) {
  DhcpEvent e;
  e.tag = config_.tag;
  e.kind = kind;
  if (lease_) e.lease = *lease_;
  out->events.push_back(std::move(e));
}

void DhcpClient::Lose(LostReason reason, std::string server_message, DhcpActions* out) {
  DhcpEvent e;
  e.tag = config_.tag;
  e.kind = DhcpEvent::Kind::kLost;
  e.reason = reason;
  e.server_message = std::move(server_message);
  if (lease_) e.lease = *lease_;
  out->events.push_back(std::move(e));
  state_ = DhcpState::kInit;
  lease_.reset();
  retransmit_at_ms_.reset();
  restart_at_ms_.reset();
}

void DhcpClient::Release(uint64_t now_ms, DhcpActions* out) {
  if (lease_ && state_ != DhcpState::kInit) {
    // §4.4.6 and Table 5: ciaddr, server identifier, the same client identifier; secs 0,
    // flags 0, a new xid; unicast to the server.
    xid_ = NewXid();
    DhcpMessage m = BaseRequest(MessageType::kRelease, now_ms);
    m.ciaddr = lease_->address;
    m.server_identifier = lease_->server;
    Emit(std::move(m), lease_->address, lease_->server, out);
  }
  state_ = DhcpState::kInit;
  lease_.reset();
  retransmit_at_ms_.reset();
  restart_at_ms_.reset();
}

absl::Status DhcpClient::Decline(uint64_t now_ms, DhcpActions* out) {
  if (state_ != DhcpState::kBound) {
    return absl::FailedPreconditionError(absl::StrCat("dhcp client: Decline() in ", DhcpStateName(state_)));
  }
  // Table 5: ciaddr 0, options 50 and 54 and the client identifier; broadcast, as the client
  // has no usable address.
  xid_ = NewXid();
  DhcpMessage m = BaseRequest(MessageType::kDecline, now_ms);
  m.requested_ip_address = lease_->address;
  m.server_identifier = lease_->server;
  Emit(std::move(m), 0, kLimitedBroadcast, out);
  state_ = DhcpState::kInit;
  lease_.reset();
  retransmit_at_ms_.reset();
  restart_at_ms_ = now_ms + config_.decline_restart_ms;
  return absl::OkStatus();
}

// ---- DhcpClientSet --------------------------------------------------------------------

absl::Status DhcpClientSet::Add(uint64_t id, DhcpClientConfig config) {
  if (clients_.contains(id)) return absl::AlreadyExistsError(absl::StrCat("dhcp client set: id ", id, " in use"));
  config.tag = id;
  config.xid_in_use = [this](uint32_t xid) { return by_xid_.contains(xid); };
  absl::StatusOr<DhcpClient> client = DhcpClient::Create(std::move(config));
  if (!client.ok()) return client.status();
  Entry& e = clients_[id];
  e.client = std::make_unique<DhcpClient>(*std::move(client));
  Refresh(id);
  return absl::OkStatus();
}

void DhcpClientSet::Unindex(uint64_t id, Entry& e) {
  if (e.indexed_xid != 0) {
    auto it = by_xid_.find(e.indexed_xid);
    if (it != by_xid_.end() && it->second == id) by_xid_.erase(it);
    e.indexed_xid = 0;
  }
  if (e.indexed_deadline) {
    deadlines_.erase({*e.indexed_deadline, id});
    e.indexed_deadline.reset();
  }
}

void DhcpClientSet::Refresh(uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Entry& e = it->second;
  Unindex(id, e);
  if (uint32_t xid = e.client->xid(); xid != 0) {
    by_xid_[xid] = id;
    e.indexed_xid = xid;
  }
  if (std::optional<uint64_t> d = e.client->NextDeadline()) {
    deadlines_.insert({*d, id});
    e.indexed_deadline = d;
  }
}

void DhcpClientSet::Remove(uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Unindex(id, it->second);
  clients_.erase(it);
}

DhcpClient* DhcpClientSet::Find(uint64_t id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.client.get();
}

const DhcpClient* DhcpClientSet::Find(uint64_t id) const {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.client.get();
}

absl::Status DhcpClientSet::Start(uint64_t id, uint64_t now_ms, DhcpActions* out) {
  DhcpClient* c = Find(id);
  if (c == nullptr) return absl::NotFoundError(absl::StrCat("dhcp client set: no client ", id));
  absl::Status s = c->Start(now_ms, out);
  Refresh(id);
  return s;
}

void DhcpClientSet::Release(uint64_t id, uint64_t now_ms, DhcpActions* out) {
  DhcpClient* c = Find(id);
  if (c == nullptr) return;
  c->Release(now_ms, out);
  Refresh(id);
}

absl::Status DhcpClientSet::Decline(uint64_t id, uint64_t now_ms, DhcpActions* out) {
  DhcpClient* c = Find(id);
  if (c == nullptr) return absl::NotFoundError(absl::StrCat("dhcp client set: no client ", id));
  absl::Status s = c->Decline(now_ms, out);
  Refresh(id);
  return s;
}

std::optional<uint64_t> DhcpClientSet::OnMessage(uint64_t now_ms, absl::Span<const uint8_t> payload,
                                                 DhcpActions* out) {
  absl::StatusOr<DhcpMessage> m = ParseDhcpMessage(payload);
  if (!m.ok()) {
    malformed_++;
    return std::nullopt;
  }
  auto it = by_xid_.find(m->xid);
  if (it == by_xid_.end()) {
    unrouted_++;
    return std::nullopt;
  }
  const uint64_t id = it->second;
  clients_.at(id).client->OnMessage(now_ms, *m, out);
  Refresh(id);
  return id;
}

void DhcpClientSet::OnTimer(uint64_t now_ms, DhcpActions* out) {
  std::vector<uint64_t> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now_ms; ++it) due.push_back(it->second);
  for (uint64_t id : due) {
    auto it = clients_.find(id);
    if (it == clients_.end()) continue;
    it->second.client->OnTimer(now_ms, out);
    Refresh(id);
  }
}

std::optional<uint64_t> DhcpClientSet::NextDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace dpm::dhcp
