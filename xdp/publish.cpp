// SPDX-License-Identifier: BSD-2-Clause
// Loader::publish: a snapshot applied to the maps without dropping or
// misrouting a packet, and the state the loader keeps of what the maps hold.
//
// What a packet reads, in program order (xdp/lb_lookup.h, lb_maglev.h):
// the VIP's meta (copied: vip_id, flags, M) from its direct-mapped slot in
// sluice_vip_slots, or from sluice_vips where the slot defers, then the
// VIP's table from sluice_maglev[vip_id] and slot hash % M in it, then the
// backend slot (VALID and the same id, else a miss), or the flow table's
// backend id and then its slot.
//
// Two kernel facts the order relies on:
//  - Updating or deleting an ARRAY_OF_MAPS slot returns only after every
//    BPF program that could have read the old value has finished (the
//    syscall waits for an RCU grace period). wait_for_packets() uses that
//    on a private map-in-map to wait for every packet in flight.
//  - sluice_vips is a preallocated hash map: an update replaces a whole
//    element (no packet sees half a meta), but the replaced or deleted
//    element is reused by the next update, possibly while a packet still
//    reads it. So after an update of an existing VIP or a deletion, no
//    further update may run until the packets in flight are done.
//  Array slots (backends, encap config, next hop) are rewritten in place:
//  a packet may read a mix of old and new bytes.
//
// The order, each step complete before the next begins:
//  0. Validate the whole snapshot; nothing is written if it is invalid.
//  1. Encap config and static next hop, if changed (in place: a packet
//     forwarded during this write may carry a mix; they change rarely).
//     Each backend's own next hop (sluice_backend_hops) answers only for
//     the id it names, and is written with the backends in step 2: a new
//     backend's before it turns VALID.
//  2. Backends. A new id goes into a free slot (not VALID) in two writes:
//     first without VALID (any mix a packet reads is "not VALID", a miss),
//     then, once packets in flight are done, with VALID — only the flags
//     byte changes. No table names the new id yet. A drain/undrain
//     rewrites only the flags byte too. A slot is never given to another
//     id while VALID, so a flow that names an old id finds a different id
//     there: a miss, never another backend's address.
//  3. VIPs gone from the snapshot: delete their keys (their packets now
//     pass to the kernel), wait for packets in flight (none still holds
//     their meta), then delete their tables (and tables left without a
//     VIP) unless the vip_id is taken by a new VIP below.
//  4. Each VIP of the snapshot. A changed table is filled into a NEW inner
//     map and swapped into the outer slot with one update (packets see the
//     old table or the new one, whole). When M changes, meta and table
//     change in the order that keeps hash % M inside the table a packet
//     reads: growing, the bigger table first, then the meta; shrinking,
//     the meta first, wait for packets in flight, then the smaller table.
//     A new VIP gets its table (and zeroed counters) before its key.
//  5. Backends gone from the snapshot: clear their VALID flag (only the
//     flags byte changes). Every table that named them was swapped out in
//     3-4, and each swap waited for the packets reading the old table, so
//     only flow entries still name them, and those become misses that
//     Maglev re-places.
//
// The direct-mapped VIP slots (sluice_vip_slots, dataplane/abi/maps.h) are
// read before sluice_vips and rewritten in place, so they change only
// while packets ignore them: before step 3 every slot that will change
// gets SLUICE_VIP_SLOT_LOOKUP (only the flags change), and after a wait
// for packets in flight, every packet landing there uses sluice_vips,
// which steps 3-4 keep right. After step 5 each such slot gets its new
// contents, still with the flag (set in old and new bytes alike, so a
// packet reading during the write defers); after another wait, the flag
// is cleared where the slot holds one VIP (only the flags change).
// load() brings the slots in line with sluice_vips the same way.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <set>
#include <unordered_map>

#include "xdp/loader.hpp"

namespace sluice::xdp {
namespace {

constexpr uint32_t kSlotMask = SLUICE_MAX_BACKENDS - 1;

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; uint64_t{d} * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

bool valid_family(uint8_t f) { return f == SLUICE_FAMILY_IPV4 || f == SLUICE_FAMILY_IPV6; }

IpAddress address_of(const union sluice_ip& ip, uint8_t family) {
  IpAddress a;
  a.family = family;
  std::memcpy(a.ip.bytes, ip.bytes, family == SLUICE_FAMILY_IPV6 ? 16 : 4);
  return a;
}

std::string describe(const sluice_vip_key& k) {
  const char* proto = k.proto == SLUICE_IPPROTO_TCP   ? "tcp"
                      : k.proto == SLUICE_IPPROTO_UDP ? "udp"
                                                      : "proto?";
  std::string addr = address_of(k.addr, k.family).to_string();
  if (k.family == SLUICE_FAMILY_IPV6) addr = "[" + addr + "]";
  return std::string(proto) + " " + addr + ":" + std::to_string(sl_ntohs(k.port));
}

// The key as the program builds it: unused address bytes and pad zero.
sluice_vip_key normalized(const sluice_vip_key& k) {
  sluice_vip_key n{};
  std::memcpy(n.addr.bytes, k.addr.bytes, k.family == SLUICE_FAMILY_IPV6 ? 16 : 4);
  n.port = k.port;
  n.proto = k.proto;
  n.family = k.family;
  return n;
}

sluice_backend normalized(const sluice_backend& b) {
  sluice_backend n{};
  std::memcpy(n.addr.bytes, b.addr.bytes, b.family == SLUICE_FAMILY_IPV6 ? 16 : 4);
  n.id = b.id;
  n.family = b.family;
  n.flags = static_cast<uint8_t>((b.flags & SLUICE_BACKEND_DRAINING) | SLUICE_BACKEND_VALID);
  return n;
}

bool same_ip(const union sluice_ip& a, const union sluice_ip& b) {
  return std::memcmp(a.bytes, b.bytes, sizeof a.bytes) == 0;
}

// Reads an ARRAY of u32 with `n` entries (batched; entry by entry where
// the kernel has no batch lookup for the map).
Result<std::vector<uint32_t>> read_u32_array(int fd, uint32_t n) {
  std::vector<uint32_t> keys(n), values(n);
  uint32_t done = 0;
  uint32_t token = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  while (done < n) {
    uint32_t count = n - done;
    const int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data() + done,
                                         values.data() + done, &count, &opts);
    if (err != 0 && errno != ENOENT) break;
    done += count;
    first = false;
    if (err != 0) break;
  }
  if (done == n) {
    std::vector<uint32_t> table(n);
    for (uint32_t i = 0; i < n; ++i)
      if (keys[i] < n) table[keys[i]] = values[i];
    return table;
  }
  for (uint32_t i = 0; i < n; ++i)
    if (bpf_map_lookup_elem(fd, &i, &values[i]) != 0)
      return sys_error(errno, "reading Maglev table entry " + std::to_string(i));
  return values;
}

// The direct-mapped VIP slots for a set of VIPs: each alone in its slot,
// or a slot shared by several that defers to the hash map (and holds
// nothing else, so the result does not depend on the VIPs' order).
template <class Vips, class KeyOf, class MetaOf>
std::vector<sluice_vip_slot> vip_slots_for(const Vips& vips, KeyOf key_of, MetaOf meta_of) {
  std::vector<sluice_vip_slot> slots(SLUICE_VIP_SLOTS);
  for (const auto& v : vips) {
    const sluice_vip_key& k = key_of(v);
    sluice_vip_slot& s = slots[sluice_vip_slot_index(&k.addr, k.port, k.proto)];
    if (s.family != 0 || s.flags != 0) {
      s = sluice_vip_slot{};
      s.flags = SLUICE_VIP_SLOT_LOOKUP;
      continue;
    }
    s.addr = k.addr;
    s.port = k.port;
    s.proto = k.proto;
    s.family = k.family;
    s.meta = meta_of(v);
  }
  return slots;
}

bool same_slot(const sluice_vip_slot& a, const sluice_vip_slot& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

Status Loader::write_vip_slot(uint32_t index, const sluice_vip_slot& slot) {
  if (bpf_map_update_elem(map_fd(skel_->maps.sluice_vip_slots), &index, &slot, BPF_ANY) != 0)
    return sys_error(errno, "writing VIP slot " + std::to_string(index));
  vip_slots_[index] = slot;
  return Ok{};
}

Status Loader::mark_vip_slots(const std::vector<sluice_vip_slot>& want) {
  bool marked = false;
  for (uint32_t i = 0; i < SLUICE_VIP_SLOTS; ++i) {
    const sluice_vip_slot& cur = vip_slots_[i];
    if (same_slot(cur, want[i]) || (cur.flags & SLUICE_VIP_SLOT_LOOKUP) != 0) continue;
    sluice_vip_slot deferring = cur;
    deferring.flags |= SLUICE_VIP_SLOT_LOOKUP;
    if (auto s = write_vip_slot(i, deferring); !s.ok()) return s;
    marked = true;
  }
  if (marked) return wait_for_packets();
  return Ok{};
}

Status Loader::write_vip_slots(const std::vector<sluice_vip_slot>& want) {
  std::vector<uint32_t> to_clear;
  for (uint32_t i = 0; i < SLUICE_VIP_SLOTS; ++i) {
    if (same_slot(vip_slots_[i], want[i])) continue;
    sluice_vip_slot deferring = want[i];
    deferring.flags |= SLUICE_VIP_SLOT_LOOKUP;
    if (!same_slot(vip_slots_[i], deferring)) {
      if (auto s = write_vip_slot(i, deferring); !s.ok()) return s;
    }
    if (!same_slot(deferring, want[i])) to_clear.push_back(i);
  }
  if (to_clear.empty()) return Ok{};
  if (auto w = wait_for_packets(); !w.ok()) return w;
  for (const uint32_t i : to_clear)
    if (auto s = write_vip_slot(i, want[i]); !s.ok()) return s;
  return Ok{};
}

Status Loader::sync_vip_slots() {
  const auto want = vip_slots_for(
      vips_, [](const auto& kv) -> const sluice_vip_key& { return kv.second.key; },
      [](const auto& kv) { return kv.second.meta; });
  if (auto s = mark_vip_slots(want); !s.ok()) return s;
  return write_vip_slots(want);
}

Loader::VipKeyBytes Loader::key_bytes(const sluice_vip_key& k) {
  VipKeyBytes b;
  std::memcpy(b.data(), &k, sizeof k);
  return b;
}

Status Loader::init_barrier() {
  barrier_inner_ =
      UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_barrier_i", 4, 4, 1, nullptr));
  if (!barrier_inner_.valid()) return sys_error(errno, "creating the barrier's inner map");
  LIBBPF_OPTS(bpf_map_create_opts, opts,
              .inner_map_fd = static_cast<uint32_t>(barrier_inner_.get()));
  barrier_outer_ =
      UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "sluice_barrier", 4, 4, 1, &opts));
  if (!barrier_outer_.valid()) return sys_error(errno, "creating the barrier map");
  return Ok{};
}

Status Loader::wait_for_packets() {
  const uint32_t zero = 0;
  const int inner = barrier_inner_.get();
  if (bpf_map_update_elem(barrier_outer_.get(), &zero, &inner, BPF_ANY) != 0)
    return sys_error(errno, "waiting for packets in flight (barrier map update)");
  return Ok{};
}

Status Loader::read_state() {
  sluice_lb_bpf* s = skel_.get();
  slots_.assign(SLUICE_MAX_BACKENDS, sluice_backend{});
  for (uint32_t i = 0; i < SLUICE_MAX_BACKENDS; ++i)
    if (bpf_map_lookup_elem(map_fd(s->maps.sluice_backends), &i, &slots_[i]) != 0)
      return sys_error(errno, "reading backend slot " + std::to_string(i));

  table_present_.assign(SLUICE_MAX_VIPS, false);
  std::vector<uint32_t> inner_ids(SLUICE_MAX_VIPS, 0);
  for (uint32_t i = 0; i < SLUICE_MAX_VIPS; ++i) {
    if (bpf_map_lookup_elem(map_fd(s->maps.sluice_maglev), &i, &inner_ids[i]) == 0)
      table_present_[i] = true;
    else if (errno != ENOENT)
      return sys_error(errno, "reading Maglev table slot " + std::to_string(i));
  }

  vips_.clear();
  sluice_vip_key key{};
  sluice_vip_key next{};
  const int vfd = map_fd(s->maps.sluice_vips);
  for (bool first = true; bpf_map_get_next_key(vfd, first ? nullptr : &key, &next) == 0;
       first = false) {
    key = next;
    VipState v;
    v.key = key;
    if (bpf_map_lookup_elem(vfd, &key, &v.meta) != 0) continue;  // deleted meanwhile
    const uint32_t id = v.meta.vip_id;
    if (id < SLUICE_MAX_VIPS && table_present_[id]) {
      UniqueFd inner(bpf_map_get_fd_by_id(inner_ids[id]));
      bpf_map_info info{};
      uint32_t len = sizeof info;
      if (inner.valid() && bpf_obj_get_info_by_fd(inner.get(), &info, &len) == 0) {
        auto t = read_u32_array(inner.get(), info.max_entries);
        if (!t.ok()) return t.error();
        v.table = std::move(t.value());
      }
    }
    // A VIP whose table could not be read keeps an empty one here, so the
    // next publish writes it afresh.
    vips_.emplace(key_bytes(key), std::move(v));
  }

  vip_slots_.assign(SLUICE_VIP_SLOTS, sluice_vip_slot{});
  for (uint32_t i = 0; i < SLUICE_VIP_SLOTS; ++i)
    if (bpf_map_lookup_elem(map_fd(s->maps.sluice_vip_slots), &i, &vip_slots_[i]) != 0)
      return sys_error(errno, "reading VIP slot " + std::to_string(i));

  const uint32_t zero = 0;
  sluice_encap_config cfg{};
  if (bpf_map_lookup_elem(map_fd(s->maps.sluice_encap), &zero, &cfg) != 0)
    return sys_error(errno, "reading the encap config");
  encap_ = cfg;
  sluice_next_hop nh{};
  if (bpf_map_lookup_elem(map_fd(s->maps.sluice_next_hop), &zero, &nh) != 0)
    return sys_error(errno, "reading the next hop");
  next_hop_ = nh;
  hops_.assign(SLUICE_MAX_BACKENDS, sluice_backend_hop{});
  for (uint32_t i = 0; i < SLUICE_MAX_BACKENDS; ++i)
    if (bpf_map_lookup_elem(map_fd(s->maps.sluice_backend_hops), &i, &hops_[i]) != 0)
      return sys_error(errno, "reading the next hop of backend slot " + std::to_string(i));
  // A restarted loader keeps the next hops a previous one resolved until
  // it resolves them again.
  resolved_.clear();
  for (uint32_t i = 0; i < SLUICE_MAX_BACKENDS; ++i) {
    const sluice_backend& b = slots_[i];
    const sluice_backend_hop& h = hops_[i];
    if ((b.flags & SLUICE_BACKEND_VALID) != 0 && h.backend_id == b.id &&
        std::any_of(std::begin(h.hop.dst_mac), std::end(h.hop.dst_mac),
                    [](uint8_t x) { return x != 0; }))
      resolved_[address_of(b.addr, b.family)] = h.hop;
  }
  return Ok{};
}

Status Loader::write_slot(uint32_t slot, const sluice_backend& b) {
  if (bpf_map_update_elem(map_fd(skel_->maps.sluice_backends), &slot, &b, BPF_ANY) != 0)
    return sys_error(errno, "writing backend slot " + std::to_string(slot) + " (id " +
                                std::to_string(b.id) + ")");
  slots_[slot] = b;
  return Ok{};
}

Status Loader::zero_percpu(bpf_map* map, uint32_t key, size_t value_size) {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return sys_error(ncpus, "counting possible CPUs");
  std::vector<uint8_t> zeros((value_size + 7) / 8 * 8 * static_cast<size_t>(ncpus), 0);
  if (bpf_map_update_elem(map_fd(map), &key, zeros.data(), BPF_ANY) != 0)
    return sys_error(
        errno, std::string("zeroing ") + bpf_map__name(map) + " entry " + std::to_string(key));
  return Ok{};
}

Status Loader::write_table(uint32_t vip_id, std::span<const uint32_t> table) {
  const auto m = static_cast<uint32_t>(table.size());
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_mgl_tbl", 4, 4, m, &opts));
  if (!inner.valid())
    return sys_error(errno, "creating a Maglev table of " + std::to_string(m) + " entries");
  std::vector<uint32_t> keys(m);
  std::iota(keys.begin(), keys.end(), 0u);
  uint32_t count = m;
  if (bpf_map_update_batch(inner.get(), keys.data(), table.data(), &count, nullptr) != 0) {
    for (uint32_t i = 0; i < m; ++i)
      if (bpf_map_update_elem(inner.get(), &i, &table[i], BPF_ANY) != 0)
        return sys_error(errno, "filling a Maglev table");
  }
  // The swap: one update of the outer slot; it returns once no packet can
  // still be reading the table it replaced.
  const int fd = inner.get();
  if (bpf_map_update_elem(map_fd(skel_->maps.sluice_maglev), &vip_id, &fd, BPF_ANY) != 0)
    return sys_error(errno, "swapping in the Maglev table of vip_id " + std::to_string(vip_id));
  table_present_[vip_id] = true;
  return Ok{};
}

Status Loader::write_meta(const sluice_vip_key& key, const sluice_vip_meta& meta,
                          bool* barrier_due) {
  if (*barrier_due) {
    if (auto w = wait_for_packets(); !w.ok()) return w;
  }
  if (bpf_map_update_elem(map_fd(skel_->maps.sluice_vips), &key, &meta, BPF_ANY) != 0)
    return sys_error(errno, "writing VIP " + describe(key));
  // The replaced element is the next update's (see the top of this file).
  *barrier_due = true;
  return Ok{};
}

Status Loader::publish(const Snapshot& snap) {
  // ---- 0. Validation --------------------------------------------------
  std::unordered_map<uint32_t, sluice_backend> want_backends;  // by id, normalized
  std::vector<uint32_t> slot_owner(SLUICE_MAX_BACKENDS, SLUICE_BACKEND_NONE);
  bool any_v4 = false;
  bool any_v6 = false;
  for (const sluice_backend& in : snap.backends) {
    const std::string name = "backend id " + std::to_string(in.id);
    if (in.id == SLUICE_BACKEND_NONE) return Error{-EINVAL, "backend id 0xffffffff is reserved"};
    if (!valid_family(in.family)) return Error{-EINVAL, name + ": bad family"};
    if ((in.flags & ~(SLUICE_BACKEND_VALID | SLUICE_BACKEND_DRAINING)) != 0)
      return Error{-EINVAL, name + ": unknown flags"};
    const sluice_backend b = normalized(in);
    if (!want_backends.emplace(b.id, b).second) return Error{-EINVAL, name + " listed twice"};
    const uint32_t slot = b.id & kSlotMask;
    if (slot_owner[slot] != SLUICE_BACKEND_NONE)
      return Error{-EINVAL, name + " and id " + std::to_string(slot_owner[slot]) +
                                " need the same slot " + std::to_string(slot)};
    slot_owner[slot] = b.id;
    const sluice_backend& cur = slots_[slot];
    if ((cur.flags & SLUICE_BACKEND_VALID) != 0) {
      if (cur.id != b.id)
        return Error{-EBUSY, name + " needs slot " + std::to_string(slot) + ", still held by id " +
                                 std::to_string(cur.id) +
                                 " which this snapshot removes: publish the removal first"};
      if (cur.family != b.family || !same_ip(cur.addr, b.addr))
        return Error{-EINVAL, name + " changed its address from " +
                                  address_of(cur.addr, cur.family).to_string() + " to " +
                                  address_of(b.addr, b.family).to_string() +
                                  ": a new address needs a new id"};
    }
    (b.family == SLUICE_FAMILY_IPV4 ? any_v4 : any_v6) = true;
  }
  const sluice_encap_config& enc = snap.encap;
  const union sluice_ip zero_ip = {.bytes = {}};
  if (any_v4 && same_ip(enc.src_v4, zero_ip))
    return Error{-EINVAL, "IPv4 backends need encap.src_v4"};
  if (any_v6 && same_ip(enc.src_v6, zero_ip))
    return Error{-EINVAL, "IPv6 backends need encap.src_v6"};
  if (enc.entropy_bits > 16) return Error{-EINVAL, "encap.entropy_bits must be 0-16"};
  sluice_encap_config want_encap{};
  std::memcpy(want_encap.src_v4.bytes, enc.src_v4.bytes, 4);
  want_encap.src_v6 = enc.src_v6;
  want_encap.mtu = enc.mtu;
  want_encap.entropy_bits = enc.entropy_bits;

  struct WantVip {
    sluice_vip_key key;
    sluice_vip_meta meta;
    std::span<const uint32_t> table;
    const VipState* cur;  // nullptr: a new VIP
  };
  std::vector<WantVip> want_vips;
  std::vector<bool> id_used(SLUICE_MAX_VIPS, false);
  std::set<VipKeyBytes> keys_seen;
  for (const SnapshotVip& in : snap.vips) {
    const sluice_vip_key key = normalized(in.key);
    const std::string name = "VIP " + describe(key);
    if (!valid_family(key.family)) return Error{-EINVAL, name + ": bad family"};
    if (key.proto != SLUICE_IPPROTO_TCP && key.proto != SLUICE_IPPROTO_UDP)
      return Error{-EINVAL, name + ": protocol must be TCP or UDP"};
    const uint32_t id = in.meta.vip_id;
    if (id >= SLUICE_MAX_VIPS)
      return Error{-EINVAL, name + ": vip_id " + std::to_string(id) +
                                " >= " + std::to_string(SLUICE_MAX_VIPS)};
    if (id_used[id])
      return Error{-EINVAL, name + ": vip_id " + std::to_string(id) + " taken twice"};
    id_used[id] = true;
    if (!keys_seen.insert(key_bytes(key)).second) return Error{-EINVAL, name + " listed twice"};
    const auto m = in.table.size();
    if (m < SLUICE_MAGLEV_MIN_SIZE || m > SLUICE_MAGLEV_MAX_SIZE ||
        !is_prime(static_cast<uint32_t>(m)))
      return Error{-EINVAL, name + ": table size " + std::to_string(m) + " is not a prime in [" +
                                std::to_string(SLUICE_MAGLEV_MIN_SIZE) + ", " +
                                std::to_string(SLUICE_MAGLEV_MAX_SIZE) + "]"};
    for (size_t i = 0; i < m; ++i) {
      const uint32_t b = in.table[i];
      if (b != SLUICE_BACKEND_NONE && want_backends.find(b) == want_backends.end())
        return Error{-EINVAL, name + ": table entry " + std::to_string(i) + " names backend id " +
                                  std::to_string(b) + ", which the snapshot does not have"};
    }
    WantVip w{key, {}, in.table, nullptr};
    w.meta.vip_id = id;
    w.meta.flags = in.meta.flags;
    w.meta.table_size = static_cast<uint32_t>(m);
    if (auto it = vips_.find(key_bytes(key)); it != vips_.end()) {
      w.cur = &it->second;
      if (it->second.meta.vip_id != id)
        return Error{-EINVAL, name + ": vip_id changed from " +
                                  std::to_string(it->second.meta.vip_id) + " to " +
                                  std::to_string(id) + "; remove the VIP and add it again"};
    }
    want_vips.push_back(w);
  }

  const auto want_slots = vip_slots_for(
      want_vips, [](const WantVip& w) -> const sluice_vip_key& { return w.key; },
      [](const WantVip& w) { return w.meta; });

  // ---- 1. Encap config, static next hop -------------------------------
  const uint32_t zero = 0;
  if (!encap_ || std::memcmp(&*encap_, &want_encap, sizeof want_encap) != 0) {
    if (bpf_map_update_elem(map_fd(skel_->maps.sluice_encap), &zero, &want_encap, BPF_ANY) != 0)
      return sys_error(errno, "writing the encap config");
    encap_ = want_encap;
  }
  if (snap.next_hop) {
    const sluice_next_hop nh = normalised(*snap.next_hop);
    if (!next_hop_ || std::memcmp(&*next_hop_, &nh, sizeof nh) != 0) {
      if (auto s = set_next_hop(nh); !s.ok()) return s;
    }
  }

  // ---- 2. Backends: new ids (two writes), drain changes ----------------
  std::vector<sluice_backend> fresh;
  for (const auto& [id, b] : want_backends) {
    const uint32_t slot = id & kSlotMask;
    const sluice_backend& cur = slots_[slot];
    if ((cur.flags & SLUICE_BACKEND_VALID) == 0) {
      sluice_backend hidden = b;
      hidden.flags = 0;
      if (auto s = write_slot(slot, hidden); !s.ok()) return s;
      if (auto s = zero_percpu(skel_->maps.sluice_bkstats, slot, sizeof(sluice_backend_stats));
          !s.ok())
        return s;
      fresh.push_back(b);
    } else if (cur.flags != b.flags) {
      if (auto s = write_slot(slot, b); !s.ok()) return s;
    }
  }
  // Each backend's own next hop before its first packet (a new one has
  // its address's, if resolved); the ones this snapshot removes keep
  // theirs for the flows still naming them.
  std::vector<bool> live(SLUICE_MAX_BACKENDS);
  for (uint32_t slot = 0; slot < SLUICE_MAX_BACKENDS; ++slot)
    live[slot] = slot_owner[slot] != SLUICE_BACKEND_NONE ||
                 (slots_[slot].flags & SLUICE_BACKEND_VALID) != 0;
  if (auto s = sync_backend_hops(live, false); !s.ok()) return s;
  if (!fresh.empty()) {
    if (auto w = wait_for_packets(); !w.ok()) return w;
    for (const sluice_backend& b : fresh)
      if (auto s = write_slot(b.id & kSlotMask, b); !s.ok()) return s;
  }

  // ---- 3. VIPs gone: keys, then (after packets in flight) tables -------
  // Packets landing on a slot that changes use sluice_vips from here on.
  if (auto s = mark_vip_slots(want_slots); !s.ok()) return s;
  bool barrier_due = false;
  std::vector<VipKeyBytes> gone;
  for (const auto& [kb, v] : vips_)
    if (keys_seen.find(kb) == keys_seen.end()) gone.push_back(kb);
  for (const VipKeyBytes& kb : gone) {
    const VipState& v = vips_.at(kb);
    if (bpf_map_delete_elem(map_fd(skel_->maps.sluice_vips), &v.key) != 0 && errno != ENOENT)
      return sys_error(errno, "deleting VIP " + describe(v.key));
    vips_.erase(kb);
    barrier_due = true;
  }
  if (barrier_due) {
    if (auto w = wait_for_packets(); !w.ok()) return w;
    barrier_due = false;
  }
  // Tables no VIP of the current state uses (the deleted ones, and any a
  // crashed publish left behind), unless a new VIP takes the id below.
  std::vector<bool> in_use(SLUICE_MAX_VIPS, false);
  for (const auto& [kb, v] : vips_)
    if (v.meta.vip_id < SLUICE_MAX_VIPS) in_use[v.meta.vip_id] = true;
  for (uint32_t id = 0; id < SLUICE_MAX_VIPS; ++id) {
    if (!table_present_[id] || in_use[id] || id_used[id]) continue;
    if (bpf_map_delete_elem(map_fd(skel_->maps.sluice_maglev), &id) != 0 && errno != ENOENT)
      return sys_error(errno, "deleting the Maglev table of vip_id " + std::to_string(id));
    table_present_[id] = false;
  }

  // ---- 4. Tables and metas of the snapshot's VIPs ----------------------
  for (const WantVip& w : want_vips) {
    const uint32_t id = w.meta.vip_id;
    if (w.cur == nullptr) {
      if (auto s = write_table(id, w.table); !s.ok()) return s;
      if (auto s = zero_percpu(skel_->maps.sluice_vipstats, id, sizeof(sluice_vip_stats)); !s.ok())
        return s;
      // An insert takes a free element, not the one an update released.
      if (bpf_map_update_elem(map_fd(skel_->maps.sluice_vips), &w.key, &w.meta, BPF_NOEXIST) != 0)
        return sys_error(errno, "adding VIP " + describe(w.key));
      vips_[key_bytes(w.key)] = VipState{w.key, w.meta, {w.table.begin(), w.table.end()}};
      continue;
    }
    VipState& cur = vips_.at(key_bytes(w.key));
    const bool table_changed =
        !std::equal(w.table.begin(), w.table.end(), cur.table.begin(), cur.table.end()) ||
        !table_present_[id];
    const bool meta_changed = std::memcmp(&cur.meta, &w.meta, sizeof w.meta) != 0;
    const uint32_t old_m = cur.meta.table_size;
    const uint32_t new_m = w.meta.table_size;
    if (table_changed && new_m < old_m) {
      // Shrinking: no packet may pair the new (smaller) table with the old M.
      if (auto s = write_meta(w.key, w.meta, &barrier_due); !s.ok()) return s;
      cur.meta = w.meta;
      if (auto s = wait_for_packets(); !s.ok()) return s;
      if (auto s = write_table(id, w.table); !s.ok()) return s;
      barrier_due = false;
    } else {
      if (table_changed) {
        // Same M, or growing: the new table first; an old M indexes
        // inside it.
        if (auto s = write_table(id, w.table); !s.ok()) return s;
        barrier_due = false;
      }
      if (meta_changed) {
        if (auto s = write_meta(w.key, w.meta, &barrier_due); !s.ok()) return s;
        cur.meta = w.meta;
      }
    }
    if (table_changed) cur.table.assign(w.table.begin(), w.table.end());
  }

  // ---- 5. Backends gone: clear VALID ---------------------------------
  for (uint32_t slot = 0; slot < SLUICE_MAX_BACKENDS; ++slot) {
    const sluice_backend& cur = slots_[slot];
    if ((cur.flags & SLUICE_BACKEND_VALID) == 0 || want_backends.count(cur.id) != 0) continue;
    sluice_backend cleared = cur;
    cleared.flags = 0;
    if (auto s = write_slot(slot, cleared); !s.ok()) return s;
  }

  // ---- 6. The VIP slots, now that sluice_vips is final -----------------
  return write_vip_slots(want_slots);
}

}  // namespace sluice::xdp
