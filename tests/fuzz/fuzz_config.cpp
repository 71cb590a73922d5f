// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target for the config loader: any text gives a report, never a
// crash or an exception, and every error in it says where and what.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/config.hpp"

namespace {

constexpr std::string_view kFile = "fuzz.toml";

// An issue names the file it was given, and a line that exists in the
// text (or 0 when unknown).
void check_issue(const sluice::ConfigIssue& issue, size_t lines) {
  if (issue.file != kFile) __builtin_trap();
  if (issue.line > lines + 1) __builtin_trap();
  if (issue.line == 0 && issue.column != 0) __builtin_trap();
  const std::string text = issue.to_string();
  if (text.empty() || text.find(issue.message) == std::string::npos) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t lines = 1;
  for (const char c : text) lines += c == '\n' ? 1 : 0;

  const sluice::ConfigReport report = sluice::parse_config(text, kFile);

  // Exactly one of: a config, or at least one error.
  if (report.config.has_value() == !report.errors.empty()) __builtin_trap();
  if (report.ok() != report.config.has_value()) __builtin_trap();
  for (const auto& e : report.errors) {
    if (e.message.empty()) __builtin_trap();
    check_issue(e, lines);
  }
  for (const auto& w : report.warnings) {
    if (w.message.empty()) __builtin_trap();
    check_issue(w, lines);
  }

  // What validation promises about an accepted config.
  if (report.config) {
    const sluice::Config& c = *report.config;
    size_t backends = 0;
    for (const auto& vip : c.vips) backends += vip.backends.size();
    if (backends != c.backend_count()) __builtin_trap();
    for (const auto& vip : c.vips) {
      for (const auto& b : vip.backends) {
        if (!b.health_check.empty() && c.find_health_check(b.health_check) == nullptr) {
          __builtin_trap();
        }
      }
    }
  }
  return 0;
}
