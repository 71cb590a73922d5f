// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: bucket layout, signature matching, admission and eviction of
// the per-core flow table.
#include "dataplane/core/flow_table.hpp"

#include <sys/mman.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

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

// Bit i set iff sigs[i] == sig. Portable: each equal lane keeps only its
// own bit, then the halves are OR-folded (about 12 instructions).
inline uint32_t sig_mask_portable(const uint16_t* sigs, uint16_t sig) {
  U16x8 all;
  std::memcpy(&all, sigs, sizeof all);
  const U16x8 want = {sig, sig, sig, sig, sig, sig, sig, sig};
  const U16x8 own = {1, 2, 4, 8, 16, 32, 64, 128};
  const U16x8 bits = (U16x8)(all == want) & own;
  uint64_t w[2];
  std::memcpy(w, &bits, sizeof w);
  uint64_t x = w[0] | w[1];
  x |= x >> 32;
  x |= x >> 16;
  return static_cast<uint32_t>(x & 0xFF);
}

// The same in 3-4 vector instructions where the ISA has a mask move: SSE2
// narrows the 16-bit lanes to bytes (saturating keeps 0 and -1) and takes
// their sign bits; NEON keeps each lane's own bit and sums the lanes.
inline uint32_t sig_mask(const uint16_t* sigs, uint16_t sig) {
#if defined(__SSE2__)
  const __m128i eq = _mm_cmpeq_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sigs)),
                                     _mm_set1_epi16(static_cast<short>(sig)));
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())));
#elif defined(__ARM_NEON) && defined(__aarch64__)
  static constexpr uint16_t kOwn[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  const uint16x8_t eq = vceqq_u16(vld1q_u16(sigs), vdupq_n_u16(sig));
  return vaddvq_u16(vandq_u16(eq, vld1q_u16(kOwn)));
#else
  return sig_mask_portable(sigs, sig);
#endif
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

// Slots 0, 3, 4 and 7 lie within one cache line each (slot s starts at
// byte 64 + 48 s of its bucket); the other four straddle two.
constexpr uint32_t kOneLineSlots = 0b1001'1001;

// The free slot a new entry takes (`free` != 0): a one-line slot if any,
// so that at the loads a table runs at (half its slots or fewer) most
// entries cost a hit two lines (header and slot), not three. Branch-free:
// the straddling slots are looked at only if no one-line slot is free.
inline uint32_t first_free(uint32_t free) {
  return lowest((free & kOneLineSlots) | (free << 8)) & 7;
}

// A slot is 48 bytes, so half of them straddle two lines: fetch both ends
// (the key and the backend id, the bytes a hit reads).
template <class T>
inline void prefetch_object(const T& object) {
  __builtin_prefetch(&object, 0, 3);
  __builtin_prefetch(reinterpret_cast<const char*>(&object) + sizeof object - 5, 0, 3);
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
  uint8_t pad0;
  /// Changes that matter to an insert (entries stored or freed, probation
  /// entries hit), counted modulo 2^16: a FlowInsertHint made at one count
  /// holds while the count is the same.
  uint16_t version;
  uint8_t pad[10];
  Slot slots[kSlotsPerBucket];

  /// Slots in use whose signature is `sig`: all 8 compared at once.
  [[nodiscard]] uint32_t match(uint16_t sig) const { return sig_mask(sigs, sig) & used; }
};

uint32_t flow_table_detail::match_mask(const uint16_t sigs[8], uint16_t sig) {
  return sig_mask(sigs, sig);
}

uint32_t flow_table_detail::match_mask_portable(const uint16_t sigs[8], uint16_t sig) {
  return sig_mask_portable(sigs, sig);
}

// --- construction -----------------------------------------------------------

size_t FlowTable::bytes_needed(uint32_t capacity) {
  static_assert(sizeof(Bucket::Slot) == 48);
  static_assert(sizeof(Bucket) == 448, "8 slots of 56 bytes, header included");
  static_assert(offsetof(Bucket, slots) == kCacheLine, "slots start on the second line");
  static_assert(sizeof(FlowInsertHint) == 12);
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
  if (free != 0) return {first_free(free), Take::kFree};
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
  ++b.version;
  --size_;
}

// A key match: a live entry is a hit (refreshed, maybe promoted); an
// expired one is freed and is a miss.
inline bool FlowTable::hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote) {
  const uint32_t deadline = b.deadline[slot];
  if (passed(deadline, now_ms)) [[unlikely]] {
    free_slot(b, slot);
    ++stats_.expired;
    return false;
  }
  // Established entries (the steady state) skip this: a probation entry's
  // deadline ranks it for eviction, so its hit changes what an insert
  // would take, and outstanding hints must not hold.
  uint32_t timeout_ms = timeouts_[(b.tcp >> slot) & 1u];
  if ((b.probation >> slot) & 1u) [[unlikely]] {
    if (promote) b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
    ++b.version;
    timeout_ms = timeout(b, slot);
  }
  // Skip the store when nothing changes: a line that stays clean is never
  // written back.
  const uint32_t next = now_ms + timeout_ms;
  if (deadline != next) b.deadline[slot] = next;
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
  return lookup_burst_impl<false>(keys, hashes, n, now_ms, backend_out, promote_mask, nullptr);
}

uint64_t FlowTable::lookup_burst(const sluice_flow_key* const keys[], const uint32_t hashes[],
                                 uint32_t n, uint32_t now_ms, uint32_t backend_out[],
                                 uint64_t promote_mask, FlowInsertHint hints_out[]) {
  return lookup_burst_impl<true>(keys, hashes, n, now_ms, backend_out, promote_mask, hints_out);
}

template <bool kHints>
inline uint64_t FlowTable::lookup_burst_impl(const sluice_flow_key* const keys[],
                                             const uint32_t hashes[], uint32_t n, uint32_t now_ms,
                                             uint32_t backend_out[], uint64_t promote_mask,
                                             FlowInsertHint hints_out[]) {
  Bucket* bucket[kMaxBurst];
  uint32_t match[kMaxBurst];
  if (n > kMaxBurst) n = kMaxBurst;

  // Stage 1: start every bucket's header line on its way.
  for (uint32_t i = 0; i < n; ++i) {
    bucket[i] = &buckets_[bucket_index(hashes[i])];
    __builtin_prefetch(bucket[i], 1, 3);
  }
  // Stage 2: signatures, then the key they point at. Only the first
  // matching slot's key is prefetched: a second match is a 16-bit
  // signature collision (well under 0.1% of lookups), read on demand. A
  // bucket with no match is a miss: prefetch (for writing) the slot the
  // caller's insert() will take, and tell it which.
  for (uint32_t i = 0; i < n; ++i) {
    const Bucket& b = *bucket[i];
    const uint16_t sig = signature(hashes[i]);
    const uint32_t m = b.match(sig);
    match[i] = m;
    if (m != 0) [[likely]] {
      prefetch_object(b.slots[lowest(m)]);
      if constexpr (kHints) hints_out[i].take_ = static_cast<uint8_t>(Take::kStale);
      continue;
    }
    const Target t = choose_slot(b, now_ms);
    if (t.take != Take::kNone) prefetch_object_for_write(b.slots[t.slot]);
    if constexpr (kHints) {
      FlowInsertHint& h = hints_out[i];
      h.now_ms_ = now_ms;
      h.version_ = b.version;
      h.sig_ = sig;
      h.slot_ = static_cast<uint8_t>(t.slot);
      h.take_ = static_cast<uint8_t>(t.take);
    }
  }
  // Stage 3: compare keys, in packet order. Re-mask with `used`: an earlier
  // packet of the burst may have freed an expired slot of the same bucket.
  uint64_t hits = 0;
  for (uint32_t i = 0; i < n; ++i) {
    Bucket& b = *bucket[i];
    uint32_t backend = SLUICE_BACKEND_NONE;
    for (uint32_t m = match[i] & b.used; m != 0; m &= m - 1) {
      const uint32_t s = lowest(m);
      if (key_equal(b.slots[s].key, *keys[i])) [[likely]] {
        if (hit(b, s, now_ms, (promote_mask >> i) & 1)) [[likely]] {
          backend = b.slots[s].backend_id;
          hits |= uint64_t{1} << i;
        }
        break;
      }
    }
    backend_out[i] = backend;
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
    place(b, first_free(free), key, sig, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert_slow(b, matches, key, sig, backend_id, now_ms);
}

FlowInsert FlowTable::insert(const FlowInsertHint& hint, const sluice_flow_key& key, uint32_t hash,
                             uint32_t backend_id, uint32_t now_ms) {
  Bucket& b = buckets_[bucket_index(hash)];
  const uint16_t sig = signature(hash);
  // The hint holds if nothing changed since it was made: then its bucket
  // had no entry under this signature (so not this key) and its slot is
  // still the one a search would choose.
  const bool holds = hint.version_ == b.version && hint.sig_ == sig && hint.now_ms_ == now_ms;
  if (holds && hint.take_ == static_cast<uint8_t>(Take::kFree)) [[likely]] {
    place(b, hint.slot_, key, sig, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert_by_hint_slow(hint, key, hash, backend_id, now_ms);
}

// The rest of insert(hint, ...), out of line (and a tail call: few
// arguments) so that its common case needs no saved registers: a hint that
// holds and evicts or refuses, or none (a full search).
[[gnu::noinline]] FlowInsert FlowTable::insert_by_hint_slow(const FlowInsertHint& hint,
                                                            const sluice_flow_key& key,
                                                            uint32_t hash, uint32_t backend_id,
                                                            uint32_t now_ms) {
  Bucket& b = buckets_[bucket_index(hash)];
  const uint16_t sig = signature(hash);
  if (hint.take_ != static_cast<uint8_t>(Take::kStale) && hint.version_ == b.version &&
      hint.sig_ == sig && hint.now_ms_ == now_ms) {
    return take_slot(b, Target{hint.slot_, static_cast<Take>(hint.take_)}, key, sig, backend_id,
                     now_ms);
  }
  const uint32_t matches = b.match(sig);
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  if (matches == 0 && free != 0) {
    place(b, first_free(free), key, sig, backend_id, now_ms);
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
      ++b.version;  // a probation entry's deadline is its eviction rank
      ++stats_.replaced;
      return FlowInsert::kReplaced;
    }
    // The key's own entry died of old age: it starts over as a new flow.
    free_slot(b, i);
    ++stats_.expired;
    break;
  }

  return take_slot(b, choose_slot(b, now_ms), key, sig, backend_id, now_ms);
}

// Stores a new flow in the slot choose_slot() picked, displacing what it
// held.
[[gnu::noinline]] FlowInsert FlowTable::take_slot(Bucket& b, Target t, const sluice_flow_key& key,
                                                  uint16_t sig, uint32_t backend_id,
                                                  uint32_t now_ms) {
  switch (t.take) {
    case Take::kNone:
    case Take::kStale:
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
  ++b.version;
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

uint32_t FlowTable::count_established(uint32_t first_bucket, uint32_t bucket_count,
                                      uint64_t now_ms, std::span<uint32_t> counts) const noexcept {
  if (first_bucket >= bucket_count_) return 0;
  const uint32_t end =
      bucket_count < bucket_count_ - first_bucket ? first_bucket + bucket_count : bucket_count_;
  // The table's clock is the low 32 bits of the caller's (it wraps).
  const auto now = static_cast<uint32_t>(now_ms);
  for (uint32_t i = first_bucket; i < end; ++i) {
    const Bucket& b = buckets_[i];
    for (uint32_t m = b.used & ~uint32_t{b.probation} & kAllSlots; m != 0; m &= m - 1) {
      const uint32_t s = lowest(m);
      const uint32_t backend = b.slots[s].backend_id;
      if (!passed(b.deadline[s], now) && backend < counts.size()) ++counts[backend];
    }
  }
  return end == bucket_count_ ? 0 : end;
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
