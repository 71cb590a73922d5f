// SPDX-License-Identifier: BSD-2-Clause
// Maglev balance and disruption reports over the core's builder.
#include "control/maglev_report.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <map>

namespace sluice {

Result<MaglevReport> maglev_report(std::span<const MaglevBackend> backends, uint32_t table_size) {
  auto table = maglev_build(backends, table_size);
  if (!table) return table.error();
  MaglevReport r;
  r.table_size = table_size;
  r.table = std::move(table).value();
  uint64_t total_weight = 0;
  for (const auto& b : backends) total_weight += b.weight;
  r.rows.resize(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    r.rows[i].addr = backends[i].addr;
    r.rows[i].weight = backends[i].weight;
  }
  for (uint32_t e : r.table) ++r.rows[e].entries;
  for (auto& row : r.rows) {
    row.share = static_cast<double>(row.entries) / table_size;
    row.weight_share = static_cast<double>(row.weight) / static_cast<double>(total_weight);
    const double ideal = row.weight_share * table_size;
    const double abs_dev = static_cast<double>(row.entries) - ideal;
    r.max_abs_deviation = std::max(r.max_abs_deviation, std::fabs(abs_dev));
    if (row.weight > 0) {
      row.deviation = abs_dev / ideal;
      r.max_rel_deviation = std::max(r.max_rel_deviation, std::fabs(row.deviation));
    }
  }
  return r;
}

Result<MaglevDisruptionReport> maglev_disruption_report(const MaglevReport& from,
                                                        const MaglevReport& to) {
  if (from.table_size != to.table_size)
    return Error{-EINVAL, "tables of different sizes (" + std::to_string(from.table_size) +
                              " and " + std::to_string(to.table_size) + ")"};
  std::vector<IpAddress> from_addrs, to_addrs;
  for (const auto& row : from.rows) from_addrs.push_back(row.addr);
  for (const auto& row : to.rows) to_addrs.push_back(row.addr);
  auto moved = maglev_disruption(from.table, from_addrs, to.table, to_addrs);
  if (!moved) return moved.error();
  std::map<IpAddress, uint32_t> before;
  for (const auto& row : from.rows) before[row.addr] += row.entries;
  uint32_t kept = 0;
  for (const auto& row : to.rows) {
    auto it = before.find(row.addr);
    if (it != before.end()) kept += std::min(it->second, row.entries);
  }
  return MaglevDisruptionReport{moved.value(), from.table_size - kept};
}

}  // namespace sluice
