// SPDX-License-Identifier: BSD-2-Clause
// CountMinSketch: one core's count of cache misses by key, the hot-key
// detector of the hot-object cache (layout and indices in
// dataplane/abi/cache.h, shared with the XDP program).
#pragma once

#include <cstdint>

#include "dataplane/abi/cache.h"

namespace sluice {

/// A count-min sketch (Cormode and Muthukrishnan, J. Algorithms 55(1),
/// 2005) of SLUICE_CACHE_SKETCH_DEPTH x SLUICE_CACHE_SKETCH_WIDTH 32-bit
/// counters over key hashes (sluice_cache_key_hash). After N add() calls
/// since the last reset(), estimate(h) is at least the true count of h and,
/// with probability at least 1 - kDelta, at most the true count + kEpsilon
/// * N. 16 KiB, no allocation; one owner core, no atomics.
class CountMinSketch {
 public:
  /// e / WIDTH: the error bound as a fraction of the adds counted.
  static constexpr double kEpsilon = 2.718281828459045 / SLUICE_CACHE_SKETCH_WIDTH;
  /// e^-DEPTH: the probability of exceeding it.
  static constexpr double kDelta = 0.018315638888734179;

  /// Counts one occurrence of `key_hash`; returns its new estimate.
  /// Counters saturate at 2^32 - 1 instead of wrapping.
  uint32_t add(uint32_t key_hash) noexcept {
    uint32_t least = UINT32_MAX;
    for (uint32_t row = 0; row < SLUICE_CACHE_SKETCH_DEPTH; ++row) {
      uint32_t& c = s_.counts[sluice_cache_sketch_index(key_hash, row)];
      if (c != UINT32_MAX) ++c;
      if (c < least) least = c;
    }
    return least;
  }

  /// The estimated count of `key_hash` since the last reset.
  [[nodiscard]] uint32_t estimate(uint32_t key_hash) const noexcept {
    uint32_t least = UINT32_MAX;
    for (uint32_t row = 0; row < SLUICE_CACHE_SKETCH_DEPTH; ++row) {
      const uint32_t c = s_.counts[sluice_cache_sketch_index(key_hash, row)];
      if (c < least) least = c;
    }
    return least;
  }

  /// Zeroes every counter (the start of a period).
  void reset() noexcept { s_ = sluice_cache_sketch{}; }

  /// The counters, in the layout the XDP program's per-CPU sketch has.
  [[nodiscard]] const sluice_cache_sketch& counters() const noexcept { return s_; }

 private:
  sluice_cache_sketch s_{};
};

}  // namespace sluice
