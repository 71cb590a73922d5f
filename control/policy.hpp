// SPDX-License-Identifier: BSD-2-Clause
// Effective backend weights: what a VIP's policy (static, least-conn,
// fastest), health and drain make of each backend's inputs, and the damping
// that keeps published weights from thrashing (DESIGN.md "Weights from
// health"). Pure functions: no clock, no I/O; the caller owns the state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "control/config.hpp"

namespace sluice {

/// One backend's inputs to its VIP's policy.
struct PolicyInput {
  uint32_t weight = 100;  // configured, 0..65535; 0 = drain
  bool drained = false;   // drained by the operator: keeps its flows, takes no new ones
  bool healthy = true;    // probes say up, or the backend has no health check
  /// least-conn: the concurrent flows it takes (BackendConfig::capacity);
  /// 0 = not configured, then the configured weight stands in for it.
  uint32_t capacity = 0;
  /// least-conn: flows the fast paths hold on it now; unset = not reported
  /// (counted as 0, so weights follow capacity).
  std::optional<uint64_t> active_flows;
  /// fastest: EWMA of its probe round-trip time, µs; unset = no sample yet.
  std::optional<double> rtt_us;
};

/// What a policy asks for, before damping.
struct PolicyTargets {
  /// One per backend, >= 0; only ratios matter. 0 = no new flows (down,
  /// drained, or, under least-conn, full while others are not).
  std::vector<double> weights;
  size_t eligible = 0;  // backends neither drained nor of configured weight 0
  size_t healthy = 0;   // eligible backends that are healthy
  /// eligible > 0 and none is healthy: every weight is 0. Whether the VIP
  /// then spreads over all eligible backends (panic) is the caller's call.
  bool all_down = false;
};

/// fastest: RTTs below this are taken as equal, µs. Below ~100 µs a probe
/// RTT is scheduling noise (same host, same rack), not backend speed.
inline constexpr double kFastestRttFloorUs = 100.0;
/// fastest: the least fraction of its configured weight a healthy backend
/// keeps however slow its probes are, so a backend whose probes are slow
/// but whose data path is fine is never starved, and keeps being measured.
inline constexpr double kFastestMinFactor = 0.05;

/// The weights a policy asks for. A backend that is drained, of configured
/// weight 0, or unhealthy gets 0 under every policy. For the others:
///   static:     its configured weight.
///   least-conn: its spare capacity, capacity - active_flows (floor 0). When
///               every healthy backend is full (all spare 0), weights follow
///               capacity instead, so overload spreads in proportion to size
///               rather than on one backend or nowhere.
///   fastest:    weight * clamp(rtt_min / rtt, kFastestMinFactor, 1): the
///               configured weight is the baseline and the fastest backend
///               keeps all of it; rtt floored at kFastestRttFloorUs, and a
///               backend with no RTT yet counts as the mean of those that
///               have one (as the fastest when none has).
[[nodiscard]] PolicyTargets policy_targets(Policy policy, std::span<const PolicyInput> backends);

/// How published weights follow the targets. Shares are fractions of a
/// VIP's total weight (0..1). One update is one call of damp_weights(); the
/// daemon calls it on a fixed period (1 s) and on health changes.
struct DampingParams {
  /// Weight of the new target in the smoothed share per update (an EWMA):
  /// inputs that swing back and forth are averaged before they reach a table.
  double smoothing = 0.1;
  /// A published share grows or shrinks by at most max(max_change * itself,
  /// min_change) per update (min_change lets a share at 0 grow at all).
  double max_change = 0.25;
  double min_change = 0.02;
  /// A new table is published only when some share moves by more than
  /// max(step * its published share, min_step) ...
  double step = 0.1;
  double min_step = 0.002;
  /// ... or when the targets hold still: every smoothed share within
  /// settle * target of it. Then the targets are published exactly (once),
  /// so steady inputs end at their exact weights, not up to a step away.
  double settle = 0.01;
};

/// Damping state of one VIP, one entry per backend in the caller's order.
/// Start with an empty one; a change in the number of backends starts
/// afresh (the next update publishes the targets as they are).
struct DampState {
  std::vector<double> smoothed;   // smoothed target shares
  std::vector<double> published;  // shares last published (sum 1, or all 0)
};

/// The most an effective weight is (they are uint16 in the fast path).
inline constexpr uint32_t kMaxEffectiveWeight = 65535;

/// Result of one update.
struct WeightUpdate {
  /// The weights to have in the table, 0..kMaxEffectiveWeight, one per
  /// backend: the published shares scaled so the largest is the maximum.
  std::vector<uint32_t> weights;
  /// Differs from the previous publication: rebuild and publish the table.
  bool changed = false;
  bool all_down = false;  // PolicyTargets::all_down: every weight is 0
  DampState state;        // give to the next update
};

/// One damping update from `prev` towards `targets`. Guarantees:
///   - A backend whose target is 0 (down, drained) gets 0 in this update,
///     and its share goes to the others in proportion to theirs.
///   - Otherwise every share moves the same fraction of the way towards an
///     EWMA (smoothing) of its targets: the largest fraction (<= 1) that
///     keeps each share's move within max(max_change * share, min_change),
///     so a recovered backend ramps in and no share jumps.
///   - changed only on a 0 <-> non-0 transition, a move beyond the step,
///     or the one exact settle of steady targets; otherwise `weights` are
///     the previous ones, bit for bit.
///   - Never all 0 unless every target is 0 (all_down, or no eligible
///     backend); a non-0 share never scales to weight 0.
/// Inputs swinging between two targets whose share differs by d around m
/// settle and stop publishing when d/m <= step * (2 - smoothing) / smoothing
/// (1.9 with the defaults): the smoothed swing is then within the step.
/// At 1 update/s a lasting change is 90% through the smoothing in ~22 s.
[[nodiscard]] WeightUpdate damp_weights(const PolicyTargets& targets, const DampState& prev,
                                        const DampingParams& params = {});

/// Shares (>= 0) to weights 0..kMaxEffectiveWeight: the largest share
/// becomes kMaxEffectiveWeight, a non-0 share at least 1, 0 stays 0.
[[nodiscard]] std::vector<uint32_t> scale_weights(std::span<const double> shares);

}  // namespace sluice
