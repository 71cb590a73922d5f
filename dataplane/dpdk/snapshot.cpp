// SPDX-License-Identifier: BSD-2-Clause
// Snapshot::create: validation of a SnapshotSpec and the build of the
// lookup structures the workers read.
#include "dataplane/dpdk/snapshot.hpp"

#include <cerrno>
#include <string>
#include <unordered_set>

#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/maglev.hpp"

namespace sluice::dpdk {
namespace {

Error invalid(std::string what) { return Error{-EINVAL, "snapshot: " + std::move(what)}; }

std::string vip_name(const sluice_vip_key& k) {
  IpAddress a;
  a.ip = k.addr;
  a.family = k.family;
  return "VIP " + a.to_string() + " port " + std::to_string(sl_ntohs(k.port)) + " proto " +
         std::to_string(k.proto);
}

// Zeroes what a key compare must not see: pad bytes and, for IPv4, address
// bytes 4-15 (the flow key has them zero).
sluice_vip_key canonical(const sluice_vip_key& in) {
  sluice_vip_key k{};
  const size_t n = in.family == SLUICE_FAMILY_IPV6 ? 16 : 4;
  std::memcpy(k.addr.bytes, in.addr.bytes, n);
  k.port = in.port;
  k.proto = in.proto;
  k.family = in.family;
  return k;
}

bool addr_is_zero(const union sluice_ip& a) {
  for (uint8_t b : a.bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace

Snapshot::~Snapshot() = default;

Result<std::unique_ptr<const Snapshot>> Snapshot::create(const SnapshotSpec& spec) {
  std::unique_ptr<Snapshot> s(new Snapshot());

  if (spec.encap.entropy_bits > SLUICE_ENCAP_MAX_ENTROPY_BITS)
    return invalid("entropy_bits " + std::to_string(spec.encap.entropy_bits) + " is above " +
                   std::to_string(SLUICE_ENCAP_MAX_ENTROPY_BITS));
  bool any_v4 = false;
  bool any_v6 = false;
  std::unordered_set<uint32_t> ids;
  for (const sluice_backend& in : spec.backends) {
    const std::string name = "backend " + std::to_string(in.id);
    if (in.id == SLUICE_BACKEND_NONE) return invalid(name + ": id is the 'none' value");
    if (in.family != SLUICE_FAMILY_IPV4 && in.family != SLUICE_FAMILY_IPV6)
      return invalid(name + ": family " + std::to_string(in.family));
    sluice_backend& slot = s->backends_[in.id & (SLUICE_MAX_BACKENDS - 1)];
    if ((slot.flags & SLUICE_BACKEND_VALID) != 0)
      return invalid(name + ": slot already holds backend " + std::to_string(slot.id));
    slot = sluice_backend{};
    std::memcpy(slot.addr.bytes, in.addr.bytes, in.family == SLUICE_FAMILY_IPV6 ? 16 : 4);
    slot.id = in.id;
    slot.family = in.family;
    slot.flags = static_cast<uint8_t>(SLUICE_BACKEND_VALID | (in.flags & SLUICE_BACKEND_DRAINING));
    ids.insert(in.id);
    (in.family == SLUICE_FAMILY_IPV6 ? any_v6 : any_v4) = true;
  }
  if (any_v4 && addr_is_zero(spec.encap.src_v4))
    return invalid("an IPv4 backend needs encap src_v4");
  if (any_v6 && addr_is_zero(spec.encap.src_v6))
    return invalid("an IPv6 backend needs encap src_v6");

  if (spec.vips.size() > SLUICE_MAX_VIPS)
    return invalid(std::to_string(spec.vips.size()) + " VIPs, at most " +
                   std::to_string(SLUICE_MAX_VIPS));
  std::unordered_set<uint32_t> vip_ids;
  s->vip_list_.reserve(spec.vips.size());
  s->tables_.reserve(spec.vips.size());
  for (const SnapshotVipSpec& in : spec.vips) {
    const sluice_vip_key key = canonical(in.key);
    const std::string name = vip_name(key);
    if (key.family != SLUICE_FAMILY_IPV4 && key.family != SLUICE_FAMILY_IPV6)
      return invalid(name + ": family " + std::to_string(key.family));
    if (key.proto != SLUICE_IPPROTO_TCP && key.proto != SLUICE_IPPROTO_UDP)
      return invalid(name + ": protocol is neither TCP nor UDP");
    if (in.meta.vip_id >= SLUICE_MAX_VIPS || !vip_ids.insert(in.meta.vip_id).second)
      return invalid(name + ": vip_id " + std::to_string(in.meta.vip_id) +
                     " out of range or used twice");
    const auto m = static_cast<uint32_t>(in.table.size());
    if (in.table.size() != m || m < SLUICE_MAGLEV_MIN_SIZE || m > SLUICE_MAGLEV_MAX_SIZE ||
        !is_prime(m))
      return invalid(name + ": table size " + std::to_string(in.table.size()) +
                     " is not a prime in range");
    for (uint32_t id : in.table)
      if (id != SLUICE_BACKEND_NONE && ids.count(id) == 0)
        return invalid(name + ": table names backend " + std::to_string(id) +
                       ", which is not in the snapshot");
    if (s->probe(words(key)) != nullptr) return invalid(name + ": listed twice");

    s->tables_.push_back(in.table);
    Vip v{};
    v.key = key;
    v.meta = in.meta;
    v.meta.table_size = m;
    v.meta.pad = 0;
    v.table = s->tables_.back().data();
    s->vip_list_.push_back(v);
    uint32_t i = vip_hash(words(key)) & (kVipSlots - 1);
    while (s->vip_slots_[i] != 0) i = (i + 1) & (kVipSlots - 1);
    s->vip_slots_[i] = static_cast<uint16_t>(s->vip_list_.size());
  }

  s->encap_.config = spec.encap;
  std::memset(s->encap_.config.pad, 0, sizeof s->encap_.config.pad);
  // MTU 0 means no limit below what the outer length field holds, as in XDP.
  if (s->encap_.config.mtu == 0) s->encap_.config.mtu = 0xffff;
  s->next_hop_ = spec.next_hop;
  for (uint8_t b : spec.next_hop.dst_mac) s->has_next_hop_ |= b != 0;
  return std::unique_ptr<const Snapshot>(std::move(s));
}

}  // namespace sluice::dpdk
