// SPDX-License-Identifier: BSD-2-Clause
// The weighted Maglev population loop, table sizing, and the balance and
// disruption measures.
#include "dataplane/core/maglev.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <numeric>
#include <string>

namespace sluice {

namespace {

constexpr uint32_t kLargestPrime32 = 4294967291u;

Error size_error(uint32_t m, const std::string& what) {
  return Error{-EINVAL, "Maglev table size " + std::to_string(m) + " " + what};
}

}  // namespace

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n < 4) return true;
  if (n % 2 == 0 || n % 3 == 0) return false;
  // Every prime above 3 is 6k +- 1.
  for (uint64_t i = 5; i * i <= n; i += 6) {
    if (n % i == 0 || n % (i + 2) == 0) return false;
  }
  return true;
}

uint32_t next_prime(uint32_t n) {
  if (n <= 2) return 2;
  if (n > kLargestPrime32) return 0;
  uint32_t c = n | 1u;
  while (!is_prime(c)) c += 2;  // stops at kLargestPrime32 at the latest
  return c;
}

uint32_t maglev_auto_table_size(uint64_t n_backends) {
  const uint64_t want = std::max<uint64_t>(kMaglevDefaultSize, n_backends * 100);
  // The cap is prime, so next_prime below it never passes it.
  if (want >= kMaglevMaxSize || n_backends > kMaglevMaxSize) return kMaglevMaxSize;
  return next_prime(static_cast<uint32_t>(want));
}

Result<std::vector<uint32_t>> maglev_build(std::span<const MaglevBackend> backends,
                                           uint32_t table_size) {
  MaglevBuilder b;
  return b.build(backends, table_size);
}

bool MaglevBuilder::earlier(uint32_t a, uint32_t b) const {
  // turn_a / w_a < turn_b / w_b, cross-multiplied: turn < 2M <= 2^21 and
  // w < 2^32, so each product stays below 2^53.
  const uint64_t x = lanes_[a].turn * lanes_[b].weight;
  const uint64_t y = lanes_[b].turn * lanes_[a].weight;
  return x < y || (x == y && a < b);
}

void MaglevBuilder::sift_down(uint32_t hole, uint32_t rank) {
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * size_t{hole} + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(heap_[child + 1], heap_[child])) ++child;
    if (!earlier(heap_[child], rank)) break;
    heap_[hole] = heap_[child];
    hole = static_cast<uint32_t>(child);
  }
  heap_[hole] = rank;
}

Result<std::vector<uint32_t>> MaglevBuilder::build(std::span<const MaglevBackend> backends,
                                                   uint32_t table_size) {
  if (table_size < kMaglevMinSize || table_size > kMaglevMaxSize) {
    return size_error(table_size, "is out of range [" + std::to_string(kMaglevMinSize) + ", " +
                                      std::to_string(kMaglevMaxSize) + "]");
  }
  if (!is_prime(table_size)) return size_error(table_size, "is not a prime");
  if (backends.empty()) return Error{-ENOENT, "Maglev table: no backends"};
  if (backends.size() > table_size) {
    return Error{-EINVAL, "Maglev table: " + std::to_string(backends.size()) +
                              " backends do not fit in " + std::to_string(table_size) +
                              " entries"};
  }

  // Address order is the tie-break order, so no decision depends on the
  // order the caller listed the backends in.
  sorted_.resize(backends.size());
  std::iota(sorted_.begin(), sorted_.end(), 0u);
  std::sort(sorted_.begin(), sorted_.end(),
            [&](uint32_t a, uint32_t b) { return backends[a].addr < backends[b].addr; });
  for (size_t i = 1; i < sorted_.size(); ++i) {
    if (backends[sorted_[i - 1]].addr == backends[sorted_[i]].addr) {
      return Error{-EINVAL, "Maglev table: duplicate backend address " +
                                backends[sorted_[i]].addr.to_string()};
    }
  }

  perms_.resize(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    const IpAddress& a = backends[i].addr;
    perms_[i].offset = sluice_addr_hash(&a.ip, a.family, SLUICE_MAGLEV_OFFSET_SEED) % table_size;
    perms_[i].skip =
        sluice_addr_hash(&a.ip, a.family, SLUICE_MAGLEV_SKIP_SEED) % (table_size - 1) + 1;
    perms_[i].weight = backends[i].weight;
  }
  return populate(perms_, sorted_, table_size);
}

Result<std::vector<uint32_t>> MaglevBuilder::populate(std::span<const MaglevPermutation> perms,
                                                      std::span<const uint32_t> order,
                                                      uint32_t table_size) {
  const uint32_t m = table_size;
  if (m > kMaglevMaxSize) {
    return size_error(m, "is above the maximum " + std::to_string(kMaglevMaxSize));
  }
  // A prime M makes every skip coprime with M: each permutation visits
  // every slot, so every turn finds an empty one.
  if (!is_prime(m)) return size_error(m, "is not a prime");
  if (perms.empty()) return Error{-ENOENT, "Maglev table: no backends"};
  if (perms.size() > m) {
    return Error{-EINVAL, "Maglev table: " + std::to_string(perms.size()) +
                              " backends do not fit in " + std::to_string(m) + " entries"};
  }
  const auto n = static_cast<uint32_t>(perms.size());
  if (!order.empty() && order.size() != n) {
    return Error{-EINVAL, "Maglev table: tie-break order lists " + std::to_string(order.size()) +
                              " backends, not " + std::to_string(n)};
  }

  lanes_.resize(n);
  ranks_.assign(n, 0);  // here: 1 once an index is seen in `order`
  uint64_t total_weight = 0;
  for (uint32_t r = 0; r < n; ++r) {
    const uint32_t i = order.empty() ? r : order[r];
    if (i >= n || ranks_[i] != 0) {
      return Error{-EINVAL, "Maglev table: tie-break order is not a permutation of the backends"};
    }
    ranks_[i] = 1;
    const MaglevPermutation& p = perms[i];
    if (p.offset >= m || p.skip == 0 || p.skip >= m) {
      return Error{-EINVAL, "Maglev table: backend " + std::to_string(i) + " has offset " +
                                std::to_string(p.offset) + ", skip " + std::to_string(p.skip) +
                                " outside [0, M) x [1, M) for M = " + std::to_string(m)};
    }
    lanes_[r] = Lane{1, p.weight, p.offset, p.skip, 0, i};
    total_weight += p.weight;
  }
  if (total_weight == 0) return Error{-ENOENT, "Maglev table: every backend has weight 0"};

  // Quotas: M * w / W by largest remainder, ties by rank. M * w < 2^52.
  rem_.resize(n);
  uint64_t given = 0;
  ranks_.clear();
  for (uint32_t r = 0; r < n; ++r) {
    const uint64_t share = uint64_t{m} * lanes_[r].weight;
    lanes_[r].left = static_cast<uint32_t>(share / total_weight);
    rem_[r] = share % total_weight;
    given += lanes_[r].left;
    if (rem_[r] != 0) ranks_.push_back(r);
  }
  // Fewer than n entries are left over, and at least that many remainders
  // are non-zero (they sum to leftover * W, each below W).
  const auto leftover = static_cast<size_t>(m - given);
  const auto by_remainder = [this](uint32_t a, uint32_t b) {
    return rem_[a] > rem_[b] || (rem_[a] == rem_[b] && a < b);
  };
  std::nth_element(ranks_.begin(), ranks_.begin() + static_cast<ptrdiff_t>(leftover),
                   ranks_.end(), by_remainder);
  for (size_t j = 0; j < leftover; ++j) ++lanes_[ranks_[j]].left;

  heap_.clear();
  for (uint32_t r = 0; r < n; ++r) {
    if (lanes_[r].left != 0) heap_.push_back(r);
  }
  for (size_t h = heap_.size() / 2; h-- > 0;) sift_down(static_cast<uint32_t>(h), heap_[h]);

  filled_.assign((size_t{m} + 63) / 64, 0);
  std::vector<uint32_t> table(m, SLUICE_BACKEND_NONE);
  // Quotas sum to M, so the heap runs dry exactly when the table is full.
  for (uint32_t taken = 0; taken < m; ++taken) {
    const uint32_t r = heap_[0];
    Lane& lane = lanes_[r];
    uint32_t c = lane.next;
    // Incremental (offset + j * skip) mod M: no division per probe.
    while ((filled_[c >> 6] >> (c & 63)) & 1u) {
      c += lane.skip;
      if (c >= m) c -= m;
    }
    filled_[c >> 6] |= uint64_t{1} << (c & 63);
    table[c] = lane.index;
    c += lane.skip;
    if (c >= m) c -= m;
    lane.next = c;

    if (--lane.left == 0) {
      const uint32_t last = heap_.back();
      heap_.pop_back();
      if (!heap_.empty()) sift_down(0, last);
    } else {
      lane.turn += 2;
      sift_down(0, r);
    }
  }
  return table;
}

Result<MaglevBalance> maglev_balance(std::span<const uint32_t> table,
                                     std::span<const uint32_t> weights) {
  if (table.empty()) return Error{-EINVAL, "Maglev balance: empty table"};
  const uint64_t total_weight = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  if (total_weight == 0) return Error{-ENOENT, "Maglev balance: every backend has weight 0"};

  MaglevBalance b;
  b.entries.assign(weights.size(), 0);
  for (const uint32_t e : table) {
    if (e >= weights.size()) {
      return Error{-EINVAL, "Maglev balance: entry " + std::to_string(e) + " is not a backend"};
    }
    ++b.entries[e];
  }
  const auto m = static_cast<double>(table.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    const double ideal = m * static_cast<double>(weights[i]) / static_cast<double>(total_weight);
    const double dev = std::abs(static_cast<double>(b.entries[i]) - ideal);
    b.max_abs_dev = std::max(b.max_abs_dev, dev);
    if (weights[i] != 0) b.max_rel_dev = std::max(b.max_rel_dev, dev / ideal);
  }
  return b;
}

Result<uint32_t> maglev_disruption(std::span<const uint32_t> old_table,
                                   std::span<const IpAddress> old_addrs,
                                   std::span<const uint32_t> new_table,
                                   std::span<const IpAddress> new_addrs) {
  if (old_table.size() != new_table.size()) {
    return Error{-EINVAL, "Maglev disruption: tables of " + std::to_string(old_table.size()) +
                              " and " + std::to_string(new_table.size()) + " entries"};
  }
  uint32_t moved = 0;
  for (size_t s = 0; s < old_table.size(); ++s) {
    if (old_table[s] >= old_addrs.size() || new_table[s] >= new_addrs.size()) {
      return Error{-EINVAL, "Maglev disruption: slot " + std::to_string(s) +
                                " holds an index outside its address list"};
    }
    if (old_addrs[old_table[s]] != new_addrs[new_table[s]]) ++moved;
  }
  return moved;
}

}  // namespace sluice
