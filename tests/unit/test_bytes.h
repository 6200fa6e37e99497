// Byte helpers shared by the codec unit tests (PCP, NAT-PMP, the libdpm control protocol).
#ifndef DPM_TESTS_UNIT_TEST_BYTES_H_
#define DPM_TESTS_UNIT_TEST_BYTES_H_

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace dpm::testing {

/// Bytes from hex text; anything that is not a hex digit (spaces, newlines, '|' between
/// fields) is ignored. An odd number of digits fails the calling test.
inline std::vector<uint8_t> FromHex(const std::string& text) {
  std::string digits;
  for (char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(c);
  }
  EXPECT_EQ(digits.size() % 2, 0u) << text;
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

/// Lower-case hex of `bytes`; with `group` > 0, a space after every `group` bytes.
inline std::string Hex(absl::Span<const uint8_t> bytes, size_t group = 0) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    absl::StrAppendFormat(&out, "%02x", bytes[i]);
    if (group > 0 && i % group == group - 1 && i + 1 < bytes.size()) out += ' ';
  }
  return out;
}

/// The first `n` bytes (n <= bytes.size()): a message cut short.
inline std::vector<uint8_t> Cut(const std::vector<uint8_t>& bytes, size_t n) {
  return std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
}

/// a.b.c.d as a host-byte-order IPv4 address.
constexpr uint32_t Ip(int a, int b, int c, int d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d);
}

}  // namespace dpm::testing

#endif  // DPM_TESTS_UNIT_TEST_BYTES_H_
