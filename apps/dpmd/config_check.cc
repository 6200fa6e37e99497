#include "apps/dpmd/config_check.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace dpmd {
namespace {

// Levenshtein distance, for "did you mean".
size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const CLI::App* Subcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == name) return sub;
  }
  return nullptr;
}

std::vector<std::string> LongNames(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::Option* option : command.get_options()) {
    for (const std::string& name : option->get_lnames()) names.push_back(name);
  }
  return names;
}

}  // namespace

absl::Status CheckConfigKeys(const std::string& path, const CLI::App& app) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  const CLI::App* section = &app;
  std::string section_name = "default";
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text.front() == '[' && text.back() == ']' && text.find('=') == absl::string_view::npos) {
      section_name = std::string(absl::StripAsciiWhitespace(text.substr(1, text.size() - 2)));
      if (section_name == "default") {
        section = &app;
        continue;
      }
      section = Subcommand(app, section_name);
      if (section == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", number, ": unknown section [", section_name, "] (want client, gateway or status)"));
      }
      continue;
    }
    const size_t equals = text.find('=');
    if (equals == absl::string_view::npos) continue;  // a continued TOML array
    std::string key(absl::StripAsciiWhitespace(text.substr(0, equals)));
    if (key.size() >= 2 && key.front() == '"' && key.back() == '"') key = key.substr(1, key.size() - 2);
    const CLI::App* command = section;
    std::string where = section_name;
    if (const size_t dot = key.rfind('.'); dot != std::string::npos && section == &app) {
      where = key.substr(0, dot);
      command = Subcommand(app, where);
      key = key.substr(dot + 1);
      if (command == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": unknown section '", where, "'"));
      }
    }
    const std::string dashed = absl::StrReplaceAll(key, {{"_", "-"}});
    const std::vector<std::string> names = LongNames(*command);
    if (std::find(names.begin(), names.end(), dashed) != names.end()) continue;
    std::string hint;
    if (command == &app) {
      for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        const std::vector<std::string> sub_names = LongNames(*sub);
        if (std::find(sub_names.begin(), sub_names.end(), dashed) != sub_names.end()) {
          hint = absl::StrCat(" (an option of '", sub->get_name(), "': put it under [", sub->get_name(), "])");
          break;
        }
      }
    }
    size_t best = hint.empty() ? 3 : 0;  // suggest only a near name
    for (const std::string& name : names) {
      if (const size_t d = Distance(dashed, name); d < best) {
        best = d;
        hint = absl::StrCat(" (did you mean '", name, "'?)");
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": unknown key '", key, "' in [", where, "]", hint));
  }
  return absl::OkStatus();
}

std::string ConfigPathFromArgs(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) return argv[i + 1];
    if (absl::StartsWith(arg, "--config=")) return std::string(arg.substr(9));
  }
  return "";
}

}  // namespace dpmd
