#include "wire/strict_json.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dpm::wire {
namespace {

using nlohmann::json;

// Reads nothing but the reason a text is not JSON (nlohmann::json's own message: "parse error at
// line 3, column 5: syntax error while parsing object - unexpected '}'; expected ...").
class SyntaxError : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override {
    // Without the "[json.exception.parse_error.101] " prefix, and without the "; last read: '…'"
    // part, which may quote a token (an unterminated string, say): tokens are never shown.
    absl::string_view text = error.what();
    if (const size_t end = text.find("] "); absl::StartsWith(text, "[json.exception.") && end != text.npos) {
      text.remove_prefix(end + 2);
    }
    message = std::string(text.substr(0, text.find("; last read:")));
    return false;
  }
  std::string message;
};

}  // namespace

absl::StatusOr<json> ParseStrictJson(absl::string_view text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json root = json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    SyntaxError error;
    json::sax_parse(text.begin(), text.end(), &error, nlohmann::detail::input_format_t::json, /*strict=*/true);
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", error.message));
  }
  if (!duplicate.empty()) return absl::InvalidArgumentError(absl::StrCat("key '", duplicate, "' given twice"));
  return root;
}

absl::Status JsonError(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status OnlyKnownKeys(const json& object, absl::string_view where, std::initializer_list<absl::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (absl::string_view k : known) found = found || k == key;
    if (!found) return JsonError(where, absl::StrCat("unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadPositiveInteger(const json& object, const char* key, absl::string_view where, size_t* out,
                                 size_t max) {
  const auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 || it->get<uint64_t>() > max) {
    return JsonError(where, absl::StrCat(key, " is not a positive integer"));
  }
  *out = static_cast<size_t>(it->get<uint64_t>());
  return absl::OkStatus();
}

}  // namespace dpm::wire
