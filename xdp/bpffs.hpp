// SPDX-License-Identifier: BSD-2-Clause
// The BPF filesystem that pinned maps live on: detecting it, mounting it
// where it is missing (as Cilium does at /sys/fs/bpf), making pin folders.
#pragma once

#include <string>

#include "xdp/status.hpp"

namespace sluice::xdp {

/// Where the kernel's BPF filesystem is conventionally mounted.
inline constexpr const char* kBpffsRoot = "/sys/fs/bpf";

/// Whether `path` lies on a mounted BPF filesystem (statfs magic
/// BPF_FS_MAGIC). Errors: the statfs errno (-ENOENT if `path` is absent).
[[nodiscard]] Result<bool> is_bpffs(const std::string& path);

/// Makes sure `root` is a BPF filesystem: if it is not, mounts one there
/// (`mount("bpf", root, "bpf", 0, "mode=0700")`). Returns whether it
/// mounted one. Needs CAP_SYS_ADMIN in the mount namespace; errors: the
/// statfs or mount errno with what was being done.
[[nodiscard]] Result<bool> ensure_bpffs(const std::string& root);

/// Creates `dir` and its missing parents with mode 0700 (an existing
/// directory is fine). Errors: the mkdir errno naming the path.
[[nodiscard]] Status make_dirs(const std::string& dir);

}  // namespace sluice::xdp
