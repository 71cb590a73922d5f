// SPDX-License-Identifier: BSD-2-Clause
// Weight policies and damping: scripted health, flows and RTTs to weights;
// damping bounds, drain, recovery and no oscillation over sequences.
#include "control/policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace sluice {
namespace {

// Builders (designated initialisers would have to name every field).
PolicyInput up(uint32_t weight = 100) {
  PolicyInput b;
  b.weight = weight;
  return b;
}
PolicyInput down(uint32_t weight = 100) {
  PolicyInput b = up(weight);
  b.healthy = false;
  return b;
}
PolicyInput drained(uint32_t weight = 100) {
  PolicyInput b = up(weight);
  b.drained = true;
  return b;
}
PolicyInput conn(uint32_t capacity, std::optional<uint64_t> active, bool healthy = true) {
  PolicyInput b;
  b.capacity = capacity;
  b.active_flows = active;
  b.healthy = healthy;
  return b;
}
PolicyInput rtt(std::optional<double> us, uint32_t weight = 100, bool healthy = true) {
  PolicyInput b = up(weight);
  b.rtt_us = us;
  b.healthy = healthy;
  return b;
}

struct TargetCase {
  std::string name;
  Policy policy;
  std::vector<PolicyInput> in;
  std::vector<double> want;  // relative weights
  bool all_down = false;
  size_t eligible = 0;
  size_t healthy = 0;
};

TEST(PolicyTargets, Table) {
  // One case a line reads as a table.
  // clang-format off
  const std::vector<TargetCase> cases = {
      {"static equal is round robin", Policy::kStatic, {up(), up(), up()}, {100, 100, 100}, false, 3, 3},
      {"static configured weights", Policy::kStatic, {up(300), up(100)}, {300, 100}, false, 2, 2},
      {"static down gets 0", Policy::kStatic, {up(), down(), up()}, {100, 0, 100}, false, 3, 2},
      {"static drained gets 0", Policy::kStatic, {up(), drained()}, {100, 0}, false, 1, 1},
      {"static weight 0 is drain", Policy::kStatic, {up(), up(0)}, {100, 0}, false, 1, 1},
      {"static all down", Policy::kStatic, {down(), down()}, {0, 0}, true, 2, 0},
      {"drained and down: still all down", Policy::kStatic, {drained(), down()}, {0, 0}, true, 1, 0},
      {"all drained is not all down", Policy::kStatic, {drained(), drained()}, {0, 0}, false, 0, 0},
      {"no backends", Policy::kStatic, {}, {}, false, 0, 0},
      {"least-conn spare capacity", Policy::kLeastConn, {conn(100, 50), conn(200, 50)}, {50, 150}, false, 2, 2},
      {"least-conn full backend gets 0", Policy::kLeastConn, {conn(100, 100), conn(100, 10)}, {0, 90}, false, 2, 2},
      {"least-conn over capacity floors at 0", Policy::kLeastConn, {conn(100, 500), conn(100, 0)}, {0, 100}, false, 2, 2},
      {"least-conn all full: by capacity", Policy::kLeastConn, {conn(100, 100), conn(300, 900)}, {100, 300}, false, 2, 2},
      {"least-conn no flow counts: by capacity", Policy::kLeastConn, {conn(100, {}), conn(300, {})}, {100, 300}, false, 2, 2},
      {"least-conn no capacity: the weight", Policy::kLeastConn, {up(40), conn(100, 30)}, {40, 70}, false, 2, 2},
      {"least-conn down gets 0", Policy::kLeastConn, {conn(100, 0), conn(100, 0, false)}, {100, 0}, false, 2, 1},
      {"fastest 1/rtt", Policy::kFastest, {rtt(200), rtt(400), rtt(800)}, {100, 50, 25}, false, 3, 3},
      {"fastest weight is the baseline", Policy::kFastest, {rtt(200, 300), rtt(400, 100)}, {300, 50}, false, 2, 2},
      {"fastest rtt under the floor counts as the floor", Policy::kFastest, {rtt(20), rtt(80), rtt(200)}, {100, 100, 50}, false, 3, 3},
      {"fastest no rtt: the mean of the others", Policy::kFastest, {rtt(200), rtt(600), rtt({})}, {100, 100.0 / 3, 50}, false, 3, 3},
      {"fastest no rtt at all: the weights", Policy::kFastest, {rtt({}, 200), rtt({}, 100)}, {200, 100}, false, 2, 2},
      {"fastest very slow keeps the least factor", Policy::kFastest, {rtt(200), rtt(200000)}, {100, 5}, false, 2, 2},
      {"fastest down gets 0, min over the healthy", Policy::kFastest, {rtt(400), rtt(100, 100, false)}, {100, 0}, false, 2, 1},
  };
  // clang-format on
  for (const TargetCase& c : cases) {
    SCOPED_TRACE(c.name);
    const PolicyTargets t = policy_targets(c.policy, c.in);
    ASSERT_EQ(t.weights.size(), c.want.size());
    for (size_t i = 0; i < c.want.size(); ++i)
      EXPECT_NEAR(t.weights[i], c.want[i], 1e-9) << "backend " << i;
    EXPECT_EQ(t.all_down, c.all_down);
    EXPECT_EQ(t.eligible, c.eligible);
    EXPECT_EQ(t.healthy, c.healthy);
  }
}

TEST(ScaleWeights, LargestIsMaxNonZeroStaysNonZero) {
  EXPECT_EQ(scale_weights(std::vector<double>{0.5, 0.25, 0.0}),
            (std::vector<uint32_t>{65535, 32768, 0}));
  EXPECT_EQ(scale_weights(std::vector<double>{1.0, 1e-9}), (std::vector<uint32_t>{65535, 1}));
  EXPECT_EQ(scale_weights(std::vector<double>{0.0, 0.0}), (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(scale_weights(std::vector<double>{}), (std::vector<uint32_t>{}));
}

double share(const WeightUpdate& u, size_t i) { return u.state.published[i]; }

std::vector<double> shares_of(const std::vector<uint32_t>& w) {
  double sum = 0;
  for (const uint32_t x : w) sum += x;
  std::vector<double> out;
  for (const uint32_t x : w) out.push_back(sum > 0 ? x / sum : 0.0);
  return out;
}

// Checks what damp_weights guarantees between two consecutive updates.
void expect_bounded(const DampState& prev, const PolicyTargets& t, const WeightUpdate& u,
                    const DampingParams& p) {
  if (prev.published.size() != t.weights.size()) return;
  const size_t n = t.weights.size();
  std::vector<double> base(n, 0.0);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    base[i] = t.weights[i] > 0 ? prev.published[i] : 0.0;
    sum += base[i];
  }
  if (sum == 0) return;  // out of all-down: published as is
  for (size_t i = 0; i < n; ++i) {
    base[i] /= sum;
    if (t.weights[i] == 0) {
      EXPECT_EQ(u.weights[i], 0u) << "a backend with target 0 leaves at once";
      continue;
    }
    const double bound = std::max(p.max_change * base[i], p.min_change);
    const double moved = std::abs(u.state.published[i] - base[i]);
    EXPECT_LE(moved, bound + 1e-12) << "backend " << i;
  }
}

// Feeds a sequence of targets through damping, checking the bounds at each
// update; returns every update.
std::vector<WeightUpdate> run(const std::vector<PolicyTargets>& seq, const DampingParams& p = {}) {
  std::vector<WeightUpdate> out;
  DampState state;
  for (const PolicyTargets& t : seq) {
    WeightUpdate u = damp_weights(t, state, p);
    expect_bounded(state, t, u, p);
    EXPECT_EQ(u.weights, scale_weights(u.state.published));
    const bool any =
        std::any_of(u.weights.begin(), u.weights.end(), [](uint32_t w) { return w > 0; });
    const bool any_target =
        std::any_of(t.weights.begin(), t.weights.end(), [](double w) { return w > 0; });
    EXPECT_EQ(any, any_target) << "never all 0 unless every target is";
    if (!out.empty() && !u.changed) {
      EXPECT_EQ(u.weights, out.back().weights) << "unchanged is bit for bit";
    }
    state = u.state;
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<PolicyTargets> repeat(const PolicyTargets& t, size_t n) {
  return std::vector<PolicyTargets>(n, t);
}

size_t publications(const std::vector<WeightUpdate>& us, size_t from = 0) {
  size_t n = 0;
  for (size_t i = from; i < us.size(); ++i) n += us[i].changed ? 1 : 0;
  return n;
}

TEST(Damping, FirstUpdatePublishesTargetsThenHoldsStill) {
  const PolicyTargets t =
      policy_targets(Policy::kStatic, std::vector<PolicyInput>{up(300), up(100)});
  const auto us = run(repeat(t, 20));
  EXPECT_TRUE(us[0].changed);
  EXPECT_EQ(us[0].weights, (std::vector<uint32_t>{65535, 21845}));
  EXPECT_EQ(publications(us, 1), 0u);
}

TEST(Damping, DownLeavesAtOnceAndItsShareGoesToTheOthers) {
  const std::vector<PolicyInput> healthy = {up(), up(), up(200)};
  std::vector<PolicyInput> one_down = healthy;
  one_down[1].healthy = false;
  std::vector<PolicyTargets> seq = repeat(policy_targets(Policy::kStatic, healthy), 3);
  seq.push_back(policy_targets(Policy::kStatic, one_down));
  const auto us = run(seq);
  EXPECT_TRUE(us[3].changed);
  EXPECT_EQ(us[3].weights, (std::vector<uint32_t>{32768, 0, 65535}));
  EXPECT_NEAR(share(us[3], 0), 1.0 / 3, 1e-12);
}

TEST(Damping, DrainIsImmediateLikeDown) {
  std::vector<PolicyInput> in = {up(), up()};
  std::vector<PolicyTargets> seq = repeat(policy_targets(Policy::kStatic, in), 2);
  in[0].drained = true;
  seq.push_back(policy_targets(Policy::kStatic, in));
  const auto us = run(seq);
  EXPECT_TRUE(us[2].changed);
  EXPECT_EQ(us[2].weights, (std::vector<uint32_t>{0, 65535}));
}

// A backend that was down comes back (the checker saw `rise` successes):
// its share ramps in within the bounds, every step is published, and it
// ends at exactly its configured share, after which nothing changes.
TEST(Damping, RecoveryRampsInAndSettlesExactly) {
  std::vector<PolicyInput> in = {up(), up(), up(), up()};
  in[3].healthy = false;
  std::vector<PolicyTargets> seq = repeat(policy_targets(Policy::kStatic, in), 2);
  in[3].healthy = true;
  const auto back = policy_targets(Policy::kStatic, in);
  for (int i = 0; i < 100; ++i) seq.push_back(back);
  const auto us = run(seq);

  EXPECT_EQ(us[1].weights[3], 0u);
  EXPECT_TRUE(us[2].changed);
  EXPECT_GT(us[2].weights[3], 0u) << "it takes new flows from its first update up";
  EXPECT_LE(share(us[2], 3), DampingParams{}.min_change + 1e-12) << "but only a little";
  double last = 0;
  size_t settled_at = 0;
  for (size_t i = 2; i < us.size(); ++i) {
    EXPECT_GE(share(us[i], 3), last - 1e-12) << "a recovering share never goes back, update " << i;
    last = share(us[i], 3);
    if (us[i].changed) settled_at = i;
  }
  EXPECT_EQ(us.back().weights, (std::vector<uint32_t>{65535, 65535, 65535, 65535}));
  EXPECT_LT(settled_at, 60u) << "settles within ~60 updates";
  EXPECT_GT(publications(us, 2), 3u) << "ramps in several steps";
}

// Fastest with RTTs that keep alternating (a noisy backend): after the
// smoothing has taken the swing in, no more tables are published.
TEST(Damping, AlternatingInputsDoNotOscillate) {
  struct Case {
    std::string name;
    Policy policy;
    std::vector<PolicyInput> a, b;
  };
  const std::vector<Case> cases = {
      {"fastest rtt 300/600 us", Policy::kFastest, {rtt(300), rtt(300)}, {rtt(300), rtt(600)}},
      {"fastest rtt 200/2000 us, 3 backends",
       Policy::kFastest,
       {rtt(200), rtt(2000), rtt(400)},
       {rtt(2000), rtt(200), rtt(400)}},
      {"least-conn flows 10/90 of 100",
       Policy::kLeastConn,
       {conn(100, 10), conn(100, 90)},
       {conn(100, 90), conn(100, 10)}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<PolicyTargets> seq;
    for (int i = 0; i < 200; ++i) seq.push_back(policy_targets(c.policy, i % 2 ? c.b : c.a));
    const auto us = run(seq);
    EXPECT_EQ(publications(us, 100), 0u);
    EXPECT_LT(publications(us), 30u);
  }
}

// Swings the damping does not hide are still bounded per update (checked
// in run()) and do not grow.
TEST(Damping, LargeSwingsStayWithinBounds) {
  std::vector<PolicyTargets> seq;
  for (int i = 0; i < 100; ++i) {
    const double r = (i / 5) % 2 ? 150 : 5000;  // a backend slows down and recovers, 5 updates each
    seq.push_back(
        policy_targets(Policy::kFastest, std::vector<PolicyInput>{rtt(150), rtt(r), rtt(300)}));
  }
  const auto us = run(seq);
  for (size_t i = 1; i < us.size(); ++i)
    for (size_t b = 0; b < 3; ++b) EXPECT_GT(us[i].weights[b], 0u);
}

TEST(Damping, AllDownPublishesZerosAndRecoversAtOnce) {
  std::vector<PolicyInput> in = {up(), up()};
  std::vector<PolicyTargets> seq = repeat(policy_targets(Policy::kStatic, in), 2);
  in[0].healthy = in[1].healthy = false;
  seq.push_back(policy_targets(Policy::kStatic, in));
  seq.push_back(policy_targets(Policy::kStatic, in));
  in[1].healthy = true;
  seq.push_back(policy_targets(Policy::kStatic, in));
  const auto us = run(seq);
  EXPECT_TRUE(us[2].all_down);
  EXPECT_TRUE(us[2].changed);
  EXPECT_EQ(us[2].weights, (std::vector<uint32_t>{0, 0}));
  EXPECT_FALSE(us[3].changed);
  EXPECT_FALSE(us[4].all_down);
  EXPECT_TRUE(us[4].changed);
  EXPECT_EQ(us[4].weights, (std::vector<uint32_t>{0, 65535})) << "nothing to ramp from";
}

TEST(Damping, NewBackendCountStartsAfresh) {
  const auto two = policy_targets(Policy::kStatic, std::vector<PolicyInput>{up(), up()});
  const auto three = policy_targets(Policy::kStatic, std::vector<PolicyInput>{up(), up(), up(50)});
  const auto us = run({two, two, three, three});
  EXPECT_TRUE(us[2].changed);
  EXPECT_EQ(us[2].weights, (std::vector<uint32_t>{65535, 65535, 32768}));
  EXPECT_FALSE(us[3].changed);
}

// least-conn: a backend filling up loses share gradually; one that empties
// gains it back; published weights track the targets within the step.
TEST(Damping, LeastConnTracksFlows) {
  std::vector<PolicyTargets> seq;
  for (uint64_t f = 0; f <= 80; f += 2)
    seq.push_back(
        policy_targets(Policy::kLeastConn, std::vector<PolicyInput>{conn(100, f), conn(100, 0)}));
  for (int i = 0; i < 40; ++i) seq.push_back(seq.back());
  const auto us = run(seq);
  const std::vector<double> s = shares_of(us.back().weights);
  EXPECT_NEAR(s[0], 20.0 / 120, 1e-4);
  EXPECT_NEAR(s[1], 100.0 / 120, 1e-4);
}

}  // namespace
}  // namespace sluice
