// SPDX-License-Identifier: BSD-2-Clause
// Prometheus metrics: the text rendered from control-socket JSON (checked
// by promtool when it is installed) and the HTTP server that serves it
// (inside a network namespace of its own: needs root).
#include "control/metrics.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "control/metrics_server.hpp"

namespace sluice {
namespace {

using nlohmann::json;

bool require_privileges() {
  const char* v = std::getenv("SLUICE_REQUIRE_BPF");
  return v != nullptr && std::string(v) == "1";
}

const json kStats = json::parse(R"({"time_ns": 5000000000,
  "global": {"rx_packets": 3000, "rx_bytes": 300000, "tx_packets": 2990, "pass_packets": 4,
             "flow_hits": 2900, "flow_misses": 100, "flow_insert_failed": 0,
             "icmp_too_big_sent": 1,
             "drops": {"truncated": 4, "bad_l2": 0, "no_backend": 6}},
  "vips": [{"name": "web", "packets": 2000, "bytes": 200000, "new_flows": 20, "drops": 0},
           {"name": "dns \"main\"\\1", "packets": 1000, "bytes": 100000, "new_flows": 50,
            "drops": 6}],
  "backends": [{"vip": "web", "backend": "10.0.0.11", "packets": 1500, "bytes": 150000,
                "new_flows": 20},
               {"vip": "web", "backend": "2001:db8::12", "packets": 500, "bytes": 50000,
                "new_flows": 0}],
  "flow_table": {"capacity": 65536, "probation_capacity": 16384, "active_flows": 14}})");

const json kBackends = json::parse(R"({"backends": [
  {"vip": "web", "backend": "10.0.0.11", "state": "up", "health": "up", "weight": 100,
   "effective_weight": 100, "table_entries": 32769, "rtt_us": 350, "active_flows": 12,
   "last_check": "ok", "probes_ok": 1520, "probes_failed": 3, "last_rtt_us": 410},
  {"vip": "web", "backend": "2001:db8::12", "state": "down", "health": "down", "weight": 100,
   "effective_weight": 0, "table_entries": 0, "rtt_us": null, "active_flows": null,
   "last_check": "timeout", "probes_ok": 0, "probes_failed": 7, "last_rtt_us": null},
  {"vip": "web", "backend": "10.0.0.13", "state": "draining", "health": "unchecked",
   "weight": 0, "effective_weight": 0, "table_entries": 0, "rtt_us": null,
   "active_flows": 2, "last_check": null, "probes_ok": null, "probes_failed": null,
   "last_rtt_us": null}]})");

const json kVips = json::parse(R"({"vips": [
  {"name": "web", "address": "192.0.2.1", "port": 80, "protocol": "tcp", "policy": "static",
   "hash": "5-tuple", "table_size": 65537, "backends": 2, "backends_up": 1, "panic": false}]})");

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Metrics, RendersFamiliesWithLabels) {
  const std::string m = render_metrics(kStats, kBackends, kVips);
  for (const char* part : {
           "# HELP sluice_rx_packets_total Packets the fast path received.\n"
           "# TYPE sluice_rx_packets_total counter\n"
           "sluice_rx_packets_total 3000\n",
           "# TYPE sluice_drops_total counter\n"
           "sluice_drops_total{reason=\"bad_l2\"} 0\n"
           "sluice_drops_total{reason=\"no_backend\"} 6\n"
           "sluice_drops_total{reason=\"truncated\"} 4\n",
           "sluice_vip_packets_total{vip=\"web\"} 2000\n"
           "sluice_vip_packets_total{vip=\"dns \\\"main\\\"\\\\1\"} 1000\n",
           "sluice_backend_new_flows_total{vip=\"web\",backend=\"2001:db8::12\"} 0\n",
           "# TYPE sluice_flow_table_capacity gauge\nsluice_flow_table_capacity 65536\n",
           "# TYPE sluice_flow_table_active_flows gauge\nsluice_flow_table_active_flows 14\n",
           "sluice_backend_state{vip=\"web\",backend=\"10.0.0.11\",state=\"up\"} 1\n"
           "sluice_backend_state{vip=\"web\",backend=\"10.0.0.11\",state=\"down\"} 0\n",
           "sluice_backend_state{vip=\"web\",backend=\"2001:db8::12\",state=\"down\"} 1\n",
           "sluice_backend_effective_weight{vip=\"web\",backend=\"2001:db8::12\"} 0\n",
           "# TYPE sluice_backend_probe_rtt_seconds gauge\n"
           "sluice_backend_probe_rtt_seconds{vip=\"web\",backend=\"10.0.0.11\"} 0.00035\n"
           "# HELP",  // no sample for the backend without an RTT
           "sluice_vip_panic{vip=\"web\"} 0\n",
           // Probe metrics: counters and the latest RTT of probed backends
           // only; the health state whatever the drain state.
           "# HELP sluice_backend_probe_successes_total Health probes of the backend that "
           "succeeded.\n"
           "# TYPE sluice_backend_probe_successes_total counter\n"
           "sluice_backend_probe_successes_total{vip=\"web\",backend=\"10.0.0.11\"} 1520\n"
           "sluice_backend_probe_successes_total{vip=\"web\",backend=\"2001:db8::12\"} 0\n"
           "# HELP",
           "# TYPE sluice_backend_probe_failures_total counter\n"
           "sluice_backend_probe_failures_total{vip=\"web\",backend=\"10.0.0.11\"} 3\n"
           "sluice_backend_probe_failures_total{vip=\"web\",backend=\"2001:db8::12\"} 7\n"
           "# HELP",
           "# TYPE sluice_backend_probe_last_rtt_seconds gauge\n"
           "sluice_backend_probe_last_rtt_seconds{vip=\"web\",backend=\"10.0.0.11\"} 0.00041\n"
           "# HELP",
           "sluice_backend_health{vip=\"web\",backend=\"2001:db8::12\",state=\"down\"} 1\n",
           "sluice_backend_health{vip=\"web\",backend=\"10.0.0.13\",state=\"up\"} 0\n"
           "sluice_backend_health{vip=\"web\",backend=\"10.0.0.13\",state=\"down\"} 0\n"
           "sluice_backend_health{vip=\"web\",backend=\"10.0.0.13\",state=\"unchecked\"} 1\n",
           "sluice_backend_state{vip=\"web\",backend=\"10.0.0.13\",state=\"draining\"} 1\n",
           "sluice_vip_backends_up{vip=\"web\"} 1\n",
       }) {
    EXPECT_TRUE(contains(m, part)) << "missing:\n" << part << "\nin:\n" << m;
  }
  // Every sample line belongs to the family announced just before it.
  std::string family;
  size_t pos = 0;
  while (pos < m.size()) {
    const size_t nl = m.find('\n', pos);
    ASSERT_NE(nl, std::string::npos) << "the text must end in a newline";
    const std::string line = m.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("# HELP ", 0) != 0) {
      EXPECT_EQ(line.substr(0, family.size()), family) << line;
    }
  }
}

TEST(Metrics, NeverThrowsOnOddInput) {
  for (const json& j : {json(), json(1), json::array(), json::parse(R"({"vips": "x"})"),
                        json::parse(R"({"backends": [null, 1, {"vip": 3, "weight": "x"}]})"),
                        json::parse(R"({"global": {"drops": [1, 2]}})")}) {
    std::string m;
    EXPECT_NO_THROW(m = render_metrics(j, j, j));
    EXPECT_TRUE(contains(m, "# TYPE sluice_rx_packets_total counter\n"));
  }
}

TEST(Metrics, FromHandlerAsksTheSameCommands) {
  const std::string m = render_metrics_from([](const json& r) -> json {
    const std::string cmd = r["cmd"];
    if (cmd == "stats") return {{"ok", true}, {"result", kStats}};
    if (cmd == "backends") return {{"ok", true}, {"result", kBackends}};
    if (cmd == "vips") return make_error_response("internal", "not now");
    return make_error_response("unknown_command", cmd);
  });
  EXPECT_EQ(m, render_metrics(kStats, kBackends, json::object()) +
                   render_cache_metrics(json::object()));
}

const json kCache = json::parse(R"({"vips": [{"name": "mc", "vip_id": 3, "hits": 90, "misses": 10,
  "hit_ratio": 0.9, "fills": 4, "stale_fills": 1, "invalidations": 2, "vip_invalidations": 0,
  "evictions": 1, "entries": 3, "bytes": 300, "hot_reports": 5, "bypassed": 0}], "hottest": []})");

TEST(Metrics, CacheFamilies) {
  const std::string m = render_cache_metrics(kCache);
  EXPECT_TRUE(contains(m, "# TYPE sluice_cache_hits_total counter\n"));
  EXPECT_TRUE(contains(m, "sluice_cache_hits_total{vip=\"mc\"} 90\n"));
  EXPECT_TRUE(contains(m, "sluice_cache_bytes{vip=\"mc\"} 300\n"));
  EXPECT_NO_THROW((void)render_cache_metrics(json::parse(R"({"vips": [1, null]})")));
}

// Two cached VIPs and 13 hottest keys, most hits first: quotes,
// backslashes, a newline (not a memcached key byte, but the format's third
// escape), bytes that are not UTF-8, a key of a VIP not listed.
json cache_with_hottest() {
  json c = json::parse(R"({"vips": [{"name": "mc", "vip_id": 3, "hits": 90},
    {"name": "mc6", "vip_id": 4, "hits": 7}]})");
  json& hot = c["hottest"] = json::array();
  const auto key = [&hot](uint32_t vip_id, std::string k, uint64_t hits) {
    hot.push_back({{"vip_id", vip_id},
                   {"key", std::move(k)},
                   {"hits", hits},
                   {"value_bytes", 5},
                   {"ttl_ms", 900}});
  };
  key(3, "user:\"1\"", 500);
  key(9, "gone", 450);  // its VIP is not listed: left out
  key(3, "path\\to", 400);
  key(4, "line\nbreak", 300);
  key(3, "caf\xc3\xa9", 250);  // UTF-8: as is
  key(3, "bad\xff\xfe", 200);  // not UTF-8: U+FFFD each
  key(3, "bad\xff\xfd", 190);  // reads as the one before: left out
  key(3, "surrogate\xed\xa0\x80", 180);
  for (const char* k : {"k0", "k1", "k2", "k3", "k4"})
    key(4, k, 100 - static_cast<uint64_t>(k[1] - '0'));
  return c;
}

TEST(Metrics, HottestKeysAreBoundedAndEscaped) {
  const std::string m = render_cache_metrics(cache_with_hottest());
  const std::string head = "# TYPE sluice_cache_key_hits gauge\n";
  const size_t at = m.find(head);
  ASSERT_NE(at, std::string::npos) << m;
  const std::string want =
      head +
      "sluice_cache_key_hits{vip=\"mc\",key=\"user:\\\"1\\\"\"} 500\n"
      "sluice_cache_key_hits{vip=\"mc\",key=\"path\\\\to\"} 400\n"
      "sluice_cache_key_hits{vip=\"mc6\",key=\"line\\nbreak\"} 300\n"
      "sluice_cache_key_hits{vip=\"mc\",key=\"caf\xc3\xa9\"} 250\n"
      "sluice_cache_key_hits{vip=\"mc\",key=\"bad\xef\xbf\xbd\xef\xbf\xbd\"} 200\n"
      "sluice_cache_key_hits{vip=\"mc\",key=\"surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} "
      "180\n"
      "sluice_cache_key_hits{vip=\"mc6\",key=\"k0\"} 100\n"
      "sluice_cache_key_hits{vip=\"mc6\",key=\"k1\"} 99\n"
      "sluice_cache_key_hits{vip=\"mc6\",key=\"k2\"} 98\n"
      "sluice_cache_key_hits{vip=\"mc6\",key=\"k3\"} 97\n";
  EXPECT_EQ(m.substr(at), want) << "at most " << kMaxCacheKeySeries << " series, k4 left out";
  EXPECT_TRUE(contains(m, "# HELP sluice_cache_key_hits "));
  // Without hottest keys: the family's header alone.
  EXPECT_TRUE(render_cache_metrics(kCache).ends_with(head));
  EXPECT_NO_THROW((void)render_cache_metrics(
      json::parse(R"({"vips": [{"name": "x", "vip_id": 1}], "hottest": [1, {"vip_id": 1},
        {"vip_id": -1, "key": "a", "hits": 1}, {"vip_id": 1, "key": 5, "hits": 1}]})")));
}

// promtool (Debian's `prometheus` package) parses and lints the text.
TEST(Metrics, PromtoolAccepts) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    if (require_privileges()) FAIL() << "promtool is not installed (package prometheus)";
    GTEST_SKIP() << "promtool is not installed (package prometheus)";
  }
  for (const auto& [name, text] :
       {std::pair<const char*, std::string>{
            "full", render_metrics(kStats, kBackends, kVips) + render_cache_metrics(kCache)},
        {"hottest_keys", render_cache_metrics(cache_with_hottest())},
        {"empty", render_metrics(json(), json(), json())}}) {
    SCOPED_TRACE(name);
    const std::string path = testing::TempDir() + "sluice_metrics_" + name + ".txt";
    std::ofstream(path) << text;
    const std::string cmd = "promtool check metrics < " + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_EQ(out, "");
    std::remove(path.c_str());
  }
}

// --- the HTTP server ---------------------------------------------------------

TEST(MetricsServer, RejectsBadListenAddresses) {
  asio::io_context io;
  for (const char* listen : {"", "nonsense", "127.0.0.1", "[::1]80", "127.0.0.1:99999",
                             "127.0.0.1:", "::1:80", "localhost:80", "[::1:80"}) {
    SCOPED_TRACE(listen);
    MetricsServerOptions o;
    o.listen = listen;
    auto s = MetricsServer::open(io, o, [] { return std::string(); });
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, -EINVAL);
  }
}

// Moves this test process into a network namespace of its own with `lo`
// up, once: the server tests never touch the machine's own loopback.
bool enter_private_netns(std::string* why) {
  static int state = 0;  // 0 not tried, 1 in, -1 failed
  static std::string reason;
  if (state == 0) {
    state = -1;
    if (::unshare(CLONE_NEWNET) != 0) {
      reason = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    } else {
      const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
      if (fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0) state = 1;
      }
      if (state != 1) reason = std::string("bringing lo up: ") + std::strerror(errno);
      if (fd >= 0) ::close(fd);
    }
  }
  *why = reason;
  return state == 1;
}

// Sends `request` to 127.0.0.1:port and returns everything until the
// server closes (10 s receive timeout as a safety net).
std::string http(uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class MetricsServerTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (::geteuid() != 0 || !enter_private_netns(&why)) {
      if (why.empty()) why = "not root";
      if (require_privileges()) FAIL() << "metrics server tests need a network namespace: " << why;
      GTEST_SKIP() << "metrics server tests need a network namespace of their own: " << why;
    }
  }

  void start(MetricsServerOptions o) {
    o.listen = "127.0.0.1:0";
    auto s = MetricsServer::open(io_, o, [] { return render_metrics(kStats, kBackends, kVips); });
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(s.value());
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<MetricsServer> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TEST_F(MetricsServerTest, ServesMetricsAndNothingElse) {
  start({});
  const std::string body = render_metrics(kStats, kBackends, kVips);
  const std::string ok = http(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  EXPECT_EQ(http(port_, "HEAD /metrics HTTP/1.0\r\n\r\n").find("HTTP/1.1 200 OK\r\n"), 0u);
  EXPECT_EQ(http(port_, "HEAD /metrics HTTP/1.0\r\n\r\n").find("sluice_"), std::string::npos);
  EXPECT_EQ(http(port_, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").find("HTTP/1.1 200 OK\r\n"), 0u);
  EXPECT_EQ(http(port_, "GET / HTTP/1.1\r\n\r\n").find("HTTP/1.1 404 Not Found\r\n"), 0u);
  EXPECT_EQ(
      http(port_, "POST /metrics HTTP/1.1\r\n\r\n").find("HTTP/1.1 405 Method Not Allowed\r\n"),
      0u);
  EXPECT_EQ(http(port_, "hello\r\n\r\n").find("HTTP/1.1 400 Bad Request\r\n"), 0u);
  EXPECT_EQ(http(port_, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n")
                .find("HTTP/1.1 400 Bad Request\r\n"),
            0u);
}

TEST_F(MetricsServerTest, StalledRequestIsClosed) {
  MetricsServerOptions o;
  o.request_timeout = std::chrono::milliseconds(100);
  start(o);
  // No blank line ever comes: the server gives up and closes, unanswered.
  EXPECT_EQ(http(port_, "GET /metrics HTTP/1.1\r\n"), "");
}

}  // namespace
}  // namespace sluice
