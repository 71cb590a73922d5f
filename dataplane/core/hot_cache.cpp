// SPDX-License-Identifier: BSD-2-Clause
// HotCache: entries in a fixed array, found through an open-addressing
// index (linear probing, backward-shift deletion), versions and epochs in
// fixed arrays.
#include "dataplane/core/hot_cache.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <vector>

namespace sluice {
namespace {

constexpr uint32_t kEmpty = 0;
// Used entries an eviction looks at before it picks the coldest.
constexpr uint32_t kEvictScan = 8;

// A field the owner writes, read from another thread.
template <class T>
T load_relaxed(const T& v) noexcept {
  // atomic_ref needs a non-const object; a load writes nothing.
  return std::atomic_ref<T>(const_cast<T&>(v)).load(std::memory_order_relaxed);
}

uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

struct HotCache::Impl {
  struct Meta {
    uint32_t hits = 0;   // lookups answered since the clock hand last passed
    uint32_t bytes = 0;  // key + value bytes
    bool used = false;
  };

  // Per entry slot, for other threads (key_hits); the owner writes it
  // with atomic stores.
  struct Answered {
    uint32_t seq = 1;          // odd while the slot is free or being filled
    uint32_t value_bytes = 0;  // the entry's value bytes
    uint64_t hits = 0;         // gets answered from the entry since its fill
  };

  HotCacheConfig config;
  std::unique_ptr<sluice_cache_entry[]> entries;
  std::vector<Meta> meta;
  std::unique_ptr<Answered[]> answered;
  std::vector<uint32_t> free_slots;
  std::vector<uint32_t> index;  // entry slot + 1, or kEmpty
  uint32_t index_mask = 0;
  std::unique_ptr<CacheVersions> own_versions;  // when not shared
  CacheVersions* versions = nullptr;
  uint32_t hand = 0;
  HotCacheStats stats;

  uint32_t home(uint32_t vip_id, uint32_t key_hash) const {
    return sluice_cache_mix(key_hash ^ vip_id * 0x9E3779B1u) & index_mask;
  }

  // Index position of (vip_id, key_hash), or index.size().
  size_t find(uint32_t vip_id, uint32_t key_hash) const {
    for (uint32_t pos = home(vip_id, key_hash);; pos = (pos + 1) & index_mask) {
      const uint32_t v = index[pos];
      if (v == kEmpty) return index.size();
      const sluice_cache_entry& e = entries[v - 1];
      if (e.vip_id == vip_id && e.key_hash == key_hash) return pos;
    }
  }

  size_t find_slot(uint32_t slot) const {
    const sluice_cache_entry& e = entries[slot];
    for (uint32_t pos = home(e.vip_id, e.key_hash);; pos = (pos + 1) & index_mask)
      if (index[pos] == slot + 1) return pos;
  }

  // Backward-shift deletion (Knuth, TAOCP vol. 3, 6.4, algorithm R): later
  // members of the probe run move up so no lookup stops early.
  void erase_at(size_t pos) {
    size_t hole = pos;
    for (size_t i = (hole + 1) & index_mask;; i = (i + 1) & index_mask) {
      const uint32_t v = index[i];
      if (v == kEmpty) break;
      const sluice_cache_entry& e = entries[v - 1];
      const size_t h = home(e.vip_id, e.key_hash);
      // Move v into the hole unless its home lies cyclically in (hole, i].
      const bool stays = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i);
      if (!stays) {
        index[hole] = v;
        hole = i;
      }
    }
    index[hole] = kEmpty;
  }

  void insert_index(uint32_t slot) {
    const sluice_cache_entry& e = entries[slot];
    uint32_t pos = home(e.vip_id, e.key_hash);
    while (index[pos] != kEmpty) pos = (pos + 1) & index_mask;
    index[pos] = slot + 1;
  }

  void remove(size_t pos) {
    const uint32_t slot = index[pos] - 1;
    // Odd: readers of the slot (key_hits) skip it from now on.
    std::atomic_ref<uint32_t>(answered[slot].seq)
        .store(answered[slot].seq + 1, std::memory_order_relaxed);
    erase_at(pos);
    stats.bytes -= meta[slot].bytes;
    --stats.entries;
    meta[slot] = Meta{};
    free_slots.push_back(slot);
  }

  bool expired(uint32_t slot, uint64_t now_ms) const {
    return now_ms * 1'000'000 >= entries[slot].expires_ns;
  }

  // Evicts one entry: the first expired or the coldest of kEvictScan used
  // entries from the clock hand on. The cache is not empty.
  void evict_one(uint64_t now_ms) {
    const auto cap = static_cast<uint32_t>(meta.size());
    uint32_t victim = cap;
    uint32_t seen = 0;
    for (uint32_t n = 0; n < cap && seen < kEvictScan; ++n) {
      const uint32_t s = hand;
      hand = (hand + 1) % cap;
      if (!meta[s].used) continue;
      ++seen;
      if (expired(s, now_ms)) {
        victim = s;
        break;
      }
      if (victim == cap || meta[s].hits < meta[victim].hits) victim = s;
      meta[s].hits /= 2;
    }
    remove(find_slot(victim));
    ++stats.evictions;
  }

  uint32_t version_of(uint32_t vip_id, uint32_t key_hash) const {
    return versions->version(sluice_cache_version_slot(vip_id, key_hash));
  }
};

Result<HotCache> HotCache::create(const HotCacheConfig& config) {
  std::unique_ptr<CacheVersions> own(new (std::nothrow) CacheVersions);
  if (!own) return Error{-ENOMEM, "allocating the cache versions"};
  auto c = create(config, *own);
  if (c.ok()) c.value().impl_->own_versions = std::move(own);
  return c;
}

Result<HotCache> HotCache::create(const HotCacheConfig& config, CacheVersions& shared) {
  if (config.max_entries == 0 || config.max_entries > kMaxEntries)
    return Error{-EINVAL, "cache entries must be 1.." + std::to_string(kMaxEntries)};
  if (config.max_bytes < SLUICE_CACHE_KEY_MAX + SLUICE_CACHE_VALUE_MAX)
    return Error{-EINVAL, "cache bytes must be at least " +
                              std::to_string(SLUICE_CACHE_KEY_MAX + SLUICE_CACHE_VALUE_MAX)};
  if (config.ttl_ms == 0) return Error{-EINVAL, "cache ttl must be > 0 ms"};
  std::unique_ptr<Impl> impl(new (std::nothrow) Impl);
  if (!impl) return Error{-ENOMEM, "allocating the cache"};
  try {
    impl->config = config;
    impl->entries.reset(new sluice_cache_entry[config.max_entries]());
    impl->meta.resize(config.max_entries);
    impl->answered.reset(new Impl::Answered[config.max_entries]);
    impl->free_slots.reserve(config.max_entries);
    for (uint32_t s = config.max_entries; s-- > 0;) impl->free_slots.push_back(s);
    const uint32_t index_size = round_up_pow2(config.max_entries * 2);
    impl->index.assign(index_size, kEmpty);
    impl->index_mask = index_size - 1;
    impl->versions = &shared;
  } catch (const std::bad_alloc&) {
    return Error{-ENOMEM, "allocating the cache"};
  }
  return HotCache(std::move(impl));
}

HotCache::HotCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HotCache::HotCache(HotCache&&) noexcept = default;
HotCache& HotCache::operator=(HotCache&&) noexcept = default;
HotCache::~HotCache() = default;

const sluice_cache_entry* HotCache::lookup(uint32_t vip_id, std::string_view key,
                                           uint64_t now_ms) noexcept {
  return lookup(vip_id, key, mc::key_hash(key), now_ms);
}

const sluice_cache_entry* HotCache::lookup(uint32_t vip_id, std::string_view key, uint32_t h,
                                           uint64_t now_ms) noexcept {
  Impl& c = *impl_;
  const size_t pos = c.find(vip_id, h);
  if (pos == c.index.size()) {
    ++c.stats.misses;
    return nullptr;
  }
  const uint32_t slot = c.index[pos] - 1;
  const sluice_cache_entry& e = c.entries[slot];
  if (e.key_len != key.size() || std::memcmp(e.key, key.data(), key.size()) != 0) {
    ++c.stats.misses;
    return nullptr;
  }
  const bool stale = e.version != c.version_of(vip_id, h) || vip_id >= SLUICE_MAX_VIPS ||
                     e.epoch != c.versions->epoch(vip_id);
  if (stale || c.expired(slot, now_ms)) {
    c.remove(pos);
    ++c.stats.evictions;
    ++c.stats.misses;
    return nullptr;
  }
  ++c.meta[slot].hits;
  ++c.stats.hits;
  return &e;
}

void HotCache::prefetch_index(uint32_t vip_id, uint32_t key_hash) const noexcept {
  const Impl& c = *impl_;
  __builtin_prefetch(&c.index[c.home(vip_id, key_hash)], 0, 3);
  c.versions->prefetch(sluice_cache_version_slot(vip_id, key_hash));
}

void HotCache::prefetch_entry(uint32_t vip_id, uint32_t key_hash) const noexcept {
  const Impl& c = *impl_;
  const uint32_t v = c.index[c.home(vip_id, key_hash)];
  if (v == kEmpty) return;
  // The home position's entry is the key's unless an earlier key took it:
  // its first 64 bytes (ids, lengths and a short key; entries are 16-byte
  // aligned, so they may span two lines), the response's first bytes
  // (head and body of a value up to ~100 bytes), and the counters lookup()
  // and count_answer() bump.
  const auto* e = reinterpret_cast<const char*>(&c.entries[v - 1]);
  constexpr size_t kText = offsetof(sluice_cache_entry, text);
  __builtin_prefetch(e, 0, 3);
  __builtin_prefetch(e + 63, 0, 3);
  __builtin_prefetch(e + kText, 0, 3);
  __builtin_prefetch(e + kText + 64, 0, 3);
  __builtin_prefetch(e + kText + 128, 0, 3);
  __builtin_prefetch(&c.meta[v - 1], 1, 3);
  __builtin_prefetch(&c.answered[v - 1], 1, 3);
}

void HotCache::count_answer(const sluice_cache_entry& e) noexcept {
  Impl& c = *impl_;
  uint64_t& hits = c.answered[&e - c.entries.get()].hits;
  std::atomic_ref<uint64_t>(hits).store(hits + 1, std::memory_order_relaxed);
}

bool HotCache::key_hits(uint32_t slot, CachedKeyHits& out) const noexcept {
  const Impl& c = *impl_;
  if (slot >= c.config.max_entries) return false;
  const Impl::Answered& a = c.answered[slot];
  const uint32_t seq =
      std::atomic_ref<uint32_t>(const_cast<uint32_t&>(a.seq)).load(std::memory_order_acquire);
  if ((seq & 1) != 0) return false;
  const sluice_cache_entry& e = c.entries[slot];
  out.vip_id = load_relaxed(e.vip_id);
  out.key_len = std::min<uint16_t>(load_relaxed(e.key_len), SLUICE_CACHE_KEY_MAX);
  for (uint16_t i = 0; i < out.key_len; ++i) out.key[i] = static_cast<char>(load_relaxed(e.key[i]));
  out.expires_ms = load_relaxed(e.expires_ns) / 1'000'000;
  out.value_bytes = load_relaxed(a.value_bytes);
  out.hits = load_relaxed(a.hits);
  // The copy is good only if the slot was not emptied or refilled since.
  std::atomic_thread_fence(std::memory_order_acquire);
  return load_relaxed(a.seq) == seq;
}

void HotCache::invalidate(uint32_t vip_id, std::string_view key, uint64_t now_ms) noexcept {
  Impl& c = *impl_;
  const uint32_t h = mc::key_hash(key);
  c.versions->bump(sluice_cache_version_slot(vip_id, h), static_cast<uint32_t>(now_ms));
  ++c.stats.invalidations;
  const size_t pos = c.find(vip_id, h);
  if (pos != c.index.size()) c.remove(pos);
}

void HotCache::invalidate_vip(uint32_t vip_id) noexcept {
  Impl& c = *impl_;
  if (vip_id >= SLUICE_MAX_VIPS) return;
  c.versions->bump_epoch(vip_id);
  ++c.stats.vip_invalidations;
}

Result<FillLease> HotCache::begin_fill(uint32_t vip_id, std::string_view key,
                                       uint64_t now_ms) const noexcept {
  const Impl& c = *impl_;
  if (!mc::valid_key(key)) return Error{-EINVAL, "not a memcached key"};
  if (vip_id >= SLUICE_MAX_VIPS) return Error{-EINVAL, "vip id out of range"};
  const uint32_t h = mc::key_hash(key);
  const uint32_t slot = sluice_cache_version_slot(vip_id, h);
  // The epoch first: an epoch bump between the two reads then fails the
  // install instead of slipping under the lease.
  const uint32_t epoch = c.versions->epoch(vip_id);
  const uint32_t version = c.versions->version(slot);
  // After the version: a hold taken before a bump this read saw is seen.
  if (c.versions->slot_holds(slot) != 0 || c.versions->vip_holds(vip_id) != 0 ||
      c.versions->all_holds() != 0)
    return Error{-EAGAIN, "a write of the key is not transmitted yet"};
  // Signed: a stamp from a core whose clock is a little ahead of now_ms is
  // recent, not 49 days old.
  const auto now = static_cast<uint32_t>(now_ms);
  const auto recent = [&](uint32_t stamp) {
    return static_cast<int64_t>(static_cast<int32_t>(now - stamp)) < c.config.write_settle_ms;
  };
  if ((version != 0 && recent(c.versions->last_write_ms(slot))) ||
      (c.versions->slot_released_ms(slot) != 0 && recent(c.versions->slot_released_ms(slot))) ||
      (c.versions->vip_released_ms(vip_id) != 0 && recent(c.versions->vip_released_ms(vip_id))) ||
      (c.versions->all_released_ms() != 0 && recent(c.versions->all_released_ms())))
    return Error{-EAGAIN, "the key was written less than write_settle_ms ago"};
  return FillLease{vip_id, h, version, epoch, now_ms};
}

FillResult HotCache::install(const FillLease& lease, std::string_view key, const mc::Value& value,
                             uint64_t now_ms) noexcept {
  Impl& c = *impl_;
  if (!mc::valid_key(key) || lease.vip_id >= SLUICE_MAX_VIPS || mc::key_hash(key) != lease.key_hash)
    return FillResult::kInvalid;
  const uint64_t need = key.size() + value.data.size();
  if (value.data.size() > SLUICE_CACHE_VALUE_MAX || need > c.config.max_bytes)
    return FillResult::kTooBig;
  if (c.version_of(lease.vip_id, lease.key_hash) != lease.version ||
      c.versions->epoch(lease.vip_id) != lease.epoch) {
    ++c.stats.stale_fills;
    return FillResult::kStale;
  }
  const size_t old = c.find(lease.vip_id, lease.key_hash);
  if (old != c.index.size()) c.remove(old);
  while (c.free_slots.empty() || c.stats.bytes + need > c.config.max_bytes) c.evict_one(now_ms);

  const uint32_t slot = c.free_slots.back();
  c.free_slots.pop_back();
  // The slot is free, so its sequence is odd (remove): the writes below
  // are ordered after it, and the even sequence is stored after them.
  Impl::Answered& a = c.answered[slot];
  std::atomic_thread_fence(std::memory_order_release);
  // Checked above: the key is valid and the value fits, so this succeeds.
  (void)mc::fill_entry(c.entries[slot], lease.vip_id, key, value, lease.version, lease.epoch,
                       lease.began_ms + c.config.ttl_ms);
  std::atomic_ref<uint64_t>(a.hits).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(a.value_bytes)
      .store(static_cast<uint32_t>(value.data.size()), std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(a.seq).store(a.seq + 1, std::memory_order_release);
  c.meta[slot] = Impl::Meta{0, static_cast<uint32_t>(need), true};
  c.insert_index(slot);
  ++c.stats.entries;
  c.stats.bytes += need;
  ++c.stats.fills;
  return FillResult::kInstalled;
}

uint32_t HotCache::evict_expired(uint64_t now_ms) noexcept {
  Impl& c = *impl_;
  uint32_t n = 0;
  for (uint32_t s = 0; s < c.meta.size(); ++s) {
    if (!c.meta[s].used || !c.expired(s, now_ms)) continue;
    c.remove(c.find_slot(s));
    ++c.stats.evictions;
    ++n;
  }
  return n;
}

HotCacheStats HotCache::stats() const noexcept { return impl_->stats; }
const HotCacheConfig& HotCache::config() const noexcept { return impl_->config; }

}  // namespace sluice
