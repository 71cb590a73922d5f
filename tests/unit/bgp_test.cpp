// SPDX-License-Identifier: BSD-2-Clause
// Scale-out announcements: which addresses an instance announces, the
// Announcer keeping a route sink in line (with failures), BIRD's `show
// protocols` reply, the [bgp] config, and the kernel routes of VipRoutes in
// a network namespace of the test's own (skipped without root or TUN).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <map>
#include <string>

#include "control/announcer.hpp"
#include "control/bird_client.hpp"
#include "control/config.hpp"
#include "control/vip_routes.hpp"

namespace sluice::control {
namespace {

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

VipView vip(const char* name, const char* addr, size_t up) {
  VipView v;
  v.name = name;
  v.addr = ip(addr);
  v.backends = 3;
  v.backends_up = up;
  return v;
}

TEST(PlanAnnouncements, AnAddressIsAnnouncedWhileOneOfItsVipsCanServe) {
  struct Case {
    const char* what;
    std::vector<VipView> vips;
    bool drained;
    std::vector<const char*> routes;
    std::vector<bool> announced;  // per VIP
  };
  const std::vector<Case> cases = {
      {"all servable", {vip("a", "10.0.0.1", 3), vip("b", "fd00::1", 1)}, false,
       {"10.0.0.1", "fd00::1"}, {true, true}},
      {"one VIP without backends up", {vip("a", "10.0.0.1", 3), vip("b", "10.0.0.2", 0)}, false,
       {"10.0.0.1"}, {true, false}},
      {"a sibling on the same address keeps it",
       {vip("web", "10.0.0.1", 0), vip("dns", "10.0.0.1", 2)}, false, {"10.0.0.1"}, {true, true}},
      {"drained instance", {vip("a", "10.0.0.1", 3)}, true, {}, {false}},
      {"nothing servable", {vip("a", "10.0.0.1", 0), vip("b", "10.0.0.1", 0)}, false, {},
       {false, false}},
      {"no VIPs", {}, false, {}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const AnnouncementPlan p = plan_announcements(c.vips, c.drained);
    std::vector<IpAddress> want;
    for (const char* r : c.routes) want.push_back(ip(r));
    EXPECT_EQ(p.routes, want);
    ASSERT_EQ(p.vips.size(), c.vips.size());
    for (size_t i = 0; i < c.vips.size(); ++i) {
      EXPECT_EQ(p.vips[i].vip, c.vips[i].name);
      EXPECT_EQ(p.vips[i].announced, c.announced[i]) << c.vips[i].name;
      EXPECT_EQ(p.vips[i].servable, c.vips[i].backends_up > 0);
    }
  }
}

// Records calls; addresses in `refuse` fail.
struct FakeSink : RouteSink {
  std::vector<std::string>* log;
  std::map<IpAddress, int>* refuse;
  Status add(const IpAddress& a) override { return call("add", a); }
  Status remove(const IpAddress& a) override { return call("remove", a); }
  Status call(const char* what, const IpAddress& a) {
    log->push_back(std::string(what) + " " + a.to_string());
    if (refuse->count(a) > 0) return Error{refuse->at(a), "refused"};
    return Ok{};
  }
};

struct AnnouncerTest : ::testing::Test {
  std::vector<std::string> log;
  std::map<IpAddress, int> refuse;
  Announcer announcer{std::make_unique<FakeSink>([this] {
    FakeSink s;
    s.log = &log;
    s.refuse = &refuse;
    return s;
  }()), std::chrono::milliseconds(0)};
};

TEST_F(AnnouncerTest, AddsAndRemovesOnlyWhatChanged) {
  auto a = announcer.apply({vip("a", "10.0.0.1", 1), vip("b", "10.0.0.2", 1)});
  EXPECT_EQ(log, (std::vector<std::string>{"add 10.0.0.1", "add 10.0.0.2"}));
  EXPECT_EQ(a.changes, (std::vector<std::string>{"announce 10.0.0.1", "announce 10.0.0.2"}));
  EXPECT_TRUE(a.error.empty());
  log.clear();
  a = announcer.apply({vip("a", "10.0.0.1", 1), vip("b", "10.0.0.2", 1)});
  EXPECT_TRUE(log.empty()) << "nothing changed, nothing sent";
  a = announcer.apply({vip("a", "10.0.0.1", 1), vip("b", "10.0.0.2", 0)});
  EXPECT_EQ(log, (std::vector<std::string>{"remove 10.0.0.2"}));
  EXPECT_EQ(announcer.announced(), (std::set<IpAddress>{ip("10.0.0.1")}));
}

TEST_F(AnnouncerTest, DrainWithdrawsEverythingAndUndrainBringsItBack) {
  const std::vector<VipView> vips = {vip("a", "10.0.0.1", 1), vip("b", "fd00::1", 2)};
  (void)announcer.apply(vips);
  log.clear();
  announcer.set_drained(true);
  auto a = announcer.apply(vips);
  EXPECT_EQ(log, (std::vector<std::string>{"remove 10.0.0.1", "remove fd00::1"}));
  EXPECT_TRUE(announcer.announced().empty());
  for (const auto& v : a.plan.vips) EXPECT_FALSE(v.announced);
  log.clear();
  announcer.set_drained(false);
  (void)announcer.apply(vips);
  EXPECT_EQ(log, (std::vector<std::string>{"add 10.0.0.1", "add fd00::1"}));
}

TEST_F(AnnouncerTest, AFailedRouteIsReportedAndRetriedAtTheNextApply) {
  refuse[ip("10.0.0.2")] = -ENOBUFS;
  auto a = announcer.apply({vip("a", "10.0.0.1", 1), vip("b", "10.0.0.2", 1)});
  EXPECT_EQ(a.error, "refused");
  EXPECT_EQ(announcer.announced(), (std::set<IpAddress>{ip("10.0.0.1")}));
  EXPECT_FALSE(a.plan.vips[1].announced) << "the state says what the kernel has";
  refuse.clear();
  log.clear();
  a = announcer.apply({vip("a", "10.0.0.1", 1), vip("b", "10.0.0.2", 1)});
  EXPECT_EQ(log, (std::vector<std::string>{"add 10.0.0.2"}));
  EXPECT_TRUE(a.error.empty());
  // A withdrawal that fails keeps the address counted as announced.
  refuse[ip("10.0.0.1")] = -EPERM;
  a = announcer.apply({vip("b", "10.0.0.2", 1)});
  EXPECT_EQ(a.error, "refused");
  EXPECT_EQ(announcer.announced().count(ip("10.0.0.1")), 1u);
}

TEST(AnnouncerHoldDown, AnnouncesOnlyAfterTheAddressStayedServableForTheDelay) {
  std::vector<std::string> log;
  std::map<IpAddress, int> refuse;
  auto sink = std::make_unique<FakeSink>();
  sink->log = &log;
  sink->refuse = &refuse;
  Announcer announcer(std::move(sink), std::chrono::milliseconds(2000));
  using std::chrono::milliseconds;
  const Announcer::Clock::time_point t0{};
  const std::vector<VipView> up = {vip("a", "10.0.0.1", 1)};
  const std::vector<VipView> down = {vip("a", "10.0.0.1", 0)};

  auto a = announcer.apply(up, t0);
  EXPECT_TRUE(log.empty());
  ASSERT_TRUE(a.again_in.has_value());
  EXPECT_EQ(*a.again_in, milliseconds(2000));
  EXPECT_FALSE(a.plan.vips[0].announced);
  a = announcer.apply(up, t0 + milliseconds(1500));
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(*a.again_in, milliseconds(500));
  // A break restarts the hold-down.
  (void)announcer.apply(down, t0 + milliseconds(1600));
  a = announcer.apply(up, t0 + milliseconds(2100));
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(*a.again_in, milliseconds(2000));
  a = announcer.apply(up, t0 + milliseconds(4100));
  EXPECT_EQ(log, (std::vector<std::string>{"add 10.0.0.1"}));
  EXPECT_FALSE(a.again_in.has_value());
  EXPECT_TRUE(a.plan.vips[0].announced);
  // Withdrawal does not wait.
  log.clear();
  (void)announcer.apply(down, t0 + milliseconds(4200));
  EXPECT_EQ(log, (std::vector<std::string>{"remove 10.0.0.1"}));
}

// What BIRD 2.0.12 sent for `show protocols` (captured from a lab).
constexpr const char* kBirdReply =
    "2002-Name       Proto      Table      State  Since         Info\n"
    "1002-device1    Device     ---        up     00:45:49.662  \n"
    " sluice_vips Kernel     master4    up     00:45:49.662  \n"
    " bfd1       BFD        ---        up     00:45:49.662  \n"
    " uplink     BGP        ---        up     00:45:50.504  Established   \n"
    " backup     BGP        ---        start  2024-05-01 10:00:00  Active        Socket: "
    "Connection refused\n"
    "0000 \n";

TEST(BirdProtocols, ParsesTheTableBirdSends) {
  auto r = parse_bird_protocols(kBirdReply);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& p = r.value();
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].name, "device1");
  EXPECT_EQ(p[0].info, "");
  EXPECT_EQ(p[1].proto, "Kernel");
  EXPECT_EQ(p[3].name, "uplink");
  EXPECT_EQ(p[3].proto, "BGP");
  EXPECT_EQ(p[3].state, "up");
  EXPECT_EQ(p[3].since, "00:45:50.504");
  EXPECT_EQ(p[3].info, "Established");
  EXPECT_EQ(p[4].state, "start");
  EXPECT_EQ(p[4].since, "2024-05-01 10:00:00");
  EXPECT_EQ(p[4].info, "Active Socket: Connection refused");
}

TEST(BirdProtocols, ErrorsAndRepliesWithoutATableAreRefused) {
  for (const char* reply : {"9001 syntax error, unexpected CF_SYM_UNDEFINED\n",
                            "8003 No protocols match\n", "0000 \n", ""}) {
    SCOPED_TRACE(reply);
    auto r = parse_bird_protocols(reply);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, -EPROTO);
  }
}

TEST(BirdProtocols, ABirdThatIsNotThereIsAnErrorNotAHang) {
  auto r = query_bird_protocols("/nonexistent/bird.ctl", std::chrono::milliseconds(100));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ENOENT);
}

// A BIRD that accepts connections (the kernel queues them on a listening
// socket) and never says a word: what a hung or overloaded BIRD looks like.
class SilentBird : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-bird-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/bird.ctl";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.c_str(), path_.size());
    ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd_, 128), 0);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
  int fd_ = -1;
};

TEST_F(SilentBird, ADirectQueryWaitsItsWholeTimeout) {
  // What a status request cost the daemon's loop when it asked BIRD itself
  // (about the timeout: poll() rounds its wait down to whole ms).
  constexpr auto kTimeout = std::chrono::milliseconds(300);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = query_bird_protocols(path_, kTimeout);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, kTimeout / 2);
}

TEST_F(SilentBird, TheWatcherAnswersAtOnceWithTheLastReading) {
  constexpr auto kTimeout = std::chrono::milliseconds(1500);
  BirdWatcher w(path_, kTimeout, std::chrono::milliseconds(100));
  // 8 pollers asking 25 times each, as `sluice ctl status` in a loop: one
  // direct query alone would hold the caller for kTimeout.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8 * 25; ++i) {
    const BirdReading r = w.reading();
    EXPECT_TRUE(r.protocols.empty());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, kTimeout / 2);

  // The silent BIRD becomes a reading with the reason, and its time.
  BirdReading r;
  for (int i = 0; i < 200 && !(r = w.reading()).at; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(r.at.has_value());
  EXPECT_NE(r.error.find("did not answer in time"), std::string::npos) << r.error;
  EXPECT_LE(*r.at, std::chrono::steady_clock::now());
}

TEST(BirdWatcher, ABirdThatIsNotThereIsReadAsAnError) {
  BirdWatcher w("/nonexistent/bird.ctl", std::chrono::milliseconds(100),
                std::chrono::milliseconds(50));
  BirdReading r;
  for (int i = 0; i < 200 && !(r = w.reading()).at; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(r.at.has_value());
  EXPECT_NE(r.error.find("No such file"), std::string::npos) << r.error;
}

TEST(BgpConfig, Loads) {
  auto r = parse_config(
      "[bgp]\nannounce = true\ntable = 4242\ndevice = \"vips0\"\nbird_socket = \"/run/b.ctl\"\n"
      "announce_delay_ms = 500\n",
      "t.toml");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  ASSERT_TRUE(r.config->bgp.has_value());
  EXPECT_TRUE(r.config->bgp->announce);
  EXPECT_EQ(r.config->bgp->table, 4242u);
  EXPECT_EQ(r.config->bgp->device, "vips0");
  EXPECT_EQ(r.config->bgp->bird_socket, "/run/b.ctl");
  EXPECT_EQ(r.config->bgp->announce_delay_ms, 500u);
  auto none = parse_config("hash_seed = 1\n", "t.toml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.config->bgp.has_value());
}

TEST(BgpConfig, RefusesWhatCannotWork) {
  struct Case {
    const char* text;
    const char* key;
  };
  const Case cases[] = {
      {"[bgp]\nannounce = true\n", "bgp.table"},
      {"[bgp]\nannounce = true\ntable = 254\n", "bgp.table"},
      {"[bgp]\ntable = 0\n", "bgp.table"},
      {"[bgp]\ntable = 10\ndevice = \"a-name-far-too-long\"\n", "bgp.device"},
      {"[bgp]\ntable = 10\nbird_socket = \"relative.ctl\"\n", "bgp.bird_socket"},
      {"[bgp]\ntable = 10\nanounce = true\n", "bgp.anounce"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto r = parse_config(c.text, "t.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.errors[0].key, c.key) << r.errors[0].to_string();
  }
}

// `ip route show table TABLE` in the calling process's namespace.
std::string routes_in(uint32_t table, const char* family) {
  const std::string cmd =
      std::string("ip ") + family + " route show table " + std::to_string(table) + " 2>&1";
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, f) != nullptr) out += buf;
    pclose(f);
  }
  return out;
}

// Runs in a child process (a death test) in a namespace of its own; exits 0
// when every step held, else prints the step and exits 1.
[[noreturn]] void vip_routes_in_a_namespace() {
  const auto check = [](bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "FAILED: %s\n", what.c_str());
      std::_Exit(1);
    }
  };
  check(unshare(CLONE_NEWNET) == 0, "unshare");
  constexpr uint32_t kTable = 4242;
  {
    auto r = VipRoutes::open("sl-vips-test", kTable);
    check(r.ok(), r.ok() ? "" : r.error().message);
    VipRoutes& routes = *r.value();
    auto second = VipRoutes::open("sl-vips-test", kTable);
    check(!second.ok() && second.error().code == -EBUSY, "a second owner of the device: EBUSY");
    check(routes.add(ip("10.99.0.1")).ok(), "add v4");
    check(routes.add(ip("10.99.0.1")).ok(), "add v4 again (replace)");
    check(routes.add(ip("fd00:99::1")).ok(), "add v6");
    const std::string v4 = routes_in(kTable, "-4");
    check(v4.find("10.99.0.1 dev sl-vips-test proto 92 scope link") != std::string::npos,
          "v4 route in the table: " + v4);
    check(routes_in(kTable, "-6").find("fd00:99::1 dev sl-vips-test proto 92") !=
              std::string::npos,
          "v6 route in the table: " + routes_in(kTable, "-6"));
    check(routes_in(254, "-4").find("10.99.0.1") == std::string::npos, "main table untouched");
    check(routes.remove(ip("10.99.0.1")).ok(), "remove v4");
    check(routes.remove(ip("10.99.0.1")).ok(), "remove v4 again (not there: fine)");
    check(routes_in(kTable, "-4").find("10.99.0.1") == std::string::npos, "v4 route gone");
  }
  // Closing the device takes the remaining route with it (as a crash does).
  check(routes_in(kTable, "-6").find("fd00:99::1") == std::string::npos,
        "v6 route gone with the device: " + routes_in(kTable, "-6"));
  // A persistent device of that name is taken over and dies with its owner.
  check(system("ip tuntap add dev sl-vips-test mode tun") == 0, "ip tuntap add");
  {
    auto r = VipRoutes::open("sl-vips-test", kTable);
    check(r.ok(), r.ok() ? "" : r.error().message);
  }
  check(system("ip link show sl-vips-test >/dev/null 2>&1") != 0,
        "the taken-over device is gone with its owner");
  std::_Exit(0);
}

TEST(VipRoutes, RoutesLiveInTheirTableAndDieWithTheDevice) {
  struct stat st {};
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a network namespace, a TUN device)";
  if (stat("/dev/net/tun", &st) != 0) GTEST_SKIP() << "no /dev/net/tun";
  if (system("ip -V >/dev/null 2>&1") != 0) GTEST_SKIP() << "no ip (iproute2)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(vip_routes_in_a_namespace(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace sluice::control
