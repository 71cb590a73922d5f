// SPDX-License-Identifier: BSD-2-Clause
// Direct-server-return encapsulation of a frame in place: the outer IPv4 or
// IPv6 header goes between the L2 header and the client's IP packet.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/abi/encap.h"
#include "dataplane/abi/maps.h"
#include "dataplane/core/frame_span.hpp"

namespace sluice {

/// Outcome of encap_frame(). On anything but kOk the frame is untouched.
enum class EncapStatus : uint8_t {
  kOk,                 ///< encapsulated; the span names the new frame
  kTooBig,             ///< outer packet would exceed the MTU: answer with build_icmp_too_big()
  kNoHeadroom,         ///< fewer headroom bytes than the outer header (SLUICE_DROP_ENCAP_NO_ROOM)
  kUnsupportedFamily,  ///< IPv6 packet toward an IPv4 backend, or an unknown backend family
  kBadInput,           ///< span or L3 offset outside the buffer, or not a whole IPv4/IPv6 packet
};

/// A name for logs and test messages ("ok", "too_big", ...).
const char* to_string(EncapStatus status);

/// How this fast path instance builds outer headers.
struct EncapSettings {
  /// Outer sources, MTU (bytes, outer IP header included) and entropy bits.
  sluice_encap_config config{};
  /// Outer IPv4 TTL / IPv6 hop limit.
  uint8_t hop_limit = SLUICE_ENCAP_DEFAULT_TTL;
};

/// Where one packet goes.
struct EncapTarget {
  /// Backend address, network order (sluice_backend.addr).
  union sluice_ip addr {};
  /// SLUICE_FAMILY_IPV4 or SLUICE_FAMILY_IPV6 (sluice_backend.family).
  uint8_t family = SLUICE_FAMILY_IPV4;
  /// The packet's flow hash (sluice_flow_hash): outer-source entropy and
  /// the outer IPv6 flow label.
  uint32_t flow_hash = 0;
};

/// Bytes of outer header toward a backend family: 20 (IPv4), 40 (IPv6), 0
/// for an unknown family.
constexpr size_t encap_overhead(uint8_t backend_family) {
  return backend_family == SLUICE_FAMILY_IPV4   ? SLUICE_IPV4_HLEN
         : backend_family == SLUICE_FAMILY_IPV6 ? SLUICE_IPV6_HLEN
                                                : 0;
}

/// The largest client IP packet (its IP header included), bytes, that still
/// fits config.mtu once encapsulated toward backend_family: the MTU a
/// too-big reply announces. 0 if the MTU leaves no room (or the family is
/// unknown).
uint32_t encap_inner_mtu(const sluice_encap_config& config, uint8_t backend_family);

/// Encapsulates the frame at `frame` in buf (buf_len bytes) toward a
/// backend, in place, for direct server return:
///
///   before  [headroom][L2 header][client IP packet][padding]
///   after   [headroom - H][L2 header][outer IP, H bytes][client IP packet]
///
/// l3_off is the L2 header's length in bytes (14, plus 4 per VLAN tag, at
/// most two: the parser's L3 offset); the L2 header moves H bytes forward
/// intact except its last EtherType, which becomes the outer one (0x0800 or
/// 0x86DD). The client packet's bytes are not changed; Ethernet padding
/// after it (past its IP length) is dropped from the frame.
///
/// Outer header, by the client packet's and the backend's family:
///   IPv4 -> IPv4 backend: IPv4, protocol 4 (RFC 2003), H = 20
///   IPv4 -> IPv6 backend: IPv6, next header 4 (RFC 2473), H = 40
///   IPv6 -> IPv6 backend: IPv6, next header 41 (RFC 2473), H = 40
///   IPv6 -> IPv4 backend: kUnsupportedFamily
/// Source: the config's source of that family with the low entropy_bits
/// (0-16) bits taken from flow_hash (sluice_encap4_src/sluice_encap6_src);
/// destination: the backend. TTL / hop limit: settings.hop_limit. DSCP and
/// ECN copied from the client packet (RFC 6040 normal mode). Outer IPv4:
/// DF copied from the client packet (RFC 2003 section 3.1); identification
/// 0 when DF is set (an atomic datagram, RFC 6864), else the client's, so
/// that the outer packet could still be reassembled if a misconfigured path
/// fragments it. Outer IPv6: flow label = the low 20 bits of flow_hash
/// (RFC 6438).
///
/// Checks, in order: kBadInput (span outside buf_len, l3_off not in 14..22
/// or past the frame, client IP header or length inconsistent, an IPv6
/// jumbogram), kUnsupportedFamily, kTooBig (H + client IP length >
/// config.mtu), kNoHeadroom (frame.off < H). Allocation-free, no throw.
[[nodiscard]] EncapStatus encap_frame(uint8_t* buf, size_t buf_len, FrameSpan& frame, size_t l3_off,
                                      const EncapSettings& settings, const EncapTarget& target);

}  // namespace sluice
