// How every command of dpm ends a command line: --help and --version print and exit 0, and
// whatever CLI11 refuses is one line "NAME: why (see NAME --help)" with exit status 2.
#ifndef DPM_APPS_CLI_PARSE_H_
#define DPM_APPS_CLI_PARSE_H_

#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

namespace dpm::apps {

/// Parses argv into `app`. Returns the exit status when the program is done (help, version,
/// a parse error), nothing when it should go on.
inline std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv, const char* name) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", name, e.what(), name);
    return 2;
  }
  return std::nullopt;
}

}  // namespace dpm::apps

#endif  // DPM_APPS_CLI_PARSE_H_
