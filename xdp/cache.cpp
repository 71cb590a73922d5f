// SPDX-License-Identifier: BSD-2-Clause
// XdpCache: slots, leases, fills and reclamation over the cache maps of
// xdp/cache.bpf.h.
#include "xdp/cache.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

namespace sluice::xdp {

struct XdpCache::State {
  struct Slot {
    bool used = false;
    uint32_t vip_id = 0;
    uint32_t key_hash = 0;
    uint32_t vslot = 0;    // sluice_cache_version_slot: where the index names it
    uint32_t version = 0;  // the version its fill leased
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
  std::unordered_map<uint32_t, uint32_t> by_vslot;  // version slot -> entry slot
  sluice_cache_slot* index = nullptr;  // sluice_cache_slots, mmap-ed
  size_t index_bytes = 0;
  std::vector<PerVip> per_vip = std::vector<PerVip>(SLUICE_MAX_VIPS);
  uint64_t bytes = 0;
  uint32_t hand = 0;
  UniqueFd barrier_outer, barrier_inner;
  ring_buffer* rb = nullptr;
  std::vector<HotKey> reported;
  std::set<std::pair<uint32_t, std::string>> reported_set;

  ~State() {
    if (rb != nullptr) ring_buffer__free(rb);
    if (index != nullptr) munmap(index, index_bytes);
  }

  // The fields of an index slot the fast path writes, read or written
  // without tearing (the fast path bumps version atomically).
  std::atomic_ref<uint32_t> entry_of(uint32_t vslot) const {
    return std::atomic_ref<uint32_t>(index[vslot].entry);
  }
  std::atomic_ref<uint32_t> version_of(uint32_t vslot) const {
    return std::atomic_ref<uint32_t>(index[vslot].version);
  }

  int fd(bpf_map* m) const { return bpf_map__fd(m); }

  Status barrier() {
    const uint32_t zero = 0;
    const int inner = barrier_inner.get();
    if (bpf_map_update_elem(barrier_outer.get(), &zero, &inner, BPF_ANY) != 0)
      return sys_error(errno, "waiting for packets in flight (cache barrier)");
    return Ok{};
  }

  // Clears the slot's index slot if it still names the slot (the fast path
  // may clear it meanwhile); the slot is then unreachable for new packets,
  // and free after a barrier.
  void unindex(uint32_t slot) {
    uint32_t named = slot + 1;
    entry_of(slots[slot].vslot).compare_exchange_strong(named, 0);
  }

  // Forgets the slot (its index entry already gone); free once a barrier
  // has passed, which the caller runs.
  void release(uint32_t slot, std::vector<uint32_t>& pending) {
    Slot& s = slots[slot];
    auto it = by_vslot.find(s.vslot);
    if (it != by_vslot.end() && it->second == slot) by_vslot.erase(it);
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
    unindex(victim);
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
  const uint32_t nslots = bpf_map__max_entries(skel->maps.sluice_cache_slots);
  if (nslots != SLUICE_CACHE_VERSION_SLOTS) return Error{-EINVAL, "cache index of the wrong size"};
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  st->index_bytes = (size_t{nslots} * sizeof(sluice_cache_slot) + page - 1) / page * page;
  void* mem = mmap(nullptr, st->index_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   bpf_map__fd(skel->maps.sluice_cache_slots), 0);
  if (mem == MAP_FAILED) return sys_error(errno, "mapping the cache index");
  st->index = static_cast<sluice_cache_slot*>(mem);
  // Entries a previous daemon installed are not known here: drop them all
  // (the index first, so no packet reaches a slot rewritten later).
  for (uint32_t i = 0; i < nslots; ++i) st->entry_of(i).store(0);
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
  // The write stamp is read after the version: a write that bumps the
  // version after this read is caught by install's second look.
  const uint32_t version = s_->version_of(vslot).load();
  const uint32_t last_write_ms =
      std::atomic_ref<uint32_t>(s_->index[vslot].last_write_ms).load();
  uint32_t epoch = 0;
  if (bpf_map_lookup_elem(s_->fd(s_->skel->maps.sluice_cache_epochs), &vip_id, &epoch) != 0)
    return sys_error(errno, "reading a cache epoch");
  if (version != 0 &&
      static_cast<uint32_t>(now_ms) - last_write_ms < s_->options.write_settle_ms)
    return Error{-EAGAIN, "the key was written less than write_settle_ms ago"};
  return FillLease{vip_id, h, version, epoch, now_ms};
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
  const uint32_t vslot = sluice_cache_version_slot(lease.vip_id, lease.key_hash);
  // One store swaps the index slot to the new entry: packets see the old
  // entry (this key's or another of the slot's) or the new one, whole. A
  // write between the check above and this store left a newer version,
  // which the fast path compares on every hit.
  st.entry_of(vslot).store(slot + 1);
  std::vector<uint32_t> pending;
  if (auto old = st.by_vslot.find(vslot); old != st.by_vslot.end())
    st.release(old->second, pending);
  State::Slot& s = st.slots[slot];
  s.used = true;
  s.vip_id = lease.vip_id;
  s.key_hash = lease.key_hash;
  s.vslot = vslot;
  s.version = lease.version;
  s.key = std::string(key);
  s.bytes = static_cast<uint32_t>(need);
  s.value_bytes = static_cast<uint32_t>(value.data.size());
  s.expires_ms = lease.began_ms + st.options.ttl_ms;
  s.hits = 0;
  s.hits_base = st.read_hits(slot);
  st.by_vslot[vslot] = slot;
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
    // A write clears the index slot; one racing the install leaves it
    // named with a newer version: unservable either way.
    const bool live = st.entry_of(s.vslot).load() == i + 1 &&
                      st.version_of(s.vslot).load() == s.version;
    if (live && now_ms < s.expires_ms) continue;
    st.unindex(i);
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
