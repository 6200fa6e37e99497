// The one status model of dpmd (`dpmd status`, `dpmd status --json`), for the client and the
// gateway alike. Each part of an instance — the socket service, the Ethernet link, the
// gateway's NAT — collects what it reports into a plain struct, a StatusPart, on the core
// thread; a StatusReport renders the parts once as text lines and once as one JSON object,
// made by a JSON library (nlohmann/json), so names from the outside world (device names, API
// paths) are always escaped.
#ifndef DPM_STACK_STATUS_REPORT_H_
#define DPM_STACK_STATUS_REPORT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpm::stack {

/// The JSON object of a report. Members keep the order they were added in, so the report
/// reads top-down like the text form.
using StatusJson = nlohmann::ordered_json;

/// One part of a status report: plain data, collected when the report is asked for.
class StatusPart {
 public:
  virtual ~StatusPart() = default;
  /// Appends this part's lines to `out`, each ending in '\n'.
  virtual void AppendText(std::string& out) const = 0;
  /// Adds this part's members to `report`, the report's top-level JSON object.
  virtual void AddJson(StatusJson& report) const = 0;
};

/// The parts of one report, rendered in the order they were added.
class StatusReport {
 public:
  /// Adds a part constructed from `args` and returns it, to be filled in.
  template <class Part, class... Args>
  Part& Add(Args&&... args) {
    auto part = std::make_unique<Part>(std::forward<Args>(args)...);
    Part& ref = *part;
    parts_.push_back(std::move(part));
    return ref;
  }

  /// The text form: every part's lines, in order.
  std::string Text() const;
  /// The JSON form: one object holding every part's members, and a newline.
  std::string Json() const;
  /// Text() or Json().
  std::string Render(bool json) const { return json ? Json() : Text(); }

 private:
  std::vector<std::unique_ptr<StatusPart>> parts_;
};

}  // namespace dpm::stack

#endif  // DPM_STACK_STATUS_REPORT_H_
