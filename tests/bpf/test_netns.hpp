// SPDX-License-Identifier: BSD-2-Clause
// What loader tests need around them: a pair of network namespaces with
// random names joined by veth pairs (the machine's own interfaces are never
// touched), entering a namespace from the test thread, and a pin folder of
// the test's own in bpffs; all removed on destruction, pass or fail.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

/// Runs argv[0] (searched in PATH and the sbin folders) with its
/// arguments, waits for it, and returns its exit status (or -errno when it
/// could not run); its output goes to *output.
int run_command(const std::vector<std::string>& argv, std::string* output);

/// "<prefix><12 random hex digits>".
std::string random_name(const std::string& prefix);

/// Two namespaces, "sluice-t-<random>" (the load balancer's side, `lb`)
/// and "<that>-p" (the peer), joined by two veth pairs:
///   lb0 10.200.0.1/24 fd00:200::1/64  <->  peer0 10.200.0.2/24 fd00:200::2/64
///   lb1 10.201.0.1/24                 <->  peer1 10.201.0.2/24
/// and in `lb` routes 10.250.0.0/16 via 10.200.0.2, fd00:250::/64 via
/// fd00:200::2. IPv6 duplicate address detection is off on both sides.
class TestNetns {
 public:
  /// Creates it all; on failure removes what was made and says why.
  static std::optional<TestNetns> create(std::string* why);

  TestNetns(TestNetns&& o) noexcept;
  TestNetns& operator=(TestNetns&&) = delete;
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  ~TestNetns();

  [[nodiscard]] const std::string& lb() const { return lb_; }
  [[nodiscard]] const std::string& peer() const { return peer_; }

 private:
  TestNetns(std::string lb, std::string peer) : lb_(std::move(lb)), peer_(std::move(peer)) {}
  std::string lb_;
  std::string peer_;
};

/// Moves the calling thread into the named namespace (/run/netns/<name>)
/// for its lifetime; the thread's previous namespace comes back after.
class NetnsEnter {
 public:
  explicit NetnsEnter(const std::string& name);
  NetnsEnter(const NetnsEnter&) = delete;
  NetnsEnter& operator=(const NetnsEnter&) = delete;
  ~NetnsEnter();
  /// Empty if entered, else why not.
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  int saved_ = -1;
  std::string error_;
};

/// A folder of the test's own on bpffs, /sys/fs/bpf/sluice-test-<random>,
/// removed with everything in it on destruction. Pin roots go under it.
class TestPinDir {
 public:
  TestPinDir();
  TestPinDir(const TestPinDir&) = delete;
  TestPinDir& operator=(const TestPinDir&) = delete;
  ~TestPinDir();
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sluice::test
