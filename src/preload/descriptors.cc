#include "preload/descriptors.h"
#include "preload/in_dpm.h"

namespace dpm::preload::internal {

std::atomic<uint8_t> g_kinds[kMaxTracked];  // zero: nothing is ours at start
thread_local bool t_in_dpm __attribute__((tls_model("initial-exec"))) = false;

}  // namespace dpm::preload::internal
