// SPDX-License-Identifier: BSD-2-Clause
// Key-affinity routing and the hot-object cache of the DPDK worker: the
// memcached requests in a packet, read in place, and a hit's response
// written over the request in the mbuf.
#include "dataplane/dpdk/worker_cache.hpp"

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/abi/csum.h"
#include "dataplane/abi/encap.h"
#include "dataplane/core/memcached.hpp"

namespace sluice::dpdk {
namespace {

// Keys one packet's writes invalidate one by one; more invalidate the VIP.
constexpr size_t kMaxWrittenKeys = 16;
constexpr uint32_t kUdpHlen = 8;

void swap_bytes(uint8_t* a, uint8_t* b, size_t n) {
  uint8_t t[16];
  std::memcpy(t, a, n);
  std::memcpy(a, b, n);
  std::memcpy(b, t, n);
}

// Turns the request frame in `m` into the response from `e`: the payload
// after the memcached frame header replaced, MACs, addresses and ports
// swapped, lengths and checksums set (as xdp/cache.bpf.h's lb_cache_reply).
// The IP header has no options or extension headers. Returns false with
// the mbuf unchanged when its buffer has no room for the response.
bool reply(rte_mbuf* m, const ParseResult& pr, const sluice_cache_entry& e, bool gets) {
  const uint32_t cas = gets ? e.cas_len : 0u;
  const uint32_t head = e.head_len + cas;
  const uint32_t body = e.body_len;
  if (e.head_len == 0 || e.head_len > SLUICE_CACHE_HEAD_MAX || cas > SLUICE_CACHE_CAS_MAX ||
      body == 0 || body > SLUICE_CACHE_BODY_MAX)
    return false;
  const uint32_t ulen = kUdpHlen + SLUICE_MC_UDP_HDR_LEN + head + body;
  const uint32_t len = pr.l4_offset + ulen;
  if (len > static_cast<uint32_t>(m->buf_len - m->data_off)) return false;
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* l3 = f + pr.l3_offset;
  uint8_t* uh = f + pr.l4_offset;
  uint8_t* resp = uh + kUdpHlen + SLUICE_MC_UDP_HDR_LEN;
  // The entry keeps head and body back to back in e.text, the cas apart:
  // a get's response is one copy.
  if (cas == 0) {
    std::memcpy(resp, e.text, head + body);
  } else {
    std::memcpy(resp, e.text, e.head_len);
    std::memcpy(resp + e.head_len, e.cas, cas);
    std::memcpy(resp + head, e.text + e.head_len, body);
  }
  swap_bytes(f, f + 6, 6);
  sl_u64 sum;
  if (pr.key.family == SLUICE_FAMILY_IPV4) {
    swap_bytes(l3 + 12, l3 + 16, 4);
    sluice_put_be16(l3 + 2, static_cast<uint16_t>(SLUICE_IPV4_HLEN + ulen));
    l3[8] = 64;
    sluice_ipv4_csum_fill(l3);
    sum = sluice_csum_add_bytes(0, l3 + 12, 8, 8);
  } else {
    swap_bytes(l3 + 8, l3 + 24, 16);
    sluice_put_be16(l3 + 4, static_cast<uint16_t>(ulen));
    l3[7] = 64;
    sum = sluice_csum_add_bytes(0, l3 + 8, 32, 32);
  }
  swap_bytes(uh, uh + 2, 2);
  sluice_put_be16(uh + 4, static_cast<uint16_t>(ulen));
  uh[6] = uh[7] = 0;
  // Pseudo header (protocol, UDP length), the UDP header, the echoed frame
  // header, then the response the entry summed when it was filled.
  sum += SLUICE_IPPROTO_UDP + ulen;
  sum = sluice_csum_add_bytes(sum, uh, kUdpHlen + SLUICE_MC_UDP_HDR_LEN,
                              kUdpHlen + SLUICE_MC_UDP_HDR_LEN);
  sum += gets ? e.sum_gets : e.sum_get;
  const uint16_t check = sluice_csum_finish(sum);
  sluice_put_be16(uh + 6, check != 0 ? check : 0xffff);
  m->data_len = static_cast<uint16_t>(len);
  m->pkt_len = len;
  return true;
}

}  // namespace

std::optional<uint32_t> key_route_hash(const uint8_t* frame, const ParseResult& pr,
                                       uint32_t seed) noexcept {
  if (pr.status != ParseStatus::kOk || pr.key.proto != SLUICE_IPPROTO_UDP || pr.is_icmp_error ||
      pr.is_fragment || pr.payload_offset == 0)
    return std::nullopt;
  if (pr.key.family == SLUICE_FAMILY_IPV6 && pr.l4_offset != pr.l3_offset + SLUICE_IPV6_HLEN)
    return std::nullopt;
  const std::optional<std::string_view> key =
      mc::routing_key(std::span<const uint8_t>(frame + pr.payload_offset, pr.payload_len));
  if (!key) return std::nullopt;
  return mc::route_hash(*key, seed);
}

Result<std::unique_ptr<WorkerCache>> WorkerCache::create(const WorkerCacheConfig& config) {
  if (config.versions == nullptr) return Error{-EINVAL, "worker cache: no shared versions"};
  if (config.period_ms == 0) return Error{-EINVAL, "worker cache: period must be > 0 ms"};
  if (config.ring_slots < 2 || (config.ring_slots & (config.ring_slots - 1)) != 0)
    return Error{-EINVAL, "worker cache: ring slots must be a power of two >= 2"};
  auto store = HotCache::create(config.store, *config.versions);
  if (!store.ok()) return store.error();
  std::unique_ptr<WorkerCache> c(new WorkerCache(std::move(store.value()), config));
  static_assert(sizeof(Install) % 4 == 0 && sizeof(sluice_cache_hot) % 4 == 0,
                "rte_ring elements are multiples of 4 bytes");
  // Ring names are unique per process (EAL memzones).
  static std::atomic<uint32_t> serial{0};
  const uint32_t n = serial.fetch_add(1, std::memory_order_relaxed);
  const std::string hot = "sl_cache_hot_" + std::to_string(n);
  const std::string install = "sl_cache_ins_" + std::to_string(n);
  // Usable slots are count - 1 in an rte_ring: one more than asked.
  c->hot_ = rte_ring_create_elem(hot.c_str(), sizeof(sluice_cache_hot), config.ring_slots * 2,
                                 SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  c->install_ = rte_ring_create_elem(install.c_str(), sizeof(Install), config.ring_slots * 2,
                                     SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (c->hot_ == nullptr || c->install_ == nullptr)
    return Error{-rte_errno,
                 std::string("worker cache: rte_ring_create_elem: ") + rte_strerror(rte_errno)};
  return c;
}

WorkerCache::WorkerCache(HotCache store, const WorkerCacheConfig& config)
    : store_(std::move(store)),
      hot_threshold_(config.hot_threshold),
      period_ms_(config.period_ms),
      stats_(new sluice_cache_stats[SLUICE_MAX_VIPS]()),
      fills_(new Fills[SLUICE_MAX_VIPS]()),
      versions_(config.versions),
      hold_writes_(config.hold_writes),
      holds_(new Hold[kMaxHolds]()) {}

WorkerCache::~WorkerCache() {
  rte_ring_free(hot_);
  rte_ring_free(install_);
}

uint64_t WorkerCache::last_clock() const noexcept {
  return __atomic_load_n(&clock_ms_, __ATOMIC_RELAXED);
}

void WorkerCache::count_miss(uint32_t vip_id, std::string_view key, uint32_t key_hash) noexcept {
  // Keys of every VIP share the sketch: the VIP is mixed into the hash.
  if (sketch_.add(key_hash ^ vip_id * 0x9E3779B1u) != hot_threshold_) return;
  sluice_cache_hot ev{};
  ev.vip_id = vip_id;
  ev.key_hash = key_hash;
  ev.key_len = static_cast<uint16_t>(key.size());
  std::memcpy(ev.key, key.data(), key.size());
  // A full ring drops the report: the key is reported again next period.
  if (rte_ring_sp_enqueue_elem(hot_, &ev, sizeof ev) == 0) ++stats_[vip_id].hot_reports;
}

size_t WorkerCache::poll_hot(std::span<sluice_cache_hot> out) noexcept {
  if (out.empty()) return 0;
  return rte_ring_sc_dequeue_burst_elem(hot_, out.data(), sizeof(sluice_cache_hot),
                                        static_cast<unsigned>(out.size()), nullptr);
}

bool WorkerCache::post_install(const FillLease& lease, std::string_view key,
                               const mc::Value& value) noexcept {
  if (key.empty() || key.size() > SLUICE_CACHE_KEY_MAX ||
      value.data.size() > SLUICE_CACHE_VALUE_MAX)
    return false;
  // Built on the control thread's stack (~1.3 KiB) and copied into the ring.
  Install in{};
  in.lease = lease;
  in.cas = value.cas;
  in.flags = value.flags;
  in.key_len = static_cast<uint16_t>(key.size());
  in.data_len = static_cast<uint16_t>(value.data.size());
  std::memcpy(in.key, key.data(), key.size());
  if (!value.data.empty()) std::memcpy(in.data, value.data.data(), value.data.size());
  return rte_ring_sp_enqueue_elem(install_, &in, sizeof in) == 0;
}

uint32_t WorkerCache::apply_installs(uint32_t now_ms) noexcept {
  const uint64_t now = clock(now_ms);
  if (now - period_start_ms_ >= period_ms_) {
    sketch_.reset();
    period_start_ms_ = now;
  }
  uint32_t n = 0;
  Install in;
  while (rte_ring_sc_dequeue_elem(install_, &in, sizeof in) == 0) {
    const mc::Value v{in.flags, in.cas, {in.data, in.data_len}};
    const FillResult r = store_.install(in.lease, std::string_view(in.key, in.key_len), v, now);
    if (in.lease.vip_id < SLUICE_MAX_VIPS) {
      Fills& f = fills_[in.lease.vip_id];
      if (r == FillResult::kInstalled)
        __atomic_store_n(&f.installed, f.installed + 1, __ATOMIC_RELAXED);
      else if (r == FillResult::kStale)
        __atomic_store_n(&f.stale, f.stale + 1, __ATOMIC_RELAXED);
    }
    ++n;
  }
  const HotCacheStats s = store_.stats();
  const auto* from = reinterpret_cast<const uint64_t*>(&s);
  auto* to = reinterpret_cast<uint64_t*>(&published_);
  static_assert(sizeof s % sizeof(uint64_t) == 0);
  for (size_t i = 0; i < sizeof s / sizeof(uint64_t); ++i)
    __atomic_store_n(&to[i], from[i], __ATOMIC_RELAXED);
  return n;
}

WorkerCacheCounters WorkerCache::counters(uint32_t vip_id) const noexcept {
  WorkerCacheCounters out;
  out.fast_path = stats(vip_id);
  if (vip_id < SLUICE_MAX_VIPS) {
    out.fills = __atomic_load_n(&fills_[vip_id].installed, __ATOMIC_RELAXED);
    out.stale_fills = __atomic_load_n(&fills_[vip_id].stale, __ATOMIC_RELAXED);
  }
  const auto* from = reinterpret_cast<const uint64_t*>(&published_);
  auto* to = reinterpret_cast<uint64_t*>(&out.store);
  for (size_t i = 0; i < sizeof out.store / sizeof(uint64_t); ++i)
    to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
  return out;
}

uint64_t WorkerCache::clock(uint32_t now_ms) noexcept {
  // Starts at the worker's clock, so every worker's (and a lease's) low 32
  // bits are the TSC milliseconds the version stamps use.
  if (!clock_started_) {
    clock_started_ = true;
    __atomic_store_n(&clock_ms_, uint64_t{now_ms}, __ATOMIC_RELAXED);
    return clock_ms_;
  }
  // Forward by the wrapping difference: exact while calls are less than
  // 2^31 ms (24 days) apart, and the loop calls every burst or idle turn.
  const auto step = static_cast<int32_t>(now_ms - static_cast<uint32_t>(clock_ms_));
  if (step > 0)
    __atomic_store_n(&clock_ms_, clock_ms_ + static_cast<uint64_t>(step), __ATOMIC_RELAXED);
  return clock_ms_;
}

namespace {
// The owner's increment of a counter other threads read.
void bump_shared(uint64_t& counter, uint64_t by = 1) noexcept {
  __atomic_store_n(&counter, counter + by, __ATOMIC_RELAXED);
}
}  // namespace

void WorkerCache::unsure(uint32_t vip_id) noexcept {
  if (hold_writes_) hold(kVipHold | vip_id);
  store_.invalidate_vip(vip_id);
  ++stats_[vip_id].vip_invalidations;
}

void WorkerCache::hold(uint32_t what) noexcept {
  static_assert((kMaxHolds & (kMaxHolds - 1)) == 0, "kMaxHolds is a power of two");
  if (tail_ - head_ == kMaxHolds) {
    // Full: every key waits until this write (and those before) left.
    if (!all_held_) {
      versions_->hold_all();
      all_held_ = true;
      bump_shared(hold_stats_.taken);
      bump_shared(hold_stats_.overflows);
    }
    all_unsealed_ = true;
    return;
  }
  if ((what & kVipHold) != 0)
    versions_->hold_vip(what & ~kVipHold);
  else
    versions_->hold_slot(what);
  holds_[tail_++ & (kMaxHolds - 1)] = Hold{what, kUnsealed};
  ++unsealed_;
  bump_shared(hold_stats_.taken);
}

void WorkerCache::seal_holds(uint64_t ticket) noexcept {
  for (uint32_t i = tail_ - unsealed_; i != tail_; ++i) holds_[i & (kMaxHolds - 1)].ticket = ticket;
  unsealed_ = 0;
  if (all_unsealed_) {
    all_ticket_ = ticket;
    all_unsealed_ = false;
  }
}

uint32_t WorkerCache::release_holds(uint64_t done, uint32_t now_ms) noexcept {
  uint32_t n = 0;
  const uint32_t sealed_end = tail_ - unsealed_;
  for (; head_ != sealed_end; ++head_, ++n) {
    const Hold& h = holds_[head_ & (kMaxHolds - 1)];
    if (h.ticket > done) break;
    if ((h.what & kVipHold) != 0)
      versions_->release_vip(h.what & ~kVipHold, now_ms);
    else
      versions_->release_slot(h.what, now_ms);
  }
  if (all_held_ && !all_unsealed_ && all_ticket_ <= done) {
    versions_->release_all(now_ms);
    all_held_ = false;
    ++n;
  }
  if (n != 0) bump_shared(hold_stats_.released, n);
  return n;
}

WorkerHoldStats WorkerCache::hold_stats() const noexcept {
  return {__atomic_load_n(&hold_stats_.taken, __ATOMIC_RELAXED),
          __atomic_load_n(&hold_stats_.released, __ATOMIC_RELAXED),
          __atomic_load_n(&hold_stats_.overflows, __ATOMIC_RELAXED)};
}

bool WorkerCache::stage_get(const rte_mbuf* m, const ParseResult& pr, const sluice_vip_meta& vip,
                            CacheGet& get) noexcept {
  if (pr.key.proto != SLUICE_IPPROTO_UDP || pr.is_icmp_error || vip.vip_id >= SLUICE_MAX_VIPS ||
      pr.is_fragment || pr.payload_offset == 0 ||
      (pr.key.family != SLUICE_FAMILY_IPV4 && pr.l4_offset != pr.l3_offset + SLUICE_IPV6_HLEN))
    return false;
  // One get of one key filling one datagram -- what a hit answers -- writes
  // nothing: its one parse serves for both.
  const std::optional<mc::Request> r = mc::cacheable_udp_get(std::span<const uint8_t>(
      rte_pktmbuf_mtod(m, const uint8_t*) + pr.payload_offset, pr.payload_len));
  if (!r) return false;
  get.key = r->key.data();
  get.key_len = static_cast<uint16_t>(r->key.size());
  get.gets = r->gets;
  get.key_hash = mc::key_hash(r->key);
  get.vip_id = vip.vip_id;
  store_.prefetch_index(get.vip_id, get.key_hash);
  return true;
}

void WorkerCache::follow_writes(const Snapshot& s, const rte_mbuf* m, const ParseResult& pr,
                                const sluice_vip_meta& vip, uint32_t now_ms) noexcept {
  if (pr.is_icmp_error) return;
  uint32_t vip_id = vip.vip_id;
  const bool udp = pr.key.proto == SLUICE_IPPROTO_UDP;
  if (!udp) {
    // A TCP VIP with the flag: the twin whose writes invalidate the UDP
    // VIP's keys.
    sluice_flow_key twin = pr.key;
    twin.proto = SLUICE_IPPROTO_UDP;
    const Snapshot::Vip* u = s.find_vip(twin);
    if (u == nullptr || (u->meta.flags & SLUICE_VIP_CACHE) == 0) return;
    vip_id = u->meta.vip_id;
  }
  if (vip_id >= SLUICE_MAX_VIPS) return;
  const uint64_t now = clock(now_ms);
  sluice_cache_stats& st = stats_[vip_id];
  const bool v4 = pr.key.family == SLUICE_FAMILY_IPV4;
  if (pr.is_fragment || pr.payload_offset == 0 ||
      (!v4 && pr.l4_offset != pr.l3_offset + SLUICE_IPV6_HLEN)) {
    unsure(vip_id);
    return;
  }
  const std::span<const uint8_t> payload(rte_pktmbuf_mtod(m, const uint8_t*) + pr.payload_offset,
                                         pr.payload_len);
  std::span<const uint8_t> requests = payload;
  if (udp) {
    if (payload.size() < SLUICE_MC_UDP_HDR_LEN) {
      unsure(vip_id);
      return;
    }
    requests = payload.subspan(SLUICE_MC_UDP_HDR_LEN);
  }
  if (requests.empty()) return;  // a bare ACK or FIN writes nothing

  std::array<std::string_view, kMaxWrittenKeys> keys;
  const mc::Writes w = mc::scan_writes(requests, keys);
  // Before the packet is forwarded: the write may reach the backend, and
  // its acknowledgement the client, before this burst ends.
  if (w.whole_vip) unsure(vip_id);
  for (uint32_t i = 0; i < w.keys; ++i) {
    // The hold before the bump (CacheVersions): a fill that sees the new
    // version sees the hold.
    if (hold_writes_) hold(sluice_cache_version_slot(vip_id, mc::key_hash(keys[i])));
    store_.invalidate(vip_id, keys[i], now);
  }
  st.invalidations += w.keys;
  // A UDP request that writes nothing and is no cacheable get (stage_get
  // took those).
  if (udp && !w.whole_vip && w.keys == 0 && mc::parse_request(requests).kind == mc::Kind::kRead)
    ++st.bypassed;  // multi-key gets and the like
}

WorkerCache::Step WorkerCache::answer(const CacheGet& get, rte_mbuf* m, const ParseResult& pr,
                                      uint32_t now_ms) noexcept {
  sluice_cache_stats& st = stats_[get.vip_id];
  const bool v4 = pr.key.family == SLUICE_FAMILY_IPV4;
  if (pr.l4_offset != pr.l3_offset + (v4 ? SLUICE_IPV4_HLEN : SLUICE_IPV6_HLEN)) {
    ++st.bypassed;  // IPv4 options: the response is built without them
    return Step::kForward;
  }
  const uint64_t now = clock(now_ms);
  const sluice_cache_entry* e = store_.lookup(get.vip_id, get.key_view(), get.key_hash, now);
  if (e == nullptr) {
    ++st.misses;
    count_miss(get.vip_id, get.key_view(), get.key_hash);
    return Step::kForward;
  }
  if (!reply(m, pr, *e, get.gets)) {
    ++st.bypassed;
    return Step::kForward;
  }
  store_.count_answer(*e);
  ++st.hits;
  return Step::kAnswered;
}

sluice_cache_stats WorkerCache::stats(uint32_t vip_id) const noexcept {
  sluice_cache_stats out{};
  if (vip_id >= SLUICE_MAX_VIPS) return out;
  const auto* from = reinterpret_cast<const uint64_t*>(&stats_[vip_id]);
  auto* to = reinterpret_cast<uint64_t*>(&out);
  static_assert(sizeof out % sizeof(uint64_t) == 0);
  for (size_t i = 0; i < sizeof out / sizeof(uint64_t); ++i)
    to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
  return out;
}

}  // namespace sluice::dpdk
