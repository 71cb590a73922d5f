// SPDX-License-Identifier: BSD-2-Clause
// Cost of the packet path's first step: parse one frame and hash its flow
// key, per packet, for the common packet shapes.
#include <benchmark/benchmark.h>

#include "dataplane/abi/flow.h"
#include "dataplane/core/packet_parser.hpp"
#include "tests/common/packet_builder.hpp"

namespace {

using sluice::test::Bytes;
using sluice::test::PacketBuilder;

constexpr uint32_t kSeed = 0x5eed1234;

// Parses and hashes the same frame over and over: a lower bound with warm
// caches and trained branches, which is what a burst of one flow sees.
void BM_Parser_ParseHash(benchmark::State& state, const Bytes& frame) {
  const uint8_t* data = frame.data();
  for (auto _ : state) {
    benchmark::DoNotOptimize(data);
    sluice::ParseResult r = sluice::parse_packet(data, frame.size());
    uint32_t h = sluice_flow_hash(&r.key, kSeed);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
}

const Bytes kIpv4Tcp = PacketBuilder().ipv4().tcp().build();
const Bytes kIpv6Tcp = PacketBuilder().ipv6().tcp().build();
const Bytes kIpv4Udp = PacketBuilder().ipv4().udp({.dport = 11211}).payload(Bytes(32, 'g')).build();
const Bytes kVlanIpv4Tcp = PacketBuilder().vlan({.vid = 100}).ipv4().tcp().build();

BENCHMARK_CAPTURE(BM_Parser_ParseHash, ipv4_tcp, kIpv4Tcp);
BENCHMARK_CAPTURE(BM_Parser_ParseHash, ipv6_tcp, kIpv6Tcp);
BENCHMARK_CAPTURE(BM_Parser_ParseHash, ipv4_udp, kIpv4Udp);
BENCHMARK_CAPTURE(BM_Parser_ParseHash, vlan_ipv4_tcp, kVlanIpv4Tcp);

}  // namespace

BENCHMARK_MAIN();
