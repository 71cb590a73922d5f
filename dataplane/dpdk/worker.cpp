// SPDX-License-Identifier: BSD-2-Clause
// Worker::process_burst: the per-burst packet path of the DPDK fast path,
// and the accounting of each packet at one exit per verdict.
#include "dataplane/dpdk/worker.hpp"

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <optional>

#include "dataplane/abi/encap.h"
#include "dataplane/core/encap.hpp"
#include "dataplane/core/icmp_too_big.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "dataplane/dpdk/worker_cache.hpp"

namespace sluice::dpdk {
namespace {

// Packets whose data is prefetched ahead of the one being parsed.
constexpr uint16_t kPrefetchAhead = 4;
// Buckets idle() sweeps per call.
constexpr uint32_t kSweepBuckets = 64;

// Worker::Packet::frag bits (meaningful only when pr.is_fragment and a VIP
// was looked up).
constexpr uint8_t kFragRecorded = 1;       // a first fragment that left its record
constexpr uint8_t kFragFollowsRecord = 2;  // a later fragment that found its record

}  // namespace

// One packet's facts along the path; what its counters need at the exit.
struct Worker::Packet {
  ParseResult pr;
  const Snapshot::Vip* vip;  // nullptr until found
  uint32_t hash;
  uint32_t frame_len;     // bytes, as received
  uint32_t backend_slot;  // the chosen backend's slot once forwarded, else NONE
  bool new_flow;          // Maglev placed a flow (not an ICMP error)
  uint8_t frag;           // kFrag* bits, set by frag_vip() for fragments only
};

Result<std::unique_ptr<Worker>> Worker::create(const WorkerConfig& config, SnapshotRcu& rcu) {
  if (config.reader_id >= rcu.max_readers())
    return Error{-EINVAL, "worker: reader id " + std::to_string(config.reader_id) +
                              " is not below the snapshot rcu's " +
                              std::to_string(rcu.max_readers())};
  auto table = FlowTable::create(config.flows);
  if (!table.ok()) return table.error();
  auto frags = FragTable::create(config.frag_capacity, config.hash_seed);
  if (!frags.ok()) return frags.error();
  std::unique_ptr<Worker> w(
      new Worker(std::move(table.value()), std::move(frags.value()), rcu, config));
  if (config.cache) {
    auto cache = WorkerCache::create(*config.cache);
    if (!cache.ok()) return cache.error();
    w->cache_ = std::move(cache.value());
  }
  if (rcu.online(config.reader_id) != 0)
    return Error{-EINVAL, "worker: cannot register reader id " + std::to_string(config.reader_id)};
  return w;
}

Worker::Worker(FlowTable flows, FragTable frags, SnapshotRcu& rcu, const WorkerConfig& config)
    : flows_(std::move(flows)),
      frags_(std::move(frags)),
      rcu_(rcu),
      reader_id_(config.reader_id),
      hash_seed_(config.hash_seed),
      tsc_per_ms_(rte_get_tsc_hz() / 1000 == 0 ? 1 : rte_get_tsc_hz() / 1000),
      flow_capacity_(flows_.capacity()),
      counters_(std::make_unique<Counters>()),
      active_(std::make_unique<ActiveCounts>()) {
  for (const auto& mac : config.port_macs)
    port_macs_.push_back({mac.value_or(std::array<uint8_t, 6>{}), mac.has_value()});
}

Worker::~Worker() { rcu_.offline(reader_id_); }

uint32_t Worker::now_ms() const noexcept {
  return static_cast<uint32_t>(rte_get_tsc_cycles() / tsc_per_ms_);
}

uint16_t Worker::process_burst(rte_mbuf* const* pkts, uint16_t n, Verdicts& out) noexcept {
  return process_burst_at(pkts, n, out, now_ms());
}

void Worker::idle() noexcept {
  if (cache_) (void)cache_->apply_installs(now_ms());
  (void)flows_.sweep(now_ms(), kSweepBuckets);
  rcu_.quiescent(reader_id_);
}

void Worker::count_step() noexcept {
  const uint64_t walks = active_->walks;
  uint32_t* counts = active_->counts[(walks + 1) & 1];
  if (count_zeroed_ < kCountedIds) {
    // The buffer of walk `walks - 1`, published until walks_ moved past it
    // (readers of it retry): zeroed a part per step, so no step is long.
    constexpr uint32_t kZeroIds = 4096;
    std::memset(counts + count_zeroed_, 0, kZeroIds * sizeof(uint32_t));
    count_zeroed_ += kZeroIds;
    return;
  }
  count_cursor_ = flows_.count_established(count_cursor_, kCountBuckets, now_ms(),
                                           std::span<uint32_t>(counts, kCountedIds));
  if (count_cursor_ != 0) return;
  // Walk complete: publish its buffer; the counts written before the store
  // are seen by a reader that then sees the new number.
  __atomic_store_n(&active_->walks, walks + 1, __ATOMIC_RELEASE);
  // The other buffer's readers must see walks move before any zeroing
  // reaches them (seqlock writer: sequence, fence, then data).
  __atomic_thread_fence(__ATOMIC_RELEASE);
  count_zeroed_ = 0;
}

uint64_t Worker::add_active_flows(std::span<const uint32_t> ids, std::span<uint64_t> out) const {
  std::vector<uint32_t> read(ids.size());
  for (;;) {
    const uint64_t walks = __atomic_load_n(&active_->walks, __ATOMIC_ACQUIRE);
    if (walks == 0) return 0;
    const uint32_t* counts = active_->counts[walks & 1];
    for (size_t i = 0; i < ids.size(); ++i)
      read[i] = ids[i] < kCountedIds ? __atomic_load_n(&counts[ids[i]], __ATOMIC_RELAXED) : 0;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&active_->walks, __ATOMIC_RELAXED) != walks) continue;
    for (size_t i = 0; i < ids.size() && i < out.size(); ++i) out[i] += read[i];
    return walks;
  }
}

uint16_t Worker::process_burst_at(rte_mbuf* const* pkts, uint16_t n, Verdicts& out,
                                  uint32_t now_ms) noexcept {
  out.n_tx = out.n_kernel = out.n_dropped = 0;
  if (n > kMaxBurst) n = kMaxBurst;
  const Snapshot& s = *rcu_.current();
  sluice_global_stats& g = counters_->global;
  if (cache_) (void)cache_->apply_installs(now_ms);

  Packet pk[kMaxBurst];
  // The flow-table burst: packets that are new or established VIP traffic
  // (ICMP errors look their flow up alone, without touching it).
  const sluice_flow_key* keys[kMaxBurst];
  uint32_t hashes[kMaxBurst];
  uint32_t backends[kMaxBurst];
  FlowInsertHint hints[kMaxBurst];  // by flow index: where a miss's insert goes
  uint16_t flow_pkt[kMaxBurst];
  uint16_t vip_pkts[kMaxBurst];
  uint32_t n_flows = 0;
  uint16_t n_vip = 0;
  // Packets to a VIP with the cache, their gets as stage 1 read them.
  uint16_t cache_pkts[kMaxBurst];
  bool staged[kMaxBurst];
  CacheGet gets[kMaxBurst];
  uint16_t n_cache = 0;

  // Packet i, to its VIP (found) and not answered by the cache: placed by
  // its key when the VIP says so and it names one (`get_key_hash`, the
  // mc::key_hash of a get the cache looked up, spares a second parse),
  // else staged for the flow-table burst. Inlined: out of line, the call
  // cost every established packet ~7 cycles (perf/RESULTS.md, third pass).
  const auto place = [&](uint16_t i, std::optional<uint32_t> get_key_hash)
      __attribute__((always_inline)) {
    rte_mbuf* m = pkts[i];
    Packet& p = pk[i];
    if ((p.vip->meta.flags & SLUICE_VIP_KEY_HASH) != 0) {
      const auto h = get_key_hash
                         ? std::optional(sluice_key_route_hash(*get_key_hash, hash_seed_))
                         : key_route_hash(rte_pktmbuf_mtod(m, const uint8_t*), p.pr, hash_seed_);
      if (h) {
        // Placed by its key, never through the flow table: one client
        // socket sends many keys, each to the shard that owns it (as
        // xdp/cache.bpf.h's lb_select_by_key; the hash is also the outer
        // header's entropy there).
        p.hash = *h;
        const sluice_backend* b = s.maglev_pick(*p.vip, p.hash);
        if (b == nullptr)
          drop(m, p, SLUICE_DROP_NO_BACKEND, out);
        else
          forward(s, m, p, *b, out);
        return;
      }
    }
    p.hash = (p.vip->meta.flags & SLUICE_VIP_HASH_SRC_ONLY) != 0
                 ? sluice_flow_hash_src(&p.pr.key, hash_seed_)
                 : sluice_flow_hash(&p.pr.key, hash_seed_);
    vip_pkts[n_vip++] = i;
    if (!p.pr.is_icmp_error) {
      keys[n_flows] = &p.pr.key;
      hashes[n_flows] = p.hash;
      flow_pkt[n_flows] = i;
      ++n_flows;
    }
  };

  for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i)
    rte_prefetch0(rte_pktmbuf_mtod(pkts[i], const void*));
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
    rte_mbuf* m = pkts[i];
    Packet& p = pk[i];
    p.vip = nullptr;
    p.backend_slot = SLUICE_BACKEND_NONE;
    p.new_flow = false;
    p.frame_len = rte_pktmbuf_pkt_len(m);
    ++g.rx_packets;
    g.rx_bytes += p.frame_len;
    // Headers never span segments in the frames sluice balances (the
    // mempool's data room holds the port MTU); a chained frame is the
    // kernel's (jumbo frames on the exception path).
    if (m->nb_segs != 1) {
      ++g.pass_packets;
      out.kernel[out.n_kernel++] = m;
      continue;
    }
    // Constructed in place (guaranteed elision), not assigned: an
    // assignment copies the returned 64 bytes from a stack temporary, and
    // its wide loads of the parser's narrow stores stall store forwarding
    // (18% of the burst's samples in perf, established flows).
    ::new (&p.pr)
        ParseResult(parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m)));
    if (is_reject(p.pr.status)) {
      drop(m, p, parse_drop_reason(p.pr.status), out);
      continue;
    }
    if (p.pr.status == ParseStatus::kOk && p.pr.is_fragment) [[unlikely]] {
      const FragStep step = frag_vip(s, m, p);
      if (step == FragStep::kKernel) {
        ++g.pass_packets;
        out.kernel[out.n_kernel++] = m;
        continue;
      }
      if (step == FragStep::kDropped) {
        drop(m, p, SLUICE_DROP_FRAG_OF_DROPPED, out);
        continue;
      }
    } else if (p.pr.status != ParseStatus::kOk || (p.vip = s.find_vip(p.pr.key)) == nullptr) {
      // Not a flow sluice balances (ARP, ND, echo, GRE, ...), or not to a
      // VIP: the kernel's, as XDP_PASS.
      ++g.pass_packets;
      out.kernel[out.n_kernel++] = m;
      continue;
    }
    if ((p.vip->meta.flags & SLUICE_VIP_CACHE) != 0 && cache_) {
      // The cache's stage 1 (WorkerCache::stage_get); placed below, in
      // packet order, once the burst's gets are staged.
      cache_pkts[n_cache] = i;
      staged[n_cache] = cache_->stage_get(m, p.pr, p.vip->meta, gets[n_cache]);
      ++n_cache;
      continue;
    }
    place(i, std::nullopt);
  }

  if (n_cache != 0) {
    // Stage 2: the entries of the staged gets asked for, while stage 1's
    // index and version loads have had the rest of the burst to land.
    for (uint16_t j = 0; j < n_cache; ++j)
      if (staged[j]) cache_->prefetch_entry(gets[j]);
    // Stage 3, in packet order: a write invalidates before a later get of
    // its key in this burst is answered, and after an earlier one.
    for (uint16_t j = 0; j < n_cache; ++j) {
      const uint16_t i = cache_pkts[j];
      rte_mbuf* m = pkts[i];
      Packet& p = pk[i];
      if (!staged[j]) {
        cache_->follow_writes(s, m, p.pr, p.vip->meta, now_ms);
        place(i, std::nullopt);
      } else if (cache_->answer(gets[j], m, p.pr, now_ms) == WorkerCache::Step::kAnswered) {
        // The request became its response: back to the client, no backend.
        ++g.tx_packets;
        sluice_vip_stats& vs = counters_->vips[p.vip->meta.vip_id];
        ++vs.packets;
        vs.bytes += p.frame_len;
        out.tx[out.n_tx++] = m;
      } else {
        // A miss is placed by the key hash the lookup computed.
        place(i, gets[j].key_hash);
      }
    }
  }

  const uint64_t hits =
      n_flows == 0 ? 0 : flows_.lookup_burst(keys, hashes, n_flows, now_ms, backends, ~0ull, hints);
  // The lookup results (and the flow index, for its hint) by packet index,
  // for the in-order pass below.
  uint32_t found[kMaxBurst];
  uint16_t flow_of[kMaxBurst];
  for (uint32_t j = 0; j < n_flows; ++j) {
    found[flow_pkt[j]] = (hits >> j) & 1 ? backends[j] : SLUICE_BACKEND_NONE;
    flow_of[flow_pkt[j]] = static_cast<uint16_t>(j);
  }

  for (uint16_t v = 0; v < n_vip; ++v) {
    const uint16_t i = vip_pkts[v];
    rte_mbuf* m = pkts[i];
    Packet& p = pk[i];
    const sluice_backend* b = nullptr;
    // A later fragment whose first fragment came earlier in this burst and
    // was dropped above: its record was marked since frag_vip() read it.
    if (p.pr.is_fragment && (p.frag & kFragFollowsRecord) != 0 && frag_first_dropped(m, p))
        [[unlikely]] {
      drop(m, p, SLUICE_DROP_FRAG_OF_DROPPED, out);
      continue;
    }
    if (p.pr.is_icmp_error) {
      // An error about a flow reaches that flow's backend; it never
      // creates, promotes or refreshes an entry.
      const auto e = flows_.find(p.pr.key, p.hash);
      if (e && icmp_entry_live(*e, p.pr.key.proto, now_ms)) b = s.backend(e->backend_id);
      if (b != nullptr) {
        ++g.flow_hits;
      } else {
        b = s.maglev_pick(*p.vip, p.hash);
        if (b == nullptr) {
          drop(m, p, SLUICE_DROP_NO_BACKEND, out);
          continue;
        }
        ++g.flow_misses;
      }
      forward(s, m, p, *b, out);
      continue;
    }
    // A SYN without ACK is a new connection, also when it reuses the
    // 5-tuple of a closed one (the client's port came round again within
    // the idle timeout): placed by the current table, as the XDP program
    // does (xdp/lb_lookup.h), so weight changes and drains apply to every
    // new connection. A retransmitted SYN meets the same backend unless the
    // table changed in between.
    if (found[i] != SLUICE_BACKEND_NONE && (b = s.backend(found[i])) != nullptr &&
        (p.pr.tcp_flags & (kTcpSyn | kTcpAck)) != kTcpSyn) {
      ++g.flow_hits;
      forward(s, m, p, *b, out);
      continue;
    }
    // A miss, or a hit on a backend this snapshot no longer has: Maglev,
    // and the entry (re)pinned there (a live entry keeps its state).
    b = s.maglev_pick(*p.vip, p.hash);
    if (b == nullptr) {
      drop(m, p, SLUICE_DROP_NO_BACKEND, out);
      continue;
    }
    ++g.flow_misses;
    p.new_flow = true;
    if (flows_.insert(hints[flow_of[i]], p.pr.key, p.hash, b->id, now_ms) == FlowInsert::kFull)
      ++g.flow_insert_failed;
    forward(s, m, p, *b, out);
  }

  rcu_.quiescent(reader_id_);
  return n;
}

// The VIP of a fragment (xdp/lb_lookup.h lb_lookup_frag_vip, and
// lb_frag_key_port for its key): sets p.vip and p.frag, and for a port
// VIP's fragments the port in p.pr.key.dport.
[[gnu::noinline, gnu::cold]] Worker::FragStep Worker::frag_vip(const Snapshot& s, const rte_mbuf* m,
                                                               Packet& p) noexcept {
  p.frag = 0;
  const FragmentFacts f =
      fragment_facts(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), p.pr);
  if (!f.valid) return FragStep::kKernel;  // cannot happen: parsed from these bytes
  sluice_flow_key k = p.pr.key;
  uint16_t port;
  if (!f.later) {
    // By its own destination port, as an unfragmented packet.
    k.dport = f.first_dport;
    const FragKey fk = frag_key_of(p.pr.key, f.id, f.record_proto);
    p.vip = s.find_vip(k);
    port = k.dport;
    if (p.vip == nullptr || port == 0) {
      // Nothing to record: an older datagram's record with this key must
      // not send this datagram's later fragments to its VIP.
      frags_.erase(fk);
      if (p.vip == nullptr) return FragStep::kKernel;
    } else {
      frags_.record(fk, p.vip->meta.vip_id, port, k.proto);
      p.frag = kFragRecorded;
    }
  } else {
    const FragRecord* seen = frags_.find(frag_key_of(p.pr.key, f.id, f.record_proto));
    if (seen == nullptr) {
      // No first fragment seen: the wildcard VIP of the address, if any.
      if ((p.vip = s.find_vip(k)) != nullptr) return FragStep::kVip;
      ++counters_->global.frag_unmatched;
      return FragStep::kKernel;
    }
    // The first fragment's protocol, which a later IPv6 fragment behind
    // destination options does not show; the flow key gets it too, so the
    // fragment hashes as its first fragment did.
    k.proto = seen->proto;
    p.pr.key.proto = seen->proto;
    // The VIP may have gone, or its key been given to another, since.
    k.dport = seen->port;
    const Snapshot::Vip* v = s.find_vip(k);
    if (v == nullptr || v->meta.vip_id != seen->vip_id) {
      ++counters_->global.frag_unmatched;
      return FragStep::kKernel;
    }
    p.vip = v;
    if (seen->dropped) return FragStep::kDropped;
    p.frag = kFragFollowsRecord;
    port = seen->port;
  }
  // A port VIP's fragments carry its port in the key, so two VIPs on one
  // address never share a flow entry; the wildcard's keep ports 0 (the key
  // still has them here, so this finds the wildcard).
  if (port != 0) {
    const Snapshot::Vip* wildcard = s.find_vip(p.pr.key);
    if (wildcard == nullptr || wildcard->meta.vip_id != p.vip->meta.vip_id) p.pr.key.dport = port;
  }
  return FragStep::kVip;
}

bool Worker::frag_first_dropped(const rte_mbuf* m, const Packet& p) const noexcept {
  const FragmentFacts f =
      fragment_facts(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), p.pr);
  const FragRecord* seen =
      f.valid ? frags_.find(frag_key_of(p.pr.key, f.id, f.record_proto)) : nullptr;
  return seen != nullptr && seen->dropped;
}

bool Worker::icmp_entry_live(const FlowEntry& e, uint8_t proto, uint32_t now_ms) const noexcept {
  const FlowTableConfig& c = flows_.config();
  const uint32_t timeout = e.state == SLUICE_FLOW_PROBATION ? c.probation_ms
                           : proto == SLUICE_IPPROTO_TCP    ? c.tcp_idle_ms
                                                            : c.udp_idle_ms;
  return static_cast<int32_t>(now_ms - e.last_seen) <= static_cast<int32_t>(timeout);
}

namespace {

// IPv6 client packet toward an IPv4 backend (encap_frame refuses it; the
// XDP path sends it, RFC 4213 section 3.5 style): the IPv6 packet behind an
// IPv4 header, protocol 41, DF set and id 0 (atomic, RFC 6864), DSCP/ECN
// copied, the L2 header moved forward with EtherType IPv4. The caller has
// checked the MTU. Returns false when the headroom is short.
bool encap_6in4(uint8_t* buf, FrameSpan& frame, size_t l3_off, uint16_t ip_len, uint8_t tos,
                const EncapSettings& settings, const sluice_backend& b, uint32_t hash) {
  if (frame.off < SLUICE_IPV4_HLEN) return false;
  const size_t new_off = frame.off - SLUICE_IPV4_HLEN;
  std::memmove(buf + new_off, buf + frame.off, l3_off);
  uint8_t* outer = buf + new_off + l3_off;
  const sluice_encap_config& cfg = settings.config;
  sluice_ipv4_write_hdr(outer, sluice_encap4_src(cfg.src_v4.v4, cfg.entropy_bits, hash), b.addr.v4,
                        ip_len, tos, 0, 1, settings.hop_limit, SLUICE_IPPROTO_IPV6);
  sluice_put_be16(outer - 2, SLUICE_ETH_P_IP);
  frame.off = new_off;
  frame.len = l3_off + SLUICE_IPV4_HLEN + ip_len;
  return true;
}

// Points an mbuf at a frame span of its buffer.
void set_span(rte_mbuf* m, const FrameSpan& f) {
  m->data_off = static_cast<uint16_t>(f.off);
  m->data_len = static_cast<uint16_t>(f.len);
  m->pkt_len = static_cast<uint32_t>(f.len);
}

}  // namespace

void Worker::forward(const Snapshot& s, rte_mbuf* m, Packet& p, const sluice_backend& b,
                     Verdicts& out) noexcept {
  const EncapSettings& settings = s.encap();
  const size_t outer = encap_overhead(b.family);
  const uint32_t mtu = settings.config.mtu;
  if (p.pr.ip_len + outer > mtu) {
    too_big(s, m, p, mtu > outer ? static_cast<uint32_t>(mtu - outer) : 0, out);
    return;
  }
  if (!s.has_next_hop()) {
    drop(m, p, SLUICE_DROP_TX_FAILED, out);
    return;
  }
  auto* buf = static_cast<uint8_t*>(m->buf_addr);
  FrameSpan f{m->data_off, m->data_len};
  // The common case inline: untagged IPv4 to an IPv4 backend. Both MACs
  // are replaced anyway, so the Ethernet header is written whole in front
  // of the outer header instead of moved (encap_frame's memmove), and the
  // inner header is not located again.
  if (p.pr.l3_offset == SLUICE_ETH_HLEN && p.pr.key.family == SLUICE_FAMILY_IPV4 &&
      b.family == SLUICE_FAMILY_IPV4 && f.off >= SLUICE_IPV4_HLEN) {
    f.off -= SLUICE_IPV4_HLEN;
    uint8_t* eth = buf + f.off;
    const uint8_t* in = eth + SLUICE_ETH_HLEN + SLUICE_IPV4_HLEN;
    const bool df = (sluice_get_be16(in + 6) & SLUICE_IPV4_DF) != 0;
    const sluice_encap_config& cfg = settings.config;
    sluice_ipv4_write_hdr(eth + SLUICE_ETH_HLEN,
                          sluice_encap4_src(cfg.src_v4.v4, cfg.entropy_bits, p.hash), b.addr.v4,
                          p.pr.ip_len, p.pr.tos, df ? 0 : sluice_get_be16(in + 4), df ? 1 : 0,
                          settings.hop_limit, SLUICE_IPPROTO_IPIP);
    std::memcpy(eth, s.next_hop().dst_mac.data(), 6);
    const bool own = m->port < port_macs_.size() && port_macs_[m->port].known;
    std::memcpy(eth + 6, own ? port_macs_[m->port].mac.data() : s.next_hop().src_mac.data(), 6);
    sluice_put_be16(eth + 12, SLUICE_ETH_P_IP);
    f.len = SLUICE_ETH_HLEN + SLUICE_IPV4_HLEN + p.pr.ip_len;
    set_span(m, f);
    p.backend_slot = b.id & (SLUICE_MAX_BACKENDS - 1);
    transmit(m, p, out);
    return;
  }
  const EncapTarget target{.addr = b.addr, .family = b.family, .flow_hash = p.hash};
  switch (encap_frame(buf, m->buf_len, f, p.pr.l3_offset, settings, target)) {
    case EncapStatus::kOk:
      break;
    case EncapStatus::kUnsupportedFamily:
      if (!encap_6in4(buf, f, p.pr.l3_offset, p.pr.ip_len, p.pr.tos, settings, b, p.hash)) {
        drop(m, p, SLUICE_DROP_ENCAP_NO_ROOM, out);
        return;
      }
      break;
    case EncapStatus::kNoHeadroom:
      drop(m, p, SLUICE_DROP_ENCAP_NO_ROOM, out);
      return;
    case EncapStatus::kTooBig:
      drop(m, p, SLUICE_DROP_TOO_BIG, out);
      return;
    case EncapStatus::kBadInput:
      drop(m, p, SLUICE_DROP_TRUNCATED, out);
      return;
  }
  uint8_t* eth = buf + f.off;
  std::memcpy(eth, s.next_hop().dst_mac.data(), 6);
  const bool own = m->port < port_macs_.size() && port_macs_[m->port].known;
  std::memcpy(eth + 6, own ? port_macs_[m->port].mac.data() : s.next_hop().src_mac.data(), 6);
  set_span(m, f);
  p.backend_slot = b.id & (SLUICE_MAX_BACKENDS - 1);
  transmit(m, p, out);
}

void Worker::too_big(const Snapshot& s, rte_mbuf* m, Packet& p, uint32_t next_mtu,
                     Verdicts& out) noexcept {
  (void)s;
  auto* buf = static_cast<uint8_t*>(m->buf_addr);
  // IPv4 without DF: never answered, and counted apart (as XDP does).
  const uint16_t frag = p.pr.key.family == SLUICE_FAMILY_IPV4
                            ? sluice_get_be16(buf + m->data_off + p.pr.l3_offset + 6)
                            : 0;
  const sluice_drop_reason why = sluice_too_big_reason(p.pr.key.family, frag);
  // No ICMP error answers an ICMP error (RFC 1122 3.2.2); the other rules
  // are build_icmp_too_big's.
  if (!p.pr.is_icmp_error && why == SLUICE_DROP_TOO_BIG) {
    // Before the frame becomes the reply, whose bytes no longer say which
    // datagram it was.
    mark_frag_dropped(m, p);
    FrameSpan f{m->data_off, m->data_len};
    if (build_icmp_too_big(buf, m->buf_len, f, p.pr.l3_offset, next_mtu) == IcmpStatus::kBuilt) {
      set_span(m, f);
      ++counters_->global.icmp_too_big_sent;
      // Counted as a TOO_BIG drop of the client's packet (as XDP does);
      // the reply goes back out.
      drop(m, p, SLUICE_DROP_TOO_BIG, out);
      --out.n_dropped;
      out.tx[out.n_tx++] = m;
      return;
    }
  }
  drop(m, p, why, out);
}

void Worker::mark_frag_dropped(const rte_mbuf* m, Packet& p) noexcept {
  // p.frag is set whenever a fragment has a VIP.
  if (p.vip == nullptr || !p.pr.is_fragment || (p.frag & kFragRecorded) == 0) [[likely]]
    return;
  const FragmentFacts f =
      fragment_facts(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), p.pr);
  if (f.valid) frags_.mark_dropped(frag_key_of(p.pr.key, f.id, f.record_proto));
  p.frag &= static_cast<uint8_t>(~kFragRecorded);
}

void Worker::drop(rte_mbuf* m, Packet& p, sluice_drop_reason why, Verdicts& out) noexcept {
  ++counters_->global.drops[why < SLUICE_DROP_MAX ? why : SLUICE_DROP_TRUNCATED];
  // Its later fragments would be half a datagram the backend can never
  // reassemble: they are dropped too (SLUICE_DROP_FRAG_OF_DROPPED). Marked
  // here, in packet order, so a later fragment further on in this burst
  // sees it.
  mark_frag_dropped(m, p);
  if (p.vip != nullptr) {
    sluice_vip_stats& v = counters_->vips[p.vip->meta.vip_id];
    ++v.drops;
    v.new_flows += p.new_flow;
  }
  out.dropped[out.n_dropped++] = m;
}

void Worker::transmit(rte_mbuf* m, const Packet& p, Verdicts& out) noexcept {
  ++counters_->global.tx_packets;
  sluice_vip_stats& v = counters_->vips[p.vip->meta.vip_id];
  ++v.packets;
  v.bytes += p.frame_len;
  v.new_flows += p.new_flow;
  sluice_backend_stats& b = counters_->backends[p.backend_slot];
  ++b.packets;
  b.bytes += p.frame_len;
  b.new_flows += p.new_flow;
  out.tx[out.n_tx++] = m;
}

namespace {
template <class T>
T copy_counters(const T& src) {
  T out;
  const auto* from = reinterpret_cast<const uint64_t*>(&src);
  auto* to = reinterpret_cast<uint64_t*>(&out);
  static_assert(sizeof(T) % sizeof(uint64_t) == 0);
  for (size_t i = 0; i < sizeof(T) / sizeof(uint64_t); ++i)
    to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
  return out;
}
}  // namespace

sluice_global_stats Worker::global_stats() const noexcept {
  return copy_counters(counters_->global);
}

sluice_vip_stats Worker::vip_stats(uint32_t vip_id) const noexcept {
  return vip_id < SLUICE_MAX_VIPS ? copy_counters(counters_->vips[vip_id]) : sluice_vip_stats{};
}

sluice_backend_stats Worker::backend_stats(uint32_t backend_id) const noexcept {
  return copy_counters(counters_->backends[backend_id & (SLUICE_MAX_BACKENDS - 1)]);
}

}  // namespace sluice::dpdk
