#include "tunnel/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dpm::tunnel {
namespace {

constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxSuffix = 200;

bool LabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// `name` without one trailing dot.
absl::string_view StripDot(absl::string_view name) {
  if (absl::EndsWith(name, ".")) name.remove_suffix(1);
  return name;
}

}  // namespace

bool ValidLabel(absl::string_view label) {
  if (label.empty() || label.size() > kMaxLabel) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!LabelChar(c)) return false;
  }
  return true;
}

bool ValidSuffix(absl::string_view suffix) {
  if (suffix.empty() || suffix.size() > kMaxSuffix) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = suffix.find('.', start);
    const absl::string_view label =
        suffix.substr(start, dot == absl::string_view::npos ? absl::string_view::npos : dot - start);
    if (!ValidLabel(label)) return false;
    if (dot == absl::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string PseudoName(absl::string_view service, absl::string_view proxy, absl::string_view suffix) {
  return absl::StrCat(service, ".", proxy, ".", suffix);
}

std::string CanonicalName(absl::string_view name) { return absl::AsciiStrToLower(StripDot(name)); }

bool UnderSuffix(absl::string_view name, absl::string_view suffix) {
  name = StripDot(name);
  if (name.size() <= suffix.size()) return false;
  return name[name.size() - suffix.size() - 1] == '.' && absl::EndsWithIgnoreCase(name, suffix);
}

std::optional<NameParts> ParsePseudoName(absl::string_view name, absl::string_view suffix) {
  if (!UnderSuffix(name, suffix)) return std::nullopt;
  const std::string lower = CanonicalName(name);
  const absl::string_view head = absl::string_view(lower).substr(0, lower.size() - suffix.size() - 1);
  const size_t dot = head.find('.');
  if (dot == absl::string_view::npos) return std::nullopt;
  NameParts parts{std::string(head.substr(0, dot)), std::string(head.substr(dot + 1))};
  if (!ValidLabel(parts.service) || !ValidLabel(parts.proxy)) return std::nullopt;
  return parts;
}

}  // namespace dpm::tunnel
