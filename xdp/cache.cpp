// SPDX-License-Identifier: BSD-2-Clause
// XdpCache: slots, leases, fills and reclamation over the cache maps of
// xdp/cache.bpf.h.
#include "xdp/cache.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace sluice::xdp {
namespace {

uint64_t key_of(uint32_t vip_id, uint32_t key_hash) { return uint64_t{vip_id} << 32 | key_hash; }

}  // namespace

struct XdpCache::State {
  struct Slot {
    bool used = false;
    uint32_t vip_id = 0;
    uint32_t key_hash = 0;
    std::string key;
    uint32_t bytes = 0;  // key + value
    uint32_t value_bytes = 0;
    uint64_t expires_ms = 0;
    uint64_t hits = 0;       // per-CPU sum as last read
    uint64_t hits_base = 0;  // the counter's value when the slot was filled
  };
  struct PerVip {
    uint64_t fills = 0, stale_fills = 0, evictions = 0, entries = 0, bytes = 0;
  };

  sluice_lb_bpf* skel = nullptr;
  XdpCacheOptions options;
  int ncpus = 0;
  std::vector<Slot> slots;
  std::vector<uint32_t> free_slots;
  std::unordered_map<uint64_t, uint32_t> by_key;  // (vip, key hash) -> slot
  std::vector<PerVip> per_vip = std::vector<PerVip>(SLUICE_MAX_VIPS);
  uint64_t bytes = 0;
  uint32_t hand = 0;
  UniqueFd barrier_outer, barrier_inner;
  ring_buffer* rb = nullptr;
  std::vector<HotKey> reported;
  std::set<std::pair<uint32_t, std::string>> reported_set;

  ~State() {
    if (rb != nullptr) ring_buffer__free(rb);
  }

  int fd(bpf_map* m) const { return bpf_map__fd(m); }

  Status barrier() {
    const uint32_t zero = 0;
    const int inner = barrier_inner.get();
    if (bpf_map_update_elem(barrier_outer.get(), &zero, &inner, BPF_ANY) != 0)
      return sys_error(errno, "waiting for packets in flight (cache barrier)");
    return Ok{};
  }

  // Removes the slot's index entry if it still names the slot; the slot is
  // then unreachable for new packets, and free after a barrier.
  Status unindex(uint32_t slot) {
    Slot& s = slots[slot];
    const sluice_cache_key k{s.vip_id, s.key_hash};
    uint32_t named = 0;
    if (bpf_map_lookup_elem(fd(skel->maps.sluice_cache_index), &k, &named) == 0 && named == slot &&
        bpf_map_delete_elem(fd(skel->maps.sluice_cache_index), &k) != 0 && errno != ENOENT)
      return sys_error(errno, "removing a cache index entry");
    return Ok{};
  }

  // Forgets the slot (its index entry already gone); free once a barrier
  // has passed, which the caller runs.
  void release(uint32_t slot, std::vector<uint32_t>& pending) {
    Slot& s = slots[slot];
    auto it = by_key.find(key_of(s.vip_id, s.key_hash));
    if (it != by_key.end() && it->second == slot) by_key.erase(it);
    bytes -= s.bytes;
    per_vip[s.vip_id].entries--;
    per_vip[s.vip_id].bytes -= s.bytes;
    s = Slot{};
    pending.push_back(slot);
  }

  uint64_t read_hits(uint32_t slot) const {
    std::vector<uint64_t> v(static_cast<size_t>(ncpus));
    if (bpf_map_lookup_elem(fd(skel->maps.sluice_cache_hits), &slot, v.data()) != 0) return 0;
    uint64_t sum = 0;
    for (uint64_t x : v) sum += x;
    return sum;
  }

  // Evicts the coldest of up to 8 used slots from the clock hand on
  // (expired first), and waits for packets in flight: then free.
  Status evict_one(uint64_t now_ms) {
    const auto cap = static_cast<uint32_t>(slots.size());
    uint32_t victim = cap;
    for (uint32_t n = 0, seen = 0; n < cap && seen < 8; ++n) {
      const uint32_t i = hand;
      hand = (hand + 1) % cap;
      if (!slots[i].used) continue;
      ++seen;
      if (now_ms >= slots[i].expires_ms) {
        victim = i;
        break;
      }
      const uint64_t hits = read_hits(i) - slots[i].hits_base;
      slots[i].hits = hits;
      if (victim == cap || hits < slots[victim].hits) victim = i;
      // Fade: what was counted so far weighs half from now on.
      slots[i].hits_base += hits / 2;
    }
    if (victim == cap) return Error{-ENOSPC, "cache full and nothing to evict"};
    per_vip[slots[victim].vip_id].evictions++;
    if (auto u = unindex(victim); !u.ok()) return u;
    std::vector<uint32_t> pending;
    release(victim, pending);
    if (auto b = barrier(); !b.ok()) return b;
    free_slots.insert(free_slots.end(), pending.begin(), pending.end());
    return Ok{};
  }

  static int on_hot(void* ctx, void* data, size_t size) {
    auto* st = static_cast<State*>(ctx);
    if (size < sizeof(sluice_cache_hot)) return 0;
    sluice_cache_hot ev;
    std::memcpy(&ev, data, sizeof ev);
    if (ev.key_len == 0 || ev.key_len > SLUICE_CACHE_KEY_MAX || ev.vip_id >= SLUICE_MAX_VIPS)
      return 0;
    HotKey h{ev.vip_id, std::string(reinterpret_cast<const char*>(ev.key), ev.key_len)};
    if (st->reported_set.insert({h.vip_id, h.key}).second) st->reported.push_back(std::move(h));
    return 0;
  }
};

Result<XdpCache> XdpCache::open(sluice_lb_bpf* skel, const XdpCacheOptions& options) {
  if (skel == nullptr) return Error{-EINVAL, "no program"};
  if (options.max_bytes == 0 || options.ttl_ms == 0)
    return Error{-EINVAL, "cache bytes and ttl must be > 0"};
  auto st = std::make_unique<State>();
  st->skel = skel;
  st->options = options;
  st->ncpus = libbpf_num_possible_cpus();
  if (st->ncpus <= 0) return sys_error(st->ncpus, "counting possible CPUs");
  const uint32_t cap = bpf_map__max_entries(skel->maps.sluice_cache_entries);
  st->slots.resize(cap);
  for (uint32_t i = cap; i-- > 0;) st->free_slots.push_back(i);
  st->barrier_inner =
      UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_cbar_i", 4, 4, 1, nullptr));
  if (!st->barrier_inner.valid()) return sys_error(errno, "creating the cache barrier's inner map");
  LIBBPF_OPTS(bpf_map_create_opts, opts,
              .inner_map_fd = static_cast<uint32_t>(st->barrier_inner.get()));
  st->barrier_outer =
      UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "sluice_cbar", 4, 4, 1, &opts));
  if (!st->barrier_outer.valid()) return sys_error(errno, "creating the cache barrier map");
  // Entries a previous daemon installed are not known here: drop them all
  // (the index first, so no packet reaches a slot rewritten later).
  sluice_cache_key k{}, next{};
  const int index_fd = bpf_map__fd(skel->maps.sluice_cache_index);
  while (bpf_map_get_next_key(index_fd, nullptr, &next) == 0) {
    k = next;
    if (bpf_map_delete_elem(index_fd, &k) != 0 && errno != ENOENT)
      return sys_error(errno, "clearing the cache index");
  }
  if (auto b = st->barrier(); !b.ok()) return b.error();
  st->rb = ring_buffer__new(bpf_map__fd(skel->maps.sluice_cache_hot), State::on_hot, st.get(),
                            nullptr);
  if (st->rb == nullptr) return sys_error(errno, "opening the hot-key ring buffer");
  return XdpCache(std::move(st));
}

XdpCache::XdpCache(std::unique_ptr<State> state) : s_(std::move(state)) {}
XdpCache::XdpCache(XdpCache&&) noexcept = default;
XdpCache& XdpCache::operator=(XdpCache&&) noexcept = default;
XdpCache::~XdpCache() = default;

uint64_t XdpCache::now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint32_t XdpCache::capacity() const { return static_cast<uint32_t>(s_->slots.size()); }

Result<std::vector<HotKey>> XdpCache::poll_hot(size_t max) {
  const int n = ring_buffer__consume(s_->rb);
  if (n < 0) return sys_error(n, "reading the hot-key ring buffer");
  std::vector<HotKey> out;
  const size_t take = std::min(max, s_->reported.size());
  out.assign(std::make_move_iterator(s_->reported.begin()),
             std::make_move_iterator(s_->reported.begin() + static_cast<std::ptrdiff_t>(take)));
  s_->reported.erase(s_->reported.begin(), s_->reported.begin() + static_cast<std::ptrdiff_t>(take));
  s_->reported_set.clear();
  for (const HotKey& h : s_->reported) s_->reported_set.insert({h.vip_id, h.key});
  return out;
}

Result<FillLease> XdpCache::begin_fill(uint32_t vip_id, std::string_view key, uint64_t now_ms) {
  if (!mc::valid_key(key)) return Error{-EINVAL, "not a memcached key"};
  if (vip_id >= SLUICE_MAX_VIPS) return Error{-EINVAL, "vip id out of range"};
  const uint32_t h = mc::key_hash(key);
  const uint32_t vslot = sluice_cache_version_slot(vip_id, h);
  sluice_cache_version v{};
  uint32_t epoch = 0;
  if (bpf_map_lookup_elem(s_->fd(s_->skel->maps.sluice_cache_versions), &vslot, &v) != 0)
    return sys_error(errno, "reading a cache version");
  if (bpf_map_lookup_elem(s_->fd(s_->skel->maps.sluice_cache_epochs), &vip_id, &epoch) != 0)
    return sys_error(errno, "reading a cache epoch");
  if (v.version != 0 &&
      static_cast<uint32_t>(now_ms) - v.last_write_ms < s_->options.write_settle_ms)
    return Error{-EAGAIN, "the key was written less than write_settle_ms ago"};
  return FillLease{vip_id, h, v.version, epoch, now_ms};
}

Result<FillResult> XdpCache::install(const FillLease& lease, std::string_view key,
                                     const mc::Value& value, uint64_t now_ms) {
  State& st = *s_;
  if (!mc::valid_key(key) || lease.vip_id >= SLUICE_MAX_VIPS ||
      mc::key_hash(key) != lease.key_hash)
    return FillResult::kInvalid;
  const uint64_t need = key.size() + value.data.size();
  if (value.data.size() > SLUICE_CACHE_VALUE_MAX || need > st.options.max_bytes)
    return FillResult::kTooBig;
  // The lease, checked against the maps now: refusing here saves a slot.
  auto again = begin_fill(lease.vip_id, key, lease.began_ms);
  if (!again.ok() && again.error().code != -EAGAIN) return again.error();
  if (!again.ok() || again.value().version != lease.version ||
      again.value().epoch != lease.epoch) {
    st.per_vip[lease.vip_id].stale_fills++;
    return FillResult::kStale;
  }

  while (st.free_slots.empty() || st.bytes + need > st.options.max_bytes)
    if (auto e = st.evict_one(now_ms); !e.ok()) return e.error();
  const uint32_t slot = st.free_slots.back();
  sluice_cache_entry e{};
  if (mc::fill_entry(e, lease.vip_id, key, value, lease.version, lease.epoch,
                     lease.began_ms + st.options.ttl_ms) != 0)
    return FillResult::kInvalid;
  if (bpf_map_update_elem(st.fd(st.skel->maps.sluice_cache_entries), &slot, &e, BPF_ANY) != 0)
    return sys_error(errno, "writing a cache entry");
  st.free_slots.pop_back();
  const sluice_cache_key k{lease.vip_id, lease.key_hash};
  // One update swaps the index to the new slot: packets see the old entry
  // or the new one, whole.
  if (bpf_map_update_elem(st.fd(st.skel->maps.sluice_cache_index), &k, &slot, BPF_ANY) != 0) {
    st.free_slots.push_back(slot);
    return sys_error(errno, "writing a cache index entry");
  }
  std::vector<uint32_t> pending;
  if (auto old = st.by_key.find(key_of(lease.vip_id, lease.key_hash)); old != st.by_key.end())
    st.release(old->second, pending);
  State::Slot& s = st.slots[slot];
  s.used = true;
  s.vip_id = lease.vip_id;
  s.key_hash = lease.key_hash;
  s.key = std::string(key);
  s.bytes = static_cast<uint32_t>(need);
  s.value_bytes = static_cast<uint32_t>(value.data.size());
  s.expires_ms = lease.began_ms + st.options.ttl_ms;
  s.hits = 0;
  s.hits_base = st.read_hits(slot);
  st.by_key[key_of(lease.vip_id, lease.key_hash)] = slot;
  st.bytes += need;
  st.per_vip[lease.vip_id].entries++;
  st.per_vip[lease.vip_id].bytes += need;
  st.per_vip[lease.vip_id].fills++;
  if (!pending.empty()) {
    if (auto b = st.barrier(); !b.ok()) return b.error();
    st.free_slots.insert(st.free_slots.end(), pending.begin(), pending.end());
  }
  (void)now_ms;
  return FillResult::kInstalled;
}

Result<uint32_t> XdpCache::maintain(uint64_t now_ms) {
  State& st = *s_;
  const uint32_t zero = 0;
  std::vector<uint8_t> zeros(sizeof(sluice_cache_sketch) * static_cast<size_t>(st.ncpus), 0);
  if (bpf_map_update_elem(st.fd(st.skel->maps.sluice_cache_sketch), &zero, zeros.data(),
                          BPF_ANY) != 0)
    return sys_error(errno, "resetting the miss sketches");

  std::vector<uint32_t> pending;
  for (uint32_t i = 0; i < st.slots.size(); ++i) {
    State::Slot& s = st.slots[i];
    if (!s.used) continue;
    s.hits = st.read_hits(i) - s.hits_base;
    const sluice_cache_key k{s.vip_id, s.key_hash};
    uint32_t named = 0;
    const bool indexed =
        bpf_map_lookup_elem(st.fd(st.skel->maps.sluice_cache_index), &k, &named) == 0 &&
        named == i;
    if (indexed && now_ms < s.expires_ms) continue;
    if (indexed) {
      if (auto u = st.unindex(i); !u.ok()) return u.error();
    }
    st.per_vip[s.vip_id].evictions++;
    st.release(i, pending);
  }
  if (!pending.empty()) {
    if (auto b = st.barrier(); !b.ok()) return b.error();
    st.free_slots.insert(st.free_slots.end(), pending.begin(), pending.end());
  }
  return static_cast<uint32_t>(pending.size());
}

Result<XdpCacheCounters> XdpCache::counters(uint32_t vip_id) const {
  if (vip_id >= SLUICE_MAX_VIPS) return Error{-EINVAL, "vip id out of range"};
  const State& st = *s_;
  std::vector<sluice_cache_stats> v(static_cast<size_t>(st.ncpus));
  if (bpf_map_lookup_elem(st.fd(st.skel->maps.sluice_cache_stats), &vip_id, v.data()) != 0)
    return sys_error(errno, "reading cache counters");
  XdpCacheCounters c;
  for (const sluice_cache_stats& x : v) {
    c.fast_path.hits += x.hits;
    c.fast_path.misses += x.misses;
    c.fast_path.invalidations += x.invalidations;
    c.fast_path.vip_invalidations += x.vip_invalidations;
    c.fast_path.hot_reports += x.hot_reports;
    c.fast_path.bypassed += x.bypassed;
  }
  const State::PerVip& p = st.per_vip[vip_id];
  c.fills = p.fills;
  c.stale_fills = p.stale_fills;
  c.evictions = p.evictions;
  c.entries = p.entries;
  c.bytes = p.bytes;
  return c;
}

std::vector<CachedKey> XdpCache::hottest(size_t n) const {
  std::vector<CachedKey> all;
  for (const State::Slot& s : s_->slots)
    if (s.used) all.push_back({s.vip_id, s.key, s.hits, s.value_bytes, s.expires_ms});
  std::sort(all.begin(), all.end(), [](const CachedKey& a, const CachedKey& b) {
    return a.hits != b.hits ? a.hits > b.hits : a.key < b.key;
  });
  if (all.size() > n) all.resize(n);
  return all;
}

}  // namespace sluice::xdp
