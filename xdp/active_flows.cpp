// SPDX-License-Identifier: BSD-2-Clause
// Loader::active_flows: established flows per backend, counted from the
// established-flow map (one value per key, shared by every CPU).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xdp/loader.hpp"

namespace sluice::xdp {
namespace {

// Keys per BPF_MAP_LOOKUP_BATCH: large enough that the syscall is a small
// part of the walk, small enough that buffers stay near 1 MiB at 256 CPUs.
constexpr uint32_t kBatchKeys = 256;
// The kernel's ENOTSUPP (no batch operations for this map type), which is
// not in userspace errno.h.
constexpr int kEnotsupp = 524;
// Values of a (non-per-CPU) hash map are packed at their own size.
constexpr size_t kValueStride = sizeof(sluice_flow_value);

// The packet path's clock (bpf_ktime_get_coarse_ns / 1e6, truncated).
uint32_t coarse_now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const uint64_t ms =
      static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  return static_cast<uint32_t>(ms);
}

// Counts one key's value when it is a live established flow.
class Counter {
 public:
  Counter(uint32_t now_ms, uint32_t tcp_idle_ms, uint32_t udp_idle_ms, ActiveFlows* out)
      : now_(now_ms), tcp_idle_(tcp_idle_ms), udp_idle_(udp_idle_ms), out_(out) {}

  void add(const sluice_flow_key& key, const uint8_t* value) {
    const uint32_t idle = key.proto == SLUICE_IPPROTO_TCP ? tcp_idle_ : udp_idle_;
    ++out_->keys_read;
    sluice_flow_value v{};
    std::memcpy(&v, value, sizeof v);
    if (v.state != SLUICE_FLOW_ESTABLISHED) return;
    // As lb_flow_expired: signed, so a stamp a tick ahead reads as fresh.
    if (static_cast<int32_t>(now_ - v.last_seen) > static_cast<int32_t>(idle)) return;
    ++out_->by_backend[v.backend_id];
  }

 private:
  uint32_t now_;
  uint32_t tcp_idle_;
  uint32_t udp_idle_;
  ActiveFlows* out_;
};

}  // namespace

Result<ActiveFlows> Loader::active_flows(uint32_t max_keys) const {
  bpf_map* map = skel_->maps.sluice_flows;
  const int fd = map_fd(map);
  const uint64_t limit = max_keys != 0 ? max_keys : bpf_map__max_entries(map);

  ActiveFlows out;
  Counter counter(coarse_now_ms(), skel_->rodata->sluice_tcp_idle_ms,
                  skel_->rodata->sluice_udp_idle_ms, &out);
  std::vector<sluice_flow_key> keys(kBatchKeys);
  std::vector<uint8_t> values(kBatchKeys * kValueStride);

  // Batched: the hash map's batch token is a bucket index (u32).
  uint32_t token = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    if (out.keys_read >= limit) {
      out.complete = false;
      return out;
    }
    uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(kBatchKeys, limit - out.keys_read));
    const int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(),
                                         values.data(), &count, &opts);
    const int e = err != 0 ? errno : 0;
    if (e != 0 && e != ENOENT) {
      if (first && (e == EINVAL || e == EOPNOTSUPP || e == kEnotsupp || e == ENOSPC)) break;
      return sys_error(e, "reading sluice_flows (batch)");
    }
    for (uint32_t i = 0; i < count; ++i)
      counter.add(keys[i], values.data() + size_t{i} * kValueStride);
    first = false;
    if (e == ENOENT) return out;
  }

  // Key by key.
  sluice_flow_key key{};
  sluice_flow_key next{};
  for (bool start = true; bpf_map_get_next_key(fd, start ? nullptr : &key, &next) == 0;
       start = false) {
    if (out.keys_read >= limit) {
      out.complete = false;
      return out;
    }
    key = next;
    if (bpf_map_lookup_elem(fd, &key, values.data()) != 0) {
      if (errno == ENOENT) continue;  // deleted (evicted) since get_next_key
      return sys_error(errno, "reading sluice_flows");
    }
    counter.add(key, values.data());
  }
  if (errno != ENOENT) return sys_error(errno, "walking sluice_flows");
  return out;
}

}  // namespace sluice::xdp
