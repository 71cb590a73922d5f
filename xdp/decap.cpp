// SPDX-License-Identifier: BSD-2-Clause
// The decapsulator on an interface: attach with its VIP set, status through
// the program id, detach.
#include "xdp/decap.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "xdp/attached_prog.hpp"
#include "xdp/decap_skeleton.hpp"
#include "xdp/unique_fd.hpp"

namespace sluice::xdp {
namespace {

// The names the kernel reports (bpf_prog_info / bpf_map_info .name, at most
// 15 characters): how an attached decapsulator and its maps are recognised.
constexpr const char* kProgName = "sluice_decap";
constexpr const char* kVipMapName = "sluice_decapvip";
constexpr const char* kStatsMapName = "sluice_decapctr";

uint32_t mode_flag(XdpMode mode) {
  return mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

Result<int> ifindex_of(const std::string& ifname) {
  const unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) return sys_error(errno == 0 ? ENODEV : errno, "no interface " + ifname);
  return static_cast<int>(idx);
}

// The programs attached to `ifindex`, by mode: [native, generic].
Result<std::array<uint32_t, 2>> attached_ids(int ifindex, const std::string& ifname) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (const int err = bpf_xdp_query(ifindex, 0, &q); err != 0)
    return sys_error(err, "querying the XDP programs of " + ifname);
  if (q.hw_prog_id != 0) return Error{-EBUSY, "an offloaded XDP program is attached to " + ifname};
  return std::array<uint32_t, 2>{q.drv_prog_id, q.skb_prog_id};
}

// The attached sluice_decap and its mode, or -ENOENT / -EBUSY.
Result<std::pair<AttachedProg, XdpMode>> find_decap(int ifindex, const std::string& ifname) {
  auto ids = attached_ids(ifindex, ifname);
  if (!ids.ok()) return ids.error();
  const XdpMode modes[2] = {XdpMode::kNative, XdpMode::kGeneric};
  std::string other;
  for (size_t i = 0; i < 2; ++i) {
    if (ids.value()[i] == 0) continue;
    auto p = open_attached_prog(ids.value()[i]);
    if (!p.ok()) return p.error();
    if (p.value().name == kProgName) return std::pair{std::move(p.value()), modes[i]};
    other = p.value().name;
  }
  if (other.empty()) return Error{-ENOENT, "no XDP program is attached to " + ifname};
  return Error{-EBUSY, "the XDP program attached to " + ifname + " ('" + other +
                           "') is not sluice_decap; it was left alone"};
}

// A map of `prog` by name, opened by id.
Result<UniqueFd> prog_map(const AttachedProg& prog, const char* name) {
  std::array<uint32_t, 16> map_ids{};
  bpf_prog_info info{};
  info.nr_map_ids = static_cast<uint32_t>(map_ids.size());
  info.map_ids = reinterpret_cast<uintptr_t>(map_ids.data());
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog.fd.get(), &info, &len) != 0)
    return sys_error(errno, "reading the maps of XDP program id " + std::to_string(prog.id));
  const uint32_t n = std::min<uint32_t>(info.nr_map_ids, static_cast<uint32_t>(map_ids.size()));
  for (uint32_t i = 0; i < n; ++i) {
    UniqueFd fd(bpf_map_get_fd_by_id(map_ids[i]));
    if (!fd.valid()) return sys_error(errno, "opening map id " + std::to_string(map_ids[i]));
    bpf_map_info mi{};
    uint32_t mlen = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd.get(), &mi, &mlen) != 0)
      return sys_error(errno, "reading map id " + std::to_string(map_ids[i]));
    if (std::strcmp(mi.name, name) == 0) return fd;
  }
  return Error{-ENOENT, std::string("XDP program id ") + std::to_string(prog.id) + " has no map " +
                            name + ": is it from another sluice version?"};
}

}  // namespace

Result<uint32_t> attach_decap(const std::string& ifname, XdpMode mode,
                              std::span<const IpAddress> vips) {
  if (vips.empty()) return Error{-EINVAL, "the decapsulator needs at least one VIP"};
  if (vips.size() > SLUICE_MAX_VIPS)
    return Error{-EINVAL, "at most " + std::to_string(SLUICE_MAX_VIPS) + " VIPs, " +
                              std::to_string(vips.size()) + " given"};
  auto ifindex = ifindex_of(ifname);
  if (!ifindex.ok()) return ifindex.error();
  const std::string where = ifname + " (" + to_string(mode) + " mode)";

  // What is there now decides how to attach: nothing, our own program in
  // this mode (replace it), or anything else (refuse).
  auto ids = attached_ids(ifindex.value(), ifname);
  if (!ids.ok()) return ids.error();
  const size_t same = mode == XdpMode::kNative ? 0 : 1;
  std::optional<AttachedProg> replaced;
  for (size_t i = 0; i < 2; ++i) {
    if (ids.value()[i] == 0) continue;
    auto p = open_attached_prog(ids.value()[i]);
    if (!p.ok()) return p.error();
    const std::string in = ifname + " (" + (i == 0 ? "native" : "generic") + " mode)";
    if (p.value().name != kProgName)
      return Error{-EBUSY, "another XDP program ('" + p.value().name + "', id " +
                               std::to_string(p.value().id) + ") is attached to " + in};
    if (i != same)
      return Error{-EEXIST, "sluice_decap is attached to " + in +
                                ": detach it before attaching in " + to_string(mode) + " mode"};
    replaced.emplace(std::move(p.value()));
  }

  auto opened = DecapSkeleton::open("sluice_decap");
  if (!opened.ok()) return opened.error();
  DecapSkeleton skel = std::move(opened.value());
  if (const int err = skel.load(); err != 0) return sys_error(err, "loading sluice_decap");
  const int vip_fd = bpf_map__fd(skel->maps.sluice_decapvip);
  for (const IpAddress& vip : vips) {
    sluice_decap_vip key{};
    key.addr = vip.ip;
    key.family = vip.family;
    const uint8_t one = 1;
    if (bpf_map_update_elem(vip_fd, &key, &one, BPF_ANY) != 0)
      return sys_error(errno, "adding VIP " + vip.to_string() + " to sluice_decap");
  }

  const int prog_fd = bpf_program__fd(skel->progs.sluice_decap);
  if (replaced) {
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof opts;
    opts.old_prog_fd = replaced->fd.get();
    if (const int err =
            bpf_xdp_attach(ifindex.value(), prog_fd, mode_flag(mode) | XDP_FLAGS_REPLACE, &opts);
        err != 0)
      return sys_error(
          err, "replacing sluice_decap id " + std::to_string(replaced->id) + " on " + where);
  } else if (const int err = bpf_xdp_attach(ifindex.value(), prog_fd,
                                            mode_flag(mode) | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
             err != 0) {
    return sys_error(err, "attaching sluice_decap to " + where);
  }

  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
    return sys_error(errno, "reading the id of sluice_decap on " + where);
  return info.id;
}

Status detach_decap(const std::string& ifname) {
  auto ifindex = ifindex_of(ifname);
  if (!ifindex.ok()) return ifindex.error();
  auto found = find_decap(ifindex.value(), ifname);
  if (!found.ok()) return found.error();
  auto& [prog, mode] = found.value();
  bpf_xdp_attach_opts opts{};
  opts.sz = sizeof opts;
  opts.old_prog_fd = prog.fd.get();
  // Removes the program only if it is still the one found.
  if (const int err =
          bpf_xdp_attach(ifindex.value(), -1, mode_flag(mode) | XDP_FLAGS_REPLACE, &opts);
      err != 0)
    return sys_error(err,
                     "detaching sluice_decap from " + ifname + " (" + to_string(mode) + " mode)");
  return Ok{};
}

Result<DecapStatus> decap_status(const std::string& ifname) {
  auto ifindex = ifindex_of(ifname);
  if (!ifindex.ok()) return ifindex.error();
  auto found = find_decap(ifindex.value(), ifname);
  if (!found.ok()) return found.error();
  const auto& [prog, mode] = found.value();
  DecapStatus st;
  st.prog_id = prog.id;
  st.mode = mode;

  auto vips = prog_map(prog, kVipMapName);
  if (!vips.ok()) return vips.error();
  sluice_decap_vip key{};
  sluice_decap_vip next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(vips.value().get(), prev, &next) == 0) {
    IpAddress a;
    a.ip = next.addr;
    a.family = next.family;
    st.vips.push_back(a);
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return sys_error(errno, "reading the VIPs of sluice_decap on " + ifname);
  std::sort(st.vips.begin(), st.vips.end());

  auto ctr = prog_map(prog, kStatsMapName);
  if (!ctr.ok()) return ctr.error();
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return sys_error(ncpus, "counting possible CPUs");
  // Per-CPU values come 8-byte aligned, one per possible CPU.
  std::vector<sluice_decap_stats> per_cpu(static_cast<size_t>(ncpus));
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(ctr.value().get(), &zero, per_cpu.data()) != 0)
    return sys_error(errno, "reading the counters of sluice_decap on " + ifname);
  for (const auto& c : per_cpu) {
    st.stats.decap_packets += c.decap_packets;
    st.stats.pass_packets += c.pass_packets;
    st.stats.ecn_dropped += c.ecn_dropped;
  }
  return st;
}

}  // namespace sluice::xdp
