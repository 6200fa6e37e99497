// CLI11 validators for numeric options that say what is wrong with the text given: "abc" is
// "not a whole number", 99999 is "outside 1..65535" (CLI11's own Range says "not in range"
// for both).
#ifndef DPM_APPS_CLI_NUMBER_H_
#define DPM_APPS_CLI_NUMBER_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dpm::apps {

/// A whole number from `lo` to `hi` (decimal, no sign unless `lo` < 0, no fraction).
inline CLI::Validator WholeNumber(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t value = 0;
        if (!absl::SimpleAtoi(text, &value)) return absl::StrCat("'", text, "' is not a whole number");
        if (value < lo || value > hi) return absl::StrCat(value, " is outside ", lo, "..", hi);
        return "";
      },
      absl::StrCat("INT in ", lo, "..", hi));
}

/// A number (a fraction allowed) from `lo` to `hi`.
inline CLI::Validator Decimal(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value)) return absl::StrCat("'", text, "' is not a number");
        if (!(value >= lo && value <= hi)) return absl::StrCat(text, " is outside ", lo, "..", hi);
        return "";
      },
      absl::StrCat("NUMBER in ", lo, "..", hi));
}

}  // namespace dpm::apps

#endif  // DPM_APPS_CLI_NUMBER_H_
