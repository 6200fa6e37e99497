// libFuzzer target: dpm::tunnel::ParseAccessConfig (the tunnel server's access file). Any
// input gives a config or an error, never a crash; a config holds only valid names and
// patterns and positive limits, and authenticates nobody with an empty token.
#include <cstdlib>
#include <string>

#include "tunnel/access.h"
#include "tunnel/names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tunnel = dpm::tunnel;
  const absl::StatusOr<tunnel::AccessConfig> config =
      tunnel::ParseAccessConfig(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!config.ok()) return 0;
  if (config->max_streams_per_service == 0) std::abort();
  for (const tunnel::ProxyAccess& proxy : config->proxies) {
    if (!tunnel::ValidLabel(proxy.name) || proxy.max_services == 0 || proxy.max_streams == 0) std::abort();
    if (tunnel::AuthenticateProxy(*config, proxy.name, "")) std::abort();  // tokens have 16 bytes at least
  }
  for (const tunnel::RedirectorAccess& redirector : config->redirectors) {
    if (!tunnel::ValidLabel(redirector.name) || redirector.max_streams == 0) std::abort();
    if (tunnel::AuthenticateRedirector(*config, redirector.name, "")) std::abort();
  }
  return 0;
}
