// SPDX-License-Identifier: BSD-2-Clause
// Test namespaces, veths and pin folders.
#include "tests/bpf/test_netns.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

extern char** environ;

namespace sluice::test {
namespace {

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::string p(path);
    for (size_t at = 0; at <= p.size();) {
      const size_t end = p.find(':', at);
      dirs.push_back(p.substr(at, end == std::string::npos ? std::string::npos : end - at));
      if (end == std::string::npos) break;
      at = end + 1;
    }
  }
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.emplace_back(d);
  for (const std::string& d : dirs) {
    const std::string full = d + "/" + name;
    if (access(full.c_str(), X_OK) == 0) return full;
  }
  return name;
}

// `ip` with arguments; false with the command and its output in *why.
bool ip(const std::vector<std::string>& args, std::string* why) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  const int rc = run_command(argv, &out);
  if (rc == 0) return true;
  if (why != nullptr) {
    std::string cmd;
    for (const auto& a : argv) {
      if (!cmd.empty()) cmd.push_back(' ');
      cmd.append(a);
    }
    // Built aside and swapped in: assigning a literal to *why trips GCC 12's
    // false -Wrestrict report (GCC PR 105329).
    std::string msg = "'" + cmd + "' exited " + std::to_string(rc) + ": " + out;
    why->swap(msg);
  }
  return false;
}

void remove_tree(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = path + "/" + name;
      struct stat st {};
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        remove_tree(child);
      else
        unlink(child.c_str());
    }
    closedir(d);
  }
  rmdir(path.c_str());
}

}  // namespace

int run_command(const std::vector<std::string>& argv, std::string* output) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -errno;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  const std::string prog = find_program(argv.at(0));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, prog.c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  if (output != nullptr) *output = out;
  if (err != 0) return -err;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -errno;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string random_name(const std::string& prefix) {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%012llx",
                static_cast<unsigned long long>(dist(rd) & 0xffffffffffffULL));
  return prefix + hex;
}

std::optional<TestNetns> TestNetns::create(std::string* why) {
  const std::string lb = random_name("sluice-t-");
  const std::string peer = lb + "-p";
  if (!ip({"netns", "add", lb}, why)) return std::nullopt;
  TestNetns ns(lb, peer);  // from here on, destruction removes what exists
  if (!ip({"netns", "add", peer}, why)) return std::nullopt;
  for (const std::string& n : {lb, peer}) {
    std::string out;
    const int rc =
        run_command({"ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                     "net.ipv6.conf.default.accept_dad=0"},
                    &out);
    if (rc != 0) {
      *why = "sysctl in " + n + " exited " + std::to_string(rc) + ": " + out;
      return std::nullopt;
    }
  }
  // Created inside the namespace, so no veth ever exists in the root one.
  const std::vector<std::vector<std::string>> steps = {
      {"-n", lb, "link", "add", "lb0", "type", "veth", "peer", "name", "peer0", "netns", peer},
      {"-n", lb, "link", "add", "lb1", "type", "veth", "peer", "name", "peer1", "netns", peer},
      {"-n", lb, "addr", "add", "10.200.0.1/24", "dev", "lb0"},
      {"-n", lb, "addr", "add", "fd00:200::1/64", "dev", "lb0", "nodad"},
      {"-n", lb, "addr", "add", "10.201.0.1/24", "dev", "lb1"},
      {"-n", peer, "addr", "add", "10.200.0.2/24", "dev", "peer0"},
      {"-n", peer, "addr", "add", "fd00:200::2/64", "dev", "peer0", "nodad"},
      {"-n", peer, "addr", "add", "10.201.0.2/24", "dev", "peer1"},
      {"-n", lb, "link", "set", "lo", "up"},
      {"-n", lb, "link", "set", "lb0", "up"},
      {"-n", lb, "link", "set", "lb1", "up"},
      {"-n", peer, "link", "set", "lo", "up"},
      {"-n", peer, "link", "set", "peer0", "up"},
      {"-n", peer, "link", "set", "peer1", "up"},
      {"-n", lb, "route", "add", "10.250.0.0/16", "via", "10.200.0.2"},
      {"-n", lb, "-6", "route", "add", "fd00:250::/64", "via", "fd00:200::2"},
  };
  for (const auto& s : steps)
    if (!ip(s, why)) return std::nullopt;
  return std::optional<TestNetns>(std::move(ns));
}

TestNetns::TestNetns(TestNetns&& o) noexcept
    : lb_(std::exchange(o.lb_, {})), peer_(std::exchange(o.peer_, {})) {}

TestNetns::~TestNetns() {
  // Deleting a namespace destroys its veths (and their peers).
  if (!peer_.empty()) ip({"netns", "del", peer_}, nullptr);
  if (!lb_.empty()) ip({"netns", "del", lb_}, nullptr);
}

NetnsEnter::NetnsEnter(const std::string& name) {
  saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved_ < 0) {
    error_ = std::string("opening this thread's netns: ") + std::strerror(errno);
    return;
  }
  const std::string path = "/run/netns/" + name;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error_ = "opening " + path + ": " + std::strerror(errno);
    return;
  }
  if (setns(fd, CLONE_NEWNET) != 0) error_ = "setns " + path + ": " + std::strerror(errno);
  close(fd);
}

NetnsEnter::~NetnsEnter() {
  if (saved_ >= 0) {
    setns(saved_, CLONE_NEWNET);
    close(saved_);
  }
}

TestPinDir::TestPinDir() : path_(random_name("/sys/fs/bpf/sluice-test-")) {}

TestPinDir::~TestPinDir() { remove_tree(path_); }

}  // namespace sluice::test
