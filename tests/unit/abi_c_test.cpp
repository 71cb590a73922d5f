// SPDX-License-Identifier: BSD-2-Clause
// The abi headers give the same layouts and the same hashes whether a C or a
// C++ compiler reads them (abi_c_check.c is the C side).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "tests/unit/abi_c_check.h"

namespace {

struct Layout {
  size_t size;
  size_t align;
};

template <class T>
Layout layout_of() {
  return {sizeof(T), alignof(T)};
}

TEST(AbiC, LayoutsMatchCxx) {
  const std::map<std::string, Layout> cxx = {
      {"sluice_flow_key", layout_of<sluice_flow_key>()},
      {"sluice_vip_key", layout_of<sluice_vip_key>()},
      {"sluice_vip_meta", layout_of<sluice_vip_meta>()},
      {"sluice_vip_slot", layout_of<sluice_vip_slot>()},
      {"sluice_backend", layout_of<sluice_backend>()},
      {"sluice_flow_value", layout_of<sluice_flow_value>()},
      {"sluice_probation_slot", layout_of<sluice_probation_slot>()},
      {"sluice_encap_config", layout_of<sluice_encap_config>()},
      {"sluice_global_stats", layout_of<sluice_global_stats>()},
      {"sluice_vip_stats", layout_of<sluice_vip_stats>()},
      {"sluice_backend_stats", layout_of<sluice_backend_stats>()},
  };
  ASSERT_EQ(abi_c_layout_count, cxx.size());
  for (size_t i = 0; i < abi_c_layout_count; ++i) {
    const abi_c_layout& c = abi_c_layouts[i];
    const auto it = cxx.find(c.name);
    ASSERT_NE(it, cxx.end()) << c.name;
    EXPECT_EQ(c.size, it->second.size) << c.name;
    EXPECT_EQ(c.align, it->second.align) << c.name;
  }
}

TEST(AbiC, HashesMatchCxx) {
  uint64_t x = 0x5A1CE;
  auto next = [&x] {
    x = x * 6364136223846793005u + 1442695040888963407u;  // Knuth's MMIX LCG
    return static_cast<uint32_t>(x >> 32);
  };
  for (uint8_t family : {uint8_t{SLUICE_FAMILY_IPV4}, uint8_t{SLUICE_FAMILY_IPV6}}) {
    for (int i = 0; i < 5000; ++i) {
      sluice_flow_key k{};
      for (size_t b = 0; b < (family == SLUICE_FAMILY_IPV6 ? 16u : 4u); ++b) {
        k.src.bytes[b] = static_cast<uint8_t>(next());
        k.dst.bytes[b] = static_cast<uint8_t>(next());
      }
      k.sport = static_cast<uint16_t>(next());
      k.dport = static_cast<uint16_t>(next());
      k.proto = i % 2 ? SLUICE_IPPROTO_TCP : SLUICE_IPPROTO_UDP;
      k.family = family;
      const uint32_t seed = next();
      ASSERT_EQ(abi_c_flow_hash(&k, seed), sluice_flow_hash(&k, seed));
      ASSERT_EQ(abi_c_flow_hash_src(&k, seed), sluice_flow_hash_src(&k, seed));
      ASSERT_EQ(abi_c_addr_hash(&k.dst, family, seed), sluice_addr_hash(&k.dst, family, seed));
    }
  }
}

}  // namespace
