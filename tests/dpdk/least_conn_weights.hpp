// SPDX-License-Identifier: BSD-2-Clause
// least_conn_weights: what the least-conn policy makes of active-flow counts
// (control/policy.hpp), for the DPDK fast path's tests.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace sluice::test {

/// policy_targets(kLeastConn) weights of backends `ids`, each of `capacity`
/// flows, with `active` (backend id -> flows; absent: 0) as their counts.
std::vector<double> least_conn_weights(const std::map<uint32_t, uint64_t>& active,
                                       const std::vector<uint32_t>& ids, uint32_t capacity);

}  // namespace sluice::test
