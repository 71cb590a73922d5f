// SPDX-License-Identifier: BSD-2-Clause
// Cost of encap_frame() per packet for each encapsulation, and of building
// a too-big reply. Each iteration puts back the bytes the previous one
// overwrote (the L2 header, l3_off bytes), so every call sees the original
// frame; that copy is part of the figure.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "dataplane/core/encap.hpp"
#include "dataplane/core/icmp_too_big.hpp"
#include "tests/common/packet_builder.hpp"

namespace sluice {
namespace {

constexpr size_t kHeadroom = 128;

// An IPv4 (DF) or IPv6 TCP packet of `payload` TCP bytes, TOS 0xB8.
test::BufferedFrame frame(uint8_t family, size_t payload) {
  test::PacketBuilder b;
  if (family == SLUICE_FAMILY_IPV4) {
    b.ipv4({.tos = 0xB8, .dont_fragment = true});
  } else {
    b.ipv6({.traffic_class = 0xB8});
  }
  b.raw({.bytes = test::pattern(payload), .proto = SLUICE_IPPROTO_TCP});
  return test::in_buffer(b.build(), b.l3_offset(), kHeadroom);
}

void run_encap(benchmark::State& state, uint8_t inner, uint8_t backend) {
  test::BufferedFrame t = frame(inner, 1000);
  std::vector<uint8_t> l2(t.frame(), t.frame() + t.l3_off);
  EncapSettings settings;
  settings.config.src_v4.v4 = sl_htonl(0x0A000001);
  std::memset(settings.config.src_v6.bytes, 0x20, 16);
  settings.config.mtu = 1500;
  settings.config.entropy_bits = 8;
  EncapTarget target;
  target.family = backend;
  std::memset(target.addr.bytes, 0x30, 16);
  uint32_t hash = 0x9E3779B9;
  for (auto _ : state) {
    std::memcpy(t.frame(), l2.data(), l2.size());
    FrameSpan span = t.span;
    target.flow_hash = hash;
    hash = hash * 1664525 + 1013904223;
    const EncapStatus st =
        encap_frame(t.buf.data(), t.buf.size(), span, t.l3_off, settings, target);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(t.buf.data()[span.off]);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Encap_Ipip4(benchmark::State& state) {
  run_encap(state, SLUICE_FAMILY_IPV4, SLUICE_FAMILY_IPV4);
}
void BM_Encap_Ip6ip6(benchmark::State& state) {
  run_encap(state, SLUICE_FAMILY_IPV6, SLUICE_FAMILY_IPV6);
}
void BM_Encap_Ip4in6(benchmark::State& state) {
  run_encap(state, SLUICE_FAMILY_IPV4, SLUICE_FAMILY_IPV6);
}

void run_icmp(benchmark::State& state, uint8_t family) {
  test::BufferedFrame t = frame(family, 1480);
  std::vector<uint8_t> l2(t.frame(), t.frame() + t.l3_off);
  for (auto _ : state) {
    std::memcpy(t.frame(), l2.data(), l2.size());
    FrameSpan span = t.span;
    const IcmpStatus st = build_icmp_too_big(t.buf.data(), t.buf.size(), span, t.l3_off, 1400);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(t.buf.data()[span.off]);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Encap_FragNeeded4(benchmark::State& state) { run_icmp(state, SLUICE_FAMILY_IPV4); }
void BM_Encap_PacketTooBig6(benchmark::State& state) { run_icmp(state, SLUICE_FAMILY_IPV6); }

BENCHMARK(BM_Encap_Ipip4);
BENCHMARK(BM_Encap_Ip6ip6);
BENCHMARK(BM_Encap_Ip4in6);
BENCHMARK(BM_Encap_FragNeeded4);
BENCHMARK(BM_Encap_PacketTooBig6);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
