// SPDX-License-Identifier: BSD-2-Clause
// One VIP entry of a fast path's snapshot, for tests of either path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/abi/flow.h"
#include "tests/common/packet_builder.hpp"

namespace sluice::test {

/// A VIP entry of type `VipSpec` (xdp::SnapshotVip or dpdk::SnapshotVipSpec:
/// both hold {key, meta, table}) for `addr` (text, IPv4 or IPv6), `port`
/// (host order; 0 = every port), `proto` (SLUICE_IPPROTO_*), `vip_id`,
/// `flags` (SLUICE_VIP_*) and its Maglev lookup table of backend ids
/// (xdp::SnapshotVip only views `table`: it must outlive the entry).
/// Throws std::invalid_argument on a bad address (it is test code).
template <typename VipSpec>
VipSpec vip_spec(const std::string& addr, uint16_t port, uint8_t proto, uint32_t vip_id,
                 uint32_t flags, const std::vector<uint32_t>& table) {
  VipSpec sv{};
  const IpAddress a = address(addr);
  sv.key.addr = a.ip;
  sv.key.port = sl_htons(port);
  sv.key.proto = proto;
  sv.key.family = a.family;
  sv.meta.vip_id = vip_id;
  sv.meta.flags = flags;
  sv.table = table;
  return sv;
}

}  // namespace sluice::test
