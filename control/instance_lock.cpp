// SPDX-License-Identifier: BSD-2-Clause
// InstanceLock: an flock(2) per fast path, with the holder's pid in the file.
#include "control/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::control {
namespace {

Error errno_error(int err, const std::string& what) {
  return Error{-err, what + ": " + std::strerror(err)};
}

// mkdir -p for the lock folder (mode 0755).
int make_dirs(const std::string& dir) {
  for (size_t at = 1; at != std::string::npos;) {
    at = dir.find('/', at + 1);
    const std::string part = dir.substr(0, at);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

}  // namespace

InstanceLock& InstanceLock::operator=(InstanceLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) {
      unlink(path_.c_str());
      close(fd_);
    }
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

InstanceLock::~InstanceLock() {
  // Unlinked while still locked, so no file is left behind per pin folder.
  if (fd_ >= 0) {
    unlink(path_.c_str());
    close(fd_);
  }
}

Result<InstanceLock> InstanceLock::acquire(const std::string& pin_root) {
  std::string name = pin_root;
  for (char& c : name)
    if (c == '/') c = '_';
  return acquire_file(name + ".lock", "the fast path pinned at " + pin_root);
}

Result<InstanceLock> InstanceLock::acquire_interface(unsigned ifindex, const std::string& ifname) {
  // Interface names and indexes repeat across network namespaces, which
  // share this folder: the namespace's inode tells them apart.
  struct stat ns {};
  if (stat("/proc/self/ns/net", &ns) != 0) return errno_error(errno, "/proc/self/ns/net");
  return acquire_file("netns-" + std::to_string(ns.st_ino) + "-if-" + std::to_string(ifindex) +
                          ".lock",
                      "interface " + ifname);
}

Result<InstanceLock> InstanceLock::acquire_file(const std::string& file, const std::string& what) {
  if (const int err = make_dirs(kLockDir); err != 0) return errno_error(err, kLockDir);
  const std::string path = std::string(kLockDir) + "/" + file;
  // The holder unlinks the file when it ends cleanly; a process that opened
  // it just before then holds a lock on a file nobody else can find, so
  // after locking, check the path still names the locked file, else retry.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno_error(errno, path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {};
      const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
      close(fd);
      if (err != EWOULDBLOCK) return errno_error(err, path);
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Error{-EBUSY, "a sluice daemon (pid " + pid + ") drives " + what + " (lock " + path +
                               "); stop it first (SIGTERM)"};
    }
    struct stat by_fd {
    }, by_path{};
    if (fstat(fd, &by_fd) != 0 || stat(path.c_str(), &by_path) != 0 ||
        by_fd.st_ino != by_path.st_ino || by_fd.st_dev != by_path.st_dev) {
      close(fd);
      continue;
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
      const int err = errno;
      close(fd);
      return errno_error(err, path);
    }
    return InstanceLock(fd, path);
  }
  return Error{-EAGAIN, path + ": the lock file keeps being replaced; try again"};
}

}  // namespace sluice::control
