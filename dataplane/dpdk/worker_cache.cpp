// SPDX-License-Identifier: BSD-2-Clause
// Key-affinity routing of the DPDK worker: the memcached request a UDP
// datagram holds, read in place.
#include "dataplane/dpdk/worker_cache.hpp"

#include <span>

#include "dataplane/core/memcached.hpp"

namespace sluice::dpdk {

std::optional<uint32_t> key_route_hash(const uint8_t* frame, const ParseResult& pr,
                                       uint32_t seed) noexcept {
  if (pr.status != ParseStatus::kOk || pr.key.proto != SLUICE_IPPROTO_UDP || pr.is_icmp_error ||
      pr.is_fragment || pr.payload_offset == 0)
    return std::nullopt;
  if (pr.key.family == SLUICE_FAMILY_IPV6 && pr.l4_offset != pr.l3_offset + SLUICE_IPV6_HLEN)
    return std::nullopt;
  const std::optional<std::string_view> key =
      mc::routing_key(std::span<const uint8_t>(frame + pr.payload_offset, pr.payload_len));
  if (!key) return std::nullopt;
  return mc::route_hash(*key, seed);
}

}  // namespace sluice::dpdk
