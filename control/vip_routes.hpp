// SPDX-License-Identifier: BSD-2-Clause
// The kernel side of announcing VIPs: a TUN device that lives exactly as
// long as its owner (the daemon) and host routes (/32, /128) through it in a
// routing table of sluice's own, which BIRD's `kernel` protocol learns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/core/ip_address.hpp"
#include "control/fastpath.hpp"
#include "dataplane/core/result.hpp"

namespace sluice::control {

/// Where announced routes go. An interface so the Announcer can be tested
/// without a kernel.
class RouteSink {
 public:
  virtual ~RouteSink() = default;
  /// Adds (or replaces) the host route of `addr`. Errors: -errno.
  [[nodiscard]] virtual Status add(const IpAddress& addr) = 0;
  /// Removes the host route of `addr`; a route that is not there is not an
  /// error. Errors: -errno.
  [[nodiscard]] virtual Status remove(const IpAddress& addr) = 0;
};

/// Host routes in kernel routing table `table` through a TUN device named
/// `device`, in the calling thread's network namespace, over rtnetlink
/// (RTM_NEWROUTE / RTM_DELROUTE, RFC 3549). The device is not persistent:
/// when this object is destroyed, or the process dies in any way (SIGKILL
/// too), the kernel deletes the device and every route through it, so BIRD
/// withdraws them without sluice's help. The table is not used for
/// forwarding by anything (no `ip rule` points at it); it only carries the
/// announcement.
class VipRoutes final : public RouteSink {
 public:
  /// The rtm_protocol of sluice's routes (RFC 3549 leaves 5..255 to
  /// routing daemons; iproute2 shows it as a number).
  static constexpr uint8_t kRouteProtocol = 0x5c;

  /// Creates and brings up the TUN device and opens the netlink socket.
  /// Errors: -EBUSY when another process holds a device of that name (a
  /// second daemon with the same [bgp] device), -errno from open/ioctl/
  /// socket (-EPERM without CAP_NET_ADMIN, -ENOENT without /dev/net/tun).
  [[nodiscard]] static Result<std::unique_ptr<VipRoutes>> open(const std::string& device,
                                                               uint32_t table);

  VipRoutes(const VipRoutes&) = delete;
  VipRoutes& operator=(const VipRoutes&) = delete;
  /// Closes the device: the kernel removes it with its routes.
  ~VipRoutes() override;

  [[nodiscard]] Status add(const IpAddress& addr) override;
  [[nodiscard]] Status remove(const IpAddress& addr) override;

  [[nodiscard]] int ifindex() const { return ifindex_; }
  [[nodiscard]] const std::string& device() const { return device_; }
  [[nodiscard]] uint32_t table() const { return table_; }

 private:
  VipRoutes(int tun_fd, int nl_fd, int ifindex, std::string device, uint32_t table)
      : tun_fd_(tun_fd), nl_fd_(nl_fd), ifindex_(ifindex), device_(std::move(device)),
        table_(table) {}
  // One RTM_NEWROUTE or RTM_DELROUTE, waiting for the kernel's answer.
  [[nodiscard]] Status change(const IpAddress& addr, bool add);

  int tun_fd_;
  int nl_fd_;
  int ifindex_;
  std::string device_;
  uint32_t table_;
  uint32_t seq_ = 0;
};

}  // namespace sluice::control
