// SPDX-License-Identifier: BSD-2-Clause
// Snapshot: everything the DPDK workers read to balance a packet (VIPs,
// backends, Maglev tables, outer headers, next hop), built whole by the
// control thread and immutable once built.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/abi/consts.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/core/encap.hpp"
#include "dataplane/core/result.hpp"

namespace sluice::dpdk {

/// One VIP as the control plane describes it (the same fields as
/// sluice::xdp::SnapshotVip, so one control plane feeds both fast paths).
struct SnapshotVipSpec {
  /// Address, port (0: every port), protocol, family; pad bytes and unused
  /// address bytes are ignored (zeroed here).
  sluice_vip_key key{};
  /// vip_id (< SLUICE_MAX_VIPS, unique) and flags (SLUICE_VIP_*); table_size
  /// is taken from `table`.
  sluice_vip_meta meta{};
  /// The Maglev lookup table mapped to backend ids: M entries, M a prime in
  /// [SLUICE_MAGLEV_MIN_SIZE, SLUICE_MAGLEV_MAX_SIZE], each a backend id of
  /// the snapshot or SLUICE_BACKEND_NONE (a counted no_backend drop).
  std::vector<uint32_t> table;
};

/// The static next hop of every forwarded packet (one-armed: it leaves the
/// port it came in on). All-zero dst_mac means "not configured": VIP packets
/// are then dropped as SLUICE_DROP_TX_FAILED, never sent to a wrong MAC.
struct NextHop {
  std::array<uint8_t, 6> dst_mac{};  ///< the gateway's MAC
  std::array<uint8_t, 6> src_mac{};  ///< this port's MAC
};

/// What the control plane hands over to build a Snapshot.
struct SnapshotSpec {
  std::vector<SnapshotVipSpec> vips;
  /// Backends (id, addr, family; flags may hold SLUICE_BACKEND_DRAINING,
  /// VALID is set here). Ids must have distinct slots (id &
  /// (SLUICE_MAX_BACKENDS - 1)).
  std::vector<sluice_backend> backends;
  /// Outer sources, MTU (bytes; 0 = no limit below 65535) and entropy bits;
  /// src_v4 must be set if any backend is IPv4, src_v6 if any is IPv6.
  sluice_encap_config encap{};
  NextHop next_hop{};
};

/// The immutable balancing state the workers read. Built by create() off
/// the packet path; the packet path only calls the const inline lookups.
/// Workers reach it through SnapshotRcu, which frees it only after every
/// worker has stopped reading it.
class Snapshot {
 public:
  /// A VIP as the workers find it.
  struct Vip {
    sluice_vip_key key;     ///< zeroed pad and unused address bytes
    sluice_vip_meta meta;   ///< table_size = entries of `table`
    const uint32_t* table;  ///< M backend ids (or SLUICE_BACKEND_NONE)
  };

  /// Validates `spec` whole and builds the snapshot (allocates). Errors
  /// (-EINVAL, naming the offending VIP or backend): a vip_id out of range
  /// or used twice, a key seen twice, a bad family or protocol, a table
  /// size that is not a prime in range, a table entry naming no backend of
  /// the snapshot, two backends in one slot or with one id, a bad backend
  /// family or SLUICE_BACKEND_NONE as id, a missing outer source for a
  /// backend family, more than SLUICE_MAX_VIPS VIPs, entropy bits > 16.
  [[nodiscard]] static Result<std::unique_ptr<const Snapshot>> create(const SnapshotSpec& spec);

  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot();

  /// The VIP of a flow: exact (dst, dport, proto, family), then the same
  /// with port 0; nullptr if the destination is not a VIP.
  [[nodiscard]] const Vip* find_vip(const sluice_flow_key& key) const noexcept {
    sluice_vip_key k;
    k.addr = key.dst;
    k.port = key.dport;
    k.proto = key.proto;
    k.family = key.family;
    k.pad[0] = k.pad[1] = k.pad[2] = k.pad[3] = 0;
    if (const Vip* v = probe(k)) return v;
    if (k.port == 0) return nullptr;
    k.port = 0;
    return probe(k);
  }

  /// The backend with this id if this snapshot has it (a draining backend
  /// counts); nullptr for SLUICE_BACKEND_NONE, a removed backend, or a
  /// slot now holding another id.
  [[nodiscard]] const sluice_backend* backend(uint32_t id) const noexcept {
    const sluice_backend& b = backends_[id & (SLUICE_MAX_BACKENDS - 1)];
    return (b.flags & SLUICE_BACKEND_VALID) != 0 && b.id == id ? &b : nullptr;
  }

  /// Maglev for a new flow of `vip`: table[hash % M] if it names a backend.
  [[nodiscard]] const sluice_backend* maglev_pick(const Vip& vip, uint32_t hash) const noexcept {
    return backend(vip.table[hash % vip.meta.table_size]);
  }

  [[nodiscard]] const EncapSettings& encap() const noexcept { return encap_; }
  [[nodiscard]] const NextHop& next_hop() const noexcept { return next_hop_; }
  /// Whether a next hop is configured (dst_mac not all zero).
  [[nodiscard]] bool has_next_hop() const noexcept { return has_next_hop_; }
  /// The VIPs, in no particular order.
  [[nodiscard]] std::span<const Vip> vips() const noexcept { return vip_list_; }

 private:
  Snapshot() = default;
  /// Open-addressing slots, a power of two at least twice SLUICE_MAX_VIPS.
  static constexpr uint32_t kVipSlots = 2 * SLUICE_MAX_VIPS;

  // MurmurHash3 blocks over the 24 key bytes (the abi's mixing steps).
  static uint32_t vip_hash(const sluice_vip_key& k) noexcept {
    const auto* p = reinterpret_cast<const uint8_t*>(&k);
    uint32_t h = 0;
    for (size_t i = 0; i < sizeof k; i += 4) h = sluice_mm3_block(h, sl_load_le32(p + i));
    return sluice_mm3_final(h, sizeof k);
  }
  // Linear probing; terminates because at most half the slots are used.
  [[nodiscard]] const Vip* probe(const sluice_vip_key& k) const noexcept {
    for (uint32_t i = vip_hash(k) & (kVipSlots - 1);; i = (i + 1) & (kVipSlots - 1)) {
      const uint16_t at = vip_slots_[i];
      if (at == 0) return nullptr;
      const Vip& v = vip_list_[at - 1u];
      if (std::memcmp(&v.key, &k, sizeof k) == 0) return &v;
    }
  }

  // Slot -> index into vip_list_ + 1 (0 = empty), linear probing.
  std::array<uint16_t, kVipSlots> vip_slots_{};
  std::vector<Vip> vip_list_;
  std::vector<std::vector<uint32_t>> tables_;
  std::array<sluice_backend, SLUICE_MAX_BACKENDS> backends_{};
  EncapSettings encap_{};
  NextHop next_hop_{};
  bool has_next_hop_ = false;
};

}  // namespace sluice::dpdk
