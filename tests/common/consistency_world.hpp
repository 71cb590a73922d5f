// SPDX-License-Identifier: BSD-2-Clause
// The world of the consistency tests (tests/bpf/consistency_test.cpp,
// tests/dpdk/consistency_test.cpp): one definition of the VIPs, weighted
// backends, seed and random flows, so "XDP == core == DPDK" is proven on
// the very same flows and tables.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/maglev.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/common/vip_spec.hpp"

namespace sluice::test::consistency {

inline constexpr uint32_t kSeed = 0x0c0ffee5;
inline constexpr int kFlowsPerCase = 10000;
inline constexpr Mac kLbMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
inline constexpr Mac kRouterMac{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};

struct BackendDef {
  uint32_t id;
  const char* addr;
  uint32_t weight;
};

inline constexpr BackendDef kBackends4[] = {
    {1, "10.1.0.1", 100}, {2, "10.1.0.2", 100}, {3, "10.1.0.3", 50},
    {4, "10.1.0.4", 200}, {5, "10.1.0.5", 1},   {6, "10.1.0.6", 0},
};
inline constexpr BackendDef kBackends6[] = {
    {11, "2001:db8:1::1", 1},
    {12, "2001:db8:1::2", 2},
    {13, "2001:db8:1::3", 3},
    {14, "2001:db8:1::4", 4},
};

struct VipDef {
  const char* name;
  const char* addr;
  uint16_t port;
  uint8_t proto;
  uint32_t vip_id;
  uint32_t flags;
  uint32_t table_size;
  bool v6;
};

inline constexpr VipDef kVips[] = {
    {"v4 tcp 5-tuple", "192.0.2.10", 80, SLUICE_IPPROTO_TCP, 1, 0, 65537, false},
    {"v4 udp 5-tuple", "192.0.2.10", 53, SLUICE_IPPROTO_UDP, 2, 0, 4099, false},
    {"v4 tcp source", "192.0.2.11", 443, SLUICE_IPPROTO_TCP, 3, SLUICE_VIP_HASH_SRC_ONLY, 65537,
     false},
    {"v6 tcp 5-tuple", "2001:db8:f::10", 80, SLUICE_IPPROTO_TCP, 4, 0, 65537, true},
    {"v6 udp 5-tuple", "2001:db8:f::10", 53, SLUICE_IPPROTO_UDP, 5, 0, 4099, true},
    {"v6 tcp source", "2001:db8:f::11", 443, SLUICE_IPPROTO_TCP, 6, SLUICE_VIP_HASH_SRC_ONLY, 65537,
     true},
};

/// The core's Maglev table for a VIP, mapped to backend ids.
inline std::vector<uint32_t> core_table(const VipDef& v) {
  std::vector<MaglevBackend> in;
  std::vector<uint32_t> ids;
  const auto add = [&](const auto& list) {
    for (const BackendDef& b : list) {
      in.push_back({address(b.addr), b.weight});
      ids.push_back(b.id);
    }
  };
  if (v.v6)
    add(kBackends6);
  else
    add(kBackends4);
  auto built = maglev_build(in, v.table_size);
  EXPECT_TRUE(built.ok()) << built.error().message;
  std::vector<uint32_t> table;
  if (!built.ok()) return table;
  for (uint32_t index : built.value()) table.push_back(ids[index]);
  return table;
}

/// A random client address of the VIP's family.
inline std::string random_client(std::mt19937_64& rng, bool v6) {
  char text[64];
  if (v6) {
    std::snprintf(text, sizeof text, "2001:db8:c:%x:%x:%x:%x:%x",
                  static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xffff),
                  static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xffff),
                  static_cast<unsigned>(rng() & 0xffff));
  } else {
    const uint64_t r = rng();
    std::snprintf(text, sizeof text, "100.%u.%u.%u", static_cast<unsigned>(64 + (r & 63)),
                  static_cast<unsigned>((r >> 8) & 0xff),
                  static_cast<unsigned>(1 + (r >> 16) % 254));
  }
  return text;
}

/// The first packet of a flow to the VIP (a TCP SYN, or a UDP datagram).
inline Bytes first_packet(const VipDef& v, const std::string& client, uint16_t sport) {
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (v.v6)
    p.ipv6({.src = client, .dst = v.addr});
  else
    p.ipv4({.src = client, .dst = v.addr});
  if (v.proto == SLUICE_IPPROTO_TCP)
    return p.tcp({.sport = sport, .dport = v.port, .flags = 0x02}).build();
  return p.udp({.sport = sport, .dport = v.port}).payload(Bytes(32, 0x5a)).build();
}

/// The backend id an encapsulated frame is addressed to (outer IPv4 or
/// IPv6 destination), or SLUICE_BACKEND_NONE.
inline uint32_t backend_of(const Bytes& out) {
  const auto match = [&](const auto& list) -> uint32_t {
    for (const BackendDef& d : list) {
      const IpAddress a = address(d.addr);
      if (!a.is_v6() && out.size() >= 34 && out[12] == 0x08 && out[13] == 0x00 &&
          std::memcmp(&out[14 + 16], a.ip.bytes, 4) == 0)
        return d.id;
      if (a.is_v6() && out.size() >= 54 && out[12] == 0x86 && out[13] == 0xdd &&
          std::memcmp(&out[14 + 24], a.ip.bytes, 16) == 0)
        return d.id;
    }
    return SLUICE_BACKEND_NONE;
  };
  const uint32_t id = match(kBackends4);
  return id != SLUICE_BACKEND_NONE ? id : match(kBackends6);
}

/// VIPs with key-affinity routing (memcached over UDP, `hash = "key"`): a
/// request of one key is placed by mc::route_hash(key, kSeed), not by its flow.
inline constexpr VipDef kKeyedVips[] = {
    {"v4 udp key", "192.0.2.12", 11211, SLUICE_IPPROTO_UDP, 7, SLUICE_VIP_KEY_HASH, 4099, false},
    {"v6 udp key", "2001:db8:f::12", 11211, SLUICE_IPPROTO_UDP, 8, SLUICE_VIP_KEY_HASH, 4099, true},
};
inline constexpr int kKeysPerCase = 300;

/// A random memcached key: 1..250 bytes of 0x21..0x7e.
inline std::string random_key(std::mt19937_64& rng) {
  std::string key(1 + rng() % SLUICE_CACHE_KEY_MAX, 'k');
  for (char& c : key) c = static_cast<char>(0x21 + rng() % 94);
  return key;
}

/// The n-th of the request kinds a keyed VIP places by key, for `key`
/// (get, gets, set, delete, in turn), without the frame header.
inline std::string keyed_request(int n, const std::string& key) {
  switch (n % 4) {
    case 0:
      return "get " + key + "\r\n";
    case 1:
      return "gets " + key + "\r\n";
    case 2:
      return "set " + key + " 5 0 3\r\nabc\r\n";
    default:
      return "delete " + key + "\r\n";
  }
}

/// One memcached UDP datagram to `v`: the frame header (request id
/// `request_id`, sequence 0 of 1) then `request`.
inline Bytes memcached_datagram(const VipDef& v, const std::string& client, uint16_t sport,
                                uint16_t request_id, const std::string& request) {
  // Built as text: GCC 12 at -O3 misreads byte stores into a short vector
  // (-Warray-bounds, -Wnull-dereference).
  std::string text(SLUICE_MC_UDP_HDR_LEN, '\0');
  text[0] = static_cast<char>(request_id >> 8);
  text[1] = static_cast<char>(request_id & 0xff);
  text[5] = 1;
  text += request;
  const Bytes payload(text.begin(), text.end());
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (v.v6)
    p.ipv6({.src = client, .dst = v.addr});
  else
    p.ipv4({.src = client, .dst = v.addr});
  return p.udp({.sport = sport, .dport = v.port}).payload(payload).build();
}

/// The backend the core places a keyed request for `key` on.
inline uint32_t keyed_choice(const std::vector<uint32_t>& table, const std::string& key) {
  return table[mc::route_hash(key, kSeed) % table.size()];
}

/// Fragmented datagrams per VIP of kVips in the fragment cases.
inline constexpr int kDatagramsPerCase = 500;

/// A datagram from client:sport to `v` (TCP ACK or UDP, 3000 bytes of
/// payload) with identification `id` (IPv4: its low 16 bits), cut into
/// fragments of at most 1232 data bytes, so that each fits the MTU once
/// encapsulated; the first carries the L4 header. With `dst_opts` (IPv6
/// only) a destination-options header precedes the L4 one: fragmentable,
/// so it follows the fragment header in the first fragment only, and the
/// later fragments' fragment headers name it (60), not the L4 protocol.
inline std::vector<Bytes> fragmented_datagram(const VipDef& v, const std::string& client,
                                              uint16_t sport, uint32_t id, bool dst_opts = false) {
  PacketBuilder p;
  p.eth({.dst = kLbMac, .src = kRouterMac});
  if (v.v6)
    p.ipv6({.src = client, .dst = v.addr});
  else
    p.ipv4({.src = client, .dst = v.addr, .id = static_cast<uint16_t>(id)});
  if (v.v6 && dst_opts) p.ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS, .len = 16});
  if (v.proto == SLUICE_IPPROTO_TCP)
    p.tcp({.sport = sport, .dport = v.port, .flags = 0x10});
  else
    p.udp({.sport = sport, .dport = v.port});
  const Bytes whole = p.payload(Bytes(3000, 0x5a)).build();
  return v.v6 ? fragment_ipv6(whole, SLUICE_ETH_HLEN, 1232, id)
              : fragment_ipv4(whole, SLUICE_ETH_HLEN, 1232);
}

/// Fragments as the fragment cases send them: two random datagrams to one
/// VIP, their fragments interleaved (first fragments first).
struct FragmentRun {
  std::vector<Bytes> frames;     ///< in sending order
  std::vector<size_t> datagram;  ///< by frame: 0 or 1, which datagram it is of
  std::vector<Bytes> firsts;     ///< by datagram: its first fragment
};

/// Draws two datagrams to `v` (random client, port and id from `rng`; for
/// IPv6 a destination-options header in about half) and interleaves their
/// fragments.
inline FragmentRun random_fragment_run(std::mt19937_64& rng, const VipDef& v) {
  std::vector<Bytes> d[2];
  for (auto& frags : d) {
    const std::string client = random_client(rng, v.v6);
    const auto sport = static_cast<uint16_t>(1024 + rng() % 64000);
    const auto id = static_cast<uint32_t>(rng());
    frags = fragmented_datagram(v, client, sport, id, v.v6 && (rng() & 1) != 0);
    EXPECT_GE(frags.size(), 3u) << v.name;
  }
  FragmentRun run;
  for (size_t f = 0; f < std::max(d[0].size(), d[1].size()); ++f)
    for (size_t k = 0; k < 2; ++k)
      if (f < d[k].size()) {
        run.frames.push_back(d[k][f]);
        run.datagram.push_back(k);
      }
  run.firsts = {d[0].at(0), d[1].at(0)};
  return run;
}

/// The core's choice for every fragment of a datagram to port VIP `v`
/// whose first fragment is `first` (README "Fragments"): the flow key of
/// the core's parser (ports 0) with the VIP's port as dport, the abi flow
/// hash, the VIP's table.
inline uint32_t fragment_choice(const VipDef& v, const std::vector<uint32_t>& table,
                                const Bytes& first) {
  const ParseResult r = parse_packet(first.data(), first.size());
  EXPECT_TRUE(r.status == ParseStatus::kOk && r.is_fragment) << v.name;
  sluice_flow_key key = r.key;
  key.dport = fragment_facts(first.data(), first.size(), r).first_dport;
  EXPECT_EQ(key.dport, sl_htons(v.port)) << v.name;
  const uint32_t hash = (v.flags & SLUICE_VIP_HASH_SRC_ONLY) != 0
                            ? sluice_flow_hash_src(&key, kSeed)
                            : sluice_flow_hash(&key, kSeed);
  return table[hash % table.size()];
}

/// The core's Maglev tables of every VIP: kVips' in order, then kKeyedVips'
/// (the keyed VIP i's table is at std::size(kVips) + i).
inline std::vector<std::vector<uint32_t>> world_tables() {
  std::vector<std::vector<uint32_t>> tables;
  for (const VipDef& v : kVips) {
    tables.push_back(core_table(v));
    EXPECT_EQ(tables.back().size(), v.table_size) << v.name;
  }
  for (const VipDef& v : kKeyedVips) tables.push_back(core_table(v));
  return tables;
}

/// The abi backend record of a BackendDef (id, address, family).
inline sluice_backend backend_record(const BackendDef& d) {
  const IpAddress ip = address(d.addr);
  sluice_backend b{};
  b.addr = ip.ip;
  b.id = d.id;
  b.family = ip.family;
  return b;
}

/// Fills a fast path's snapshot (xdp::Snapshot or dpdk::SnapshotSpec: both
/// have backends, vips of {key, meta, table} and encap) with the world: every
/// backend, every VIP of kVips then kKeyedVips with its table from `tables`
/// (one per VIP, in that order), and the encapsulation source addresses.
/// The caller sets the next hop, whose type differs between the two.
template <typename Spec>
void fill_world(Spec& s, const std::vector<std::vector<uint32_t>>& tables) {
  for (const BackendDef& b : kBackends4) s.backends.push_back(backend_record(b));
  for (const BackendDef& b : kBackends6) s.backends.push_back(backend_record(b));
  size_t i = 0;
  const auto add = [&](const VipDef& v) {
    s.vips.push_back(vip_spec<typename decltype(s.vips)::value_type>(
        v.addr, v.port, v.proto, v.vip_id, v.flags, tables.at(i++)));
  };
  for (const VipDef& v : kVips) add(v);
  for (const VipDef& v : kKeyedVips) add(v);
  s.encap.src_v4 = address("10.255.0.1").ip;
  s.encap.src_v6 = address("2001:db8:ffff::1").ip;
  s.encap.mtu = 1500;
  s.encap.entropy_bits = 8;
}

}  // namespace sluice::test::consistency
