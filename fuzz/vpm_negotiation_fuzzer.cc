// libFuzzer target: the cooperative VPM negotiation (dpm::vpm::AnswerNegotiation on the server
// side, dpm::vpm::NegotiationClient on the client side) over the PCP codec's VPM opcode. The
// server has tcp/9000 streams of AIDs green (hidden 12760) and blue (12761), a udp/9053
// stream of green (12760), and accepts 10.77.9.0/24; the client has two negotiations in flight (ids 1 and 2, nonces 1…12 and
// 2…13, towards 10.77.9.2 for tcp/9000 from 10.77.9.1 ports 50000 and 50001, AIDs green and
// red). A fresh state per input keeps every crash reproducible.
//
// Input: up to 32 records, each [flags][length: 2 bytes, big-endian][UDP payload].
//   flags bit 0    0: a request to the server, 1: an answer to the client
//   flags bits 1-2 the packet's source: 10.77.9.1, 10.77.9.2, 10.77.9.3, 10.88.0.1
//   flags 4-7      advance the clock first by kSteps[flags >> 4], then the client polls
// Checks besides the sanitizers': the server's answer is never larger than the request
// (docs/design.md §6), parses as a PCP response, and a SUCCESS names the stream's hidden port
// for the AID asked; the client's outcomes carry an errno or a hidden port, never both.
//
// Seeds (fuzz/corpus/vpm_negotiation/): fuzz/make_vpm_seeds.py writes them: each request
// answered, each answer matched, refusals, a retransmission and a timeout.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dpm/pcp.h"
#include "vpm/negotiation.h"

namespace {

namespace vpm = dpm::vpm;
namespace pcp = dpm::pcp;

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }
constexpr uint64_t kSteps[16] = {0, 1, 249, 250, 500, 999, 1000, 2000, 2999, 3000, 9999, 10000, 60000, 60001, 3600000, 7};
constexpr uint32_t kSources[4] = {Ip(10, 77, 9, 1), Ip(10, 77, 9, 2), Ip(10, 77, 9, 3), Ip(10, 88, 0, 1)};

void CheckOutcome(const vpm::NegotiationClient::Outcome& o) {
  if ((o.error == 0) == (o.hidden_port == 0)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vpm::PortKey app{vpm::Protocol::kTcp, 9000}, dns{vpm::Protocol::kUdp, 9053};
  vpm::ConfiguratorConfig config;
  config.ports = {vpm::PortPolicy{app, std::nullopt}, vpm::PortPolicy{dns, std::nullopt}};
  config.cooperative.present = true;
  config.cooperative.accept = {vpm::SourcePattern{Ip(10, 77, 9, 0), 24, 0, 65535}};
  const vpm::Dispatcher dispatcher(config);
  vpm::VirtualPortTable::Config table;
  table.hidden_min = 12760;
  table.hidden_max = 12763;
  vpm::VirtualPortTable ports(table);
  ports.Bind(0, app, "green", 1);
  ports.Bind(0, app, "blue", 2);
  ports.Bind(0, dns, "green", 3);
  vpm::MultiplexerConfig mc;
  mc.max_flows = 16;
  vpm::Multiplexer mux(mc, ports);
  mux.SetDispatcher(&dispatcher);
  vpm::NegotiationServerCounters counters;
  vpm::NegotiationClient client(3000);
  std::array<uint8_t, 12> nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  client.Start(0, 1, app, "green", Ip(10, 77, 9, 1), 50000, Ip(10, 77, 9, 2), nonce);
  for (uint8_t& b : nonce) ++b;
  client.Start(0, 2, app, "red", Ip(10, 77, 9, 1), 50001, Ip(10, 77, 9, 2), nonce);

  uint64_t now = 0;
  size_t at = 0;
  for (int record = 0; record < 32 && at + 3 <= size; ++record) {
    const uint8_t flags = data[at];
    const size_t length = std::min<size_t>(static_cast<size_t>(data[at + 1]) << 8 | data[at + 2], size - at - 3);
    const std::vector<uint8_t> bytes(data + at + 3, data + at + 3 + length);
    at += 3 + length;
    now += kSteps[flags >> 4];
    const uint32_t source = kSources[(flags >> 1) & 3];
    if ((flags & 1) == 0) {
      const std::vector<uint8_t> answer =
          vpm::AnswerNegotiation(now, 1, bytes, source, Ip(10, 77, 9, 2), dispatcher, ports, mux, &counters);
      if (answer.size() > bytes.size()) std::abort();
      if (!answer.empty()) {
        absl::StatusOr<pcp::Response> r = pcp::ParseResponse(answer);
        if (!r.ok()) std::abort();
        if (r->result == pcp::ResultCode::kSuccess) {
          if (!r->vpm) std::abort();
          const vpm::PortKey key{static_cast<vpm::Protocol>(r->vpm->protocol), r->vpm->virtual_port};
          const vpm::VirtualStream* s = ports.Find(key, r->vpm->aid);
          if (s == nullptr || s->hidden_port != r->vpm->hidden_port) std::abort();
        }
      }
    } else if (std::optional<vpm::NegotiationClient::Outcome> o = client.OnResponse(bytes, source)) {
      CheckOutcome(*o);
    }
    std::vector<vpm::NegotiationClient::Send> sends;
    for (const auto& o : client.Poll(now, &sends)) CheckOutcome(o);
    if (mux.flows() > mc.max_flows) std::abort();
  }
  (void)mux.List(now);
  (void)client.NextDeadline();
  return 0;
}
