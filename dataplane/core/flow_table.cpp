// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: bucket layout, signature matching, admission and eviction of
// the per-core flow table.
#include "dataplane/core/flow_table.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace sluice {

namespace {

constexpr uint32_t kAllSlots = (1u << FlowTable::kSlotsPerBucket) - 1;
constexpr size_t kCacheLine = 64;
constexpr size_t kHugePage = size_t{2} << 20;

// Generic vectors (GCC and Clang): SSE2 on x86-64, NEON on AArch64, plain
// scalar code elsewhere; lane i is element i whatever the byte order.
using U16x8 = uint16_t __attribute__((vector_size(16)));
using U64x2 = uint64_t __attribute__((vector_size(16)));
using U32x4 = uint32_t __attribute__((vector_size(16)));
using S32x4 = int32_t __attribute__((vector_size(16)));

// Bit i set iff lane i of a is non-zero, for lanes that are 0 or all ones:
// each lane keeps only its own bit, then the halves are OR-folded.
inline uint32_t lane_mask(U16x8 a) {
  const U16x8 own = {1, 2, 4, 8, 16, 32, 64, 128};
  const U16x8 bits = a & own;
  uint64_t w[2];
  std::memcpy(w, &bits, sizeof w);
  uint64_t x = w[0] | w[1];
  x |= x >> 32;
  x |= x >> 16;
  return static_cast<uint32_t>(x & 0xFF);
}

inline U32x4 splat(uint32_t v) { return U32x4{v, v, v, v}; }

inline U32x4 max_lanes(U32x4 a, U32x4 b) {
  const U32x4 a_wins = (U32x4)(a > b);
  return (a & a_wins) | (b & ~a_wins);
}

inline uint16_t signature(uint32_t hash) { return static_cast<uint16_t>(hash); }

// Keys are 40 bytes, 4-byte aligned: compared as 16 + 16 + 8 bytes.
inline bool key_equal(const sluice_flow_key& a, const sluice_flow_key& b) {
  static_assert(sizeof a == 2 * sizeof(U64x2) + sizeof(uint64_t));
  const auto* pa = reinterpret_cast<const char*>(&a);
  const auto* pb = reinterpret_cast<const char*>(&b);
  U64x2 a0, a1, b0, b1;
  uint64_t a2, b2;
  std::memcpy(&a0, pa, sizeof a0);
  std::memcpy(&b0, pb, sizeof b0);
  std::memcpy(&a1, pa + 16, sizeof a1);
  std::memcpy(&b1, pb + 16, sizeof b1);
  std::memcpy(&a2, pa + 32, sizeof a2);
  std::memcpy(&b2, pb + 32, sizeof b2);
  const U64x2 diff = (a0 ^ b0) | (a1 ^ b1);
  return (diff[0] | diff[1] | (a2 ^ b2)) == 0;
}

// Whether a deadline has passed: the signed distance, valid while |now -
// deadline| < 2^31 ms.
inline bool passed(uint32_t deadline, uint32_t now_ms) { return ((now_ms - deadline) >> 31) == 0; }

inline uint32_t lowest(uint32_t mask) { return static_cast<uint32_t>(__builtin_ctz(mask)); }

inline uint8_t bit(uint32_t slot) { return static_cast<uint8_t>(1u << slot); }

// A slot is 48 bytes, so half of them straddle two lines: fetch both ends.
template <class T>
inline void prefetch_object(const T& object) {
  __builtin_prefetch(&object, 0, 3);
  __builtin_prefetch(reinterpret_cast<const char*>(&object) + sizeof object - 1, 0, 3);
}

template <class T>
inline void prefetch_object_for_write(const T& object) {
  __builtin_prefetch(&object, 1, 3);
  __builtin_prefetch(reinterpret_cast<const char*>(&object) + sizeof object - 1, 1, 3);
}

Error invalid(std::string message) { return Error{-EINVAL, std::move(message)}; }

}  // namespace

/// A bucket: one header line, then its 8 slots; 448 bytes.
struct alignas(kCacheLine) FlowTable::Bucket {
  /// One slot's key and value; 48 bytes, so 8 of them fill 6 cache lines.
  struct Slot {
    sluice_flow_key key;
    uint32_t backend_id;
    uint32_t pad;
  };

  uint16_t sigs[kSlotsPerBucket];  ///< low 16 bits of each entry's flow hash
  /// When slot i's entry expires: last packet + its state's timeout, ms on
  /// the caller's clock. A deadline rather than a last-seen time, so that
  /// expiry and eviction rank need no per-slot timeout lookup.
  uint32_t deadline[kSlotsPerBucket];
  uint8_t used;       ///< bit i: slot i holds an entry
  uint8_t probation;  ///< bit i: that entry is on probation
  uint8_t tcp;        ///< bit i: its flow is TCP (tcp_idle_ms applies)
  uint8_t pad[13];
  Slot slots[kSlotsPerBucket];

  /// Slots in use whose signature is `sig`: all 8 compared at once.
  [[nodiscard]] uint32_t match(uint16_t sig) const {
    U16x8 all;
    std::memcpy(&all, sigs, sizeof all);
    const U16x8 want = {sig, sig, sig, sig, sig, sig, sig, sig};
    return lane_mask((U16x8)(all == want)) & used;
  }
};

// --- construction -----------------------------------------------------------

size_t FlowTable::bytes_needed(uint32_t capacity) {
  static_assert(sizeof(Bucket::Slot) == 48);
  static_assert(sizeof(Bucket) == 448, "8 slots of 56 bytes, header included");
  static_assert(offsetof(Bucket, slots) == kCacheLine, "slots start on the second line");
  if (capacity == 0 || capacity > kMaxCapacity) return 0;
  const size_t buckets = (size_t{capacity} + kSlotsPerBucket - 1) / kSlotsPerBucket;
  return buckets * sizeof(Bucket);
}

Result<FlowTableConfig> FlowTable::validate(const FlowTableConfig& config) {
  if (config.capacity == 0 || config.capacity > kMaxCapacity) {
    return invalid("flow table capacity " + std::to_string(config.capacity) +
                   " entries is outside 1.." + std::to_string(kMaxCapacity));
  }
  const std::pair<const char*, uint32_t> timeouts[] = {
      {"tcp_idle_ms", config.tcp_idle_ms},
      {"udp_idle_ms", config.udp_idle_ms},
      {"probation_ms", config.probation_ms},
  };
  for (const auto& [name, ms] : timeouts) {
    if (ms == 0 || ms > kMaxTimeoutMs) {
      return invalid(std::string("flow table ") + name + " " + std::to_string(ms) +
                     " is outside 1.." + std::to_string(kMaxTimeoutMs));
    }
  }
  if (config.probation_ms > config.tcp_idle_ms || config.probation_ms > config.udp_idle_ms) {
    return invalid("flow table probation_ms " + std::to_string(config.probation_ms) +
                   " is longer than an idle timeout");
  }
  FlowTableConfig rounded = config;
  rounded.capacity =
      static_cast<uint32_t>(bytes_needed(config.capacity) / sizeof(Bucket)) * kSlotsPerBucket;
  return rounded;
}

Result<FlowTable> FlowTable::create(const FlowTableConfig& config) {
  auto valid = validate(config);
  if (!valid) return valid.error();
  const size_t bytes = bytes_needed(config.capacity);
  const size_t align = bytes >= kHugePage ? kHugePage : kCacheLine;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* memory = std::aligned_alloc(align, rounded);
  if (memory == nullptr) {
    return Error{-ENOMEM, "flow table: cannot allocate " + std::to_string(rounded) + " bytes"};
  }
#if defined(MADV_HUGEPAGE)
  // Best effort: 2 MiB pages cut the TLB misses of random bucket accesses.
  if (align == kHugePage) (void)madvise(memory, rounded, MADV_HUGEPAGE);
#endif
  // Zeroing also faults every page in now, not on the packet path.
  std::memset(memory, 0, rounded);
  const auto buckets = static_cast<uint32_t>(bytes / sizeof(Bucket));
  return FlowTable(valid.value(), static_cast<Bucket*>(memory), buckets, true);
}

Result<FlowTable> FlowTable::create_in(const FlowTableConfig& config, std::span<std::byte> memory) {
  auto valid = validate(config);
  if (!valid) return valid.error();
  const size_t bytes = bytes_needed(config.capacity);
  if (reinterpret_cast<uintptr_t>(memory.data()) % kCacheLine != 0) {
    return invalid("flow table memory is not 64-byte aligned");
  }
  if (memory.size() < bytes) {
    return invalid("flow table memory of " + std::to_string(memory.size()) + " bytes is under " +
                   std::to_string(bytes));
  }
  std::memset(memory.data(), 0, bytes);
  const auto buckets = static_cast<uint32_t>(bytes / sizeof(Bucket));
  return FlowTable(valid.value(), reinterpret_cast<Bucket*>(memory.data()), buckets, false);
}

FlowTable::FlowTable(const FlowTableConfig& config, Bucket* buckets, uint32_t bucket_count,
                     bool owned)
    : config_(config),
      timeouts_{config.udp_idle_ms, config.tcp_idle_ms, config.probation_ms, config.probation_ms},
      buckets_(buckets),
      bucket_count_(bucket_count),
      owned_(owned) {}

FlowTable::FlowTable(FlowTable&& other) noexcept
    : config_(other.config_),
      timeouts_{other.timeouts_[0], other.timeouts_[1], other.timeouts_[2], other.timeouts_[3]},
      buckets_(std::exchange(other.buckets_, nullptr)),
      bucket_count_(std::exchange(other.bucket_count_, 0)),
      size_(std::exchange(other.size_, 0)),
      sweep_cursor_(std::exchange(other.sweep_cursor_, 0)),
      owned_(std::exchange(other.owned_, false)),
      stats_(std::exchange(other.stats_, {})) {}

FlowTable& FlowTable::operator=(FlowTable&& other) noexcept {
  if (this != &other) {
    if (owned_) std::free(buckets_);
    config_ = other.config_;
    std::memcpy(timeouts_, other.timeouts_, sizeof timeouts_);
    buckets_ = std::exchange(other.buckets_, nullptr);
    bucket_count_ = std::exchange(other.bucket_count_, 0);
    size_ = std::exchange(other.size_, 0);
    sweep_cursor_ = std::exchange(other.sweep_cursor_, 0);
    owned_ = std::exchange(other.owned_, false);
    stats_ = std::exchange(other.stats_, {});
  }
  return *this;
}

FlowTable::~FlowTable() {
  if (owned_) std::free(buckets_);
}

// --- slot state -------------------------------------------------------------

inline uint32_t FlowTable::timeout(const Bucket& b, uint32_t slot) const {
  return timeouts_[(((b.probation >> slot) & 1u) << 1) | ((b.tcp >> slot) & 1u)];
}

inline bool FlowTable::expired(const Bucket& b, uint32_t slot, uint32_t now_ms) const {
  return passed(b.deadline[slot], now_ms);
}

inline FlowTable::Target FlowTable::choose_slot(const Bucket& b, uint32_t now_ms) const {
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  if (free != 0) return {lowest(free), Take::kFree};
  // One 32-bit rank per slot, and the largest wins. High bits: how far
  // past its deadline the entry is, sign bit flipped, so expired entries
  // (any state) outrank live ones, most overdue first; among live probation
  // entries (one timeout) the nearest deadline is the stalest. Live
  // established entries rank 0: never taken. Low 3 bits: 7 - slot, so ranks
  // are unique and a tie (within 8 ms) takes the lowest slot. Computed for
  // 4 slots at a time without a branch: slot states are random, a branch
  // per slot would mispredict.
  const U32x4 probation = splat(b.probation);
  auto rank = [&](uint32_t first, U32x4 own_bit, U32x4 reverse_slot) {
    U32x4 deadline;
    std::memcpy(&deadline, &b.deadline[first], sizeof deadline);
    const U32x4 overdue = (splat(now_ms) - deadline) ^ splat(0x80000000u);
    const U32x4 expired = (U32x4)((S32x4)overdue < S32x4{});
    const U32x4 on_probation = (U32x4)((probation & own_bit) != U32x4{});
    return ((overdue & splat(~7u)) | reverse_slot) & (expired | on_probation);
  };
  const U32x4 best4 = max_lanes(rank(0, U32x4{1, 2, 4, 8}, U32x4{7, 6, 5, 4}),
                                rank(4, U32x4{16, 32, 64, 128}, U32x4{3, 2, 1, 0}));
  uint32_t lanes[4];
  std::memcpy(lanes, &best4, sizeof lanes);
  const uint32_t best01 = lanes[0] > lanes[1] ? lanes[0] : lanes[1];
  const uint32_t best23 = lanes[2] > lanes[3] ? lanes[2] : lanes[3];
  const uint32_t best = best01 > best23 ? best01 : best23;
  if (best == 0) return {0, Take::kNone};
  return {7 - (best & 7), (best >> 31) ? Take::kExpired : Take::kProbation};
}

inline void FlowTable::free_slot(Bucket& b, uint32_t slot) {
  b.used = static_cast<uint8_t>(b.used & ~bit(slot));
  b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
  --size_;
}

// A key match: a live entry is a hit (refreshed, maybe promoted); an
// expired one is freed and is a miss.
inline bool FlowTable::hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote) {
  if (expired(b, slot, now_ms)) {
    free_slot(b, slot);
    ++stats_.expired;
    return false;
  }
  if (promote && ((b.probation >> slot) & 1u)) {
    b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
  }
  // Skip the store when nothing changes: a line that stays clean is never
  // written back.
  const uint32_t deadline = now_ms + timeout(b, slot);
  if (b.deadline[slot] != deadline) b.deadline[slot] = deadline;
  return true;
}

// --- packet path ------------------------------------------------------------

uint32_t FlowTable::lookup(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms,
                           bool promote) {
  Bucket& b = buckets_[bucket_index(hash)];
  for (uint32_t m = b.match(signature(hash)); m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (key_equal(b.slots[i].key, key)) {
      return hit(b, i, now_ms, promote) ? b.slots[i].backend_id : SLUICE_BACKEND_NONE;
    }
  }
  return SLUICE_BACKEND_NONE;
}

uint64_t FlowTable::lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[],
                                 uint32_t n, uint32_t now_ms, uint32_t backend_out[],
                                 uint64_t promote_mask) {
  Bucket* bucket[kMaxBurst];
  uint32_t match[kMaxBurst];
  if (n > kMaxBurst) n = kMaxBurst;

  // Stage 1: start every bucket's header line on its way.
  for (uint32_t i = 0; i < n; ++i) {
    bucket[i] = &buckets_[bucket_index(hashes[i])];
    __builtin_prefetch(bucket[i], 1, 3);
  }
  // Stage 2: signatures, then the keys they point at. A bucket with no
  // match is a miss: prefetch the slot the caller's insert() will write.
  for (uint32_t i = 0; i < n; ++i) {
    const Bucket& b = *bucket[i];
    const uint32_t m = b.match(signature(hashes[i]));
    match[i] = m;
    if (m == 0) {
      const Target t = choose_slot(b, now_ms);
      if (t.take != Take::kNone) prefetch_object_for_write(b.slots[t.slot]);
    }
    for (uint32_t k = m; k != 0; k &= k - 1) prefetch_object(b.slots[lowest(k)]);
  }
  // Stage 3: compare keys, in packet order. Re-mask with `used`: an earlier
  // packet of the burst may have freed an expired slot of the same bucket.
  uint64_t hits = 0;
  for (uint32_t i = 0; i < n; ++i) {
    Bucket& b = *bucket[i];
    backend_out[i] = SLUICE_BACKEND_NONE;
    for (uint32_t m = match[i] & b.used; m != 0; m &= m - 1) {
      const uint32_t s = lowest(m);
      if (key_equal(b.slots[s].key, *keys[i])) {
        if (hit(b, s, now_ms, (promote_mask >> i) & 1)) {
          backend_out[i] = b.slots[s].backend_id;
          hits |= uint64_t{1} << i;
        }
        break;
      }
    }
  }
  return hits;
}

FlowInsert FlowTable::insert(const sluice_flow_key& key, uint32_t hash, uint32_t backend_id,
                             uint32_t now_ms) {
  Bucket& b = buckets_[bucket_index(hash)];
  const uint16_t sig = signature(hash);
  const uint32_t matches = b.match(sig);
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  // The common case inline and lean: nothing under this signature (so not
  // a known flow) and a free slot.
  if (matches == 0 && free != 0) [[likely]] {
    place(b, lowest(free), key, sig, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert_slow(b, matches, key, sig, backend_id, now_ms);
}

[[gnu::noinline]] FlowInsert FlowTable::insert_slow(Bucket& b, uint32_t matches,
                                                    const sluice_flow_key& key, uint16_t sig,
                                                    uint32_t backend_id, uint32_t now_ms) {
  for (uint32_t m = matches; m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (!key_equal(b.slots[i].key, key)) continue;
    if (!expired(b, i, now_ms)) {
      b.slots[i].backend_id = backend_id;
      b.deadline[i] = now_ms + timeout(b, i);
      ++stats_.replaced;
      return FlowInsert::kReplaced;
    }
    // The key's own entry died of old age: it starts over as a new flow.
    free_slot(b, i);
    ++stats_.expired;
    break;
  }

  const Target t = choose_slot(b, now_ms);
  switch (t.take) {
    case Take::kNone:
      ++stats_.insert_failed;
      return FlowInsert::kFull;
    case Take::kExpired:
      ++stats_.evicted_expired;
      free_slot(b, t.slot);
      break;
    case Take::kProbation:
      ++stats_.evicted_probation;
      free_slot(b, t.slot);
      break;
    case Take::kFree:
      break;
  }
  place(b, t.slot, key, sig, backend_id, now_ms);
  return FlowInsert::kInserted;
}

inline void FlowTable::place(Bucket& b, uint32_t slot, const sluice_flow_key& key, uint16_t sig,
                             uint32_t backend_id, uint32_t now_ms) {
  const uint8_t own = bit(slot);
  b.slots[slot].key = key;
  b.slots[slot].backend_id = backend_id;
  b.sigs[slot] = sig;
  b.deadline[slot] = now_ms + config_.probation_ms;
  b.used = static_cast<uint8_t>(b.used | own);
  b.probation = static_cast<uint8_t>(b.probation | own);
  const uint8_t tcp = key.proto == SLUICE_IPPROTO_TCP ? own : 0;
  b.tcp = static_cast<uint8_t>((b.tcp & ~own) | tcp);
  ++size_;
  ++stats_.inserts;
}

bool FlowTable::erase(const sluice_flow_key& key, uint32_t hash) {
  Bucket& b = buckets_[bucket_index(hash)];
  for (uint32_t m = b.match(signature(hash)); m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (key_equal(b.slots[i].key, key)) {
      free_slot(b, i);
      return true;
    }
  }
  return false;
}

// --- housekeeping -----------------------------------------------------------

uint32_t FlowTable::sweep(uint32_t now_ms, uint32_t max_buckets) {
  uint32_t freed = 0;
  const uint32_t visits = max_buckets < bucket_count_ ? max_buckets : bucket_count_;
  for (uint32_t v = 0; v < visits; ++v) {
    Bucket& b = buckets_[sweep_cursor_];
    for (uint32_t m = b.used; m != 0; m &= m - 1) {
      const uint32_t i = lowest(m);
      if (expired(b, i, now_ms)) {
        free_slot(b, i);
        ++freed;
      }
    }
    sweep_cursor_ = sweep_cursor_ + 1 == bucket_count_ ? 0 : sweep_cursor_ + 1;
  }
  stats_.expired += freed;
  return freed;
}

std::optional<FlowEntry> FlowTable::find(const sluice_flow_key& key, uint32_t hash) const {
  const Bucket& b = buckets_[bucket_index(hash)];
  for (uint32_t m = b.match(signature(hash)); m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (key_equal(b.slots[i].key, key)) {
      const uint8_t state =
          (b.probation & bit(i)) ? SLUICE_FLOW_PROBATION : SLUICE_FLOW_ESTABLISHED;
      return FlowEntry{b.slots[i].backend_id, b.deadline[i] - timeout(b, i), state};
    }
  }
  return std::nullopt;
}

}  // namespace sluice
