// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target for the packet parser: any bytes parse without reading
// outside them (ASan), and the result is self-consistent and deterministic.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/core/packet_parser.hpp"
#include "tests/common/parse_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const sluice::ParseResult r = sluice::parse_packet(data, size);
  if (sluice::test::parse_invariant_violation(r, size) != nullptr) __builtin_trap();

  // Same bytes, same answer: nothing depends on uninitialised state.
  const sluice::ParseResult again = sluice::parse_packet(data, size);
  if (std::memcmp(&r, &again, sizeof r) != 0) __builtin_trap();

  // A fragment's facts read inside the bytes (ASan), and a later fragment
  // has no port.
  const sluice::FragmentFacts f = sluice::fragment_facts(data, size, r);
  if (f.valid != (r.is_fragment && r.status == sluice::ParseStatus::kOk)) __builtin_trap();
  if (f.later && f.first_dport != 0) __builtin_trap();
  return 0;
}
