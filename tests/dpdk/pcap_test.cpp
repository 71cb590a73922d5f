// SPDX-License-Identifier: BSD-2-Clause
// The whole DPDK path through real ports: crafted frames in a pcap file read
// by net_pcap, the lcore loop on a worker lcore, and the output pcap files
// checked -- encapsulated frames and ICMP replies on the data port, non-VIP
// traffic on the kernel port (and the kernel's reply back out), drops
// counted by reason; and a memcached write to a cached VIP holding its key
// until it is out of the port.
#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core/hot_cache.hpp"
#include "dataplane/core/memcached.hpp"
#include "dataplane/dpdk/lcore_loop.hpp"
#include "dataplane/dpdk/ports.hpp"
#include "dataplane/dpdk/snapshot_rcu.hpp"
#include "dataplane/dpdk/worker.hpp"
#include "tests/dpdk/dpdk_env.hpp"
#include "tests/dpdk/world.hpp"

namespace sluice::test {
namespace {

std::filesystem::path g_dir;  // this run's pcap files

constexpr const char* kClient = "192.0.2.10";
constexpr const char* kClient6 = "2001:db8:c::10";

// pcap files (the classic format: 24-byte header, 16-byte record headers,
// little-endian, link type 1 = Ethernet).
void write_pcap(const std::filesystem::path& path, const std::vector<Bytes>& frames) {
  std::ofstream f(path, std::ios::binary);
  const auto u32 = [&](uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  const auto u16 = [&](uint16_t v) { f.write(reinterpret_cast<const char*>(&v), 2); };
  u32(0xa1b2c3d4);
  u16(2);
  u16(4);
  u32(0);
  u32(0);
  u32(65535);
  u32(1);
  uint32_t t = 1;
  for (const Bytes& b : frames) {
    u32(t++);
    u32(0);
    u32(static_cast<uint32_t>(b.size()));
    u32(static_cast<uint32_t>(b.size()));
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
}

std::vector<Bytes> read_pcap(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<Bytes> out;
  char hdr[24];
  if (!f.read(hdr, sizeof hdr)) return out;
  for (;;) {
    uint32_t rec[4];
    if (!f.read(reinterpret_cast<char*>(rec), sizeof rec)) break;
    Bytes b(rec[2]);
    if (!f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size()))) break;
    out.push_back(std::move(b));
  }
  return out;
}

PacketBuilder frame() { return PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac}); }

struct Case {
  std::vector<Bytes> in;          // what arrives on the data port
  std::vector<Bytes> to_backend;  // expected on the data port's output, in order
  std::vector<Bytes> to_kernel;   // expected on the kernel port's output, in order
  Bytes too_big;                  // the one frame answered with ICMP
  Bytes from_kernel;              // what the kernel sends
};

Case make_case() {
  const World w;
  Case c;
  const auto fwd = [&](const Bytes& in, uint32_t vip, const sluice_flow_key& k, size_t ntags = 0) {
    c.in.push_back(in);
    c.to_backend.push_back(w.forwarded(in, ntags, vip, k));
  };
  fwd(frame().ipv4({.src = kClient, .dst = "10.0.0.1"}).tcp({.sport = 40000, .dport = 80}).build(),
      1, flow_key(kClient, 40000, "10.0.0.1", 80, kTcp));
  fwd(frame()
          .ipv6({.src = kClient6, .dst = "2001:db8::1"})
          .tcp({.sport = 40000, .dport = 443})
          .build(),
      4, flow_key(kClient6, 40000, "2001:db8::1", 443, kTcp));
  fwd(frame()
          .ipv6({.src = kClient6, .dst = "2001:db8::3"})
          .tcp({.sport = 40001, .dport = 80})
          .build(),
      7, flow_key(kClient6, 40001, "2001:db8::3", 80, kTcp));
  fwd(frame()
          .vlan({.vid = 7})
          .ipv4({.src = kClient, .dst = "10.0.0.1"})
          .udp({.sport = 9, .dport = 53})
          .payload(pattern(20))
          .build(),
      2, flow_key(kClient, 9, "10.0.0.1", 53, kUdp), 1);
  const Bytes arp = frame().raw({.bytes = pattern(28), .ethertype = 0x0806}).build();
  const Bytes other = frame().ipv4({.src = kClient, .dst = "10.9.9.9"}).tcp({.dport = 22}).build();
  c.in.push_back(arp);
  c.in.push_back(other);
  c.to_kernel = {arp, other};
  c.in.push_back(frame()
                     .vlan({.vid = 1, .tpid = SLUICE_ETH_P_8021AD})
                     .vlan({.vid = 2})
                     .vlan({.vid = 3})
                     .ipv4({.src = kClient, .dst = "10.0.0.1"})
                     .tcp({})
                     .build());
  c.in.push_back(frame().ipv4({.src = kClient, .dst = "10.0.0.9"}).tcp({}).build());
  c.too_big = frame()
                  .ipv4({.src = kClient, .dst = "10.0.0.1", .dont_fragment = true})
                  .tcp({.sport = 40002, .dport = 80, .flags = 0x10})
                  .payload(pattern(1460))
                  .build();
  c.in.push_back(c.too_big);
  c.from_kernel = PacketBuilder()
                      .eth({.dst = kRouterMac, .src = kLbMac})
                      .raw({.bytes = pattern(28, 7), .ethertype = 0x0806})
                      .build();
  return c;
}

// The cache case: a memcached set to a cached UDP VIP (id kCacheVip, no
// key routing: placed by its flow) read from cache_in.pcap.
constexpr uint32_t kCacheVip = 30;
constexpr const char* kCacheVipAddr = "10.0.0.12";

World cache_world() {
  World w;
  w.add_vip({kCacheVipAddr, 11211, kUdp, kCacheVip, SLUICE_VIP_CACHE, {1, 2, 3}});
  return w;
}

Bytes cache_write() {
  std::string text(8, '\0');  // the memcached frame header: id 0, sequence 0 of 1
  text[5] = 1;
  text += "set k 0 0 3\r\nnew\r\n";
  return frame()
      .ipv4({.src = kClient, .dst = kCacheVipAddr})
      .udp({.sport = 40100, .dport = 11211})
      .payload(Bytes(text.begin(), text.end()))
      .build();
}

uint16_t port_id(const char* name) {
  uint16_t id = UINT16_MAX;
  EXPECT_EQ(rte_eth_dev_get_port_by_name(name, &id), 0) << name;
  return id;
}

int run_loop(void* arg) {
  auto* ctx = static_cast<std::pair<dpdk::LcoreLoop*, std::atomic<bool>*>*>(arg);
  return ctx->first->run(*ctx->second);
}

// Starts `data_port` (and `kernel_port`, if any) for one worker lcore,
// runs `worker`'s loop on it, calls `during` with the loop while it runs,
// stops it and closes the ports (net_pcap writes its files out); the
// loop's counters.
dpdk::LoopStats run_once(uint16_t data_port, std::optional<uint16_t> kernel_port,
                         dpdk::Worker& worker,
                         const std::function<void(const dpdk::LcoreLoop&)>& during) {
  dpdk::LoopStats stats{};
  const unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  EXPECT_LT(lcore, RTE_MAX_LCORE) << "no worker lcore";
  if (lcore >= RTE_MAX_LCORE) return stats;
  dpdk::PortsConfig pc;
  pc.data_ports = {data_port};
  pc.kernel_port = kernel_port;
  pc.worker_lcores = {lcore};
  pc.pool = test_pool();
  pc.rx_desc = pc.tx_desc = 256;
  auto ports = dpdk::Ports::start(pc);
  EXPECT_TRUE(ports.ok()) << ports.error().message;
  if (!ports.ok()) return stats;
  auto loop = dpdk::LcoreLoop::create(ports.value(), ports.value().queues()[0], worker);
  EXPECT_TRUE(loop.ok()) << loop.error().message;
  if (!loop.ok()) return stats;
  std::atomic<bool> stop{false};
  std::pair<dpdk::LcoreLoop*, std::atomic<bool>*> ctx{loop.value().get(), &stop};
  EXPECT_EQ(rte_eal_remote_launch(run_loop, &ctx, lcore), 0);
  during(*loop.value());
  stop.store(true);
  EXPECT_EQ(rte_eal_wait_lcore(lcore), 0);
  return loop.value()->stats();
}

TEST(PcapTest, FramesThroughTheLcoreLoop) {
  const Case c = make_case();
  const World w;
  auto rcu = dpdk::SnapshotRcu::create(1, w.snapshot());
  ASSERT_TRUE(rcu.ok());
  auto worker = dpdk::Worker::create(
      {.reader_id = 0, .hash_seed = kSeed, .flows = {.capacity = 1024}}, *rcu.value());
  ASSERT_TRUE(worker.ok());
  const dpdk::LoopStats ls =
      run_once(port_id("net_pcap0"), port_id("net_pcap1"), *worker.value(),
               [&](const dpdk::LcoreLoop& loop) {
                 // Until every frame was seen and the kernel's reply was forwarded.
                 const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
                 while ((worker.value()->global_stats().rx_packets < c.in.size() ||
                         loop.stats().from_kernel < 1) &&
                        std::chrono::steady_clock::now() < deadline)
                   std::this_thread::sleep_for(std::chrono::milliseconds(5));
               });
  EXPECT_EQ(ls.from_kernel, 1u);
  EXPECT_EQ(ls.kernel_sent, 2u);
  EXPECT_EQ(ls.tx_unsent, 0u);
  EXPECT_EQ(ls.kernel_unsent, 0u);

  const sluice_global_stats g = worker.value()->global_stats();
  EXPECT_EQ(g.rx_packets, c.in.size());
  EXPECT_EQ(g.tx_packets, c.to_backend.size());
  EXPECT_EQ(g.pass_packets, 2u);
  EXPECT_EQ(g.drops[SLUICE_DROP_BAD_L2], 1u);
  EXPECT_EQ(g.drops[SLUICE_DROP_NO_BACKEND], 1u);
  EXPECT_EQ(g.drops[SLUICE_DROP_TOO_BIG], 1u);
  EXPECT_EQ(g.icmp_too_big_sent, 1u);

  std::vector<Bytes> out = read_pcap(g_dir / "out.pcap");
  const auto kernel_reply = std::find(out.begin(), out.end(), c.from_kernel);
  EXPECT_NE(kernel_reply, out.end()) << "the kernel's frame did not go out of the data port";
  if (kernel_reply != out.end()) out.erase(kernel_reply);
  ASSERT_EQ(out.size(), c.to_backend.size() + 1);
  for (size_t i = 0; i < c.to_backend.size(); ++i)
    EXPECT_EQ(out[i], c.to_backend[i]) << "frame " << i;
  const Bytes& reply = out.back();
  ASSERT_EQ(reply.size(), 14u + 576u);
  EXPECT_TRUE(std::equal(kRouterMac.begin(), kRouterMac.end(), reply.begin()));
  EXPECT_EQ(reply[14 + 20], 3);      // ICMP destination unreachable
  EXPECT_EQ(reply[14 + 20 + 1], 4);  // fragmentation needed
  EXPECT_EQ(read_pcap(g_dir / "kernel.pcap"), c.to_kernel);
}

// A write through the lcore loop takes one hold on its key, which the loop
// releases once the write is out of the port (the loop flushes right after
// the burst; tests/dpdk/distribution_test.cpp checks that no release comes
// before its write has left): the key's fill is refused for
// write_settle_ms after the release, and the write is in the output file,
// forwarded.
TEST(PcapTest, AWriteHoldsItsKeyUntilItIsOutOfThePort) {
  const World w = cache_world();
  auto versions = std::make_unique<CacheVersions>();
  auto rcu = dpdk::SnapshotRcu::create(1, w.snapshot());
  ASSERT_TRUE(rcu.ok());
  auto worker = dpdk::Worker::create(
      {.reader_id = 0,
       .hash_seed = kSeed,
       .flows = {.capacity = 1024},
       .cache = dpdk::WorkerCacheConfig{.store = {.max_entries = 64, .write_settle_ms = 50},
                                        .versions = versions.get()}},
      *rcu.value());
  ASSERT_TRUE(worker.ok());
  const uint32_t slot = sluice_cache_version_slot(kCacheVip, mc::key_hash("k"));
  EXPECT_EQ(versions->slot_released_ms(slot), 0u);
  dpdk::WorkerCache& c = *worker.value()->cache();
  const dpdk::LoopStats ls =
      run_once(port_id("net_pcap2"), std::nullopt, *worker.value(), [&](const dpdk::LcoreLoop&) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (c.hold_stats().released < 1 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        // Released at the loop's clock: the fill waits write_settle_ms
        // from there, on the same clock.
        const uint32_t at = versions->slot_released_ms(slot);
        EXPECT_NE(at, 0u) << "released";
        EXPECT_EQ(c.store().begin_fill(kCacheVip, "k", at).error().code, -EAGAIN);
        EXPECT_EQ(c.store().begin_fill(kCacheVip, "k", at + 49u).error().code, -EAGAIN);
        EXPECT_TRUE(c.store().begin_fill(kCacheVip, "k", at + 50u).ok());
      });
  EXPECT_EQ(ls.tx_unsent, 0u);
  const dpdk::WorkerHoldStats holds = c.hold_stats();
  EXPECT_EQ(holds.taken, 1u);
  EXPECT_EQ(holds.released, 1u);
  EXPECT_EQ(versions->slot_holds(slot), 0u);
  EXPECT_EQ(worker.value()->cache()->stats(kCacheVip).invalidations, 1u);
  const Bytes in = cache_write();
  EXPECT_EQ(read_pcap(g_dir / "cache_out.pcap"),
            std::vector<Bytes>{w.forwarded(in, 0, kCacheVip,
                                           flow_key(kClient, 40100, kCacheVipAddr, 11211, kUdp))});
}

}  // namespace
}  // namespace sluice::test

int main(int argc, char** argv) {
  using sluice::test::g_dir;
  g_dir = std::filesystem::temp_directory_path() / ("sluice-pcap-" + std::to_string(getpid()));
  std::filesystem::create_directories(g_dir);
  const sluice::test::Case c = sluice::test::make_case();
  sluice::test::write_pcap(g_dir / "in.pcap", c.in);
  sluice::test::write_pcap(g_dir / "kernel_in.pcap", {c.from_kernel});
  sluice::test::write_pcap(g_dir / "cache_in.pcap", {sluice::test::cache_write()});
  const std::string d = g_dir.string();
  const int rc = sluice::test::dpdk_test_main(
      argc, argv,
      {"--vdev", "net_pcap0,rx_pcap=" + d + "/in.pcap,tx_pcap=" + d + "/out.pcap", "--vdev",
       "net_pcap1,rx_pcap=" + d + "/kernel_in.pcap,tx_pcap=" + d + "/kernel.pcap", "--vdev",
       "net_pcap2,rx_pcap=" + d + "/cache_in.pcap,tx_pcap=" + d + "/cache_out.pcap"},
      "0,1");
  std::error_code ignored;
  std::filesystem::remove_all(g_dir, ignored);
  return rc;
}
