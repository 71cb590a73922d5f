// SPDX-License-Identifier: BSD-2-Clause
// NextHopResolver: where an encapsulated packet toward an address must go
// at layer 2 (egress interface, its MAC, the neighbour's MAC), read from the
// kernel's routing and neighbour tables over rtnetlink, the way `ip route
// get` and `ip neigh get` read them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "dataplane/core/ip_address.hpp"
#include "xdp/netlink.hpp"
#include "xdp/sluice_lb.h"
#include "xdp/status.hpp"

namespace sluice::xdp {

using MacAddress = std::array<uint8_t, 6>;

/// A resolved layer-2 next hop.
struct NextHop {
  int ifindex = 0;           ///< egress interface (of the namespace the resolver was opened in)
  IpAddress neighbour;       ///< the address whose MAC was resolved: the route's gateway, or the
                             ///< destination itself when on-link
  bool via_gateway = false;  ///< the route named a gateway
  MacAddress dst_mac{};      ///< the neighbour's MAC
  MacAddress src_mac{};      ///< the egress interface's MAC

  /// As the sluice_next_hop map holds it.
  [[nodiscard]] sluice_next_hop to_map() const;
};

/// "aa:bb:cc:dd:ee:ff".
std::string mac_to_string(const MacAddress& mac);

/// Resolves next hops through two NETLINK_ROUTE sockets of the network
/// namespace it is opened in (one for requests, one for neighbour
/// notifications). Move-only; not thread-safe (one caller at a time).
class NextHopResolver {
 public:
  /// Errors: socket errors from RtNetlink::open.
  [[nodiscard]] static Result<NextHopResolver> open();

  /// The next hop of packets to `dst`: the kernel's route (RTM_GETROUTE,
  /// as `ip route get dst`), then the neighbour entry of its gateway (or of
  /// dst when on-link). When the neighbour is unknown or unresolved, asks
  /// the kernel to resolve it (RTM_NEWNEIGH with NTF_USE: an ARP request or
  /// IPv6 neighbour solicitation goes out) and waits up to `wait` for the
  /// answer; a stale entry is used and re-confirmed the same way (XDP_TX
  /// traffic does not keep neighbour entries fresh).
  /// Errors: -ENETUNREACH / -EHOSTUNREACH (no route; or the neighbour did not
  /// answer, entry FAILED), -EADDRNOTAVAIL (dst is an address of this host,
  /// or the route is not unicast), -ETIMEDOUT (no answer within `wait`),
  /// -EOPNOTSUPP (the egress interface has no Ethernet MAC), or a netlink
  /// errno; every message names dst.
  [[nodiscard]] Result<NextHop> resolve(const IpAddress& dst, std::chrono::milliseconds wait);

 private:
  struct Route {
    int ifindex = 0;
    bool via_gateway = false;
    IpAddress gateway;
  };
  struct Neighbour {
    bool found = false;
    uint16_t state = 0;  // NUD_*
    bool has_mac = false;
    MacAddress mac{};
  };

  NextHopResolver(RtNetlink requests, RtNetlink events)
      : requests_(std::move(requests)), events_(std::move(events)) {}
  [[nodiscard]] Result<Route> route_to(const IpAddress& dst);
  [[nodiscard]] Result<Neighbour> neighbour(int ifindex, const IpAddress& addr);
  [[nodiscard]] Status solicit(int ifindex, const IpAddress& addr);
  [[nodiscard]] Result<MacAddress> link_mac(int ifindex);

  RtNetlink requests_;
  RtNetlink events_;
};

}  // namespace sluice::xdp
