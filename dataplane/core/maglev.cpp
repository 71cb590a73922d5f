// SPDX-License-Identifier: BSD-2-Clause
// The weighted Maglev population loop, table sizing, and the balance and
// disruption measures.
#include "dataplane/core/maglev.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

namespace sluice {

namespace {

constexpr uint32_t kLargestPrime32 = 4294967291u;

// Upper bound of the empty slots left to the tail, entries.
constexpr uint64_t kTailMax = 256;

// An offer packed in 64 bits, so the scan writes one word per probe:
// lane (rank) in bits 40-59, position j in 20-39, slot in 0-19. M, n and j
// are all below 2^20.
constexpr uint64_t kOfferJ = uint64_t{1} << 20;
constexpr uint64_t pack_offer(uint32_t lane, uint32_t j, uint32_t slot) {
  return (uint64_t{lane} << 40) | (uint64_t{j} << 20) | slot;
}
constexpr uint32_t offer_slot(uint64_t o) { return static_cast<uint32_t>(o & (kOfferJ - 1)); }
constexpr uint32_t offer_j(uint64_t o) { return static_cast<uint32_t>((o >> 20) & (kOfferJ - 1)); }
constexpr uint32_t offer_lane(uint64_t o) { return static_cast<uint32_t>(o >> 40); }

// a^-1 mod m for a prime m and 0 < a < m (extended Euclid).
uint32_t mod_inverse(uint32_t a, uint32_t m) {
  int64_t t = 0, new_t = 1;
  int64_t r = m, new_r = a;
  while (new_r != 0) {
    const int64_t q = r / new_r;
    t = std::exchange(new_t, t - q * new_t);
    r = std::exchange(new_r, r - q * new_r);
  }
  return static_cast<uint32_t>(t < 0 ? t + m : t);
}

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
  // Saturates instead of overflowing for absurd counts: the cap applies.
  const uint64_t per = kMaglevAutoEntriesPerBackend;
  const uint64_t want = n_backends > kMaglevMaxSize
                            ? uint64_t{kMaglevMaxSize}
                            : std::max<uint64_t>(kMaglevDefaultSize, n_backends * per);
  // The cap is prime, so next_prime below it never passes it.
  if (want >= kMaglevMaxSize || n_backends > kMaglevMaxSize) return kMaglevMaxSize;
  return next_prime(static_cast<uint32_t>(want));
}

Result<std::vector<uint32_t>> maglev_build(std::span<const MaglevBackend> backends,
                                           uint32_t table_size) {
  MaglevBuilder b;
  return b.build(backends, table_size);
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
                              " backends do not fit in " + std::to_string(table_size) + " entries"};
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
  // every slot, so a backend below quota always meets an empty one.
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
    Lane& l = lanes_[r];
    l = Lane{};
    l.weight = p.weight;
    l.offset = p.offset;
    l.skip = p.skip;
    l.cur = p.offset;
    l.index = i;
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
  std::nth_element(ranks_.begin(), ranks_.begin() + static_cast<ptrdiff_t>(leftover), ranks_.end(),
                   by_remainder);
  for (size_t j = 0; j < leftover; ++j) ++lanes_[ranks_[j]].left;

  active_.clear();
  b_ = 1;
  for (uint32_t r = 0; r < n; ++r) {
    if (lanes_[r].left != 0) {
      active_.push_back(r);
      b_ = std::max<uint64_t>(b_, lanes_[r].weight);
    }
  }

  m_ = m;
  filled_n_ = 0;
  filled_.assign((size_t{m} + 63) / 64, 0);
  std::vector<uint32_t> table(m, SLUICE_BACKEND_NONE);
  run_windows(table);
  run_tail(table);
  return table;
}

bool MaglevBuilder::earlier(uint64_t a, uint64_t b) const {
  return before(offer_j(a), offer_lane(a), offer_j(b), offer_lane(b));
}

bool MaglevBuilder::before(uint32_t ja, uint32_t a, uint32_t jb, uint32_t b) const {
  // (2ja + 1) / 2wa < (2jb + 1) / 2wb, cross-multiplied: j <= M < 2^21 and
  // w < 2^32, so each product stays below 2^54.
  const uint64_t x = (2 * uint64_t{ja} + 1) * lanes_[b].weight;
  const uint64_t y = (2 * uint64_t{jb} + 1) * lanes_[a].weight;
  return x < y || (x == y && a < b);
}

void MaglevBuilder::take(uint32_t slot, uint32_t lane, std::vector<uint32_t>& table) {
  filled_[slot >> 6] |= uint64_t{1} << (slot & 63);
  table[slot] = lanes_[lane].index;
  --lanes_[lane].left;
  ++filled_n_;
}

void MaglevBuilder::set_window_step(uint64_t step) {
  for (const uint32_t r : active_) {
    Lane& l = lanes_[r];
    // step * weight <= 2B * offers per window (weight <= active weight), < 2^58.
    const uint64_t d = step * l.weight;
    l.dx = d / b_;
    l.drem = d % b_;
  }
}

void MaglevBuilder::run_windows(std::vector<uint32_t>& table) {
  // Offers are taken in windows of virtual time [T, T'), T' = Q / 2B with
  // B the largest weight. Within a window the order of offers matters only
  // where two land on the same empty slot (the earlier wins) or a lane may
  // run out of quota (its offers are then decided in exact order).
  // Everything else is order-free, so most offers cost one bitmap test.
  const uint32_t m = m_;
  uint64_t active_weight = 0;
  for (const uint32_t r : active_) {
    lanes_[r].x = 0;
    lanes_[r].rem = 0;
    active_weight += lanes_[r].weight;
  }
  // Windows of about max(4096, 16 per lane) offers: few enough windows
  // that the per-lane work per window stays small, and small enough that
  // the offers stay in cache.
  const auto set_step = [&] {
    const uint64_t offers = std::max<uint64_t>(4096, 16 * uint64_t{active_.size()});
    set_window_step(std::max<uint64_t>(1, 2 * b_ * offers / active_weight));
  };
  uint64_t step_weight = active_weight;
  set_step();
  best_.assign(m, SLUICE_BACKEND_NONE);

  for (;;) {
    const uint32_t empty = m - filled_n_;
    // Past this point few slots are left and a lane probes about M / empty
    // slots per entry: the tail finds each lane's next empty slot directly.
    const uint64_t tail = std::min<uint64_t>(kTailMax, m / (2 * active_.size() + 1));
    if (empty <= tail || active_.empty()) break;

    size_t n_offers = 0;
    bool risky = false;
    const bool sparse = 10 * uint64_t{filled_n_} < 9 * uint64_t{m};
    for (const uint32_t r : active_) {
      Lane& l = lanes_[r];
      l.x += l.dx;
      l.rem += l.drem;
      if (l.rem >= b_) {
        l.rem -= b_;
        ++l.x;
      }
      // Offers j with (2j + 1) / 2w < Q / 2B, i.e. odd 2j + 1 < Q w / B.
      const uint64_t end = std::min<uint64_t>(m, (l.x + (l.rem != 0 ? 1 : 0)) / 2);
      if (end <= l.j) continue;
      if (n_offers + (end - l.j) > offers_.size()) {
        offers_.resize(std::max(2 * offers_.size(), n_offers + (end - l.j)));
      }
      uint64_t* out = offers_.data() + n_offers;
      const uint64_t* filled = filled_.data();
      size_t k = 0;
      uint32_t c = l.cur;
      const uint32_t skip = l.skip;
      uint64_t lane_j = pack_offer(r, l.j, 0);
      if (sparse) {
        for (uint64_t j = l.j; j < end; ++j) {
          // Written always, kept only if the slot is empty: no branch to miss.
          out[k] = lane_j | c;
          k += ((filled[c >> 6] >> (c & 63)) & 1u) ^ 1u;
          lane_j += kOfferJ;
          c += skip;
          c = c >= m ? c - m : c;
        }
      } else {
        // Mostly full: the branch is predictable and most probes store nothing.
        for (uint64_t j = l.j; j < end; ++j) {
          if (((filled[c >> 6] >> (c & 63)) & 1u) == 0) out[k++] = lane_j | c;
          lane_j += kOfferJ;
          c += skip;
          c = c >= m ? c - m : c;
        }
      }
      n_offers += k;
      l.cur = c;
      l.j = static_cast<uint32_t>(end);
      l.count = static_cast<uint32_t>(k);
      risky |= k > l.left;
    }
    const std::span<const uint64_t> offers(offers_.data(), n_offers);

    // Each empty slot goes to its earliest offer, except that a lane which
    // may run out of quota in this window (more offers than entries left)
    // must have its offers decided in exact order: those go first, sorted,
    // against the earliest offer of the other lanes on the same slot.
    order_.clear();
    for (uint32_t i = 0; i < offers.size(); ++i) {
      const Lane& l = lanes_[offer_lane(offers[i])];
      if (risky && l.count > l.left) {
        order_.push_back(offers[i]);
        continue;
      }
      uint32_t& b = best_[offer_slot(offers[i])];
      if (b == SLUICE_BACKEND_NONE || earlier(offers[i], offers[b])) b = i;
    }
    if (!order_.empty()) {
      std::sort(order_.begin(), order_.end(),
                [this](uint64_t a, uint64_t b) { return earlier(a, b); });
      for (const uint64_t o : order_) {
        const uint32_t slot = offer_slot(o);
        const uint32_t lane = offer_lane(o);
        const uint32_t b = best_[slot];
        if (lanes_[lane].left != 0 && ((filled_[slot >> 6] >> (slot & 63)) & 1u) == 0 &&
            (b == SLUICE_BACKEND_NONE || earlier(o, offers[b]))) {
          take(slot, lane, table);
        }
      }
    }
    for (uint32_t i = 0; i < offers.size(); ++i) {
      const uint32_t slot = offer_slot(offers[i]);
      if (best_[slot] != i) continue;
      best_[slot] = SLUICE_BACKEND_NONE;
      // Unless a lane near its quota took the slot first.
      if (((filled_[slot >> 6] >> (slot & 63)) & 1u) == 0) take(slot, offer_lane(offers[i]), table);
    }

    size_t kept = 0;
    for (const uint32_t r : active_) {
      if (lanes_[r].left != 0) {
        active_[kept++] = r;
      } else {
        active_weight -= lanes_[r].weight;
      }
    }
    active_.resize(kept);
    // Keep the offers per window up as heavy lanes finish.
    if (active_weight != 0 && 2 * active_weight < step_weight) {
      step_weight = active_weight;
      set_step();
    }
  }
}

void MaglevBuilder::aim(Lane& l) const {
  // Every empty slot lies ahead of the lane's position (a slot it passed
  // was full then, and slots never empty again): the next one it would
  // take is the empty slot with the smallest permutation position.
  uint32_t best_pos = UINT32_MAX;
  uint32_t best_slot = 0;
  for (const uint32_t s : free_) {
    const uint32_t d = s >= l.offset ? s - l.offset : s + m_ - l.offset;
    const auto pos = static_cast<uint32_t>(uint64_t{d} * l.inv % m_);
    if (pos < best_pos) {
      best_pos = pos;
      best_slot = s;
    }
  }
  l.next = best_pos;
  l.target = best_slot;
}

void MaglevBuilder::run_tail(std::vector<uint32_t>& table) {
  if (filled_n_ == m_) return;
  free_.clear();
  for (size_t w = 0; w < filled_.size(); ++w) {
    for (uint64_t e = ~filled_[w]; e != 0; e &= e - 1) {
      const auto s = static_cast<uint32_t>(64 * w + static_cast<unsigned>(std::countr_zero(e)));
      if (s < m_) free_.push_back(s);
    }
  }
  for (const uint32_t r : active_) {
    Lane& l = lanes_[r];
    l.inv = mod_inverse(l.skip, m_);
    aim(l);
  }
  while (!free_.empty()) {
    // The lane whose next offer on an empty slot comes first.
    size_t pick = 0;
    for (size_t i = 1; i < active_.size(); ++i) {
      if (before(lanes_[active_[i]].next, active_[i], lanes_[active_[pick]].next, active_[pick])) {
        pick = i;
      }
    }
    const uint32_t r = active_[pick];
    const uint32_t slot = lanes_[r].target;
    take(slot, r, table);
    *std::find(free_.begin(), free_.end(), slot) = free_.back();
    free_.pop_back();
    if (lanes_[r].left == 0) {
      active_[pick] = active_.back();
      active_.pop_back();
    }
    for (const uint32_t a : active_) {
      if (lanes_[a].target == slot) aim(lanes_[a]);
    }
  }
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
