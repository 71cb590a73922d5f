// SPDX-License-Identifier: BSD-2-Clause
// InstanceLock: one process at a time drives a fast path. The daemon holds
// an exclusive lock per interface and one per pin folder for its whole
// life, so a second `sluice attach` cannot replace its program and maps,
// and `sluice detach` cannot pull them from under it.
#pragma once

#include <string>

#include "dataplane/core/result.hpp"

namespace sluice::control {

/// The folder the lock files live in.
inline constexpr const char* kLockDir = "/run/sluice/locks";

/// An flock(2) held on "<kLockDir>/<pin_root with '/' as '_'>.lock", which
/// records the holder's pid. The kernel drops the lock when the process
/// ends, however it ends, so a lock is never stale; a clean end also
/// removes the file. Move-only.
class InstanceLock {
 public:
  /// Takes the lock for the fast path whose maps are pinned at `pin_root`.
  /// Errors: -EBUSY when another process holds it (the message names its
  /// pid and what to do), or the errno of creating the folder or file.
  [[nodiscard]] static Result<InstanceLock> acquire(const std::string& pin_root);

  /// Takes the lock for interface `ifindex` (named `ifname`, for messages)
  /// of the caller's network namespace: held beside the pin folder's lock,
  /// so another --pin-root cannot replace or detach a running daemon's
  /// program. File "netns-<netns inode>-if-<ifindex>.lock". Errors: as
  /// acquire(), and the errno of reading /proc/self/ns/net.
  [[nodiscard]] static Result<InstanceLock> acquire_interface(unsigned ifindex,
                                                              const std::string& ifname);

  InstanceLock(InstanceLock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  InstanceLock& operator=(InstanceLock&& o) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  static Result<InstanceLock> acquire_file(const std::string& file, const std::string& what);
  int fd_ = -1;
  std::string path_;
};

}  // namespace sluice::control
