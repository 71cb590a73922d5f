// SPDX-License-Identifier: BSD-2-Clause
// The memcached request parser, write scanner, UDP frame header and the
// byte-exact VALUE responses (dataplane/core/memcached.hpp).
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/abi/csum.h"
#include "dataplane/core/maglev.hpp"
#include "dataplane/core/memcached.hpp"

namespace {

using sluice::mc::Kind;

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct ParseCase {
  const char* name;
  std::string input;
  Kind kind;
  std::string key;          // expected key ("" for none)
  uint32_t length;          // expected length
  bool incomplete = false;  // expected for kUnsure
  bool gets = false;
};

const std::string k250(250, 'k');
const std::string k251(251, 'k');

std::vector<ParseCase> parse_cases() {
  return {
      // Retrievals.
      {"get", "get foo\r\n", Kind::kGet, "foo", 9},
      {"gets", "gets foo\r\n", Kind::kGet, "foo", 10, false, true},
      {"get bare LF", "get foo\n", Kind::kGet, "foo", 8},
      {"get extra spaces", "get   foo  \r\n", Kind::kGet, "foo", 13},
      {"get 250-byte key", "get " + k250 + "\r\n", Kind::kGet, k250, 256},
      {"get 251-byte key", "get " + k251 + "\r\n", Kind::kRead, "", 257},
      {"get two keys", "get a b\r\n", Kind::kRead, "", 9},
      {"get no key", "get\r\n", Kind::kRead, "", 5},
      {"get control byte in key", std::string("get a\x01" "b\r\n"), Kind::kRead, "", 9},
      {"gat one key", "gat 100 foo\r\n", Kind::kWrite, "foo", 13},
      {"gats one key", "gats 0 foo\r\n", Kind::kWrite, "foo", 12},
      {"gat two keys", "gat 100 a b\r\n", Kind::kUnsure, "", 0},
      {"gat bad exptime", "gat x foo\r\n", Kind::kUnsure, "", 0},
      // Storage commands, with their data blocks.
      {"set", "set foo 1 0 3\r\nbar\r\n", Kind::kWrite, "foo", 20},
      {"set noreply", "set foo 1 0 3 noreply\r\nbar\r\n", Kind::kWrite, "foo", 28},
      {"set negative exptime", "set foo 1 -1 3\r\nbar\r\n", Kind::kWrite, "foo", 21},
      {"set empty value", "set foo 0 0 0\r\n\r\n", Kind::kWrite, "foo", 17},
      {"add", "add foo 0 0 1\r\nx\r\n", Kind::kWrite, "foo", 18},
      {"replace", "replace foo 0 0 1\r\nx\r\n", Kind::kWrite, "foo", 22},
      {"append", "append foo 0 0 1\r\nx\r\n", Kind::kWrite, "foo", 21},
      {"prepend", "prepend foo 0 0 1\r\nx\r\n", Kind::kWrite, "foo", 22},
      {"cas", "cas foo 0 0 1 99\r\nx\r\n", Kind::kWrite, "foo", 21},
      {"set data holding CRLF", "set foo 0 0 5\r\na\r\nb\r\r\n", Kind::kWrite, "foo", 22},
      {"set 250-byte key", "set " + k250 + " 0 0 1\r\nx\r\n", Kind::kWrite, k250, 265},
      // Keyed writes without data.
      {"incr", "incr foo 1\r\n", Kind::kWrite, "foo", 12},
      {"decr", "decr foo 1 noreply\r\n", Kind::kWrite, "foo", 20},
      {"touch", "touch foo 10\r\n", Kind::kWrite, "foo", 14},
      {"delete", "delete foo\r\n", Kind::kWrite, "foo", 12},
      {"delete with time", "delete foo 0 noreply\r\n", Kind::kWrite, "foo", 22},
      {"flush_all", "flush_all\r\n", Kind::kFlush, "", 11},
      {"flush_all delay", "flush_all 10\r\n", Kind::kFlush, "", 14},
      // Reads.
      {"version", "version\r\n", Kind::kRead, "", 9},
      {"stats", "stats slabs\r\n", Kind::kRead, "", 13},
      {"mg plain", "mg foo v f\r\n", Kind::kRead, "", 12},
      {"mg vivify", "mg foo N30 v\r\n", Kind::kUnsure, "", 0},
      // Hostile or unfollowable input.
      {"empty", "", Kind::kUnsure, "", 0, true},
      {"missing line end", "get foo", Kind::kUnsure, "", 0, true},
      {"write line cut after key", "set foo 0 0", Kind::kUnsure, "foo", 0, true},
      {"write line cut in key", "set fo", Kind::kUnsure, "", 0, true},
      {"data block cut short", "set foo 0 0 10\r\nabc", Kind::kUnsure, "foo", 0, true},
      {"data block without CRLF", "set foo 0 0 3\r\nbarXY", Kind::kUnsure, "foo", 0},
      {"huge length", "set foo 0 0 4294967296\r\nx\r\n", Kind::kUnsure, "", 0},
      {"length over INT_MAX-2", "set foo 0 0 2147483646\r\nx\r\n", Kind::kUnsure, "", 0},
      {"length near INT_MAX-2", "set foo 0 0 2147483645\r\nx\r\n", Kind::kUnsure, "foo", 0,
       true},
      {"flags over 32 bits", "set foo 4294967296 0 1\r\nx\r\n", Kind::kUnsure, "", 0},
      {"negative length", "set foo 0 0 -1\r\n\r\n", Kind::kUnsure, "", 0},
      {"set missing token", "set foo 0 0\r\n", Kind::kUnsure, "", 0},
      {"set extra token", "set foo 0 0 1 noreply x\r\nx\r\n", Kind::kUnsure, "", 0},
      {"set 251-byte key", "set " + k251 + " 0 0 1\r\nx\r\n", Kind::kUnsure, "", 0},
      {"cas without unique", "cas foo 0 0 1\r\nx\r\n", Kind::kUnsure, "", 0},
      {"delete no key", "delete\r\n", Kind::kUnsure, "", 0},
      {"unknown command", "frobnicate foo\r\n", Kind::kUnsure, "", 0},
      {"upper case", "SET foo 0 0 1\r\nx\r\n", Kind::kUnsure, "", 0},
      {"meta set", "ms foo 3\r\nbar\r\n", Kind::kUnsure, "", 0},
      {"meta delete", "md foo\r\n", Kind::kUnsure, "", 0},
      {"binary protocol", std::string("\x80\x01\x00\x03", 4), Kind::kUnsure, "", 0},
      {"garbage", std::string("\xff\xfe\x00\n", 4), Kind::kUnsure, "", 0},
  };
}

TEST(McParse, Table) {
  for (const ParseCase& c : parse_cases()) {
    SCOPED_TRACE(c.name);
    const sluice::mc::Request r = sluice::mc::parse_request(bytes(c.input));
    EXPECT_EQ(r.kind, c.kind);
    EXPECT_EQ(std::string(r.key), c.key);
    EXPECT_EQ(r.length, c.length);
    EXPECT_EQ(r.incomplete, c.incomplete);
    EXPECT_EQ(r.gets, c.gets);
    if (!r.key.empty()) {
      // The key is a view into the input.
      EXPECT_GE(r.key.data(), reinterpret_cast<const char*>(bytes(c.input).data()));
      EXPECT_LE(r.key.data() + r.key.size(), c.input.data() + c.input.size());
    }
  }
}

TEST(McParse, EveryPrefixIsSafe) {
  // Any cut of a valid request is either the request itself or unsure;
  // never a different key or kind.
  for (const ParseCase& c : parse_cases()) {
    if (c.kind == Kind::kUnsure) continue;
    for (size_t n = 0; n < c.input.size(); ++n) {
      SCOPED_TRACE(std::string(c.name) + " cut at " + std::to_string(n));
      const std::string cut = c.input.substr(0, n);
      const sluice::mc::Request r = sluice::mc::parse_request(bytes(cut));
      if (r.kind == Kind::kUnsure) {
        if (!r.key.empty()) {
          EXPECT_EQ(std::string(r.key), c.key);
        }
        continue;
      }
      // A bare-LF-terminated prefix of a CRLF line parses as the same request.
      EXPECT_EQ(r.kind, c.kind);
    }
  }
}

struct ScanCase {
  const char* name;
  std::string payload;
  std::vector<std::string> keys;
  bool whole_vip;
};

TEST(McScan, Table) {
  const std::vector<ScanCase> cases = {
      {"empty", "", {}, false},
      {"one get", "get a\r\n", {}, false},
      {"one set", "set a 0 0 1\r\nx\r\n", {"a"}, false},
      {"pipeline", "get a\r\nset b 0 0 2\r\nxy\r\ndelete c\r\nincr d 1\r\nget e f\r\n",
       {"b", "c", "d"}, false},
      {"data that looks like a command",
       "set a 0 0 10\r\ndelete z\r\n\r\ntouch b 1\r\n", {"a", "b"}, false},
      {"trailing write cut short", "get a\r\nset b 0 0 100\r\nxyz", {"b"}, false},
      {"trailing line cut before key", "delete c\r\nset", {"c"}, true},
      {"unknown in the middle", "delete c\r\nbogus\r\ndelete d\r\n", {"c"}, true},
      {"flush", "delete c\r\nflush_all\r\n", {"c"}, true},
      {"continuation of a data block", "tail of a value\r\nset x 0 0 1\r\ny\r\n", {}, true},
      {"binary", std::string("\x80\x01\x00\x03\x00\x00\x00\x00", 8), {}, true},
  };
  for (const ScanCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::array<std::string_view, 4> keys;
    const sluice::mc::Writes w = sluice::mc::scan_writes(bytes(c.payload), keys);
    ASSERT_EQ(w.keys, c.keys.size());
    for (size_t i = 0; i < c.keys.size(); ++i) EXPECT_EQ(std::string(keys[i]), c.keys[i]);
    EXPECT_EQ(w.whole_vip, c.whole_vip);
  }
}

TEST(McScan, MoreKeysThanRoomInvalidatesTheVip) {
  const std::string p = "delete a\r\ndelete b\r\ndelete c\r\n";
  std::array<std::string_view, 2> keys;
  const sluice::mc::Writes w = sluice::mc::scan_writes(bytes(p), keys);
  EXPECT_EQ(w.keys, 2u);
  EXPECT_TRUE(w.whole_vip);
}

std::string frame(uint16_t id, uint16_t seq, uint16_t total, const std::string& body) {
  std::string f;
  f += static_cast<char>(id >> 8);
  f += static_cast<char>(id & 0xff);
  f += static_cast<char>(seq >> 8);
  f += static_cast<char>(seq & 0xff);
  f += static_cast<char>(total >> 8);
  f += static_cast<char>(total & 0xff);
  f += std::string(2, '\0');
  return f + body;
}

TEST(McUdp, HeaderAndCacheableGet) {
  const auto h = sluice::mc::parse_udp_header(bytes(frame(0x1234, 0, 1, "get k\r\n")));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->request_id, 0x1234);
  EXPECT_EQ(h->sequence, 0);
  EXPECT_EQ(h->total, 1);
  EXPECT_FALSE(sluice::mc::parse_udp_header(bytes(std::string(7, '\0'))));

  const std::string gets = frame(7, 0, 1, "gets k\r\n");  // the key views into it
  const auto g = sluice::mc::cacheable_udp_get(bytes(gets));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->key, "k");
  EXPECT_TRUE(g->gets);
  // Not cacheable: multi-datagram, two keys, trailing bytes, a write, short.
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 1, 2, "get k\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 1, "get k j\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 1, "get k\r\nget j\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 1, "delete k\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 1, "get k"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(std::string("\0\1\0\0\0\1", 6))));
  // Every header field counts, in network order: not one datagram of one.
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 0, "get k\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0, 0x0100, "get k\r\n"))));
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(frame(7, 0x0100, 1, "get k\r\n"))));
  std::string reserved = frame(7, 0, 1, "get k\r\n");
  reserved[7] = 1;
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(reserved)));
  reserved[7] = 0;
  reserved[6] = 1;
  EXPECT_FALSE(sluice::mc::cacheable_udp_get(bytes(reserved)));
  EXPECT_TRUE(sluice::mc::cacheable_udp_get(bytes(frame(0xffff, 0, 1, "get k\r\n"))))
      << "any request id";
}

std::string as_string(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

TEST(McResponse, ByteExact) {
  const std::string data = "hello\r\nworld";
  const sluice::mc::Value v{4294967295u, 18446744073709551615ull, bytes(data)};
  std::array<uint8_t, 2048> out{};
  size_t n = sluice::mc::build_value_response(out, "key:1", v, false);
  EXPECT_EQ(as_string({out.data(), n}),
            "VALUE key:1 4294967295 12\r\nhello\r\nworld\r\nEND\r\n");
  n = sluice::mc::build_value_response(out, "key:1", v, true);
  EXPECT_EQ(as_string({out.data(), n}),
            "VALUE key:1 4294967295 12 18446744073709551615\r\nhello\r\nworld\r\nEND\r\n");
  const sluice::mc::Value empty{0, 0, {}};
  n = sluice::mc::build_value_response(out, "k", empty, true);
  EXPECT_EQ(as_string({out.data(), n}), "VALUE k 0 0 0\r\n\r\nEND\r\n");

  n = sluice::mc::build_udp_response(out, 0xbeef, "k", empty, false);
  EXPECT_EQ(as_string({out.data(), n}),
            std::string("\xbe\xef\0\0\0\1\0\0", 8) + "VALUE k 0 0\r\n\r\nEND\r\n");
}

TEST(McResponse, TooSmallOrBadKeyGivesZero) {
  const sluice::mc::Value v{0, 0, {}};
  std::array<uint8_t, 2048> out{};
  const size_t exact = sluice::mc::build_value_response(out, "k", v, false);
  ASSERT_GT(exact, 0u);
  EXPECT_EQ(sluice::mc::build_value_response({out.data(), exact - 1}, "k", v, false), 0u);
  EXPECT_EQ(sluice::mc::build_value_response({out.data(), exact}, "k", v, false), exact);
  EXPECT_EQ(sluice::mc::build_value_response(out, "", v, false), 0u);
  EXPECT_EQ(sluice::mc::build_value_response(out, k251, v, false), 0u);
  EXPECT_EQ(sluice::mc::build_udp_response({out.data(), 7}, 1, "k", v, false), 0u);
}

uint16_t folded_sum(std::span<const uint8_t> b) {
  return sluice_csum_fold(sluice_csum_add_bytes(0, b.data(), static_cast<sl_u32>(b.size()),
                                                static_cast<sl_u32>(b.size())));
}

TEST(McEntry, AnswersExactlyAsTheBuilderAndCarriesItsSums) {
  // Odd and even head lengths, so the body starts at both alignments.
  for (const std::string& key : {std::string("k"), std::string("ke"), k250}) {
    for (size_t len : {size_t{0}, size_t{1}, size_t{2}, size_t{777}, size_t{1024}}) {
      SCOPED_TRACE(std::to_string(key.size()) + "-byte key, " + std::to_string(len));
      std::string data(len, '\0');
      for (size_t i = 0; i < len; ++i) data[i] = static_cast<char>(i * 37 + 11);
      const sluice::mc::Value v{12345, 987654321, bytes(data)};
      sluice_cache_entry e{};
      ASSERT_EQ(sluice::mc::fill_entry(e, 3, key, v, 7, 9, 1000), 0);
      EXPECT_EQ(e.vip_id, 3u);
      EXPECT_EQ(e.version, 7u);
      EXPECT_EQ(e.epoch, 9u);
      EXPECT_EQ(e.expires_ns, 1000u * 1000000u);
      EXPECT_EQ(e.key_hash, sluice::mc::key_hash(key));
      for (bool cas : {false, true}) {
        std::array<uint8_t, 2048> want{}, got{};
        const size_t nw = sluice::mc::build_value_response(want, key, v, cas);
        const size_t ng = sluice::mc::entry_response(got, e, cas);
        ASSERT_EQ(ng, nw);
        EXPECT_EQ(as_string({got.data(), ng}), as_string({want.data(), nw}));
        EXPECT_EQ(cas ? e.sum_gets : e.sum_get, folded_sum({want.data(), nw}));
      }
    }
  }
}

TEST(McEntry, RefusesBadKeysAndBigValues) {
  sluice_cache_entry e{};
  const std::string big(SLUICE_CACHE_VALUE_MAX + 1, 'x');
  EXPECT_EQ(sluice::mc::fill_entry(e, 0, "k", {0, 0, bytes(big)}, 0, 0, 0), -E2BIG);
  EXPECT_EQ(sluice::mc::fill_entry(e, 0, "", {}, 0, 0, 0), -EINVAL);
  EXPECT_EQ(sluice::mc::fill_entry(e, 0, "a b", {}, 0, 0, 0), -EINVAL);
  EXPECT_EQ(sluice::mc::fill_entry(e, 0, k251, {}, 0, 0, 0), -EINVAL);
}

TEST(McKeyHash, FnvReferenceValues) {
  // FNV-1a 32 test vectors (draft-eastlake-fnv, section 8 / the FNV page).
  EXPECT_EQ(sluice::mc::key_hash(""), 0x811c9dc5u);
  EXPECT_EQ(sluice::mc::key_hash("a"), 0xe40c292cu);
  EXPECT_EQ(sluice::mc::key_hash("foobar"), 0xbf9cf968u);
}

TEST(McValueResponse, Table) {
  using S = sluice::mc::ParsedValue::Status;
  struct Case {
    const char* name;
    std::string in;
    S status;
    std::string data;
    uint32_t flags;
    uint64_t cas;
  };
  const std::vector<Case> cases = {
      {"hit", "VALUE k 5 3\r\nabc\r\nEND\r\n", S::kHit, "abc", 5, 0},
      {"hit with cas", "VALUE k 0 2 99\r\nxy\r\nEND\r\n", S::kHit, "xy", 0, 99},
      {"data holding END", "VALUE k 0 7\r\n\r\nEND\r\n\r\nEND\r\n", S::kHit, "\r\nEND\r\n", 0, 0},
      {"miss", "END\r\n", S::kMiss, "", 0, 0},
      {"cut in data", "VALUE k 0 10\r\nabc", S::kIncomplete, "", 0, 0},
      {"cut in line", "VALU", S::kIncomplete, "", 0, 0},
      {"cut in END", "EN", S::kIncomplete, "", 0, 0},
      {"other key", "VALUE j 0 1\r\nx\r\nEND\r\n", S::kBad, "", 0, 0},
      {"error", "SERVER_ERROR out of memory\r\n", S::kBad, "", 0, 0},
      {"bad trailer", "VALUE k 0 1\r\nxy\r\nEND\r\n", S::kBad, "", 0, 0},
      {"two values", "VALUE k 0 1\r\nx\r\nVALUE k 0 1\r\nx\r\nEND\r\n", S::kBad, "", 0, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto r = sluice::mc::parse_value_response(bytes(c.in), "k");
    EXPECT_EQ(r.status, c.status);
    if (c.status != S::kHit) continue;
    EXPECT_EQ(as_string(r.value.data), c.data);
    EXPECT_EQ(r.value.flags, c.flags);
    EXPECT_EQ(r.value.cas, c.cas);
    EXPECT_EQ(r.length, c.in.size());
  }
}

// Key-affinity routing: which UDP requests are placed by their key.
TEST(McRouting, RoutingKeyTable) {
  const std::string frame(SLUICE_MC_UDP_HDR_LEN, '\0');
  struct Case {
    const char* name;
    std::string body;
    std::optional<std::string> key;  // nullopt: placed by the flow hash
  };
  const std::vector<Case> cases = {
      {"get", "get user:1\r\n", "user:1"},
      {"gets", "gets user:1\r\n", "user:1"},
      {"get bare LF", "get user:1\n", "user:1"},
      {"set", "set user:1 0 0 5\r\nhello\r\n", "user:1"},
      {"add", "add k 1 2 1\r\nx\r\n", "k"},
      {"cas", "cas k 0 0 1 99\r\nx\r\n", "k"},
      {"append", "append k 0 0 1\r\nx\r\n", "k"},
      {"delete", "delete k\r\n", "k"},
      {"incr", "incr k 5\r\n", "k"},
      {"decr", "decr k 5\r\n", "k"},
      {"touch", "touch k 10\r\n", "k"},
      {"250-byte key", "get " + k250 + "\r\n", k250},
      {"multi-key get: no one owner", "get a b\r\n", std::nullopt},
      {"version", "version\r\n", std::nullopt},
      {"stats", "stats\r\n", std::nullopt},
      {"flush_all: every key", "flush_all\r\n", std::nullopt},
      {"pipeline", "get a\r\nget b\r\n", std::nullopt},
      {"set with a short data block", "set k 0 0 5\r\nhi\r\n", std::nullopt},
      {"get without line end", "get k", std::nullopt},
      {"251-byte key", "get " + k251 + "\r\n", std::nullopt},
      {"binary protocol", std::string("\x80\x00\x00\x01k", 5), std::nullopt},
      {"empty", "", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string payload = frame + c.body;
    const auto k = sluice::mc::routing_key(bytes(payload));
    ASSERT_EQ(k.has_value(), c.key.has_value());
    if (k) {
      EXPECT_EQ(*k, *c.key);
    }
  }
  // Shorter than the frame header: no request at all.
  EXPECT_FALSE(sluice::mc::routing_key(bytes(std::string("get"))).has_value());
}

TEST(McRouting, RouteHashIsTheAbiDefinition) {
  for (const char* k : {"a", "user:42", "foobar"})
    for (uint32_t seed : {0u, 0x5eed1234u})
      EXPECT_EQ(sluice::mc::route_hash(k, seed), sluice_fmix32(sluice::mc::key_hash(k) ^ seed));
}

// 10,000 keys over a 5-backend Maglev table: each backend owns its fifth
// (within 6%), and another seed moves keys (a different placement).
TEST(McRouting, KeysSpreadOverTheMaglevTable) {
  std::vector<sluice::MaglevBackend> backends;
  for (int i = 1; i <= 5; ++i)
    backends.push_back({sluice::IpAddress::parse("10.1.0." + std::to_string(i)).value(), 1});
  sluice::MaglevBuilder builder;
  auto table = builder.build(backends, 1031);
  ASSERT_TRUE(table.ok());
  const auto owner = [&](const std::string& key, uint32_t seed) {
    return table.value()[sluice::mc::route_hash(key, seed) % 1031];
  };
  std::vector<int> per(5, 0);
  int moved = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "key:" + std::to_string(i);
    ++per[owner(key, 1)];
    moved += owner(key, 1) != owner(key, 2);
  }
  for (int n : per) {
    EXPECT_GT(n, 2000 * 94 / 100);
    EXPECT_LT(n, 2000 * 106 / 100);
  }
  EXPECT_GT(moved, 10000 * 7 / 10);  // 4/5 expected for independent placements
}

}  // namespace
