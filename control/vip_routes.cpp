// SPDX-License-Identifier: BSD-2-Clause
// VipRoutes: the TUN device that carries the announced routes and the
// rtnetlink requests that add and remove them.
#include "control/vip_routes.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::control {
namespace {

Error sys_error(const std::string& what) {
  const int err = errno;
  return Error{-err, what + ": " + std::strerror(err)};
}

// Closes a file descriptor on every early return of open().
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// How long the kernel may take to answer one route request.
constexpr int kNetlinkTimeoutMs = 2000;

// Appends a route attribute to the request in `msg` (an nlmsghdr at its
// start, `capacity` bytes in all).
void put_attr(char* msg, size_t capacity, uint16_t type, const void* data, size_t len) {
  auto* h = reinterpret_cast<nlmsghdr*>(msg);
  const size_t at = NLMSG_ALIGN(h->nlmsg_len);
  const size_t size = RTA_LENGTH(len);
  if (at + RTA_ALIGN(size) > capacity) return;  // sized for the largest request below
  rtattr rta{static_cast<uint16_t>(size), type};
  std::memcpy(msg + at, &rta, sizeof rta);
  std::memcpy(msg + at + RTA_LENGTH(0), data, len);
  h->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(size));
}

}  // namespace

Result<std::unique_ptr<VipRoutes>> VipRoutes::open(const std::string& device, uint32_t table) {
  if (device.empty() || device.size() >= IFNAMSIZ)
    return Error{-EINVAL, "device name \"" + device + "\": 1-15 bytes"};
  Fd tun{::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
  if (tun.fd < 0) return sys_error("/dev/net/tun");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, device.c_str(), device.size());
  // IFF_TUN without packet information: nothing is ever routed to it, it
  // only gives the routes an owner that dies with the process.
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (::ioctl(tun.fd, TUNSETIFF, &ifr) != 0) return sys_error("TUNSETIFF " + device);
  // A device of that name someone made persistent (ip tuntap add) is taken
  // over: not persistent any more, so it still dies with the daemon.
  if (::ioctl(tun.fd, TUNSETPERSIST, 0) != 0) return sys_error("TUNSETPERSIST " + device);

  Fd ctl{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (ctl.fd < 0) return sys_error("socket");
  ifreq up{};
  std::memcpy(up.ifr_name, device.c_str(), device.size());
  if (::ioctl(ctl.fd, SIOCGIFFLAGS, &up) != 0) return sys_error("SIOCGIFFLAGS " + device);
  // The kernel refuses routes through a device that is down.
  up.ifr_flags = static_cast<short>(up.ifr_flags | IFF_UP);
  if (::ioctl(ctl.fd, SIOCSIFFLAGS, &up) != 0) return sys_error("SIOCSIFFLAGS " + device);
  const unsigned idx = ::if_nametoindex(device.c_str());
  if (idx == 0) return sys_error("if_nametoindex " + device);

  Fd nl{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)};
  if (nl.fd < 0) return sys_error("netlink socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(nl.fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return sys_error("netlink bind");
  return std::unique_ptr<VipRoutes>(
      new VipRoutes(tun.release(), nl.release(), static_cast<int>(idx), device, table));
}

VipRoutes::~VipRoutes() {
  ::close(nl_fd_);
  ::close(tun_fd_);
}

Status VipRoutes::add(const IpAddress& addr) { return change(addr, true); }

Status VipRoutes::remove(const IpAddress& addr) { return change(addr, false); }

Status VipRoutes::change(const IpAddress& addr, bool add) {
  alignas(nlmsghdr) char msg[NLMSG_SPACE(sizeof(rtmsg)) + 64] = {};
  auto* h = reinterpret_cast<nlmsghdr*>(msg);
  h->nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  h->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
  h->nlmsg_flags = static_cast<uint16_t>(
      NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0));
  h->nlmsg_seq = ++seq_;
  rtmsg r{};
  r.rtm_family = static_cast<uint8_t>(addr.is_v6() ? AF_INET6 : AF_INET);
  r.rtm_dst_len = static_cast<uint8_t>(addr.size() * 8);
  // Tables above 255 only fit RTA_TABLE; the header's field then says so.
  r.rtm_table = static_cast<uint8_t>(table_ < 256 ? table_ : RT_TABLE_UNSPEC);
  r.rtm_protocol = kRouteProtocol;
  // What `ip route add ADDR dev DEV` makes: a device route, link scope for
  // IPv4 (the kernel's rule for routes without a gateway), universe for IPv6.
  r.rtm_scope = static_cast<uint8_t>(addr.is_v6() ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  r.rtm_type = RTN_UNICAST;
  std::memcpy(msg + NLMSG_HDRLEN, &r, sizeof r);
  put_attr(msg, sizeof msg, RTA_DST, addr.ip.bytes, addr.size());
  const uint32_t oif = static_cast<uint32_t>(ifindex_);
  put_attr(msg, sizeof msg, RTA_OIF, &oif, sizeof oif);
  put_attr(msg, sizeof msg, RTA_TABLE, &table_, sizeof table_);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const std::string what = std::string(add ? "adding" : "removing") + " the route of " +
                           addr.to_string() + " (table " + std::to_string(table_) + ")";
  if (::sendto(nl_fd_, msg, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0)
    return sys_error(what);
  // The answer to this request: an NLMSG_ERROR carrying 0 (the ACK) or
  // -errno. Answers to earlier requests that timed out are skipped.
  alignas(nlmsghdr) char buf[4096];
  for (;;) {
    pollfd p{nl_fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, kNetlinkTimeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{-ETIMEDOUT, what + ": no answer from the kernel"};
    const ssize_t len = ::recv(nl_fd_, buf, sizeof buf, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    // Headers are copied out: the buffer's messages are 4-byte aligned by
    // the kernel, but nothing here has to rely on that.
    const size_t got = static_cast<size_t>(len);
    for (size_t off = 0; off + NLMSG_HDRLEN <= got;) {
      nlmsghdr a{};
      std::memcpy(&a, buf + off, sizeof a);
      if (a.nlmsg_len < NLMSG_HDRLEN || off + a.nlmsg_len > got) break;
      if (a.nlmsg_seq == seq_ && a.nlmsg_type == NLMSG_ERROR) {
        if (a.nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return Error{-EPROTO, what};
        nlmsgerr e{};
        std::memcpy(&e, buf + off + NLMSG_HDRLEN, sizeof e);
        const int err = -e.error;
        // Removing a route the kernel does not have (ESRCH) leaves what was asked.
        if (err == 0 || (!add && err == ESRCH)) return Ok{};
        return Error{-err, what + ": " + std::strerror(err)};
      }
      off += NLMSG_ALIGN(a.nlmsg_len);
    }
  }
}

}  // namespace sluice::control
