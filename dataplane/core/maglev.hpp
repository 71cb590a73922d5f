// SPDX-License-Identifier: BSD-2-Clause
// The weighted Maglev lookup-table builder (control plane side): table
// sizes, the population step, and the balance / disruption measures.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/abi/consts.h"
#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/result.hpp"

namespace sluice {

/// Table size limits, entries (see dataplane/abi/consts.h).
inline constexpr uint32_t kMaglevMinSize = SLUICE_MAGLEV_MIN_SIZE;
inline constexpr uint32_t kMaglevMaxSize = SLUICE_MAGLEV_MAX_SIZE;
inline constexpr uint32_t kMaglevDefaultSize = SLUICE_MAGLEV_DEFAULT_SIZE;

/// True if n is prime (deterministic trial division; n < 2^32).
[[nodiscard]] bool is_prime(uint32_t n);

/// The smallest prime >= n, or 0 if there is none below 2^32
/// (n > 4,294,967,291).
[[nodiscard]] uint32_t next_prime(uint32_t n);

/// The table size, entries, for a pool of n_backends: the smallest prime
/// >= max(65,537, 100 * n_backends), capped at kMaglevMaxSize. 100 entries
/// per backend keeps the imbalance and the disruption of a change near the
/// ideal as pools grow (Eisenbud et al., NSDI '16, section 5.3).
[[nodiscard]] uint32_t maglev_auto_table_size(uint64_t n_backends);

/// A backend as the table builder sees it: its address (its identity: the
/// permutation comes from it) and its weight (0 = no new flows).
struct MaglevBackend {
  IpAddress addr;
  uint32_t weight = 1;
};

/// One backend's permutation of the table slots and its weight, for the
/// population step. Slot j of the permutation is (offset + j * skip) mod M.
/// offset < M, 1 <= skip < M.
struct MaglevPermutation {
  uint32_t offset = 0;
  uint32_t skip = 1;
  uint32_t weight = 1;
};

/// Builds weighted Maglev tables (Eisenbud et al., "Maglev: A Fast and
/// Reliable Software Network Load Balancer", NSDI '16, section 3.4),
/// extended with weights:
///
/// - Each backend's quota of entries is M * w / W by largest remainder
///   (ties by tie-break order), so counts follow the weights exactly and
///   sum to M; weight 0 gets nothing. Equal weights give plain Maglev's
///   floor(M/N) or ceil(M/N) entries.
/// - A backend's k-th turn falls at virtual time (k + 1/2) / w. Each turn,
///   the backend with the earliest next turn (ties by tie-break order)
///   among those below quota takes the next empty slot of its permutation.
///   A backend's turn times depend only on its own weight, so changing one
///   weight barely reorders the others' turns: disruption stays small.
///   With equal weights this is plain Maglev's round robin.
///
/// Keeps scratch buffers between builds, so reuse one object for many
/// tables. Not thread-safe: one builder per thread. Cost O(M log N) for the
/// turn order plus about M ln M slot probes.
class MaglevBuilder {
 public:
  /// Builds the table of `table_size` entries (a prime in
  /// [kMaglevMinSize, kMaglevMaxSize]) for `backends`. Permutations come
  /// from each address (sluice_addr_hash with SLUICE_MAGLEV_OFFSET_SEED and
  /// _SKIP_SEED), and ties break by address order, so the same addresses
  /// and weights in any order give the same address in every slot.
  ///
  /// Returns M entries, each the index of a backend in `backends` (the
  /// caller's order), so callers map entries to their own ids.
  /// Errors: -EINVAL for a bad table size, duplicate addresses or more
  /// backends than entries; -ENOENT for no backend or every weight 0
  /// (panic mode is the caller's decision).
  [[nodiscard]] Result<std::vector<uint32_t>> build(std::span<const MaglevBackend> backends,
                                                    uint32_t table_size = kMaglevDefaultSize);

  /// The population step alone, for permutations given explicitly.
  /// `order` lists indices into `perms` from first to last in tie-break
  /// order (quota remainders and equal turn times); empty means span order.
  /// `table_size` is any prime M in [2, kMaglevMaxSize].
  ///
  /// Returns M entries, each an index into `perms`.
  /// Errors: -EINVAL for a non-prime or too large M, an offset or skip out
  /// of range, more permutations than entries, or an `order` that is not a
  /// permutation of the indices; -ENOENT for no permutation or every
  /// weight 0.
  [[nodiscard]] Result<std::vector<uint32_t>> populate(std::span<const MaglevPermutation> perms,
                                                       std::span<const uint32_t> order,
                                                       uint32_t table_size);

 private:
  // One backend in the population loop, indexed by tie-break rank. Kept
  // together so a turn touches one cache line.
  struct Lane {
    uint64_t turn;    // 2k + 1: the next turn falls at virtual time turn / (2 * weight)
    uint32_t weight;  // > 0 for every lane in the heap
    uint32_t next;    // next slot of the permutation to probe
    uint32_t skip;    // permutation step, 1 <= skip < M
    uint32_t left;    // entries still to take
    uint32_t index;   // the caller's index of this backend
  };

  // Lane a's next turn comes before lane b's (ties: lower rank first).
  [[nodiscard]] bool earlier(uint32_t a, uint32_t b) const;
  // Puts `rank` into the heap at `hole`, moving earlier children up.
  void sift_down(uint32_t hole, uint32_t rank);

  std::vector<Lane> lanes_;
  std::vector<uint32_t> heap_;      // ranks, earliest next turn first
  std::vector<uint32_t> ranks_;     // scratch for order checks and remainders
  std::vector<uint64_t> rem_;       // quota remainder M * w mod W, by rank
  std::vector<uint64_t> filled_;    // bitmap of taken slots (8 KiB at M = 65,537)
  std::vector<MaglevPermutation> perms_;  // build(): permutations, caller order
  std::vector<uint32_t> sorted_;          // build(): caller indices by address
};

/// Same as MaglevBuilder().build(backends, table_size).
[[nodiscard]] Result<std::vector<uint32_t>> maglev_build(std::span<const MaglevBackend> backends,
                                                         uint32_t table_size = kMaglevDefaultSize);

/// How closely a table realises its weights.
struct MaglevBalance {
  std::vector<uint32_t> entries;  // entries per backend index
  double max_abs_dev = 0;  // max |entries - M * w / W| over backends, entries
  double max_rel_dev = 0;  // max |entries - ideal| / ideal over backends with w > 0
};

/// Counts the entries of each backend in `table` against its ideal share
/// M * weights[i] / W. Errors: -EINVAL if an entry is not an index into
/// `weights` or the table is empty; -ENOENT if every weight is 0.
[[nodiscard]] Result<MaglevBalance> maglev_balance(std::span<const uint32_t> table,
                                                   std::span<const uint32_t> weights);

/// Number of slots whose backend changed between two tables of the same
/// size, comparing backends by address (old_addrs[old_table[i]] against
/// new_addrs[new_table[i]]), since indices differ between two backend sets.
/// Errors: -EINVAL for tables of different sizes or an entry that is not an
/// index into its address list.
[[nodiscard]] Result<uint32_t> maglev_disruption(std::span<const uint32_t> old_table,
                                                 std::span<const IpAddress> old_addrs,
                                                 std::span<const uint32_t> new_table,
                                                 std::span<const IpAddress> new_addrs);

}  // namespace sluice
