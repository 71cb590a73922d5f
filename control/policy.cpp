// SPDX-License-Identifier: BSD-2-Clause
// Effective backend weights from policy, health and drain, and their
// damping (policy.hpp).
#include "control/policy.hpp"

#include <algorithm>
#include <cmath>

namespace sluice {
namespace {

bool eligible(const PolicyInput& b) { return !b.drained && b.weight > 0; }
bool usable(const PolicyInput& b) { return eligible(b) && b.healthy; }

// x / sum(x); all 0 when the sum is 0.
std::vector<double> normalized(std::span<const double> x) {
  double sum = 0;
  for (const double v : x) sum += v;
  std::vector<double> out(x.size(), 0.0);
  if (sum > 0)
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] / sum;
  return out;
}

bool all_zero(std::span<const double> x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return v == 0; });
}

void least_conn(std::span<const PolicyInput> in, std::vector<double>& w) {
  bool any_spare = false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!usable(in[i])) continue;
    const uint64_t cap = in[i].capacity != 0 ? in[i].capacity : in[i].weight;
    const uint64_t active = std::min(in[i].active_flows.value_or(0), cap);
    w[i] = static_cast<double>(cap - active);
    any_spare = any_spare || w[i] > 0;
  }
  if (any_spare) return;
  for (size_t i = 0; i < in.size(); ++i)
    if (usable(in[i])) w[i] = in[i].capacity != 0 ? in[i].capacity : in[i].weight;
}

void fastest(std::span<const PolicyInput> in, std::vector<double>& w) {
  double sum = 0;
  size_t known = 0;
  for (const PolicyInput& b : in) {
    if (usable(b) && b.rtt_us) {
      sum += std::max(*b.rtt_us, kFastestRttFloorUs);
      ++known;
    }
  }
  const double unknown_rtt = known != 0 ? sum / static_cast<double>(known) : kFastestRttFloorUs;
  auto rtt_of = [&](const PolicyInput& b) {
    return b.rtt_us ? std::max(*b.rtt_us, kFastestRttFloorUs) : unknown_rtt;
  };
  double rtt_min = 0;
  for (const PolicyInput& b : in)
    if (usable(b)) rtt_min = rtt_min == 0 ? rtt_of(b) : std::min(rtt_min, rtt_of(b));
  for (size_t i = 0; i < in.size(); ++i) {
    if (!usable(in[i])) continue;
    const double factor = std::clamp(rtt_min / rtt_of(in[i]), kFastestMinFactor, 1.0);
    w[i] = in[i].weight * factor;
  }
}

}  // namespace

PolicyTargets policy_targets(Policy policy, std::span<const PolicyInput> backends) {
  PolicyTargets out;
  out.weights.assign(backends.size(), 0.0);
  for (const PolicyInput& b : backends) {
    out.eligible += eligible(b) ? 1 : 0;
    out.healthy += usable(b) ? 1 : 0;
  }
  out.all_down = out.eligible > 0 && out.healthy == 0;
  if (out.healthy == 0) return out;
  switch (policy) {
    case Policy::kStatic:
      for (size_t i = 0; i < backends.size(); ++i)
        if (usable(backends[i])) out.weights[i] = backends[i].weight;
      break;
    case Policy::kLeastConn:
      least_conn(backends, out.weights);
      break;
    case Policy::kFastest:
      fastest(backends, out.weights);
      break;
  }
  return out;
}

WeightUpdate damp_weights(const PolicyTargets& targets, const DampState& prev,
                          const DampingParams& params) {
  const size_t n = targets.weights.size();
  const std::vector<double> target = normalized(targets.weights);
  WeightUpdate out;
  out.all_down = targets.all_down;

  auto publish = [&](std::vector<double> shares, std::vector<double> smoothed) {
    out.changed = prev.published.size() != n || shares != prev.published;
    out.weights = scale_weights(shares);
    out.state.published = std::move(shares);
    out.state.smoothed = std::move(smoothed);
    return out;
  };

  // Nothing to ramp from or to: the first table, a new set of backends, the
  // way out of all-down (or into it). The targets go out as they are.
  if (prev.published.size() != n || prev.smoothed.size() != n || all_zero(target) ||
      all_zero(prev.published))
    return publish(target, target);

  // A backend whose target is 0 leaves now; the shares the others had are
  // what the fast path gives them without it (Maglev spreads its share).
  std::vector<double> base(n);
  bool hard = false;
  for (size_t i = 0; i < n; ++i) {
    base[i] = target[i] == 0 ? 0.0 : prev.published[i];
    hard = hard || (target[i] == 0) != (prev.published[i] == 0);
  }
  base = normalized(base);

  std::vector<double> smoothed(n, 0.0);
  for (size_t i = 0; i < n; ++i)
    if (target[i] > 0)
      smoothed[i] = prev.smoothed[i] + params.smoothing * (target[i] - prev.smoothed[i]);
  smoothed = normalized(smoothed);

  bool settled = true;
  for (size_t i = 0; i < n; ++i)
    settled = settled && std::abs(smoothed[i] - target[i]) <= params.settle * target[i];
  if (settled && !hard) {
    if (target == prev.published) {
      out.weights = scale_weights(prev.published);
      out.state = {target, prev.published};
      return out;
    }
    return publish(target, target);
  }

  // Every share goes the same fraction of the way to its smoothed target:
  // the largest fraction that keeps each move within its bound. Both ends
  // sum to 1, so every point between them does: no renormalising that
  // would push a share past its bound.
  double fraction = 1.0;
  for (size_t i = 0; i < n; ++i) {
    const double delta = std::abs(smoothed[i] - base[i]);
    const double bound = std::max(params.max_change * base[i], params.min_change);
    if (delta > bound) fraction = std::min(fraction, bound / delta);
  }
  std::vector<double> next(n, 0.0);
  bool moved = hard;
  for (size_t i = 0; i < n; ++i) {
    next[i] = base[i] + fraction * (smoothed[i] - base[i]);
    const double step = std::max(params.step * base[i], params.min_step);
    moved = moved || std::abs(next[i] - base[i]) > step;
  }
  if (!moved) {
    out.weights = scale_weights(prev.published);
    out.state = {std::move(smoothed), prev.published};
    return out;
  }
  return publish(std::move(next), std::move(smoothed));
}

std::vector<uint32_t> scale_weights(std::span<const double> shares) {
  double top = 0;
  for (const double s : shares) top = std::max(top, s);
  std::vector<uint32_t> out(shares.size(), 0);
  if (top <= 0) return out;
  for (size_t i = 0; i < shares.size(); ++i) {
    if (shares[i] <= 0) continue;
    const double w = std::round(shares[i] / top * kMaxEffectiveWeight);
    out[i] = std::max<uint32_t>(1, static_cast<uint32_t>(w));
  }
  return out;
}

}  // namespace sluice
