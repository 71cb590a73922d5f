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
  /// with port 0; nullptr if the destination is not a VIP. The flow key is
  /// read field by field at the widths the parser wrote them: wide reads of
  /// narrow stores just made wait for them to reach the cache (store
  /// forwarding fails), which cost a third of an established packet's time
  /// in the burst when the key was first copied into a sluice_vip_key.
  [[nodiscard]] const Vip* find_vip(const sluice_flow_key& key) const noexcept {
    const Words w = words(key.dst, key.family, key.dport, key.proto);
    if (const Vip* v = probe(w)) return v;
    if (key.dport == 0) return nullptr;
    return probe(words(key.dst, key.family, 0, key.proto));
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

  // A VIP key as three integers: the address (IPv4 in the low half of the
  // first; IPv6 as two 8-byte halves), then port, protocol and family.
  struct Words {
    uint64_t a0;
    uint64_t a1;
    uint64_t rest;
    bool operator==(const Words&) const = default;
  };
  static Words words(const sluice_ip& addr, uint8_t family, uint16_t port,
                     uint8_t proto) noexcept {
    Words w{0, 0, port | uint64_t{proto} << 16 | uint64_t{family} << 24};
    if (family == SLUICE_FAMILY_IPV4) {
      uint32_t v4;
      std::memcpy(&v4, &addr.v4, sizeof v4);
      w.a0 = v4;
    } else {
      std::memcpy(&w.a0, addr.bytes, sizeof w.a0);
      std::memcpy(&w.a1, addr.bytes + sizeof w.a0, sizeof w.a1);
    }
    return w;
  }
  static Words words(const sluice_vip_key& k) noexcept {
    return words(k.addr, k.family, k.port, k.proto);
  }
  // The words multiplied into one, folded, and multiplied once more, so
  // every key bit reaches the slot bits. Not MurmurHash3 (six rounds over
  // 24 bytes, paid twice for a wildcard VIP): at most 512 keys in 1024
  // slots need a spread, not avalanche.
  static uint32_t vip_hash(const Words& w) noexcept {
    uint64_t x = w.a0 ^ (w.a1 * 0xC2B2AE3D27D4EB4Full) ^ (w.rest * 0x165667B19E3779F9ull);
    x ^= x >> 32;
    return static_cast<uint32_t>((x * 0x9E3779B97F4A7C15ull) >> 32);
  }
  // Linear probing; terminates because at most half the slots are used.
  [[nodiscard]] const Vip* probe(const Words& w) const noexcept {
    for (uint32_t i = vip_hash(w) & (kVipSlots - 1);; i = (i + 1) & (kVipSlots - 1)) {
      const uint16_t at = vip_slots_[i];
      if (at == 0) return nullptr;
      const Vip& v = vip_list_[at - 1u];
      if (words(v.key) == w) return &v;
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
