// SPDX-License-Identifier: BSD-2-Clause
// `sluice ctl` against a fake daemon (the real socket server with a canned
// handler): requests sent, tables and JSON printed, exit codes, and `top`'s
// rates.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "control/ctl_render.hpp"
#include "control/socket_server.hpp"

namespace sluice {
namespace {

using nlohmann::json;

const json kStatus = json::parse(R"({
  "version": "0.1.0", "pid": 4711, "uptime_s": 3723, "config": "/etc/sluice/sluice.toml",
  "config_generation": 3,
  "fastpaths": [{"kind": "xdp", "interface": "veth0", "ifindex": 7, "mode": "native",
                 "prog_id": 42, "reused_pinned_maps": true, "next_hop_problem": ""},
                {"kind": "xdp", "interface": "veth1", "ifindex": 8, "mode": "native",
                 "prog_id": 43, "reused_pinned_maps": false,
                 "next_hop_problem": "backend 10.93.0.2: egress lb1 cannot transmit XDP frames"}],
  "vips": 2, "backends": 3, "backends_up": 2, "vips_in_panic": ["dns"]})");

const json kVips = json::parse(R"({"vips": [
  {"name": "web", "address": "192.0.2.1", "port": 80, "protocol": "tcp", "policy": "static",
   "hash": "5-tuple", "table_size": 65537, "backends": 2, "backends_up": 2, "panic": false},
  {"name": "dns", "address": "2001:db8::53", "port": 53, "protocol": "udp", "policy": "fastest",
   "hash": "source", "table_size": 251, "backends": 1, "backends_up": 0, "panic": true}]})");

const json kBackends = json::parse(R"({"backends": [
  {"vip": "web", "backend": "10.0.0.11", "state": "up", "weight": 100, "effective_weight": 100,
   "table_entries": 32769, "rtt_us": 350.4, "active_flows": 12, "last_check": "ok"},
  {"vip": "web", "backend": "10.0.0.12", "state": "draining", "weight": 0, "effective_weight": 0,
   "table_entries": 0, "rtt_us": 1520, "active_flows": 3, "last_check": "ok"},
  {"vip": "dns", "backend": "2001:db8::13", "state": "down", "weight": 100,
   "effective_weight": 100, "table_entries": 251, "rtt_us": null, "active_flows": null,
   "last_check": "connect: connection refused"}]})");

// The fake daemon: canned answers, and `stats` counters that grow by a
// fixed step per read with time_ns one second apart, so rates are exact.
class FakeDaemon {
 public:
  json handle(const json& request) {
    std::lock_guard lock(mu_);
    last_request_ = request;
    const std::string cmd = request["cmd"];
    if (cmd == "status") return ok(kStatus);
    if (cmd == "vips") return ok(kVips);
    if (cmd == "backends") {
      if (!request.contains("vip")) return ok(kBackends);
      json out{{"backends", json::array()}};
      for (const json& b : kBackends["backends"]) {
        if (b["vip"] == request["vip"]) out["backends"].push_back(b);
      }
      if (out["backends"].empty()) return not_found(request["vip"]);
      return ok(out);
    }
    if (cmd == "stats") return ok(stats(++stats_reads_));
    if (cmd == "drain" || cmd == "set-weight" || cmd == "remove-backend" || cmd == "add-backend") {
      if (request["vip"] != "web") return not_found(request["vip"]);
      return ok({{"entries_moved", 21845}});
    }
    if (cmd == "add-vip")
      return ok({{"vip", request["vip"].value("name", "?")}, {"entries_moved", 0}});
    if (cmd == "remove-vip") return ok(json::object());
    if (cmd == "reload") {
      return make_error_response("invalid",
                                 "/etc/sluice/sluice.toml:7:10: vips[0].port: expected an integer "
                                 "0..65535, got 70000");
    }
    return make_error_response("unknown_command", "unknown command");
  }

  json last_request() {
    std::lock_guard lock(mu_);
    return last_request_;
  }

  static json stats(uint64_t n) {
    return {{"time_ns", n * 1000000000ull},
            {"global",
             {{"rx_packets", 3000 * n},
              {"rx_bytes", 300000 * n},
              {"tx_packets", 2990 * n},
              {"pass_packets", 0},
              {"flow_hits", 2900 * n},
              {"flow_misses", 100 * n},
              {"flow_insert_failed", 0},
              {"icmp_too_big_sent", 0},
              {"drops", {{"truncated", 4 * n}, {"bad_l2", 0}, {"no_backend", 6 * n}}}}},
            {"vips",
             {{{"name", "web"},
               {"packets", 2000 * n},
               {"bytes", 200000 * n},
               {"new_flows", 20 * n},
               {"drops", 0}},
              {{"name", "dns"},
               {"packets", 1000 * n},
               {"bytes", 100000 * n},
               {"new_flows", 50 * n},
               {"drops", 6 * n}}}},
            {"backends",
             {{{"vip", "web"},
               {"backend", "10.0.0.11"},
               {"packets", 1500 * n},
               {"bytes", 150000 * n},
               {"new_flows", 20 * n}},
              {{"vip", "web"},
               {"backend", "10.0.0.12"},
               {"packets", 500 * n},
               {"bytes", 50000 * n},
               {"new_flows", 0}}}},
            {"flow_table", {{"capacity", 65536}, {"probation_capacity", 16384}}}};
  }

 private:
  static json ok(const json& result) { return {{"ok", true}, {"result", result}}; }
  static json not_found(const json& vip) {
    return make_error_response("not_found", "no VIP named " + vip.dump());
  }

  std::mutex mu_;
  json last_request_;
  uint64_t stats_reads_ = 0;
};

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class CtlTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice_ctl_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    SocketServerOptions options;
    options.path = dir_ + "/ctl.sock";
    auto opened =
        SocketServer::open(io_, options, [this](const json& r) { return daemon_.handle(r); });
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    server_ = std::move(opened.value());
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    ::unlink((dir_ + "/stderr").c_str());
    ::unlink((dir_ + "/vip.toml").c_str());
    ::rmdir(dir_.c_str());
  }

  // Runs `sluice ctl --socket <fake> ARGS`.
  Outcome ctl(const std::string& args) { return run("ctl --socket " + dir_ + "/ctl.sock " + args); }

  Outcome run(const std::string& args) {
    const std::string err_path = dir_ + "/stderr";
    const std::string cmd = std::string(SLUICE_BIN) + " " + args + " 2>" + err_path + " </dev/null";
    Outcome r;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = read_file(err_path);
    return r;
  }

  std::string dir_;
  FakeDaemon daemon_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<SocketServer> server_;
  std::thread thread_;
};

TEST_F(CtlTest, Status) {
  const Outcome r = ctl("status");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "sluice 0.1.0, pid 4711, up 1h02m03s\n"
            "config      /etc/sluice/sluice.toml (generation 3)\n"
            "fast path   xdp on veth0 (ifindex 7, native, prog 42, reused pinned maps)\n"
            "fast path   xdp on veth1 (ifindex 8, native, prog 43)\n"
            "next hops   backend 10.93.0.2: egress lb1 cannot transmit XDP frames\n"
            "VIPs        2 (in panic: dns)\n"
            "backends    3, 2 up\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(CtlTest, VipsTable) {
  const Outcome r = ctl("vips");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME  ADDRESS       PORT  PROTO  POLICY   HASH     TABLE  BACKENDS  UP  PANIC\n"
            "web   192.0.2.1       80  tcp    static   5-tuple  65537         2   2  no\n"
            "dns   2001:db8::53    53  udp    fastest  source     251         1   0  PANIC\n");
}

TEST_F(CtlTest, BackendsOfOneVip) {
  const Outcome r = ctl("backends --vip web");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(daemon_.last_request()["vip"], "web");
  EXPECT_EQ(r.out,
            "VIP  BACKEND    STATE     WEIGHT  EFFECTIVE  ENTRIES     RTT  FLOWS  LAST CHECK\n"
            "web  10.0.0.11  up           100        100    32769   350us     12  ok\n"
            "web  10.0.0.12  draining       0          0        0  1.52ms      3  ok\n");
}

TEST_F(CtlTest, JsonPrintsTheRawResult) {
  for (const char* args : {"--json vips", "vips --json"}) {
    SCOPED_TRACE(args);
    const Outcome r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), kVips);
  }
}

TEST_F(CtlTest, StatsTable) {
  const Outcome r = ctl("stats");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("COUNTER              TOTAL\nrx_packets            3000\n"),
            std::string::npos)
      << r.out;
  // Drop reasons come in name order.
  EXPECT_NE(r.out.find("DROP REASON  TOTAL\nbad_l2           0\nno_backend       6\n"
                       "truncated        4\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("VIP  PACKETS   BYTES  NEW FLOWS  DROPS\n"
                       "web     2000  200000         20      0\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("flow table: 65536 entries over all CPUs, 16384 on probation\n"),
            std::string::npos)
      << r.out;
}

TEST_F(CtlTest, ChangesSendTheirArguments) {
  Outcome r = ctl("drain web 10.0.0.11");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "drained 10.0.0.11 of web: 21845 table entries moved\n");
  json req = daemon_.last_request();
  EXPECT_EQ(req["cmd"], "drain");
  EXPECT_EQ(req["backend"], "10.0.0.11");
  EXPECT_FALSE(req.contains("force")) << "only --force sends it";

  for (const char* forced : {"drain web 10.0.0.11 --force", "remove-backend --force web 10.0.0.11",
                             "set-weight web 10.0.0.11 0 --force"}) {
    r = ctl(forced);
    EXPECT_EQ(r.code, 0) << forced << ": " << r.err;
    EXPECT_EQ(daemon_.last_request()["force"], true) << forced;
  }

  r = ctl("set-weight web 10.0.0.11 250");
  EXPECT_EQ(r.code, 0) << r.err;
  req = daemon_.last_request();
  EXPECT_EQ(req["weight"], 250);
  EXPECT_TRUE(req["weight"].is_number_integer());

  r = ctl("add-backend web 10.0.0.13 --weight 50 --health-check web");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(daemon_.last_request()["backend"],
            json({{"address", "10.0.0.13"}, {"weight", 50}, {"health_check", "web"}}));

  r = ctl(
      "add-vip --name api --address 192.0.2.2 --port 443 --backend 10.0.1.1 --backend 10.0.1.2");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "added VIP api\n");
  EXPECT_EQ(daemon_.last_request()["vip"],
            json::parse(R"({"name": "api", "address": "192.0.2.2", "port": 443,
                            "backends": [{"address": "10.0.1.1"}, {"address": "10.0.1.2"}]})"));
}

TEST_F(CtlTest, AddVipFromTomlSnippet) {
  std::ofstream(dir_ + "/vip.toml")
      << "[[vips]]\nname = \"api\"\naddress = \"192.0.2.2\"\n"
         "port = 443\npolicy = \"least-conn\"\n"
         "[[vips.backends]]\naddress = \"10.0.1.1\"\ncapacity = 500\n";
  const Outcome r = ctl("add-vip --from " + dir_ + "/vip.toml --port 8443");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(daemon_.last_request()["vip"],
            json::parse(R"({"name": "api", "address": "192.0.2.2", "port": 8443,
                            "policy": "least-conn",
                            "backends": [{"address": "10.0.1.1", "capacity": 500}]})"));
}

TEST_F(CtlTest, DaemonErrorExits1) {
  Outcome r = ctl("drain nope 10.0.0.11");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sluice ctl: not_found: no VIP named \"nope\"\n");

  r = ctl("reload");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sluice ctl: invalid: /etc/sluice/sluice.toml:7:10: vips[0].port: expected an integer "
            "0..65535, got 70000\n");

  r = ctl("--json backends --vip nope");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "not_found");
}

TEST_F(CtlTest, UsageErrorsExit2) {
  for (const char* args :
       {"", "bogus", "set-weight web 10.0.0.11", "set-weight web 10.0.0.11 70000", "drain web",
        "add-vip --port 80", "add-vip --address 192.0.2.9 --protocol sctp"}) {
    SCOPED_TRACE(args);
    EXPECT_EQ(ctl(args).code, 2);
  }
}

TEST_F(CtlTest, NoDaemonExits3) {
  const Outcome r = run("ctl --socket " + dir_ + "/nobody-here.sock status");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("cannot connect to " + dir_ + "/nobody-here.sock"), std::string::npos)
      << r.err;
}

TEST_F(CtlTest, TopPrintsRatesPerFrame) {
  const Outcome r = ctl("top --iterations 2 --interval 0.01");
  EXPECT_EQ(r.code, 0) << r.err;
  // Not a terminal: no screen clearing, frames one after another.
  EXPECT_EQ(r.out.find('\033'), std::string::npos);
  const std::string frame =
      "sluice top: interval 1.0 s, rx 3000 pkt/s, tx 2990 pkt/s, drops 10.0/s\n"
      "\n"
      "VIP  PKT/S  NEW FLOWS/S  DROPS/S\n"
      "web   2000         20.0        0\n"
      "dns   1000         50.0      6.0\n"
      "\n"
      "VIP  BACKEND    STATE     WEIGHT  EFFECTIVE  PKT/S  NEW FLOWS/S  FLOWS     RTT\n"
      "web  10.0.0.11  up           100        100   1500         20.0     12   350us\n"
      "web  10.0.0.12  draining       0          0    500            0      3  1.52ms\n"
      "\n"
      "DROP REASON  DROPS/S\n"
      "no_backend       6.0\n"
      "truncated        4.0\n";
  EXPECT_EQ(r.out, frame + "\n" + frame);
}

TEST(CtlRender, TableAlignsNumbersRight) {
  EXPECT_EQ(render_table({"NAME", "N"}, {{"a", "1"}, {"bbb", "100"}, {"c", "-"}}),
            "NAME    N\n"
            "a       1\n"
            "bbb   100\n"
            "c       -\n");
  EXPECT_EQ(render_table({"A", "B"}, {}), "A  B\n");
}

TEST(CtlRender, StatsShowFlowTableOccupancyWhenCounted) {
  json r{{"flow_table", {{"capacity", 10}, {"probation_capacity", 2}, {"active_flows", 7}}}};
  EXPECT_NE(render_stats(r).find("flow table: 10 entries over all CPUs, 2 on probation; 7 "
                                 "established flows in use (last count)\n"),
            std::string::npos)
      << render_stats(r);
  r["flow_table"]["active_flows"] = nullptr;
  EXPECT_NE(render_stats(r).find("2 on probation\n"), std::string::npos) << render_stats(r);
}

TEST(CtlRender, StatusShowsAnnouncementsAndBirdSessions) {
  const json bgp = json::parse(R"({"announce": true, "table": 4242, "device": "sluice-vips",
    "instance_drained": false, "routes": ["10.0.0.1"], "bird": "running",
    "vips": [{"name": "web", "address": "10.0.0.1", "servable": true, "announced": true},
             {"name": "dns", "address": "10.0.0.2", "servable": false, "announced": false}],
    "sessions": [{"name": "uplink", "protocol": "BGP", "state": "up", "info": "Established"},
                 {"name": "bfd1", "protocol": "BFD", "state": "up", "info": ""}]})");
  const std::string text = render_status(json{{"bgp", bgp}});
  EXPECT_NE(text.find("BGP         table 4242 via sluice-vips\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  VIP       web 10.0.0.1: announced\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  VIP       dns 10.0.0.2: withdrawn (no servable backend)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  session   uplink (BGP): up, Established\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  session   bfd1 (BFD): up\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("  BIRD"), std::string::npos) << text;
  json aged = bgp;
  aged["bird_age_ms"] = 420;
  const std::string a = render_status(json{{"bgp", aged}});
  EXPECT_NE(a.find("  BIRD      read 420 ms ago\n"), std::string::npos) << a;

  json drained = bgp;
  drained["instance_drained"] = true;
  drained["bird"] = "unknown";
  drained["bird_error"] = "/run/bird.ctl: No such file or directory";
  const std::string d = render_status(json{{"bgp", drained}});
  EXPECT_NE(d.find("INSTANCE DRAINED"), std::string::npos) << d;
  EXPECT_NE(d.find("  session   unknown (BIRD: /run/bird.ctl: No such file or directory)\n"),
            std::string::npos)
      << d;
  EXPECT_EQ(render_instance_drain(json::parse(R"({"instance_drained": true, "announced": []})")),
            "instance drained; announced: nothing\n");
  EXPECT_EQ(render_instance_drain(
                json::parse(R"({"instance_drained": false, "announced": ["10.0.0.1"]})")),
            "instance undrained; announced: 10.0.0.1\n");
  EXPECT_EQ(render_instance_drain(json::parse(
                R"({"instance_drained": false, "announced": [], "announce_delay_ms": 2000})")),
            "instance undrained; announced: nothing yet (servable VIPs follow after the 2000 ms "
            "hold-down)\n");
}

// The `cache` result's hottest keys (XDP and DPDK alike), by VIP name.
TEST(CtlRender, CacheShowsTheHottestKeys) {
  const json r = json::parse(R"({"vips": [{"name": "mc", "vip_id": 3, "hits": 12, "misses": 4,
    "hit_ratio": 0.75, "fills": 2, "invalidations": 0, "vip_invalidations": 0, "evictions": 0,
    "entries": 2, "bytes": 20}],
    "hottest": [{"vip_id": 3, "key": "user:\"1\"", "hits": 9, "value_bytes": 5, "ttl_ms": 800},
                {"vip_id": 7, "key": "k", "hits": 3, "value_bytes": 1, "ttl_ms": 0}]})");
  EXPECT_EQ(
      render_cache(r),
      "VIP  HITS  MISSES  HIT RATIO  FILLS  INVALIDATED  VIP INVALIDATED  EVICTED  ENTRIES  "
      "BYTES\n"
      "mc     12       4  75.0%          2            0                0        0        2     "
      "20\n"
      "\nhottest keys:\n"
      "VIP  KEY       HITS  VALUE BYTES  TTL MS\n"
      "mc   user:\"1\"     9            5     800\n"
      "7    k            3            1       0\n");
}

TEST(CtlRender, SurvivesUnexpectedShapes) {
  for (const json& j : {json(), json(42), json::array(), json::parse(R"({"vips": 7})"),
                        json::parse(R"({"backends": [1, "x", null]})")}) {
    EXPECT_NO_THROW({
      (void)render_status(j);
      (void)render_vips(j);
      (void)render_backends(j);
      (void)render_stats(j);
      (void)render_top(j, j, j);
      (void)render_status(json{{"bgp", j}});
      (void)render_instance_drain(j);
      (void)render_cache(j);
    });
  }
}

}  // namespace
}  // namespace sluice
