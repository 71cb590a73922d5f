// SPDX-License-Identifier: BSD-2-Clause
// The memcached part of the DPDK worker's path (DESIGN.md "Hot-object
// cache"): which UDP requests are placed by their key, and how.
#pragma once

#include <cstdint>
#include <optional>

#include "dataplane/core/packet_parser.hpp"

namespace sluice::dpdk {

/// The hash a request to a VIP with SLUICE_VIP_KEY_HASH is placed by in
/// the VIP's Maglev table (table[hash % M]), instead of its flow hash:
/// mc::route_hash(key, seed) of the one key of a UDP get/gets or write
/// that fills the datagram (mc::routing_key; the key hash and Maglev pick
/// of xdp/cache.bpf.h's lb_select_by_key). nullopt -- placed by the flow
/// hash as usual -- for anything else: TCP (a connection is one stream of
/// many keys), ICMP errors, fragments, IPv6 with extension headers (the
/// XDP path does not follow them either), a payload that is not one such
/// request. `frame` holds the packet `pr` was parsed from; `seed` is the
/// flow hash's (the config's hash_seed). Never allocates.
[[nodiscard]] std::optional<uint32_t> key_route_hash(const uint8_t* frame, const ParseResult& pr,
                                                     uint32_t seed) noexcept;

}  // namespace sluice::dpdk
