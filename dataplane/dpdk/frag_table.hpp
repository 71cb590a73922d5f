// SPDX-License-Identifier: BSD-2-Clause
// FragTable: one worker's record of the fragmented datagrams whose first
// fragment found a VIP, so their later fragments (which carry no ports)
// reach the same VIP; the DPDK counterpart of xdp/lb_maps.h sluice_frags.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/abi/flow.h"
#include "dataplane/core/result.hpp"

namespace sluice::dpdk {

/// A fragmented datagram: the fields every fragment of it shares (RFC 791
/// section 3.2; RFC 8200 section 4.5). 40 bytes, unused address bytes and
/// padding zero (keys compare and hash as bytes).
struct FragKey {
  sluice_ip src;   ///< source address, network order
  sluice_ip dst;   ///< destination address, network order
  uint32_t id;     ///< identification, host order: IPv4's 16 bits, IPv6's 32
  uint8_t family;  ///< SLUICE_FAMILY_*
  uint8_t proto;   ///< the protocol every fragment names (FragmentFacts::record_proto)
  uint8_t pad[2];  ///< zero
};
static_assert(sizeof(FragKey) == 40);

/// What a datagram's first fragment found (xdp/lb_maps.h lb_frag_value).
struct FragRecord {
  uint32_t vip_id;  ///< the VIP's id when the first fragment came
  uint16_t port;    ///< the first fragment's destination port, network order
  uint8_t proto;    ///< the first fragment's upper-layer protocol (TCP or UDP)
  bool dropped;     ///< the first fragment was dropped: drop the rest
};

/// A fixed-capacity table FragKey -> FragRecord: 4-way set-associative,
/// buckets chosen by a CRC32-C of the key (rte_hash_crc) with a seed; a
/// record into a full bucket evicts the bucket's oldest record (by insertion
/// order; lookups do not refresh it: a datagram's fragments arrive within
/// milliseconds, so the oldest is the one most likely done). Records never
/// expire otherwise, as XDP's LRU map's do not: a record is only a hint that
/// the VIP and its id are checked against on use.
///
/// All memory is allocated by create(); record(), find(), mark_dropped() and erase()
/// allocate nothing, take no locks and are O(kWays). One owner thread (the
/// worker's lcore): not thread-safe.
class FragTable {
 public:
  /// Records per bucket.
  static constexpr uint32_t kWays = 4;
  /// Bounds of the capacity, records (64 bytes each: 16 Ki records = 1 MiB).
  static constexpr uint32_t kMinCapacity = kWays;
  static constexpr uint32_t kMaxCapacity = 1u << 20;

  /// A table of `capacity` records (rounded up to a power of two), bucket
  /// hashing seeded with `seed`. Errors: -EINVAL for a capacity outside
  /// [kMinCapacity, kMaxCapacity]; -ENOMEM.
  [[nodiscard]] static Result<FragTable> create(uint32_t capacity, uint32_t seed);

  /// Records (or re-records, clearing `dropped`) the datagram's first
  /// fragment, which found VIP `vip_id` by destination `port` (network
  /// order) and upper-layer protocol `proto`, evicting the bucket's oldest
  /// record when the bucket is full.
  void record(const FragKey& key, uint32_t vip_id, uint16_t port, uint8_t proto) noexcept;
  /// The datagram's record, or nullptr. Valid until the next record().
  [[nodiscard]] const FragRecord* find(const FragKey& key) const noexcept;
  /// Sets `dropped` in the datagram's record, if it has one.
  void mark_dropped(const FragKey& key) noexcept;
  /// Removes the datagram's record, if it has one: a first fragment that
  /// records nothing (no VIP) must not leave an older datagram's record
  /// with the same key for its later fragments to follow.
  void erase(const FragKey& key) noexcept;

  /// Records the table holds at most (a power of two).
  [[nodiscard]] uint32_t capacity() const noexcept { return mask_ + 1; }
  /// Records displaced by newer ones since creation (a full bucket).
  [[nodiscard]] uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct alignas(64) Slot {
    FragKey key;  // family 0: empty
    FragRecord rec;
    uint32_t stamp;  // insertion order (wraps; compared as a difference)
  };
  FragTable(std::unique_ptr<Slot[]> slots, uint32_t capacity, uint32_t seed);
  [[nodiscard]] Slot* bucket_of(const FragKey& key) const noexcept;
  [[nodiscard]] Slot* find_slot(const FragKey& key) const noexcept;

  std::unique_ptr<Slot[]> slots_;
  uint32_t mask_;  // capacity - 1
  uint32_t seed_;
  uint32_t next_stamp_ = 0;
  uint64_t evictions_ = 0;
};

/// The FragKey of a fragment with flow key `flow` (addresses and family; the
/// ports and protocol are ignored), identification `id` and record protocol
/// `record_proto` (FragmentFacts::record_proto).
[[nodiscard]] FragKey frag_key_of(const sluice_flow_key& flow, uint32_t id,
                                  uint8_t record_proto) noexcept;

}  // namespace sluice::dpdk
