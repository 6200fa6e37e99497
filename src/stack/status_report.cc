#include "stack/status_report.h"

namespace dpm::stack {

std::string StatusReport::Text() const {
  std::string out;
  for (const auto& part : parts_) part->AppendText(out);
  return out;
}

std::string StatusReport::Json() const {
  StatusJson report = StatusJson::object();
  for (const auto& part : parts_) part->AddJson(report);
  // Replace, not throw, on bytes that are not UTF-8 (a device name is whatever the kernel
  // took): the report must always be valid JSON.
  return report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace dpm::stack
