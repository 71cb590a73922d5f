// SPDX-License-Identifier: BSD-2-Clause
// AttachedProg: a BPF program found attached to an interface (by its
// kernel id), held open so it can be compared, replaced or its maps read.
// Shared by the load balancer's loader and the decapsulator's.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/core/result.hpp"
#include "xdp/unique_fd.hpp"

namespace sluice::xdp {

/// A program as bpf_xdp_query names it: its id, its name (BPF_OBJ_NAME_LEN,
/// at most 15 characters) and a descriptor that keeps it alive.
struct AttachedProg {
  uint32_t id = 0;
  std::string name;
  UniqueFd fd;
};

/// Opens program `id` and reads its name.
/// Errors: the errno of bpf_prog_get_fd_by_id (e.g. -ENOENT: gone since it
/// was listed) or of reading its info.
[[nodiscard]] Result<AttachedProg> open_attached_prog(uint32_t id);

}  // namespace sluice::xdp
