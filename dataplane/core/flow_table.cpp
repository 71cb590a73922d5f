// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: line and bucket layouts, key and signature matching, admission
// and eviction of the per-core flow table.
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

constexpr uint32_t kAllSlots = (1u << FlowTable::kIpv6SlotsPerBucket) - 1;
constexpr uint32_t kLineSlots = (1u << FlowTable::kSlotsPerBucket) - 1;
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

// An IPv4 line's 3 keys against one: words 0-2 sources, 3-5 destinations,
// 6-8 port pairs (word 9 is read, lane 3 of the last load, and dropped).
// Three overlapping 16-byte loads put slot i's 3 words in lane i of each.
inline U32x4 line_eq(const uint32_t* words, uint32_t src, uint32_t dst, uint32_t ports) {
  U32x4 s, d, p;
  std::memcpy(&s, words, sizeof s);
  std::memcpy(&d, words + 3, sizeof d);
  std::memcpy(&p, words + 6, sizeof p);
  return (U32x4)(s == splat(src)) & (U32x4)(d == splat(dst)) & (U32x4)(p == splat(ports));
}

inline uint32_t line_mask_portable(const uint32_t* words, uint32_t src, uint32_t dst,
                                   uint32_t ports) {
  const U32x4 bits = line_eq(words, src, dst, ports) & U32x4{1, 2, 4, 0};
  return bits[0] | bits[1] | bits[2];
}

// The same with the ISA's mask move: SSE2 takes the lanes' sign bits, NEON
// keeps each lane's own bit and sums the lanes.
inline uint32_t line_mask(const uint32_t* words, uint32_t src, uint32_t dst, uint32_t ports) {
#if defined(__SSE2__)
  const auto* w = reinterpret_cast<const __m128i*>(words);
  const __m128i s = _mm_cmpeq_epi32(_mm_loadu_si128(w), _mm_set1_epi32(static_cast<int>(src)));
  const __m128i d = _mm_cmpeq_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 3)),
                                    _mm_set1_epi32(static_cast<int>(dst)));
  const __m128i p = _mm_cmpeq_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 6)),
                                    _mm_set1_epi32(static_cast<int>(ports)));
  const __m128i all = _mm_and_si128(_mm_and_si128(s, d), p);
  return static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(all))) & kLineSlots;
#elif defined(__ARM_NEON) && defined(__aarch64__)
  static constexpr uint32_t kOwn[4] = {1, 2, 4, 0};
  const uint32x4_t s = vceqq_u32(vld1q_u32(words), vdupq_n_u32(src));
  const uint32x4_t d = vceqq_u32(vld1q_u32(words + 3), vdupq_n_u32(dst));
  const uint32x4_t p = vceqq_u32(vld1q_u32(words + 6), vdupq_n_u32(ports));
  return vaddvq_u32(vandq_u32(vandq_u32(vandq_u32(s, d), p), vld1q_u32(kOwn)));
#else
  return line_mask_portable(words, src, dst, ports);
#endif
}

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

/// An IPv4 line: 3 entries of key, backend id and deadline, and their
/// state; 64 bytes, one cache line.
struct alignas(kCacheLine) FlowTable::Line {
  /// Per slot i: words[i] source, [3 + i] destination, [6 + i] port pair
  /// (network order, as in sluice_flow_key), [9 + i] backend id, [12 + i]
  /// deadline (last packet + its state's timeout, ms). One array, so the
  /// key compare's 16-byte loads stay inside it.
  uint32_t words[15];
  /// Bits 0-2: slot i holds an entry; bits 4-6: that entry's own line is
  /// the buddy (it overflowed to here).
  uint8_t used;
  /// Bits 0-2: slot i's entry is on probation; bits 4-6: its flow is TCP.
  uint8_t state;
  /// This line's flows that live in the buddy line, 0..3.
  uint8_t out;
  /// Changes that matter to an insert (entries stored or freed, probation
  /// entries hit), modulo 2^8; with the bytes above, the word a
  /// FlowInsertHint checks.
  uint8_t version;

  [[nodiscard]] uint32_t meta() const {
    uint32_t m;
    std::memcpy(&m, &used, sizeof m);
    return m;
  }
  [[nodiscard]] uint32_t vacant() const { return ~uint32_t{used} & kLineSlots; }
  [[nodiscard]] uint32_t backend(uint32_t slot) const { return words[9 + slot]; }
  [[nodiscard]] uint32_t deadline(uint32_t slot) const { return words[12 + slot]; }
  /// Slots holding `k`: 3 keys compared at once, protocol by its bit.
  [[nodiscard]] uint32_t match(const Key4& k) const;
};

/// An IPv4 TCP/UDP key in a line's form.
struct FlowTable::Key4 {
  uint32_t src;    ///< client address, network order
  uint32_t dst;    ///< VIP address, network order
  uint32_t ports;  ///< sport, dport, network order
  uint32_t tcp;    ///< 0b111 for TCP, 0 for UDP: compared with a line's TCP bits
};

inline uint32_t FlowTable::Line::match(const Key4& k) const {
  const uint32_t same_proto = ~((uint32_t{state} >> 4) ^ k.tcp);
  return line_mask(words, k.src, k.dst, k.ports) & used & same_proto;
}

/// An IPv6 (or other) bucket: one header line, then its 8 slots; 448 bytes.
struct alignas(kCacheLine) FlowTable::Bucket {
  /// One slot's key and value; 48 bytes, so 8 of them fill 6 cache lines.
  struct Slot {
    sluice_flow_key key;
    uint32_t backend_id;
    uint32_t pad;
  };

  uint16_t sigs[kIpv6SlotsPerBucket];  ///< low 16 bits of each entry's flow hash
  /// When slot i's entry expires: last packet + its state's timeout, ms on
  /// the caller's clock. A deadline rather than a last-seen time, so that
  /// expiry and eviction rank need no per-slot timeout lookup.
  uint32_t deadline[kIpv6SlotsPerBucket];
  uint8_t used;       ///< bit i: slot i holds an entry
  uint8_t probation;  ///< bit i: that entry is on probation
  uint8_t tcp;        ///< bit i: its flow is TCP (tcp_idle_ms applies)
  uint8_t pad[13];
  Slot slots[kIpv6SlotsPerBucket];

  /// Slots in use whose signature is `sig`: all 8 compared at once.
  [[nodiscard]] uint32_t match(uint16_t sig) const { return sig_mask(sigs, sig) & used; }
};

namespace {

// Keys the IPv4 lines hold: every IPv4 key the parser makes.
inline bool compact(const sluice_flow_key& k) {
  return k.family == SLUICE_FAMILY_IPV4 &&
         (k.proto == SLUICE_IPPROTO_TCP || k.proto == SLUICE_IPPROTO_UDP);
}

}  // namespace

uint32_t flow_table_detail::match_mask(const uint16_t sigs[8], uint16_t sig) {
  return sig_mask(sigs, sig);
}

uint32_t flow_table_detail::match_mask_portable(const uint16_t sigs[8], uint16_t sig) {
  return sig_mask_portable(sigs, sig);
}

uint32_t flow_table_detail::line_mask(const uint32_t words[10], uint32_t src, uint32_t dst,
                                      uint32_t ports) {
  return sluice::line_mask(words, src, dst, ports);
}

uint32_t flow_table_detail::line_mask_portable(const uint32_t words[10], uint32_t src,
                                               uint32_t dst, uint32_t ports) {
  return sluice::line_mask_portable(words, src, dst, ports);
}

// --- construction -----------------------------------------------------------

uint32_t FlowTable::line_count_for(uint32_t capacity) {
  // Whole pairs of lines.
  return (capacity + 2 * kSlotsPerBucket - 1) / (2 * kSlotsPerBucket) * 2;
}

uint32_t FlowTable::bucket6_count_for(uint32_t capacity) {
  // Half the rounded IPv4 capacity (at least 6), in whole buckets.
  const uint32_t ipv6 = line_count_for(capacity) * kSlotsPerBucket / 2;
  return (ipv6 + kIpv6SlotsPerBucket - 1) / kIpv6SlotsPerBucket;
}

size_t FlowTable::bytes_needed(uint32_t capacity) {
  static_assert(sizeof(Line) == kCacheLine, "a line is one cache line");
  static_assert(offsetof(Line, used) == 60);
  static_assert(sizeof(Bucket::Slot) == 48);
  static_assert(sizeof(Bucket) == 448, "8 slots of 56 bytes, header included");
  static_assert(offsetof(Bucket, slots) == kCacheLine, "slots start on the second line");
  static_assert(sizeof(FlowInsertHint) == 20);
  if (capacity == 0 || capacity > kMaxCapacity) return 0;
  return size_t{line_count_for(capacity)} * sizeof(Line) +
         size_t{bucket6_count_for(capacity)} * sizeof(Bucket);
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
  rounded.capacity = line_count_for(config.capacity) * kSlotsPerBucket;
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
  // Best effort: 2 MiB pages cut the TLB misses of random line accesses.
  if (align == kHugePage) (void)madvise(memory, rounded, MADV_HUGEPAGE);
#endif
  // Zeroing also faults every page in now, not on the packet path.
  std::memset(memory, 0, rounded);
  return FlowTable(valid.value(), memory, line_count_for(config.capacity),
                   bucket6_count_for(config.capacity), true);
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
  return FlowTable(valid.value(), memory.data(), line_count_for(config.capacity),
                   bucket6_count_for(config.capacity), false);
}

FlowTable::FlowTable(const FlowTableConfig& config, void* memory, uint32_t line_count,
                     uint32_t bucket6_count, bool owned)
    : config_(config),
      timeouts_{config.udp_idle_ms, config.tcp_idle_ms, config.probation_ms, config.probation_ms},
      lines_(static_cast<Line*>(memory)),
      buckets_(reinterpret_cast<Bucket*>(static_cast<Line*>(memory) + line_count)),
      line_count_(line_count),
      bucket6_count_(bucket6_count),
      owned_(owned) {}

FlowTable::FlowTable(FlowTable&& other) noexcept
    : config_(other.config_),
      timeouts_{other.timeouts_[0], other.timeouts_[1], other.timeouts_[2], other.timeouts_[3]},
      lines_(std::exchange(other.lines_, nullptr)),
      buckets_(std::exchange(other.buckets_, nullptr)),
      line_count_(std::exchange(other.line_count_, 0)),
      bucket6_count_(std::exchange(other.bucket6_count_, 0)),
      size_(std::exchange(other.size_, 0)),
      sweep_cursor_(std::exchange(other.sweep_cursor_, 0)),
      owned_(std::exchange(other.owned_, false)),
      stats_(std::exchange(other.stats_, {})) {}

FlowTable& FlowTable::operator=(FlowTable&& other) noexcept {
  if (this != &other) {
    if (owned_) std::free(lines_);
    config_ = other.config_;
    std::memcpy(timeouts_, other.timeouts_, sizeof timeouts_);
    lines_ = std::exchange(other.lines_, nullptr);
    buckets_ = std::exchange(other.buckets_, nullptr);
    line_count_ = std::exchange(other.line_count_, 0);
    bucket6_count_ = std::exchange(other.bucket6_count_, 0);
    size_ = std::exchange(other.size_, 0);
    sweep_cursor_ = std::exchange(other.sweep_cursor_, 0);
    owned_ = std::exchange(other.owned_, false);
    stats_ = std::exchange(other.stats_, {});
  }
  return *this;
}

FlowTable::~FlowTable() {
  if (owned_) std::free(lines_);
}

// --- IPv4 lines: entry state ------------------------------------------------


FlowTable::Key4 FlowTable::key4(const sluice_flow_key& key) {
  Key4 k;
  std::memcpy(&k.src, key.src.bytes, sizeof k.src);
  std::memcpy(&k.dst, key.dst.bytes, sizeof k.dst);
  std::memcpy(&k.ports, &key.sport, sizeof k.ports);
  k.tcp = key.proto == SLUICE_IPPROTO_TCP ? kLineSlots : 0;
  return k;
}

inline FlowTable::Line& FlowTable::buddy(const Line& l) const {
  return lines_[static_cast<size_t>(&l - lines_) ^ 1];
}

inline uint32_t FlowTable::line_timeout(const Line& l, uint32_t slot) const {
  return timeouts_[(((uint32_t{l.state} >> slot) & 1u) << 1) | ((l.state >> (4 + slot)) & 1u)];
}

inline void FlowTable::free_entry(Line& l, uint32_t slot) {
  const uint32_t own = 1u << slot;
  if (l.used & (own << 4)) {
    Line& home = buddy(l);
    --home.out;
    ++home.version;
  }
  l.used = static_cast<uint8_t>(l.used & ~(own | own << 4));
  l.state = static_cast<uint8_t>(l.state & ~own);
  ++l.version;
  --size_;
}

// A key match: a live entry is a hit (refreshed, maybe promoted); an
// expired one is freed and is a miss.
inline bool FlowTable::hit(Line& l, uint32_t slot, uint32_t now_ms, bool promote) {
  const uint32_t deadline = l.deadline(slot);
  if (passed(deadline, now_ms)) [[unlikely]] {
    free_entry(l, slot);
    ++stats_.expired;
    return false;
  }
  // Established entries (the steady state) skip this: a probation entry's
  // deadline ranks it for eviction, so its hit changes what an insert
  // would take, and outstanding hints must not hold.
  uint32_t timeout_ms = timeouts_[(l.state >> (4 + slot)) & 1u];
  if ((l.state >> slot) & 1u) [[unlikely]] {
    if (promote) l.state = static_cast<uint8_t>(l.state & ~(1u << slot));
    ++l.version;
    timeout_ms = line_timeout(l, slot);
  }
  // Skip the store when nothing changes: a line that stays clean is never
  // written back.
  const uint32_t next = now_ms + timeout_ms;
  if (deadline != next) l.words[12 + slot] = next;
  return true;
}

// Stores a new flow in slot `slot` of `l`, which is its own line `home` or
// home's buddy.
inline void FlowTable::place(Line& l, Line& home, uint32_t slot, const Key4& k,
                             uint32_t backend_id, uint32_t now_ms) {
  const uint32_t own = 1u << slot;
  l.words[slot] = k.src;
  l.words[3 + slot] = k.dst;
  l.words[6 + slot] = k.ports;
  l.words[9 + slot] = backend_id;
  l.words[12 + slot] = now_ms + config_.probation_ms;
  const bool spilled = &l != &home;
  l.used = static_cast<uint8_t>(l.used | own | (spilled ? own << 4 : 0));
  l.state = static_cast<uint8_t>((l.state & ~(own << 4)) | own | ((k.tcp & own) << 4));
  ++l.version;
  if (spilled) {
    ++home.out;
    ++home.version;
  }
  ++size_;
  ++stats_.inserts;
}

// The slot a new flow of line `home` takes (0..2 in home, 3..5 in `other`,
// its buddy): a free one, own line first; else the highest ranked of the
// 6. Rank: one 32-bit value per slot, and the largest wins. High bits: how
// far past its deadline the entry is, sign bit flipped, so expired entries
// (any state) outrank live ones, most overdue first; among live probation
// entries (one timeout) the nearest deadline is the stalest. Live
// established entries rank 0: never taken. Low 3 bits: 7 - slot, so ranks
// are unique and a tie (within 8 ms) takes the lowest slot. Computed for a
// line at a time without a branch: slot states are random.
inline FlowTable::Target FlowTable::choose_pair(const Line& home, const Line& other,
                                                uint32_t now_ms) const {
  if (const uint32_t free = home.vacant(); free != 0) return {lowest(free), Take::kFree};
  if (const uint32_t free = other.vacant(); free != 0) return {3 + lowest(free), Take::kFree};
  auto rank = [&](const Line& l, U32x4 reverse_slot) {
    U32x4 deadline;  // lane 3 is the state word: masked out below
    std::memcpy(&deadline, &l.words[12], sizeof(uint32_t) * 3);
    deadline[3] = 0;
    const U32x4 overdue = (splat(now_ms) - deadline) ^ splat(0x80000000u);
    const U32x4 expired = (U32x4)((S32x4)overdue < S32x4{});
    const U32x4 on_probation = (U32x4)((splat(l.state) & U32x4{1, 2, 4, 0}) != U32x4{});
    return ((overdue & splat(~7u)) | reverse_slot) & (expired | on_probation) &
           U32x4{~0u, ~0u, ~0u, 0};
  };
  const U32x4 best3 = max_lanes(rank(home, U32x4{7, 6, 5, 0}), rank(other, U32x4{4, 3, 2, 0}));
  const uint32_t best01 = best3[0] > best3[1] ? best3[0] : best3[1];
  const uint32_t best = best01 > best3[2] ? best01 : best3[2];
  if (best == 0) return {0, Take::kNone};
  return {7 - (best & 7), (best >> 31) ? Take::kExpired : Take::kProbation};
}

inline void FlowTable::hint_pair(FlowInsertHint& h, const Line& home, uint32_t now_ms) const {
  const Line& other = buddy(home);
  const Target t = choose_pair(home, other, now_ms);
  h.now_ms_ = now_ms;
  h.home_meta_ = home.meta();
  h.buddy_meta_ = other.meta();
  h.slot_ = static_cast<uint8_t>(t.slot);
  h.take_ = static_cast<uint8_t>(t.take);
  h.pair_ = t.slot >= kSlotsPerBucket || t.take != Take::kFree;
}

// --- IPv4 lines: packet path ------------------------------------------------

inline uint32_t FlowTable::lookup4(const Key4& k, uint32_t hash, uint32_t now_ms, bool promote) {
  Line* l = &lines_[bucket_index(hash)];
  uint32_t m = l->match(k);
  if (m == 0) {
    if (l->out == 0) return SLUICE_BACKEND_NONE;
    l = &buddy(*l);
    m = l->match(k);
    if (m == 0) return SLUICE_BACKEND_NONE;
  }
  const uint32_t s = lowest(m);
  return hit(*l, s, now_ms, promote) ? l->backend(s) : SLUICE_BACKEND_NONE;
}

inline FlowInsert FlowTable::insert4(const Key4& k, uint32_t hash, uint32_t backend_id,
                                     uint32_t now_ms) {
  Line& home = lines_[bucket_index(hash)];
  const uint32_t free = home.vacant();
  // The common case inline and lean: not in its line, none of the line's
  // flows overflowed (so not in the buddy either), and a free slot.
  if (home.match(k) == 0 && home.out == 0 && free != 0) [[likely]] {
    place(home, home, lowest(free), k, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert4_slow(home, k, backend_id, now_ms);
}

[[gnu::noinline]] FlowInsert FlowTable::insert4_slow(Line& home, const Key4& k,
                                                     uint32_t backend_id, uint32_t now_ms) {
  Line* l = &home;
  uint32_t m = home.match(k);
  if (m == 0 && home.out != 0) {
    l = &buddy(home);
    m = l->match(k);
  }
  if (m != 0) {
    const uint32_t s = lowest(m);
    if (!passed(l->deadline(s), now_ms)) {
      l->words[9 + s] = backend_id;
      l->words[12 + s] = now_ms + line_timeout(*l, s);
      ++l->version;  // a probation entry's deadline is its eviction rank
      ++stats_.replaced;
      return FlowInsert::kReplaced;
    }
    // The key's own entry died of old age: it starts over as a new flow.
    free_entry(*l, s);
    ++stats_.expired;
  }
  return take4(home, choose_pair(home, buddy(home), now_ms), k, backend_id, now_ms);
}

// Stores a new flow in the slot choose_pair() picked, displacing what it
// held.
[[gnu::noinline]] FlowInsert FlowTable::take4(Line& home, Target t, const Key4& k,
                                              uint32_t backend_id, uint32_t now_ms) {
  Line& l = t.slot < kSlotsPerBucket ? home : buddy(home);
  const uint32_t s = t.slot < kSlotsPerBucket ? t.slot : t.slot - kSlotsPerBucket;
  switch (t.take) {
    case Take::kNone:
    case Take::kStale:
      ++stats_.insert_failed;
      return FlowInsert::kFull;
    case Take::kExpired:
      ++stats_.evicted_expired;
      free_entry(l, s);
      break;
    case Take::kProbation:
      ++stats_.evicted_probation;
      free_entry(l, s);
      break;
    case Take::kFree:
      break;
  }
  place(l, home, s, k, backend_id, now_ms);
  return FlowInsert::kInserted;
}

// The rest of insert(hint, ...) for IPv4, out of line: a hint that holds
// and takes the buddy's slot or evicts or refuses, or none (a full search).
[[gnu::noinline]] FlowInsert FlowTable::insert4_by_hint_slow(const FlowInsertHint& hint,
                                                             Line& home, const Key4& k,
                                                             uint32_t hash, uint32_t backend_id,
                                                             uint32_t now_ms) {
  if (hint.take_ != static_cast<uint8_t>(Take::kStale) && hint.hash_ == hash &&
      hint.home_meta_ == home.meta() &&
      hint.now_ms_ == now_ms && (hint.pair_ == 0 || hint.buddy_meta_ == buddy(home).meta())) {
    return take4(home, Target{hint.slot_, static_cast<Take>(hint.take_)}, k, backend_id, now_ms);
  }
  return insert4(k, hash, backend_id, now_ms);
}

// --- IPv6 (and other) buckets -----------------------------------------------

inline uint32_t FlowTable::timeout(const Bucket& b, uint32_t slot) const {
  return timeouts_[(((b.probation >> slot) & 1u) << 1) | ((b.tcp >> slot) & 1u)];
}

inline bool FlowTable::expired(const Bucket& b, uint32_t slot, uint32_t now_ms) const {
  return passed(b.deadline[slot], now_ms);
}

// As choose_pair(), for a bucket's 8 slots.
inline FlowTable::Target FlowTable::choose_slot(const Bucket& b, uint32_t now_ms) const {
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  if (free != 0) return {first_free(free), Take::kFree};
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
  const uint32_t best01 = best4[0] > best4[1] ? best4[0] : best4[1];
  const uint32_t best23 = best4[2] > best4[3] ? best4[2] : best4[3];
  const uint32_t best = best01 > best23 ? best01 : best23;
  if (best == 0) return {0, Take::kNone};
  return {7 - (best & 7), (best >> 31) ? Take::kExpired : Take::kProbation};
}

inline void FlowTable::free_slot(Bucket& b, uint32_t slot) {
  b.used = static_cast<uint8_t>(b.used & ~bit(slot));
  b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
  --size_;
}

inline bool FlowTable::hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote) {
  const uint32_t deadline = b.deadline[slot];
  if (passed(deadline, now_ms)) [[unlikely]] {
    free_slot(b, slot);
    ++stats_.expired;
    return false;
  }
  if (promote) b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
  const uint32_t next = now_ms + timeout(b, slot);
  if (deadline != next) b.deadline[slot] = next;
  return true;
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

inline uint32_t FlowTable::lookup6(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms,
                                   bool promote) {
  Bucket& b = buckets_[ipv6_bucket_index(hash)];
  for (uint32_t m = b.match(signature(hash)); m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (key_equal(b.slots[i].key, key)) {
      return hit(b, i, now_ms, promote) ? b.slots[i].backend_id : SLUICE_BACKEND_NONE;
    }
  }
  return SLUICE_BACKEND_NONE;
}

FlowInsert FlowTable::insert6(const sluice_flow_key& key, uint32_t hash, uint32_t backend_id,
                              uint32_t now_ms) {
  Bucket& b = buckets_[ipv6_bucket_index(hash)];
  const uint16_t sig = signature(hash);
  const uint32_t matches = b.match(sig);
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  if (matches == 0 && free != 0) {
    place(b, first_free(free), key, sig, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert_slow(b, matches, key, sig, backend_id, now_ms);
}

FlowInsert FlowTable::insert_slow(Bucket& b, uint32_t matches, const sluice_flow_key& key,
                                  uint16_t sig, uint32_t backend_id, uint32_t now_ms) {
  for (uint32_t m = matches; m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (!key_equal(b.slots[i].key, key)) continue;
    if (!expired(b, i, now_ms)) {
      b.slots[i].backend_id = backend_id;
      b.deadline[i] = now_ms + timeout(b, i);
      ++stats_.replaced;
      return FlowInsert::kReplaced;
    }
    free_slot(b, i);
    ++stats_.expired;
    break;
  }
  return take_slot(b, choose_slot(b, now_ms), key, sig, backend_id, now_ms);
}

FlowInsert FlowTable::take_slot(Bucket& b, Target t, const sluice_flow_key& key, uint16_t sig,
                                uint32_t backend_id, uint32_t now_ms) {
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

// --- packet path ------------------------------------------------------------

uint32_t FlowTable::lookup(const sluice_flow_key& key, uint32_t hash, uint32_t now_ms,
                           bool promote) {
  if (compact(key)) [[likely]] return lookup4(key4(key), hash, now_ms, promote);
  return lookup6(key, hash, now_ms, promote);
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

namespace {

// What stage 2 of lookup_burst() left for stage 3 to do for a packet.
enum class Next : uint8_t {
  kHome,   // IPv4: its line has the key (unless freed since)
  kBuddy,  // IPv4: not in its line; its buddy may have it
  kPair,   // IPv4: a miss; the insert's slot depends on the buddy line too
  kMiss,   // IPv4: a miss, its hint made
  kIpv6,   // an IPv6 (or other) key: compare keys of the signature matches
};

}  // namespace

template <bool kHints>
inline uint64_t FlowTable::lookup_burst_impl(const sluice_flow_key* const keys[],
                                             const uint32_t hashes[], uint32_t n, uint32_t now_ms,
                                             uint32_t backend_out[], uint64_t promote_mask,
                                             FlowInsertHint hints_out[]) {
  void* at[kMaxBurst];  // the packet's line (IPv4) or bucket
  Key4 k4[kMaxBurst];
  uint32_t match[kMaxBurst];
  Next next[kMaxBurst];
  if (n > kMaxBurst) n = kMaxBurst;

  // Stage 1: start every line (IPv6: bucket header) on its way; a hit
  // writes it (the deadline), so fetch it for writing.
  for (uint32_t i = 0; i < n; ++i) {
    if (compact(*keys[i])) [[likely]] {
      k4[i] = key4(*keys[i]);
      next[i] = Next::kHome;
      at[i] = &lines_[bucket_index(hashes[i])];
    } else {
      next[i] = Next::kIpv6;
      at[i] = &buckets_[ipv6_bucket_index(hashes[i])];
    }
    __builtin_prefetch(at[i], 1, 3);
  }
  // Stage 2: compare each line's keys. A miss whose line has no overflowed
  // flows is final, and its insert goes to a free slot of the line just
  // read (the hint), else the buddy line is fetched: to look there (the
  // line's flows that overflowed), or because the insert's choice needs it
  // (the line is full), then for writing.
  for (uint32_t i = 0; i < n; ++i) {
    if (next[i] == Next::kIpv6) [[unlikely]] {
      const Bucket& b = *static_cast<const Bucket*>(at[i]);
      const uint32_t m = b.match(signature(hashes[i]));
      match[i] = m;
      if (m != 0) prefetch_object(b.slots[lowest(m)]);
      if constexpr (kHints) hints_out[i].take_ = static_cast<uint8_t>(Take::kStale);
      continue;
    }
    const Line& l = *static_cast<const Line*>(at[i]);
    const uint32_t m = l.match(k4[i]);
    match[i] = m;
    if (m != 0) [[likely]] {
      if constexpr (kHints) hints_out[i].take_ = static_cast<uint8_t>(Take::kStale);
      continue;
    }
    const uint32_t free = l.vacant();
    if (l.out == 0 && free != 0) {
      next[i] = Next::kMiss;
      if constexpr (kHints) {
        FlowInsertHint& h = hints_out[i];
        h.now_ms_ = now_ms;
        h.hash_ = hashes[i];
        h.home_meta_ = l.meta();
        h.slot_ = static_cast<uint8_t>(lowest(free));
        h.take_ = static_cast<uint8_t>(Take::kFree);
        h.pair_ = 0;
      }
      continue;
    }
    next[i] = l.out != 0 ? Next::kBuddy : Next::kPair;
    __builtin_prefetch(&buddy(l), 1, 3);
  }
  // Stage 3: finish in packet order. A match of stage 2 is re-masked with
  // `used`: an earlier packet of the burst may have freed an expired entry.
  uint64_t hits = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const bool promote = (promote_mask >> i) & 1;
    uint32_t backend = SLUICE_BACKEND_NONE;
    switch (next[i]) {
      case Next::kHome: {
        Line& l = *static_cast<Line*>(at[i]);
        if (const uint32_t m = match[i] & l.used; m != 0) [[likely]] {
          const uint32_t s = lowest(m);
          if (hit(l, s, now_ms, promote)) [[likely]] backend = l.backend(s);
        }
        break;
      }
      case Next::kBuddy: {
        Line& home = *static_cast<Line*>(at[i]);
        Line& other = buddy(home);
        if (const uint32_t m = other.match(k4[i]); m != 0) {
          const uint32_t s = lowest(m);
          if (hit(other, s, now_ms, promote)) backend = other.backend(s);
          break;
        }
        if constexpr (kHints) {
          hint_pair(hints_out[i], home, now_ms);
          hints_out[i].hash_ = hashes[i];
        }
        break;
      }
      case Next::kPair:
        if constexpr (kHints) {
          hint_pair(hints_out[i], *static_cast<const Line*>(at[i]), now_ms);
          hints_out[i].hash_ = hashes[i];
        }
        break;
      case Next::kMiss:
        break;
      case Next::kIpv6: {
        Bucket& b = *static_cast<Bucket*>(at[i]);
        for (uint32_t m = match[i] & b.used; m != 0; m &= m - 1) {
          const uint32_t s = lowest(m);
          if (key_equal(b.slots[s].key, *keys[i])) {
            if (hit(b, s, now_ms, promote)) backend = b.slots[s].backend_id;
            break;
          }
        }
        break;
      }
    }
    if (backend != SLUICE_BACKEND_NONE) hits |= uint64_t{1} << i;
    backend_out[i] = backend;
  }
  return hits;
}

FlowInsert FlowTable::insert(const sluice_flow_key& key, uint32_t hash, uint32_t backend_id,
                             uint32_t now_ms) {
  if (compact(key)) [[likely]] return insert4(key4(key), hash, backend_id, now_ms);
  return insert6(key, hash, backend_id, now_ms);
}

FlowInsert FlowTable::insert(const FlowInsertHint& hint, const sluice_flow_key& key, uint32_t hash,
                             uint32_t backend_id, uint32_t now_ms) {
  if (!compact(key)) [[unlikely]] return insert6(key, hash, backend_id, now_ms);
  const Key4 k = key4(key);
  Line& home = lines_[bucket_index(hash)];
  // The hint holds if nothing changed since it was made: then the flow was
  // in neither line, and its slot is still the one a search would choose.
  if (hint.take_ == static_cast<uint8_t>(Take::kFree) && hint.pair_ == 0 && hint.hash_ == hash &&
      hint.home_meta_ == home.meta() && hint.now_ms_ == now_ms) [[likely]] {
    place(home, home, hint.slot_, k, backend_id, now_ms);
    return FlowInsert::kInserted;
  }
  return insert4_by_hint_slow(hint, home, k, hash, backend_id, now_ms);
}

bool FlowTable::erase(const sluice_flow_key& key, uint32_t hash) {
  if (compact(key)) {
    const Key4 k = key4(key);
    Line* l = &lines_[bucket_index(hash)];
    uint32_t m = l->match(k);
    if (m == 0 && l->out != 0) {
      l = &buddy(*l);
      m = l->match(k);
    }
    if (m == 0) return false;
    free_entry(*l, lowest(m));
    return true;
  }
  Bucket& b = buckets_[ipv6_bucket_index(hash)];
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

uint32_t FlowTable::sweep_line(Line& l, uint32_t now_ms) {
  uint32_t freed = 0;
  for (uint32_t m = l.used & kLineSlots; m != 0; m &= m - 1) {
    const uint32_t s = lowest(m);
    if (passed(l.deadline(s), now_ms)) {
      free_entry(l, s);
      ++freed;
    }
  }
  return freed;
}

uint32_t FlowTable::sweep_bucket(Bucket& b, uint32_t now_ms) {
  uint32_t freed = 0;
  for (uint32_t m = b.used; m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (expired(b, i, now_ms)) {
      free_slot(b, i);
      ++freed;
    }
  }
  return freed;
}

uint32_t FlowTable::sweep(uint32_t now_ms, uint32_t max_buckets) {
  uint32_t freed = 0;
  const uint32_t total = bucket_count();
  const uint32_t visits = max_buckets < total ? max_buckets : total;
  for (uint32_t v = 0; v < visits; ++v) {
    freed += sweep_cursor_ < line_count_
                 ? sweep_line(lines_[sweep_cursor_], now_ms)
                 : sweep_bucket(buckets_[sweep_cursor_ - line_count_], now_ms);
    sweep_cursor_ = sweep_cursor_ + 1 == total ? 0 : sweep_cursor_ + 1;
  }
  stats_.expired += freed;
  return freed;
}

uint32_t FlowTable::count_established(uint32_t first_bucket, uint32_t bucket_count,
                                      uint64_t now_ms, std::span<uint32_t> counts) const noexcept {
  const uint32_t total = this->bucket_count();
  if (first_bucket >= total) return 0;
  const uint32_t end = bucket_count < total - first_bucket ? first_bucket + bucket_count : total;
  // The table's clock is the low 32 bits of the caller's (it wraps).
  const auto now = static_cast<uint32_t>(now_ms);
  auto count = [&](uint32_t backend) {
    if (backend < counts.size()) ++counts[backend];
  };
  for (uint32_t i = first_bucket; i < end; ++i) {
    if (i < line_count_) {
      const Line& l = lines_[i];
      for (uint32_t m = l.used & ~uint32_t{l.state} & kLineSlots; m != 0; m &= m - 1) {
        const uint32_t s = lowest(m);
        if (!passed(l.deadline(s), now)) count(l.backend(s));
      }
    } else {
      const Bucket& b = buckets_[i - line_count_];
      for (uint32_t m = b.used & ~uint32_t{b.probation} & kAllSlots; m != 0; m &= m - 1) {
        const uint32_t s = lowest(m);
        if (!passed(b.deadline[s], now)) count(b.slots[s].backend_id);
      }
    }
  }
  return end == total ? 0 : end;
}

uint32_t FlowTable::spill_count(uint32_t line) const { return lines_[line].out; }

std::optional<FlowEntry> FlowTable::find(const sluice_flow_key& key, uint32_t hash) const {
  if (compact(key)) {
    const Key4 k = key4(key);
    const Line* l = &lines_[bucket_index(hash)];
    uint32_t m = l->match(k);
    if (m == 0 && l->out != 0) {
      l = &buddy(*l);
      m = l->match(k);
    }
    if (m == 0) return std::nullopt;
    const uint32_t s = lowest(m);
    const uint8_t state = ((l->state >> s) & 1u) ? SLUICE_FLOW_PROBATION : SLUICE_FLOW_ESTABLISHED;
    return FlowEntry{l->backend(s), l->deadline(s) - line_timeout(*l, s), state};
  }
  const Bucket& b = buckets_[ipv6_bucket_index(hash)];
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
