// SPDX-License-Identifier: BSD-2-Clause
// sluice_lb decides as the core does (DESIGN.md: a decision is written
// once, and a test proves both fast paths give the same answer on the same
// packets). Each frame goes through the core's packet path -- parse_packet,
// the VIP's Maglev choice, encap_frame, build_icmp_too_big -- and through
// BPF_PROG_TEST_RUN, and the two must agree on what happens (forward,
// pass, or drop and why, counters included), on the bytes sent, and on the
// flow key. The XDP program's key is observed where it lands: a first
// packet to a VIP leaves exactly one key in the probation map
// sluice_newflows. ICMP errors only read the flow table, so their key is
// observed through it: the core's key is pinned to a backend no Maglev
// table names, and the error must be sent there.
//
// Frames: the parser's whole fixture table, every accepted frame cut at
// every length, every accepted IP packet shortened to every length, and
// packets too big for the MTU once encapsulated.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/core/encap.hpp"
#include "dataplane/core/icmp_too_big.hpp"
#include "dataplane/core/packet_parser.hpp"
#include "tests/bpf/lb_fixture.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/common/parser_fixtures.hpp"

namespace sluice::test {
namespace {

// Reached only through a flow entry: the proof that an ICMP error's key
// found the flow. One per family.
constexpr uint32_t kPinned4 = 99;
constexpr uint32_t kPinned6 = 98;

// Room in front of a frame for the core's outer header or ICMP reply.
constexpr size_t kHeadroom = 64;

using Case = std::pair<std::string, Bytes>;

// What the fast path must do with one frame, from the core's packet path.
struct Expected {
  enum Fate { kForward, kFlowHit, kPass, kDrop } fate = kPass;
  uint32_t verdict = XDP_PASS;
  Bytes out;                    // the frame sent (XDP_TX)
  sluice_global_stats delta{};  // global counters
  sluice_flow_key key{};        // kForward, kFlowHit: the flow
  bool creates_flow = false;    // a first packet of key: left on probation
  std::string trouble;          // the core could not decide (a test bug)
};

const char* fate_name(Expected::Fate f) {
  switch (f) {
    case Expected::kForward:
      return "forward";
    case Expected::kFlowHit:
      return "flow-table hit";
    case Expected::kPass:
      return "pass";
    case Expected::kDrop:
      return "drop";
  }
  return "?";
}

class LbCoreDiffTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    add_backend(1, "10.1.0.1");
    add_backend(2, "10.1.0.2");
    add_backend(3, "10.1.0.3");
    add_backend(kPinned4, "10.1.0.99");
    add_backend(11, "2001:db8:1::1");
    add_backend(12, "2001:db8:1::2");
    add_backend(13, "2001:db8:1::3");
    add_backend(kPinned6, "2001:db8:1::99");
    // Every port of the fixtures' VIP addresses, both protocols; each
    // family's backends are of its own family (encap_frame refuses IPv6 in
    // IPv4).
    add_vip({kVipV4, 0, kTcp, 1, 0, {1, 2, 3}});
    add_vip({kVipV4, 0, kUdp, 2, 0, {1, 2, 3}});
    add_vip({kVipV6, 0, kTcp, 3, 0, {11, 12, 13}});
    add_vip({kVipV6, 0, kUdp, 4, 0, {11, 12, 13}});
  }

  static uint32_t vip_of(const sluice_flow_key& k) {
    return (k.family == SLUICE_FAMILY_IPV6 ? 3 : 1) + (k.proto == SLUICE_IPPROTO_UDP ? 1 : 0);
  }

  // The core's packet path for one frame, every test frame being addressed
  // to a VIP of this world.
  [[nodiscard]] Expected core_path(const Bytes& frame) const {
    Expected e;
    const ParseResult r = parse_packet(frame.data(), frame.size());
    if (is_reject(r.status)) {
      e.fate = Expected::kDrop;
      e.verdict = XDP_DROP;
      e.delta = dropped(frame.size(), parse_drop_reason(r.status));
      return e;
    }
    if (r.status != ParseStatus::kOk) {
      // kNotIp, kIcmpOther, and kUnsupportedL4: a VIP is an (address, port,
      // TCP or UDP) triple (sluice_vip_key), so another protocol matches no
      // VIP and is not VIP traffic (DESIGN.md, packet path step 2).
      e.delta = passed(frame.size());
      e.out = frame;
      return e;
    }
    if (r.is_fragment && r.key.proto != SLUICE_IPPROTO_TCP && r.key.proto != SLUICE_IPPROTO_UDP) {
      // A later IPv6 fragment behind destination options or routing: only
      // its first fragment's record gives its protocol, and no fixture has
      // one, so no VIP matches and it is passed as unmatched.
      e.delta = passed(frame.size());
      e.delta.frag_unmatched = 1;
      e.out = frame;
      return e;
    }
    e.key = r.key;
    const uint32_t vip = vip_of(r.key);
    const bool v6 = r.key.family == SLUICE_FAMILY_IPV6;
    const uint32_t backend_id = r.is_icmp_error ? (v6 ? kPinned6 : kPinned4) : choice(vip, r.key);
    const sluice_backend& b = backends_.at(backend_id);
    e.fate = r.is_icmp_error ? Expected::kFlowHit : Expected::kForward;
    e.creates_flow = !r.is_icmp_error;

    BufferedFrame t = in_buffer(frame, r.l3_offset, kHeadroom);
    FrameSpan span = t.span;
    EncapSettings settings;
    settings.config = encap_config_;
    EncapTarget target;
    target.addr = b.addr;
    target.family = b.family;
    target.flow_hash = hash_of(vip, r.key);
    const EncapStatus st =
        encap_frame(t.buf.data(), t.buf.size(), span, r.l3_offset, settings, target);
    if (st == EncapStatus::kOk) {
      e.verdict = XDP_TX;
      e.delta = forwarded(frame.size(), r.is_icmp_error);
      e.out = slice(t.buf, span.off, span.len);
      // The fast path addresses the frame to its next hop.
      std::copy(kGatewayMac.begin(), kGatewayMac.end(), e.out.begin());
      std::copy(kLbMac.begin(), kLbMac.end(), e.out.begin() + 6);
      return e;
    }
    if (st != EncapStatus::kTooBig) {
      e.trouble = std::string("encap_frame: ") + to_string(st);
      return e;
    }
    const uint16_t frag =
        r.key.family == SLUICE_FAMILY_IPV4 ? get_be16(&frame.at(r.l3_offset + 6)) : 0;
    e.delta = dropped(frame.size(), sluice_too_big_reason(r.key.family, frag));
    (r.is_icmp_error ? e.delta.flow_hits : e.delta.flow_misses) = 1;
    const IcmpStatus ist = build_icmp_too_big(t.buf.data(), t.buf.size(), span, r.l3_offset,
                                              encap_inner_mtu(encap_config_, b.family));
    if (ist == IcmpStatus::kBuilt) {
      e.verdict = XDP_TX;
      e.delta.icmp_too_big_sent = 1;
      e.out = slice(t.buf, span.off, span.len);
    } else if (ist == IcmpStatus::kSuppressed) {
      e.verdict = XDP_DROP;
    } else {
      e.trouble = std::string("build_icmp_too_big: ") + to_string(ist);
    }
    return e;
  }

  // A small probation table, so that take_probation scans it quickly
  // after every frame.
  void before_load(sluice_lb_bpf* s) override {
    s->rodata->sluice_probation_slots = kProbationSlots;
  }
  static constexpr uint32_t kProbationSlots = 64;

  // Runs `frame` through sluice_lb; returns "" when it did what the core's
  // path does, else what differed.
  std::string mismatch(const Bytes& frame) {
    const Expected want = core_path(frame);
    if (!want.trouble.empty()) return "the core could not decide: " + want.trouble;
    if (want.fate == Expected::kFlowHit) {
      const bool v6 = want.key.family == SLUICE_FAMILY_IPV6;
      inject_established(want.key, v6 ? kPinned6 : kPinned4, now_ms(),
                         hash_of(vip_of(want.key), want.key));
    }
    const auto g0 = global_stats();
    const XdpRun r = run(frame);
    const auto g1 = global_stats();
    const std::vector<sluice_flow_key> probation = take_probation();
    if (want.fate == Expected::kFlowHit) {
      bpf_map_delete_elem(fd(skel()->maps.sluice_flows), &want.key);
    }
    if (r.err != 0) return "BPF_PROG_TEST_RUN failed";

    std::string why;
    const auto differs = [&](const std::string& what) { why += (why.empty() ? "" : "; ") + what; };
    if (r.verdict != want.verdict) {
      differs(std::string("core: ") + fate_name(want.fate) + ", verdict " +
              std::to_string(want.verdict) + "; XDP verdict " + std::to_string(r.verdict));
    } else if (r.verdict != XDP_DROP && r.out != want.out) {
      differs("the frames sent differ");
    }
    if (want.creates_flow) {
      if (probation.size() != 1 || !same_key(probation[0], want.key)) {
        differs("probation map holds " + std::to_string(probation.size()) + " key(s)" +
                (probation.empty() ? "" : ", first " + key_text(probation[0])) + ", core key " +
                key_text(want.key));
      }
    } else if (!probation.empty()) {
      differs(std::string("a ") + fate_name(want.fate) + " left a probation entry " +
              key_text(probation[0]));
    }
    uint64_t d[sizeof want.delta / 8], a[sizeof g1 / 8], b[sizeof g0 / 8];
    std::memcpy(d, &want.delta, sizeof d);
    std::memcpy(a, &g1, sizeof a);
    std::memcpy(b, &g0, sizeof b);
    for (size_t i = 0; i < sizeof d / 8; ++i) {
      if (a[i] - b[i] != d[i]) {
        differs("global counter #" + std::to_string(i) + " moved by " +
                std::to_string(a[i] - b[i]) + ", not " + std::to_string(d[i]));
      }
    }
    return why;
  }

  // Checks every frame of `cases`; reports the first mismatches in full
  // and how many there were.
  void expect_all_agree(const std::vector<Case>& cases) {
    size_t failures = 0;
    for (const auto& [name, frame] : cases) {
      // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet
      // header (EINVAL), as drivers never deliver one.
      if (frame.size() < SLUICE_ETH_HLEN) continue;
      const std::string why = mismatch(frame);
      if (why.empty()) continue;
      if (++failures <= 20) ADD_FAILURE() << name << ": " << why;
    }
    EXPECT_EQ(failures, 0u) << "of " << cases.size() << " frames";
  }
};

TEST_F(LbCoreDiffTest, ParserFixtureTable) {
  std::vector<Case> cases;
  for (const Fixture& fx : parser_fixtures()) cases.emplace_back(fx.name, fx.frame);
  expect_all_agree(cases);
}

// Every frame the parser accepts, cut at every length: the bounds checks
// of both meet the end of the frame everywhere.
TEST_F(LbCoreDiffTest, EveryTruncation) {
  std::vector<Case> cases;
  for (const Fixture& fx : parser_fixtures()) {
    if (is_reject(fx.want.status)) continue;
    for (size_t n = 0; n < fx.frame.size(); ++n) {
      cases.emplace_back(fx.name + " cut to " + std::to_string(n), slice(fx.frame, 0, n));
    }
  }
  expect_all_agree(cases);
}

// Every accepted IP frame with its IP packet shortened to every length
// from its header on (length field rewritten to agree, IPv4 header
// checksum recomputed, frame ending at the IP end): the L4,
// extension-header and ICMP-quote checks meet the end of the IP packet.
TEST_F(LbCoreDiffTest, EveryShortenedIpPacket) {
  std::vector<Case> cases;
  for (const Fixture& fx : parser_fixtures()) {
    if (is_reject(fx.want.status) || fx.want.status == ParseStatus::kNotIp) continue;
    const ParseResult whole = parse_packet(fx.frame.data(), fx.frame.size());
    const size_t l3 = whole.l3_offset;
    const bool v4 = whole.key.family == SLUICE_FAMILY_IPV4;
    const size_t hdr = v4 ? size_t{fx.frame[l3] & 0x0Fu} * 4 : SLUICE_IPV6_HLEN;
    for (size_t c = l3 + hdr; c <= l3 + whole.ip_len; ++c) {
      Bytes b = slice(fx.frame, 0, c);
      if (v4) {
        put_be16(b, l3 + 2, static_cast<uint16_t>(c - l3));
        put_be16(b, l3 + 10, 0);
        put_be16(b, l3 + 10, checksum(&b[l3], hdr));
      } else {
        put_be16(b, l3 + 4, static_cast<uint16_t>(c - l3 - SLUICE_IPV6_HLEN));
      }
      cases.emplace_back(fx.name + " IP packet shortened to " + std::to_string(c - l3), b);
    }
  }
  expect_all_agree(cases);
}

// Packets around the MTU (1500 with the outer header): forwarded at it,
// answered or dropped past it, by every rule of build_icmp_too_big.
TEST_F(LbCoreDiffTest, TooBigPackets) {
  // An IPv4 / IPv6 client packet whose IP packet is `ip_len` bytes.
  const auto v4 = [](size_t ip_len, Ipv4Spec ip = {.dont_fragment = true},
                     std::vector<VlanSpec> vlans = {}, EthSpec eth = {}) {
    PacketBuilder b;
    b.eth(eth);
    for (const auto& v : vlans) b.vlan(v);
    const size_t hdr = SLUICE_IPV4_HLEN + (ip.options.size() + 3) / 4 * 4;
    b.ipv4(ip).tcp({.flags = 0x10}).payload(pattern(ip_len - hdr - 20));
    return b.build();
  };
  const auto v6 = [](size_t ip_len, Ipv6Spec ip = {}, std::vector<Ipv6ExtSpec> ext = {}) {
    PacketBuilder b;
    b.ipv6(ip);
    size_t hdr = SLUICE_IPV6_HLEN;
    for (const auto& e : ext) {
      b.ipv6_ext(e);
      hdr += e.type == SLUICE_IPPROTO_FRAGMENT ? 8 : e.len;
    }
    b.udp().payload(pattern(ip_len - hdr - 8));
    return b.build();
  };
  const auto fragment = [](Ipv4Spec ip, size_t ip_len) {
    return PacketBuilder()
        .ipv4(ip)
        .raw({.bytes = pattern(ip_len - SLUICE_IPV4_HLEN), .proto = SLUICE_IPPROTO_UDP})
        .build();
  };

  const std::vector<Case> cases = {
      {"IPv4 at the MTU", v4(1480)},
      {"IPv4 one byte over, DF: frag-needed", v4(1481)},
      {"IPv4 far over, DF", v4(3000)},
      {"IPv4 over, no DF: dropped, no reply", v4(1481, {})},
      {"IPv4 over behind QinQ",
       v4(1500, {.dont_fragment = true}, {{.vid = 3, .tpid = SLUICE_ETH_P_8021AD}, {.vid = 4}})},
      {"IPv4 with options over", v4(1500, {.dont_fragment = true, .options = Bytes(12, 1)})},
      {"IPv4 first fragment over (DF+MF)",
       fragment({.dont_fragment = true, .more_fragments = true}, 1490)},
      // The later fragments are of other datagrams (ids) than the first
      // fragments above: a later fragment of a dropped first is dropped as
      // FRAG_OF_DROPPED, by state (sluice_frags) the core does not keep.
      {"IPv4 later fragment over: no reply",
       fragment({.id = 8, .dont_fragment = true, .frag_offset = 1480}, 1490)},
      {"from 0/8: no reply", v4(1500, {.src = "0.1.2.3", .dont_fragment = true})},
      {"from loopback: no reply", v4(1500, {.src = "127.0.0.9", .dont_fragment = true})},
      {"from multicast: no reply", v4(1500, {.src = "239.1.1.1", .dont_fragment = true})},
      {"from the broadcast address: no reply",
       v4(1500, {.src = "255.255.255.255", .dont_fragment = true})},
      {"to a link-layer broadcast: no reply",
       v4(1500, {.dont_fragment = true}, {}, {.dst = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})},
      {"to a link-layer multicast: no reply",
       v4(1500, {.dont_fragment = true}, {}, {.dst = {0x01, 0x00, 0x5e, 0, 0, 1}})},
      {"ICMP error about a flow, over: no reply",
       PacketBuilder()
           .ipv4({.src = kRouterV4, .dst = kVipV4, .dont_fragment = true})
           .icmp_error(3, 4, head(v4_reply(SLUICE_IPPROTO_UDP), 28), 1400)
           .payload(pattern(1460))
           .build()},
      {"IPv6 at the MTU", v6(1460)},
      {"IPv6 one byte over: packet-too-big", v6(1461)},
      {"IPv6 far over", v6(3000)},
      {"IPv6 with extension headers over",
       v6(1500, {},
          {{.type = SLUICE_IPPROTO_HOPOPTS}, {.type = SLUICE_IPPROTO_DSTOPTS, .len = 24}})},
      {"IPv6 first fragment over",
       v6(1500, {}, {{.type = SLUICE_IPPROTO_FRAGMENT, .more_fragments = true, .frag_id = 7}})},
      {"IPv6 later fragment over: no reply",
       PacketBuilder()
           .ipv6()
           .ipv6_ext({.type = SLUICE_IPPROTO_FRAGMENT, .frag_offset = 1448, .frag_id = 8})
           .raw({.bytes = pattern(1460), .proto = SLUICE_IPPROTO_UDP})
           .build()},
      {"IPv6 from multicast: no reply", v6(1500, {.src = "ff02::1"})},
      {"IPv6 from the unspecified address: no reply", v6(1500, {.src = "::"})},
  };
  expect_all_agree(cases);
}

}  // namespace
}  // namespace sluice::test
