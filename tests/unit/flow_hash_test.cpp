// SPDX-License-Identifier: BSD-2-Clause
// The flow hash of dataplane/abi/flow.h: equal to MurmurHash3_x86_32 of the
// key's canonical byte string (checked against an independent reference that
// passes the published test vectors), independent of how a key was built,
// and spread evenly enough for the flow table and Maglev.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "dataplane/abi/flow.h"
#include "dataplane/core/ip_address.hpp"

namespace {

// ---------------------------------------------------------------------------
// Reference MurmurHash3_x86_32 over a byte array, written from the
// algorithm's description (Austin Appleby, SMHasher) and deliberately
// sharing no code with flow.h: blocks of 4 bytes read little-endian, a 1-3
// byte tail, the length, then the fmix32 finaliser.

uint32_t ref_mix_block(uint32_t k) {
  k *= 0xcc9e2d51u;
  k = std::rotl(k, 15);
  return k * 0x1b873593u;
}

uint32_t murmur3_x86_32(const uint8_t* data, size_t len, uint32_t seed) {
  uint32_t h = seed;
  const size_t blocks = len / 4;
  for (size_t i = 0; i < blocks; ++i) {
    const uint8_t* p = data + 4 * i;
    const uint32_t k = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                       static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    h ^= ref_mix_block(k);
    h = std::rotl(h, 13);
    h = h * 5 + 0xe6546b64u;
  }
  const uint8_t* tail = data + 4 * blocks;
  uint32_t k = 0;
  for (size_t i = len % 4; i > 0; --i) k = (k << 8) | tail[i - 1];
  if (len % 4 != 0) h ^= ref_mix_block(k);
  h ^= static_cast<uint32_t>(len);
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

uint32_t murmur3_x86_32(std::string_view s, uint32_t seed) {
  return murmur3_x86_32(reinterpret_cast<const uint8_t*>(s.data()), s.size(), seed);
}

// The canonical byte string flow.h documents: src, dst (4 or 16 bytes
// each), sport, dport (wire order), proto.
std::vector<uint8_t> canonical(const sluice_flow_key& k) {
  const size_t n = k.family == SLUICE_FAMILY_IPV6 ? 16 : 4;
  std::vector<uint8_t> out(k.src.bytes, k.src.bytes + n);
  out.insert(out.end(), k.dst.bytes, k.dst.bytes + n);
  const auto* ports = reinterpret_cast<const uint8_t*>(&k.sport);
  out.insert(out.end(), ports, ports + 4);
  out.push_back(k.proto);
  return out;
}

uint32_t ref_flow_hash(const sluice_flow_key& k, uint32_t seed) {
  const std::vector<uint8_t> bytes = canonical(k);
  return murmur3_x86_32(bytes.data(), bytes.size(), seed);
}

// ---------------------------------------------------------------------------
// Deterministic inputs: splitmix64 (Steele, Lea, Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014). Written out rather than
// taken from <random> so the stream is the same with every standard library.

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  uint32_t next32() { return static_cast<uint32_t>(next() >> 32); }

 private:
  uint64_t state_;
};

sluice_flow_key random_key(SplitMix64& rng, uint8_t family) {
  sluice_flow_key k{};
  const size_t n = family == SLUICE_FAMILY_IPV6 ? 16 : 4;
  for (size_t i = 0; i < n; ++i) {
    k.src.bytes[i] = static_cast<uint8_t>(rng.next());
    k.dst.bytes[i] = static_cast<uint8_t>(rng.next());
  }
  const uint64_t r = rng.next();
  k.sport = static_cast<uint16_t>(r);
  k.dport = static_cast<uint16_t>(r >> 16);
  k.proto = (r >> 32) & 1 ? SLUICE_IPPROTO_TCP : SLUICE_IPPROTO_UDP;
  k.family = family;
  return k;
}

// Keys compare as bytes, as flow tables compare them (flow.h: unused bytes
// are zero so keys compare with memcmp); that is what these tests check.
bool same_bytes(const sluice_flow_key& a, const sluice_flow_key& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;  // NOLINT(bugprone-suspicious-memory-comparison)
}

constexpr uint8_t kFamilies[] = {SLUICE_FAMILY_IPV4, SLUICE_FAMILY_IPV6};

const char* family_name(uint8_t family) { return family == SLUICE_FAMILY_IPV6 ? "v6" : "v4"; }

// ---------------------------------------------------------------------------
// The reference itself.

// Published MurmurHash3_x86_32 vectors. The byte-level rows are Ian Boyd's
// table (stackoverflow.com/a/31929528, reproduced from SMHasher's code);
// the strings are the ones widely used to check ports (e.g. Wikipedia's
// MurmurHash page, Go and Python murmur3 packages). Cross-checked in several
// independent implementations' test suites before being copied here.
TEST(MurmurReference, PublishedVectors) {
  struct Vector {
    std::string_view input;
    uint32_t seed;
    uint32_t expected;
  };
  using namespace std::string_view_literals;
  const Vector vectors[] = {
      {""sv, 0, 0},
      {""sv, 1, 0x514E28B7},
      {""sv, 0xffffffff, 0x81F16F39},
      {"\xff\xff\xff\xff"sv, 0, 0x76293B50},
      {"\x21\x43\x65\x87"sv, 0, 0xF55B516B},
      {"\x21\x43\x65\x87"sv, 0x5082EDEE, 0x2362F9DE},
      {"\x21\x43\x65"sv, 0, 0x7E4A8634},
      {"\x21\x43"sv, 0, 0xA0F7B07A},
      {"\x21"sv, 0, 0x72661CF4},
      {"\0\0\0\0"sv, 0, 0x2362F9DE},
      {"\0\0\0"sv, 0, 0x85F0B427},
      {"\0\0"sv, 0, 0x30F4C306},
      {"\0"sv, 0, 0x514E28B7},
      {"Hello, world!"sv, 1234, 0xFAF6CDB3},
      {"Hello, world!"sv, 0x9747b28c, 0x24884CBA},
      {"The quick brown fox jumps over the lazy dog"sv, 0x9747b28c, 0x2FA826CD},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(murmur3_x86_32(v.input, v.seed), v.expected)
        << "input of " << v.input.size() << " bytes, seed 0x" << std::hex << v.seed;
  }
}

// SMHasher's own self-test (KeysetTest.cpp VerificationTest): hash the keys
// {}, {0}, {0,1}, ... {0..254} with seed 256 - length, store the 256 hashes
// little-endian, hash those 1024 bytes with seed 0. SMHasher's main.cpp
// lists 0xB0F57EE3 for MurmurHash3_x86_32. One number that pins every
// length's tail handling.
TEST(MurmurReference, SmhasherVerificationValue) {
  uint8_t key[256];
  uint8_t hashes[256 * 4];
  for (uint32_t i = 0; i < 256; ++i) {
    key[i] = static_cast<uint8_t>(i);
    const uint32_t h = murmur3_x86_32(key, i, 256 - i);
    for (uint32_t b = 0; b < 4; ++b) hashes[4 * i + b] = static_cast<uint8_t>(h >> (8 * b));
  }
  EXPECT_EQ(murmur3_x86_32(hashes, sizeof hashes, 0), 0xB0F57EE3u);
}

// ---------------------------------------------------------------------------
// flow.h against the reference.

TEST(FlowHash, EqualsMurmurOfCanonicalBytes) {
  SplitMix64 rng(1);
  for (uint8_t family : kFamilies) {
    for (int i = 0; i < 20000; ++i) {
      const sluice_flow_key k = random_key(rng, family);
      const uint32_t seed = i % 4 == 0 ? 0 : rng.next32();
      ASSERT_EQ(sluice_flow_hash(&k, seed), ref_flow_hash(k, seed))
          << family_name(family) << " key " << i << " seed 0x" << std::hex << seed;
    }
  }
}

TEST(FlowHash, SourceOnlyHashEqualsMurmurOfSourceAddress) {
  SplitMix64 rng(2);
  for (uint8_t family : kFamilies) {
    const size_t n = family == SLUICE_FAMILY_IPV6 ? 16 : 4;
    for (int i = 0; i < 20000; ++i) {
      const sluice_flow_key k = random_key(rng, family);
      const uint32_t seed = rng.next32();
      ASSERT_EQ(sluice_flow_hash_src(&k, seed), murmur3_x86_32(k.src.bytes, n, seed))
          << family_name(family) << " key " << i;
    }
  }
}

TEST(FlowHash, AddressHashEqualsMurmurOfAddress) {
  SplitMix64 rng(3);
  for (uint8_t family : kFamilies) {
    const size_t n = family == SLUICE_FAMILY_IPV6 ? 16 : 4;
    for (int i = 0; i < 20000; ++i) {
      const sluice_flow_key k = random_key(rng, family);
      for (uint32_t seed : {SLUICE_MAGLEV_OFFSET_SEED, SLUICE_MAGLEV_SKIP_SEED, rng.next32()}) {
        ASSERT_EQ(sluice_addr_hash(&k.dst, family, seed), murmur3_x86_32(k.dst.bytes, n, seed))
            << family_name(family) << " address " << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Representation: the hash depends on the flow, not on how its key was made.

TEST(FlowHash, SameFlowFromHostIntegersOrWireBytes) {
  // 198.51.100.7:40000 -> 192.0.2.10:80/TCP, once from host-order integers
  // and once as the bytes of a received IPv4 + TCP header.
  sluice_flow_key from_ints{};
  from_ints.src.v4 = sl_htonl(0xC6336407);
  from_ints.dst.v4 = sl_htonl(0xC000020A);
  from_ints.sport = sl_htons(40000);
  from_ints.dport = sl_htons(80);
  from_ints.proto = SLUICE_IPPROTO_TCP;
  from_ints.family = SLUICE_FAMILY_IPV4;

  const uint8_t ip_addrs[8] = {198, 51, 100, 7, 192, 0, 2, 10};  // IPv4 header bytes 12-19
  const uint8_t tcp_ports[4] = {0x9c, 0x40, 0x00, 0x50};         // TCP header bytes 0-3
  sluice_flow_key from_wire{};
  std::memcpy(from_wire.src.bytes, ip_addrs, 4);
  std::memcpy(from_wire.dst.bytes, ip_addrs + 4, 4);
  std::memcpy(&from_wire.sport, tcp_ports, 4);
  from_wire.proto = SLUICE_IPPROTO_TCP;
  from_wire.family = SLUICE_FAMILY_IPV4;

  sluice_flow_key from_text{};
  from_text.src = sluice::IpAddress::parse("198.51.100.7").value().ip;
  from_text.dst = sluice::IpAddress::parse("192.0.2.10").value().ip;
  from_text.sport = sl_htons(40000);
  from_text.dport = sl_htons(80);
  from_text.proto = SLUICE_IPPROTO_TCP;
  from_text.family = SLUICE_FAMILY_IPV4;

  EXPECT_TRUE(same_bytes(from_ints, from_wire));
  EXPECT_TRUE(same_bytes(from_ints, from_text));
  for (uint32_t seed : {0u, 1u, 0xdeadbeefu}) {
    EXPECT_EQ(sluice_flow_hash(&from_ints, seed), sluice_flow_hash(&from_wire, seed));
    EXPECT_EQ(sluice_flow_hash(&from_ints, seed), sluice_flow_hash(&from_text, seed));
    EXPECT_EQ(sluice_flow_hash(&from_ints, seed), ref_flow_hash(from_ints, seed));
  }
}

TEST(FlowHash, SameV6FlowFromTextOrWireBytes) {
  const uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  const uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
  sluice_flow_key from_wire{};
  std::memcpy(from_wire.src.bytes, src, 16);
  std::memcpy(from_wire.dst.bytes, dst, 16);
  from_wire.sport = sl_htons(50123);
  from_wire.dport = sl_htons(443);
  from_wire.proto = SLUICE_IPPROTO_UDP;
  from_wire.family = SLUICE_FAMILY_IPV6;

  sluice_flow_key from_text = from_wire;
  from_text.src = sluice::IpAddress::parse("2001:db8:1::7").value().ip;
  from_text.dst = sluice::IpAddress::parse("2001:db8::10").value().ip;

  EXPECT_TRUE(same_bytes(from_wire, from_text));
  EXPECT_EQ(sluice_flow_hash(&from_wire, 7), sluice_flow_hash(&from_text, 7));
  EXPECT_EQ(sluice_flow_hash(&from_wire, 7), ref_flow_hash(from_wire, 7));
}

// An IPv4 key hashes only the first 4 bytes of each address, and no key
// hashes its pad bytes. They must still be zero: flow tables compare whole
// keys with memcmp, so a key with garbage there would hash like its flow but
// never match it. Builders value-initialise keys (sluice_flow_key k{}, which
// GCC and Clang zero whole); a sluice_ip *member* initialised with a bare
// `{}` zeroes only v4 (see IpAddress::ip), so it names `.bytes = {}`.
TEST(FlowHash, V4IgnoresUpperAddressBytesAndPad) {
  SplitMix64 rng(4);
  for (int i = 0; i < 1000; ++i) {
    const sluice_flow_key clean = random_key(rng, SLUICE_FAMILY_IPV4);
    sluice_flow_key dirty = clean;
    for (size_t b = 4; b < 16; ++b) {
      dirty.src.bytes[b] = static_cast<uint8_t>(rng.next());
      dirty.dst.bytes[b] = static_cast<uint8_t>(rng.next());
    }
    dirty.pad[0] = 0xAA;
    dirty.pad[1] = 0x55;
    const uint32_t seed = rng.next32();
    ASSERT_EQ(sluice_flow_hash(&dirty, seed), sluice_flow_hash(&clean, seed));
    ASSERT_EQ(sluice_flow_hash_src(&dirty, seed), sluice_flow_hash_src(&clean, seed));
    ASSERT_EQ(sluice_addr_hash(&dirty.src, SLUICE_FAMILY_IPV4, seed),
              sluice_addr_hash(&clean.src, SLUICE_FAMILY_IPV4, seed));
    ASSERT_FALSE(same_bytes(dirty, clean));
  }
}

TEST(FlowHash, V6IgnoresPad) {
  SplitMix64 rng(5);
  for (int i = 0; i < 1000; ++i) {
    const sluice_flow_key clean = random_key(rng, SLUICE_FAMILY_IPV6);
    sluice_flow_key dirty = clean;
    dirty.pad[0] = 0xFF;
    dirty.pad[1] = 0x01;
    ASSERT_EQ(sluice_flow_hash(&dirty, 99), sluice_flow_hash(&clean, 99));
  }
}

// Every field that names the flow reaches the hash: family (an IPv4 flow
// is not its v4-mapped IPv6 twin), direction, protocol and seed.
TEST(FlowHash, EveryFieldCounts) {
  sluice_flow_key v4{};
  v4.src = sluice::IpAddress::parse("192.0.2.1").value().ip;
  v4.dst = sluice::IpAddress::parse("192.0.2.2").value().ip;
  v4.sport = sl_htons(1111);
  v4.dport = sl_htons(2222);
  v4.proto = SLUICE_IPPROTO_TCP;
  v4.family = SLUICE_FAMILY_IPV4;
  const uint32_t h = sluice_flow_hash(&v4, 0);

  sluice_flow_key mapped = v4;
  mapped.src = sluice::IpAddress::parse("::ffff:192.0.2.1").value().ip;
  mapped.dst = sluice::IpAddress::parse("::ffff:192.0.2.2").value().ip;
  mapped.family = SLUICE_FAMILY_IPV6;
  EXPECT_NE(sluice_flow_hash(&mapped, 0), h);

  sluice_flow_key v6_same_prefix = v4;  // same first 4 bytes, read as IPv6
  v6_same_prefix.family = SLUICE_FAMILY_IPV6;
  EXPECT_NE(sluice_flow_hash(&v6_same_prefix, 0), h);

  sluice_flow_key reversed = v4;
  std::swap(reversed.src, reversed.dst);
  std::swap(reversed.sport, reversed.dport);
  EXPECT_NE(sluice_flow_hash(&reversed, 0), h);

  sluice_flow_key udp = v4;
  udp.proto = SLUICE_IPPROTO_UDP;
  EXPECT_NE(sluice_flow_hash(&udp, 0), h);

  EXPECT_NE(sluice_flow_hash(&v4, 1), h);
}

// ---------------------------------------------------------------------------
// Distribution.

// Pearson's chi-square statistic of bucket counts against a uniform spread.
double chi_square(const std::vector<uint32_t>& counts, double flows) {
  const double expected = flows / static_cast<double>(counts.size());
  double stat = 0;
  for (uint32_t c : counts) {
    const double d = static_cast<double>(c) - expected;
    stat += d * d / expected;
  }
  return stat;
}

// Quantile of the chi-square distribution with `dof` degrees of freedom at
// the standard normal quantile z, by the Wilson-Hilferty approximation
// (Wilson & Hilferty, PNAS 1931); within 0.1 % of the exact value for the
// thousands of degrees of freedom used here. z = +-3.0902 is p = 0.001.
double chi_square_quantile(double dof, double z) {
  const double a = 2.0 / (9.0 * dof);
  const double c = 1.0 - a + z * std::sqrt(a);
  return dof * c * c * c;
}

constexpr double kZ999 = 3.0902;  // standard normal quantile at 0.999

// Asserts the statistic is neither too large (clumping) nor too small (a
// spread too regular to come from a hash, e.g. a hash that ignores the
// random fields and counts up) at p = 0.001 on either side.
void expect_uniform(const std::vector<uint32_t>& counts, double flows, const std::string& what) {
  const double dof = static_cast<double>(counts.size() - 1);
  const double stat = chi_square(counts, flows);
  EXPECT_LT(stat, chi_square_quantile(dof, kZ999)) << what << ": chi-square " << stat;
  EXPECT_GT(stat, chi_square_quantile(dof, -kZ999)) << what << ": chi-square " << stat;
}

// Buckets the flow table (power of two, low bits) and Maglev (hash % M,
// default M = 65,537) would use.
struct Buckets {
  std::vector<uint32_t> low_bits = std::vector<uint32_t>(4096);
  std::vector<uint32_t> maglev = std::vector<uint32_t>(SLUICE_MAGLEV_DEFAULT_SIZE);
  void add(uint32_t h) {
    ++low_bits[h & 4095];
    ++maglev[h % SLUICE_MAGLEV_DEFAULT_SIZE];
  }
  void expect_uniform_spread(double flows, const std::string& what) const {
    expect_uniform(low_bits, flows, what + ", 4096 buckets (low bits)");
    expect_uniform(maglev, flows, what + ", 65537 buckets (mod)");
  }
};

constexpr int kFlows = 1 << 20;

TEST(FlowHashDistribution, RandomFlowsSpreadEvenly) {
  for (uint8_t family : kFamilies) {
    SplitMix64 rng(6);
    Buckets flow, src, addr;
    for (int i = 0; i < kFlows; ++i) {
      const sluice_flow_key k = random_key(rng, family);
      flow.add(sluice_flow_hash(&k, 0x12345678));
      src.add(sluice_flow_hash_src(&k, 0x12345678));
      addr.add(sluice_addr_hash(&k.dst, family, SLUICE_MAGLEV_OFFSET_SEED));
    }
    flow.expect_uniform_spread(kFlows, std::string("flow hash ") + family_name(family));
    src.expect_uniform_spread(kFlows, std::string("source hash ") + family_name(family));
    addr.expect_uniform_spread(kFlows, std::string("address hash ") + family_name(family));
  }
}

// What a load balancer really sees: few clients, one VIP and port, flows
// that differ only in the client's ephemeral port.
TEST(FlowHashDistribution, EphemeralPortsFromFewClientsSpreadEvenly) {
  for (uint8_t family : kFamilies) {
    sluice_flow_key k{};
    k.family = family;
    k.proto = SLUICE_IPPROTO_TCP;
    k.dport = sl_htons(443);
    k.dst = sluice::IpAddress::parse(family == SLUICE_FAMILY_IPV6 ? "2001:db8::10" : "192.0.2.10")
                .value()
                .ip;
    k.src = k.dst;
    Buckets flow;
    for (uint32_t client = 0; client < 16; ++client) {
      k.src.bytes[family == SLUICE_FAMILY_IPV6 ? 15 : 3] = static_cast<uint8_t>(100 + client);
      for (uint32_t port = 0; port < 65536; ++port) {
        k.sport = sl_htons(static_cast<uint16_t>(port));
        flow.add(sluice_flow_hash(&k, 0));
      }
    }
    flow.expect_uniform_spread(16.0 * 65536, std::string("ephemeral ports ") + family_name(family));
  }
}

// Strict avalanche: flipping one input bit flips each output bit with
// probability 1/2. 10,000 samples give a standard error of 0.005 per
// (input bit, output bit) pair; the bound is 7 standard errors, so a
// correct hash never fails it and a real bias of a few percent does.
TEST(FlowHashDistribution, EveryInputBitAvalanches) {
  constexpr int kSamples = 10000;
  constexpr double kTolerance = 0.035;
  for (uint8_t family : kFamilies) {
    // Byte offsets in sluice_flow_key of the canonical string's bytes.
    std::vector<size_t> offsets;
    const size_t n = family == SLUICE_FAMILY_IPV6 ? 16 : 4;
    for (size_t i = 0; i < n; ++i) offsets.push_back(offsetof(sluice_flow_key, src) + i);
    for (size_t i = 0; i < n; ++i) offsets.push_back(offsetof(sluice_flow_key, dst) + i);
    for (size_t i = 0; i < 5; ++i) offsets.push_back(offsetof(sluice_flow_key, sport) + i);
    const size_t in_bits = offsets.size() * 8;

    std::vector<uint32_t> flips(in_bits * 32);
    SplitMix64 rng(7);
    for (int s = 0; s < kSamples; ++s) {
      sluice_flow_key k = random_key(rng, family);
      const uint32_t seed = rng.next32();
      const uint32_t h0 = sluice_flow_hash(&k, seed);
      auto* bytes = reinterpret_cast<uint8_t*>(&k);
      for (size_t bit = 0; bit < in_bits; ++bit) {
        const auto mask = static_cast<uint8_t>(1u << (bit % 8));
        bytes[offsets[bit / 8]] ^= mask;
        const uint32_t diff = h0 ^ sluice_flow_hash(&k, seed);
        bytes[offsets[bit / 8]] ^= mask;
        for (size_t out = 0; out < 32; ++out) flips[bit * 32 + out] += (diff >> out) & 1;
      }
    }
    double worst = 0;
    for (size_t i = 0; i < flips.size(); ++i) {
      const double p = flips[i] / static_cast<double>(kSamples);
      worst = std::max(worst, std::fabs(p - 0.5));
      ASSERT_NEAR(p, 0.5, kTolerance)
          << family_name(family) << " input bit " << i / 32 << " -> output bit " << i % 32;
    }
    RecordProperty(std::string("worst_bias_") + family_name(family), std::to_string(worst));
  }
}

}  // namespace
