// SPDX-License-Identifier: BSD-2-Clause
// How `sluice ctl` shows the daemon's answers to people: aligned tables
// built from the JSON results of control/PROTOCOL.md. Missing or mistyped
// fields show as "-" rather than failing, so a newer daemon stays readable.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sluice {

/// Columns padded to their widest cell, separated by two spaces; a column
/// whose cells are all numbers (or "-") is right-aligned. Ends in "\n".
[[nodiscard]] std::string render_table(const std::vector<std::string>& header,
                                       const std::vector<std::vector<std::string>>& rows);

/// The result of `status`, `vips`, `backends`, `stats` as text.
[[nodiscard]] std::string render_status(const nlohmann::json& result);
[[nodiscard]] std::string render_vips(const nlohmann::json& result);
[[nodiscard]] std::string render_backends(const nlohmann::json& result);
[[nodiscard]] std::string render_stats(const nlohmann::json& result);
/// The result of `drain-instance` / `undrain-instance`: the instance's state
/// and the addresses it still announces.
[[nodiscard]] std::string render_instance_drain(const nlohmann::json& result);

/// `sluice ctl cache`: per VIP hits, misses, hit ratio, fills,
/// invalidations, evictions, entries and bytes; then the hottest keys.
[[nodiscard]] std::string render_cache(const nlohmann::json& result);

/// One frame of `sluice ctl top`: rates between two `stats` results (per
/// second of their time_ns difference) per VIP and backend, drops per
/// second by reason, and each backend's state and weights from a
/// `backends` result.
[[nodiscard]] std::string render_top(const nlohmann::json& stats_before,
                                     const nlohmann::json& stats_after,
                                     const nlohmann::json& backends);

}  // namespace sluice
