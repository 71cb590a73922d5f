// SPDX-License-Identifier: BSD-2-Clause
// BPF test support: availability, test runs, per-CPU reads, CPU pinning.
#include "tests/bpf/bpf_test_util.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace sluice::test {

std::string bpf_unavailable_reason() {
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_probe", 4, 4, 1, nullptr);
  if (fd < 0) {
    const int err = errno;
    return std::string("bpf(BPF_MAP_CREATE) failed: ") + std::strerror(err) +
           " (needs root or CAP_BPF)";
  }
  close(fd);
  return {};
}

bool bpf_required() {
  const char* v = std::getenv("SLUICE_REQUIRE_BPF");
  return v != nullptr && std::string(v) == "1";
}

XdpRun run_xdp(int prog_fd, const Bytes& in, size_t out_room) {
  XdpRun r;
  r.out.assign(in.size() + out_room, 0);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = in.data();
  opts.data_size_in = static_cast<uint32_t>(in.size());
  opts.data_out = r.out.data();
  opts.data_size_out = static_cast<uint32_t>(r.out.size());
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    r.err = -errno;
    return r;
  }
  r.verdict = opts.retval;
  r.out.resize(opts.data_size_out);
  return r;
}

std::vector<uint64_t> sum_percpu_u64(int map_fd, const void* key, size_t value_size) {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return {};
  const size_t stride = (value_size + 7) / 8;
  std::vector<uint64_t> all(stride * static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(map_fd, key, all.data()) != 0) return {};
  std::vector<uint64_t> sum(value_size / 8, 0);
  for (int c = 0; c < ncpus; ++c)
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += all[static_cast<size_t>(c) * stride + i];
  return sum;
}

bool percpu_value(int map_fd, const void* key, void* value, size_t value_size, int cpu) {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0 || cpu < 0 || cpu >= ncpus) return false;
  const size_t stride = (value_size + 7) / 8 * 8;
  std::vector<uint8_t> all(stride * static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(map_fd, key, all.data()) != 0) return false;
  std::memcpy(value, all.data() + stride * static_cast<size_t>(cpu), value_size);
  return true;
}

CpuPin::CpuPin() {
  cpu_set_t old;
  CPU_ZERO(&old);
  if (sched_getaffinity(0, sizeof old, &old) != 0) return;
  saved_.assign(reinterpret_cast<uint8_t*>(&old), reinterpret_cast<uint8_t*>(&old) + sizeof old);
  const int cpu = sched_getcpu();
  if (cpu < 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(static_cast<size_t>(cpu), &one);
  if (sched_setaffinity(0, sizeof one, &one) == 0) cpu_ = cpu;
}

CpuPin::~CpuPin() {
  if (saved_.size() == sizeof(cpu_set_t)) {
    cpu_set_t old;
    std::memcpy(&old, saved_.data(), sizeof old);
    sched_setaffinity(0, sizeof old, &old);
  }
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace sluice::test
