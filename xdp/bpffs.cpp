// SPDX-License-Identifier: BSD-2-Clause
// BPF filesystem detection and mounting.
#include "xdp/bpffs.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>

namespace sluice::xdp {

Result<bool> is_bpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) != 0) return sys_error(errno, "statfs " + path);
  // f_type's type differs between C libraries; compare as unsigned.
  return static_cast<unsigned long>(st.f_type) == static_cast<unsigned long>(BPF_FS_MAGIC);
}

Result<bool> ensure_bpffs(const std::string& root) {
  auto on = is_bpffs(root);
  if (!on.ok()) return on.error();
  if (on.value()) return false;
  if (mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0)
    return sys_error(errno, "mounting a bpf filesystem on " + root);
  return true;
}

Status make_dirs(const std::string& dir) {
  if (dir.empty()) return Error{-EINVAL, "make_dirs: empty path"};
  // Each prefix ending before a '/', then the whole path.
  for (size_t at = dir.find('/', 1);; at = dir.find('/', at + 1)) {
    const std::string part = at == std::string::npos ? dir : dir.substr(0, at);
    if (!part.empty() && mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return sys_error(errno, "creating directory " + part);
    if (at == std::string::npos) break;
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return sys_error(errno, "stat " + dir);
  if (!S_ISDIR(st.st_mode)) return Error{-ENOTDIR, dir + " exists and is not a directory"};
  return Ok{};
}

}  // namespace sluice::xdp
