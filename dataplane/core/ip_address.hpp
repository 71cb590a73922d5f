// SPDX-License-Identifier: BSD-2-Clause
// IpAddress: an IPv4 or IPv6 address in the ABI's network-order layout,
// with text conversion and a total order (used to sort backends so tables
// never depend on list order).
#pragma once

#include <compare>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/abi/flow.h"
#include "dataplane/core/result.hpp"

namespace sluice {

/// An IPv4 or IPv6 address. Bytes in network order in `ip` (IPv4 in the
/// first 4 bytes, the rest zero), `family` is SLUICE_FAMILY_IPV4 or _IPV6.
struct IpAddress {
  // .bytes, not {}: empty braces zero only a union's first member (the
  // 4-byte v4), and clang leaves the other 12 bytes unset.
  union sluice_ip ip {.bytes = {}};
  uint8_t family = SLUICE_FAMILY_IPV4;

  /// Parses "192.0.2.1" or "2001:db8::1". Error -EINVAL names the text.
  static Result<IpAddress> parse(std::string_view text);
  /// IPv4 from a host-order integer (0xC0000201 is 192.0.2.1).
  static IpAddress v4(uint32_t host_order);
  /// IPv6 from 16 bytes, network order.
  static IpAddress v6(const uint8_t bytes[16]);

  /// The canonical text form (inet_ntop).
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] bool is_v6() const { return family == SLUICE_FAMILY_IPV6; }
  /// Significant bytes: 4 or 16.
  [[nodiscard]] size_t size() const { return is_v6() ? 16 : 4; }

  /// Orders IPv4 before IPv6, then by bytes (network order).
  friend std::strong_ordering operator<=>(const IpAddress& a, const IpAddress& b) {
    if (a.family != b.family) return a.family <=> b.family;
    const int c = std::memcmp(a.ip.bytes, b.ip.bytes, sizeof a.ip.bytes);
    return c <=> 0;
  }
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return (a <=> b) == std::strong_ordering::equal;
  }
};

}  // namespace sluice
