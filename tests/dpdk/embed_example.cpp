// SPDX-License-Identifier: BSD-2-Clause
// Example: sluice's load balancing inside a DPDK application of your own.
// The application owns EAL, its ports and its poll loop; sluice is one
// call per burst, dpdk::Worker::process_burst, which says what to transmit,
// what belongs to the kernel and what was dropped, against a Snapshot the
// application built and published through a SnapshotRcu. Here the "NIC" is
// a net_ring port over two rte_rings pre-filled with traffic, so the example
// runs anywhere with EAL; it exits 0 when every packet to the VIP came out
// encapsulated toward a backend (77 when EAL cannot start, e.g. not root).
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "dataplane/core/maglev.hpp"
#include "dataplane/dpdk/snapshot.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/common/packet_builder.hpp"

namespace {

using sluice::test::Bytes;
using sluice::IpAddress;
using sluice::test::PacketBuilder;

constexpr const char* kVip = "10.0.0.1";
constexpr uint16_t kVipPort = 80;
const char* const kBackends[] = {"10.1.0.1", "10.1.0.2"};
constexpr uint16_t kClients = 200;

// The balancing state: one TCP VIP over two backends (Maglev over their
// addresses), IPv4-in-IPv4 from 10.255.0.1, next hop 02:00:00:00:00:fe.
std::unique_ptr<const sluice::dpdk::Snapshot> make_snapshot(const uint8_t (&port_mac)[6]) {
  sluice::dpdk::SnapshotSpec spec;
  std::vector<sluice::MaglevBackend> maglev;
  for (uint32_t id = 0; id < 2; ++id) {
    const IpAddress a = IpAddress::parse(kBackends[id]).value();
    sluice_backend b{};
    b.id = id + 1;
    b.addr = a.ip;
    b.family = a.family;
    spec.backends.push_back(b);
    maglev.push_back({a, 1});
  }
  sluice::dpdk::SnapshotVipSpec vip;
  const IpAddress v = IpAddress::parse(kVip).value();
  vip.key.addr = v.ip;
  vip.key.port = sl_htons(kVipPort);
  vip.key.proto = SLUICE_IPPROTO_TCP;
  vip.key.family = v.family;
  vip.meta.vip_id = 0;
  auto table = sluice::maglev_build(maglev, 1031);
  if (!table.ok()) return nullptr;
  for (uint32_t i : table.value()) vip.table.push_back(spec.backends[i].id);
  spec.vips.push_back(std::move(vip));
  spec.encap.src_v4 = IpAddress::parse("10.255.0.1").value().ip;
  spec.encap.mtu = 1500;
  spec.next_hop.dst_mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
  std::memcpy(spec.next_hop.src_mac.data(), port_mac, 6);
  auto s = sluice::dpdk::Snapshot::create(spec);
  if (!s.ok()) std::fprintf(stderr, "snapshot: %s\n", s.error().message.c_str());
  return s.ok() ? std::move(s.value()) : nullptr;
}

// One SYN from each of kClients clients to the VIP, and an ARP frame (not
// the balancer's business: it goes to the kernel).
std::vector<Bytes> traffic() {
  std::vector<Bytes> frames;
  for (uint16_t c = 0; c < kClients; ++c)
    frames.push_back(PacketBuilder()
                         .eth({})
                         .ipv4({.src = "192.0.2." + std::to_string(1 + c % 250), .dst = kVip})
                         .tcp({.sport = static_cast<uint16_t>(10000 + c), .dport = kVipPort})
                         .build());
  frames.push_back(
      PacketBuilder().eth({}).raw({.bytes = Bytes(28, 0), .ethertype = 0x0806}).build());
  return frames;
}

// The application's loop: rx_burst, sluice's process_burst, tx_burst of
// what sluice says to transmit. Returns the frames that went out.
std::vector<Bytes> run(uint16_t port, sluice::dpdk::Worker& worker, rte_ring* wire_out,
                       unsigned* to_kernel) {
  rte_mbuf* pkts[32];
  sluice::dpdk::Verdicts v;
  for (;;) {
    const uint16_t n = rte_eth_rx_burst(port, 0, pkts, 32);
    if (n == 0) break;  // a real application polls forever
    worker.process_burst(pkts, n, v);
    const uint16_t sent = rte_eth_tx_burst(port, 0, v.tx, v.n_tx);
    rte_pktmbuf_free_bulk(v.tx + sent, v.n_tx - sent);
    // An application with an exception path sends these to its TAP.
    *to_kernel += v.n_kernel;
    rte_pktmbuf_free_bulk(v.kernel, v.n_kernel);
    rte_pktmbuf_free_bulk(v.dropped, v.n_dropped);
  }
  std::vector<Bytes> out;
  void* m = nullptr;
  while (rte_ring_dequeue(wire_out, &m) == 0) {
    auto* mb = static_cast<rte_mbuf*>(m);
    const auto* p = rte_pktmbuf_mtod(mb, const uint8_t*);
    out.emplace_back(p, p + rte_pktmbuf_data_len(mb));
    rte_pktmbuf_free(mb);
  }
  return out;
}

int example() {
  // A port over two rings: the application feeds `wire_in`, reads `wire_out`.
  rte_ring* wire_in =
      rte_ring_create("wire_in", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* wire_out =
      rte_ring_create("wire_out", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_mempool* pool =
      rte_pktmbuf_pool_create("embed", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (wire_in == nullptr || wire_out == nullptr || pool == nullptr) return 1;
  const int id = rte_eth_from_rings("net_ring_embed", &wire_in, 1, &wire_out, 1, SOCKET_ID_ANY);
  if (id < 0) return 1;
  const auto port = static_cast<uint16_t>(id);
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(port, 0, 256, SOCKET_ID_ANY, nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(port, 0, 256, SOCKET_ID_ANY, nullptr) != 0 ||
      rte_eth_dev_start(port) != 0)
    return 1;
  rte_ether_addr mac{};
  (void)rte_eth_macaddr_get(port, &mac);

  // sluice: the snapshot behind RCU (one reader: our one loop), one worker.
  auto rcu = sluice::dpdk::SnapshotRcu::create(1, make_snapshot(mac.addr_bytes));
  if (!rcu.ok()) return 1;
  auto worker = sluice::dpdk::Worker::create(
      {.reader_id = 0, .hash_seed = 42, .flows = {.capacity = 4096}}, *rcu.value());
  if (!worker.ok()) return 1;

  const std::vector<Bytes> frames = traffic();
  for (const Bytes& f : frames) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) return 1;
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
    if (rte_ring_enqueue(wire_in, m) != 0) return 1;
  }
  unsigned to_kernel = 0;
  const std::vector<Bytes> out = run(port, *worker.value(), wire_out, &to_kernel);

  // Every SYN left as IPv4-in-IPv4 toward one of the backends.
  unsigned per_backend[2] = {0, 0};
  for (const Bytes& f : out) {
    const bool ipip = f.size() >= 54 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 4;
    for (unsigned b = 0; ipip && b < 2; ++b) {
      const IpAddress addr = IpAddress::parse(kBackends[b]).value();
      per_backend[b] += std::memcmp(&f[30], &addr.ip, 4) == 0;
    }
  }
  const sluice_global_stats g = worker.value()->global_stats();
  std::printf(
      "embed: %zu frames in, %zu out (backend %s: %u, backend %s: %u), %u to the kernel; "
      "worker counted rx %llu tx %llu pass %llu\n",
      frames.size(), out.size(), kBackends[0], per_backend[0], kBackends[1], per_backend[1],
      to_kernel, static_cast<unsigned long long>(g.rx_packets),
      static_cast<unsigned long long>(g.tx_packets),
      static_cast<unsigned long long>(g.pass_packets));
  const bool ok = out.size() == kClients && per_backend[0] + per_backend[1] == kClients &&
                  per_backend[0] > 0 && per_backend[1] > 0 && to_kernel == 1;

  worker.value().reset();
  (void)rte_eth_dev_stop(port);
  (void)rte_eth_dev_close(port);
  rte_ring_free(wire_in);
  rte_ring_free(wire_out);
  rte_mempool_free(pool);
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  const std::string prefix = "sluice-embed-" + std::to_string(getpid());
  std::vector<std::string> args = {"embed", "--no-pci",      "--no-huge",    "-m",
                                   "128",   "--file-prefix", prefix,         "-l",
                                   "0",     "--log-level",   "lib.eal:error"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    // CI (SLUICE_REQUIRE_BPF=1) has every privilege: there it is a failure.
    const char* required = std::getenv("SLUICE_REQUIRE_BPF");
    const bool fail = required != nullptr && std::strcmp(required, "1") == 0;
    std::fprintf(stderr, "%s: rte_eal_init: %s\n", fail ? "FAIL" : "SKIP", rte_strerror(rte_errno));
    std::error_code ignored;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ignored);
    return fail ? 1 : 77;
  }
  const int rc = example();
  (void)rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all("/var/run/dpdk/" + prefix, ignored);
  return rc;
}
