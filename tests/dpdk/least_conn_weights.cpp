// SPDX-License-Identifier: BSD-2-Clause
// least_conn_weights: the least-conn policy over counted flows, in a file of
// its own because control/config.hpp and the core's flow table both name a
// FlowTableConfig.
#include "tests/dpdk/least_conn_weights.hpp"

#include "control/policy.hpp"

namespace sluice::test {

std::vector<double> least_conn_weights(const std::map<uint32_t, uint64_t>& active,
                                       const std::vector<uint32_t>& ids, uint32_t capacity) {
  std::vector<PolicyInput> in;
  for (const uint32_t id : ids) {
    PolicyInput p;
    p.capacity = capacity;
    const auto it = active.find(id);
    p.active_flows = it == active.end() ? 0 : it->second;
    in.push_back(p);
  }
  return policy_targets(Policy::kLeastConn, in).weights;
}

}  // namespace sluice::test
