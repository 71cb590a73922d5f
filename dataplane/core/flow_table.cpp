// SPDX-License-Identifier: BSD-2-Clause
// FlowTable: bucket layout, signature matching, admission and eviction of
// the per-core flow table.
#include "dataplane/core/flow_table.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace sluice {

namespace {

constexpr uint32_t kAllSlots = (1u << FlowTable::kSlotsPerBucket) - 1;
constexpr size_t kCacheLine = 64;
constexpr size_t kHugePage = size_t{2} << 20;

constexpr uint64_t kLow15 = 0x7FFF7FFF7FFF7FFFull;
constexpr uint64_t kLanes = 0x0001000100010001ull;

/// Bit k (k = 0..3) set iff 16-bit lane k of x is zero. Exact (no carry
/// crosses lanes): adding 0x7FFF to a lane's low 15 bits sets its top bit
/// iff they are non-zero. The multiply gathers the four top bits, which land
/// on distinct positions, into bits 45..48.
inline uint32_t zero_lanes(uint64_t x) {
  const uint64_t top = ~(((x & kLow15) + kLow15) | x) & ~kLow15;
  return static_cast<uint32_t>((((top >> 15) * 0x0000200040008001ull) >> 45) & 0xF);
}

inline uint16_t signature(uint32_t hash) { return static_cast<uint16_t>(hash); }

inline bool key_equal(const sluice_flow_key& a, const sluice_flow_key& b) {
  uint64_t x[5];
  uint64_t y[5];
  static_assert(sizeof x == sizeof a);
  std::memcpy(x, &a, sizeof x);
  std::memcpy(y, &b, sizeof y);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

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

  /// Slot i's signature is lane i % 4 (bits 16 * (i % 4)) of sigs[i / 4]:
  /// explicit lanes, so all 8 compare at once on any byte order.
  uint64_t sigs[2];
  uint32_t last_seen[kSlotsPerBucket];  ///< ms, caller's clock
  uint8_t used;                         ///< bit i: slot i holds an entry
  uint8_t probation;                    ///< bit i: that entry is on probation
  uint8_t tcp;                          ///< bit i: its flow is TCP (tcp_idle_ms applies)
  uint8_t pad[13];
  Slot slots[kSlotsPerBucket];

  [[nodiscard]] uint32_t match(uint16_t sig) const {
    const uint64_t pattern = sig * kLanes;
    return (zero_lanes(sigs[0] ^ pattern) | (zero_lanes(sigs[1] ^ pattern) << 4)) & used;
  }

  void set_signature(uint32_t slot, uint16_t sig) {
    const uint32_t shift = 16 * (slot % 4);
    uint64_t& word = sigs[slot / 4];
    word = (word & ~(uint64_t{0xFFFF} << shift)) | (uint64_t{sig} << shift);
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
  rounded.capacity = static_cast<uint32_t>(bytes_needed(config.capacity) / sizeof(Bucket)) *
                     kSlotsPerBucket;
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

Result<FlowTable> FlowTable::create_in(const FlowTableConfig& config,
                                       std::span<std::byte> memory) {
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
    : config_(config), buckets_(buckets), bucket_count_(bucket_count), owned_(owned) {}

FlowTable::FlowTable(FlowTable&& other) noexcept
    : config_(other.config_),
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

uint32_t FlowTable::timeout(const Bucket& b, uint32_t slot) const {
  if (b.probation & bit(slot)) return config_.probation_ms;
  return (b.tcp & bit(slot)) ? config_.tcp_idle_ms : config_.udp_idle_ms;
}

bool FlowTable::expired(const Bucket& b, uint32_t slot, uint32_t now_ms) const {
  return now_ms - b.last_seen[slot] >= timeout(b, slot);
}

FlowTable::Target FlowTable::choose_slot(const Bucket& b, uint32_t now_ms) const {
  const uint32_t free = ~uint32_t{b.used} & kAllSlots;
  if (free != 0) return {lowest(free), Take::kFree};
  Target expired_victim{0, Take::kNone};
  Target probation_victim{0, Take::kNone};
  uint32_t expired_age = 0;
  uint32_t probation_age = 0;
  for (uint32_t i = 0; i < kSlotsPerBucket; ++i) {
    const uint32_t age = now_ms - b.last_seen[i];
    if (age >= timeout(b, i)) {
      if (expired_victim.take == Take::kNone || age > expired_age) {
        expired_victim = {i, Take::kExpired};
        expired_age = age;
      }
    } else if ((b.probation & bit(i)) &&
               (probation_victim.take == Take::kNone || age > probation_age)) {
      probation_victim = {i, Take::kProbation};
      probation_age = age;
    }
  }
  return expired_victim.take != Take::kNone ? expired_victim : probation_victim;
}

void FlowTable::free_slot(Bucket& b, uint32_t slot) {
  b.used = static_cast<uint8_t>(b.used & ~bit(slot));
  b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
  --size_;
}

// A key match: a live entry is a hit (refreshed, maybe promoted); an
// expired one is freed and is a miss.
bool FlowTable::hit(Bucket& b, uint32_t slot, uint32_t now_ms, bool promote) {
  if (expired(b, slot, now_ms)) {
    free_slot(b, slot);
    ++stats_.expired;
    return false;
  }
  // Skip the store when nothing changes: a line that stays clean is never
  // written back.
  if (b.last_seen[slot] != now_ms) b.last_seen[slot] = now_ms;
  if (promote && (b.probation & bit(slot))) b.probation = static_cast<uint8_t>(b.probation & ~bit(slot));
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
  for (uint32_t m = b.match(sig); m != 0; m &= m - 1) {
    const uint32_t i = lowest(m);
    if (!key_equal(b.slots[i].key, key)) continue;
    if (!expired(b, i, now_ms)) {
      b.slots[i].backend_id = backend_id;
      b.last_seen[i] = now_ms;
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
  const uint32_t s = t.slot;
  b.slots[s].key = key;
  b.slots[s].backend_id = backend_id;
  b.set_signature(s, sig);
  b.last_seen[s] = now_ms;
  b.used = static_cast<uint8_t>(b.used | bit(s));
  b.probation = static_cast<uint8_t>(b.probation | bit(s));
  b.tcp = key.proto == SLUICE_IPPROTO_TCP ? static_cast<uint8_t>(b.tcp | bit(s))
                                          : static_cast<uint8_t>(b.tcp & ~bit(s));
  ++size_;
  ++stats_.inserts;
  return FlowInsert::kInserted;
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
      return FlowEntry{b.slots[i].backend_id, b.last_seen[i], state};
    }
  }
  return std::nullopt;
}

}  // namespace sluice
