// SPDX-License-Identifier: BSD-2-Clause
// Loader::forget_flows_to: drops the flow-map entries of one VIP address.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "xdp/loader.hpp"

namespace sluice::xdp {

Result<uint64_t> Loader::forget_flows_to(const IpAddress& vip) const {
  const int fd = map_fd(skel_->maps.sluice_flows);
  const uint64_t limit = bpf_map__max_entries(skel_->maps.sluice_flows);
  // Collected first: deleting under a get_next_key walk restarts it.
  std::vector<sluice_flow_key> doomed;
  sluice_flow_key key{};
  sluice_flow_key next{};
  uint64_t seen = 0;
  for (bool start = true; seen < limit && bpf_map_get_next_key(fd, start ? nullptr : &key, &next) == 0;
       start = false, ++seen) {
    key = next;
    if (key.family == vip.family && std::memcmp(&key.dst, &vip.ip, vip.size()) == 0)
      doomed.push_back(key);
  }
  if (seen < limit && errno != ENOENT) return sys_error(errno, "walking sluice_flows");
  uint64_t deleted = 0;
  for (const sluice_flow_key& k : doomed) {
    if (bpf_map_delete_elem(fd, &k) == 0)
      ++deleted;
    else if (errno != ENOENT)  // evicted since: gone either way
      return sys_error(errno, "deleting from sluice_flows");
  }
  return deleted;
}

}  // namespace sluice::xdp
