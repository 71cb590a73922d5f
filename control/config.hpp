// SPDX-License-Identifier: BSD-2-Clause
// The configuration model (VIPs, backends, health checks, flow table,
// control socket, metrics, XDP and DPDK settings) and its TOML loader, which
// validates a whole file and reports every problem with file, line,
// column and key path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/result.hpp"

namespace sluice {

enum class Protocol : uint8_t { kTcp, kUdp };
/// How a VIP's backend weights are set (DESIGN.md "Weights from health").
enum class Policy : uint8_t { kStatic, kLeastConn, kFastest };
/// What places a VIP's packets: the flow hash over the 5-tuple, or over
/// the source address only (every connection of a client meets the same
/// backend), or (kKey, UDP memcached VIPs) the key of a request that names
/// one key, so a sharded pool gets every key on its owner shard; other
/// requests of such a VIP use the 5-tuple.
enum class HashFields : uint8_t { kFiveTuple, kSource, kKey };
enum class CheckType : uint8_t { kTcp, kHttp, kMemcached, kRedis };
/// XDP attach mode: in the driver, or generic (after skb allocation).
enum class XdpAttachMode : uint8_t { kNative, kGeneric };

/// The spellings used in the config file ("tcp", "least-conn", "5-tuple", ...).
const char* to_string(Protocol p);
const char* to_string(Policy p);
const char* to_string(HashFields h);
const char* to_string(CheckType t);
const char* to_string(XdpAttachMode m);

/// A named health check, referenced by backends ([health_checks.NAME]).
struct HealthCheck {
  std::string name;
  CheckType type = CheckType::kTcp;
  uint32_t interval_ms = 2000;  // between probes of one backend, ms
  uint32_t timeout_ms = 1000;   // one probe, ms (<= interval_ms)
  uint32_t rise = 2;            // consecutive successes to come back up
  uint32_t fall = 3;            // consecutive failures to go down
  uint16_t port = 0;            // probe port; 0 = the VIP's port
  std::string http_path = "/";  // type http: the GET target
  uint16_t http_expect_status = 200;  // type http: the status that means healthy
};

/// A backend of one VIP; identified by its address.
struct BackendConfig {
  IpAddress addr;
  uint32_t weight = 100;            // 0..65535; 0 = drain (no new flows)
  std::optional<uint32_t> capacity;  // least-conn: concurrent flows it takes
  std::string health_check;         // a HealthCheck name, or empty for none
};

struct VipConfig {
  std::string name;  // for people and the control socket; defaults to "addr:port/proto"
  IpAddress addr;
  uint16_t port = 0;  // host order; 0 = every port
  Protocol protocol = Protocol::kTcp;
  Policy policy = Policy::kStatic;
  HashFields hash = HashFields::kFiveTuple;
  bool cache = false;  // the memcached hot-object cache (UDP only)
  /// Maglev table size, entries (a prime); when table_size_auto, it is
  /// maglev_auto_table_size() of the configured backend count.
  uint32_t table_size = 65537;
  bool table_size_auto = false;
  std::vector<BackendConfig> backends;
};

/// Why `hash = "key"` cannot apply to `vip`; empty when it can. Key
/// routing reads each memcached request over UDP: a TCP connection is one
/// stream of many keys, which one backend must take whole, and a VIP of
/// every port (port 0) carries other protocols than memcached.
[[nodiscard]] std::string key_hash_refusal(const VipConfig& vip);

/// Per-core flow table sizes, entries, and idle timeouts, ms.
struct FlowTableConfig {
  uint32_t flows_per_core = 65536;
  uint32_t probation_per_core = 16384;
  uint32_t tcp_idle_ms = 300000;
  uint32_t udp_idle_ms = 30000;
};

/// The hot-object cache's bounds ([cache]; DESIGN.md "Hot-object cache").
struct CacheConfig {
  uint32_t entries = 10000;          // cached keys at most (restart to change)
  uint64_t bytes = 16u << 20;        // key and value bytes at most
  uint32_t ttl_ms = 10000;           // an entry lives this long from its fill, ms
  uint32_t hot_threshold = 32;       // misses of a key per core and period that make it hot
  uint32_t period_ms = 1000;         // the sketch period, ms
  uint32_t write_settle_ms = 100;    // no fill this long after a write of the key left, ms
  uint32_t fetch_timeout_ms = 200;   // one fill's memcached gets, ms

  friend bool operator==(const CacheConfig&, const CacheConfig&) = default;
};

struct ControlSocketConfig {
  std::string path = "/run/sluice/sluice.sock";
  uint32_t mode = 0660;  // file mode bits of the socket
  std::string group;     // group owning the socket; empty = root's
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9650";  // host:port ([v6]:port); empty = off
};

struct XdpConfig {
  std::vector<std::string> interfaces;
  XdpAttachMode mode = XdpAttachMode::kNative;
  /// Outer source addresses of the encapsulation; the one of a family is
  /// required when a backend of that family exists.
  std::optional<IpAddress> encap_source_v4;
  std::optional<IpAddress> encap_source_v6;
  uint32_t mtu = 1500;  // bytes, of the outer packet
  /// Static next hop; unset = resolved from the kernel's tables.
  std::optional<std::array<uint8_t, 6>> gateway_mac;
};

/// How packets reach the workers of a DPDK port (docs: README "DPDK").
enum class DpdkDistribution : uint8_t {
  /// Hardware RSS where the port has it and there is more than one worker,
  /// software distribution by the flow hash where it has not.
  kAuto,
  /// Always software distribution (one RX queue per port, read by the
  /// first worker, which hands each flow to its worker over an rte_ring).
  kSoftware,
};
const char* to_string(DpdkDistribution d);

/// Why `a` cannot be a VIP address (traffic to it does not reach one host as
/// a unicast flow: unspecified, 0.0.0.0/8, loopback, link-local, IPv4-mapped,
/// multicast, broadcast), or nullptr when it can. The text is static, for
/// error messages.
const char* unusable_as_vip(const IpAddress& a);

/// Why `a` cannot be a backend address, or nullptr: the VIP's reasons (an
/// encapsulated packet to loopback never leaves the balancer's host).
/// Config parsing and runtime `add-backend` / `add-vip` both apply it.
const char* unusable_as_backend(const IpAddress& a);

/// The DPDK fast path ([dpdk]): EAL, ports, worker lcores, memory, and the
/// encapsulation (the same keys as [xdp]). The EAL always gets --no-pci
/// unless PCI devices are named in `ports` (which become its -a allowlist).
struct DpdkConfig {
  /// Data ports, balanced: vdev strings ("net_af_packet0,iface=eth1";
  /// drivers net_af_packet, net_af_xdp, net_pcap, net_ring, net_tap,
  /// net_null, net_memif, net_virtio_user) or PCI addresses
  /// ("0000:3b:00.0"). Forwarded packets leave the port they came in on.
  std::vector<std::string> ports;
  /// The exception port toward the kernel (a net_tap or net_virtio_user
  /// vdev): non-VIP packets go there, and what the kernel sends on it goes
  /// out of ports[0]. Unset: those packets are dropped (counted).
  std::optional<std::string> kernel_port;
  /// The EAL main lcore: the control thread runs there. Default 0.
  uint32_t main_lcore = 0;
  /// Worker lcores (one RX and one TX queue each on every port); distinct,
  /// none the main lcore. Default [1].
  std::vector<uint32_t> lcores{1};
  /// The CPU each worker lcore runs on (EAL --lcores lcore@cpu), in the
  /// order of `lcores`; empty: lcore i runs on CPU i (EAL -l). Lets more
  /// workers than CPUs share them (tests on small machines); the main
  /// lcore then runs on the CPU of its own id.
  std::vector<uint32_t> worker_cpus;
  DpdkDistribution distribution = DpdkDistribution::kAuto;
  /// Descriptors per RX / TX queue.
  uint32_t rx_desc = 1024;
  uint32_t tx_desc = 1024;
  /// Mbufs in the pool (all ports and the rings), and the per-lcore cache.
  uint32_t mbufs = 8191;
  uint32_t mbuf_cache = 256;
  /// Hugepages (false: EAL --no-huge, plain memory), and the memory EAL
  /// reserves, MiB (-m).
  bool hugepages = false;
  uint32_t memory_mb = 512;
  /// EAL --file-prefix: distinct for every DPDK process on the host.
  std::string file_prefix = "sluice";
  /// More EAL arguments, as given (not those sluice sets itself).
  std::vector<std::string> eal_args;
  /// How long start-up waits for each data port's link, ms.
  uint32_t link_wait_ms = 3000;
  /// As in XdpConfig; gateway_mac is required (the DPDK path has no
  /// neighbour table to resolve it from).
  std::optional<IpAddress> encap_source_v4;
  std::optional<IpAddress> encap_source_v6;
  uint32_t mtu = 1500;
  std::optional<std::array<uint8_t, 6>> gateway_mac;
};

/// The encapsulation settings of the fast path a file configures.
struct EncapConfig {
  std::optional<IpAddress> source_v4;
  std::optional<IpAddress> source_v6;
  uint32_t mtu = 1500;  // bytes, of the outer packet
  std::optional<std::array<uint8_t, 6>> gateway_mac;
  /// "xdp" or "dpdk": where the keys are, for messages.
  const char* section = "xdp";
};

/// Announcing the VIPs over BGP ([bgp]) for several instances behind ECMP:
/// sluice keeps one route per servable VIP address in a kernel routing
/// table of its own, through a TUN device that lives exactly as long as the
/// daemon; BIRD's `kernel` protocol learns that table and BGP announces it.
struct BgpConfig {
  bool announce = false;  ///< false: keep no routes (status still reads BIRD)
  /// Kernel routing table id the routes go in: 1..4294967295 except 253,
  /// 254 and 255 (default, main, local), and no other program's.
  uint32_t table = 0;
  /// Name of the TUN device the routes point at (1-15 bytes); the kernel
  /// removes it, and every route through it, when the daemon exits.
  std::string device = "sluice-vips";
  /// BIRD's control socket, read for the BGP sessions' state; empty: not read.
  std::string bird_socket;
  /// How long an address must stay servable before it is announced (again),
  /// ms: backends coming back in this instance's view one by one must all
  /// be back first, or flows the router moves here meet a table that
  /// differs from the other instances' and land on another backend.
  uint32_t announce_delay_ms = 2000;

  bool operator==(const BgpConfig&) const = default;
};

/// A whole, validated configuration.
struct Config {
  uint32_t hash_seed = 0;  // flow-hash seed: equal across instances behind one ECMP group
  FlowTableConfig flow_table;
  CacheConfig cache;
  ControlSocketConfig control;
  MetricsConfig metrics;
  std::optional<XdpConfig> xdp;
  /// At most one of xdp and dpdk is set (one fast path per daemon).
  std::optional<DpdkConfig> dpdk;
  std::optional<BgpConfig> bgp;
  std::vector<HealthCheck> health_checks;
  std::vector<VipConfig> vips;

  /// Backends over all VIPs.
  [[nodiscard]] size_t backend_count() const;
  /// The encapsulation of [dpdk] or [xdp]; nullopt when there is neither.
  [[nodiscard]] std::optional<EncapConfig> encap() const;
  /// The health check of that name, or nullptr.
  [[nodiscard]] const HealthCheck* find_health_check(std::string_view name) const;
};

/// One problem found in a file. line and column are 1-based, 0 when unknown.
struct ConfigIssue {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string key;  // key path, e.g. "vips[1].backends[0].weight"; empty for syntax errors
  std::string message;

  /// "file:line:col: key: message" (parts that are unknown are left out).
  [[nodiscard]] std::string to_string() const;
};

/// What loading a config gives: the config when there is no error, every
/// error (in file order), and warnings (valid but probably not meant).
struct ConfigReport {
  std::optional<Config> config;
  std::vector<ConfigIssue> errors;
  std::vector<ConfigIssue> warnings;

  [[nodiscard]] bool ok() const { return errors.empty() && config.has_value(); }
};

/// Parses and validates TOML text; `file` names it in issues. Never throws.
[[nodiscard]] ConfigReport parse_config(std::string_view text, std::string_view file);

/// Reads and validates a file. Errors (in the Result): -errno when the file
/// cannot be read; problems in its content are in the report.
[[nodiscard]] Result<ConfigReport> load_config_file(const std::string& path);

/// parse_config plus what the daemon (`sluice run`, `sluice attach`) needs
/// to start: an [xdp] or [dpdk] section, and with [bgp] announce a device
/// name that can be sluice's TUN device in this network namespace (not an
/// [xdp] interface, not an existing interface other than a TUN device).
/// The daemon starts from this, and `sluice check-config` reports this, so
/// a file check-config passes is one the daemon takes.
[[nodiscard]] ConfigReport parse_daemon_config(std::string_view text, std::string_view file);

/// load_config_file with the daemon's rules (parse_daemon_config). Errors:
/// as load_config_file.
[[nodiscard]] Result<ConfigReport> load_daemon_config_file(const std::string& path);

}  // namespace sluice
