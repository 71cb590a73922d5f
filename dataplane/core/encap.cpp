// SPDX-License-Identifier: BSD-2-Clause
// Direct-server-return encapsulation: the C++ core's use of the shared
// header writers in dataplane/abi/encap.h.
#include "dataplane/core/encap.hpp"

#include <cstring>

namespace sluice {

const char* to_string(EncapStatus status) {
  switch (status) {
    case EncapStatus::kOk:
      return "ok";
    case EncapStatus::kTooBig:
      return "too_big";
    case EncapStatus::kNoHeadroom:
      return "no_headroom";
    case EncapStatus::kUnsupportedFamily:
      return "unsupported_family";
    case EncapStatus::kBadInput:
      return "bad_input";
  }
  return "?";
}

uint32_t encap_inner_mtu(const sluice_encap_config& config, uint8_t backend_family) {
  const size_t overhead = encap_overhead(backend_family);
  if (overhead == 0 || config.mtu <= overhead) return 0;
  return static_cast<uint32_t>(config.mtu - overhead);
}

EncapStatus encap_frame(uint8_t* buf, size_t buf_len, FrameSpan& frame, size_t l3_off,
                        const EncapSettings& settings, const EncapTarget& target) {
  IpPacket inner;
  if (!locate_ip(buf, buf_len, frame, l3_off, inner)) return EncapStatus::kBadInput;

  const size_t overhead = encap_overhead(target.family);
  if (overhead == 0 ||
      (inner.family == SLUICE_FAMILY_IPV6 && target.family == SLUICE_FAMILY_IPV4)) {
    return EncapStatus::kUnsupportedFamily;
  }
  // The ABI's mtu is 16 bits, so a packet under it also fits the outer
  // length fields below.
  const size_t outer_len = overhead + inner.len;
  if (outer_len > settings.config.mtu) return EncapStatus::kTooBig;
  if (frame.off < overhead) return EncapStatus::kNoHeadroom;

  const uint8_t* in = inner.l3;
  const bool inner_v4 = inner.family == SLUICE_FAMILY_IPV4;
  // DSCP + ECN: the IPv4 TOS byte, or the IPv6 traffic class that straddles
  // the first two bytes.
  const auto tos = inner_v4 ? in[1] : static_cast<uint8_t>((in[0] << 4) | (in[1] >> 4));
  const uint8_t proto = inner_v4 ? SLUICE_IPPROTO_IPIP : SLUICE_IPPROTO_IPV6;
  const auto inner_len = static_cast<uint16_t>(inner.len);

  const size_t new_off = frame.off - overhead;
  std::memmove(buf + new_off, buf + frame.off, l3_off);
  uint8_t* outer = buf + new_off + l3_off;
  const sluice_encap_config& cfg = settings.config;
  if (target.family == SLUICE_FAMILY_IPV4) {
    const bool df = (sluice_get_be16(in + 6) & SLUICE_IPV4_DF) != 0;
    const uint16_t id = df ? 0 : sluice_get_be16(in + 4);
    const sl_be32 src = sluice_encap4_src(cfg.src_v4.v4, cfg.entropy_bits, target.flow_hash);
    sluice_ipv4_write_hdr(outer, src, target.addr.v4, inner_len, tos, id, df ? 1 : 0,
                          settings.hop_limit, proto);
    sluice_put_be16(outer - 2, SLUICE_ETH_P_IP);
  } else {
    union sluice_ip src;
    sluice_encap6_src(&src, &cfg.src_v6, cfg.entropy_bits, target.flow_hash);
    sluice_ipv6_write_hdr(outer, &src, &target.addr, inner_len, tos, target.flow_hash,
                          settings.hop_limit, proto);
    sluice_put_be16(outer - 2, SLUICE_ETH_P_IPV6);
  }
  frame.off = new_off;
  frame.len = l3_off + outer_len;
  return EncapStatus::kOk;
}

}  // namespace sluice
