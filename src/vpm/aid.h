// Application IDs (the virtual port multiplexing patent's AID; docs/vpm.md "AIDs"): the name
// a socket's virtual stream goes by. Header-only, so the preload hook checks DPM_AID by the
// same rule as the daemon without linking the VPM core.
#ifndef DPM_VPM_AID_H_
#define DPM_VPM_AID_H_

#include <algorithm>
#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"

namespace dpm::vpm {

/// Longest AID, bytes.
inline constexpr size_t kMaxAidLength = 32;

/// True for a valid AID: 1-32 bytes of letters, digits, '.', '_' and '-'. "refuse" is
/// reserved (a port's default that refuses, in the configurator file).
inline bool ValidAid(absl::string_view aid) {
  if (aid.empty() || aid.size() > kMaxAidLength || aid == "refuse") return false;
  return std::all_of(aid.begin(), aid.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; });
}

}  // namespace dpm::vpm

#endif  // DPM_VPM_AID_H_
