// SPDX-License-Identifier: BSD-2-Clause
// Loader: load with pinned maps, attach/detach, counters, next hops. The
// snapshot publication is in publish.cpp.
#include "xdp/loader.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "xdp/attached_prog.hpp"
#include "xdp/netlink.hpp"

namespace sluice::xdp {
namespace {

// Maps older builds pinned that this one no longer has.
constexpr const char* kRetiredMaps[] = {"sluice_cache_index", "sluice_cache_versions"};

// The program's name as the kernel reports it (bpf_prog_info.name): how a
// sluice program already on an interface is recognised.
constexpr const char* kProgName = "sluice_lb";
// How much of the verifier log an Error carries: its end, where the
// verifier says what it rejected.
constexpr size_t kLogTailBytes = 16 * 1024;

std::string ifname_of(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr)
    return "ifindex " + std::to_string(ifindex);
  return name;
}

uint32_t mode_flag(XdpMode mode) {
  return mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

// The last `max` bytes of a NUL-terminated log, from a line start.
std::string log_tail(const std::vector<char>& buf, size_t max) {
  const size_t len = strnlen(buf.data(), buf.size());
  std::string log(buf.data(), len);
  if (log.size() <= max) return log;
  size_t from = log.size() - max;
  const size_t nl = log.find('\n', from);
  if (nl != std::string::npos) from = nl + 1;
  return "[...]\n" + log.substr(from);
}

// The program ids attached to ifindex by mode.
Result<bpf_xdp_query_opts> query(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (const int err = bpf_xdp_query(ifindex, 0, &q); err != 0)
    return sys_error(err, "querying the XDP programs of " + ifname_of(ifindex));
  return q;
}

// Whether the pinned map at `path` can serve as `map` (libbpf re-uses it
// only if type, sizes and flags match); -EINVAL naming the difference. The
// kernel adds BPF_F_RDONLY_PROG to every devmap it makes, and refuses it
// from user space at creation: `map` takes the pinned devmap's flags.
Status check_pinned(bpf_map* map, const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) {
    if (errno == ENOENT) return Ok{};
    return sys_error(errno, "opening pinned map " + path);
  }
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
    return sys_error(errno, "reading pinned map " + path);
  std::string diff;
  auto cmp = [&](const char* what, uint64_t pinned, uint64_t wanted) {
    if (pinned != wanted && diff.empty())
      diff = std::string(what) + " " + std::to_string(pinned) + " pinned, " +
             std::to_string(wanted) + " configured";
  };
  cmp("type", info.type, static_cast<uint64_t>(bpf_map__type(map)));
  cmp("key size", info.key_size, bpf_map__key_size(map));
  cmp("value size", info.value_size, bpf_map__value_size(map));
  cmp("max_entries", info.max_entries, bpf_map__max_entries(map));
  const bool devmap = info.type == BPF_MAP_TYPE_DEVMAP || info.type == BPF_MAP_TYPE_DEVMAP_HASH;
  if (devmap && info.map_flags == (bpf_map__map_flags(map) | BPF_F_RDONLY_PROG)) {
    if (int err = bpf_map__set_map_flags(map, info.map_flags); err != 0)
      return sys_error(err, "setting the flags of " + std::string(bpf_map__name(map)));
  }
  cmp("flags", info.map_flags, bpf_map__map_flags(map));
  if (diff.empty()) return Ok{};
  return Error{-EINVAL, "pinned map " + path + " does not fit this configuration (" + diff +
                            "): it was made by another configuration or sluice version; "
                            "detach and unpin (sluice detach) to start afresh, losing its "
                            "flows, or restore the sizes"};
}

// Unpins the map at `path` when it is of another type than `map` or, with
// `by_value_size`, holds values of another size (made by an older sluice),
// so that loading makes `map` afresh; a missing pin is fine. Returns what
// was replaced and why, or "" when the pin stays.
Result<std::string> unpin_if_older(bpf_map* map, const std::string& path, bool by_value_size) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::string();
    return sys_error(errno, "opening pinned map " + path);
  }
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
    return sys_error(errno, "reading pinned map " + path);
  std::string why;
  if (info.type != static_cast<uint32_t>(bpf_map__type(map)))
    why = "type " + std::to_string(info.type) + " pinned, " +
          std::to_string(bpf_map__type(map)) + " now";
  else if (by_value_size && info.value_size != bpf_map__value_size(map))
    why = "value size " + std::to_string(info.value_size) + " pinned, " +
          std::to_string(bpf_map__value_size(map)) + " now";
  if (why.empty()) return std::string();
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error(errno, "unpinning " + path);
  return path + " (" + why + ")";
}

template <class T>
T sum_of(const std::vector<T>& per_cpu) {
  static_assert(sizeof(T) % 8 == 0, "counters are u64 fields");
  uint64_t sum[sizeof(T) / 8] = {};
  for (const T& v : per_cpu) {
    uint64_t w[sizeof(T) / 8];
    std::memcpy(w, &v, sizeof w);
    for (size_t i = 0; i < sizeof(T) / 8; ++i) sum[i] += w[i];
  }
  T out;
  std::memcpy(&out, sum, sizeof out);
  return out;
}

}  // namespace

const char* to_string(XdpMode mode) { return mode == XdpMode::kNative ? "native" : "generic"; }

std::string default_pin_root(const std::string& bpffs_root, const std::string& ifname) {
  return bpffs_root + "/sluice/" + ifname;
}

Result<Loader> Loader::load(const LoaderOptions& o) {
  // Interface.
  int ifindex = o.ifindex;
  std::string ifname = o.ifname;
  if (ifindex <= 0 && ifname.empty()) return Error{-EINVAL, "no interface given"};
  if (!ifname.empty()) {
    const unsigned idx = if_nametoindex(ifname.c_str());
    if (idx == 0) return sys_error(errno == 0 ? ENODEV : errno, "interface " + ifname);
    if (ifindex > 0 && static_cast<unsigned>(ifindex) != idx)
      return Error{-EINVAL, "interface " + ifname + " has index " + std::to_string(idx) + ", not " +
                                std::to_string(ifindex)};
    ifindex = static_cast<int>(idx);
  } else {
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr)
      return sys_error(errno, "interface index " + std::to_string(ifindex));
    ifname = name;
  }

  // Sizes.
  if (o.flows_per_cpu == 0 || o.probation_per_cpu == 0)
    return Error{-EINVAL, "flows_per_cpu and probation_per_cpu must be > 0"};
  if (o.tcp_idle_ms == 0 || o.udp_idle_ms == 0)
    return Error{-EINVAL, "tcp_idle_ms and udp_idle_ms must be > 0"};
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return sys_error(ncpus, "counting possible CPUs");
  const uint64_t flows = uint64_t{o.flows_per_cpu} * static_cast<uint64_t>(ncpus);
  const uint32_t probation = o.probation_per_cpu;  // slots per CPU
  // One array holds every CPU's run of probation slots (xdp/lb_maps.h).
  const uint64_t probation_all = uint64_t{probation} * static_cast<uint64_t>(ncpus);
  if (flows > UINT32_MAX)
    return Error{-EINVAL,
                 "flows_per_cpu times " + std::to_string(ncpus) + " CPUs exceeds 2^32 entries"};
  if (probation_all > UINT32_MAX)
    return Error{-EINVAL,
                 "probation_per_cpu times " + std::to_string(ncpus) + " CPUs exceeds 2^32 slots"};

  // bpffs and the pin folder.
  const std::string pin_root =
      o.pin_root.empty() ? default_pin_root(o.bpffs_root, ifname) : o.pin_root;
  if (pin_root.empty() || pin_root[0] != '/')
    return Error{-EINVAL, "pin root must be an absolute path: '" + pin_root + "'"};
  if (auto m = ensure_bpffs(o.bpffs_root); !m.ok()) return m.error();
  if (auto d = make_dirs(pin_root); !d.ok()) return d.error();
  if (auto on = is_bpffs(pin_root); !on.ok() || !on.value())
    return on.ok() ? Error{-EINVAL, "pin root " + pin_root + " is not on a bpf filesystem"}
                   : on.error();

  // Open, size, pin, load.
  auto opened = LbSkeleton::open("sluice_lb");
  if (!opened.ok()) return opened.error();
  Loader l(std::move(opened.value()), ifindex, ifname, o.mode, pin_root);
  sluice_lb_bpf* s = l.skel_.get();
  s->rodata->sluice_hash_seed = o.hash_seed;
  s->rodata->sluice_tcp_idle_ms = o.tcp_idle_ms;
  s->rodata->sluice_udp_idle_ms = o.udp_idle_ms;
  s->rodata->sluice_flow_cache_jiffies =
      std::min(o.tcp_idle_ms, o.udp_idle_ms) < SLUICE_FLOW_CACHE_MIN_IDLE_MS
          ? 0
          : SLUICE_FLOW_CACHE_JIFFIES;
  if (int err = bpf_map__set_max_entries(s->maps.sluice_flows, static_cast<uint32_t>(flows));
      err != 0)
    return sys_error(err, "sizing sluice_flows");
  s->rodata->sluice_probation_slots = probation;
  if (int err =
          bpf_map__set_max_entries(s->maps.sluice_newflows, static_cast<uint32_t>(probation_all));
      err != 0)
    return sys_error(err, "sizing sluice_newflows");
  if (o.cache_entries == 0 || o.cache_hot_threshold == 0)
    return Error{-EINVAL, "cache_entries and cache_hot_threshold must be > 0"};
  s->rodata->sluice_cache_hot_threshold = o.cache_hot_threshold;
  for (bpf_map* m : {s->maps.sluice_cache_entries, s->maps.sluice_cache_hits})
    if (int err = bpf_map__set_max_entries(m, o.cache_entries); err != 0)
      return sys_error(err, "sizing " + std::string(bpf_map__name(m)));

  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, s->obj) {
    if (bpf_map__is_internal(map)) continue;  // .rodata: per load, never shared
    const std::string path = pin_root + "/" + bpf_map__name(map);
    // Probation slots are disposable (a new flow that loses its slot is
    // placed by Maglev again), so the per-CPU array of sluice before
    // branch xdp5 is replaced rather than refused: an upgrade keeps the
    // established flows. So are the global counters, whose size grows with
    // every drop reason added: a daemon upgraded over an older build's
    // sluice_stats restarts them from zero instead of refusing to load.
    if (map == s->maps.sluice_newflows || map == s->maps.sluice_stats) {
      auto u = unpin_if_older(map, path, map == s->maps.sluice_stats);
      if (!u.ok()) return u.error();
      if (!u.value().empty()) l.replaced_pins_.push_back(u.value());
    }
    if (auto c = check_pinned(map, path); !c.ok()) return c.error();
    if (access(path.c_str(), F_OK) == 0)
      l.reused_ = true;
    else
      l.created_pins_.push_back(path);
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0)
      return sys_error(err, "setting the pin path of " + std::string(bpf_map__name(map)));
  }

  // Maps this program no longer has (the cache's hash-map index and its
  // separate version array before branch xcache): unpinned, so an upgraded
  // daemon neither keeps their memory nor leaves them behind on detach.
  for (const char* retired : kRetiredMaps) {
    const std::string path = pin_root + "/" + retired;
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return sys_error(errno, "unpinning the retired map " + path);
  }

  // libbpf writes to the buffer only while loading (an object loads once).
  std::vector<char> log(std::max<size_t>(o.verifier_log_size, 64), '\0');
  if (int err = bpf_program__set_log_buf(s->progs.sluice_lb, log.data(), log.size()); err != 0)
    return sys_error(err, "setting the verifier log buffer");
  if (o.verifier_log_level != 0) {
    if (int err = bpf_program__set_log_level(s->progs.sluice_lb, o.verifier_log_level); err != 0)
      return sys_error(err, "setting the verifier log level");
  }
  if (const int err = l.skel_.load(); err != 0) {
    Error e = sys_error(err, "loading sluice_lb (sluice_flows " + std::to_string(flows) +
                                 " entries, sluice_newflows " + std::to_string(probation) +
                                 " slots per CPU, " + std::to_string(ncpus) +
                                 " CPUs; maps pinned in " + pin_root + ")");
    const std::string tail = log_tail(log, kLogTailBytes);
    if (!tail.empty()) e.message += "\nverifier log:\n" + tail;
    return e;
  }
  if (o.verifier_log_level != 0) l.verifier_log_ = log_tail(log, log.size());

  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(l.prog_fd(), &info, &len) != 0)
    return sys_error(errno, "reading the loaded program's id");
  l.prog_id_ = info.id;

  if (auto b = l.init_barrier(); !b.ok()) return b.error();
  if (auto r = l.read_state(); !r.ok()) return r.error();
  // Pinned VIPs from a version without VIP slots, or slots a failed
  // publish left deferring: the slots follow sluice_vips.
  if (auto v = l.sync_vip_slots(); !v.ok()) return v.error();
  return l;
}

int Loader::prog_fd() const { return bpf_program__fd(skel_->progs.sluice_lb); }

int Loader::map_fd(bpf_map* map) const { return bpf_map__fd(map); }

Status Loader::attach() {
  auto q = query(ifindex_);
  if (!q.ok()) return q.error();
  const uint32_t same = mode_ == XdpMode::kNative ? q.value().drv_prog_id : q.value().skb_prog_id;
  const uint32_t other = mode_ == XdpMode::kNative ? q.value().skb_prog_id : q.value().drv_prog_id;
  const XdpMode other_mode = mode_ == XdpMode::kNative ? XdpMode::kGeneric : XdpMode::kNative;
  const std::string where = ifname_ + " (" + to_string(mode_) + " mode)";

  if (q.value().hw_prog_id != 0)
    return Error{-EBUSY, "an offloaded XDP program is attached to " + ifname_};
  if (other != 0) {
    auto a = open_attached_prog(other);
    if (!a.ok()) return a.error();
    if (a.value().name == kProgName)
      return Error{-EEXIST, "sluice is attached to " + ifname_ + " in " + to_string(other_mode) +
                                " mode: detach it before attaching in " + to_string(mode_) +
                                " mode"};
    return Error{-EBUSY, "another XDP program ('" + a.value().name + "', id " +
                             std::to_string(other) + ") is attached to " + ifname_ + " in " +
                             to_string(other_mode) + " mode"};
  }
  if (same == prog_id_) return Ok{};
  if (same != 0) {
    auto a = open_attached_prog(same);
    if (!a.ok()) return a.error();
    if (a.value().name != kProgName)
      return Error{-EBUSY, "another XDP program ('" + a.value().name + "', id " +
                               std::to_string(same) + ") is attached to " + where +
                               "; sluice replaces only its own program"};
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof opts;
    opts.old_prog_fd = a.value().fd.get();
    if (int err = bpf_xdp_attach(ifindex_, prog_fd(), mode_flag(mode_) | XDP_FLAGS_REPLACE, &opts);
        err != 0)
      return sys_error(err, "replacing sluice program id " + std::to_string(same) + " on " + where);
    return Ok{};
  }
  if (int err = bpf_xdp_attach(ifindex_, prog_fd(), mode_flag(mode_) | XDP_FLAGS_UPDATE_IF_NOEXIST,
                               nullptr);
      err != 0)
    return sys_error(err, "attaching sluice_lb to " + where);
  return Ok{};
}

Status Loader::detach() { return detach_interface(ifindex_); }

Status Loader::unpin() { return unpin_maps(pin_root_); }

Status Loader::unpin_created() {
  for (const std::string& path : created_pins_)
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error(errno, "unpinning " + path);
  created_pins_.clear();
  // Left alone while other pins (another instance's) are in it.
  if (rmdir(pin_root_.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    return sys_error(errno, "removing pin folder " + pin_root_);
  return Ok{};
}

Status detach_interface(int ifindex) {
  auto q = query(ifindex);
  if (!q.ok()) return q.error();
  const std::string ifname = ifname_of(ifindex);
  struct ByMode {
    uint32_t id;
    XdpMode mode;
  };
  const ByMode found[] = {{q.value().drv_prog_id, XdpMode::kNative},
                          {q.value().skb_prog_id, XdpMode::kGeneric}};
  bool any = q.value().hw_prog_id != 0;
  bool detached = false;
  for (const ByMode& m : found) {
    if (m.id == 0) continue;
    any = true;
    auto a = open_attached_prog(m.id);
    if (!a.ok()) return a.error();
    if (a.value().name != kProgName) continue;
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof opts;
    opts.old_prog_fd = a.value().fd.get();
    // Removes the program only if it is still the one found.
    if (int err = bpf_xdp_attach(ifindex, -1, mode_flag(m.mode) | XDP_FLAGS_REPLACE, &opts);
        err != 0)
      return sys_error(err,
                       "detaching sluice from " + ifname + " (" + to_string(m.mode) + " mode)");
    detached = true;
  }
  if (detached) return Ok{};
  if (!any) return Error{-ENOENT, "no XDP program is attached to " + ifname};
  return Error{-EBUSY,
               "the XDP program attached to " + ifname + " is not sluice's; it was left alone"};
}

Status unpin_maps(const std::string& pin_root) {
  // The map names come from the object itself (opening creates nothing in
  // the kernel), so this list cannot drift from lb_maps.h.
  auto opened = LbSkeleton::open("sluice_lb");
  if (!opened.ok()) return opened.error();
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, opened.value()->obj) {
    if (bpf_map__is_internal(map)) continue;
    const std::string path = pin_root + "/" + bpf_map__name(map);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error(errno, "unpinning " + path);
  }
  if (rmdir(pin_root.c_str()) != 0 && errno != ENOENT)
    return sys_error(errno, "removing pin folder " + pin_root);
  // The default layout is <bpffs>/sluice/<ifname> (default_pin_root): the
  // last interface's detach takes the shared "sluice" folder with it. Other
  // interfaces' folders still in it keep it (ENOTEMPTY), as they should.
  const size_t slash = pin_root.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string parent = pin_root.substr(0, slash);
    if (parent.size() >= 7 && parent.compare(parent.size() - 7, 7, "/sluice") == 0 &&
        rmdir(parent.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
      return sys_error(errno, "removing pin folder " + parent);
  }
  return Ok{};
}

sluice_next_hop Loader::normalised(const sluice_next_hop& nh) const {
  sluice_next_hop out = nh;
  // The receiving interface is reached with XDP_TX: no devmap entry.
  if (static_cast<int>(out.ifindex) == ifindex_) out.ifindex = 0;
  return out;
}

sluice_backend_hop Loader::hop_for(const sluice_backend& b) const {
  sluice_backend_hop h{};
  h.backend_id = b.id;
  IpAddress a;
  a.family = b.family;
  std::memcpy(a.ip.bytes, b.addr.bytes, a.size());
  const auto it = resolved_.find(a);
  if (it != resolved_.end()) h.hop = it->second;
  return h;
}

Status Loader::write_next_hops(const std::optional<sluice_next_hop>& dflt,
                               const std::vector<sluice_backend_hop>& want) {
  const int ports = map_fd(skel_->maps.sluice_tx_ports);
  const std::optional<sluice_next_hop> static_hop = dflt ? dflt : next_hop_;
  std::set<uint32_t> named;
  if (static_hop && static_hop->ifindex != 0) named.insert(static_hop->ifindex);
  for (const sluice_backend_hop& h : want)
    if (h.hop.ifindex != 0) named.insert(h.hop.ifindex);
  // An egress interface goes into the devmap before a next hop names it,
  // so a packet never meets an ifindex the devmap lacks.
  for (uint32_t ifindex : named) {
    if (bpf_map_update_elem(ports, &ifindex, &ifindex, BPF_ANY) == 0) continue;
    const int err = errno;  // before ifname_of, which may set it
    return sys_error(err, "adding " + ifname_of(static_cast<int>(ifindex)) +
                              " to sluice_tx_ports (egress of a next hop)");
  }
  const uint32_t zero = 0;
  if (dflt) {
    if (bpf_map_update_elem(map_fd(skel_->maps.sluice_next_hop), &zero, &*dflt, BPF_ANY) != 0)
      return sys_error(errno, "writing the static next hop");
    next_hop_ = *dflt;
  }
  const int hfd = map_fd(skel_->maps.sluice_backend_hops);
  for (uint32_t slot = 0; slot < SLUICE_MAX_BACKENDS; ++slot) {
    if (std::memcmp(&hops_[slot], &want[slot], sizeof want[slot]) == 0) continue;
    if (bpf_map_update_elem(hfd, &slot, &want[slot], BPF_ANY) != 0)
      return sys_error(errno, "writing the next hop of backend id " +
                                  std::to_string(want[slot].backend_id));
    hops_[slot] = want[slot];
  }
  // Interfaces no next hop names leave the devmap after.
  std::vector<uint32_t> stale;
  uint32_t key = 0;
  const uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(ports, prev, &key) == 0 && stale.size() < SLUICE_MAX_TX_PORTS) {
    if (named.count(key) == 0) stale.push_back(key);
    prev = &key;
  }
  for (uint32_t k : stale) {
    if (bpf_map_delete_elem(ports, &k) == 0 || errno == ENOENT) continue;
    const int err = errno;
    return sys_error(err, "removing ifindex " + std::to_string(k) + " from sluice_tx_ports");
  }
  return Ok{};
}

Status Loader::sync_backend_hops(const std::vector<bool>& live, bool clear_others) {
  std::vector<sluice_backend_hop> want = hops_;
  for (uint32_t slot = 0; slot < SLUICE_MAX_BACKENDS; ++slot) {
    if (live[slot])
      want[slot] = hop_for(slots_[slot]);
    else if (clear_others)
      want[slot] = sluice_backend_hop{};
  }
  return write_next_hops(std::nullopt, want);
}

Status Loader::set_next_hop(const sluice_next_hop& next_hop) {
  return write_next_hops(normalised(next_hop), hops_);
}

Status Loader::refresh_next_hops(NextHopResolver& resolver, std::span<const IpAddress> targets,
                                 std::chrono::milliseconds wait) {
  return apply_next_hops(resolve_next_hops(resolver, targets, wait));
}

NextHops Loader::resolve_next_hops(NextHopResolver& resolver, std::span<const IpAddress> targets,
                                   std::chrono::milliseconds wait) const {
  // Two passes, so the waits overlap: the first asks the kernel to resolve
  // every unknown neighbour without waiting, the second waits (all of
  // them together at most `wait`) for those still unanswered.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  NextHops out;
  for (const IpAddress& t : targets) {
    NextHops::Entry e{t, std::nullopt, {}};
    auto hop = resolver.resolve(t, std::chrono::milliseconds(0));
    if (hop.ok())
      e.hop = hop.value();
    else
      e.error = hop.error();
    out.entries.push_back(std::move(e));
  }
  for (NextHops::Entry& e : out.entries) {
    if (e.hop || e.error.code != -ETIMEDOUT) continue;
    const auto left = std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now()));
    auto hop = resolver.resolve(e.target, left);
    if (hop.ok())
      e.hop = hop.value();
    else
      e.error = hop.error();
  }
  return out;
}

Status Loader::apply_next_hops(const NextHops& hops) {
  std::map<IpAddress, sluice_next_hop> resolved;
  std::optional<Error> failed;
  // The first failure names the problem, later ones add their message.
  const auto fail = [&](int code, const std::string& first, const std::string& later) {
    if (!failed)
      failed = Error{code, first};
    else
      failed->message += "; " + later;
  };
  // Native-mode XDP_REDIRECT hands frames to the egress driver's
  // ndo_xdp_xmit; one without it (or a veth whose peer has neither an XDP
  // program nor GRO) drops them after the program counted them sent. Such
  // a next hop is treated as unresolved. Where the kernel cannot say
  // (before 6.3), the interface is taken to be able, as before.
  std::map<uint32_t, bool> can_xmit;
  for (const NextHops::Entry& e : hops.entries) {
    if (e.hop) {
      const sluice_next_hop nh = normalised(e.hop->to_map());
      if (nh.ifindex != 0 && mode_ == XdpMode::kNative) {
        auto it = can_xmit.find(nh.ifindex);
        if (it == can_xmit.end()) {
          const auto f = xdp_features(static_cast<int>(nh.ifindex));
          it = can_xmit.emplace(nh.ifindex, !f.ok() || (f.value() & kXdpActNdoXmit) != 0).first;
        }
        if (!it->second) {
          const std::string why = "backend " + e.target.to_string() + ": egress " +
                                  ifname_of(static_cast<int>(nh.ifindex)) +
                                  " cannot transmit XDP frames (no ndo_xdp_xmit; a veth needs "
                                  "an XDP program or GRO on its peer): next hop not used";
          fail(-EOPNOTSUPP, why, why);
          continue;
        }
      }
      resolved[e.target] = nh;
      continue;
    }
    fail(e.error.code, "no next hop for " + e.target.to_string() + ": " + e.error.message,
         e.error.message);
  }
  resolved_ = std::move(resolved);
  std::vector<bool> live(SLUICE_MAX_BACKENDS);
  for (uint32_t slot = 0; slot < SLUICE_MAX_BACKENDS; ++slot)
    live[slot] = (slots_[slot].flags & SLUICE_BACKEND_VALID) != 0;
  // Removed backends' entries go too (no packet reads them: their slots
  // are not VALID), and with them their interfaces in the devmap.
  if (auto s = sync_backend_hops(live, true); !s.ok()) return s;
  if (failed) return *failed;
  return Ok{};
}

template <class T>
Result<std::vector<T>> Loader::read_percpu(bpf_map* map, uint32_t key) const {
  static_assert(sizeof(T) % 8 == 0, "per-CPU values are 8-byte multiples");
  if (key >= bpf_map__max_entries(map))
    return Error{-EINVAL, std::string(bpf_map__name(map)) + ": index " + std::to_string(key) +
                              " out of range"};
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return sys_error(ncpus, "counting possible CPUs");
  std::vector<T> out(static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(map_fd(map), &key, out.data()) != 0)
    return sys_error(errno, std::string("reading ") + bpf_map__name(map));
  return out;
}

Result<std::vector<sluice_global_stats>> Loader::global_stats_per_cpu() const {
  return read_percpu<sluice_global_stats>(skel_->maps.sluice_stats, 0);
}

Result<sluice_global_stats> Loader::global_stats() const {
  auto v = global_stats_per_cpu();
  if (!v.ok()) return v.error();
  return sum_of(v.value());
}

Result<std::vector<sluice_vip_stats>> Loader::vip_stats_per_cpu(uint32_t vip_id) const {
  return read_percpu<sluice_vip_stats>(skel_->maps.sluice_vipstats, vip_id);
}

Result<sluice_vip_stats> Loader::vip_stats(uint32_t vip_id) const {
  auto v = vip_stats_per_cpu(vip_id);
  if (!v.ok()) return v.error();
  return sum_of(v.value());
}

Result<std::vector<sluice_backend_stats>> Loader::backend_stats_per_cpu(uint32_t backend_id) const {
  return read_percpu<sluice_backend_stats>(skel_->maps.sluice_bkstats,
                                           backend_id & (SLUICE_MAX_BACKENDS - 1));
}

Result<sluice_backend_stats> Loader::backend_stats(uint32_t backend_id) const {
  auto v = backend_stats_per_cpu(backend_id);
  if (!v.ok()) return v.error();
  return sum_of(v.value());
}

Result<AttachedProg> open_attached_prog(uint32_t id) {
  AttachedProg a;
  a.id = id;
  a.fd = UniqueFd(bpf_prog_get_fd_by_id(id));
  if (!a.fd.valid()) return sys_error(errno, "opening XDP program id " + std::to_string(id));
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(a.fd.get(), &info, &len) != 0)
    return sys_error(errno, "reading XDP program id " + std::to_string(id));
  a.name = info.name;
  return a;
}

}  // namespace sluice::xdp
