// libFuzzer target: dpm::vpm::ParseConfigurator (the VPM configurator file) and, for a file it
// accepts, the Dispatcher built from it. Checks besides the sanitizers': an accepted file
// holds only valid AIDs, ports and prefixes, and every dispatch answers with an AID of the
// file (a rule's or the port's default) or a refusal.
//
// Seeds (fuzz/corpus/vpm_configurator/): fuzz/make_vpm_seeds.py writes a full file, a minimal
// one and a refused one.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "vpm/configurator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace vpm = dpm::vpm;
  auto config = vpm::ParseConfigurator(std::string(reinterpret_cast<const char*>(data), size));
  if (!config.ok()) return 0;
  for (const vpm::ApplicationRule& app : config->applications) {
    if (!vpm::ValidAid(app.aid) || app.ports.empty()) std::abort();
    for (const vpm::SourcePattern& s : app.sources) {
      if (s.length < 0 || s.length > 32 || s.port_min > s.port_max) std::abort();
    }
  }
  const vpm::Dispatcher d(*config);
  for (const vpm::PortPolicy& p : config->ports) {
    if (p.key.port == 0 || (p.default_aid && !vpm::ValidAid(*p.default_aid))) std::abort();
    for (uint32_t source : {0u, 0x0a4d0501u, 0xffffffffu}) {
      const auto decision = d.Dispatch(p.key, source, 1024);
      if (decision.kind == vpm::Dispatcher::Decision::kNotMultiplexed) std::abort();
      if (decision.kind != vpm::Dispatcher::Decision::kRefuse && !vpm::ValidAid(decision.aid)) std::abort();
    }
  }
  return 0;
}
