// SPDX-License-Identifier: BSD-2-Clause
// Maglev reports for people and scripts: a table's balance per backend
// and the disruption between two backend sets (what `sluice maglev`
// prints).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/core/maglev.hpp"

namespace sluice {

/// One backend's place in a built table.
struct MaglevReportRow {
  IpAddress addr;
  uint32_t weight = 0;
  uint32_t entries = 0;       // table entries pointing at it
  double share = 0;           // entries / M, fraction 0..1
  double weight_share = 0;    // weight / sum of weights, fraction 0..1
  double deviation = 0;       // (entries - ideal) / ideal, ideal = M * weight share; 0 for weight 0
};

/// A table and its balance.
struct MaglevReport {
  uint32_t table_size = 0;          // M, entries
  std::vector<MaglevReportRow> rows;  // in the caller's backend order
  std::vector<uint32_t> table;      // M entries, indices into rows
  double max_abs_deviation = 0;     // max |entries - ideal|, entries
  double max_rel_deviation = 0;     // max |deviation| over backends with weight > 0
};

/// Builds the table of `backends` (MaglevBuilder) and measures it.
/// Errors: those of MaglevBuilder::build (-EINVAL bad size or duplicate
/// addresses, -ENOENT no backend or every weight 0).
[[nodiscard]] Result<MaglevReport> maglev_report(std::span<const MaglevBackend> backends,
                                                 uint32_t table_size);

/// How many entries changed backend between two tables of the same size.
struct MaglevDisruptionReport {
  uint32_t moved = 0;    // slots whose backend address differs
  /// The fewest slots any table with the second table's per-address entry
  /// counts could have changed: M - sum over addresses of
  /// min(entries before, entries after).
  uint32_t minimum = 0;
};

/// Compares two reports by backend address. Errors: -EINVAL for tables of
/// different sizes.
[[nodiscard]] Result<MaglevDisruptionReport> maglev_disruption_report(const MaglevReport& from,
                                                                      const MaglevReport& to);

}  // namespace sluice
