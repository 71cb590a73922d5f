// SPDX-License-Identifier: BSD-2-Clause
// The DPDK tests' standard world: backends, VIPs with Maglev tables from the
// core's builder, outer headers and next hop as a SnapshotSpec, and what a
// test needs to predict the output (the backend a flow gets, the
// encapsulated frame) written independently of the worker.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/maglev.hpp"
#include "dataplane/dpdk/snapshot.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/common/vip_spec.hpp"

namespace sluice::test {

inline constexpr uint32_t kSeed = 0x5eed1234;
inline constexpr uint32_t kTableSize = 1031;  // prime
inline constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
inline constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
inline constexpr Mac kGatewayMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfd};
inline constexpr const char* kSrcV4 = "10.255.0.1";
inline constexpr const char* kSrcV6 = "2001:db8:ffff::1";
inline constexpr uint8_t kTcp = SLUICE_IPPROTO_TCP;
inline constexpr uint8_t kUdp = SLUICE_IPPROTO_UDP;

struct WorldVip {
  const char* addr;
  uint16_t port;
  uint8_t proto;
  uint32_t vip_id;
  uint32_t flags;
  std::vector<uint32_t> backends;  // equal weights; empty: every slot NONE
};

inline sluice_flow_key flow_key(const std::string& client, uint16_t cport, const std::string& vip,
                                uint16_t vport, uint8_t proto) {
  sluice_flow_key k{};
  const IpAddress c = address(client);
  const IpAddress v = address(vip);
  k.src = c.ip;
  k.dst = v.ip;
  k.sport = sl_htons(cport);
  k.dport = sl_htons(vport);
  k.proto = proto;
  k.family = c.family;
  return k;
}

/// The world and its predictions.
class World {
 public:
  /// Every backend the world starts with (tests may remove some).
  struct Known {
    uint32_t id;
    const char* addr;
  };
  static constexpr Known kKnown[] = {
      {1, "10.1.0.1"},       {2, "10.1.0.2"},       {3, "10.1.0.3"},
      {11, "2001:db8:1::1"}, {12, "2001:db8:1::2"},
  };

  World() {
    for (const Known& k : kKnown) add_backend(k.id, k.addr);
    vips_ = {
        {"10.0.0.1", 80, kTcp, 1, 0, {1, 2, 3}},
        {"10.0.0.1", 53, kUdp, 2, 0, {1, 2}},
        {"10.0.0.2", 0, kTcp, 3, 0, {1, 2, 3}},
        {"2001:db8::1", 443, kTcp, 4, 0, {11, 12}},
        {"2001:db8::1", 0, kUdp, 5, 0, {11, 12}},
        {"10.0.0.3", 80, kTcp, 6, 0, {11}},
        {"2001:db8::3", 80, kTcp, 7, 0, {1}},
        {"10.0.0.4", 80, kTcp, 8, SLUICE_VIP_HASH_SRC_ONLY, {1, 2, 3}},
        {"10.0.0.9", 80, kTcp, 9, 0, {}},
    };
    for (const WorldVip& v : vips_) tables_[v.vip_id] = build_table(v.backends);
  }

  /// Equal-weight Maglev table over backend ids (all NONE when empty).
  std::vector<uint32_t> build_table(const std::vector<uint32_t>& ids) const {
    if (ids.empty()) return std::vector<uint32_t>(kTableSize, SLUICE_BACKEND_NONE);
    std::vector<MaglevBackend> in;
    for (uint32_t id : ids) in.push_back({address_of(id), 1});
    auto built = maglev_build(in, kTableSize);
    EXPECT_TRUE(built.ok());
    std::vector<uint32_t> t;
    for (uint32_t i : built.value()) t.push_back(ids[i]);
    return t;
  }

  void add_backend(uint32_t id, const std::string& addr, uint8_t flags = 0) {
    const IpAddress a = address(addr);
    sluice_backend b{};
    b.addr = a.ip;
    b.id = id;
    b.family = a.family;
    b.flags = flags;
    backends_[id] = b;
  }
  void remove_backend(uint32_t id) { backends_.erase(id); }
  /// Adds a VIP (equal weights over `v.backends`) to the standard ones.
  void add_vip(const WorldVip& v) {
    vips_.push_back(v);
    tables_[v.vip_id] = build_table(v.backends);
  }
  [[nodiscard]] const std::vector<uint32_t>& table(uint32_t vip_id) const {
    return tables_.at(vip_id);
  }
  void set_table(uint32_t vip_id, std::vector<uint32_t> table) {
    tables_[vip_id] = std::move(table);
  }

  [[nodiscard]] dpdk::SnapshotSpec spec() const {
    dpdk::SnapshotSpec s;
    for (const auto& [id, b] : backends_) s.backends.push_back(b);
    for (const WorldVip& v : vips_) {
      s.vips.push_back(vip_spec<dpdk::SnapshotVipSpec>(v.addr, v.port, v.proto, v.vip_id, v.flags,
                                                        tables_.at(v.vip_id)));
    }
    s.encap.src_v4 = address(kSrcV4).ip;
    s.encap.src_v6 = address(kSrcV6).ip;
    s.encap.mtu = 1500;
    s.encap.entropy_bits = 8;
    std::copy(kGatewayMac.begin(), kGatewayMac.end(), s.next_hop.dst_mac.begin());
    std::copy(kLbMac.begin(), kLbMac.end(), s.next_hop.src_mac.begin());
    return s;
  }

  [[nodiscard]] std::unique_ptr<const dpdk::Snapshot> snapshot() const {
    auto s = dpdk::Snapshot::create(spec());
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(s.value()) : nullptr;
  }

  [[nodiscard]] const WorldVip& vip(uint32_t id) const {
    for (const WorldVip& v : vips_)
      if (v.vip_id == id) return v;
    throw std::out_of_range("no such vip");
  }
  [[nodiscard]] uint32_t hash_of(uint32_t vip_id, const sluice_flow_key& k) const {
    return (vip(vip_id).flags & SLUICE_VIP_HASH_SRC_ONLY) != 0 ? sluice_flow_hash_src(&k, kSeed)
                                                               : sluice_flow_hash(&k, kSeed);
  }
  [[nodiscard]] uint32_t choice(uint32_t vip_id, const sluice_flow_key& k) const {
    const std::vector<uint32_t>& t = tables_.at(vip_id);
    return t[hash_of(vip_id, k) % t.size()];
  }
  [[nodiscard]] IpAddress address_of(uint32_t id) const {
    const sluice_backend& b = backends_.at(id);
    IpAddress a;
    a.ip = b.addr;
    a.family = b.family;
    return a;
  }

  /// The frame `in` (ntags VLAN tags) encapsulated toward backend_id as
  /// encap_frame specifies it, re-addressed to the gateway.
  [[nodiscard]] Bytes encapsulated(const Bytes& in, size_t ntags, uint32_t backend_id,
                                   uint32_t hash) const {
    const size_t l3_off = SLUICE_ETH_HLEN + SLUICE_VLAN_HLEN * ntags;
    const Bytes l3 = slice(in, l3_off);
    const bool inner6 = (l3.at(0) >> 4) == 6;
    const size_t inner_len =
        inner6 ? SLUICE_IPV6_HLEN + size_t{get_be16(&l3[4])} : get_be16(&l3[2]);
    const uint8_t tos = inner6 ? static_cast<uint8_t>((l3[0] & 0xf) << 4 | l3[1] >> 4) : l3[1];
    const RawSpec inner{
        .bytes = slice(l3, 0, inner_len),
        .proto = inner6 ? uint8_t{SLUICE_IPPROTO_IPV6} : uint8_t{SLUICE_IPPROTO_IPIP}};
    const IpAddress dst = address_of(backend_id);
    PacketBuilder outer;
    uint16_t type = SLUICE_ETH_P_IP;
    if (!dst.is_v6()) {
      IpAddress src = address(kSrcV4);
      src.ip.bytes[3] = static_cast<uint8_t>(hash);  // 8 entropy bits
      const bool df = inner6 || (get_be16(&l3[6]) & SLUICE_IPV4_DF) != 0;
      outer.ipv4({.src = src.to_string(),
                  .dst = dst.to_string(),
                  .tos = tos,
                  .ttl = 64,
                  .id = df ? uint16_t{0} : get_be16(&l3[4]),
                  .dont_fragment = df});
    } else {
      IpAddress src = address(kSrcV6);
      src.ip.bytes[15] = static_cast<uint8_t>(hash);
      outer.ipv6({.src = src.to_string(),
                  .dst = dst.to_string(),
                  .traffic_class = tos,
                  .flow_label = hash & 0xfffff,
                  .hop_limit = 64});
      type = SLUICE_ETH_P_IPV6;
    }
    Bytes l2 = slice(in, 0, l3_off);
    std::copy(kGatewayMac.begin(), kGatewayMac.end(), l2.begin());
    std::copy(kLbMac.begin(), kLbMac.end(), l2.begin() + 6);
    put_be16(l2, l3_off - 2, type);
    return cat({l2, outer.raw(inner).build_ip()});
  }

  [[nodiscard]] Bytes forwarded(const Bytes& in, size_t ntags, uint32_t vip_id,
                                const sluice_flow_key& k) const {
    return encapsulated(in, ntags, choice(vip_id, k), hash_of(vip_id, k));
  }

 private:
  std::map<uint32_t, sluice_backend> backends_;
  std::vector<WorldVip> vips_;
  std::map<uint32_t, std::vector<uint32_t>> tables_;
};

}  // namespace sluice::test
