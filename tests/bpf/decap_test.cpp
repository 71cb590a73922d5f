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

#include "dataplane/abi/encap.h"
#include "tests/bpf/bpf_test_util.hpp"
#include "tests/bpf/lb_fixture.hpp"
#include "tests/common/packet_builder.hpp"
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
    const IpAddress a = address(std::string(addr));
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

PacketBuilder at_backend() { return PacketBuilder().eth({.dst = kBackendMac, .src = kGatewayMac}); }

// The outer header sluice_lb puts in front of what a backend receives.
Ipv4Spec outer4() { return {.src = "10.255.0.7", .dst = "10.1.0.1", .dont_fragment = true}; }
Ipv6Spec outer6() { return {.src = "2001:db8:ffff::7", .dst = "2001:db8:1::1"}; }

// An L2 header ending in EtherType `type`.
Bytes eth_only(uint16_t type) { return at_backend().raw({.ethertype = type}).build(); }

struct Row {
  std::string name;
  Bytes in;
  Bytes out;  // empty: untouched
};

TEST_F(DecapTest, FixtureTable) {
  const Bytes inner4 = PacketBuilder()
                           .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1"})
                           .tcp({.sport = 40000, .dport = 80})
                           .payload(pattern(16))
                           .build_ip();
  const Bytes inner6 = PacketBuilder()
                           .ipv6({.src = "2001:db8:c::10", .dst = "2001:db8::1"})
                           .tcp({.sport = 40000, .dport = 443})
                           .payload(pattern(16))
                           .build_ip();
  const Bytes l2_4 = eth_only(SLUICE_ETH_P_IP);
  const Bytes l2_6 = eth_only(SLUICE_ETH_P_IPV6);
  // `inner` behind an outer header that names it `proto`.
  const auto in4 = [](const Bytes& inner, uint8_t proto, Ipv4Spec outer = outer4()) {
    return at_backend().ipv4(outer).raw({.bytes = inner, .proto = proto}).build();
  };
  const auto in6 = [](const Bytes& inner, uint8_t proto) {
    return at_backend().ipv6(outer6()).raw({.bytes = inner, .proto = proto}).build();
  };
  Ipv4Spec with_options = outer4();
  with_options.options = {0x94, 0x04, 0, 0};
  Ipv4Spec fragment = outer4();
  fragment.more_fragments = true;

  const std::vector<Row> rows = {
      {"IPv4-in-IPv4", in4(inner4, SLUICE_IPPROTO_IPIP), cat({l2_4, inner4})},
      {"IPv6-in-IPv6", in6(inner6, SLUICE_IPPROTO_IPV6), cat({l2_6, inner6})},
      {"IPv4-in-IPv6", in6(inner4, SLUICE_IPPROTO_IPIP), cat({l2_4, inner4})},
      {"IPv6-in-IPv4", in4(inner6, SLUICE_IPPROTO_IPV6), cat({l2_6, inner6})},
      {"IPv4-in-IPv4 behind a VLAN tag, kept",
       at_backend()
           .vlan({.vid = 7})
           .ipv4(outer4())
           .raw({.bytes = inner4, .proto = SLUICE_IPPROTO_IPIP})
           .build(),
       cat({at_backend().vlan({.vid = 7}).raw({.ethertype = SLUICE_ETH_P_IP}).build(), inner4})},
      {"inner destination is no VIP of this backend",
       in4(PacketBuilder()
               .ipv4({.src = "192.0.2.10", .dst = "10.0.0.9"})
               .tcp({.sport = 40000, .dport = 80})
               .build_ip(),
           SLUICE_IPPROTO_IPIP),
       {}},
      {"inner protocol field says IPv6, header is IPv4", in4(inner4, SLUICE_IPPROTO_IPV6), {}},
      {"plain TCP to the VIP",
       at_backend()
           .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1"})
           .tcp({.sport = 40000, .dport = 80})
           .build(),
       {}},
      {"outer IPv4 with options", in4(inner4, SLUICE_IPPROTO_IPIP, with_options), {}},
      {"outer IPv4 fragment", in4(inner4, SLUICE_IPPROTO_IPIP, fragment), {}},
      {"inner header cut short", in4(slice(inner4, 0, 12), SLUICE_IPPROTO_IPIP), {}},
      {"outer IPv6 with an extension header",
       at_backend()
           .ipv6(outer6())
           .ipv6_ext({.type = SLUICE_IPPROTO_DSTOPTS})
           .raw({.bytes = inner6, .proto = SLUICE_IPPROTO_IPV6})
           .build(),
       {}},
      {"ARP", at_backend().raw({.bytes = pattern(28), .ethertype = 0x0806}).build(), {}},
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

// RFC 6040 section 4.2 on every tunnel kind: the outer ECN field folds into
// the inner one (sluice_ecn_decap, checked against the RFC's table in
// tests/unit/csum_test.cpp) with the inner DSCP and an IPv4 checksum that
// equals a recomputation (the builder computes the expected one); outer CE
// over a not-ECT inner packet is a counted drop.
TEST_F(DecapTest, OuterEcnIsFoldedIntoTheInnerHeader) {
  const uint8_t kInnerDscp = 0xB8;  // EF, kept whatever the outer says
  const uint8_t kOuterDscp = 0x28;
  const auto inner = [](bool v6, uint8_t tos) {
    PacketBuilder b;
    if (v6)
      b.ipv6({.src = "2001:db8:c::10", .dst = "2001:db8::1", .traffic_class = tos});
    else
      b.ipv4({.src = "192.0.2.10", .dst = "10.0.0.1", .tos = tos});
    return b.tcp({.sport = 40000, .dport = 80}).payload(pattern(16)).build_ip();
  };
  int cases = 0;
  for (const bool outer_v6 : {false, true})
    for (const bool inner_v6 : {false, true})
      for (uint8_t in_ecn = 0; in_ecn < 4; ++in_ecn)
        for (uint8_t out_ecn = 0; out_ecn < 4; ++out_ecn) {
          SCOPED_TRACE(::testing::Message()
                       << (inner_v6 ? "IPv6" : "IPv4") << "-in-" << (outer_v6 ? "IPv6" : "IPv4")
                       << " inner ECN " << int(in_ecn) << " outer ECN " << int(out_ecn));
          const uint8_t proto = inner_v6 ? SLUICE_IPPROTO_IPV6 : SLUICE_IPPROTO_IPIP;
          const Bytes arriving = inner(inner_v6, kInnerDscp | in_ecn);
          PacketBuilder b = at_backend();
          if (outer_v6) {
            Ipv6Spec o = outer6();
            o.traffic_class = kOuterDscp | out_ecn;
            b.ipv6(o);
          } else {
            Ipv4Spec o = outer4();
            o.tos = kOuterDscp | out_ecn;
            b.ipv4(o);
          }
          const Bytes in = b.raw({.bytes = arriving, .proto = proto}).build();
          const uint8_t want = sluice_ecn_decap(in_ecn, out_ecn);
          const auto s0 = decap_.stats();
          const XdpRun r = decap_.run(in);
          const auto s1 = decap_.stats();
          ++cases;
          if (want == SLUICE_ECN_DROP) {
            EXPECT_EQ(r.verdict, XDP_DROP);
            EXPECT_EQ(s1.ecn_dropped - s0.ecn_dropped, 1u);
            EXPECT_EQ(s1.decap_packets - s0.decap_packets, 0u);
            continue;
          }
          EXPECT_EQ(r.verdict, XDP_PASS);
          EXPECT_EQ(s1.decap_packets - s0.decap_packets, 1u);
          EXPECT_EQ(s1.ecn_dropped - s0.ecn_dropped, 0u);
          const Bytes l2 = eth_only(inner_v6 ? SLUICE_ETH_P_IPV6 : SLUICE_ETH_P_IP);
          EXPECT_EQ(r.out, cat({l2, inner(inner_v6, kInnerDscp | want)}));
        }
  EXPECT_EQ(cases, 64);
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
  const auto client = [] { return PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac}); };
  const std::vector<std::pair<Bytes, size_t>> inputs = {
      {client()
           .ipv4({.src = "192.0.2.10", .dst = "10.0.0.1"})
           .tcp({.sport = 40000, .dport = 80})
           .payload(pattern(100))
           .build(),
       0},
      {client()
           .ipv4({.src = "192.0.2.10", .dst = "10.0.0.3"})
           .tcp({.sport = 40000, .dport = 80})
           .build(),
       0},
      {client()
           .vlan({.vid = 5})
           .ipv6({.src = "2001:db8:c::10", .dst = "2001:db8::1"})
           .tcp({.sport = 40000, .dport = 443})
           .build(),
       1},
      {client()
           .ipv6({.src = "2001:db8:c::10", .dst = "2001:db8::3"})
           .tcp({.sport = 40000, .dport = 80})
           .build(),
       0},
  };
  for (const auto& [in, ntags] : inputs) {
    const XdpRun lb = run(in);
    ASSERT_EQ(lb.verdict, XDP_TX);
    const XdpRun back = decap_.run(lb.out);
    EXPECT_EQ(back.verdict, XDP_PASS);
    const size_t l2 = 14 + 4 * ntags;
    const uint16_t type = static_cast<uint16_t>(in[l2 - 2] << 8 | in[l2 - 1]);
    EXPECT_EQ(back.out, cat({l2_header(in, ntags, kGatewayMac, kLbMac, type), slice(in, l2)}));
  }
  EXPECT_EQ(decap_.stats().decap_packets, inputs.size());
}

}  // namespace
}  // namespace sluice::test
