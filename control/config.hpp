// SPDX-License-Identifier: BSD-2-Clause
// The configuration model (VIPs, backends, health checks, flow table,
// control socket, metrics, XDP settings) and its TOML loader, which
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
/// What the flow hash covers: the 5-tuple, or the source address only
/// (every connection of a client meets the same backend).
enum class HashFields : uint8_t { kFiveTuple, kSource };
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

/// Per-core flow table sizes, entries, and idle timeouts, ms.
struct FlowTableConfig {
  uint32_t flows_per_core = 65536;
  uint32_t probation_per_core = 16384;
  uint32_t tcp_idle_ms = 300000;
  uint32_t udp_idle_ms = 30000;
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
  ControlSocketConfig control;
  MetricsConfig metrics;
  std::optional<XdpConfig> xdp;
  std::optional<BgpConfig> bgp;
  std::vector<HealthCheck> health_checks;
  std::vector<VipConfig> vips;

  /// Backends over all VIPs.
  [[nodiscard]] size_t backend_count() const;
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

}  // namespace sluice
