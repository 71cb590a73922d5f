// SPDX-License-Identifier: BSD-2-Clause
// FragTable: the set-associative record of fragmented datagrams.
#include "dataplane/dpdk/frag_table.hpp"

#include <rte_hash_crc.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

namespace sluice::dpdk {

Result<FragTable> FragTable::create(uint32_t capacity, uint32_t seed) {
  if (capacity < kMinCapacity || capacity > kMaxCapacity)
    return Error{-EINVAL, "fragment table: capacity " + std::to_string(capacity) + " is outside [" +
                              std::to_string(kMinCapacity) + ", " + std::to_string(kMaxCapacity) +
                              "]"};
  uint32_t n = kMinCapacity;
  while (n < capacity) n <<= 1;
  std::unique_ptr<Slot[]> slots(new (std::nothrow) Slot[n]());
  if (!slots) return Error{-ENOMEM, "fragment table: cannot allocate " + std::to_string(n)};
  return FragTable(std::move(slots), n, seed);
}

FragTable::FragTable(std::unique_ptr<Slot[]> slots, uint32_t capacity, uint32_t seed)
    : slots_(std::move(slots)), mask_(capacity - 1), seed_(seed) {}

FragTable::Slot* FragTable::bucket_of(const FragKey& key) const noexcept {
  const uint32_t h = rte_hash_crc(&key, sizeof key, seed_);
  return &slots_[h & mask_ & ~(kWays - 1)];
}

FragTable::Slot* FragTable::find_slot(const FragKey& key) const noexcept {
  Slot* b = bucket_of(key);
  for (uint32_t w = 0; w < kWays; ++w)
    if (b[w].key.family != 0 && std::memcmp(&b[w].key, &key, sizeof key) == 0) return &b[w];
  return nullptr;
}

void FragTable::record(const FragKey& key, uint32_t vip_id, uint16_t port, uint8_t proto) noexcept {
  Slot* b = bucket_of(key);
  Slot* to = nullptr;
  for (uint32_t w = 0; w < kWays && to == nullptr; ++w)
    if (b[w].key.family != 0 && std::memcmp(&b[w].key, &key, sizeof key) == 0) to = &b[w];
  for (uint32_t w = 0; w < kWays && to == nullptr; ++w)
    if (b[w].key.family == 0) to = &b[w];
  if (to == nullptr) {
    // Full: the oldest goes (the largest age, modulo 2^32).
    to = &b[0];
    for (uint32_t w = 1; w < kWays; ++w)
      if (next_stamp_ - b[w].stamp > next_stamp_ - to->stamp) to = &b[w];
    ++evictions_;
  }
  to->key = key;
  to->rec = FragRecord{.vip_id = vip_id, .port = port, .proto = proto, .dropped = false};
  to->stamp = next_stamp_++;
}

const FragRecord* FragTable::find(const FragKey& key) const noexcept {
  const Slot* s = find_slot(key);
  return s != nullptr ? &s->rec : nullptr;
}

void FragTable::mark_dropped(const FragKey& key) noexcept {
  if (Slot* s = find_slot(key)) s->rec.dropped = true;
}

void FragTable::erase(const FragKey& key) noexcept {
  if (Slot* s = find_slot(key)) s->key.family = 0;
}

FragKey frag_key_of(const sluice_flow_key& flow, uint32_t id, uint8_t record_proto) noexcept {
  FragKey k{};
  k.src = flow.src;
  k.dst = flow.dst;
  k.id = id;
  k.family = flow.family;
  k.proto = record_proto;
  return k;
}

}  // namespace sluice::dpdk
