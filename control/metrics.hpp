// SPDX-License-Identifier: BSD-2-Clause
// Prometheus metrics in the text exposition format, rendered from the same
// JSON results the control socket's `stats`, `backends` and `vips`
// commands return, so the socket and the metrics never disagree.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "control/control_request.hpp"

namespace sluice {

/// The text exposition format 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and
/// TYPE lines per family, then its samples.
///
/// - counters from `stats`: sluice_rx_packets_total, sluice_rx_bytes_total,
///   ..., sluice_drops_total{reason}, sluice_vip_{packets,bytes,new_flows,
///   drops}_total{vip}, sluice_backend_{packets,bytes,new_flows}_total{vip,backend};
///   gauges sluice_flow_table_capacity and sluice_flow_table_probation_capacity
///   (entries over all CPUs) and sluice_flow_table_active_flows (occupancy:
///   the last count of established flows, when known);
/// - gauges from `backends`: sluice_backend_state{vip,backend,state} (1 for
///   the current state, 0 for the others), sluice_backend_weight,
///   sluice_backend_health{vip,backend,state} (up/down/unchecked, what the
///   probes say whether or not it drains), sluice_backend_weight,
///   sluice_backend_effective_weight, sluice_backend_table_entries,
///   sluice_backend_probe_rtt_seconds (EWMA), and for backends that have
///   them sluice_backend_probe_last_rtt_seconds, the counters
///   sluice_backend_probe_{successes,failures}_total and
///   sluice_backend_active_flows;
/// - gauges from `vips`: sluice_vip_panic, sluice_vip_backends,
///   sluice_vip_backends_up.
///
/// Each argument is a command's `result` object; missing or mistyped
/// fields leave their samples out. Never throws for any JSON input.
[[nodiscard]] std::string render_metrics(const nlohmann::json& stats,
                                         const nlohmann::json& backends,
                                         const nlohmann::json& vips);

/// Series of sluice_cache_key_hits: a bound on the label sets the hottest
/// keys add to a scrape.
inline constexpr size_t kMaxCacheKeySeries = 10;

/// The hot-object cache from a `cache` result: counters
/// sluice_cache_{hits,misses,fills,stale_fills,invalidations,
/// vip_invalidations,evictions}_total{vip}, gauges sluice_cache_entries and
/// sluice_cache_bytes{vip}, and the gauge sluice_cache_key_hits{vip,key}:
/// gets answered from the cache for each of the result's `hottest` keys
/// (XDP and DPDK), in its order, at most kMaxCacheKeySeries of them. Its
/// label set changes as keys turn hot and cool (a key that leaves the list
/// or the cache leaves the scrape), and its value restarts when a key is
/// cached again. A key's label value is the key with backslash, double
/// quote and newline escaped, each byte that is not UTF-8 read as U+FFFD
/// (of keys that then read the same, the first is kept); a key of a VIP
/// not in `vips` is left out.
[[nodiscard]] std::string render_cache_metrics(const nlohmann::json& cache);

/// Asks `handler` for `stats`, `backends`, `vips` and `cache` (as a socket
/// client would) and renders them; a command that fails leaves its families
/// empty.
[[nodiscard]] std::string render_metrics_from(const ControlHandler& handler);

}  // namespace sluice
