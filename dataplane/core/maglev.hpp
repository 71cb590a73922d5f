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
/// >= max(65,537, kMaglevAutoEntriesPerBackend * n_backends), capped at
/// kMaglevMaxSize (so from 1,049 backends on it is the cap).
[[nodiscard]] uint32_t maglev_auto_table_size(uint64_t n_backends);

/// Entries per backend of the automatic table size: the fewest that keep
/// the entries moved by removing one backend near 2x the ideal M/N as
/// pools grow (beyond 1,048 backends the cap allows fewer, and it rises
/// again). Disruption falls as entries per backend grow: removing one of
/// 1,000 equal backends moves (median of 9) 4.1x M/N at
/// 100 per backend, 3.0x at 300, 2.6x at 500, 2.1x at 800, 2.0x at 900
/// and 1.9x at 1,000; 100 backends stay at 1.2-1.3x and 10 at 1.0x
/// (their tables are the 65,537 floor or more). Balance needs far fewer
/// (100 per backend meets an equal share to within 1%). Measured with
/// tests/unit/maglev_test.cpp's method; figures in perf/RESULTS.md.
inline constexpr uint32_t kMaglevAutoEntriesPerBackend = 1000;

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
/// Reliable Software Network Load Balancer", NSDI '16, section 3.4): each
/// backend walks its own permutation of the M slots and fills empty ones.
/// Weights are realised in two parts:
///
/// - Quota: each backend gets exactly M * w / W entries by largest
///   remainder (ties by tie-break order); the quotas sum to M and weight 0
///   gets nothing. Equal weights give plain Maglev's floor(M/N) or
///   ceil(M/N) entries.
/// - Order: a backend's j-th permutation entry is offered at virtual time
///   (j + 1/2) / w. Offers are taken in time order (ties by tie-break
///   order); an offer fills its slot if the slot is empty and the backend
///   is below quota. The paper's round robin charges one turn per entry
///   taken; here a backend's clock advances per permutation entry, taken
///   or not, so how far it has walked at any time depends only on its own
///   weight and never on what the others took. The table is then the
///   stable assignment of slots to backends under the quotas: removing a
///   backend or changing a weight moves little more than the share that
///   changed (at N = 100, M = 65,537: about 1.3x M/N for a removal against
///   plain Maglev's 1.55x; see tests/unit/maglev_test.cpp).
///
/// Keeps scratch buffers between builds, so reuse one object for many
/// tables. Not thread-safe: one builder per thread. Cost: about M ln M
/// permutation probes (one bitmap test each), plus O(M) for the entries.
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
  /// order (quota remainders and equal offer times); empty means span
  /// order.
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
  // One backend in the population loop, indexed by tie-break rank.
  struct Lane {
    uint32_t weight = 0;        // > 0 while the lane takes part
    uint32_t offset = 0;        // permutation start, < M
    uint32_t skip = 1;          // permutation step, 1 <= skip < M
    uint32_t cur = 0;           // slot of offer j: (offset + j * skip) mod M
    uint32_t j = 0;             // offers made so far (the permutation position)
    uint32_t left = 0;          // entries still to take
    uint32_t index = 0;         // the caller's index of this backend
    uint32_t count = 0;         // offers on empty slots in the current window
    uint64_t x = 0, rem = 0;    // floor and remainder of Q * weight / B (window end Q / 2B)
    uint64_t dx = 0, drem = 0;  // the same for one window step
    uint32_t inv = 0;           // tail: skip^-1 mod M
    uint32_t next = 0;          // tail: position of the first empty slot still ahead
    uint32_t target = 0;        // tail: that slot
  };
  // Offer (ja of lane a) comes before offer (jb of lane b).
  [[nodiscard]] bool before(uint32_t ja, uint32_t a, uint32_t jb, uint32_t b) const;
  // The same for two packed offers (see maglev.cpp).
  [[nodiscard]] bool earlier(uint64_t a, uint64_t b) const;
  void take(uint32_t slot, uint32_t lane, std::vector<uint32_t>& table);
  void set_window_step(uint64_t step);
  void run_windows(std::vector<uint32_t>& table);
  void run_tail(std::vector<uint32_t>& table);
  void aim(Lane& lane) const;

  uint32_t m_ = 0;         // table size of the build in progress
  uint32_t filled_n_ = 0;  // entries taken so far
  uint64_t b_ = 1;         // window-end denominator: the largest weight
  std::vector<Lane> lanes_;
  std::vector<uint32_t> active_;          // lanes with entries still to take
  std::vector<uint64_t> offers_;          // the current window's offers on empty slots, packed
  std::vector<uint64_t> order_;           // the same sorted, when a window needs it
  std::vector<uint32_t> best_;            // per slot: winning offer of the window
  std::vector<uint32_t> free_;            // tail: empty slots
  std::vector<uint32_t> ranks_;           // scratch for order checks and remainders
  std::vector<uint64_t> rem_;             // quota remainder M * w mod W, by rank
  std::vector<uint64_t> filled_;          // bitmap of taken slots (8 KiB at M = 65,537)
  std::vector<MaglevPermutation> perms_;  // build(): permutations, caller order
  std::vector<uint32_t> sorted_;          // build(): caller indices by address
};

/// Same as MaglevBuilder().build(backends, table_size).
[[nodiscard]] Result<std::vector<uint32_t>> maglev_build(std::span<const MaglevBackend> backends,
                                                         uint32_t table_size = kMaglevDefaultSize);

/// How closely a table realises its weights.
struct MaglevBalance {
  std::vector<uint32_t> entries;  // entries per backend index
  double max_abs_dev = 0;         // max |entries - M * w / W| over backends, entries
  double max_rel_dev = 0;         // max |entries - ideal| / ideal over backends with w > 0
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
