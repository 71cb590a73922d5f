// SPDX-License-Identifier: BSD-2-Clause
// What must hold of any ParseResult, whatever bytes were parsed: shared by
// the unit tests' truncation sweeps and the parser fuzz target.
#pragma once

#include <cstddef>

#include "dataplane/core/packet_parser.hpp"

namespace sluice::test {

/// Returns nullptr if `r` (from parse_packet on `len` bytes) is
/// self-consistent, else a sentence naming the broken invariant.
inline const char* parse_invariant_violation(const ParseResult& r, size_t len) {
  const size_t end = len < kMaxParsedFrameLen ? len : kMaxParsedFrameLen;
  if (r.status >= ParseStatus::kCount) return "status out of range";
  if (r.key.pad[0] != 0 || r.key.pad[1] != 0) return "key padding not zero";
  if (r.vlan_count > SLUICE_MAX_VLAN_TAGS) return "more VLAN tags than the bound";
  // Offsets are set only once the bytes they cover are known to exist, so
  // these hold even for rejects.
  if (r.l3_offset > end || r.l4_offset > end) return "offset past the frame";
  if (size_t{r.payload_offset} + r.payload_len > end) return "payload past the frame";
  if (size_t{r.l3_offset} + r.ip_len > end) return "IP packet past the frame";
  if (is_reject(r.status) != (parse_drop_reason(r.status) != SLUICE_DROP_NONE &&
                              parse_drop_reason(r.status) != SLUICE_DROP_UNSUPPORTED_L4)) {
    return "reject status without a drop reason (or the reverse)";
  }
  if (is_reject(r.status)) return nullptr;

  if (r.status == ParseStatus::kNotIp) {
    const auto* k = reinterpret_cast<const unsigned char*>(&r.key);
    for (size_t i = 0; i < sizeof r.key; ++i) {
      if (k[i] != 0) return "key set on a non-IP frame";
    }
    return nullptr;
  }
  const size_t ip_end = size_t{r.l3_offset} + r.ip_len;
  if (r.l3_offset != SLUICE_ETH_HLEN + SLUICE_VLAN_HLEN * r.vlan_count) {
    return "l3 offset disagrees with the VLAN count";
  }
  if (r.key.family == SLUICE_FAMILY_IPV4) {
    if (r.ip_len < SLUICE_IPV4_HLEN) return "IPv4 packet shorter than its header";
    for (size_t i = 4; i < 16; ++i) {
      if (r.key.src.bytes[i] != 0 || r.key.dst.bytes[i] != 0) return "IPv4 key tail not zero";
    }
  } else if (r.key.family == SLUICE_FAMILY_IPV6) {
    if (r.ip_len < SLUICE_IPV6_HLEN) return "IPv6 packet shorter than its header";
  } else {
    return "IP result without a family";
  }
  if (r.l4_offset <= r.l3_offset || r.l4_offset > ip_end) return "l4 offset outside the IP packet";
  if (r.payload_offset != 0 &&
      (r.payload_offset < r.l4_offset || size_t{r.payload_offset} + r.payload_len > ip_end)) {
    return "payload outside the IP packet";
  }
  if (r.is_fragment &&
      (r.key.sport != 0 || r.key.dport != 0 || r.payload_len != 0 || r.is_icmp_error)) {
    return "fragment with ports, payload or an ICMP error";
  }
  if (r.tcp_flags != 0 && r.l4_proto != SLUICE_IPPROTO_TCP) return "TCP flags without TCP";
  const uint8_t icmp =
      r.key.family == SLUICE_FAMILY_IPV4 ? SLUICE_IPPROTO_ICMP : SLUICE_IPPROTO_ICMPV6;
  if (r.is_icmp_error && r.l4_proto != icmp) return "ICMP error flag without ICMP";
  // A later IPv6 fragment may name a routing or destination-options header
  // in place of its upper layer (packet_parser.hpp, ParseResult::key).
  const bool later_behind_ext =
      r.is_fragment && r.key.family == SLUICE_FAMILY_IPV6 &&
      (r.key.proto == SLUICE_IPPROTO_ROUTING || r.key.proto == SLUICE_IPPROTO_DSTOPTS);
  if (r.status == ParseStatus::kOk && r.key.proto != SLUICE_IPPROTO_TCP &&
      r.key.proto != SLUICE_IPPROTO_UDP && !later_behind_ext) {
    return "flow key of neither TCP nor UDP";
  }
  if (r.status != ParseStatus::kOk && (r.key.sport != 0 || r.key.dport != 0)) {
    return "ports in a key that is not a flow's";
  }
  return nullptr;
}

}  // namespace sluice::test
