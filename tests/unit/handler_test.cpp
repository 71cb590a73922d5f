// SPDX-License-Identifier: BSD-2-Clause
// The control-socket request handler over a Balancer with a fake fast
// path: every command's result and every error code it gives.
#include "control/handler.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "tests/unit/fake_fastpath.hpp"

namespace sluice::test {
namespace {

using control::Balancer;
using nlohmann::json;

constexpr const char* kConfig = R"(
[xdp]
interfaces = ["veth0"]
encap_source_v4 = "192.0.2.10"
[health_checks.hc]
type = "tcp"
[[vips]]
name = "web"
address = "198.51.100.1"
port = 80
table_size = 251
[[vips.backends]]
address = "10.0.0.1"
health_check = "hc"
[[vips.backends]]
address = "10.0.0.2"
)";

// A temporary config file, removed on destruction.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/sluice-handler-XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    write(text);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  void write(const std::string& text) const { std::ofstream(path_) << text; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Handler : public testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::unique_ptr<control::Fastpath>> fps;
    fps.push_back(std::make_unique<FakeFastpath>(held_));
    auto cfg = parse_config(kConfig, "t.toml");
    ASSERT_TRUE(cfg.ok());
    auto b = Balancer::create(*cfg.config, std::move(fps));
    ASSERT_TRUE(b.ok());
    b_.emplace(std::move(b.value()));
    ASSERT_TRUE(b_->publish().ok());
    ctx_.version = "0.1.0";
    ctx_.pid = 1234;
    ctx_.started = std::chrono::steady_clock::now();
    ctx_.config_path = file_.path();
    ctx_.on_change = [this](std::string_view what, const control::PublishReport&) {
      changes_.emplace_back(what);
    };
  }

  json call(const json& req) { return control::handle_request(*b_, ctx_, req); }
  // The result of a request that must succeed.
  json ok(const json& req) {
    const json r = call(req);
    EXPECT_EQ(r.value("ok", false), true) << req.dump() << " -> " << r.dump();
    return r.value("result", json());
  }
  // The error code of a request that must fail.
  std::string code(const json& req) {
    const json r = call(req);
    EXPECT_EQ(r.value("ok", true), false) << req.dump() << " -> " << r.dump();
    EXPECT_TRUE(r["error"]["message"].is_string()) << r.dump();
    return r["error"].value("code", "");
  }

  std::vector<control::BackendView> list_web() const {
    auto r = b_->backends("web");
    return r.ok() ? r.value() : std::vector<control::BackendView>{};
  }

  std::shared_ptr<FakeHeld> held_ = std::make_shared<FakeHeld>();
  std::optional<Balancer> b_;
  TempFile file_{kConfig};
  control::HandlerContext ctx_;
  std::vector<std::string> changes_;
};

TEST_F(Handler, Status) {
  const json r = ok({{"cmd", "status"}});
  EXPECT_EQ(r["version"], "0.1.0");
  EXPECT_EQ(r["pid"], 1234);
  EXPECT_EQ(r["uptime_s"], 0);
  EXPECT_EQ(r["config"], file_.path());
  EXPECT_EQ(r["config_generation"], 2);
  EXPECT_EQ(r["vips"], 1);
  EXPECT_EQ(r["backends"], 2);
  EXPECT_EQ(r["backends_up"], 2);
  EXPECT_EQ(r["vips_in_panic"], json::array());
  ASSERT_EQ(r["fastpaths"].size(), 1u);
  EXPECT_EQ(r["fastpaths"][0]["kind"], "fake");
  EXPECT_EQ(r["fastpaths"][0]["interface"], "fake0");
  EXPECT_EQ(r["fastpaths"][0]["prog_id"], 42);
}

TEST_F(Handler, IdIsEchoedOnSuccessAndError) {
  json r = call({{"cmd", "vips"}, {"id", "a1"}});
  EXPECT_EQ(r["id"], "a1");
  r = call({{"cmd", "nope"}, {"id", 7}});
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["error"]["code"], "unknown_command");
  EXPECT_FALSE(call({{"cmd", "vips"}}).contains("id"));
}

TEST_F(Handler, Vips) {
  const json r = ok({{"cmd", "vips"}});
  ASSERT_EQ(r["vips"].size(), 1u);
  const json& v = r["vips"][0];
  EXPECT_EQ(v["name"], "web");
  EXPECT_EQ(v["address"], "198.51.100.1");
  EXPECT_EQ(v["port"], 80);
  EXPECT_EQ(v["protocol"], "tcp");
  EXPECT_EQ(v["policy"], "static");
  EXPECT_EQ(v["hash"], "5-tuple");
  EXPECT_EQ(v["table_size"], 251);
  EXPECT_EQ(v["backends"], 2);
  EXPECT_EQ(v["backends_up"], 2);
  EXPECT_EQ(v["panic"], false);
}

TEST_F(Handler, Backends) {
  ASSERT_TRUE(b_->set_backend_health("web", IpAddress::parse("10.0.0.1").value(),
                                     control::Health::kDown, 250.5, "connection refused")
                  .ok());
  ASSERT_TRUE(b_->publish().ok());
  const json r = ok({{"cmd", "backends"}, {"vip", "web"}});
  ASSERT_EQ(r["backends"].size(), 2u);
  const json& a = r["backends"][0];
  EXPECT_EQ(a["vip"], "web");
  EXPECT_EQ(a["backend"], "10.0.0.1");
  EXPECT_EQ(a["state"], "down");
  EXPECT_EQ(a["weight"], 100);
  EXPECT_EQ(a["effective_weight"], 0);
  EXPECT_EQ(a["table_entries"], 0);
  EXPECT_EQ(a["rtt_us"], 250.5);
  EXPECT_TRUE(a["active_flows"].is_null());
  EXPECT_EQ(a["last_check"], "connection refused");
  const json& b = r["backends"][1];
  EXPECT_EQ(b["state"], "unchecked");
  EXPECT_EQ(b["table_entries"], 251);
  EXPECT_TRUE(b["rtt_us"].is_null());
  EXPECT_TRUE(b["last_check"].is_null());
  EXPECT_EQ(ok({{"cmd", "backends"}})["backends"].size(), 2u);
  EXPECT_EQ(code({{"cmd", "backends"}, {"vip", "nope"}}), "not_found");
  EXPECT_EQ(code({{"cmd", "backends"}, {"vip", 3}}), "bad_request");
}

// The checker's counters reach `backends`; a call without counters keeps
// them; a draining backend still says what its probes say.
TEST_F(Handler, BackendsProbeCounters) {
  const IpAddress a1 = IpAddress::parse("10.0.0.1").value();
  json r = ok({{"cmd", "backends"}, {"vip", "web"}});
  EXPECT_TRUE(r["backends"][0]["probes_ok"].is_null()) << "not probed yet";
  EXPECT_TRUE(r["backends"][0]["last_rtt_us"].is_null());
  EXPECT_EQ(r["backends"][0]["health"], "up");
  EXPECT_EQ(r["backends"][1]["health"], "unchecked");
  ASSERT_TRUE(b_->set_backend_health("web", a1, control::Health::kUp, 300.0, "ok",
                                     control::ProbeCounters{41, 2, 280.0})
                  .ok());
  ASSERT_TRUE(b_->set_backend_health("web", a1, control::Health::kDown, 300.0, "timeout").ok());
  ok({{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.1"}});
  r = ok({{"cmd", "backends"}, {"vip", "web"}});
  const json& b = r["backends"][0];
  EXPECT_EQ(b["state"], "draining");
  EXPECT_EQ(b["health"], "down");
  EXPECT_EQ(b["probes_ok"], 41);
  EXPECT_EQ(b["probes_failed"], 2);
  EXPECT_EQ(b["last_rtt_us"], 280.0);
  EXPECT_EQ(b["rtt_us"], 300.0);
}

// Counts the fast path reported at the last refresh; a backend it did
// not name holds none; unknown again once the fast path cannot count.
TEST_F(Handler, BackendsActiveFlows) {
  const auto list = b_->backends("web");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list.value().size(), 2u);
  held_->active_flows = control::ActiveFlowCounts{{list.value()[0].id, 12}, {999999, 5}};
  ASSERT_TRUE(b_->refresh_active_flows().ok());
  json r = ok({{"cmd", "backends"}, {"vip", "web"}});
  EXPECT_EQ(r["backends"][0]["active_flows"], 12);
  EXPECT_EQ(r["backends"][1]["active_flows"], 0);
  // Occupancy in `stats`: the backends' flows (999999 is no backend).
  EXPECT_EQ(ok({{"cmd", "stats"}})["flow_table"]["active_flows"], 12);

  held_->active_flows.reset();
  const auto s = b_->refresh_active_flows();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EOPNOTSUPP);
  r = ok({{"cmd", "backends"}, {"vip", "web"}});
  EXPECT_TRUE(r["backends"][0]["active_flows"].is_null());
  EXPECT_TRUE(r["backends"][1]["active_flows"].is_null());
  EXPECT_TRUE(ok({{"cmd", "stats"}})["flow_table"]["active_flows"].is_null());
}

TEST_F(Handler, Stats) {
  const uint32_t vip_id = b_->vips()[0].vip_id;
  held_->global.rx_packets = 10;
  held_->global.drops[SLUICE_DROP_NO_BACKEND] = 3;
  held_->vip_stats[vip_id].packets = 9;
  held_->backend_stats[list_web()[1].id].new_flows = 4;
  const json r = ok({{"cmd", "stats"}});
  EXPECT_GT(r["time_ns"].get<uint64_t>(), 0u);
  EXPECT_EQ(r["global"]["rx_packets"], 10);
  EXPECT_EQ(r["global"]["drops"]["no_backend"], 3);
  EXPECT_EQ(r["global"]["drops"].size(), size_t{SLUICE_DROP_MAX} - 1);
  for (const char* k : {"truncated", "bad_l2", "bad_ipv4", "bad_ipv6", "bad_l4", "bad_icmp",
                        "unsupported_l4", "encap_no_room", "too_big", "tx_failed",
                        "too_big_df_clear", "frag_of_dropped"})
    EXPECT_TRUE(r["global"]["drops"].contains(k)) << k;
  EXPECT_EQ(r["vips"][0]["name"], "web");
  EXPECT_EQ(r["vips"][0]["packets"], 9);
  EXPECT_EQ(r["backends"][1]["backend"], "10.0.0.2");
  EXPECT_EQ(r["backends"][1]["new_flows"], 4);
  EXPECT_GE(r["flow_table"]["capacity"].get<uint64_t>(), 65536u);
  EXPECT_TRUE(r["workers"].empty());
}

// A fast path with workers of its own (DPDK) sizes the flow table per
// worker x workers, not per CPU x CPUs, and lists each worker's share.
TEST_F(Handler, StatsOfAFastpathWithWorkers) {
  held_->flow_table_size = control::FlowTableSize{.capacity = 3 * 4096, .probation = 3 * 4096};
  for (unsigned lcore = 1; lcore <= 3; ++lcore) {
    control::WorkerStats w{.lcore = lcore, .flow_capacity = 4096};
    w.global.rx_packets = 100 * lcore;
    w.global.tx_packets = 90 * lcore;
    held_->workers.push_back(w);
  }
  const json r = ok({{"cmd", "stats"}});
  EXPECT_EQ(r["flow_table"]["capacity"], 3 * 4096);
  EXPECT_EQ(r["flow_table"]["probation_capacity"], 3 * 4096);
  ASSERT_EQ(r["workers"].size(), 3u);
  EXPECT_EQ(r["workers"][2]["lcore"], 3);
  EXPECT_EQ(r["workers"][2]["rx_packets"], 300);
  EXPECT_EQ(r["workers"][2]["tx_packets"], 270);
  EXPECT_EQ(r["workers"][0]["flow_capacity"], 4096);
}

TEST_F(Handler, AddAndRemoveVip) {
  const json r = ok({{"cmd", "add-vip"},
                     {"vip",
                      {{"address", "198.51.100.2"},
                       {"port", 53},
                       {"protocol", "udp"},
                       {"table_size", 251},
                       {"backends", {{{"address", "10.0.0.3"}, {"weight", 10}}}}}}});
  EXPECT_EQ(r["vip"], "198.51.100.2:53/udp");
  EXPECT_EQ(r["entries_moved"], 0);
  EXPECT_EQ(held_->vips.size(), 2u);
  EXPECT_EQ(code({{"cmd", "add-vip"}, {"vip", {{"address", "198.51.100.2"}, {"port", 53}, {"protocol", "udp"}}}}),
            "exists");
  EXPECT_EQ(ok({{"cmd", "remove-vip"}, {"vip", "198.51.100.2:53/udp"}}), json::object());
  EXPECT_EQ(held_->vips.size(), 1u);
  EXPECT_EQ(code({{"cmd", "remove-vip"}, {"vip", "198.51.100.2:53/udp"}}), "not_found");
  EXPECT_EQ(changes_.size(), 2u);
}

TEST_F(Handler, BackendCommandsReportEntriesMoved) {
  json r = ok({{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "10.0.0.3"}}}});
  EXPECT_GT(r["entries_moved"].get<int>(), 60);
  r = ok({{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.3"}, {"weight", 200}});
  EXPECT_GT(r["entries_moved"].get<int>(), 0);
  r = ok({{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.3"}});
  EXPECT_GT(r["entries_moved"].get<int>(), 100);
  const json bs = ok({{"cmd", "backends"}, {"vip", "web"}})["backends"];
  EXPECT_EQ(bs[2]["state"], "draining");
  EXPECT_EQ(bs[2]["table_entries"], 0);
  r = ok({{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.3"}});
  EXPECT_EQ(r["entries_moved"], 0) << "a drained backend has no entries left to move";
  EXPECT_EQ(held_->backends.size(), 2u);
}

struct ErrorCase {
  const char* name;
  json request;
  const char* code;
};

TEST_F(Handler, ErrorCodes) {
  const ErrorCase cases[] = {
      {"not an object", json::array({1, 2}), "bad_request"},
      {"no cmd", {{"id", 1}}, "bad_request"},
      {"cmd not a string", {{"cmd", 5}}, "bad_request"},
      {"unknown command", {{"cmd", "explode"}}, "unknown_command"},
      {"add-vip without vip", {{"cmd", "add-vip"}}, "bad_request"},
      {"add-vip vip not an object", {{"cmd", "add-vip"}, {"vip", "x"}}, "bad_request"},
      {"add-vip without port", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}}}}, "bad_request"},
      {"add-vip unknown field", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"colour", "red"}}}}, "bad_request"},
      {"add-vip bad address", {{"cmd", "add-vip"}, {"vip", {{"address", "300.1.1.1"}, {"port", 1}}}}, "invalid"},
      {"add-vip port out of range", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 70000}}}}, "invalid"},
      {"add-vip negative port", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", -1}}}}, "invalid"},
      {"add-vip bad protocol", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"protocol", "sctp"}}}}, "invalid"},
      {"add-vip table size not prime", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"table_size", 1000}}}}, "invalid"},
      {"add-vip table size mistyped", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"table_size", "big"}}}}, "bad_request"},
      {"add-vip same name", {{"cmd", "add-vip"}, {"vip", {{"name", "web"}, {"address", "192.0.2.9"}, {"port", 1}}}}, "exists"},
      {"add-vip cache over tcp", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"cache", true}}}}, "invalid"},
      {"add-vip cache mistyped", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"cache", 1}}}}, "bad_request"},
      {"add-vip backends not an array", {{"cmd", "add-vip"}, {"vip", {{"address", "192.0.2.9"}, {"port", 1}, {"backends", 1}}}}, "bad_request"},
      {"remove-vip without vip", {{"cmd", "remove-vip"}}, "bad_request"},
      {"add-backend without backend", {{"cmd", "add-backend"}, {"vip", "web"}}, "bad_request"},
      {"add-backend to no VIP", {{"cmd", "add-backend"}, {"vip", "nope"}, {"backend", {{"address", "10.0.0.9"}}}}, "not_found"},
      {"add-backend twice", {{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "10.0.0.1"}}}}, "exists"},
      {"add-backend weight too big", {{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "10.0.0.9"}, {"weight", 65536}}}}, "invalid"},
      {"add-backend weight mistyped", {{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "10.0.0.9"}, {"weight", "1"}}}}, "bad_request"},
      {"add-backend unknown check", {{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "10.0.0.9"}, {"health_check", "zz"}}}}, "invalid"},
      {"add-backend v6 without encap source", {{"cmd", "add-backend"}, {"vip", "web"}, {"backend", {{"address", "2001:db8::9"}}}}, "invalid"},
      {"remove-backend missing", {{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.9"}}, "not_found"},
      {"remove-backend no backend field", {{"cmd", "remove-backend"}, {"vip", "web"}}, "bad_request"},
      {"drain no VIP", {{"cmd", "drain"}, {"vip", "nope"}, {"backend", "10.0.0.1"}}, "not_found"},
      {"drain bad address", {{"cmd", "drain"}, {"vip", "web"}, {"backend", "ten"}}, "invalid"},
      {"set-weight without weight", {{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.1"}}, "bad_request"},
      {"set-weight too big", {{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.1"}, {"weight", 65536}}, "invalid"},
      {"set-weight fractional", {{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.1"}, {"weight", 1.5}}, "bad_request"},
  };
  for (const ErrorCase& c : cases) EXPECT_EQ(code(c.request), c.code) << c.name;
  EXPECT_TRUE(changes_.empty());
  EXPECT_EQ(held_->publishes, 1) << "no failed request touched the fast path";
}

// Changes that would leave "web" (10.0.0.1 and 10.0.0.2) with no backend
// for new connections are refused unless forced; each case starts from a
// fresh fixture after `setup` (which must succeed).
struct BlackholeCase {
  const char* name;
  std::vector<json> setup;
  json request;
  bool refused;
};

TEST_F(Handler, LastBackendIsRefusedUnlessForced) {
  const json drain1{{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.1"}};
  const json remove1{{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.1"}};
  const json remove2{{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.2"}};
  const json drain2{{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.2"}};
  const json drain2_forced{{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.2"}, {"force", true}};
  const json weight0_2{{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.2"}, {"weight", 0}};
  const json weight5_2{{"cmd", "set-weight"}, {"vip", "web"}, {"backend", "10.0.0.2"}, {"weight", 5}};
  const BlackholeCase cases[] = {
      {"remove one of two", {}, remove1, false},
      {"drain one of two", {}, drain1, false},
      {"remove the last", {remove1}, remove2, true},
      {"remove the last taking new flows (the other drains)", {drain1}, remove2, true},
      {"drain the last taking new flows", {drain1}, drain2, true},
      {"set-weight 0 on the last taking new flows", {drain1}, weight0_2, true},
      {"set-weight >0 on the last is fine", {drain1}, weight5_2, false},
      {"remove a draining one while another takes flows", {drain1}, remove1, false},
      {"drain an already draining last", {remove1, drain2_forced}, drain2, false},
      {"remove the last, draining, one", {remove1, drain2_forced}, remove2, true},
  };
  for (const BlackholeCase& c : cases) {
    SCOPED_TRACE(c.name);
    held_ = std::make_shared<FakeHeld>();
    SetUp();
    for (const json& step : c.setup) ok(step);
    const size_t backends_before = list_web().size();
    const int publishes_before = held_->publishes;
    const json r = call(c.request);
    if (!c.refused) {
      EXPECT_EQ(r["ok"], true) << r.dump();
      continue;
    }
    ASSERT_EQ(r["ok"], false) << r.dump();
    EXPECT_EQ(r["error"]["code"], "last_backend");
    const std::string msg = r["error"]["message"];
    EXPECT_NE(msg.find("10.0.0.2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
    EXPECT_EQ(list_web().size(), backends_before);
    EXPECT_EQ(held_->publishes, publishes_before) << "a refused change does not publish";
    // The same request, forced, goes through.
    json forced = c.request;
    forced["force"] = true;
    EXPECT_EQ(call(forced)["ok"], true);
  }
}

TEST_F(Handler, ADownBackendStillTakesNewFlowsInPanic) {
  // 10.0.0.1 fails its probes: removing 10.0.0.2 leaves the VIP in panic
  // over 10.0.0.1 (the probes may be what is broken), not without a table.
  ASSERT_TRUE(b_->set_backend_health("web", IpAddress::parse("10.0.0.1").value(), control::Health::kDown,
                                     std::nullopt, "connect: Connection refused")
                  .ok());
  ASSERT_TRUE(b_->publish().ok());
  ok({{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.2"}});
  EXPECT_EQ(ok({{"cmd", "vips"}})["vips"][0]["panic"], true);
  EXPECT_EQ(code({{"cmd", "remove-backend"}, {"vip", "web"}, {"backend", "10.0.0.1"}}),
            "last_backend");
}

TEST_F(Handler, ForceMustBeABoolean) {
  EXPECT_EQ(code({{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.1"}, {"force", 1}}),
            "bad_request");
}

TEST_F(Handler, AFailedPublicationIsFailedAndChangesNothing) {
  held_->fail_next = 1;
  const json r = call({{"cmd", "drain"}, {"vip", "web"}, {"backend", "10.0.0.1"}});
  EXPECT_EQ(r["error"]["code"], "failed");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("fake map update failed"),
            std::string::npos);
  EXPECT_EQ(ok({{"cmd", "backends"}, {"vip", "web"}})["backends"][0]["state"], "up");
}

TEST_F(Handler, Reload) {
  file_.write(std::string(kConfig) + "[[vips.backends]]\naddress = \"10.0.0.3\"\n");
  json r = ok({{"cmd", "reload"}});
  EXPECT_EQ(r["config_generation"], 3);
  EXPECT_EQ(r["changed"], true);
  EXPECT_EQ(list_web().size(), 3u);
  r = ok({{"cmd", "reload"}});
  EXPECT_EQ(r["changed"], false);
  EXPECT_EQ(r["config_generation"], 4);
  // A broken file: invalid, with file:line: key: message, nothing changed.
  file_.write(std::string(kConfig) + "[[vips.backends]]\naddress = \"10.0.0.3\"\nweight = -1\n");
  const json e = call({{"cmd", "reload"}});
  EXPECT_EQ(e["error"]["code"], "invalid");
  const std::string msg = e["error"]["message"];
  EXPECT_NE(msg.find(file_.path() + ":19:10:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vips[0].backends[2].weight"), std::string::npos) << msg;
  EXPECT_EQ(list_web().size(), 3u);
  EXPECT_EQ(b_->generation(), 4u);
  // A file that is gone: failed.
  control::HandlerContext gone = ctx_;
  gone.config_path = "/nonexistent/sluice.toml";
  EXPECT_EQ(control::handle_request(*b_, gone, {{"cmd", "reload"}})["error"]["code"], "failed");
  gone.config_path.clear();
  EXPECT_EQ(control::handle_request(*b_, gone, {{"cmd", "reload"}})["error"]["code"], "invalid");
}

TEST_F(Handler, LinesThatAreNotJsonAreBadRequests) {
  for (const char* line : {"", "{", "nope", "{\"cmd\": \"status\"", "\xff\xfe"}) {
    const json r = json::parse(control::handle_line(*b_, ctx_, line));
    EXPECT_EQ(r["ok"], false) << line;
    EXPECT_EQ(r["error"]["code"], "bad_request") << line;
  }
  const json r = json::parse(control::handle_line(*b_, ctx_, R"({"cmd":"vips","id":[1]})"));
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["id"], json::array({1}));
  // Invalid UTF-8 inside a string is answered, not thrown.
  const std::string bad = std::string(R"({"cmd":"remove-vip","vip":")") + "\xc3\x28" + "\"}";
  const std::string out = control::handle_line(*b_, ctx_, bad);
  EXPECT_FALSE(out.empty());
}

}  // namespace
}  // namespace sluice::test
