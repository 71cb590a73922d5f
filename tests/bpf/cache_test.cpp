// SPDX-License-Identifier: BSD-2-Clause
// The hot-object cache in sluice_lb (xdp/cache.bpf.h) through
// BPF_PROG_TEST_RUN: a cached get comes back as memcached's exact response
// with valid checksums; misses, writes, pipelines and oversize values are
// forwarded, and writes invalidate before they are.
#include "dataplane/abi/cache.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dataplane/core/maglev.hpp"
#include "dataplane/core/memcached.hpp"
#include "tests/bpf/lb_fixture.hpp"
#include "xdp/cache.hpp"

namespace sluice::test {
namespace {

constexpr const char* kClient = "192.0.2.10";
constexpr const char* kClient6 = "2001:db8:c::10";
constexpr const char* kVip = "10.0.0.6";
constexpr const char* kVip6 = "2001:db8::6";
constexpr uint16_t kPort = 11211;
constexpr uint16_t kClientPort = 40123;
constexpr uint32_t kUdpVip = 11;
constexpr uint32_t kTcpVip = 12;
constexpr uint32_t kUdpVip6 = 13;
constexpr uint32_t kHotThreshold = 3;

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// memcached's UDP frame header: request id, sequence, total, reserved.
Bytes mc_frame(uint16_t id, uint16_t seq = 0, uint16_t total = 1) {
  Bytes f(SLUICE_MC_UDP_HDR_LEN);
  put_be16(f, 0, id);
  put_be16(f, 2, seq);
  put_be16(f, 4, total);
  return f;
}

Bytes udp_request(const std::string& req, uint16_t id = 0x4242, bool v6 = false) {
  PacketBuilder b = PacketBuilder().eth({.dst = kLbMac, .src = kRouterMac});
  if (v6)
    b.ipv6({.src = kClient6, .dst = kVip6});
  else
    b.ipv4({.src = kClient, .dst = kVip});
  return b.udp({.sport = kClientPort, .dport = kPort})
      .payload(cat({mc_frame(id), text(req)}))
      .build();
}

Bytes tcp_segment(const std::string& payload) {
  return PacketBuilder()
      .eth({.dst = kLbMac, .src = kRouterMac})
      .ipv4({.src = kClient, .dst = kVip})
      .tcp({.sport = kClientPort, .dport = kPort, .flags = 0x18 /* PSH ACK */})
      .payload(text(payload))
      .build();
}

// What memcached itself would send back for the request, as a frame.
Bytes udp_response(const std::string& body, uint16_t id = 0x4242, bool v6 = false) {
  PacketBuilder b = PacketBuilder().eth({.dst = kRouterMac, .src = kLbMac});
  if (v6)
    b.ipv6({.src = kVip6, .dst = kClient6});
  else
    b.ipv4({.src = kVip, .dst = kClient});
  return b.udp({.sport = kPort, .dport = kClientPort})
      .payload(cat({mc_frame(id), text(body)}))
      .build();
}

// Two keys of len (>= 8) bytes, the same but in their last 8, with the
// same key hash: by the birthday bound over pseudo-random printable
// suffixes (splitmix64 of a counter), about 2^17 tries. FNV-1a goes on from
// the prefix's hash, so a try hashes 8 bytes.
std::pair<std::string, std::string> colliding_keys(size_t len) {
  const std::string prefix(len - 8, 'p');
  const uint32_t from = mc::key_hash(prefix);
  const auto suffix = [](uint64_t i) {
    uint64_t x = i * 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    std::string s(8, ' ');
    for (char& c : s) {
      c = static_cast<char>(0x21 + x % 94);  // '!'..'~': bytes a key may have
      x = x / 94 + (x << 58);
    }
    return s;
  };
  std::unordered_map<uint32_t, uint64_t> seen;
  seen.reserve(1u << 19);
  for (uint64_t i = 0;; ++i) {
    const std::string s = suffix(i);
    uint32_t h = from;
    for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * SLUICE_FNV32_PRIME;
    const auto [it, fresh] = seen.emplace(h, i);
    if (!fresh) return {prefix + suffix(it->second), prefix + s};
  }
}

class CacheTest : public LbFixture {
 protected:
  void before_load(sluice_lb_bpf* skel) override {
    skel->rodata->sluice_cache_hot_threshold = kHotThreshold;
  }

  void SetUp() override {
    LbFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    provision_world();
    add_vip({kVip, kPort, kUdp, kUdpVip, SLUICE_VIP_CACHE, {1, 2, 3}});
    add_vip({kVip, kPort, kTcp, kTcpVip, SLUICE_VIP_CACHE, {1, 2, 3}});
    add_vip({kVip6, kPort, kUdp, kUdpVip6, SLUICE_VIP_CACHE, {11, 12}});
  }

  uint32_t version(uint32_t vip, const std::string& key) {
    const uint32_t slot = sluice_cache_version_slot(vip, mc::key_hash(key));
    sluice_cache_slot v{};
    EXPECT_EQ(bpf_map_lookup_elem(fd(skel()->maps.sluice_cache_slots), &slot, &v), 0);
    return v.version;
  }

  uint32_t epoch(uint32_t vip) {
    uint32_t e = 0;
    EXPECT_EQ(bpf_map_lookup_elem(fd(skel()->maps.sluice_cache_epochs), &vip, &e), 0);
    return e;
  }

  // Installs key -> value in entry slot `slot` as the control plane does,
  // with the versions the maps hold now.
  void install(uint32_t vip, const std::string& key, const std::string& value, uint32_t slot = 0,
               uint32_t flags = 7, uint64_t cas = 4242) {
    const Bytes data = text(value);
    sluice_cache_entry e{};
    ASSERT_EQ(mc::fill_entry(e, vip, key, {flags, cas, data}, version(vip, key), epoch(vip),
                             now_ms() + 60'000ull),
              0);
    ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_cache_entries), &slot, &e, BPF_ANY), 0);
    set_entry(vip, key, slot + 1);
  }

  sluice_cache_slot index_slot(uint32_t vip, const std::string& key) {
    const uint32_t slot = sluice_cache_version_slot(vip, mc::key_hash(key));
    sluice_cache_slot v{};
    EXPECT_EQ(bpf_map_lookup_elem(fd(skel()->maps.sluice_cache_slots), &slot, &v), 0);
    return v;
  }

  // Names entry slot `entry` - 1 (0: none) in the key's index slot, as the
  // control plane does (the test is the only writer: a whole-value update).
  void set_entry(uint32_t vip, const std::string& key, uint32_t entry) {
    const uint32_t slot = sluice_cache_version_slot(vip, mc::key_hash(key));
    sluice_cache_slot v = index_slot(vip, key);
    v.entry = entry;
    ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_cache_slots), &slot, &v, BPF_ANY), 0);
  }

  bool indexed(uint32_t vip, const std::string& key) { return index_slot(vip, key).entry != 0; }

  sluice_cache_stats cache_stats(uint32_t vip) {
    return sum_percpu<sluice_cache_stats>(fd(skel()->maps.sluice_cache_stats), vip);
  }

  // Runs with room for a response bigger than the request.
  XdpRun run_big(const Bytes& in) {
    XdpRun r = run_xdp(bpf_program__fd(skel()->progs.sluice_lb), in, 4096);
    EXPECT_EQ(r.err, 0);
    return r;
  }

  // A packet Maglev sent on to a backend of the VIP.
  void expect_forwarded(const Bytes& in) {
    const XdpRun r = run_big(in);
    EXPECT_EQ(r.verdict, XDP_TX);
    EXPECT_NE(backend_of(r), SLUICE_BACKEND_NONE) << "not encapsulated toward a backend";
  }
};

TEST_F(CacheTest, CachedGetIsAnsweredByteExact) {
  install(kUdpVip, "user:42", "hello");
  const XdpRun r = run_big(udp_request("get user:42\r\n"));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(r.out, udp_response("VALUE user:42 7 5\r\nhello\r\nEND\r\n"));
  EXPECT_EQ(cache_stats(kUdpVip).hits, 1u);
}

TEST_F(CacheTest, CachedGetsCarriesTheCas) {
  install(kUdpVip, "k", "v", 0, 0, 18446744073709551615ull);
  const XdpRun r = run_big(udp_request("gets k\r\n", 7));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(r.out, udp_response("VALUE k 0 1 18446744073709551615\r\nv\r\nEND\r\n", 7));
}

TEST_F(CacheTest, CachedGetOverIpv6AndBigValues) {
  // Odd and even head lengths, and the largest value.
  for (const auto& [key, len] : std::vector<std::pair<std::string, size_t>>{
           {"a", 0}, {"ab", 1}, {std::string(250, 'z'), SLUICE_CACHE_VALUE_MAX}}) {
    SCOPED_TRACE(std::to_string(key.size()) + "-byte key, " + std::to_string(len) + " bytes");
    std::string value(len, '\0');
    for (size_t i = 0; i < len; ++i) value[i] = static_cast<char>(i * 7 + 3);
    install(kUdpVip6, key, value, 1, 1, 2);
    const XdpRun r = run_big(udp_request("get " + key + "\n", 9, true));
    ASSERT_EQ(r.verdict, XDP_TX);
    EXPECT_EQ(r.out, udp_response("VALUE " + key + " 1 " + std::to_string(len) + "\r\n" + value +
                                      "\r\nEND\r\n",
                                  9, true));
  }
}

// The XDP side scans a key inline up to 16 bytes and under bpf_loop past
// that, and compares it inline up to 32 bytes: keys on both sides of both
// bounds are answered, and a key with a cached key's hash that differs in
// its last 8 bytes (the compare's last word) is forwarded.
TEST_F(CacheTest, KeysAroundTheInlineBoundsHitAndCollisionsMiss) {
  const std::vector<size_t> lens = {8, 15, 16, 17, 24, 31, 32, 33, 40, 64, 249, 250};
  for (const size_t len : lens) {
    SCOPED_TRACE(std::to_string(len) + "-byte key");
    const auto [cached, other] = colliding_keys(len);
    ASSERT_EQ(mc::key_hash(cached), mc::key_hash(other));
    install(kUdpVip, cached, "v");
    const XdpRun r = run_big(udp_request("get " + cached + "\r\n"));
    ASSERT_EQ(r.verdict, XDP_TX);
    EXPECT_EQ(r.out, udp_response("VALUE " + cached + " 7 1\r\nv\r\nEND\r\n"));
    expect_forwarded(udp_request("get " + other + "\r\n"));
  }
  const sluice_cache_stats s = cache_stats(kUdpVip);
  EXPECT_EQ(s.hits, lens.size());
  EXPECT_EQ(s.misses, lens.size());
}

// The XDP key scan reads 8 bytes at a time: every key length from 1 to
// 251 (one past the longest), bytes from the whole range a key may have
// (0x80-0xff included), each line end, and a byte no key has (DEL, a
// control byte, NUL) at offsets across a word, decide as the core does. A
// valid key's get is answered (its length and hash exact, or the entry
// would not match) and its delete invalidates that key; with a bad byte, a
// get is no get of any key (not answered, also when the part before the
// bad byte is cached; no miss counted) and a delete invalidates the whole
// VIP (the core cannot tell what it writes).
TEST_F(CacheTest, KeyScanDecidesAsTheCoreByteForByte) {
  uint64_t x = 0x243f6a8885a308d3ull;
  const auto key_byte = [&x] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const auto b = static_cast<uint8_t>(0x21 + (x >> 33) % (0xff - 0x21));  // 0x21..0xfe
    return static_cast<char>(b == 0x7f ? 0xff : b);
  };
  uint32_t answered = 0;
  uint32_t slot = 0;
  for (size_t len = 1; len <= SLUICE_CACHE_KEY_MAX + 1; ++len) {
    SCOPED_TRACE(std::to_string(len) + "-byte key");
    std::string key(len, ' ');
    for (char& c : key) c = key_byte();
    const std::string end = len % 2 ? "\r\n" : "\n";
    const bool valid = len <= SLUICE_CACHE_KEY_MAX;
    const std::string get = "get " + key + end;
    const std::string del = "delete " + key + end;
    ASSERT_EQ(mc::parse_request(text(get)).kind == mc::Kind::kGet, valid);
    ASSERT_EQ(mc::parse_request(text(del)).kind, valid ? mc::Kind::kWrite : mc::Kind::kUnsure);
    sluice_cache_stats before = cache_stats(kUdpVip);
    if (valid) {
      install(kUdpVip, key, "v", slot++ % 8);
      const XdpRun r = run_big(udp_request(get));
      ASSERT_EQ(r.verdict, XDP_TX);
      EXPECT_EQ(r.out, udp_response("VALUE " + key + " 7 1\r\nv\r\nEND\r\n"));
      ++answered;
    } else {
      expect_forwarded(udp_request(get));
    }
    expect_forwarded(udp_request(del));
    sluice_cache_stats after = cache_stats(kUdpVip);
    EXPECT_EQ(after.hits, before.hits + (valid ? 1 : 0));
    EXPECT_EQ(after.invalidations, before.invalidations + (valid ? 1 : 0));
    EXPECT_EQ(after.vip_invalidations, before.vip_invalidations + (valid ? 0 : 1));
    if (!valid) continue;
    for (const size_t at : {size_t{0}, len / 2, len - 1, std::min(len - 1, size_t{7}),
                            std::min(len - 1, size_t{8}), std::min(len - 1, size_t{15})}) {
      SCOPED_TRACE("bad byte at " + std::to_string(at));
      for (const char bad : {'\x7f', '\t', '\0', '\x01', '\x0b'}) {
        std::string broken = key;
        broken[at] = bad;
        const std::string bget = "get " + broken + end;
        const std::string bdel = "delete " + broken + end;
        ASSERT_NE(mc::parse_request(text(bget)).kind, mc::Kind::kGet);
        ASSERT_EQ(mc::parse_request(text(bdel)).kind, mc::Kind::kUnsure);
        if (at > 0) install(kUdpVip, broken.substr(0, at), "p", slot++ % 8);
        before = cache_stats(kUdpVip);
        expect_forwarded(udp_request(bget));
        expect_forwarded(udp_request(bdel));
        after = cache_stats(kUdpVip);
        EXPECT_EQ(after.hits, before.hits);
        EXPECT_EQ(after.misses, before.misses) << "a get of some key";
        EXPECT_EQ(after.invalidations, before.invalidations) << "a write of some key";
        EXPECT_EQ(after.vip_invalidations, before.vip_invalidations + 1);
      }
    }
  }
  EXPECT_EQ(answered, static_cast<uint32_t>(SLUICE_CACHE_KEY_MAX));
}

TEST_F(CacheTest, MissIsForwardedAndCounted) {
  install(kUdpVip, "present", "x");
  expect_forwarded(udp_request("get absent\r\n"));
  expect_forwarded(udp_request("get Present\r\n"));
  const sluice_cache_stats s = cache_stats(kUdpVip);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 0u);
}

TEST_F(CacheTest, NotAnswerableGetsAreForwarded) {
  install(kUdpVip, "k", "v");
  expect_forwarded(udp_request("get k j\r\n"));  // two keys
  const Bytes two_datagrams = PacketBuilder()
                                  .eth({.dst = kLbMac, .src = kRouterMac})
                                  .ipv4({.src = kClient, .dst = kVip})
                                  .udp({.sport = kClientPort, .dport = kPort})
                                  .payload(cat({mc_frame(1, 0, 2), text("get k\r\n")}))
                                  .build();
  expect_forwarded(two_datagrams);
  EXPECT_EQ(cache_stats(kUdpVip).hits, 0u);
  // The entry is still there for a proper request.
  EXPECT_EQ(run_big(udp_request("get k\r\n")).verdict, XDP_TX);
  EXPECT_EQ(cache_stats(kUdpVip).hits, 1u);
}

TEST_F(CacheTest, OversizeValueIsNeverCachedSoForwarded) {
  sluice_cache_entry e{};
  const Bytes big(SLUICE_CACHE_VALUE_MAX + 1, 'x');
  EXPECT_EQ(mc::fill_entry(e, kUdpVip, "big", {0, 0, big}, 0, 0, 0), -E2BIG);
  expect_forwarded(udp_request("get big\r\n"));
}

TEST_F(CacheTest, WritesInvalidateBeforeForwarding) {
  const std::vector<std::pair<std::string, std::string>> writes = {
      {"set", "set k 0 0 1\r\nx\r\n"},
      {"add", "add k 0 0 1\r\nx\r\n"},
      {"replace", "replace k 0 0 1\r\nx\r\n"},
      {"append", "append k 0 0 1\r\nx\r\n"},
      {"prepend", "prepend k 0 0 1\r\nx\r\n"},
      {"cas", "cas k 0 0 1 5\r\nx\r\n"},
      {"incr", "incr k 1\r\n"},
      {"decr", "decr k 1\r\n"},
      {"touch", "touch k 10\r\n"},
      {"delete", "delete k\r\n"},
      {"set cut short", "set k 0 0 100\r\nxy"},
  };
  // Over TCP the writes go to the UDP VIP's twin and invalidate the UDP
  // VIP's keys.
  for (const bool over_tcp : {false, true}) {
    for (const auto& [name, req] : writes) {
      SCOPED_TRACE(std::string(over_tcp ? "tcp " : "udp ") + name);
      install(kUdpVip, "k", "old");
      const uint32_t v = version(kUdpVip, "k");
      expect_forwarded(over_tcp ? tcp_segment(req) : udp_request(req));
      EXPECT_FALSE(indexed(kUdpVip, "k"));
      EXPECT_EQ(version(kUdpVip, "k"), v + 1);
      expect_forwarded(udp_request("get k\r\n"));
    }
  }
  EXPECT_EQ(cache_stats(kUdpVip).invalidations, 2 * writes.size());
}

TEST_F(CacheTest, UnfollowableRequestsInvalidateTheVip) {
  const std::vector<std::pair<std::string, Bytes>> cases = {
      {"tcp pipeline", tcp_segment("get a\r\ndelete k\r\n")},
      {"tcp continuation of a data block", tcp_segment("tail of a value\r\nset k 0 0 1\r\nx\r\n")},
      {"tcp binary protocol", tcp_segment(std::string("\x80\x01\x00\x01", 4))},
      {"udp unknown command", udp_request("ms k 1\r\nx\r\n")},
      {"udp flush_all", udp_request("flush_all\r\n")},
      {"udp set then more", udp_request("set k 0 0 1\r\nx\r\nset j 0 0 1\r\ny\r\n")},
      {"udp double space", udp_request("set k 0  0 1\r\nx\r\n")},
  };
  for (const auto& [name, in] : cases) {
    SCOPED_TRACE(name);
    install(kUdpVip, "other", "v", 3);
    const uint32_t e = epoch(kUdpVip);
    expect_forwarded(in);
    EXPECT_EQ(epoch(kUdpVip), e + 1);
    expect_forwarded(udp_request("get other\r\n"));
  }
}

TEST_F(CacheTest, ReadsAndBareSegmentsChangeNothing) {
  install(kUdpVip, "k", "v");
  for (const Bytes& in : {tcp_segment(""), tcp_segment("get k\r\n"), tcp_segment("gets a b c\r\n"),
                          tcp_segment("version\r\n"), udp_request("get a b\r\n")}) {
    expect_forwarded(in);
  }
  EXPECT_EQ(epoch(kUdpVip), 0u);
  EXPECT_TRUE(indexed(kUdpVip, "k"));
  EXPECT_EQ(run_big(udp_request("get k\r\n")).verdict, XDP_TX);
}

TEST_F(CacheTest, StaleVersionOrEpochIsNotServed) {
  install(kUdpVip, "k", "v");
  const uint32_t slot = sluice_cache_version_slot(kUdpVip, mc::key_hash("k"));
  sluice_cache_slot v = index_slot(kUdpVip, "k");
  v.version++;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_cache_slots), &slot, &v, BPF_ANY), 0);
  expect_forwarded(udp_request("get k\r\n"));

  install(kUdpVip, "k", "v");
  EXPECT_EQ(run_big(udp_request("get k\r\n")).verdict, XDP_TX);
  const uint32_t e = epoch(kUdpVip) + 1;
  ASSERT_EQ(bpf_map_update_elem(fd(skel()->maps.sluice_cache_epochs), &kUdpVip, &e, BPF_ANY), 0);
  expect_forwarded(udp_request("get k\r\n"));
}

int count_event(void* ctx, void* data, size_t size) {
  auto* got = static_cast<std::vector<sluice_cache_hot>*>(ctx);
  if (size >= sizeof(sluice_cache_hot)) got->push_back(*static_cast<sluice_cache_hot*>(data));
  return 0;
}

TEST_F(CacheTest, HotMissesReachTheRingBufferOnce) {
  std::vector<sluice_cache_hot> got;
  ring_buffer* rb = ring_buffer__new(fd(skel()->maps.sluice_cache_hot), count_event, &got, nullptr);
  ASSERT_NE(rb, nullptr);
  for (uint32_t i = 0; i < kHotThreshold + 2; ++i) expect_forwarded(udp_request("get hot:1\r\n"));
  EXPECT_GE(ring_buffer__consume(rb), 0);
  ring_buffer__free(rb);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].vip_id, kUdpVip);
  EXPECT_EQ(got[0].key_hash, mc::key_hash("hot:1"));
  ASSERT_EQ(got[0].key_len, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got[0].key), 5), "hot:1");
  EXPECT_EQ(cache_stats(kUdpVip).hot_reports, 1u);
}

// The control side (xdp/cache.hpp) over the same program.
class XdpCacheTest : public CacheTest {
 protected:
  xdp::XdpCache open_cache(uint64_t max_bytes = 1u << 20) {
    auto c = xdp::XdpCache::open(skel(), {max_bytes, 60'000, 100});
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    return std::move(c).value();
  }

  FillResult fill(xdp::XdpCache& c, const std::string& key, const std::string& value) {
    auto lease = c.begin_fill(kUdpVip, key, xdp::XdpCache::now_ms());
    EXPECT_TRUE(lease.ok()) << key;
    if (!lease.ok()) return FillResult::kInvalid;
    const Bytes data = text(value);
    auto r = c.install(lease.value(), key, {3, 9, data}, xdp::XdpCache::now_ms());
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : FillResult::kInvalid;
  }
};

TEST_F(XdpCacheTest, FilledKeyIsServed) {
  xdp::XdpCache c = open_cache();
  EXPECT_EQ(c.capacity(), 1024u);
  ASSERT_EQ(fill(c, "k", "value"), FillResult::kInstalled);
  const XdpRun r = run_big(udp_request("gets k\r\n"));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(r.out, udp_response("VALUE k 3 5 9\r\nvalue\r\nEND\r\n"));
  // A refill replaces it.
  ASSERT_EQ(fill(c, "k", "other"), FillResult::kInstalled);
  EXPECT_EQ(run_big(udp_request("get k\r\n")).out, udp_response("VALUE k 3 5\r\nother\r\nEND\r\n"));
  auto n = c.counters(kUdpVip);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value().fills, 2u);
  EXPECT_EQ(n.value().entries, 1u);
  EXPECT_EQ(n.value().bytes, 6u);
  EXPECT_EQ(n.value().fast_path.hits, 2u);
  ASSERT_TRUE(c.maintain(xdp::XdpCache::now_ms()).ok());
  const auto hot = c.hottest(5);
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "k");
  EXPECT_EQ(hot[0].hits, 1u);
}

TEST_F(XdpCacheTest, WriteDuringTheFetchMakesTheFillStale) {
  xdp::XdpCache c = open_cache();
  auto lease = c.begin_fill(kUdpVip, "k", xdp::XdpCache::now_ms());
  ASSERT_TRUE(lease.ok());
  expect_forwarded(udp_request("set k 0 0 3\r\nnew\r\n"));
  const Bytes old = text("old");
  auto r = c.install(lease.value(), "k", {0, 0, old}, xdp::XdpCache::now_ms());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), FillResult::kStale);
  expect_forwarded(udp_request("get k\r\n"));
  // And no new lease until the write has had time to reach the backend.
  EXPECT_EQ(c.begin_fill(kUdpVip, "k", xdp::XdpCache::now_ms()).error().code, -EAGAIN);
  EXPECT_EQ(c.counters(kUdpVip).value().stale_fills, 1u);
}

TEST_F(XdpCacheTest, InvalidatedSlotsAreReclaimed) {
  xdp::XdpCache c = open_cache();
  ASSERT_EQ(fill(c, "a", "1"), FillResult::kInstalled);
  ASSERT_EQ(fill(c, "b", "2"), FillResult::kInstalled);
  expect_forwarded(udp_request("delete a\r\n"));
  auto n = c.maintain(xdp::XdpCache::now_ms());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 1u);
  EXPECT_EQ(c.counters(kUdpVip).value().entries, 1u);
  EXPECT_EQ(run_big(udp_request("get b\r\n")).verdict, XDP_TX);
}

// The index is direct-mapped: two keys of one index slot (here of one key
// hash) are never cached together; the later fill replaces the earlier one.
TEST_F(XdpCacheTest, KeysOfOneIndexSlotReplaceEachOther) {
  xdp::XdpCache c = open_cache();
  const auto [first, second] = colliding_keys(12);
  ASSERT_EQ(fill(c, first, "1"), FillResult::kInstalled);
  EXPECT_EQ(run_big(udp_request("get " + first + "\r\n")).verdict, XDP_TX);
  ASSERT_EQ(fill(c, second, "2"), FillResult::kInstalled);
  EXPECT_EQ(run_big(udp_request("get " + second + "\r\n")).out,
            udp_response("VALUE " + second + " 3 1\r\n2\r\nEND\r\n"));
  expect_forwarded(udp_request("get " + first + "\r\n"));
  EXPECT_EQ(c.counters(kUdpVip).value().entries, 1u);
  auto n = c.maintain(xdp::XdpCache::now_ms());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 0u);
  EXPECT_EQ(run_big(udp_request("get " + second + "\r\n")).verdict, XDP_TX);
}

TEST_F(XdpCacheTest, ByteBoundEvictsTheColdest) {
  xdp::XdpCache c = open_cache(2 * 11);  // two 10-byte values with 1-byte keys
  ASSERT_EQ(fill(c, "a", std::string(10, 'a')), FillResult::kInstalled);
  ASSERT_EQ(fill(c, "b", std::string(10, 'b')), FillResult::kInstalled);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run_big(udp_request("get a\r\n")).verdict, XDP_TX);
  ASSERT_EQ(fill(c, "c", std::string(10, 'c')), FillResult::kInstalled);
  EXPECT_EQ(run_big(udp_request("get a\r\n")).verdict, XDP_TX);
  expect_forwarded(udp_request("get b\r\n"));
  EXPECT_EQ(run_big(udp_request("get c\r\n")).verdict, XDP_TX);
  const auto n = c.counters(kUdpVip).value();
  EXPECT_EQ(n.evictions, 1u);
  EXPECT_LE(n.bytes, 22u);
}

TEST_F(XdpCacheTest, HotKeysArriveOnceAndFillTheCache) {
  xdp::XdpCache c = open_cache();
  for (uint32_t i = 0; i < kHotThreshold + 3; ++i) expect_forwarded(udp_request("get hot\r\n"));
  auto hot = c.poll_hot(16);
  ASSERT_TRUE(hot.ok());
  ASSERT_EQ(hot.value().size(), 1u);
  EXPECT_EQ(hot.value()[0].vip_id, kUdpVip);
  EXPECT_EQ(hot.value()[0].key, "hot");
  ASSERT_EQ(fill(c, "hot", "v"), FillResult::kInstalled);
  EXPECT_EQ(run_big(udp_request("get hot\r\n")).verdict, XDP_TX);
  // A new period: the sketch starts from zero.
  ASSERT_TRUE(c.maintain(xdp::XdpCache::now_ms()).ok());
  for (uint32_t i = 0; i + 1 < kHotThreshold; ++i) expect_forwarded(udp_request("get cold\r\n"));
  EXPECT_TRUE(c.poll_hot(16).value().empty());
}

// Key-affinity routing (SLUICE_VIP_KEY_HASH): a UDP request of one key is
// placed by the key in the VIP's Maglev table, built here by the core's
// MaglevBuilder, whatever client sends it; other requests by the 5-tuple.
class KeyRouteTest : public CacheTest {
 protected:
  static constexpr const char* kShardVip = "10.0.0.7";  // cache and key routing
  static constexpr const char* kPlainVip = "10.0.0.8";  // key routing only
  static constexpr uint32_t kShard = 14;
  static constexpr uint32_t kPlain = 15;

  void SetUp() override {
    CacheTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::vector<MaglevBackend> in;
    const std::vector<uint32_t> ids = {1, 2, 3};
    for (uint32_t id : ids) in.push_back({address(backend_address(id)), 1});
    MaglevBuilder builder;
    auto t = builder.build(in, kTableSize);
    ASSERT_TRUE(t.ok());
    for (uint32_t i : t.value()) table_.push_back(ids[i]);
    add_vip({kShardVip, kPort, kUdp, kShard, SLUICE_VIP_CACHE | SLUICE_VIP_KEY_HASH, {}});
    add_vip({kPlainVip, kPort, kUdp, kPlain, SLUICE_VIP_KEY_HASH, {}});
    // Slot i -> table_[i]: the real Maglev table of backends 1-3.
    publish_table(kShard, table_);
    publish_table(kPlain, table_);
  }

  std::string backend_address(uint32_t id) const {
    const sluice_backend& b = backends_.at(id);
    IpAddress a;
    a.family = b.family;
    std::memcpy(a.ip.bytes, b.addr.bytes, sizeof(a.ip.bytes));
    return a.to_string();
  }

  // The core's choice for a request routed by `key`.
  uint32_t owner(const std::string& key) const {
    return table_[mc::route_hash(key, kSeed) % kTableSize];
  }

  static Bytes request(const char* vip, const std::string& client, uint16_t cport,
                       const std::string& req) {
    return PacketBuilder()
        .eth({.dst = kLbMac, .src = kRouterMac})
        .ipv4({.src = client, .dst = vip})
        .udp({.sport = cport, .dport = kPort})
        .payload(cat({mc_frame(7), text(req)}))
        .build();
  }

  // The backend a request went to (it must have been forwarded).
  uint32_t sent_to(const Bytes& in) {
    const XdpRun r = run_big(in);
    EXPECT_EQ(r.verdict, XDP_TX);
    return backend_of(r);
  }

  std::vector<uint32_t> table_;
};

TEST_F(KeyRouteTest, OneKeyFromManyClientsMeetsItsOwner) {
  const uint32_t want = owner("user:42");
  const sluice_global_stats before = global_stats();
  for (uint32_t c = 0; c < 40; ++c) {
    const std::string client = "192.0.2." + std::to_string(10 + c);
    const auto port = static_cast<uint16_t>(30000 + 7 * c);
    EXPECT_EQ(sent_to(request(kShardVip, client, port, "get user:42\r\n")), want) << client;
    EXPECT_EQ(sent_to(request(kShardVip, client, port, "gets user:42\r\n")), want) << client;
  }
  // The flow table was never asked: no hit, no miss, nothing on probation.
  const sluice_global_stats after = global_stats();
  EXPECT_EQ(after.flow_hits, before.flow_hits);
  EXPECT_EQ(after.flow_misses, before.flow_misses);
  EXPECT_TRUE(take_probation().empty());
}

TEST_F(KeyRouteTest, WritesOverUdpGoToTheKeysOwnerToo) {
  const std::vector<std::string> keys = {"a", "user:1", "user:2", "session:77",
                                         std::string(250, 'z')};
  for (const std::string& key : keys) {
    const uint32_t want = owner(key);
    for (const std::string& req :
         {"set " + key + " 0 0 2\r\nhi\r\n", "delete " + key + "\r\n", "incr " + key + " 1\r\n",
          "touch " + key + " 10\r\n", "add " + key + " 1 0 1\r\nx\r\n"})
      EXPECT_EQ(sent_to(request(kShardVip, "192.0.2.99", 40000, req)), want) << req;
  }
}

TEST_F(KeyRouteTest, TenThousandKeysEqualTheCoresChoiceAndSpread) {
  std::map<uint32_t, int> per;
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "key:" + std::to_string(i);
    const uint32_t got = sent_to(request(kPlainVip, "192.0.2.10", 40123, "get " + key + "\r\n"));
    ASSERT_EQ(got, owner(key)) << key;
    ++per[got];
  }
  ASSERT_EQ(per.size(), 3u);
  for (const auto& [id, n] : per) {  // a third each, within 10%
    EXPECT_GT(n, 3333 * 9 / 10) << id;
    EXPECT_LT(n, 3333 * 11 / 10) << id;
  }
  // Without the cache flag the cache was not touched.
  EXPECT_EQ(cache_stats(kPlain).misses, 0u);
}

// The same decision as mc::routing_key: a request it gives a key for goes
// to that key's owner; the rest, and the commands the XDP parser does not
// follow (gat), to the 5-tuple's choice.
TEST_F(KeyRouteTest, WhatIsRoutedByKeyIsWhatTheCoreSays) {
  struct Case {
    std::string req;
    bool by_key;  // in XDP
  };
  const std::vector<Case> cases = {
      {"get k1\r\n", true},
      {"gets k2\r\n", true},
      {"set k3 0 0 1\r\nx\r\n", true},
      {"delete k4\r\n", true},
      {"decr k5 1\r\n", true},
      {"get k1 k2\r\n", false},
      {"version\r\n", false},
      {"stats\r\n", false},
      {"flush_all\r\n", false},
      {"get k1\r\nget k2\r\n", false},
      {"gat 10 k6\r\n", false},
      {"bogus k7\r\n", false},
  };
  uint16_t port = 41000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.req);
    const Bytes frame = cat({mc_frame(7), text(c.req)});
    const auto k = mc::routing_key(frame);
    // XDP routes by key a subset of what the core does.
    if (c.by_key) {
      ASSERT_TRUE(k.has_value());
    }
    if (!k) {
      EXPECT_FALSE(c.by_key);
    }
    // A fresh 5-tuple each: its choice is the VIP table's at the flow hash.
    ++port;
    const Bytes in = request(kPlainVip, "192.0.2.50", port, c.req);
    const uint32_t want =
        c.by_key ? owner(std::string(*k))
                 : choice(kPlain, flow_key("192.0.2.50", port, kPlainVip, kPort, kUdp));
    EXPECT_EQ(sent_to(in), want);
  }
}

// A cached key of a key-routed VIP is still answered from the cache.
TEST_F(KeyRouteTest, CacheStillAnswersOnAKeyRoutedVip) {
  install(kShard, "user:42", "hello");
  const XdpRun r = run_big(request(kShardVip, kClient, kClientPort, "get user:42\r\n"));
  EXPECT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(backend_of(r), SLUICE_BACKEND_NONE) << "answered, not forwarded";
  EXPECT_EQ(cache_stats(kShard).hits, 1u);
}

}  // namespace
}  // namespace sluice::test
