// SPDX-License-Identifier: BSD-2-Clause
// NextHopResolver: route and neighbour lookups over rtnetlink.
#include "xdp/next_hop.hpp"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sluice::xdp {
namespace {

using Clock = std::chrono::steady_clock;

int af_of(const IpAddress& a) { return a.is_v6() ? AF_INET6 : AF_INET; }

std::string ifname_of(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr)
    return "ifindex " + std::to_string(ifindex);
  return name;
}

// A neighbour state that carries a usable link-layer address.
bool usable(uint16_t state) {
  return (state &
          (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY)) != 0;
}

std::string nud_name(uint16_t state) {
  struct Name {
    uint16_t bit;
    const char* name;
  };
  static constexpr Name kNames[] = {
      {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"}, {NUD_STALE, "STALE"},
      {NUD_DELAY, "DELAY"},           {NUD_PROBE, "PROBE"},         {NUD_FAILED, "FAILED"},
      {NUD_NOARP, "NOARP"},           {NUD_PERMANENT, "PERMANENT"},
  };
  std::string out;
  for (const Name& n : kNames) {
    if ((state & n.bit) == 0) continue;
    if (!out.empty()) out.push_back('|');
    out.append(n.name);
  }
  if (out.empty()) out.append("NONE");
  return out;
}

bool is_zero(const MacAddress& m) {
  for (uint8_t b : m)
    if (b != 0) return false;
  return true;
}

}  // namespace

sluice_next_hop NextHop::to_map() const {
  sluice_next_hop nh{};
  std::memcpy(nh.dst_mac, dst_mac.data(), 6);
  std::memcpy(nh.src_mac, src_mac.data(), 6);
  nh.ifindex = static_cast<uint32_t>(ifindex);
  return nh;
}

std::string mac_to_string(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

Result<NextHopResolver> NextHopResolver::open() {
  auto req = RtNetlink::open();
  if (!req.ok()) return req.error();
  auto ev = RtNetlink::open(RTMGRP_NEIGH);
  if (!ev.ok()) return ev.error();
  return NextHopResolver(std::move(req.value()), std::move(ev.value()));
}

Result<NextHopResolver::Route> NextHopResolver::route_to(const IpAddress& dst) {
  rtmsg rtm{};
  rtm.rtm_family = static_cast<uint8_t>(af_of(dst));
  rtm.rtm_dst_len = static_cast<uint8_t>(dst.size() * 8);
  NlMessage msg(RTM_GETROUTE, 0, &rtm, sizeof rtm);
  msg.attr(RTA_DST, dst.ip.bytes, dst.size());
  auto replies = requests_.request(msg);
  if (!replies.ok()) {
    Error e = replies.error();
    e.message = "route to " + dst.to_string() + ": " + e.message;
    return e;
  }
  for (const NlReply& r : replies.value()) {
    if (r.type != RTM_NEWROUTE || r.payload.size() < sizeof(rtmsg)) continue;
    rtmsg got{};
    std::memcpy(&got, r.payload.data(), sizeof got);
    if (got.rtm_type == RTN_LOCAL)
      return Error{-EADDRNOTAVAIL, dst.to_string() + " is an address of this host"};
    if (got.rtm_type != RTN_UNICAST)
      return Error{-EADDRNOTAVAIL, "route to " + dst.to_string() + " is not unicast (type " +
                                       std::to_string(got.rtm_type) + ")"};
    Route route;
    for_each_attr(
        std::span<const uint8_t>(r.payload).subspan(NLMSG_ALIGN(sizeof(rtmsg))),
        [&](uint16_t type, std::span<const uint8_t> v) {
          if (type == RTA_OIF && v.size() == 4) {
            uint32_t oif = 0;
            std::memcpy(&oif, v.data(), 4);
            route.ifindex = static_cast<int>(oif);
          } else if (type == RTA_GATEWAY && (v.size() == 4 || v.size() == 16)) {
            route.via_gateway = true;
            route.gateway.family = v.size() == 16 ? SLUICE_FAMILY_IPV6 : SLUICE_FAMILY_IPV4;
            std::memcpy(route.gateway.ip.bytes, v.data(), v.size());
          } else if (type == RTA_VIA && v.size() >= 2) {
            // An IPv4 route through an IPv6 gateway (RFC 5549).
            uint16_t fam = 0;
            std::memcpy(&fam, v.data(), 2);
            const size_t n = fam == AF_INET6 ? 16 : 4;
            if (v.size() >= 2 + n) {
              route.via_gateway = true;
              route.gateway.family = fam == AF_INET6 ? SLUICE_FAMILY_IPV6 : SLUICE_FAMILY_IPV4;
              std::memcpy(route.gateway.ip.bytes, v.data() + 2, n);
            }
          }
        });
    if (route.ifindex <= 0)
      return Error{-ENETUNREACH, "route to " + dst.to_string() + " names no interface"};
    return route;
  }
  return Error{-ENETUNREACH, "no route to " + dst.to_string()};
}

Result<NextHopResolver::Neighbour> NextHopResolver::neighbour(int ifindex, const IpAddress& addr) {
  ndmsg ndm{};
  ndm.ndm_family = static_cast<uint8_t>(af_of(addr));
  ndm.ndm_ifindex = ifindex;
  NlMessage msg(RTM_GETNEIGH, 0, &ndm, sizeof ndm);
  msg.attr(NDA_DST, addr.ip.bytes, addr.size());
  auto replies = requests_.request(msg);
  Neighbour n;
  if (!replies.ok()) {
    if (replies.error().code == -ENOENT) return n;
    Error e = replies.error();
    e.message = "neighbour " + addr.to_string() + " on " + ifname_of(ifindex) + ": " + e.message;
    return e;
  }
  for (const NlReply& r : replies.value()) {
    if (r.type != RTM_NEWNEIGH || r.payload.size() < sizeof(ndmsg)) continue;
    ndmsg got{};
    std::memcpy(&got, r.payload.data(), sizeof got);
    n.found = true;
    n.state = got.ndm_state;
    for_each_attr(std::span<const uint8_t>(r.payload).subspan(NLMSG_ALIGN(sizeof(ndmsg))),
                  [&](uint16_t type, std::span<const uint8_t> v) {
                    if (type == NDA_LLADDR && v.size() == 6) {
                      std::memcpy(n.mac.data(), v.data(), 6);
                      n.has_mac = !is_zero(n.mac);
                    }
                  });
    break;
  }
  return n;
}

Status NextHopResolver::solicit(int ifindex, const IpAddress& addr) {
  ndmsg ndm{};
  ndm.ndm_family = static_cast<uint8_t>(af_of(addr));
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = NUD_NONE;
  // NTF_USE: "use" the entry as a transmitted packet would, which creates
  // it if needed and starts (or re-confirms) resolution; no state is set.
  ndm.ndm_flags = NTF_USE;
  NlMessage msg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &ndm, sizeof ndm);
  msg.attr(NDA_DST, addr.ip.bytes, addr.size());
  auto r = requests_.request(msg);
  if (!r.ok()) {
    Error e = r.error();
    e.message = "asking the kernel to resolve " + addr.to_string() + " on " + ifname_of(ifindex) +
                ": " + e.message;
    return e;
  }
  return Ok{};
}

Result<MacAddress> NextHopResolver::link_mac(int ifindex) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  NlMessage msg(RTM_GETLINK, 0, &ifi, sizeof ifi);
  auto replies = requests_.request(msg);
  if (!replies.ok()) {
    Error e = replies.error();
    e.message = "reading interface " + ifname_of(ifindex) + ": " + e.message;
    return e;
  }
  for (const NlReply& r : replies.value()) {
    if (r.type != RTM_NEWLINK || r.payload.size() < sizeof(ifinfomsg)) continue;
    ifinfomsg got{};
    std::memcpy(&got, r.payload.data(), sizeof got);
    MacAddress mac{};
    bool found = false;
    for_each_attr(std::span<const uint8_t>(r.payload).subspan(NLMSG_ALIGN(sizeof(ifinfomsg))),
                  [&](uint16_t type, std::span<const uint8_t> v) {
                    if (type == IFLA_ADDRESS && v.size() == 6) {
                      std::memcpy(mac.data(), v.data(), 6);
                      found = true;
                    }
                  });
    if (got.ifi_type != ARPHRD_ETHER || !found)
      return Error{-EOPNOTSUPP, "interface " + ifname_of(ifindex) + " has no Ethernet address"};
    return mac;
  }
  return Error{-ENODEV, "interface " + ifname_of(ifindex) + " not found"};
}

Result<NextHop> NextHopResolver::resolve(const IpAddress& dst, std::chrono::milliseconds wait) {
  auto route = route_to(dst);
  if (!route.ok()) return route.error();
  NextHop hop;
  hop.ifindex = route.value().ifindex;
  hop.via_gateway = route.value().via_gateway;
  hop.neighbour = hop.via_gateway ? route.value().gateway : dst;
  auto own = link_mac(hop.ifindex);
  if (!own.ok()) return own.error();
  hop.src_mac = own.value();

  const std::string what = "next hop of " + dst.to_string() + " (neighbour " +
                           hop.neighbour.to_string() + " on " + ifname_of(hop.ifindex) + ")";
  // Drain notifications that predate this call: only answers to our own
  // solicitation should wake the wait below.
  if (auto old = events_.wait_events(std::chrono::milliseconds(0));
      !old.ok() && old.error().code != -ENOBUFS)
    return old.error();

  const auto deadline = Clock::now() + wait;
  bool solicited = false;
  for (;;) {
    auto n = neighbour(hop.ifindex, hop.neighbour);
    if (!n.ok()) return n.error();
    const Neighbour& nb = n.value();
    if (nb.found && usable(nb.state)) {
      if (!nb.has_mac)
        return Error{-EOPNOTSUPP, what + ": the neighbour entry has no link-layer address"};
      hop.dst_mac = nb.mac;
      // Stale: usable now, but ask the kernel to confirm it so it stays
      // fresh (the answer is not waited for).
      if ((nb.state & NUD_STALE) != 0) {
        if (auto s = solicit(hop.ifindex, hop.neighbour); !s.ok()) return s.error();
      }
      return hop;
    }
    if (nb.found && (nb.state & NUD_FAILED) != 0 && solicited)
      return Error{-EHOSTUNREACH, what + ": the neighbour did not answer (entry FAILED)"};
    if (!solicited) {
      if (auto s = solicit(hop.ifindex, hop.neighbour); !s.ok()) return s.error();
      solicited = true;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      return Error{-ETIMEDOUT, what + ": not resolved within " + std::to_string(wait.count()) +
                                   " ms (neighbour entry " +
                                   (nb.found ? nud_name(nb.state) : std::string("absent")) + ")"};
    // Any neighbour notification (or the timeout) is a reason to look
    // again; lost notifications (ENOBUFS) too.
    auto ev = events_.wait_events(left);
    if (!ev.ok() && ev.error().code != -ENOBUFS) return ev.error();
  }
}

}  // namespace sluice::xdp
