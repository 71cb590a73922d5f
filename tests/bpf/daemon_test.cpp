// SPDX-License-Identifier: BSD-2-Clause
// The real `sluice attach` binary on a veth in a namespace of the test's
// own: attached and pinned once started, SIGHUP with a broken config keeps
// it running with the old state, SIGTERM exits 0 leaving the program
// attached and the maps pinned, a restart re-uses them, `sluice detach`
// removes both; `sluice ctl` over the daemon's socket sees the VIP, its
// backends and counters that move with real packets, and a backend whose
// probe target stops is marked down within fall x interval and loses its
// table share. Waits are conditions with deadlines; children are killed
// by pid on failure.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
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

// `socket`: the control socket's path (always one of the test's own).
std::string config_text(const std::string& socket, const std::string& extra_backend_line = "") {
  return "[control]\nsocket = \"" + socket + "\"\n[metrics]\nlisten = \"\"\n" + R"(
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
  struct stat st {};
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

// A TCP listener on addr:port inside network namespace `ns` that accepts
// and closes every connection (what a tcp health check needs), until
// stop() or destruction.
class Listener {
 public:
  Listener(const std::string& ns, const std::string& addr, uint16_t port) {
    NetnsEnter in(ns);
    if (!in.error().empty()) return;
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd_, 64) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
    thread_ = std::thread([this] {
      while (!stop_) {
        const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0)
          close(c);
        else
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~Listener() { stop(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends one TCP SYN from namespace `ns` to addr:port (a non-blocking
// connect, closed right after: the kernel sends the SYN).
void send_syn(const std::string& ns, const std::string& addr, uint16_t port) {
  NetnsEnter in(ns);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
  (void)connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  close(fd);
}

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
    socket_ = dir_ + "/sluice.sock";
    std::ofstream(config_) << config_text(socket_);
  }
  void TearDown() override {
    if (HasFailure())
      std::cerr << "---- sluice log ----\n" << slurp(log_) << "--------------------\n";
    for (const char* f : {"/sluice.toml", "/sluice.pid", "/sluice.pid.tmp", "/sluice.log",
                          "/sluice.sock", "/ctl.out"})
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
  std::string dir_, config_, pidfile_, log_, pin_root_, socket_;
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

    // A second daemon on the same interface is refused before it touches
    // it, and detach refuses while the daemon runs: neither may pull the
    // program from under a daemon that reports it live.
    {
      Sluice second(ns_->lb(), {"attach", "lb0", "--config", config_, "--pin-root", pin_root_},
                    log_);
      EXPECT_EQ(second.exit_code(), 1);
      Sluice detach(ns_->lb(), {"detach", "lb0", "--pin-root", pin_root_}, log_);
      EXPECT_EQ(detach.exit_code(), 1);
      // Nor with another pin folder: the interface itself is locked.
      const std::string other = pins_->path() + "/other";
      Sluice second_elsewhere(ns_->lb(), {"attach", "lb0", "--config", config_, "--pin-root", other},
                              log_);
      EXPECT_EQ(second_elsewhere.exit_code(), 1);
      Sluice detach_elsewhere(ns_->lb(), {"detach", "lb0", "--pin-root", other}, log_);
      EXPECT_EQ(detach_elsewhere.exit_code(), 1);
      EXPECT_TRUE(log_has("drives interface lb0"));
    }
    EXPECT_TRUE(log_has("stop it first"));
    EXPECT_EQ(prog_id(), id);
    EXPECT_EQ(pinned().valid_backends, 2);
    EXPECT_TRUE(d.running());

    // A broken file: the reload is refused, the daemon and its state stay.
    std::ofstream(config_) << config_text(
        socket_, "[[vips.backends]]\naddress = \"10.250.0.3\"\nweight = -1\n");
    ASSERT_EQ(kill(d.pid(), SIGHUP), 0);
    ASSERT_TRUE(log_has("nothing changed")) << "no reload error logged";
    EXPECT_TRUE(log_has("vips[0].backends[2].weight"));
    EXPECT_TRUE(d.running());
    p = pinned();
    EXPECT_EQ(p.vips, 1);
    EXPECT_EQ(p.valid_backends, 2);

    // A good file with a third backend: applied.
    std::ofstream(config_) << config_text(socket_, "[[vips.backends]]\naddress = \"10.250.0.3\"\n");
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

// Probes every 100 ms, down after 2 failures, up after 1 success.
std::string probed_config(const std::string& socket) {
  return "[control]\nsocket = \"" + socket + "\"\n[metrics]\nlisten = \"\"\n" + R"(
[xdp]
interfaces = ["lb0"]
encap_source_v4 = "10.200.0.1"
gateway_mac = "02:00:00:00:00:fe"
[health_checks.tcp]
type = "tcp"
interval_ms = 100
timeout_ms = 100
rise = 1
fall = 2
port = 8080
[[vips]]
name = "web"
address = "10.0.0.1"
port = 80
table_size = 251
[[vips.backends]]
address = "10.250.0.1"
health_check = "tcp"
[[vips.backends]]
address = "10.250.0.2"
health_check = "tcp"
)";
}

TEST_F(DaemonTest, CtlSeesCountersMoveAndAFailedProbeTakesABackendsShare) {
  // The backends' addresses live on the peer's lo, where the probes
  // (routed lb0 -> peer0) reach them; the peer routes the VIP to lb0.
  std::string out;
  for (const char* a : {"10.250.0.1/32", "10.250.0.2/32"})
    ASSERT_EQ(run_command({"ip", "-n", ns_->peer(), "addr", "add", a, "dev", "lo"}, &out), 0)
        << out;
  ASSERT_EQ(
      run_command({"ip", "-n", ns_->peer(), "route", "add", "10.0.0.1/32", "via", "10.200.0.1"},
                  &out),
      0)
      << out;
  Listener b1(ns_->peer(), "10.250.0.1", 8080);
  auto b2 = std::make_unique<Listener>(ns_->peer(), "10.250.0.2", 8080);
  ASSERT_TRUE(b1.ok() && b2->ok());

  std::ofstream(config_) << probed_config(socket_);
  Sluice d(ns_->lb(), attach_args(), log_);
  ASSERT_TRUE(wait_for([&] { return exists(pidfile_) || !d.running(); }));
  ASSERT_TRUE(d.running()) << "sluice attach exited during start-up";

  // `sluice ctl --json CMD...`: the parsed result, and the exit code.
  const auto ctl = [&](std::vector<std::string> args, int* code = nullptr) {
    std::vector<std::string> argv{SLUICE_BIN, "ctl", "--socket", socket_, "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string text;
    const int rc = run_command(argv, &text);
    if (code != nullptr) *code = rc;
    return nlohmann::json::parse(text, nullptr, false);
  };
  // backend address -> {state, table_entries}
  const auto backends = [&] {
    std::map<std::string, std::pair<std::string, uint64_t>> m;
    const nlohmann::json j = ctl({"backends"});
    if (!j.is_object() || !j.contains("backends")) return m;
    for (const auto& b : j["backends"])
      m[b.value("backend", "")] = {b.value("state", ""), b.value("table_entries", uint64_t{0})};
    return m;
  };

  const nlohmann::json vips = ctl({"vips"});
  ASSERT_TRUE(vips.is_object()) << vips.dump();
  ASSERT_EQ(vips["vips"].size(), 1u) << vips.dump();
  EXPECT_EQ(vips["vips"][0]["name"], "web");
  ASSERT_TRUE(wait_for([&] {
    auto m = backends();
    return m["10.250.0.1"].first == "up" && m["10.250.0.2"].first == "up";
  })) << ctl({"backends"}).dump();
  {
    auto m = backends();
    EXPECT_EQ(m["10.250.0.1"].second + m["10.250.0.2"].second, 251u);
    EXPECT_GT(m["10.250.0.2"].second, 100u);
  }

  // Real packets to the VIP move the counters the socket reports.
  const auto vip_packets = [&] {
    const nlohmann::json st = ctl({"stats"});
    if (!st.is_object() || !st.contains("vips") || st["vips"].empty()) return uint64_t{0};
    return st["vips"][0].value("packets", uint64_t{0});
  };
  const uint64_t before = vip_packets();
  for (int i = 0; i < 5; ++i) send_syn(ns_->peer(), "10.0.0.1", 80);
  EXPECT_TRUE(wait_for([&] { return vip_packets() >= before + 5; }))
      << "VIP packets " << before << " -> " << vip_packets();

  // Active flows come from the fast path's flow table: a number for every
  // backend from the start; a connection attempt left open retransmits its
  // SYN (~1 s), its second packet, which establishes the flow, and the
  // daemon's next count (every 5 s) puts it on a backend.
  const auto active_flows = [&] {
    const nlohmann::json j = ctl({"backends"});
    uint64_t sum = 0;
    if (!j.is_object() || !j.contains("backends")) return std::optional<uint64_t>();
    for (const auto& b : j["backends"]) {
      if (!b["active_flows"].is_number_unsigned()) return std::optional<uint64_t>();
      sum += b["active_flows"].get<uint64_t>();
    }
    return std::optional<uint64_t>(sum);
  };
  ASSERT_TRUE(active_flows().has_value()) << ctl({"backends"}).dump();
  int held = -1;
  {
    NetnsEnter in(ns_->peer());
    held = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(held, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(80);
    inet_pton(AF_INET, "10.0.0.1", &sa.sin_addr);
    (void)connect(held, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  EXPECT_TRUE(wait_for([&] { return active_flows().value_or(0) >= 1; }))
      << ctl({"backends"}).dump();
  close(held);

  // Backend 2's probe target stops: down within fall x interval (+ the
  // probe timeout and the time to publish), its entries go to backend 1.
  b2.reset();
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_for([&] { return backends()["10.250.0.2"].first == "down"; }))
      << ctl({"backends"}).dump();
  const auto detected = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - stopped);
  EXPECT_LE(detected.count(), 2 * 100 + 100 + 700) << "fall x interval + timeout, with slack";
  std::cout << "probe failure detected after " << detected.count()
            << " ms (fall 2 x interval 100 ms)\n";
  {
    auto m = backends();
    EXPECT_EQ(m["10.250.0.1"].second, 251u);
    EXPECT_EQ(m["10.250.0.2"].second, 0u);
  }

  // It comes back after `rise` good probes.
  b2 = std::make_unique<Listener>(ns_->peer(), "10.250.0.2", 8080);
  ASSERT_TRUE(b2->ok());
  ASSERT_TRUE(wait_for([&] { return backends()["10.250.0.2"].second > 100; }))
      << ctl({"backends"}).dump();

  // Errors come back as exit code 1 and change nothing.
  int code = 0;
  (void)ctl({"drain", "nope", "10.250.0.1"}, &code);
  EXPECT_EQ(code, 1);

  ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
  EXPECT_EQ(d.exit_code(), 0);
  EXPECT_FALSE(exists(socket_)) << "the control socket is removed on a clean exit";
  Sluice detach(ns_->lb(), {"detach", "lb0", "--pin-root", pin_root_}, log_);
  EXPECT_EQ(detach.exit_code(), 0);
}

TEST_F(DaemonTest, ABrokenConfigNeverAttaches) {
  std::ofstream(config_) << "[xdp]\ninterfaces = [\"lb0\"]\nmtu = 1\n";
  Sluice d(ns_->lb(), attach_args(), log_);
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_TRUE(log_has("xdp.mtu"));
  EXPECT_EQ(prog_id(), 0u);
}

// The reviewer's case: [bgp] names the loopback. Refused with the config,
// before any interface is touched.
TEST_F(DaemonTest, ABgpDeviceThatCannotBeOursNeverAttaches) {
  std::ofstream(config_) << config_text(socket_)
                         << "[bgp]\nannounce = true\ntable = 4242\ndevice = \"lo\"\n";
  Sluice d(ns_->lb(), attach_args(), log_);
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_TRUE(log_has("bgp.device"));
  EXPECT_EQ(prog_id(), 0u);
}

// A start that fails after its program is attached (here: the control
// socket's path is a directory) takes it back: no fast path is left
// forwarding with no daemon, and no maps stay pinned.
TEST_F(DaemonTest, AStartFailingAfterTheAttachDetachesAgain) {
  ASSERT_EQ(mkdir(socket_.c_str(), 0700), 0);
  Sluice d(ns_->lb(), attach_args(), log_);
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_TRUE(log_has("start failed: XDP program detached"));
  EXPECT_EQ(prog_id(), 0u);
  EXPECT_FALSE(exists(pin_root_)) << "the maps this start made are unpinned";
  rmdir(socket_.c_str());
}

}  // namespace
}  // namespace sluice::test
