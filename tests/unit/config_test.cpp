// SPDX-License-Identifier: BSD-2-Clause
// Config loader tests: TOML snippets and the exact errors they must give
// (file:line:col: key: message), and valid files and the model they give.
#include "control/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice {
namespace {

std::vector<std::string> errors_of(const ConfigReport& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.to_string());
  return out;
}

std::vector<std::string> warnings_of(const ConfigReport& r) {
  std::vector<std::string> out;
  for (const auto& e : r.warnings) out.push_back(e.to_string());
  return out;
}

// A VIP with one backend, to append problems to.
constexpr const char* kVip = R"([[vips]]
address = "192.0.2.1"
port = 80
[[vips.backends]]
address = "10.0.0.1"
)";

struct ErrorCase {
  const char* name;
  std::string toml;
  std::vector<std::string> errors;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ConfigErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrors, NamesLineColumnKeyAndExpectedValue) {
  const ErrorCase& c = GetParam();
  const ConfigReport r = parse_config(c.toml, "t.toml");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(errors_of(r), c.errors);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrors,
    testing::Values(
        ErrorCase{"syntax",
                  "hash_seed = = 1\n",
                  {"t.toml:1:13: Error while parsing value: could not determine value type"}},
        ErrorCase{"unknown_top_key_suggests",
                  "hash_sede = 1\n",
                  {"t.toml:1:1: hash_sede: unknown key (did you mean \"hash_seed\"?)"}},
        ErrorCase{"unknown_key_lists_choices",
                  "[metrics]\nport = 1\n",
                  {"t.toml:2:1: metrics.port: unknown key; expected one of: listen"}},
        ErrorCase{
            "weight_negative",
            std::string(kVip) + "weight = -3\n",
            {"t.toml:6:10: vips[0].backends[0].weight: expected an integer 0..65535, got -3"}},
        ErrorCase{"weight_string",
                  std::string(kVip) + "weight = \"10\"\n",
                  {"t.toml:6:10: vips[0].backends[0].weight: expected an integer 0..65535, got "
                   "\"10\""}},
        ErrorCase{"vip_missing_address_and_port",
                  "[[vips]]\nprotocol = \"tcp\"\n",
                  {"t.toml:1:1: vips[0].address: missing; expected an IPv4 or IPv6 address",
                   "t.toml:1:1: vips[0].port: missing; expected an integer 0..65535 (0 = every "
                   "port)"}},
        ErrorCase{"bad_port_is_reported_once",
                  "[health_checks.web]\ntype = \"tcp\"\n[[vips]]\naddress = \"192.0.2.1\"\n"
                  "port = 99999\n[[vips.backends]]\naddress = \"10.0.0.1\"\n"
                  "health_check = \"web\"\n[[vips.backends]]\naddress = \"10.0.0.2\"\n"
                  "health_check = \"web\"\n",
                  {"t.toml:5:8: vips[0].port: expected an integer 0..65535, got 99999"}},
        ErrorCase{"vip_not_unicast",
                  "[[vips]]\naddress = \"0.0.0.0\"\nport = 1\n[[vips]]\naddress = \"239.1.2.3\"\n"
                  "port = 1\n[[vips]]\naddress = \"255.255.255.255\"\nport = 1\n[[vips]]\n"
                  "address = \"ff02::1\"\nport = 1\n[[vips]]\naddress = \"::\"\nport = 1\n",
                  {"t.toml:2:11: vips[0].address: expected a unicast address, got the "
                   "unspecified address (0.0.0.0)",
                   "t.toml:5:11: vips[1].address: expected a unicast address, got a multicast "
                   "address (224.0.0.0/4) (239.1.2.3)",
                   "t.toml:8:11: vips[2].address: expected a unicast address, got the broadcast "
                   "address (255.255.255.255)",
                   "t.toml:11:11: vips[3].address: expected a unicast address, got a multicast "
                   "address (ff00::/8) (ff02::1)",
                   "t.toml:14:11: vips[4].address: expected a unicast address, got the "
                   "unspecified address (::)"}},
        ErrorCase{"backend_not_another_host",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\n[[vips.backends]]\n"
                  "address = \"127.0.0.2\"\n[[vips.backends]]\naddress = \"192.0.2.1\"\n"
                  "[[vips]]\naddress = \"2001:db8::1\"\nport = 80\n[[vips.backends]]\n"
                  "address = \"::1\"\n",
                  {"t.toml:5:11: vips[0].backends[0].address: expected a unicast address of "
                   "another host, got a loopback address (127.0.0.0/8) (127.0.0.2)",
                   "t.toml:7:11: vips[0].backends[1].address: 192.0.2.1 is the address of VIP "
                   "192.0.2.1:80/tcp; expected a backend's own address",
                   "t.toml:12:11: vips[1].backends[0].address: expected a unicast address of "
                   "another host, got the loopback address (::1)"}},
        ErrorCase{
            "addresses_no_host_can_be",
            "[[vips]]\naddress = \"127.0.0.1\"\nport = 1\n[[vips]]\naddress = \"2001:db8::1\"\n"
            "port = 1\n[[vips.backends]]\naddress = \"fe80::1\"\n[[vips.backends]]\n"
            "address = \"::ffff:127.0.0.1\"\n[[vips]]\naddress = \"192.0.2.1\"\nport = 1\n"
            "[[vips.backends]]\naddress = \"0.0.0.1\"\n",
            {"t.toml:2:11: vips[0].address: expected a unicast address, got a loopback "
             "address (127.0.0.0/8) (127.0.0.1)",
             "t.toml:8:11: vips[1].backends[0].address: expected a unicast address of "
             "another host, got a link-local address (fe80::/10) (fe80::1)",
             "t.toml:10:11: vips[1].backends[1].address: expected a unicast address of "
             "another host, got an IPv4-mapped address (::ffff:0:0/96; write the IPv4 "
             "address) (::ffff:127.0.0.1)",
             "t.toml:15:11: vips[2].backends[0].address: expected a unicast address of "
             "another host, got a \"this network\" address (0.0.0.0/8) (0.0.0.1)"}},
        ErrorCase{"bad_address",
                  "[[vips]]\naddress = \"192.0.2.300\"\nport = 1\n",
                  {"t.toml:2:11: vips[0].address: expected an IPv4 or IPv6 address, got "
                   "\"192.0.2.300\""}},
        ErrorCase{"bad_enums",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 1\nprotocol = \"sctp\"\n"
                  "policy = \"random\"\nhash = \"3-tuple\"\n",
                  {"t.toml:4:12: vips[0].protocol: expected \"tcp\" or \"udp\", got \"sctp\"",
                   "t.toml:5:10: vips[0].policy: expected \"static\", \"least-conn\" or "
                   "\"fastest\", got \"random\"",
                   "t.toml:6:8: vips[0].hash: expected \"5-tuple\", \"src\" or \"key\", got "
                   "\"3-tuple\""}},
        // Key routing reads memcached requests over UDP on the VIP's port.
        ErrorCase{"key_hash_needs_udp",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 11211\nhash = \"key\"\n",
                  {"t.toml:4:8: vips[0].hash: hash \"key\" routes memcached requests over UDP; a "
                   "TCP connection is one stream of many keys that one backend must take whole: "
                   "needs protocol \"udp\""}},
        ErrorCase{"key_hash_needs_a_port",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 0\nprotocol = \"udp\"\n"
                  "hash = \"key\"\n",
                  {"t.toml:5:8: vips[0].hash: hash \"key\" reads memcached requests; a VIP of "
                   "every port (port 0) carries other protocols: needs the memcached port"}},
        ErrorCase{"table_size_not_prime",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 1\ntable_size = 65536\n",
                  {"t.toml:4:14: vips[0].table_size: expected a prime 251..1048573 or \"auto\", "
                   "got 65536 (the next prime is 65537)"}},
        ErrorCase{"table_size_too_small",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 1\ntable_size = 7\n",
                  {"t.toml:4:14: vips[0].table_size: expected a prime 251..1048573 or \"auto\", "
                   "got 7"}},
        ErrorCase{"duplicate_vip",
                  std::string(kVip) + kVip,
                  {"t.toml:6:1: vips[1]: duplicate VIP 192.0.2.1 port 80 tcp (also vips[0])"}},
        ErrorCase{"duplicate_backend",
                  std::string(kVip) + "[[vips.backends]]\naddress = \"10.0.0.1\"\n",
                  {"t.toml:7:11: vips[0].backends[1].address: duplicate backend 10.0.0.1 (also "
                   "backends[0])"}},
        ErrorCase{"v6_vip_v4_backend",
                  "[[vips]]\naddress = \"2001:db8::1\"\nport = 443\n[[vips.backends]]\n"
                  "address = \"10.0.0.1\"\n",
                  {"t.toml:5:11: vips[0].backends[0].address: an IPv6 VIP needs IPv6 backends "
                   "(there is no IPv6-in-IPv4 encapsulation), got \"10.0.0.1\""}},
        ErrorCase{"cache_needs_udp",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 11211\ncache = true\n",
                  {"t.toml:4:9: vips[0].cache: the hot-object cache answers memcached over UDP: "
                   "needs protocol \"udp\""}},
        ErrorCase{"least_conn_needs_capacity",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\npolicy = \"least-conn\"\n"
                  "[[vips.backends]]\naddress = \"10.0.0.1\"\n",
                  {"t.toml:5:1: vips[0].backends[0].capacity: missing; policy \"least-conn\" "
                   "needs each backend's capacity (concurrent flows)"}},
        ErrorCase{"fastest_needs_health_check",
                  "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\npolicy = \"fastest\"\n"
                  "[[vips.backends]]\naddress = \"10.0.0.1\"\n",
                  {"t.toml:5:1: vips[0].backends[0].health_check: missing; policy \"fastest\" "
                   "weighs backends by probe response time"}},
        ErrorCase{"unknown_health_check",
                  "[health_checks.web]\ntype = \"tcp\"\n" + std::string(kVip) +
                      "health_check = \"wbe\"\n",
                  {"t.toml:8:16: vips[0].backends[0].health_check: no [health_checks.wbe]; "
                   "defined: web"}},
        ErrorCase{"port0_vip_check_without_port",
                  "[health_checks.web]\ntype = \"tcp\"\n[[vips]]\naddress = \"192.0.2.1\"\n"
                  "port = 0\n[[vips.backends]]\naddress = \"10.0.0.1\"\nhealth_check = \"web\"\n",
                  {"t.toml:8:16: vips[0].backends[0].health_check: the VIP has port 0 (every "
                   "port), so health_checks.web needs a port"}},
        ErrorCase{"health_check_fields",
                  "[health_checks.a]\ninterval_ms = 100\ntimeout_ms = 200\nrise = 0\n"
                  "[health_checks.b]\ntype = \"redis\"\nexpect_status = 200\n",
                  {"t.toml:1:1: health_checks.a.type: missing; expected \"tcp\", \"http\", "
                   "\"memcached\" or \"redis\"",
                   "t.toml:3:14: health_checks.a.timeout_ms: expected at most interval_ms (100), "
                   "got 200",
                   "t.toml:4:8: health_checks.a.rise: expected an integer 1..1000, got 0",
                   "t.toml:7:17: health_checks.b.expect_status: only for type \"http\" (this "
                   "check is \"redis\")"}},
        ErrorCase{"dpdk_fields",
                  "[dpdk]\nports = [\"net_af_packet0,iface=veth0\", \"eth0\", \"0000:3b:00.0\", "
                  "\"net_af_packet0\"]\nkernel_port = \"net_ring0\"\nlcores = [0, 2, 2]\n"
                  "eal_args = [\"--no-pci\", \"--log-level=lib.eal:error\", \"-m\"]\n"
                  "distribution = \"hardware\"\nfile_prefix = \"a/b\"\n",
                  {"t.toml:1:1: dpdk.gateway_mac: missing; expected the next hop's MAC "
                   "(\"02:00:5e:00:53:01\"): the DPDK path does not resolve neighbours",
                   "t.toml:2:40: dpdk.ports[1]: expected a vdev of net_af_packet, net_af_xdp, "
                   "net_pcap, net_ring, net_tap, net_null, net_memif or net_virtio_user or a PCI "
                   "address (\"0000:3b:00.0\"), got \"eth0\"",
                   "t.toml:2:64: dpdk.ports[3]: duplicate port \"net_af_packet0\"",
                   "t.toml:3:15: dpdk.kernel_port: expected a vdev of net_tap or net_virtio_user, "
                   "got \"net_ring0\"",
                   "t.toml:4:11: dpdk.lcores[0]: lcore 0 is the main lcore (the control "
                   "thread's); workers need their own",
                   "t.toml:4:17: dpdk.lcores[2]: duplicate lcore 2",
                   "t.toml:5:13: dpdk.eal_args[0]: sluice sets --no-pci itself: use dpdk.ports",
                   "t.toml:5:54: dpdk.eal_args[2]: sluice sets -m itself: use dpdk.memory_mb",
                   "t.toml:6:16: dpdk.distribution: expected \"auto\" or \"software\", got "
                   "\"hardware\"",
                   "t.toml:7:15: dpdk.file_prefix: expected 1-64 of letters, digits, '-', '_', "
                   "'.' (not first), got \"a/b\""}},
        ErrorCase{"dpdk_needs_ports_and_not_xdp",
                  "[xdp]\ninterfaces = [\"eth0\"]\n[dpdk]\ngateway_mac = \"02:00:5e:00:53:01\"\n"
                  "ports = []\n",
                  {"t.toml:3:1: dpdk: [xdp] and [dpdk] in one file: one daemon runs one fast "
                   "path; keep one of them",
                   "t.toml:5:9: dpdk.ports: expected at least one port (a vdev such as "
                   "\"net_af_packet0,iface=eth1\", or a PCI address)"}},
        ErrorCase{"dpdk_vdev_without_instance_and_encap_source",
                  "[dpdk]\ngateway_mac = \"02:00:5e:00:53:01\"\nports = [\"net_tap\"]\n" +
                      std::string(kVip),
                  {"t.toml:1:1: dpdk.encap_source_v4: missing; expected the IPv4 source of the "
                   "outer header (there are IPv4 backends)",
                   "t.toml:3:10: dpdk.ports[0]: expected \"net_tap<N>[,key=value...]\" (an "
                   "instance number after the driver name, no spaces) or a PCI address "
                   "(\"0000:3b:00.0\"), got \"net_tap\""}},
        ErrorCase{"xdp_fields",
                  "[xdp]\ninterfaces = [\"eth0\", \"eth0\", \"a/b\"]\nmode = \"driver\"\n"
                  "encap_source_v4 = \"2001:db8::1\"\nmtu = 100\ngateway_mac = \"02:00\"\n" +
                      std::string(kVip),
                  {"t.toml:2:23: xdp.interfaces[1]: duplicate interface \"eth0\"",
                   "t.toml:2:31: xdp.interfaces[2]: expected an interface name (1-15 bytes, no "
                   "'/' or spaces), got \"a/b\"",
                   "t.toml:3:8: xdp.mode: expected \"native\" or \"generic\", got \"driver\"",
                   "t.toml:4:19: xdp.encap_source_v4: expected an IPv4 address, got "
                   "\"2001:db8::1\"",
                   "t.toml:5:7: xdp.mtu: expected an integer 576..9216, got 100",
                   "t.toml:6:15: xdp.gateway_mac: expected a MAC address like "
                   "\"02:00:5e:00:53:01\", got \"02:00\""}},
        ErrorCase{"gateway_mac_group_address",
                  "[xdp]\ninterfaces = [\"eth0\"]\ngateway_mac = \"ff:ff:ff:ff:ff:ff\"\n",
                  {"t.toml:3:15: xdp.gateway_mac: expected the next hop's own (unicast) MAC, got "
                   "the group address ff:ff:ff:ff:ff:ff (broadcast or multicast: the least "
                   "significant bit of the first octet is set)"}},
        ErrorCase{"dpdk_gateway_mac_multicast",
                  "[dpdk]\nports = [\"net_tap0\"]\ngateway_mac = \"01:00:5e:00:00:01\"\n",
                  {"t.toml:3:15: dpdk.gateway_mac: expected the next hop's own (unicast) MAC, got "
                   "the group address 01:00:5e:00:00:01 (broadcast or multicast: the least "
                   "significant bit of the first octet is set)"}},
        ErrorCase{"control_and_metrics",
                  "[control]\nsocket = \"relative.sock\"\nmode = \"0999\"\n[metrics]\n"
                  "listen = \"localhost:99999\"\n",
                  {"t.toml:2:10: control.socket: expected an absolute path shorter than 108 "
                   "bytes, got \"relative.sock\"",
                   "t.toml:3:8: control.mode: expected file mode bits as an octal string "
                   "(\"0660\") or 0o660, got \"0999\"",
                   "t.toml:5:10: metrics.listen: expected \"ADDRESS:PORT\" (\"[IPv6]:PORT\"), or "
                   "\"\" for off, got \"localhost:99999\""}},
        ErrorCase{"wrong_shapes",
                  "vips = 3\nflow_table = \"big\"\n",
                  {"t.toml:1:8: vips: expected an array of tables ([[vips]]), got 3",
                   "t.toml:2:14: flow_table: expected a table, got \"big\""}},
        ErrorCase{"flow_table_ranges",
                  "[flow_table]\nflows_per_core = 0\ntcp_idle_ms = 1.5\n",
                  {"t.toml:2:18: flow_table.flows_per_core: expected an integer 1..16777216, got 0",
                   "t.toml:3:15: flow_table.tcp_idle_ms: expected an integer 1..86400000, got "
                   "1.5"}}),
    [](const testing::TestParamInfo<ErrorCase>& p) { return std::string(p.param.name); });

TEST(Config, CollectsEveryErrorInFileOrder) {
  const ConfigReport r = parse_config(
      "hash_seed = -1\n[[vips]]\naddress = \"x\"\nport = 70000\n[[vips.backends]]\n"
      "address = \"10.0.0.1\"\nweight = 70000\nwieght = 1\n",
      "sluice.toml");
  EXPECT_EQ(errors_of(r),
            (std::vector<std::string>{
                "sluice.toml:1:13: hash_seed: expected an integer 0..4294967295, got -1",
                "sluice.toml:3:11: vips[0].address: expected an IPv4 or IPv6 address, got \"x\"",
                "sluice.toml:4:8: vips[0].port: expected an integer 0..65535, got 70000",
                "sluice.toml:7:10: vips[0].backends[0].weight: expected an integer 0..65535, got "
                "70000",
                "sluice.toml:8:1: vips[0].backends[0].wieght: unknown key (did you mean "
                "\"weight\"?)",
            }));
}

TEST(Config, MinimalVipTakesDefaults) {
  const ConfigReport r = parse_config(kVip, "t.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_TRUE(r.warnings.empty());
  const Config& c = *r.config;
  EXPECT_EQ(c.hash_seed, 0u);
  EXPECT_EQ(c.flow_table.flows_per_core, 65536u);
  EXPECT_EQ(c.flow_table.tcp_idle_ms, 300000u);
  EXPECT_EQ(c.control.path, "/run/sluice/sluice.sock");
  EXPECT_EQ(c.control.mode, 0660u);
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:9650");
  EXPECT_FALSE(c.xdp.has_value());
  ASSERT_EQ(c.vips.size(), 1u);
  const VipConfig& v = c.vips[0];
  EXPECT_EQ(v.name, "192.0.2.1:80/tcp");
  EXPECT_EQ(v.addr.to_string(), "192.0.2.1");
  EXPECT_EQ(v.port, 80);
  EXPECT_EQ(v.protocol, Protocol::kTcp);
  EXPECT_EQ(v.policy, Policy::kStatic);
  EXPECT_EQ(v.hash, HashFields::kFiveTuple);
  EXPECT_FALSE(v.cache);
  EXPECT_EQ(v.table_size, 65537u);
  EXPECT_FALSE(v.table_size_auto);
  ASSERT_EQ(v.backends.size(), 1u);
  EXPECT_EQ(v.backends[0].addr.to_string(), "10.0.0.1");
  EXPECT_EQ(v.backends[0].weight, 100u);
  EXPECT_FALSE(v.backends[0].capacity.has_value());
  EXPECT_TRUE(v.backends[0].health_check.empty());
}

TEST(Config, FullModel) {
  const ConfigReport r = parse_config(R"(hash_seed = 0xdeadbeef
[flow_table]
flows_per_core = 1024
udp_idle_ms = 5000
[control]
socket = "/tmp/s.sock"
mode = 0o600
group = "ops"
[metrics]
listen = "[::1]:9100"
[xdp]
interfaces = ["veth0", "veth1"]
mode = "generic"
encap_source_v4 = "192.0.2.10"
encap_source_v6 = "2001:db8::10"
mtu = 9000
gateway_mac = "02:00:5E:00:53:01"
[health_checks.h]
type = "http"
port = 8080
path = "/ready"
expect_status = 204
rise = 1
[[vips]]
name = "v6"
address = "2001:db8::1"
port = 0
protocol = "udp"
policy = "fastest"
hash = "src"
cache = true
table_size = "auto"
[[vips.backends]]
address = "2001:db8:1::1"
weight = 0
capacity = 5
health_check = "h"
[[vips]]
address = "192.0.2.1"
port = 443
[[vips.backends]]
address = "2001:db8:1::2"
)",
                                      "t.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  const Config& c = *r.config;
  EXPECT_EQ(c.hash_seed, 0xdeadbeefu);
  EXPECT_EQ(c.flow_table.flows_per_core, 1024u);
  EXPECT_EQ(c.flow_table.probation_per_core, 16384u);
  EXPECT_EQ(c.flow_table.udp_idle_ms, 5000u);
  EXPECT_EQ(c.control.path, "/tmp/s.sock");
  EXPECT_EQ(c.control.mode, 0600u);
  EXPECT_EQ(c.control.group, "ops");
  EXPECT_EQ(c.metrics.listen, "[::1]:9100");
  ASSERT_TRUE(c.xdp.has_value());
  EXPECT_EQ(c.xdp->interfaces, (std::vector<std::string>{"veth0", "veth1"}));
  EXPECT_EQ(c.xdp->mode, XdpAttachMode::kGeneric);
  EXPECT_EQ(c.xdp->encap_source_v4->to_string(), "192.0.2.10");
  EXPECT_EQ(c.xdp->encap_source_v6->to_string(), "2001:db8::10");
  EXPECT_EQ(c.xdp->mtu, 9000u);
  EXPECT_EQ(*c.xdp->gateway_mac, (std::array<uint8_t, 6>{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}));
  ASSERT_EQ(c.health_checks.size(), 1u);
  const HealthCheck& h = c.health_checks[0];
  EXPECT_EQ(h.name, "h");
  EXPECT_EQ(h.type, CheckType::kHttp);
  EXPECT_EQ(h.port, 8080);
  EXPECT_EQ(h.http_path, "/ready");
  EXPECT_EQ(h.http_expect_status, 204);
  EXPECT_EQ(h.rise, 1u);
  EXPECT_EQ(h.fall, 3u);
  EXPECT_EQ(h.interval_ms, 2000u);
  ASSERT_EQ(c.vips.size(), 2u);
  const VipConfig& v = c.vips[0];
  EXPECT_EQ(v.name, "v6");
  EXPECT_EQ(v.port, 0);
  EXPECT_EQ(v.protocol, Protocol::kUdp);
  EXPECT_EQ(v.policy, Policy::kFastest);
  EXPECT_EQ(v.hash, HashFields::kSource);
  EXPECT_TRUE(v.cache);
  EXPECT_TRUE(v.table_size_auto);
  EXPECT_EQ(v.table_size, 65537u);
  EXPECT_EQ(v.backends[0].weight, 0u);
  EXPECT_EQ(v.backends[0].capacity, 5u);
  EXPECT_EQ(v.backends[0].health_check, "h");
  // An IPv6 backend under an IPv4 VIP is fine: 4in6 encapsulation.
  EXPECT_EQ(c.vips[1].backends[0].addr.to_string(), "2001:db8:1::2");
  EXPECT_EQ(c.backend_count(), 2u);
  EXPECT_EQ(warnings_of(r),
            (std::vector<std::string>{"t.toml:24:1: vips[0]: every backend has weight 0: the VIP "
                                      "is drained (no new flows)"}));
}

TEST(Config, WarningsDoNotFail) {
  const ConfigReport r = parse_config(
      "[health_checks.unused]\ntype = \"tcp\"\n[[vips]]\naddress = \"192.0.2.1\"\nport = 1\n",
      "t.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(warnings_of(r),
            (std::vector<std::string>{
                "t.toml:1:1: health_checks.unused: not used by any backend",
                "t.toml:3:1: vips[0]: no backends: packets to this VIP are dropped (no_backend)"}));
}

TEST(Config, BackendsOfAFamilyNeedAnEncapSource) {
  const ConfigReport r = parse_config(
      "[xdp]\ninterfaces = [\"eth0\"]\nencap_source_v4 = \"192.0.2.10\"\n[[vips]]\n"
      "address = \"192.0.2.1\"\nport = 1\n[[vips.backends]]\naddress = \"2001:db8::2\"\n",
      "t.toml");
  EXPECT_EQ(errors_of(r), (std::vector<std::string>{
                              "t.toml:1:1: xdp.encap_source_v6: missing; expected the IPv6 source "
                              "of the outer header (there are IPv6 backends)"}));
}

TEST(Config, DpdkModel) {
  const ConfigReport r = parse_config(R"([dpdk]
ports = ["net_af_packet0,iface=veth0,qpairs=1", "0000:3b:00.0"]
kernel_port = "net_tap0,iface=sl0"
main_lcore = 2
lcores = [0, 1]
distribution = "software"
rx_desc = 512
tx_desc = 256
mbufs = 4095
mbuf_cache = 128
hugepages = true
memory_mb = 1024
file_prefix = "sluice-lb1"
eal_args = ["--log-level=lib.eal:error"]
link_wait_ms = 100
encap_source_v4 = "192.0.2.10"
mtu = 9000
gateway_mac = "02:00:5e:00:53:01"
[[vips]]
address = "192.0.2.1"
port = 80
[[vips.backends]]
address = "10.0.0.1"
)",
                                      "t.toml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(errors_of(r));
  const DpdkConfig& d = *r.config->dpdk;
  EXPECT_EQ(d.ports,
            (std::vector<std::string>{"net_af_packet0,iface=veth0,qpairs=1", "0000:3b:00.0"}));
  EXPECT_EQ(d.kernel_port, "net_tap0,iface=sl0");
  EXPECT_EQ(d.main_lcore, 2u);
  EXPECT_EQ(d.lcores, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(d.distribution, DpdkDistribution::kSoftware);
  EXPECT_EQ(d.rx_desc, 512u);
  EXPECT_EQ(d.tx_desc, 256u);
  EXPECT_EQ(d.mbufs, 4095u);
  EXPECT_EQ(d.mbuf_cache, 128u);
  EXPECT_TRUE(d.hugepages);
  EXPECT_EQ(d.memory_mb, 1024u);
  EXPECT_EQ(d.file_prefix, "sluice-lb1");
  EXPECT_EQ(d.eal_args, (std::vector<std::string>{"--log-level=lib.eal:error"}));
  EXPECT_EQ(d.link_wait_ms, 100u);
  const auto e = r.config->encap();
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->section, "dpdk");
  EXPECT_EQ(e->source_v4->to_string(), "192.0.2.10");
  EXPECT_EQ(e->mtu, 9000u);
  EXPECT_EQ(*e->gateway_mac, (std::array<uint8_t, 6>{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}));
  EXPECT_FALSE(r.config->xdp.has_value());
}

TEST(Config, DpdkDefaults) {
  const ConfigReport r =
      parse_config("[dpdk]\nports = [\"net_ring0\"]\ngateway_mac = \"02:00:5e:00:53:01\"\n", "t");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(errors_of(r));
  const DpdkConfig& d = *r.config->dpdk;
  EXPECT_EQ(d.main_lcore, 0u);
  EXPECT_EQ(d.lcores, (std::vector<uint32_t>{1}));
  EXPECT_EQ(d.distribution, DpdkDistribution::kAuto);
  EXPECT_FALSE(d.hugepages);
  EXPECT_EQ(d.file_prefix, "sluice");
  EXPECT_FALSE(d.kernel_port.has_value());
  EXPECT_EQ(r.config->encap()->mtu, 1500u);
}

// A CPU the machine lacks is a warning (EAL would refuse the start), not
// an error: the config may be meant for a bigger machine.
TEST(Config, DpdkLcoresOnCpusTheMachineLacksWarn) {
  const long cpus = sysconf(_SC_NPROCESSORS_CONF);
  ASSERT_GT(cpus, 0);
  ASSERT_LT(cpus, 1000) << "the test names CPU 1000 as one the machine lacks";
  const std::string have = " (this machine has " + std::to_string(cpus) + " CPUs)";
  const ConfigReport r = parse_config(
      "[dpdk]\nports = [\"net_ring0\"]\ngateway_mac = \"02:00:5e:00:53:01\"\nlcores = [1000]\n",
      "t");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(errors_of(r));
  EXPECT_EQ(
      warnings_of(r),
      (std::vector<std::string>{"t:1:1: dpdk.lcores: worker lcore 1000 runs on CPU 1000, which "
                                "this machine does not have" +
                                have + "; worker_cpus can place lcores on CPUs it has"}));
  // Placed by worker_cpus on CPU 0: nothing to say; on CPU 1000: said.
  const ConfigReport placed = parse_config(
      "[dpdk]\nports = [\"net_ring0\"]\ngateway_mac = \"02:00:5e:00:53:01\"\n"
      "lcores = [1000, 1001]\nworker_cpus = [0, 1000]\nmain_lcore = 1002\n",
      "t");
  ASSERT_TRUE(placed.ok()) << ::testing::PrintToString(errors_of(placed));
  EXPECT_EQ(warnings_of(placed),
            (std::vector<std::string>{
                "t:1:1: dpdk.main_lcore: lcore 1002 runs on CPU 1002, which this machine does "
                "not have" +
                    have,
                "t:1:1: dpdk.worker_cpus: worker lcore 1001 runs on CPU 1000, which this machine "
                "does not have" +
                    have}));
  // The defaults (main lcore 0, worker lcore 1) on a machine of 2 CPUs or more: no warning.
  if (cpus >= 2) {
    const ConfigReport d =
        parse_config("[dpdk]\nports = [\"net_ring0\"]\ngateway_mac = \"02:00:5e:00:53:01\"\n", "t");
    EXPECT_TRUE(d.warnings.empty()) << ::testing::PrintToString(warnings_of(d));
  }
}

TEST(Config, EmptyFileIsValid) {
  const ConfigReport r = parse_config("", "t.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->vips.empty());
}

TEST(Config, CacheBounds) {
  const ConfigReport r = parse_config(
      "[cache]\nentries = 500\nbytes = 1048576\nttl_ms = 2000\nhot_threshold = 8\n"
      "period_ms = 500\nwrite_settle_ms = 50\nfetch_timeout_ms = 100\n",
      "t.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->cache.entries, 500u);
  EXPECT_EQ(r.config->cache.bytes, 1048576u);
  EXPECT_EQ(r.config->cache.ttl_ms, 2000u);
  EXPECT_EQ(r.config->cache.hot_threshold, 8u);
  EXPECT_EQ(r.config->cache.period_ms, 500u);
  EXPECT_EQ(r.config->cache.write_settle_ms, 50u);
  EXPECT_EQ(r.config->cache.fetch_timeout_ms, 100u);
  const ConfigReport defaults = parse_config("", "t.toml");
  EXPECT_EQ(defaults.config->cache.entries, 10000u);

  const ConfigReport bad = parse_config("[cache]\nentries = 0\nbytes = 10\nttls = 1\n", "t.toml");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.errors.size(), 3u) << testing::PrintToString(errors_of(bad));
}

TEST(Config, KeyHashOnAUdpMemcachedVip) {
  const ConfigReport r = parse_config(
      "[[vips]]\naddress = \"192.0.2.1\"\nport = 11211\nprotocol = \"udp\"\nhash = \"key\"\n"
      "cache = true\n",
      "t.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->vips[0].hash, HashFields::kKey);
  EXPECT_STREQ(to_string(HashFields::kKey), "key");
}

// Both memcached features on the DPDK path: the worker places keyed
// requests as XDP does, and holds a written key's fills until the write
// has left, so the cache is coherent there too
// (dataplane/dpdk/worker_cache.hpp).
TEST(Config, CacheWithTheDpdkFastPath) {
  const ConfigReport r = parse_config(
      "[dpdk]\nports = [\"net_null0\"]\ngateway_mac = \"02:00:5e:00:53:01\"\n"
      "[[vips]]\naddress = \"192.0.2.1\"\nport = 11211\nprotocol = \"udp\"\nhash = \"key\"\n"
      "cache = true\n",
      "t.toml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_EQ(r.config->vips[0].hash, HashFields::kKey);
  EXPECT_TRUE(r.config->vips[0].cache);
  EXPECT_TRUE(r.config->dpdk.has_value());
}

TEST(Config, ExampleFileIsValid) {
  auto loaded = load_config_file(SLUICE_EXAMPLE_CONFIG);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const ConfigReport& r = loaded.value();
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(warnings_of(r));
  EXPECT_EQ(r.config->vips.size(), 2u);
  EXPECT_EQ(r.config->backend_count(), 5u);
}

// The complete example in README.md ("The config file") is a valid config.
TEST(Config, ReadmeExampleIsValid) {
  std::ifstream in(SLUICE_README);
  ASSERT_TRUE(in) << SLUICE_README;
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  const size_t section = text.find("### The config file");
  ASSERT_NE(section, std::string::npos);
  const size_t begin = text.find("```toml\n", section);
  ASSERT_NE(begin, std::string::npos);
  const size_t end = text.find("```\n", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const ConfigReport r = parse_config(text.substr(begin + 8, end - begin - 8), "README.md");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(errors_of(r));
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(warnings_of(r));
  EXPECT_EQ(r.config->vips.size(), 2u);
  EXPECT_EQ(r.config->backend_count(), 3u);
}

// The daemon's rules (`sluice run`, `sluice attach`, `sluice check-config`).
TEST(DaemonConfig, NeedsAFastPathSection) {
  const ConfigReport r = parse_daemon_config(kVip, "t.toml");
  EXPECT_EQ(errors_of(r), (std::vector<std::string>{
                              "t.toml:1:1: xdp: missing; `sluice run` and `sluice attach` need "
                              "an [xdp] or a [dpdk] section (the fast path's interfaces and "
                              "encap sources)"}));
  // The library alone takes it: an embedder brings its own fast path.
  EXPECT_TRUE(parse_config(kVip, "t.toml").ok());
  const std::string xdp =
      std::string(kVip) + "[xdp]\ninterfaces = [\"eth9\"]\nencap_source_v4 = \"192.0.2.9\"\n";
  const ConfigReport ok = parse_daemon_config(xdp, "t.toml");
  EXPECT_TRUE(ok.ok()) << testing::PrintToString(errors_of(ok));
}

TEST(DaemonConfig, TheBgpDeviceMustNotBeAnExistingInterfaceOtherThanTun) {
  // Any interface of this namespace that is not a TUN device (a veth, a
  // NIC; lo is refused by name already).
  std::string other;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    const std::string name = e.path().filename().string();
    if (name != "lo" && name.size() <= 15 && name.find(':') == std::string::npos &&
        !std::filesystem::exists(e.path() / "tun_flags", ec)) {
      other = name;
      break;
    }
  }
  if (other.empty()) GTEST_SKIP() << "no interface other than lo and TUN devices here";
  const std::string text = std::string(kVip) +
                           "[xdp]\ninterfaces = [\"eth9\"]\nencap_source_v4 = \"192.0.2.9\"\n"
                           "[bgp]\nannounce = true\ntable = 10\ndevice = \"" +
                           other + "\"\n";
  const ConfigReport r = parse_daemon_config(text, "t.toml");
  EXPECT_EQ(
      errors_of(r),
      (std::vector<std::string>{"t.toml:12:10: bgp.device: an interface \"" + other +
                                "\" exists here and is not a TUN device; expected a name free "
                                "for sluice's TUN device"}));
}

TEST(Config, UnreadableFileIsAnError) {
  auto loaded = load_config_file("/nonexistent/sluice.toml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, -ENOENT);
  auto dir = load_config_file("/");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code, -EISDIR);
}

TEST(ConfigIssue, FormatsKnownParts) {
  EXPECT_EQ((ConfigIssue{"f", 3, 4, "k", "m"}.to_string()), "f:3:4: k: m");
  EXPECT_EQ((ConfigIssue{"f", 3, 0, "", "m"}.to_string()), "f:3: m");
  EXPECT_EQ((ConfigIssue{"f", 0, 0, "", "m"}.to_string()), "f: m");
}

}  // namespace
}  // namespace sluice
