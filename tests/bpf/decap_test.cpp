// SPDX-License-Identifier: BSD-2-Clause
// sluice_decap: encapsulated VIP packets come out as the inner packet
// (XDP_PASS, outer header gone, L2 kept), everything else untouched; and
// what sluice_lb sends, sluice_decap restores.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/bpf/bpf_test_util.hpp"
#include "tests/bpf/lb_fixture.hpp"
#include "tests/bpf/packet_craft.hpp"
#include "xdp/decap_skeleton.hpp"
#include "xdp/sluice_decap.h"

namespace sluice::test {
namespace {

constexpr Mac kBackendMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x42};

// Owns a loaded sluice_decap with a set of VIPs.
class Decap {
 public:
  void load() {
    auto opened = DecapSkeleton::open("sluice_decap");
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    skel_.emplace(std::move(opened.value()));
    ASSERT_EQ(skel_->load(), 0) << "the verifier rejected sluice_decap (log above)";
  }
  void add_vip(std::string_view addr) {
    const IpAddress a = ip(addr);
    sluice_decap_vip k{};
    k.addr = a.ip;
    k.family = a.family;
    const uint8_t one = 1;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd((*skel_)->maps.sluice_decapvip), &k, &one, BPF_ANY),
              0);
  }
  XdpRun run(const Bytes& in) {
    XdpRun r = run_xdp(bpf_program__fd((*skel_)->progs.sluice_decap), in);
    EXPECT_EQ(r.err, 0);
    return r;
  }
  sluice_decap_stats stats() {
    return sum_percpu<sluice_decap_stats>(bpf_map__fd((*skel_)->maps.sluice_decapctr), 0);
  }

 private:
  std::optional<DecapSkeleton> skel_;
};

class DecapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_SKIP_WITHOUT_BPF();
    decap_.load();
    if (HasFatalFailure()) return;
    decap_.add_vip("10.0.0.1");
    decap_.add_vip("2001:db8::1");
  }
  Decap decap_;
};

PacketCraft to_backend4() {
  return PacketCraft().eth(kBackendMac, kGatewayMac).ipv4(ip("10.255.0.7"), ip("10.1.0.1")).df();
}
PacketCraft to_backend6() {
  return PacketCraft()
      .eth(kBackendMac, kGatewayMac)
      .ipv6(ip("2001:db8:ffff::7"), ip("2001:db8:1::1"));
}

struct Row {
  std::string name;
  Bytes in;
  Bytes out;  // empty: untouched
};

TEST_F(DecapTest, FixtureTable) {
  const Bytes inner4 =
      PacketCraft().ipv4(ip("192.0.2.10"), ip("10.0.0.1")).tcp(40000, 80).payload(16).build();
  const Bytes inner6 = PacketCraft()
                           .ipv6(ip("2001:db8:c::10"), ip("2001:db8::1"))
                           .tcp(40000, 443)
                           .payload(16)
                           .build();
  const Bytes l2_4 = eth_header(kBackendMac, kGatewayMac, Bytes(14), 0, SLUICE_ETH_P_IP);
  const Bytes l2_6 = eth_header(kBackendMac, kGatewayMac, Bytes(14), 0, SLUICE_ETH_P_IPV6);
  const auto wrap4 = [](PacketCraft c, const Bytes& inner, uint8_t proto) {
    return c.ip_proto(proto).payload(inner).build();
  };

  const std::vector<Row> rows = {
      {"IPv4-in-IPv4", wrap4(to_backend4(), inner4, SLUICE_IPPROTO_IPIP), cat({l2_4, inner4})},
      {"IPv6-in-IPv6", wrap4(to_backend6(), inner6, SLUICE_IPPROTO_IPV6), cat({l2_6, inner6})},
      {"IPv4-in-IPv6", wrap4(to_backend6(), inner4, SLUICE_IPPROTO_IPIP), cat({l2_4, inner4})},
      {"IPv6-in-IPv4", wrap4(to_backend4(), inner6, SLUICE_IPPROTO_IPV6), cat({l2_6, inner6})},
      {"IPv4-in-IPv4 behind a VLAN tag, kept",
       PacketCraft()
           .eth(kBackendMac, kGatewayMac)
           .vlan(7)
           .ipv4(ip("10.255.0.7"), ip("10.1.0.1"))
           .ip_proto(SLUICE_IPPROTO_IPIP)
           .payload(inner4)
           .build(),
       cat({PacketCraft().eth(kBackendMac, kGatewayMac).vlan(7).ethertype(SLUICE_ETH_P_IP).build(),
            inner4})},
      {"inner destination is no VIP of this backend",
       wrap4(to_backend4(),
             PacketCraft().ipv4(ip("192.0.2.10"), ip("10.0.0.9")).tcp(40000, 80).build(),
             SLUICE_IPPROTO_IPIP),
       {}},
      {"inner protocol field says IPv6, header is IPv4",
       wrap4(to_backend4(), inner4, SLUICE_IPPROTO_IPV6),
       {}},
      {"plain TCP to the VIP",
       PacketCraft()
           .eth(kBackendMac, kGatewayMac)
           .ipv4(ip("192.0.2.10"), ip("10.0.0.1"))
           .tcp(40000, 80)
           .build(),
       {}},
      {"outer IPv4 with options",
       to_backend4()
           .ip_options({0x94, 0x04, 0, 0})
           .ip_proto(SLUICE_IPPROTO_IPIP)
           .payload(inner4)
           .build(),
       {}},
      {"outer IPv4 fragment",
       to_backend4().frag(0, true).ip_proto(SLUICE_IPPROTO_IPIP).payload(inner4).build(),
       {}},
      {"inner header cut short",
       wrap4(to_backend4(), slice(inner4, 0, 12), SLUICE_IPPROTO_IPIP),
       {}},
      {"outer IPv6 with an extension header",
       to_backend6().ext6(60).ip_proto(SLUICE_IPPROTO_IPV6).payload(inner6).build(),
       {}},
      {"ARP",
       PacketCraft().eth(kBackendMac, kGatewayMac).ethertype(0x0806).payload(28).build(),
       {}},
  };

  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const auto s0 = decap_.stats();
    const XdpRun r = decap_.run(row.in);
    EXPECT_EQ(r.verdict, XDP_PASS);
    const bool strip = !row.out.empty();
    EXPECT_EQ(r.out, strip ? row.out : row.in);
    const auto s1 = decap_.stats();
    EXPECT_EQ(s1.decap_packets - s0.decap_packets, strip ? 1u : 0u);
    EXPECT_EQ(s1.pass_packets - s0.pass_packets, strip ? 0u : 1u);
  }
}

// What the load balancer sends, the decapsulator turns back into the
// client's packet (with the next hop's L2 addresses).
class RoundTripTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    provision_world();
    decap_.load();
    if (HasFatalFailure()) return;
    decap_.add_vip("10.0.0.1");
    decap_.add_vip("10.0.0.3");
    decap_.add_vip("2001:db8::1");
    decap_.add_vip("2001:db8::3");
  }
  Decap decap_;
};

TEST_F(RoundTripTest, LbThenDecapGivesBackTheClientPacket) {
  const PacketCraft client = PacketCraft().eth(kLbMac, kRouterMac);
  const std::vector<std::pair<Bytes, size_t>> inputs = {
      {PacketCraft(client)
           .ipv4(ip("192.0.2.10"), ip("10.0.0.1"))
           .tcp(40000, 80)
           .payload(100)
           .build(),
       0},
      {PacketCraft(client).ipv4(ip("192.0.2.10"), ip("10.0.0.3")).tcp(40000, 80).build(), 0},
      {PacketCraft(client)
           .vlan(5)
           .ipv6(ip("2001:db8:c::10"), ip("2001:db8::1"))
           .tcp(40000, 443)
           .build(),
       1},
      {PacketCraft(client).ipv6(ip("2001:db8:c::10"), ip("2001:db8::3")).tcp(40000, 80).build(), 0},
  };
  for (const auto& [in, ntags] : inputs) {
    const XdpRun lb = run(in);
    ASSERT_EQ(lb.verdict, XDP_TX);
    const XdpRun back = decap_.run(lb.out);
    EXPECT_EQ(back.verdict, XDP_PASS);
    const size_t l2 = 14 + 4 * ntags;
    const uint16_t type = static_cast<uint16_t>(in[l2 - 2] << 8 | in[l2 - 1]);
    EXPECT_EQ(back.out, cat({eth_header(kGatewayMac, kLbMac, in, ntags, type), slice(in, l2)}));
  }
  EXPECT_EQ(decap_.stats().decap_packets, inputs.size());
}

}  // namespace
}  // namespace sluice::test
