// SPDX-License-Identifier: BSD-2-Clause
// sluice_lb's flow table over packet sequences: probation and promotion,
// stickiness across Maglev table swaps, drained and removed backends, idle
// expiry, and established flows surviving a flood of spoofed SYNs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <string>
#include <vector>

#include "tests/bpf/lb_fixture.hpp"

namespace sluice::test {
namespace {

constexpr const char* kVip = "10.0.0.1";
constexpr uint32_t kVipId = 1;

PacketBuilder frame() { return PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac}); }

Bytes tcp_packet(const std::string& client, uint16_t port, uint8_t flags = 0x10) {
  return frame()
      .ipv4({.src = client, .dst = kVip})
      .tcp({.sport = port, .dport = 80, .flags = flags})
      .build();
}

class LbFlowTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    provision_world();
  }

  // Sends one packet of the flow; returns the backend it was sent to.
  uint32_t send(const std::string& client, uint16_t port, uint8_t flags = 0x10) {
    const XdpRun r = run(tcp_packet(client, port, flags));
    EXPECT_EQ(r.verdict, XDP_TX);
    return backend_of(r);
  }

  // The established entry of a flow (shared by all CPUs), if any.
  bool established(const sluice_flow_key& key, sluice_flow_value* v) {
    return bpf_map_lookup_elem(fd(skel()->maps.sluice_flows), &key, v) == 0 &&
           v->state == SLUICE_FLOW_ESTABLISHED;
  }

  bool on_probation(const sluice_flow_key& key, sluice_flow_value* v) {
    return LbFixture::on_probation(kVipId, key, v);
  }

  // Any backend of VIP 1 other than `id`.
  static uint32_t other_than(uint32_t id) { return id == 1 ? 2 : 1; }
};

TEST_F(LbFlowTest, NewFlowIsOnProbationUntilItsSecondPacket) {
  const auto key = flow_key("192.0.2.30", 40000, kVip, 80, kTcp);
  const uint32_t want = choice(kVipId, key);
  const auto g0 = global_stats();
  sluice_flow_value v{};

  EXPECT_EQ(send("192.0.2.30", 40000, 0x02), want);
  ASSERT_TRUE(on_probation(key, &v));
  EXPECT_EQ(v.backend_id, want);
  EXPECT_EQ(v.state, SLUICE_FLOW_PROBATION);
  EXPECT_FALSE(established(key, &v)) << "one packet must not reach the established table";

  EXPECT_EQ(send("192.0.2.30", 40000), want);
  ASSERT_TRUE(established(key, &v));
  EXPECT_EQ(v.backend_id, want);
  EXPECT_FALSE(on_probation(key, &v)) << "promotion frees the probation entry";

  EXPECT_EQ(send("192.0.2.30", 40000), want);
  const auto g1 = global_stats();
  EXPECT_EQ(g1.flow_misses - g0.flow_misses, 1u);
  EXPECT_EQ(g1.flow_hits - g0.flow_hits, 2u);
  EXPECT_EQ(vip_stats(kVipId).new_flows, 1u);
  EXPECT_EQ(backend_stats(want).new_flows, 1u);
  EXPECT_EQ(backend_stats(want).packets, 3u);
}

// A hit takes the outer header's entropy (source bits, IPv6 flow label)
// from the flow entry instead of hashing: every packet of a flow, first
// (Maglev), second (probation) and later (established), leaves the same.
TEST_F(LbFlowTest, HitsEncapsulateLikeTheFirstPacket) {
  struct Case {
    const char* name;
    Bytes frame;
    uint32_t vip_id;
    sluice_flow_key key;
  };
  const Case cases[] = {
      {"IPv4 in IPv4", tcp_packet("192.0.2.50", 40000), kVipId,
       flow_key("192.0.2.50", 40000, kVip, 80, kTcp)},
      {"IPv6 in IPv6",
       frame()
           .ipv6({.src = "2001:db8:c::50", .dst = "2001:db8::1"})
           .tcp({.sport = 40001, .dport = 443, .flags = 0x10})
           .build(),
       5, flow_key("2001:db8:c::50", 40001, "2001:db8::1", 443, kTcp)},
      {"IPv4 in IPv6",
       frame()
           .ipv4({.src = "192.0.2.51", .dst = "10.0.0.3"})
           .tcp({.sport = 40002, .dport = 80, .flags = 0x10})
           .build(),
       7, flow_key("192.0.2.51", 40002, "10.0.0.3", 80, kTcp)},
  };
  for (const Case& c : cases) {
    const Bytes want = forwarded_frame(c.frame, 0, c.vip_id, c.key);
    for (int i = 0; i < 3; ++i) {
      const XdpRun r = run(c.frame);
      EXPECT_EQ(r.verdict, XDP_TX) << c.name << " packet " << i;
      EXPECT_EQ(r.out, want) << c.name << " packet " << i;
    }
    sluice_flow_value v{};
    ASSERT_TRUE(established(c.key, &v)) << c.name;
    EXPECT_EQ(sluice_flow_value_hash(&v), hash_of(c.vip_id, c.key) & 0xFFFFFFu) << c.name;
  }
}

// Written directly: a reordered table moves every slot, which no Maglev
// table of the loader's can (LbFlowLoaderTest swaps real tables).
TEST_F(LbFlowTest, EstablishedFlowSticksAcrossATableSwap) {
  const auto key = flow_key("192.0.2.31", 40000, kVip, 80, kTcp);
  const auto probation_key = flow_key("192.0.2.32", 40000, kVip, 80, kTcp);
  const uint32_t before = choice(kVipId, key);
  const uint32_t probation_before = choice(kVipId, probation_key);
  send("192.0.2.31", 40000, 0x02);
  send("192.0.2.31", 40000);
  send("192.0.2.32", 40000, 0x02);

  // Every slot now names another backend than before.
  publish_table(kVipId, {2, 3, 1});
  ASSERT_NE(choice(kVipId, key), before);
  ASSERT_NE(choice(kVipId, probation_key), probation_before);

  EXPECT_EQ(send("192.0.2.31", 40000), before) << "established flow moved by a table swap";
  EXPECT_EQ(send("192.0.2.32", 40000), probation_before) << "probation flow moved by a table swap";
  const auto fresh = flow_key("192.0.2.33", 40000, kVip, 80, kTcp);
  EXPECT_EQ(send("192.0.2.33", 40000, 0x02), choice(kVipId, fresh))
      << "new flows use the new table";
}

// A SYN starts a new connection even where an established entry holds its
// 4-tuple (a client reusing the port of an old connection): the VIP's
// current table places it, not the old entry, which would keep sending new
// connections to a draining backend. The entry is overwritten in place, so
// the connection's next packets follow the new choice.
TEST_F(LbFlowTest, SynOnAnOldEntryIsPlacedByTheCurrentTable) {
  const auto key = flow_key("192.0.2.34", 40000, kVip, 80, kTcp);
  const uint32_t now = choice(kVipId, key);
  const uint32_t old = other_than(now);
  inject_established(key, old, now_ms(), hash_of(kVipId, key));
  EXPECT_EQ(send("192.0.2.34", 40000), old) << "a segment of the old connection follows its entry";

  const auto g0 = global_stats();
  EXPECT_EQ(send("192.0.2.34", 40000, 0x02), now);
  sluice_flow_value v{};
  ASSERT_TRUE(established(key, &v));
  EXPECT_EQ(v.backend_id, now);
  EXPECT_EQ(sluice_flow_value_hash(&v), hash_of(kVipId, key) & 0xFFFFFFu);
  EXPECT_EQ(send("192.0.2.34", 40000), now) << "the new connection's ACK follows its SYN";
  EXPECT_EQ(send("192.0.2.34", 40000, 0x12), now) << "a SYN-ACK is not a new connection";
  const auto g1 = global_stats();
  EXPECT_EQ(g1.flow_misses - g0.flow_misses, 1u);
  EXPECT_EQ(g1.flow_hits - g0.flow_hits, 2u);
  EXPECT_EQ(backend_stats(now).new_flows, 1u);
}

TEST_F(LbFlowTest, IcmpErrorFollowsTheFlowNotTheCurrentTable) {
  const auto key = flow_key("192.0.2.41", 40000, kVip, 80, kTcp);
  const uint32_t b = choice(kVipId, key);
  send("192.0.2.41", 40000, 0x02);
  send("192.0.2.41", 40000);
  publish_table(kVipId, {2, 3, 1});
  ASSERT_NE(choice(kVipId, key), b);

  const Bytes err = frame()
                        .ipv4({.src = "198.51.100.1", .dst = kVip})
                        .icmp({.type = 3, .code = 4, .rest = 1400})
                        .ipv4({.src = kVip, .dst = "192.0.2.41"})
                        .tcp({.sport = 80, .dport = 40000, .flags = 0x10})
                        .build();
  EXPECT_EQ(backend_of(run(err)), b);
}

// The same world provisioned through the real loader (xdp::Loader::publish
// of whole snapshots, Maglev tables from the core's builder): table swap,
// drain, removal and a reused backend slot as the daemon makes them.
class LbFlowLoaderTest : public LbFlowTest {
 protected:
  [[nodiscard]] bool through_loader() const override { return true; }

  // Establishes n flows (SYN, then ACK) from `client`, ports from `first`;
  // returns their backends.
  std::vector<uint32_t> establish(const std::string& client, uint16_t first, uint16_t n) {
    std::vector<uint32_t> got;
    for (uint16_t p = first; p < first + n; ++p) {
      send(client, p, 0x02);
      got.push_back(send(client, p));
      EXPECT_EQ(got.back(), choice(kVipId, flow_key(client, p, kVip, 80, kTcp)));
    }
    return got;
  }
  static std::vector<uint32_t> all_but(uint32_t id) {
    std::vector<uint32_t> rest;
    for (uint32_t b : {1u, 2u, 3u})
      if (b != id) rest.push_back(b);
    return rest;
  }
  // Removes backend `id` as the daemon does: out of every VIP's table and
  // the backend list, in one snapshot (the loader refuses a table naming a
  // backend the snapshot lacks).
  void remove_everywhere(uint32_t id) {
    batching_ = true;
    const auto vips = vips_;
    for (const auto& [vip_id, v] : vips) {
      std::vector<uint32_t> rest = v.backends;
      std::erase(rest, id);
      if (rest.size() != v.backends.size()) publish_table(vip_id, rest);
    }
    remove_backend(id);
    batching_ = false;
    publish_world();
  }
};

TEST_F(LbFlowLoaderTest, EstablishedFlowSticksAcrossATableSwap) {
  constexpr uint16_t kFlows = 40;
  const std::vector<uint32_t> before = establish("192.0.2.51", 2000, kFlows);
  std::vector<uint32_t> probation_before;
  for (uint16_t p = 3000; p < 3000 + kFlows; ++p)
    probation_before.push_back(send("192.0.2.51", p, 0x02));

  // A fourth backend: the new Maglev table moves about a quarter of flows.
  add_backend(4, "10.1.0.4");
  publish_table(kVipId, {1, 2, 3, 4});
  int moved = 0;
  for (uint16_t i = 0; i < kFlows; ++i) {
    const uint16_t port = static_cast<uint16_t>(2000 + i);
    moved += choice(kVipId, flow_key("192.0.2.51", port, kVip, 80, kTcp)) != before[i];
    EXPECT_EQ(send("192.0.2.51", port), before[i]) << "established flow moved by a table swap";
    EXPECT_EQ(send("192.0.2.51", static_cast<uint16_t>(3000 + i)), probation_before[i])
        << "probation flow moved by a table swap";
  }
  ASSERT_GT(moved, 0) << "the swap moved no flow: the test proves nothing";
  for (uint16_t p = 4000; p < 4000 + kFlows; ++p)
    EXPECT_EQ(send("192.0.2.51", p, 0x02),
              choice(kVipId, flow_key("192.0.2.51", p, kVip, 80, kTcp)))
        << "new flows use the new table";
}

TEST_F(LbFlowLoaderTest, DrainedBackendKeepsItsFlows) {
  const auto key = flow_key("192.0.2.34", 40000, kVip, 80, kTcp);
  const uint32_t b = choice(kVipId, key);
  send("192.0.2.34", 40000, 0x02);
  send("192.0.2.34", 40000);

  // Draining, as the daemon publishes it: flagged, out of the table.
  batching_ = true;
  add_backend(b, "10.1.0." + std::to_string(b), SLUICE_BACKEND_VALID | SLUICE_BACKEND_DRAINING);
  publish_table(kVipId, all_but(b));
  batching_ = false;
  publish_world();

  EXPECT_EQ(send("192.0.2.34", 40000), b);
  for (uint16_t port = 1000; port < 1050; ++port)
    EXPECT_NE(send("192.0.2.35", port, 0x02), b) << "a draining backend got a new flow";
}

TEST_F(LbFlowLoaderTest, RemovedBackendsFlowsAreRemapped) {
  const auto key = flow_key("192.0.2.36", 40000, kVip, 80, kTcp);
  const uint32_t b = choice(kVipId, key);
  send("192.0.2.36", 40000, 0x02);
  send("192.0.2.36", 40000);

  remove_everywhere(b);
  const uint32_t now = choice(kVipId, key);
  ASSERT_NE(now, b);

  const auto g0 = global_stats();
  EXPECT_EQ(send("192.0.2.36", 40000), now);
  EXPECT_EQ(global_stats().flow_misses - g0.flow_misses, 1u);
  sluice_flow_value v{};
  ASSERT_TRUE(established(key, &v)) << "a remapped flow stays established";
  EXPECT_EQ(v.backend_id, now);
  EXPECT_EQ(send("192.0.2.36", 40000), now);
}

TEST_F(LbFlowLoaderTest, BackendSlotReusedByAnotherIdIsAMiss) {
  const auto key = flow_key("192.0.2.37", 40000, kVip, 80, kTcp);
  const uint32_t b = choice(kVipId, key);
  send("192.0.2.37", 40000, 0x02);
  send("192.0.2.37", 40000);

  // Backend b is removed, then its slot taken by a new backend id (the
  // loader wants the removal published first).
  const uint32_t reused = b + SLUICE_MAX_BACKENDS;
  remove_everywhere(b);
  batching_ = true;
  add_backend(reused, "10.1.0.9");
  std::vector<uint32_t> ids;
  for (uint32_t id : {1u, 2u, 3u}) ids.push_back(id == b ? reused : id);
  publish_table(kVipId, ids);
  batching_ = false;
  publish_world();

  EXPECT_EQ(send("192.0.2.37", 40000), choice(kVipId, key));
  sluice_flow_value v{};
  ASSERT_TRUE(established(key, &v));
  EXPECT_EQ(v.backend_id, choice(kVipId, key));
}

TEST_F(LbFlowTest, IdleEntriesExpire) {
  const uint32_t idle = skel()->rodata->sluice_tcp_idle_ms;
  const auto fresh = flow_key("192.0.2.38", 40000, kVip, 80, kTcp);
  const auto stale = flow_key("192.0.2.39", 40000, kVip, 80, kTcp);
  const uint32_t pinned = other_than(choice(kVipId, fresh));
  inject_established(fresh, pinned, now_ms(), hash_of(kVipId, fresh));
  inject_established(stale, other_than(choice(kVipId, stale)), now_ms() - idle - 1000,
                     hash_of(kVipId, stale));

  EXPECT_EQ(send("192.0.2.38", 40000), pinned) << "a live entry decides over Maglev";
  EXPECT_EQ(send("192.0.2.39", 40000), choice(kVipId, stale)) << "an expired entry is a miss";

  // UDP entries expire after the UDP timeout; on probation as well.
  const auto udp = flow_key("192.0.2.40", 5353, kVip, 53, kUdp);
  sluice_flow_value v{};
  v.backend_id = other_than(choice(2, udp));
  v.last_seen = now_ms() - skel()->rodata->sluice_udp_idle_ms - 1000;
  v.state = SLUICE_FLOW_PROBATION;
  put_probation(2, udp, v);
  const XdpRun r = run(
      frame().ipv4({.src = "192.0.2.40", .dst = kVip}).udp({.sport = 5353, .dport = 53}).build());
  EXPECT_EQ(backend_of(r), choice(2, udp));
}

// A removed VIP's established flows are not forwarded any more, although
// their entries stay in the flow table: their packets pass to the kernel.
// Also when the VIP's slot is shared with another VIP (the hash map path).
TEST_F(LbFlowTest, RemovedVipsFlowsPass) {
  for (const bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "slot shared with another VIP" : "own slot");
    const auto key = flow_key("192.0.2.60", 40000, kVip, 80, kTcp);
    if (shared) add_vip({kVip, 80, kTcp, kVipId, 0, {1, 2, 3}});
    send("192.0.2.60", 40000, 0x02);
    send("192.0.2.60", 40000);
    sluice_flow_value v{};
    ASSERT_TRUE(established(key, &v));
    if (shared) {
      // Another VIP in the same slot: a port of the same address and
      // protocol whose slot is VIP 1's.
      const uint32_t index = sluice_vip_slot_index(&key.dst, key.dport, key.proto);
      uint16_t port = 81;
      while (sluice_vip_slot_index(&key.dst, sl_htons(port), key.proto) != index) ++port;
      add_vip({kVip, port, kTcp, 30, 0, {1, 2, 3}});
    }
    remove_vip(kVipId);
    const auto g0 = global_stats();
    EXPECT_EQ(run(tcp_packet("192.0.2.60", 40000)).verdict, XDP_PASS);
    EXPECT_EQ(global_stats().pass_packets - g0.pass_packets, 1u);
    EXPECT_TRUE(established(key, &v)) << "the entry stays; only its VIP is gone";
    if (shared) remove_vip(30);
  }
}

// The direct-mapped VIP slots: a packet whose slot holds another VIP passes;
// VIPs that share a slot are both found (through the hash map), and a
// non-VIP packet whose slot is that shared one passes too.
TEST_F(LbFlowTest, VipSlotsHoldingOtherVipsPassTheirNonVipPackets) {
  const auto vip1 = flow_key("192.0.2.61", 40000, kVip, 80, kTcp);
  const uint32_t index = sluice_vip_slot_index(&vip1.dst, vip1.dport, vip1.proto);
  std::vector<uint16_t> same_slot;  // other TCP ports of kVip in VIP 1's slot
  for (uint32_t port = 1; port <= 0xffff && same_slot.size() < 2; ++port)
    if (port != 80 && sluice_vip_slot_index(&vip1.dst, sl_htons(static_cast<uint16_t>(port)),
                                            kTcp) == index)
      same_slot.push_back(static_cast<uint16_t>(port));
  ASSERT_EQ(same_slot.size(), 2u);
  const auto to_port = [](uint16_t port) {
    return frame()
        .ipv4({.src = "192.0.2.61", .dst = kVip})
        .tcp({.sport = 40000, .dport = port, .flags = 0x02})
        .build();
  };

  auto g0 = global_stats();
  EXPECT_EQ(run(to_port(same_slot[0])).verdict, XDP_PASS)
      << "port " << same_slot[0] << " is no VIP although its slot holds one";
  EXPECT_EQ(global_stats().pass_packets - g0.pass_packets, 1u);

  add_vip({kVip, same_slot[0], kTcp, 31, 0, {3, 2, 1}});
  const auto vip31 = flow_key("192.0.2.61", 40000, kVip, same_slot[0], kTcp);
  EXPECT_EQ(send("192.0.2.61", 40000, 0x02), choice(kVipId, vip1));
  const XdpRun r = run(to_port(same_slot[0]));
  EXPECT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(backend_of(r), choice(31, vip31));
  EXPECT_EQ(vip_stats(31).packets, 1u);
  g0 = global_stats();
  EXPECT_EQ(run(to_port(same_slot[1])).verdict, XDP_PASS);
  EXPECT_EQ(global_stats().pass_packets - g0.pass_packets, 1u);
}

// Spoofed one-packet flows (a SYN flood) of 10 x the flow table's capacity,
// with a Maglev table change in the middle: every established flow keeps
// its backend, because new flows only ever enter the probation map.
class LbFloodTest : public LbFlowTest {
 protected:
  static constexpr uint32_t kFlowsPerCpu = 256;
  static constexpr uint32_t kNewFlowsPerCpu = 64;

  void before_load(sluice_lb_bpf* s) override {
    const auto ncpus = static_cast<uint32_t>(libbpf_num_possible_cpus());
    capacity_ = kFlowsPerCpu * ncpus;
    ASSERT_EQ(bpf_map__set_max_entries(s->maps.sluice_flows, capacity_), 0);
    s->rodata->sluice_probation_slots = kNewFlowsPerCpu;
  }

  uint32_t capacity_ = 0;
};

TEST_F(LbFloodTest, EstablishedFlowsSurviveASynFloodAndATableChange) {
  constexpr int kEstablished = 100;
  std::vector<uint32_t> backend(kEstablished);
  for (int i = 0; i < kEstablished; ++i) {
    const std::string client = "192.0.2." + std::to_string(i + 100);
    backend[i] = send(client, 40000, 0x02);
    ASSERT_EQ(send(client, 40000), backend[i]);
  }

  const uint32_t syns = 10 * capacity_;
  for (uint32_t n = 0; n < syns; ++n) {
    if (n == syns / 2) publish_table(kVipId, {2, 3, 1});  // every slot changes
    const std::string spoofed = "100.64." + std::to_string(n / 250) + "." + std::to_string(n % 250);
    const XdpRun r = run(tcp_packet(spoofed, static_cast<uint16_t>(1024 + n % 60000), 0x02));
    ASSERT_EQ(r.verdict, XDP_TX);
  }

  for (int i = 0; i < kEstablished; ++i) {
    const std::string client = "192.0.2." + std::to_string(i + 100);
    const auto key = flow_key(client, 40000, kVip, 80, kTcp);
    ASSERT_NE(choice(kVipId, key), backend[i]) << "the table change must matter for " << client;
    EXPECT_EQ(send(client, 40000), backend[i]) << client << " lost its backend";
    sluice_flow_value v{};
    EXPECT_TRUE(established(key, &v)) << client << " evicted";
  }
  EXPECT_EQ(global_stats().flow_insert_failed, 0u);
  // The flood only ever overwrote probation slots: the established table
  // holds the established flows and nothing else.
  size_t entries = 0;
  sluice_flow_key k{};
  sluice_flow_key next{};
  for (const void* p = nullptr; bpf_map_get_next_key(fd(skel()->maps.sluice_flows), p, &next) == 0;
       p = &k) {
    k = next;
    ++entries;
  }
  EXPECT_EQ(entries, static_cast<size_t>(kEstablished));
  EXPECT_EQ(take_probation().size(), kNewFlowsPerCpu) << "every probation slot taken by the flood";
}

}  // namespace
}  // namespace sluice::test
