// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target for the memcached request parser: any bytes parse
// without reading outside them (ASan), every key and length lies inside
// the input, a request's length advances past it, a datagram's routing
// key is a valid key inside it, and a cacheable get builds a response that
// reads back to its key.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/core/memcached.hpp"

namespace {

bool inside(std::string_view key, const uint8_t* data, size_t size) {
  const auto* p = reinterpret_cast<const uint8_t*>(key.data());
  return key.empty() || (p >= data && p + key.size() <= data + size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  const sluice::mc::Request r = sluice::mc::parse_request(in);
  if (r.length > size || !inside(r.key, data, size)) __builtin_trap();
  if ((r.kind == sluice::mc::Kind::kUnsure) != (r.length == 0)) __builtin_trap();
  if ((r.kind == sluice::mc::Kind::kGet || r.kind == sluice::mc::Kind::kWrite) &&
      !sluice::mc::valid_key(r.key))
    __builtin_trap();

  std::array<std::string_view, 8> keys;
  const sluice::mc::Writes w = sluice::mc::scan_writes(in, keys);
  if (w.keys > keys.size()) __builtin_trap();
  for (uint32_t i = 0; i < w.keys; ++i)
    if (!inside(keys[i], data, size) || !sluice::mc::valid_key(keys[i])) __builtin_trap();

  // The routing key of a datagram is a valid key inside it, and a
  // cacheable get is always routed by its key.
  const auto route = sluice::mc::routing_key(in);
  if (route && (!inside(*route, data, size) || !sluice::mc::valid_key(*route))) __builtin_trap();

  if (const auto get = sluice::mc::cacheable_udp_get(in)) {
    if (!route || *route != get->key) __builtin_trap();
    std::array<uint8_t, 1500> out{};
    const sluice::mc::Value v{1, 2, in.subspan(0, size < 64 ? size : 64)};
    const size_t n = sluice::mc::build_udp_response(out, 7, get->key, v, get->gets);
    const std::string_view text(reinterpret_cast<const char*>(out.data()), n);
    if (n == 0 || text.substr(8 + 6, get->key.size()) != get->key) __builtin_trap();
    sluice_cache_entry e{};
    if (sluice::mc::fill_entry(e, 0, get->key, v, 0, 0, 0) != 0) __builtin_trap();
    std::array<uint8_t, 1500> again{};
    const size_t m = sluice::mc::entry_response(again, e, get->gets);
    if (m + 8 != n || std::string_view(reinterpret_cast<const char*>(again.data()), m) !=
                          text.substr(8))
      __builtin_trap();
  }
  return 0;
}
