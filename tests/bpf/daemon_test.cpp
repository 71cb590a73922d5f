// SPDX-License-Identifier: BSD-2-Clause
// The real `sluice attach` binary on a veth in a namespace of the test's
// own: attached and pinned once started, SIGHUP with a broken config keeps
// it running with the old state, SIGTERM exits 0 leaving the program
// attached and the maps pinned, a restart re-uses them, `sluice detach`
// removes both. Waits are conditions with deadlines; children are killed
// by pid on failure.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/abi/maps.h"
#include "tests/bpf/bpf_test_util.hpp"
#include "tests/bpf/test_netns.hpp"
#include "xdp/bpffs.hpp"

#ifndef SLUICE_BIN
#error "SLUICE_BIN must name the built sluice binary"
#endif

namespace sluice::test {
namespace {

constexpr auto kDeadline = std::chrono::seconds(20);

std::string config_text(const std::string& extra_backend_line = "") {
  return R"(
[xdp]
interfaces = ["lb0"]
encap_source_v4 = "10.200.0.1"
gateway_mac = "02:00:00:00:00:fe"
[[vips]]
name = "web"
address = "10.0.0.1"
port = 80
table_size = 251
[[vips.backends]]
address = "10.250.0.1"
[[vips.backends]]
address = "10.250.0.2"
)" + extra_backend_line;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0;
}

// Polls `cond` every 20 ms until it holds or the deadline passes.
bool wait_for(const std::function<bool()>& cond) {
  const auto end = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// A child process running `sluice ARGS` in network namespace `ns` (setns
// in the child, so it shares the test's mount namespace and bpffs, unlike
// `ip netns exec`, which remounts /sys), output to `log`. Killed (SIGKILL)
// and reaped on destruction unless it was reaped already.
class Sluice {
 public:
  Sluice(const std::string& ns, const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> argv{SLUICE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string ns_path = "/run/netns/" + ns;
    pid_ = fork();
    if (pid_ == 0) {
      const int nsfd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) _exit(120);
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(121);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(122);
    }
  }
  ~Sluice() {
    if (pid_ > 0 && !status_) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
  }
  Sluice(const Sluice&) = delete;
  Sluice& operator=(const Sluice&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Whether it is still running (reaps it when it is not).
  bool running() {
    if (status_) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
    return !status_;
  }
  // Its exit code once it exited within the deadline, else nullopt.
  std::optional<int> exit_code() {
    if (!wait_for([this] { return !running(); })) return std::nullopt;
    return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : 128 + WTERMSIG(*status_);
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_SKIP_WITHOUT_BPF();
    if (auto m = xdp::ensure_bpffs(xdp::kBpffsRoot); !m.ok()) {
      if (bpf_required()) FAIL() << m.error().message;
      GTEST_SKIP() << m.error().message;
    }
    std::string why;
    auto made = TestNetns::create(&why);
    if (made) ns_.emplace(std::move(*made));
    if (!ns_) {
      if (bpf_required()) FAIL() << "cannot make test namespaces: " << why;
      GTEST_SKIP() << "cannot make test namespaces: " << why;
    }
    pins_.emplace();
    char tmpl[] = "/tmp/sluice-daemon-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_ = dir_ + "/sluice.toml";
    pidfile_ = dir_ + "/sluice.pid";
    log_ = dir_ + "/sluice.log";
    pin_root_ = pins_->path() + "/lb0";
    std::ofstream(config_) << config_text();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- sluice log ----\n" << slurp(log_) << "--------------------\n";
    for (const char* f : {"/sluice.toml", "/sluice.pid", "/sluice.pid.tmp", "/sluice.log"})
      unlink((dir_ + f).c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  std::vector<std::string> attach_args() const {
    return {"attach", "lb0", "--config", config_, "--pin-root", pin_root_, "--pidfile", pidfile_};
  }

  // The XDP program id on lb0 (0: none), read inside the namespace.
  uint32_t prog_id() const {
    NetnsEnter in(ns_->lb());
    EXPECT_TRUE(in.error().empty()) << in.error();
    const int ifindex = static_cast<int>(if_nametoindex("lb0"));
    bpf_xdp_query_opts q{};
    q.sz = sizeof q;
    if (ifindex <= 0 || bpf_xdp_query(ifindex, 0, &q) != 0) return 0;
    return q.prog_id;
  }

  // VIP keys and VALID backend slots in the pinned maps.
  struct Pinned {
    int vips = 0;
    int valid_backends = 0;
    std::vector<uint32_t> ids;  // of the VALID slots, by slot
  };
  Pinned pinned() const {
    Pinned p;
    const int vfd = bpf_obj_get((pin_root_ + "/sluice_vips").c_str());
    const int bfd = bpf_obj_get((pin_root_ + "/sluice_backends").c_str());
    if (vfd >= 0) {
      sluice_vip_key k{}, next{};
      for (bool first = true; bpf_map_get_next_key(vfd, first ? nullptr : &k, &next) == 0;
           first = false) {
        k = next;
        ++p.vips;
      }
    }
    if (bfd >= 0) {
      for (uint32_t i = 0; i < SLUICE_MAX_BACKENDS; ++i) {
        sluice_backend b{};
        if (bpf_map_lookup_elem(bfd, &i, &b) == 0 && (b.flags & SLUICE_BACKEND_VALID) != 0) {
          ++p.valid_backends;
          p.ids.push_back(b.id);
        }
      }
    }
    if (vfd >= 0) close(vfd);
    if (bfd >= 0) close(bfd);
    return p;
  }

  bool log_has(const std::string& text) const {
    return wait_for([&] { return slurp(log_).find(text) != std::string::npos; });
  }

  std::optional<TestNetns> ns_;
  std::optional<TestPinDir> pins_;
  std::string dir_, config_, pidfile_, log_, pin_root_;
};

TEST_F(DaemonTest, AttachReloadStopRestartDetach) {
  {
    Sluice d(ns_->lb(), attach_args(), log_);
    ASSERT_TRUE(wait_for([&] { return exists(pidfile_) || !d.running(); }));
    ASSERT_TRUE(d.running()) << "sluice attach exited during start-up";
    EXPECT_EQ(slurp(pidfile_), std::to_string(d.pid()) + "\n");
    const uint32_t id = prog_id();
    ASSERT_NE(id, 0u) << "no XDP program on lb0";
    Pinned p = pinned();
    EXPECT_EQ(p.vips, 1);
    EXPECT_EQ(p.valid_backends, 2);

    // A broken file: the reload is refused, the daemon and its state stay.
    std::ofstream(config_) << config_text("[[vips.backends]]\naddress = \"10.250.0.3\"\nweight = -1\n");
    ASSERT_EQ(kill(d.pid(), SIGHUP), 0);
    ASSERT_TRUE(log_has("nothing changed")) << "no reload error logged";
    EXPECT_TRUE(log_has("vips[0].backends[2].weight"));
    EXPECT_TRUE(d.running());
    p = pinned();
    EXPECT_EQ(p.vips, 1);
    EXPECT_EQ(p.valid_backends, 2);

    // A good file with a third backend: applied.
    std::ofstream(config_) << config_text("[[vips.backends]]\naddress = \"10.250.0.3\"\n");
    ASSERT_EQ(kill(d.pid(), SIGHUP), 0);
    ASSERT_TRUE(wait_for([&] { return pinned().valid_backends == 3; }));
    EXPECT_TRUE(d.running());

    ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
    EXPECT_EQ(d.exit_code(), 0);
    EXPECT_FALSE(exists(pidfile_)) << "the pid file is removed on a clean exit";
    EXPECT_EQ(prog_id(), id) << "SIGTERM leaves the program attached";
    EXPECT_EQ(pinned().valid_backends, 3) << "and the maps pinned";
    EXPECT_EQ(pinned().ids.size(), 3u);
  }
  {
    // A restart re-uses the pinned maps (flows survive) and takes over
    // the backend ids, so flow entries keep naming the same backends.
    const std::vector<uint32_t> ids = pinned().ids;
    Sluice d(ns_->lb(), attach_args(), log_);
    ASSERT_TRUE(wait_for([&] { return exists(pidfile_) || !d.running(); }));
    ASSERT_TRUE(d.running());
    EXPECT_TRUE(log_has("re-used (flows kept)"));
    EXPECT_EQ(pinned().ids, ids);
    ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
    EXPECT_EQ(d.exit_code(), 0);
  }
  {
    Sluice detach(ns_->lb(), {"detach", "lb0", "--pin-root", pin_root_}, log_);
    EXPECT_EQ(detach.exit_code(), 0);
  }
  EXPECT_EQ(prog_id(), 0u);
  EXPECT_FALSE(exists(pin_root_));
}

TEST_F(DaemonTest, ABrokenConfigNeverAttaches) {
  std::ofstream(config_) << "[xdp]\ninterfaces = [\"lb0\"]\nmtu = 1\n";
  Sluice d(ns_->lb(), attach_args(), log_);
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_TRUE(log_has("xdp.mtu"));
  EXPECT_EQ(prog_id(), 0u);
}

}  // namespace
}  // namespace sluice::test
