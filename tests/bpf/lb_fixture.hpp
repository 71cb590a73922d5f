// SPDX-License-Identifier: BSD-2-Clause
// LbFixture: a loaded sluice_lb program provisioned with a small world of
// VIPs and backends, plus what tests need to predict its output (the
// backend Maglev gives a flow, the encapsulated frame, counter deltas).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "tests/bpf/bpf_test_util.hpp"
#include "tests/common/packet_builder.hpp"
#include "xdp/lb_skeleton.hpp"
#include "xdp/loader.hpp"
#include "xdp/sluice_lb.h"

namespace sluice::test {

inline constexpr uint32_t kSeed = 0x5eed1234;  // rodata sluice_hash_seed
inline constexpr uint32_t kTableSize = 1031;   // Maglev M of every test VIP (prime)
inline constexpr uint16_t kMtu = 1500;
inline constexpr uint8_t kEntropyBits = 8;
inline constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};       // this interface
inline constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};   // where packets come from
inline constexpr Mac kGatewayMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfd};  // the static next hop

inline constexpr uint8_t kTcp = SLUICE_IPPROTO_TCP;
inline constexpr uint8_t kUdp = SLUICE_IPPROTO_UDP;

/// A flow key as the parser must produce it (client -> VIP).
sluice_flow_key flow_key(std::string_view client, uint16_t cport, std::string_view vip,
                         uint16_t vport, uint8_t proto);

/// The L2 header (ntags VLAN tags) of `like` with new MACs and last
/// EtherType: what an output frame's L2 header must be.
Bytes l2_header(const Bytes& like, size_t ntags, const Mac& dst, const Mac& src, uint16_t type);

/// A VIP to provision. Written directly, its table spreads `backends` over
/// the slots (slot i -> backends[i % n]); provisioned through the loader,
/// it is the core's Maglev table of their addresses (MaglevBuilder, weight
/// 1 each). An empty list leaves every slot empty.
struct VipSpec {
  std::string addr;
  uint16_t port;
  uint8_t proto;
  uint32_t vip_id;
  uint32_t flags;
  std::vector<uint32_t> backends;
};

/// CLOCK_MONOTONIC_COARSE in ms, truncated to 32 bits: the clock flow
/// entries' last_seen is kept in (bpf_ktime_get_coarse_ns / 1e6).
uint32_t now_ms();

/// Expected global-counter deltas.
sluice_global_stats forwarded(size_t frame_len, bool hit = false);
sluice_global_stats passed(size_t frame_len);
sluice_global_stats dropped(size_t frame_len, sluice_drop_reason reason);
/// Compares every field, naming the ones that differ.
void expect_stats_delta(const sluice_global_stats& before, const sluice_global_stats& after,
                        const sluice_global_stats& want);

class LbFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  /// Called between open and load: map sizes, rodata (sluice_newflows is
  /// sized afterwards from sluice_probation_slots; not called when
  /// provisioning through the loader).
  virtual void before_load(sluice_lb_bpf* /*skel*/) {}
  /// Whether the world is loaded and provisioned through xdp::Loader
  /// (load with pinned maps under a random bpffs folder, publish() of whole
  /// snapshots, set_next_hop: the daemon's path, Maglev tables from the
  /// core builder) instead of by writing the maps directly. Tests that
  /// need hand-made tables or states no snapshot can make (a reordered
  /// table, a cleared slot, a hidden backend) write directly.
  [[nodiscard]] virtual bool through_loader() const { return false; }

  // The standard world: v4 backends 1-3, v6 backends 11-12, and the VIPs
  // listed in lb_fixture.cpp.
  void provision_world();
  /// Through the loader: publishes backends_, vips_ (with tables_) and the
  /// encap config as one snapshot (a no-op when writing directly, or while
  /// provision_world batches its changes).
  void publish_world();
  void add_backend(uint32_t id, std::string_view addr, uint8_t flags = SLUICE_BACKEND_VALID);
  void set_backend(uint32_t slot, const sluice_backend& b);
  /// Removes backend `id`: through the loader, a snapshot without it (no
  /// VIP's table may still name it); written directly, its slot cleared.
  void remove_backend(uint32_t id);
  /// Adds the VIP to the hash map and its direct-mapped slot (a slot that
  /// two VIPs share defers to the hash map, as the loader writes it).
  void add_vip(const VipSpec& v);
  /// Removes a VIP added by add_vip (its Maglev table stays).
  void remove_vip(uint32_t vip_id);
  /// Writes the direct-mapped slot `index` from vip_slots_.
  void write_vip_slot(uint32_t index);
  /// Fills a fresh table for vip_id from `backends` and swaps it in.
  void publish_table(uint32_t vip_id, const std::vector<uint32_t>& backends);
  void set_next_hop(const Mac& dst, const Mac& src);
  /// Writes an established flow entry (sluice_flows is shared by all CPUs)
  /// pinning `key` to `backend`, keeping `hash` (the flow hash, hash_of) as
  /// the program does.
  void inject_established(const sluice_flow_key& key, uint32_t backend, uint32_t last_seen,
                          uint32_t hash);

  /// The index in sluice_newflows of the slot (in this CPU's run) a flow
  /// to vip_id takes.
  [[nodiscard]] uint32_t probation_index(uint32_t vip_id, const sluice_flow_key& key) const;
  /// Whether this CPU's probation slot for `key` (to vip_id) holds it; its
  /// value in *v.
  bool on_probation(uint32_t vip_id, const sluice_flow_key& key, sluice_flow_value* v);
  /// Writes `v` for `key` into its probation slot on this CPU.
  void put_probation(uint32_t vip_id, const sluice_flow_key& key, const sluice_flow_value& v);
  /// The keys on probation on this CPU, their slots emptied.
  std::vector<sluice_flow_key> take_probation();

  /// The flow hash the program must compute for a packet of `key` to vip_id.
  [[nodiscard]] uint32_t hash_of(uint32_t vip_id, const sluice_flow_key& key) const;
  /// The backend id the VIP's current table gives `key`.
  [[nodiscard]] uint32_t choice(uint32_t vip_id, const sluice_flow_key& key) const;
  /// The frame `in` (ntags VLAN tags) encapsulated toward `backend_id`, as
  /// encap_frame (dataplane/core/encap.hpp) specifies it.
  [[nodiscard]] Bytes encapsulated(const Bytes& in, size_t ntags, uint32_t backend_id,
                                   uint32_t hash) const;
  /// Expected output of a forwarded packet of `key` to vip_id.
  [[nodiscard]] Bytes forwarded_frame(const Bytes& in, size_t ntags, uint32_t vip_id,
                                      const sluice_flow_key& key) const;

  XdpRun run(const Bytes& in);
  /// The backend id an encapsulated output frame is addressed to, or
  /// SLUICE_BACKEND_NONE (matched against the provisioned backends).
  [[nodiscard]] uint32_t backend_of(const XdpRun& r, size_t ntags = 0) const;

  sluice_global_stats global_stats();
  sluice_vip_stats vip_stats(uint32_t vip_id);
  sluice_backend_stats backend_stats(uint32_t backend_id);

  [[nodiscard]] int fd(bpf_map* map) const;
  [[nodiscard]] sluice_lb_bpf* skel() const {
    return loader_ ? loader_->skeleton() : skel_->get();
  }
  [[nodiscard]] int cpu() const { return pin_->cpu(); }

  std::optional<CpuPin> pin_;
  std::optional<LbSkeleton> skel_;
  std::optional<xdp::Loader> loader_;  // through_loader(): owns the skeleton
  std::string pin_root_;               // through_loader(): its pin folder
  bool batching_ = false;              // provision_world: one publish at the end
  std::map<uint32_t, sluice_backend> backends_;       // by id
  std::map<uint32_t, VipSpec> vips_;                  // by vip_id
  std::map<uint32_t, std::vector<sluice_vip_slot>> vip_slots_;  // VIPs by direct-mapped slot
  std::map<uint32_t, std::vector<uint32_t>> tables_;  // by vip_id, M slots each
  sluice_encap_config encap_config_{};                // as written to sluice_encap
};

}  // namespace sluice::test
