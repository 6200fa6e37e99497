// Virtual port multiplexing in a dpm instance (port_multiplexer.h).
#include "stack/port_multiplexer.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lwip/ip.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "os/entropy.h"
#include "stack/stack.h"
#include "wire/ipv4.h"

namespace dpm::stack {
namespace {

constexpr uint64_t kSweepEveryMs = 1000;
constexpr char kLibraryOrigin[] = "dpm_vpm_configure";
constexpr size_t kSweepFlowsPerTick = 4096;

std::optional<uid_t> LookUpUser(absl::string_view name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  const std::string n(name);
  if (::getpwnam_r(n.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return std::nullopt;
  return found->pw_uid;
}

// The configurator text → the dispatcher; `origin` names it in errors ("--vpm-config FILE").
absl::StatusOr<std::unique_ptr<vpm::Dispatcher>> ParseConfig(const std::string& text, absl::string_view origin) {
  absl::StatusOr<vpm::ConfiguratorConfig> config = vpm::ParseConfigurator(text, &LookUpUser);
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(origin, ": ", config.status().message()));
  return std::make_unique<vpm::Dispatcher>(*config);
}

absl::StatusOr<std::unique_ptr<vpm::Dispatcher>> ReadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat("--vpm-config ", path, ": ", std::strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(why) : absl::NotFoundError(why);
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), absl::StrCat("--vpm-config ", path));
}

vpm::VirtualPortTable::Config TableConfig(const vpm::Dispatcher& d) {
  vpm::VirtualPortTable::Config c;
  c.hidden_min = d.hidden_min();
  c.hidden_max = d.hidden_max();
  c.queue_timeout_ms = d.queue_timeout_ms();
  return c;
}

// The executable of process `pid` (/proc/PID/exe), or "" when it cannot be read.
std::string ExecutableOf(pid_t pid) {
  if (pid <= 0) return "";
  char buf[PATH_MAX];
  const std::string link = absl::StrCat("/proc/", pid, "/exe");
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<PortMultiplexer>> PortMultiplexer::Create(Stack& stack, const std::string& path,
                                                                         const std::string* text) {
  absl::StatusOr<std::unique_ptr<vpm::Dispatcher>> d =
      text != nullptr ? ParseConfig(*text, kLibraryOrigin) : ReadConfig(path);
  if (!d.ok()) return d.status();
  std::unique_ptr<PortMultiplexer> m(new PortMultiplexer(stack, path, *std::move(d)));
  m->inbound_ = stack.AddInboundHook(hook_order::kPortMultiplexer, m.get());
  m->outbound_ = stack.AddOutboundHook(hook_order::kPortMultiplexer, m.get());
  if (absl::Status s = m->OpenNegotiation(); !s.ok()) return s;
  m->ArmSweep();
  return m;
}

PortMultiplexer::PortMultiplexer(Stack& stack, std::string path, std::unique_ptr<vpm::Dispatcher> dispatcher)
    : stack_(stack),
      path_(std::move(path)),
      dispatcher_(std::move(dispatcher)),
      ports_(TableConfig(*dispatcher_)),
      mux_(vpm::MultiplexerConfig{}, ports_),
      started_ms_(stack.clock().NowMs()) {
  mux_.SetDispatcher(dispatcher_.get());
}

PortMultiplexer::~PortMultiplexer() {
  if (server_pcb_ != nullptr) udp_remove(server_pcb_);
  if (client_pcb_ != nullptr) udp_remove(client_pcb_);
}

absl::Status PortMultiplexer::OpenNegotiation() {
  const vpm::CooperativeConfig& c = dispatcher_->cooperative();
  if (!c.present) return absl::OkStatus();
  if (client_ == nullptr) {
    negotiation_port_ = c.port;
    client_ = std::make_unique<vpm::NegotiationClient>(c.timeout_ms);
    negotiation_timer_ = stack_.clock().NewTimer();
    client_pcb_ = udp_new();
    if (client_pcb_ == nullptr || udp_bind(client_pcb_, IP4_ADDR_ANY, 0) != ERR_OK) {
      return absl::ResourceExhaustedError("--vpm-config: no UDP socket for the negotiation");
    }
    udp_recv(
        client_pcb_,
        [](void* arg, udp_pcb*, pbuf* p, const ip_addr_t* addr, u16_t) {
          static_cast<PortMultiplexer*>(arg)->OnAnswer(p, ntohl(ip4_addr_get_u32(ip_2_ip4(addr))));
        },
        this);
  }
  if (c.accept.empty() || server_pcb_ != nullptr) return absl::OkStatus();
  server_pcb_ = udp_new();
  if (server_pcb_ == nullptr || udp_bind(server_pcb_, IP4_ADDR_ANY, negotiation_port_) != ERR_OK) {
    if (server_pcb_ != nullptr) udp_remove(server_pcb_);
    server_pcb_ = nullptr;
    return absl::FailedPreconditionError(
        absl::StrCat("--vpm-config: cooperative.port ", negotiation_port_, ": UDP port in use in this instance"));
  }
  udp_recv(
      server_pcb_,
      [](void* arg, udp_pcb*, pbuf* p, const ip_addr_t* addr, u16_t port) {
        static_cast<PortMultiplexer*>(arg)->OnRequest(p, ntohl(ip4_addr_get_u32(ip_2_ip4(addr))), port,
                                                      ntohl(ip4_addr_get_u32(ip4_current_dest_addr())));
      },
      this);
  return absl::OkStatus();
}

void PortMultiplexer::SendUdp(udp_pcb* pcb, absl::Span<const uint8_t> bytes, uint32_t source, uint32_t destination,
                              uint16_t port) {
  pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(bytes.size()), PBUF_RAM);
  if (p == nullptr) return;
  pbuf_take(p, bytes.data(), static_cast<u16_t>(bytes.size()));
  ip_addr_t from, to;
  ip_addr_set_ip4_u32(&from, htonl(source));
  ip_addr_set_ip4_u32(&to, htonl(destination));
  udp_sendto_if_src(pcb, p, &to, port, stack_.lwip_netif(), &from);
  pbuf_free(p);
}

void PortMultiplexer::OnRequest(pbuf* p, uint32_t source, uint16_t source_port, uint32_t destination) {
  std::vector<uint8_t> bytes(p->tot_len);
  pbuf_copy_partial(p, bytes.data(), p->tot_len, 0);
  pbuf_free(p);
  const uint64_t now = stack_.clock().NowMs();
  const uint32_t epoch = static_cast<uint32_t>((now - started_ms_) / 1000);
  std::vector<uint8_t> answer =
      vpm::AnswerNegotiation(now, epoch, bytes, source, destination, *dispatcher_, ports_, mux_, &server_counters_);
  if (!answer.empty()) SendUdp(server_pcb_, answer, destination, source, source_port);
}

void PortMultiplexer::OnAnswer(pbuf* p, uint32_t source) {
  std::vector<uint8_t> bytes(p->tot_len);
  pbuf_copy_partial(p, bytes.data(), p->tot_len, 0);
  pbuf_free(p);
  if (std::optional<vpm::NegotiationClient::Outcome> o = client_->OnResponse(bytes, source)) EndNegotiation(*o);
  PollNegotiations();
}

const vpm::CooperativePeer* PortMultiplexer::PeerFor(vpm::PortKey key, uint32_t remote) const {
  return client_ == nullptr ? nullptr : dispatcher_->PeerFor(key, remote);
}

int PortMultiplexer::ChooseConnectAid(vpm::PortKey key, const vpm::CooperativePeer& peer, const std::string& requested,
                                      pid_t pid, uid_t uid, std::string* aid) const {
  if (!requested.empty()) {
    *aid = requested;
    return 0;
  }
  if (std::optional<absl::string_view> a =
          dispatcher_->AidForConnect(key, peer, ExecutableOf(pid), uid)) {
    *aid = std::string(*a);
    return 0;
  }
  return EACCES;
}

void PortMultiplexer::Negotiate(uint64_t socket_id, vpm::PortKey key, const std::string& aid, uint32_t local,
                                uint16_t local_port, uint32_t remote, NegotiationDone done) {
  std::array<uint8_t, 12> nonce;
  os::FillRandom(nonce.data(), nonce.size());
  client_->Cancel(socket_id);  // a socket has one at a time
  const vpm::NegotiationClient::Send send =
      client_->Start(stack_.clock().NowMs(), socket_id, key, aid, local, local_port, remote, nonce);
  negotiations_[socket_id] = Negotiation{std::move(done), key, local_port, aid, local, remote};
  SendUdp(client_pcb_, send.bytes, send.local_address, send.peer_address, negotiation_port_);
  PollNegotiations();
}

void PortMultiplexer::CancelNegotiation(uint64_t socket_id) {
  if (negotiations_.erase(socket_id) == 0) return;
  client_->Cancel(socket_id);
}

void PortMultiplexer::EndNegotiation(const vpm::NegotiationClient::Outcome& outcome) {
  auto it = negotiations_.find(outcome.id);
  if (it == negotiations_.end()) return;
  Negotiation n = std::move(it->second);
  negotiations_.erase(it);
  int error = outcome.error;
  if (error == 0) {
    const absl::Status s = mux_.AddClientFlow(stack_.clock().NowMs(), n.key.protocol, n.local, n.local_port,
                                              n.remote, n.key.port, outcome.hidden_port, n.aid);
    if (!s.ok()) error = absl::IsAlreadyExists(s) ? EADDRINUSE : EAGAIN;
  }
  n.done(error, outcome.hidden_port);
}

void PortMultiplexer::PollNegotiations() {
  if (client_ == nullptr) return;
  std::vector<vpm::NegotiationClient::Send> sends;
  const std::vector<vpm::NegotiationClient::Outcome> ended = client_->Poll(stack_.clock().NowMs(), &sends);
  for (const auto& send : sends) SendUdp(client_pcb_, send.bytes, send.local_address, send.peer_address, negotiation_port_);
  if (std::optional<uint64_t> next = client_->NextDeadline()) {
    negotiation_timer_->Start(*next, [this] { PollNegotiations(); });
  } else {
    negotiation_timer_->Cancel();
  }
  for (const auto& o : ended) EndNegotiation(o);
}

void PortMultiplexer::ArmSweep() {
  if (sweep_timer_ == nullptr) sweep_timer_ = stack_.clock().NewTimer();
  sweep_timer_->Start(stack_.clock().NowMs() + kSweepEveryMs, [this] {
    mux_.Sweep(stack_.clock().NowMs(), kSweepFlowsPerTick);
    ArmSweep();
  });
}

absl::Status PortMultiplexer::Reload() {
  if (path_.empty()) return absl::FailedPreconditionError("the rules came from dpm_vpm_configure: no file to read");
  absl::StatusOr<std::unique_ptr<vpm::Dispatcher>> d = ReadConfig(path_);
  if (!d.ok()) return d.status();
  return Replace(*std::move(d));
}

absl::Status PortMultiplexer::Configure(const std::string& text) {
  absl::StatusOr<std::unique_ptr<vpm::Dispatcher>> d = ParseConfig(text, kLibraryOrigin);
  if (!d.ok()) return d.status();
  return Replace(*std::move(d));
}

absl::Status PortMultiplexer::Replace(std::unique_ptr<vpm::Dispatcher> d) {
  mux_.SetDispatcher(d.get());
  dispatcher_ = std::move(d);
  ++reloads_;
  // Cooperative mode turned on (or answering asked for) by the new rules: its sockets open
  // now, on the port the first rules that had it named.
  return OpenNegotiation();
}

int PortMultiplexer::ChooseAid(vpm::PortKey key, const std::string& requested, pid_t pid, uid_t uid,
                               std::string* aid) const {
  if (!requested.empty()) {
    *aid = requested;
    return 0;
  }
  if (std::optional<absl::string_view> a = dispatcher_->AidForSocket(key, ExecutableOf(pid), uid)) {
    *aid = std::string(*a);
    return 0;
  }
  if (std::optional<absl::string_view> a = dispatcher_->DefaultAid(key)) {
    *aid = std::string(*a);
    return 0;
  }
  return EACCES;
}

int PortMultiplexer::Bind(vpm::PortKey key, const std::string& aid, uint64_t socket_id, uint16_t* hidden,
                          BindDone done) {
  const vpm::VirtualPortTable::BindResult r = ports_.Bind(stack_.clock().NowMs(), key, aid, socket_id);
  switch (r.status) {
    case vpm::VirtualPortTable::BindStatus::kNew:
    case vpm::VirtualPortTable::BindStatus::kJoined:
      *hidden = r.hidden_port;
      return 0;
    case vpm::VirtualPortTable::BindStatus::kQueued:
      if (done == nullptr) {
        ports_.Cancel(socket_id);
        return EADDRINUSE;
      }
      waiting_[socket_id] = std::move(done);
      ServeQueue();  // arms the timer for its deadline
      return kQueued;
    case vpm::VirtualPortTable::BindStatus::kQueueFull:
      return EADDRINUSE;
  }
  return EADDRINUSE;
}

void PortMultiplexer::Cancel(uint64_t socket_id) {
  if (waiting_.erase(socket_id) == 0) return;
  ports_.Cancel(socket_id);
  ServeQueue();  // a later waiter may now join a stream
}

void PortMultiplexer::ServeQueue() {
  // Answers may close sockets and so call back in here: take the lists first.
  std::vector<std::pair<BindDone, std::pair<int, uint16_t>>> answers;
  for (const vpm::VirtualPortTable::Grant& g : ports_.TakeGranted()) {
    auto it = waiting_.find(g.waiter);
    if (it == waiting_.end()) continue;
    answers.push_back({std::move(it->second), {0, g.hidden_port}});
    waiting_.erase(it);
  }
  for (uint64_t id : ports_.TakeExpired(stack_.clock().NowMs())) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) continue;
    answers.push_back({std::move(it->second), {EADDRINUSE, 0}});
    waiting_.erase(it);
  }
  if (std::optional<uint64_t> deadline = ports_.NextDeadline()) {
    if (queue_timer_ == nullptr) queue_timer_ = stack_.clock().NewTimer();
    queue_timer_->Start(*deadline, [this] { ServeQueue(); });
  } else if (queue_timer_ != nullptr) {
    queue_timer_->Cancel();
  }
  for (auto& [done, result] : answers) done(result.first, result.second);
}

void PortMultiplexer::Hold(vpm::PortKey key, const std::string& aid) {
  uint16_t ignored;
  Bind(key, aid, 0, &ignored);  // the stream exists: a join, never a queue
}

void PortMultiplexer::Release(vpm::PortKey key, const std::string& aid) {
  ports_.Release(key, aid);
  ServeQueue();  // a freed hidden port goes to the first waiter
}

HookAction PortMultiplexer::OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) {
  const vpm::Result r = mux_.Inbound(stack_.clock().NowMs(), packet, offload.partial_checksum);
  switch (r.action) {
    case vpm::Result::kPass:
    case vpm::Result::kRewritten:
      return HookAction::kPass;
    case vpm::Result::kDrop:
      return HookAction::kTake;
    case vpm::Result::kRefuse: {
      std::vector<uint8_t> answer = vpm::Multiplexer::BuildRefusal(packet);
      if (!answer.empty()) (void)stack_.SendPacket(answer);
      return HookAction::kTake;
    }
  }
  return HookAction::kPass;
}

HookAction PortMultiplexer::OnOutbound(const OutboundPacket& packet) {
  // lwIP computed the transport checksum in software (its CHECKSUM_GEN options): complete.
  const vpm::Result r = mux_.Outbound(stack_.clock().NowMs(), packet.head, /*partial_checksum=*/false);
  return r.action == vpm::Result::kDrop ? HookAction::kTake : HookAction::kPass;
}

nlohmann::json PortMultiplexer::StatusJson() const {
  const uint64_t now = stack_.clock().NowMs();
  nlohmann::json j;
  j["config"] = path_.empty() ? std::string("(dpm_vpm_configure)") : path_;
  j["reloads"] = reloads_;
  j["hidden_ports"] = absl::StrCat(ports_.config().hidden_min, "-", ports_.config().hidden_max);
  j["source_rules"] = dispatcher_->source_rules();
  j["streams"] = nlohmann::json::array();
  for (const vpm::VirtualStream* s : ports_.List()) {
    j["streams"].push_back({{"port", vpm::FormatPortKey(s->key)}, {"aid", s->aid}, {"hidden_port", s->hidden_port},
                            {"members", s->members}});
  }
  j["flows"] = nlohmann::json::array();
  for (const vpm::FlowInfo& f : mux_.List(now)) {
    j["flows"].push_back({{"kind", f.kind},
                          {"protocol", vpm::ProtocolName(f.protocol)},
                          {"local", absl::StrCat(wire::FormatIpv4(f.local_address), ":", f.local_port)},
                          {"remote", absl::StrCat(wire::FormatIpv4(f.remote_address), ":", f.remote_port)},
                          {"virtual_port", f.virtual_port},
                          {"hidden_port", f.hidden_port},
                          {"aid", f.aid},
                          {"idle_s", f.idle_ms / 1000}});
  }
  // The rules, per virtual port, as the file has them (the dispatcher's compiled form answers
  // lookups, not listings).
  const vpm::ConfiguratorConfig& file = dispatcher_->config();
  j["rules"] = nlohmann::json::array();
  for (const vpm::PortPolicy& p : file.ports) {
    nlohmann::json port = {{"port", vpm::FormatPortKey(p.key)}, {"default", p.default_aid.value_or("refuse")}};
    port["sources"] = nlohmann::json::array();
    port["programs"] = nlohmann::json::array();
    port["users"] = nlohmann::json::array();
    for (const vpm::ApplicationRule& app : file.applications) {
      if (std::find(app.ports.begin(), app.ports.end(), p.key) == app.ports.end()) continue;
      for (const vpm::SourcePattern& s : app.sources) {
        port["sources"].push_back({{"source", vpm::FormatSourcePattern(s)}, {"aid", app.aid}});
      }
      for (const std::string& program : app.programs) port["programs"].push_back({{"program", program}, {"aid", app.aid}});
      for (uid_t uid : app.users) port["users"].push_back({{"uid", uid}, {"aid", app.aid}});
    }
    j["rules"].push_back(std::move(port));
  }
  j["aids"] = nlohmann::json::object();
  auto aid_entry = [&](const std::string& aid) -> nlohmann::json& {
    nlohmann::json& e = j["aids"][aid];
    if (e.is_null()) {
      e = {{"flows", 0}, {"unmatched", 0}, {"packets_in", 0}, {"packets_out", 0}, {"refused", 0},
           {"queued", 0}, {"queue_timeouts", 0}};
    }
    return e;
  };
  for (const auto& [aid, c] : mux_.aid_counters()) {
    nlohmann::json& e = aid_entry(aid);
    e["flows"] = c.flows;
    e["unmatched"] = c.by_default;
    e["packets_in"] = c.packets_in;
    e["packets_out"] = c.packets_out;
    e["refused"] = c.refused;
  }
  for (const auto& [aid, q] : ports_.queue_by_aid()) {
    nlohmann::json& e = aid_entry(aid);
    e["queued"] = q.queued;
    e["queue_timeouts"] = q.timeouts;
  }
  j["refused"] = nlohmann::json::object();
  for (const auto& [key, n] : mux_.refused_by_port()) j["refused"][vpm::FormatPortKey(key)] = n;
  nlohmann::json drops = nlohmann::json::object();
  for (size_t i = 1; i < static_cast<size_t>(vpm::Reason::kCount); ++i) {
    const auto reason = static_cast<vpm::Reason>(i);
    drops[vpm::ReasonName(reason)] = mux_.count(reason);
  }
  j["drops"] = drops;
  j["queued"] = ports_.queued_total();
  j["queue_timeouts"] = ports_.timeouts_total();
  if (client_ != nullptr) {
    const vpm::CooperativeConfig& c = dispatcher_->cooperative();
    nlohmann::json coop;
    coop["port"] = negotiation_port_;
    coop["serving"] = server_pcb_ != nullptr;
    coop["accept"] = nlohmann::json::array();
    for (const vpm::SourcePattern& a : c.accept) coop["accept"].push_back(vpm::FormatSourcePattern(a));
    coop["peers"] = nlohmann::json::array();
    for (const vpm::CooperativePeer& peer : c.peers) {
      nlohmann::json e = {{"destinations", nlohmann::json::array()}, {"ports", nlohmann::json::array()}};
      for (const vpm::SourcePattern& d : peer.destinations) e["destinations"].push_back(vpm::FormatSourcePattern(d));
      for (const vpm::PortKey& k : peer.ports) e["ports"].push_back(vpm::FormatPortKey(k));
      if (peer.default_aid) e["default"] = *peer.default_aid;
      coop["peers"].push_back(std::move(e));
    }
    nlohmann::json answered = nlohmann::json::object();
    for (const auto& [code, n] : server_counters_.results) answered[vpm::NegotiationResultName(code)] = n;
    coop["server"] = {{"requests", server_counters_.requests}, {"dropped", server_counters_.dropped},
                      {"answers", answered}};
    nlohmann::json got = nlohmann::json::object();
    for (const auto& [code, n] : client_->results()) got[vpm::NegotiationResultName(code)] = n;
    coop["client"] = {{"sent", client_->sent()},           {"retransmitted", client_->retransmitted()},
                      {"timeouts", client_->timeouts()},   {"unmatched", client_->unmatched()},
                      {"in_flight", client_->in_flight()}, {"answers", got}};
    j["cooperative"] = coop;
  }
  return j;
}

std::string PortMultiplexer::StatusText() const {
  const nlohmann::json j = StatusJson();
  std::string out = absl::StrFormat("virtual ports (%s, hidden %s, %d source rules, %d reloads)\n",
                                    j["config"].get<std::string>(), j["hidden_ports"].get<std::string>(),
                                    j["source_rules"].get<size_t>(), j["reloads"].get<uint64_t>());
  absl::StrAppendFormat(&out, "  %-10s %-16s %-7s %s\n", "PORT", "AID", "HIDDEN", "MEMBERS");
  for (const auto& s : j["streams"]) {
    absl::StrAppendFormat(&out, "  %-10s %-16s %-7d %d\n", s["port"].get<std::string>(), s["aid"].get<std::string>(),
                          s["hidden_port"].get<int>(), s["members"].get<size_t>());
  }
  constexpr size_t kRulesShown = 8;
  for (const auto& r : j["rules"]) {
    absl::StrAppendFormat(&out, "  rules %s: default %s; %d source, %d program, %d user rules\n",
                          r["port"].get<std::string>(), r["default"].get<std::string>(), r["sources"].size(),
                          r["programs"].size(), r["users"].size());
    size_t shown = 0;
    for (const auto& s : r["sources"]) {
      if (shown++ == kRulesShown) break;
      absl::StrAppendFormat(&out, "    from %-24s -> %s\n", s["source"].get<std::string>(), s["aid"].get<std::string>());
    }
    if (r["sources"].size() > kRulesShown) {
      absl::StrAppendFormat(&out, "    ... %d more (dpmd status --json lists them all)\n", r["sources"].size() - kRulesShown);
    }
    for (const auto& s : r["programs"]) {
      absl::StrAppendFormat(&out, "    program %s -> %s\n", s["program"].get<std::string>(), s["aid"].get<std::string>());
    }
    for (const auto& s : r["users"]) {
      absl::StrAppendFormat(&out, "    uid %d -> %s\n", s["uid"].get<uid_t>(), s["aid"].get<std::string>());
    }
  }
  absl::StrAppendFormat(&out, "  flows %d\n", j["flows"].size());
  for (const auto& f : j["flows"]) {
    absl::StrAppendFormat(&out, "  %-6s %s %-21s %-21s %5d -> %-5d %-16s idle %ds\n", f["kind"].get<std::string>(),
                          f["protocol"].get<std::string>(), f["local"].get<std::string>(),
                          f["remote"].get<std::string>(), f["virtual_port"].get<int>(), f["hidden_port"].get<int>(),
                          f["aid"].get<std::string>(), f["idle_s"].get<uint64_t>());
  }
  for (const auto& [aid, c] : j["aids"].items()) {
    absl::StrAppendFormat(&out, "  aid %-16s flows %d unmatched %d packets in %d out %d refused %d queued %d (timed out %d)\n",
                          aid, c["flows"].get<uint64_t>(), c["unmatched"].get<uint64_t>(),
                          c["packets_in"].get<uint64_t>(), c["packets_out"].get<uint64_t>(),
                          c["refused"].get<uint64_t>(), c["queued"].get<uint64_t>(),
                          c["queue_timeouts"].get<uint64_t>());
  }
  for (const auto& [port, n] : j["refused"].items()) absl::StrAppendFormat(&out, "  refused %s: %d\n", port, n.get<uint64_t>());
  absl::StrAppendFormat(&out, "  queued %d, queue timeouts %d\n", j["queued"].get<uint64_t>(),
                        j["queue_timeouts"].get<uint64_t>());
  if (j.contains("cooperative")) {
    const auto& c = j["cooperative"];
    auto answers = [](const nlohmann::json& a) {
      std::string text;
      for (const auto& [name, n] : a.items()) absl::StrAppend(&text, " ", name, " ", n.get<uint64_t>());
      return text.empty() ? std::string(" none") : text;
    };
    std::string accept;
    for (const auto& a : c["accept"]) absl::StrAppend(&accept, accept.empty() ? "" : " ", a.get<std::string>());
    absl::StrAppendFormat(&out, "  cooperative: udp/%d, %s\n", c["port"].get<int>(),
                          c["serving"].get<bool>() ? absl::StrCat("answering ", accept) : std::string("not answering"));
    for (const auto& peer : c["peers"]) {
      std::string d, k;
      for (const auto& x : peer["destinations"]) absl::StrAppend(&d, d.empty() ? "" : " ", x.get<std::string>());
      for (const auto& x : peer["ports"]) absl::StrAppend(&k, k.empty() ? "" : " ", x.get<std::string>());
      absl::StrAppendFormat(&out, "    peer %s ports %s default %s\n", d, k,
                            peer.contains("default") ? peer["default"].get<std::string>() : std::string("none"));
    }
    absl::StrAppendFormat(&out, "    asked of us %d (dropped %d), answers:%s\n", c["server"]["requests"].get<uint64_t>(),
                          c["server"]["dropped"].get<uint64_t>(), answers(c["server"]["answers"]));
    absl::StrAppendFormat(&out, "    asked by us %d (retransmitted %d, timed out %d, in flight %d), answers:%s\n",
                          c["client"]["sent"].get<uint64_t>(), c["client"]["retransmitted"].get<uint64_t>(),
                          c["client"]["timeouts"].get<uint64_t>(), c["client"]["in_flight"].get<size_t>(),
                          answers(c["client"]["answers"]));
  }
  return out;
}

}  // namespace dpm::stack
