// `dpmd --config FILE`: every key in the file must name an option of its section's command,
// so a misspelled key ("adress = ...") is an error naming the key and its line instead of a
// setting silently left at its default.
#ifndef DPM_APPS_DPMD_CONFIG_CHECK_H_
#define DPM_APPS_DPMD_CONFIG_CHECK_H_

#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"

namespace dpmd {

/// Reads the TOML/INI file at `path` as CLI11 does — "[section]" lines naming a subcommand of
/// `app` ("[default]" or none: `app` itself), "key = value" lines, "section.key = value",
/// comments after '#' or ';' — and checks each key against the long option names of its
/// command ("api-socket", also written "api_socket"). Errors: NotFound (the file cannot be
/// read), InvalidArgument ("FILE:LINE: unknown key 'adress' in [client]", with the closest
/// option when one is near).
absl::Status CheckConfigKeys(const std::string& path, const CLI::App& app);

/// The value of `--config FILE` / `--config=FILE` in argv, or "" when there is none.
std::string ConfigPathFromArgs(int argc, char** argv);

}  // namespace dpmd

#endif  // DPM_APPS_DPMD_CONFIG_CHECK_H_
