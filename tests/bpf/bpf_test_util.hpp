// SPDX-License-Identifier: BSD-2-Clause
// What every BPF test needs: whether bpf() works here, one
// BPF_PROG_TEST_RUN of a packet, per-CPU map reads, CPU pinning.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/common/packet_builder.hpp"

namespace sluice::test {

/// Why BPF programs cannot be loaded here (no CAP_BPF, bpf() disabled), or
/// an empty string if they can.
std::string bpf_unavailable_reason();

/// True when the environment demands the BPF tests run
/// (SLUICE_REQUIRE_BPF=1, set in CI): a missing privilege is then a failure.
bool bpf_required();

/// Skips the current test (or fails it, when bpf_required()) if BPF is
/// unavailable. Use at the top of SetUp or a test body.
#define SLUICE_SKIP_WITHOUT_BPF()                                             \
  do {                                                                        \
    const std::string why_ = ::sluice::test::bpf_unavailable_reason();        \
    if (!why_.empty()) {                                                      \
      if (::sluice::test::bpf_required()) FAIL() << "BPF required: " << why_; \
      GTEST_SKIP() << "BPF unavailable: " << why_;                            \
    }                                                                         \
  } while (0)

/// One run of an XDP program over a frame (BPF_PROG_TEST_RUN, repeat 1).
struct XdpRun {
  int err = 0;           ///< 0, or -errno from bpf_prog_test_run_opts
  uint32_t verdict = 0;  ///< XDP_* action
  Bytes out;             ///< the frame as the program left it
};
/// `out_room`: bytes of output buffer beyond the input's size, for what
/// the program adds (outer headers, a reply longer than the request).
XdpRun run_xdp(int prog_fd, const Bytes& in, size_t out_room = 256);

/// Reads key of a per-CPU map whose value is `value_size` bytes of u64
/// counters and returns the per-field sum over all possible CPUs.
std::vector<uint64_t> sum_percpu_u64(int map_fd, const void* key, size_t value_size);

template <class T>
T sum_percpu(int map_fd, uint32_t key) {
  static_assert(sizeof(T) % 8 == 0, "per-CPU counters are u64 fields");
  const auto words = sum_percpu_u64(map_fd, &key, sizeof(T));
  T out{};
  if (words.size() * 8 == sizeof(T)) std::memcpy(&out, words.data(), sizeof(T));
  return out;
}

/// Reads this CPU's value of key in a per-CPU hash map, or false if the key
/// is absent. `cpu` is the CPU the value belongs to.
bool percpu_value(int map_fd, const void* key, void* value, size_t value_size, int cpu);

/// Pins the calling thread to the CPU it runs on for its lifetime, so
/// per-CPU state (flow tables) seen by one BPF_PROG_TEST_RUN is seen by the
/// next one, as RSS keeps a flow on one CPU. Restores the old affinity.
class CpuPin {
 public:
  CpuPin();
  ~CpuPin();
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;
  [[nodiscard]] int cpu() const { return cpu_; }

 private:
  int cpu_ = -1;
  std::vector<uint8_t> saved_;  // the old cpu_set_t
};

/// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  [[nodiscard]] int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

}  // namespace sluice::test
