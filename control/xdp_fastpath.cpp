// SPDX-License-Identifier: BSD-2-Clause
// XdpFastpath: the Loader behind the Fastpath interface, and the reading
// of a previous daemon's pinned maps (VIP ids, table backends, slots).
#include "control/xdp_fastpath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::control {
namespace {

// The interface's own MAC (SIOCGIFHWADDR, in the calling thread's namespace).
Result<std::array<uint8_t, 6>> own_mac(const std::string& ifname) {
  xdp::UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return xdp::sys_error(errno, "socket for SIOCGIFHWADDR");
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd.get(), SIOCGIFHWADDR, &req) != 0)
    return xdp::sys_error(errno, "reading the MAC of " + ifname);
  std::array<uint8_t, 6> mac{};
  std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, mac.size());
  return mac;
}

}  // namespace

Result<std::unique_ptr<XdpFastpath>> XdpFastpath::open(const xdp::LoaderOptions& options) {
  auto loader = xdp::Loader::load(options);
  if (!loader.ok()) return loader.error();
  std::unique_ptr<XdpFastpath> fp(new XdpFastpath(std::move(loader.value())));
  if (fp->loader_.reused_pinned_maps()) {
    if (auto s = fp->read_initial_state(); !s.ok()) return s.error();
  }
  if (auto s = fp->loader_.attach(); !s.ok()) {
    // What this attempt pinned goes with it (a native attach on a device
    // without native XDP left ~35 MB of maps); a previous instance's stay.
    Error e = s.error();
    if (auto u = fp->loader_.unpin_created(); !u.ok()) e.message += "; " + u.error().message;
    return e;
  }
  return fp;
}

// What a previous daemon left in the pinned maps: every backend slot, and
// each VIP's id and the distinct backend ids of its table.
Status XdpFastpath::read_initial_state() {
  sluice_lb_bpf* skel = loader_.skeleton();
  const int bfd = bpf_map__fd(skel->maps.sluice_backends);
  initial_.slots.assign(SLUICE_MAX_BACKENDS, sluice_backend{});
  for (uint32_t i = 0; i < SLUICE_MAX_BACKENDS; ++i)
    if (bpf_map_lookup_elem(bfd, &i, &initial_.slots[i]) != 0)
      return xdp::sys_error(errno, "reading pinned backend slot " + std::to_string(i));

  const int vfd = bpf_map__fd(skel->maps.sluice_vips);
  const int mfd = bpf_map__fd(skel->maps.sluice_maglev);
  sluice_vip_key key{};
  sluice_vip_key next{};
  for (bool first = true; bpf_map_get_next_key(vfd, first ? nullptr : &key, &next) == 0;
       first = false) {
    key = next;
    sluice_vip_meta meta{};
    if (bpf_map_lookup_elem(vfd, &key, &meta) != 0) continue;
    FastpathState::Vip v;
    v.key = key;
    v.vip_id = meta.vip_id;
    uint32_t inner_id = 0;
    if (bpf_map_lookup_elem(mfd, &meta.vip_id, &inner_id) == 0) {
      xdp::UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
      if (!inner.valid()) return xdp::sys_error(errno, "opening a pinned Maglev table");
      for (uint32_t i = 0; i < meta.table_size; ++i) {
        uint32_t id = 0;
        if (bpf_map_lookup_elem(inner.get(), &i, &id) != 0)
          return xdp::sys_error(errno, "reading a pinned Maglev table");
        if (id != SLUICE_BACKEND_NONE) v.backend_ids.push_back(id);
      }
      std::sort(v.backend_ids.begin(), v.backend_ids.end());
      v.backend_ids.erase(std::unique(v.backend_ids.begin(), v.backend_ids.end()),
                          v.backend_ids.end());
    }
    initial_.vips.push_back(std::move(v));
  }
  return Ok{};
}

FastpathInfo XdpFastpath::info() const {
  return FastpathInfo{"xdp",
                      loader_.ifname(),
                      loader_.ifindex(),
                      xdp::to_string(loader_.mode()),
                      loader_.prog_id(),
                      loader_.reused_pinned_maps(),
                      next_hop_problem_};
}

Status XdpFastpath::publish(const FastpathSnapshot& snap) {
  xdp::Snapshot out;
  out.vips.reserve(snap.vips.size());
  for (const FastpathVip& v : snap.vips) out.vips.push_back(xdp::SnapshotVip{v.key, v.meta, v.table});
  out.backends = snap.backends;
  out.encap = snap.encap;
  if (snap.gateway_mac) {
    auto mac = own_mac(loader_.ifname());
    if (!mac.ok()) return mac.error();
    sluice_next_hop nh{};
    std::memcpy(nh.dst_mac, snap.gateway_mac->data(), 6);
    std::memcpy(nh.src_mac, mac.value().data(), 6);
    out.next_hop = nh;
  }
  if (auto s = loader_.publish(out); !s.ok()) return s.error();
  return Ok{};
}

Result<xdp::NextHops> XdpFastpath::resolve(std::span<const IpAddress> targets) {
  if (!resolver_) {
    auto r = xdp::NextHopResolver::open();
    if (!r.ok()) return r.error();
    resolver_.emplace(std::move(r.value()));
  }
  return loader_.resolve_next_hops(*resolver_, targets, std::chrono::milliseconds(1000));
}

Status XdpFastpath::refresh_next_hop(std::span<const IpAddress> targets) {
  auto hops = resolve(targets);
  if (!hops.ok()) return hops.error();
  const auto s = loader_.apply_next_hops(hops.value());
  next_hop_problem_ = s.ok() ? "" : s.error().message;
  if (!s.ok()) return s.error();
  return Ok{};
}

std::function<Status()> XdpFastpath::resolve_next_hop(std::span<const IpAddress> targets) {
  auto hops = resolve(targets);
  if (!hops.ok()) return [err = hops.error()] { return Status(err); };
  return [this, h = std::move(hops.value())]() -> Status {
    const auto s = loader_.apply_next_hops(h);
    next_hop_problem_ = s.ok() ? "" : s.error().message;
    if (!s.ok()) return s.error();
    return Ok{};
  };
}

Result<sluice_global_stats> XdpFastpath::global_stats() const { return loader_.global_stats(); }

Result<sluice_vip_stats> XdpFastpath::vip_stats(uint32_t vip_id) const {
  return loader_.vip_stats(vip_id);
}

Result<sluice_backend_stats> XdpFastpath::backend_stats(uint32_t backend_id) const {
  return loader_.backend_stats(backend_id);
}

Result<ActiveFlowCounts> XdpFastpath::active_flows() const {
  auto a = loader_.active_flows();
  if (!a.ok()) return a.error();
  return std::move(a.value().by_backend);
}

}  // namespace sluice::control
