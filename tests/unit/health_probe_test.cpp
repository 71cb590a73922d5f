// SPDX-License-Identifier: BSD-2-Clause
// Health probes against real servers written here (HTTP, memcached- and
// Redis-like responders, a silent listener, a closed port), in a network
// namespace of the test's own: state transitions after exactly rise/fall
// probes, failure reasons, target set changes, and the detection time.
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/health.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using asio::ip::tcp;

// A TCP server on the loopback that reads each connection until
// `request_end` and then answers it with reply() and closes; when reply()
// gives nullopt it says nothing and holds the connection until the peer
// closes it.
class Responder {
 public:
  Responder(asio::io_context& io, const char* addr, std::string request_end,
            std::function<std::optional<std::string>()> reply)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address(addr), 0)),
        request_end_(std::move(request_end)),
        reply_(std::move(reply)) {
    accept();
  }
  ~Responder() { *alive_ = false; }
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  [[nodiscard]] uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::vector<std::string> requests;  // each connection's request, as received
  size_t peer_closed = 0;             // connections the prober closed before we did

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, Responder* r, std::shared_ptr<bool> alive)
        : sock(std::move(s)), owner(r), owner_alive(std::move(alive)) {}
    void read() {
      sock.async_read_some(
          asio::buffer(chunk), [self = shared_from_this()](const asio::error_code& ec, size_t n) {
            if (!*self->owner_alive) return;
            if (ec) {
              if (!self->answered || self->silent) ++self->owner->peer_closed;
              return;
            }
            self->got.append(self->chunk.data(), n);
            if (!self->answered && self->got.find(self->owner->request_end_) != std::string::npos) {
              self->answered = true;
              self->owner->requests.push_back(self->got);
              if (auto r = self->owner->reply_()) {
                self->out = std::move(*r);
                asio::async_write(self->sock, asio::buffer(self->out),
                                  [self](const asio::error_code&, size_t) {
                                    asio::error_code ignored;
                                    self->sock.close(ignored);
                                  });
                return;
              }
              self->silent = true;
            }
            self->read();
          });
    }
    tcp::socket sock;
    Responder* owner;
    std::shared_ptr<bool> owner_alive;
    std::array<char, 512> chunk{};
    std::string got, out;
    bool answered = false, silent = false;
  };

  void accept() {
    acceptor_.async_accept([this, alive = alive_](const asio::error_code& ec, tcp::socket s) {
      if (!*alive || ec) return;
      std::make_shared<Session>(std::move(s), this, alive_)->read();
      accept();
    });
  }

  tcp::acceptor acceptor_;
  std::string request_end_;
  std::function<std::optional<std::string>()> reply_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A loopback port with nothing listening: bound, then closed.
uint16_t closed_port(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

HealthCheck check(CheckType type, uint32_t interval_ms = 20, uint32_t timeout_ms = 500,
                  uint32_t rise = 2, uint32_t fall = 3) {
  HealthCheck c;
  c.name = "t";
  c.type = type;
  c.interval_ms = interval_ms;
  c.timeout_ms = timeout_ms;
  c.rise = rise;
  c.fall = fall;
  return c;
}

class HealthProbeTest : public ::testing::Test {
 protected:
  // Runs the loop until pred() holds; false when 10 s pass first (a hang).
  bool run_until(const std::function<bool()>& pred) {
    const auto deadline = Clock::now() + 10s;
    while (!pred()) {
      if (Clock::now() > deadline) return false;
      io_.run_one_for(20ms);
    }
    return true;
  }

  ProbeResult probe_once(const char* addr, uint16_t port, const HealthCheck& c) {
    std::optional<ProbeResult> got;
    run_probe(io_, ip(addr), port, c, [&](ProbeResult r) { got = std::move(r); });
    EXPECT_TRUE(run_until([&] { return got.has_value(); }));
    return got.value_or(ProbeResult{});
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
};

const std::string kHttpOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
const std::string kHttp503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

// One probe of each type, against a responder of each kind: the verdict and
// the reason a person reads.
TEST_F(HealthProbeTest, EachProbeTypeJudgesItsReply) {
  struct Case {
    std::string name;
    CheckType type;
    std::string request_end;
    std::optional<std::string> reply;
    bool ok;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"http 200", CheckType::kHttp, "\r\n\r\n", kHttpOk, true, ""},
      {"http 503", CheckType::kHttp, "\r\n\r\n", kHttp503, false, "http status 503"},
      {"http 1.0 without reason", CheckType::kHttp, "\r\n\r\n", "HTTP/1.0 200\r\n\r\n", true, ""},
      {"http garbage", CheckType::kHttp, "\r\n\r\n", "SSH-2.0-OpenSSH\r\n", false,
       "http: malformed status line \"SSH-2.0-OpenSSH\""},
      {"http closed early", CheckType::kHttp, "\r\n\r\n", "", false,
       "reply: connection closed before a reply"},
      {"http no line end", CheckType::kHttp, "\r\n\r\n", std::string(2000, 'x'), false,
       "reply: no line end in the first 1024 bytes"},
      {"memcached VERSION", CheckType::kMemcached, "\r\n", "VERSION 1.6.18\r\n", true, ""},
      {"memcached ERROR", CheckType::kMemcached, "\r\n", "ERROR\r\n", false,
       "memcached: unexpected reply \"ERROR\""},
      {"redis PONG", CheckType::kRedis, "PING\r\n", "+PONG\r\n", true, ""},
      {"redis NOAUTH", CheckType::kRedis, "PING\r\n", "-NOAUTH Authentication required.\r\n", false,
       "redis: unexpected reply \"-NOAUTH Authentication required.\""},
      {"redis binary", CheckType::kRedis, "PING\r\n", std::string("+P\x01\xff\r\n", 6), false,
       "redis: unexpected reply \"+P??\""},
      {"tcp connect", CheckType::kTcp, "never", std::nullopt, true, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Responder server(io_, "127.0.0.1", c.request_end, [&] { return c.reply; });
    const ProbeResult r = probe_once("127.0.0.1", server.port(), check(c.type));
    EXPECT_EQ(r.ok, c.ok);
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_GT(r.elapsed.count(), 0);
  }
}

// What goes on the wire: an HTTP/1.1 request naming the host (an IPv6 one
// in brackets) and closing the connection; RESP PING; memcached version.
TEST_F(HealthProbeTest, RequestsAreWellFormed) {
  HealthCheck http = check(CheckType::kHttp);
  http.http_path = "/healthz?full=1";
  Responder h6(io_, "::1", "\r\n\r\n", [] { return kHttpOk; });
  EXPECT_TRUE(probe_once("::1", h6.port(), http).ok);
  ASSERT_EQ(h6.requests.size(), 1u);
  const std::string& req = h6.requests[0];
  EXPECT_EQ(req.rfind("GET /healthz?full=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: [::1]:" + std::to_string(h6.port()) + "\r\n"), std::string::npos)
      << req;
  EXPECT_NE(req.find("\r\nConnection: close\r\n"), std::string::npos) << req;

  Responder redis(io_, "127.0.0.1", "PING\r\n", [] { return std::string("+PONG\r\n"); });
  EXPECT_TRUE(probe_once("127.0.0.1", redis.port(), check(CheckType::kRedis)).ok);
  EXPECT_EQ(redis.requests, std::vector<std::string>{"*1\r\n$4\r\nPING\r\n"});

  Responder mc(io_, "127.0.0.1", "\r\n", [] { return std::string("VERSION 1.6.18\r\n"); });
  EXPECT_TRUE(probe_once("127.0.0.1", mc.port(), check(CheckType::kMemcached)).ok);
  EXPECT_EQ(mc.requests, std::vector<std::string>{"version\r\n"});
}

TEST_F(HealthProbeTest, RefusedAndTimeoutReasons) {
  const ProbeResult refused = probe_once("127.0.0.1", closed_port(io_), check(CheckType::kTcp));
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "connect: Connection refused");

  // Accepts, reads the request, never answers: the probe gives up at its
  // timeout and closes the socket (the server sees it close).
  Responder silent(io_, "127.0.0.1", "\r\n", [] { return std::optional<std::string>(); });
  const ProbeResult timeout =
      probe_once("127.0.0.1", silent.port(), check(CheckType::kMemcached, 20, 50));
  EXPECT_FALSE(timeout.ok);
  EXPECT_EQ(timeout.reason, "timeout after 50 ms (reply)");
  EXPECT_GE(timeout.elapsed, 50ms);
  EXPECT_TRUE(run_until([&] { return silent.peer_closed == 1; })) << "the probe closed its socket";
}

// Records every event of a checker.
struct Recorder {
  std::vector<HealthEvent> events;
  [[nodiscard]] size_t count_for(const HealthTargetKey& k) const {
    size_t n = 0;
    for (const HealthEvent& e : events) n += e.key == k ? 1 : 0;
    return n;
  }
  // Index (1-based, among k's events) of the event that changed state to s.
  [[nodiscard]] std::optional<size_t> changed_to(const HealthTargetKey& k, HealthState s,
                                                 size_t after = 0) const {
    size_t i = 0;
    for (const HealthEvent& e : events) {
      if (!(e.key == k)) continue;
      ++i;
      if (i > after && e.state_changed && e.status.state == s) return i;
    }
    return std::nullopt;
  }
};

// HTTP backend, new (starts down): up after exactly `rise` good probes;
// serving 503 it goes down after exactly `fall` failed probes, saying why;
// back to 200 it is up again after exactly `rise`.
TEST_F(HealthProbeTest, RiseAndFallAfterExactlyThatManyProbes) {
  bool healthy = true;
  Responder server(io_, "127.0.0.1", "\r\n\r\n", [&] { return healthy ? kHttpOk : kHttp503; });
  Recorder rec;
  HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
  const HealthTargetKey key{"web", ip("127.0.0.1")};
  const HealthCheck c = check(CheckType::kHttp, 20, 500, /*rise=*/2, /*fall=*/3);
  checker.set_targets({HealthTarget{key, server.port(), c, HealthState::kDown}});

  ASSERT_TRUE(checker.status(key).has_value());
  EXPECT_TRUE(checker.status(key)->assumed);
  EXPECT_EQ(checker.status(key)->state, HealthState::kDown);

  ASSERT_TRUE(run_until([&] { return rec.changed_to(key, HealthState::kUp).has_value(); }));
  EXPECT_EQ(rec.changed_to(key, HealthState::kUp), 2u);
  EXPECT_FALSE(rec.events[0].state_changed);
  EXPECT_EQ(rec.events[0].status.consecutive_ok, 1u);
  ASSERT_TRUE(rec.events[1].status.rtt_ewma_us.has_value());

  healthy = false;
  const size_t before = rec.count_for(key);
  ASSERT_TRUE(run_until([&] { return rec.changed_to(key, HealthState::kDown).has_value(); }));
  EXPECT_EQ(*rec.changed_to(key, HealthState::kDown) - before, 3u);
  const HealthStatus down = *checker.status(key);
  EXPECT_EQ(down.state, HealthState::kDown);
  EXPECT_EQ(down.consecutive_failed, 3u);
  EXPECT_EQ(down.last_failure, "http status 503");
  EXPECT_FALSE(down.assumed);

  healthy = true;
  const size_t before_up = rec.count_for(key);
  ASSERT_TRUE(
      run_until([&] { return rec.changed_to(key, HealthState::kUp, before_up).has_value(); }));
  EXPECT_EQ(*rec.changed_to(key, HealthState::kUp, before_up) - before_up, 2u);
  EXPECT_EQ(checker.status(key)->last_failure, "http status 503") << "kept for the operator";
}

// A backend from the startup config starts up (assumed) and needs `fall`
// failures to go down: a refused port here.
TEST_F(HealthProbeTest, AssumedUpGoesDownAfterFall) {
  Recorder rec;
  HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
  const HealthTargetKey key{"kv", ip("127.0.0.1")};
  checker.set_targets({HealthTarget{key, closed_port(io_), check(CheckType::kTcp, 20, 500, 2, 4),
                                    HealthState::kUp}});
  EXPECT_EQ(checker.status(key)->state, HealthState::kUp);
  EXPECT_TRUE(checker.status(key)->assumed);
  ASSERT_TRUE(run_until([&] { return rec.changed_to(key, HealthState::kDown).has_value(); }));
  EXPECT_EQ(rec.changed_to(key, HealthState::kDown), 4u);
  EXPECT_EQ(checker.status(key)->last_failure, "connect: Connection refused");
  EXPECT_FALSE(checker.status(key)->rtt_ewma_us.has_value());
}

// memcached and redis responders, several targets at once; a redis that
// starts refusing PING (NOAUTH) goes down and says so.
TEST_F(HealthProbeTest, MemcachedAndRedisTargets) {
  bool auth = false;
  Responder mc(io_, "127.0.0.1", "\r\n", [] { return std::string("VERSION 1.6.18\r\n"); });
  Responder redis(io_, "127.0.0.1", "PING\r\n", [&] {
    return std::string(auth ? "-NOAUTH Authentication required.\r\n" : "+PONG\r\n");
  });
  Recorder rec;
  HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
  const HealthTargetKey kmc{"cache", ip("127.0.0.1")};
  const HealthTargetKey kredis{"redis", ip("127.0.0.1")};
  checker.set_targets(
      {{kmc, mc.port(), check(CheckType::kMemcached, 20, 500, 1, 2), HealthState::kDown},
       {kredis, redis.port(), check(CheckType::kRedis, 20, 500, 1, 2), HealthState::kDown}});
  ASSERT_TRUE(run_until([&] {
    return rec.changed_to(kmc, HealthState::kUp) && rec.changed_to(kredis, HealthState::kUp);
  }));
  EXPECT_EQ(rec.changed_to(kmc, HealthState::kUp), 1u);
  EXPECT_EQ(rec.changed_to(kredis, HealthState::kUp), 1u);
  auth = true;
  ASSERT_TRUE(run_until([&] { return rec.changed_to(kredis, HealthState::kDown).has_value(); }));
  EXPECT_EQ(checker.status(kredis)->last_failure,
            "redis: unexpected reply \"-NOAUTH Authentication required.\"");
  EXPECT_EQ(checker.status(kmc)->state, HealthState::kUp);
}

// A silent backend fails by timeout; the reason names it.
TEST_F(HealthProbeTest, TimeoutCountsAsFailure) {
  Responder silent(io_, "127.0.0.1", "\r\n\r\n", [] { return std::optional<std::string>(); });
  Recorder rec;
  HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
  const HealthTargetKey key{"web", ip("127.0.0.1")};
  checker.set_targets(
      {{key, silent.port(), check(CheckType::kHttp, 40, 30, 2, 2), HealthState::kUp}});
  ASSERT_TRUE(run_until([&] { return rec.changed_to(key, HealthState::kDown).has_value(); }));
  EXPECT_EQ(rec.changed_to(key, HealthState::kDown), 2u);
  EXPECT_EQ(checker.status(key)->last_failure, "timeout after 30 ms (reply)");
  EXPECT_TRUE(run_until([&] { return silent.peer_closed >= 2; }))
      << "each timed-out probe closed its socket";
}

// set_targets: a retained target keeps its state and counters, a removed one
// gets no more callbacks (its probe in flight is cancelled), a new one
// starts in its initial state.
TEST_F(HealthProbeTest, SetTargetsKeepsRetainedState) {
  Responder a(io_, "127.0.0.1", "\r\n", [] { return std::string("VERSION 1\r\n"); });
  Responder silent(io_, "127.0.0.2", "\r\n", [] { return std::optional<std::string>(); });
  Recorder rec;
  HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
  const HealthTargetKey ka{"v", ip("127.0.0.1")};
  const HealthTargetKey kb{"v", ip("127.0.0.2")};
  const HealthTargetKey kc{"w", ip("127.0.0.1")};
  const HealthCheck mc = check(CheckType::kMemcached, 20, 2000, 1, 3);
  checker.set_targets(
      {{ka, a.port(), mc, HealthState::kDown}, {kb, silent.port(), mc, HealthState::kUp}});
  ASSERT_TRUE(run_until([&] { return rec.count_for(ka) >= 3 && silent.requests.size() == 1; }));
  EXPECT_EQ(checker.size(), 2u);
  const uint64_t probes_a = checker.status(ka)->probes;
  EXPECT_EQ(checker.status(ka)->state, HealthState::kUp);

  // kb has a probe in flight (the silent server holds it for 2 s).
  checker.set_targets(
      {{ka, a.port(), mc, HealthState::kDown}, {kc, a.port(), mc, HealthState::kDown}});
  EXPECT_EQ(checker.size(), 2u);
  EXPECT_FALSE(checker.status(kb).has_value());
  EXPECT_EQ(checker.status(ka)->state, HealthState::kUp)
      << "retained: state kept, not the new initial";
  EXPECT_GE(checker.status(ka)->probes, probes_a);
  EXPECT_EQ(checker.status(kc)->state, HealthState::kDown);
  EXPECT_TRUE(run_until([&] { return silent.peer_closed == 1; }))
      << "the cancelled probe's socket is closed";
  ASSERT_TRUE(run_until([&] { return rec.changed_to(kc, HealthState::kUp).has_value(); }));
  EXPECT_EQ(rec.count_for(kb), 0u);

  const auto all = checker.statuses();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, ka);
  EXPECT_EQ(all[1].first, kc);
}

// Destroying the checker mid-probe cancels everything: no callback after.
TEST_F(HealthProbeTest, DestroyCancelsProbes) {
  Responder silent(io_, "127.0.0.1", "\r\n", [] { return std::optional<std::string>(); });
  size_t events = 0;
  {
    HealthChecker checker(io_, [&](const HealthEvent&) { ++events; });
    checker.set_targets({{{"v", ip("127.0.0.1")},
                          silent.port(),
                          check(CheckType::kRedis, 20, 2000),
                          HealthState::kUp}});
    ASSERT_TRUE(run_until([&] { return silent.requests.size() == 1; }));
  }
  EXPECT_TRUE(run_until([&] { return silent.peer_closed == 1; }));
  io_.run_for(50ms);
  EXPECT_EQ(events, 0u);
}

TEST(HealthTargets, FromConfig) {
  const ConfigReport report = parse_config(R"(
[health_checks.web]
type = "http"
path = "/up"
[health_checks.kv]
type = "redis"
port = 6380
[[vips]]
name = "web"
address = "192.0.2.1"
port = 80
[[vips.backends]]
address = "10.0.0.1"
health_check = "web"
[[vips.backends]]
address = "10.0.0.2"
[[vips]]
name = "kv"
address = "192.0.2.2"
port = 6379
[[vips.backends]]
address = "10.0.0.3"
health_check = "kv"
)",
                                           "t.toml");
  ASSERT_TRUE(report.ok()) << (report.errors.empty() ? "" : report.errors[0].to_string());
  const auto targets = health_targets(*report.config, HealthState::kUp);
  ASSERT_EQ(targets.size(), 2u) << "the backend without a check is not probed";
  EXPECT_EQ(targets[0].key, (HealthTargetKey{"web", ip("10.0.0.1")}));
  EXPECT_EQ(targets[0].port, 80) << "the VIP's port";
  EXPECT_EQ(targets[0].check.http_path, "/up");
  EXPECT_EQ(targets[1].key, (HealthTargetKey{"kv", ip("10.0.0.3")}));
  EXPECT_EQ(targets[1].port, 6380) << "the check's port";
  EXPECT_EQ(targets[1].initial, HealthState::kUp);
}

// How long from a backend failing to the checker saying so: a backend that
// refuses (its process died) and one that stops answering (hung), probed
// every 20 ms with fall 3. Printed for perf/RESULTS.md; asserted only as
// "it happened after `fall` probes", as timing on a shared machine varies.
TEST_F(HealthProbeTest, DetectionTime) {
  constexpr uint32_t kInterval = 20, kTimeout = 10, kFall = 3;
  for (const bool hang : {false, true}) {
    bool failing = false;
    auto server = std::make_unique<Responder>(io_, "127.0.0.1", "\r\n\r\n", [&] {
      return failing ? (hang ? std::optional<std::string>() : std::optional<std::string>(kHttp503))
                     : std::optional<std::string>(kHttpOk);
    });
    Recorder rec;
    HealthChecker checker(io_, [&](const HealthEvent& e) { rec.events.push_back(e); });
    const HealthTargetKey key{"web", ip("127.0.0.1")};
    checker.set_targets(
        {{key, server->port(), check(CheckType::kHttp, kInterval, kTimeout, 2, kFall),
          HealthState::kUp}});
    // Fail right after a good probe: the worst case, a whole interval
    // before the next probe sees it.
    ASSERT_TRUE(run_until([&] { return !rec.events.empty() && rec.events.back().probe_ok; }));
    failing = true;
    const auto t0 = Clock::now();
    const size_t before = rec.count_for(key);
    ASSERT_TRUE(run_until([&] { return rec.changed_to(key, HealthState::kDown).has_value(); }));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    EXPECT_EQ(*rec.changed_to(key, HealthState::kDown) - before, kFall);
    std::printf("detection (%s): %.1f ms; fall %u x interval %u ms = %u ms%s\n",
                hang ? "hung backend, timeout" : "http 503", ms, kFall, kInterval,
                kFall * kInterval,
                hang ? (" + timeout " + std::to_string(kTimeout) + " ms").c_str() : "");
    RecordProperty(hang ? "detection_ms_hung" : "detection_ms_503", std::to_string(ms));
  }
}

// Puts the test in a network namespace of its own with only `lo`, up: no
// probe touches the machine's loopback. "" when done, else why not.
std::string isolate_network() {
  if (geteuid() != 0) return "needs root to make a network namespace (unshare CLONE_NEWNET)";
  if (unshare(CLONE_NEWNET) != 0)
    return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  std::string why;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    why = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
      why = std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
  }
  close(fd);
  return why;
}

}  // namespace
}  // namespace sluice

// Own main: the namespace must be made before any test (and before any
// thread: unshare applies to the calling thread only).
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string why = sluice::isolate_network();
  if (!why.empty()) {
    const char* req = std::getenv("SLUICE_REQUIRE_BPF");
    if (req != nullptr && std::string(req) == "1") {
      std::fprintf(stderr, "health_probe_test: %s (SLUICE_REQUIRE_BPF=1: failing, not skipping)\n",
                   why.c_str());
      return 1;
    }
    std::printf("SKIP: health_probe_test: %s\n", why.c_str());
    return 77;
  }
  return RUN_ALL_TESTS();
}
