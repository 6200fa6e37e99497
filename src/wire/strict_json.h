// Strict reading of JSON configuration files (RFC 8259): the access file of the tunnel server
// (tunnel/access.h) and the VPM configurator (vpm/configurator.h). Stricter than
// nlohmann::json's defaults, because these files decide who may do what: a key given twice in
// one object is an error (nlohmann::json would keep the last silently), a key a reader does
// not know is an error (a typo is not a setting left at its default), and a syntax error's
// message never quotes the text it stopped in (a token may be there).
#ifndef DPM_WIRE_STRICT_JSON_H_
#define DPM_WIRE_STRICT_JSON_H_

#include <cstddef>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dpm::wire {

/// Parses `text` as one JSON value. Errors (InvalidArgument): "not JSON: parse error at line
/// L, column C: …" (nlohmann::json's reason, without the bytes it last read), "key 'K' given
/// twice".
absl::StatusOr<nlohmann::json> ParseStrictJson(absl::string_view text);

/// InvalidArgument "WHERE: WHAT": the error form of every reader of these files.
absl::Status JsonError(absl::string_view where, absl::string_view what);

/// OK when every key of `object` is one of `known`; else JsonError(where, "unknown key 'K'").
absl::Status OnlyKnownKeys(const nlohmann::json& object, absl::string_view where,
                           std::initializer_list<absl::string_view> known);

/// Reads the positive integer `object[key]` into `*out`, leaving `*out` alone when the key is
/// absent. Error: JsonError(where, "KEY is not a positive integer"), also for 0 and for values
/// above `max`.
absl::Status ReadPositiveInteger(const nlohmann::json& object, const char* key, absl::string_view where,
                                 size_t* out, size_t max = SIZE_MAX);

}  // namespace dpm::wire

#endif  // DPM_WIRE_STRICT_JSON_H_
