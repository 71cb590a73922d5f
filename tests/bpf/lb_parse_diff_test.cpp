// SPDX-License-Identifier: BSD-2-Clause
// The core parser (dataplane/core/packet_parser.hpp) and sluice_lb decide
// alike on the same frames: the parser's whole fixture table, and every
// accepted frame cut short and with its IP packet shortened, go through
// parse_packet() and through BPF_PROG_TEST_RUN, and the two must agree on
// what happens to the frame (forward, pass, or drop and why) and on the
// flow key. The XDP program's key is observed where it lands: a first
// packet to a VIP leaves exactly one key in the probation map
// sluice_newflows. ICMP errors only read the flow table, so their key is
// observed through it: the core's key is pinned to a backend no Maglev
// table names, and the error must be sent there.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/core/packet_parser.hpp"
#include "tests/bpf/lb_fixture.hpp"
#include "tests/common/packet_builder.hpp"
#include "tests/common/parser_fixtures.hpp"

namespace sluice::test {
namespace {

// Reached only through a flow entry: the proof that an ICMP error's key
// found the flow.
constexpr uint32_t kPinnedBackend = 99;

// What the fast path must do with a frame, from the core's parse of it
// (DESIGN.md, "Packet path").
struct Decision {
  enum Fate { kForward, kFlowHit, kPass, kDrop } fate;
  sluice_drop_reason reason = SLUICE_DROP_NONE;  // kDrop
  sluice_flow_key key{};                         // kForward, kFlowHit
  size_t vlans = 0;
};

const char* fate_name(Decision::Fate f) {
  switch (f) {
    case Decision::kForward:
      return "forward";
    case Decision::kFlowHit:
      return "flow-table hit";
    case Decision::kPass:
      return "pass";
    case Decision::kDrop:
      return "drop";
  }
  return "?";
}

// Every test frame is addressed to a VIP of the world below, so the
// parser's outcome alone says what sluice_lb must do.
Decision core_decision(const Bytes& frame) {
  const ParseResult r = parse_packet(frame.data(), frame.size());
  Decision d{Decision::kPass};
  d.key = r.key;
  d.vlans = r.vlan_count;
  if (is_reject(r.status)) {
    d.fate = Decision::kDrop;
    d.reason = parse_drop_reason(r.status);
    return d;
  }
  switch (r.status) {
    case ParseStatus::kOk:
      d.fate = r.is_icmp_error ? Decision::kFlowHit : Decision::kForward;
      break;
    case ParseStatus::kUnsupportedL4:
      // A VIP is an (address, port, TCP or UDP) triple (sluice_vip_key): a
      // protocol that is neither matches no VIP, so it is not VIP traffic
      // and passes (DESIGN.md, packet path step 2).
    case ParseStatus::kNotIp:
    case ParseStatus::kIcmpOther:
    default:
      d.fate = Decision::kPass;
      break;
  }
  return d;
}

class LbParseDiffTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    add_backend(1, "10.1.0.1");
    add_backend(2, "10.1.0.2");
    add_backend(3, "10.1.0.3");
    add_backend(kPinnedBackend, "10.1.0.99");
    // Every port of the fixtures' VIP addresses, both protocols.
    add_vip({kVipV4, 0, kTcp, 1, 0, {1, 2, 3}});
    add_vip({kVipV4, 0, kUdp, 2, 0, {1, 2, 3}});
    add_vip({kVipV6, 0, kTcp, 3, 0, {1, 2, 3}});
    add_vip({kVipV6, 0, kUdp, 4, 0, {1, 2, 3}});
  }

  static uint32_t vip_of(const sluice_flow_key& k) {
    return (k.family == SLUICE_FAMILY_IPV6 ? 3 : 1) + (k.proto == SLUICE_IPPROTO_UDP ? 1 : 0);
  }

  // The keys in sluice_newflows, removed from it.
  std::vector<sluice_flow_key> take_probation() {
    const int map = fd(skel()->maps.sluice_newflows);
    std::vector<sluice_flow_key> keys;
    sluice_flow_key k{};
    sluice_flow_key next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map, prev, &next) == 0) {
      keys.push_back(next);
      k = next;
      prev = &k;
    }
    for (const auto& key : keys) bpf_map_delete_elem(map, &key);
    return keys;
  }

  // Runs `frame` through sluice_lb; returns "" when it did what the core's
  // parse says, else what differed.
  std::string mismatch(const Bytes& frame) {
    const Decision want = core_decision(frame);
    if (want.fate == Decision::kFlowHit) inject_established(want.key, kPinnedBackend, now_ms());
    const auto g0 = global_stats();
    const XdpRun r = run(frame);
    const auto g1 = global_stats();
    const std::vector<sluice_flow_key> probation = take_probation();
    if (want.fate == Decision::kFlowHit) {
      bpf_map_delete_elem(fd(skel()->maps.sluice_flows), &want.key);
    }
    if (r.err != 0) return "BPF_PROG_TEST_RUN failed";

    std::string why;
    const auto differs = [&](const std::string& what) { why += (why.empty() ? "" : "; ") + what; };
    uint32_t verdict = XDP_PASS;
    sluice_global_stats delta = passed(frame.size());
    Bytes out = frame;
    switch (want.fate) {
      case Decision::kForward:
        verdict = XDP_TX;
        delta = forwarded(frame.size());
        out = forwarded_frame(frame, want.vlans, vip_of(want.key), want.key);
        break;
      case Decision::kFlowHit:
        verdict = XDP_TX;
        delta = forwarded(frame.size(), true);
        out = encapsulated(frame, want.vlans, kPinnedBackend, hash_of(vip_of(want.key), want.key));
        break;
      case Decision::kDrop:
        verdict = XDP_DROP;
        delta = dropped(frame.size(), want.reason);
        out.clear();
        break;
      case Decision::kPass:
        break;
    }
    if (r.verdict != verdict) {
      differs(
          std::string("core says ") + fate_name(want.fate) +
          (want.fate == Decision::kDrop ? " (reason " + std::to_string(want.reason) + ")" : "") +
          ", XDP verdict " + std::to_string(r.verdict));
    }
    if (want.fate == Decision::kForward) {
      if (probation.size() != 1 || !same_key(probation[0], want.key)) {
        differs("probation map holds " + std::to_string(probation.size()) + " key(s)" +
                (probation.empty() ? "" : ", first " + key_text(probation[0])) + ", core key " +
                key_text(want.key));
      }
    } else if (!probation.empty()) {
      differs("a " + std::string(fate_name(want.fate)) + " left a probation entry " +
              key_text(probation[0]));
    }
    if (want.fate == Decision::kFlowHit && backend_of(r, want.vlans) != kPinnedBackend) {
      differs("ICMP error not sent to the flow's backend: its key is not the core's " +
              key_text(want.key));
    }
    if (r.verdict == verdict && verdict != XDP_DROP && r.out != out) differs("output frame");
    uint64_t d[sizeof delta / 8], a[sizeof delta / 8], b[sizeof delta / 8];
    std::memcpy(d, &delta, sizeof d);
    std::memcpy(a, &g1, sizeof a);
    std::memcpy(b, &g0, sizeof b);
    for (size_t i = 0; i < sizeof d / 8; ++i) {
      if (a[i] - b[i] != d[i]) {
        differs("counter " + std::to_string(i) + " moved by " + std::to_string(a[i] - b[i]) +
                ", not " + std::to_string(d[i]));
      }
    }
    return why;
  }

  // Checks every frame of `cases`; reports the first mismatches in full
  // and how many there were.
  void expect_all_agree(const std::vector<std::pair<std::string, Bytes>>& cases) {
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

TEST_F(LbParseDiffTest, FixtureTable) {
  std::vector<std::pair<std::string, Bytes>> cases;
  for (const Fixture& fx : parser_fixtures()) cases.emplace_back(fx.name, fx.frame);
  expect_all_agree(cases);
}

// Every frame the parser accepts, cut at every length: the bounds checks
// of both meet the end of the frame everywhere.
TEST_F(LbParseDiffTest, EveryTruncation) {
  std::vector<std::pair<std::string, Bytes>> cases;
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
TEST_F(LbParseDiffTest, EveryShortenedIpPacket) {
  std::vector<std::pair<std::string, Bytes>> cases;
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

}  // namespace
}  // namespace sluice::test
