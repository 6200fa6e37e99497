// libFuzzer target: the messages libdpm parses from the daemon — replies, accept records,
// endpoints and socket references. Each one that parses must re-encode to the input.
#include <cstdlib>

#include "api/protocol.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dpm::api;
  const absl::Span<const uint8_t> input(data, size);
  if (auto reply = ParseReply(input); reply.ok()) Check(absl::MakeConstSpan(EncodeReply(*reply)) == input);
  if (auto record = ParseAcceptRecord(input); record.ok()) {
    Check(absl::MakeConstSpan(EncodeAcceptRecord(*record)) == input);
  }
  if (auto endpoint = ParseEndpoint(input); endpoint.ok()) {
    Check(absl::MakeConstSpan(EncodeEndpoint(*endpoint)) == input);
    Check(endpoint->family == 0 || endpoint->family == AF_INET || endpoint->family == AF_INET6);
    (void)endpoint->ToString();
  }
  if (auto ref = ParseSocketRef(input); ref.ok()) Check(absl::MakeConstSpan(EncodeSocketRef(*ref)) == input);
  return 0;
}
