// SPDX-License-Identifier: BSD-2-Clause
// The TOML loader: turns a toml++ document into a Config, checking every
// key against the model and collecting every error with its position.
#include "control/config.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "dataplane/abi/cache.h"
#include "dataplane/abi/consts.h"
#include "dataplane/core/maglev.hpp"

namespace sluice {

const char* to_string(Protocol p) { return p == Protocol::kTcp ? "tcp" : "udp"; }

const char* to_string(Policy p) {
  switch (p) {
    case Policy::kStatic:
      return "static";
    case Policy::kLeastConn:
      return "least-conn";
    case Policy::kFastest:
      return "fastest";
  }
  return "?";
}

const char* to_string(HashFields h) {
  switch (h) {
    case HashFields::kFiveTuple:
      return "5-tuple";
    case HashFields::kSource:
      return "src";
    case HashFields::kKey:
      return "key";
  }
  return "?";
}

std::string key_hash_refusal(const VipConfig& vip) {
  if (vip.hash != HashFields::kKey) return {};
  if (vip.protocol != Protocol::kUdp)
    return "hash \"key\" routes memcached requests over UDP; a TCP connection is one stream of "
           "many keys that one backend must take whole: needs protocol \"udp\"";
  if (vip.port == 0)
    return "hash \"key\" reads memcached requests; a VIP of every port (port 0) carries other "
           "protocols: needs the memcached port";
  return {};
}

const char* to_string(CheckType t) {
  switch (t) {
    case CheckType::kTcp:
      return "tcp";
    case CheckType::kHttp:
      return "http";
    case CheckType::kMemcached:
      return "memcached";
    case CheckType::kRedis:
      return "redis";
  }
  return "?";
}

const char* to_string(XdpAttachMode m) {
  return m == XdpAttachMode::kNative ? "native" : "generic";
}

const char* to_string(DpdkDistribution d) {
  return d == DpdkDistribution::kAuto ? "auto" : "software";
}

std::optional<EncapConfig> Config::encap() const {
  EncapConfig e;
  if (dpdk) {
    e.source_v4 = dpdk->encap_source_v4;
    e.source_v6 = dpdk->encap_source_v6;
    e.mtu = dpdk->mtu;
    e.gateway_mac = dpdk->gateway_mac;
    e.section = "dpdk";
    return e;
  }
  if (!xdp) return std::nullopt;
  e.source_v4 = xdp->encap_source_v4;
  e.source_v6 = xdp->encap_source_v6;
  e.mtu = xdp->mtu;
  e.gateway_mac = xdp->gateway_mac;
  return e;
}

size_t Config::backend_count() const {
  size_t n = 0;
  for (const auto& v : vips) n += v.backends.size();
  return n;
}

const HealthCheck* Config::find_health_check(std::string_view name) const {
  for (const auto& h : health_checks)
    if (h.name == name) return &h;
  return nullptr;
}

std::string ConfigIssue::to_string() const {
  std::string s = file;
  if (line != 0) {
    s += ':' + std::to_string(line);
    if (column != 0) s += ':' + std::to_string(column);
  }
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

namespace {

using Pos = toml::source_position;

// Edit distance, to suggest the key a typo meant.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0u : 1u)});
      diag = up;
    }
  }
  return row[b.size()];
}

// What a value is, for "got ..." in messages: the value itself for
// scalars, its kind otherwise.
std::string describe(const toml::node& n) {
  if (const auto* s = n.as_string()) return '"' + s->get() + '"';
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = n.as_floating_point()) {
    std::ostringstream o;
    o << f->get();
    return o.str();
  }
  if (n.is_table()) return "a table";
  if (const auto* a = n.as_array()) return a->empty() ? "an empty array" : "an array";
  return "a date/time";
}

std::string index_path(std::string_view base, size_t i) {
  return std::string(base) + '[' + std::to_string(i) + ']';
}

std::string join(const std::vector<std::string_view>& words) {
  std::string s;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i != 0) s += i + 1 == words.size() ? " or " : ", ";
    s += words[i];
  }
  return s;
}

// "02:00:5e:00:53:01" into 6 bytes.
bool parse_mac(std::string_view text, std::array<uint8_t, 6>& out) {
  if (text.size() != 17) return false;
  for (size_t i = 0; i < 6; ++i) {
    if (i != 0 && text[i * 3 - 1] != ':') return false;
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = text[i * 3 + k];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        return false;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return true;
}

// Reads one table at a time: every getter reports its own errors and
// returns nullopt for a missing or bad value, so the caller keeps the
// default and goes on checking the rest of the file.
class Checker {
 public:
  Checker(std::string_view file, bool daemon) : file_(file), daemon_(daemon) {}

  void error(Pos p, std::string key, std::string message) {
    report_.errors.push_back({file_, p.line, p.column, std::move(key), std::move(message)});
  }
  void warn(Pos p, std::string key, std::string message) {
    report_.warnings.push_back({file_, p.line, p.column, std::move(key), std::move(message)});
  }

  // Every key of `t` must be one of `allowed`.
  void check_keys(const toml::table& t, std::string_view path,
                  const std::vector<std::string_view>& allowed) {
    for (auto&& [k, v] : t) {
      if (std::find(allowed.begin(), allowed.end(), k.str()) != allowed.end()) continue;
      std::string msg = "unknown key";
      std::string_view best;
      size_t best_d = 3;
      for (auto a : allowed) {
        const size_t d = edit_distance(k.str(), a);
        if (d < best_d) best_d = d, best = a;
      }
      if (!best.empty())
        msg += " (did you mean \"" + std::string(best) + "\"?)";
      else
        msg += "; expected one of: " + join(allowed);
      error(k.source().begin, child(path, k.str()), std::move(msg));
      (void)v;
    }
  }

  static std::string child(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : std::string(path) + '.' + std::string(key);
  }

  std::optional<int64_t> integer(const toml::table& t, std::string_view key, std::string_view path,
                                 int64_t lo, int64_t hi, std::string_view extra = {}) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* i = n->as_integer();
    if (i == nullptr || i->get() < lo || i->get() > hi) {
      error(n->source().begin, child(path, key),
            "expected an integer " + std::to_string(lo) + ".." + std::to_string(hi) +
                std::string(extra) + ", got " + describe(*n));
      return std::nullopt;
    }
    return i->get();
  }

  template <class T>
  void set_u(const toml::table& t, std::string_view key, std::string_view path, int64_t lo,
             int64_t hi, T& out) {
    if (auto v = integer(t, key, path, lo, hi)) out = static_cast<T>(*v);
  }

  std::optional<std::string> string(const toml::table& t, std::string_view key,
                                    std::string_view path) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) return s->get();
    error(n->source().begin, child(path, key), "expected a string, got " + describe(*n));
    return std::nullopt;
  }

  std::optional<bool> boolean(const toml::table& t, std::string_view key, std::string_view path) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* b = n->as_boolean()) return b->get();
    error(n->source().begin, child(path, key), "expected true or false, got " + describe(*n));
    return std::nullopt;
  }

  // One of `choices`; returns its index.
  std::optional<size_t> choice(const toml::table& t, std::string_view key, std::string_view path,
                               const std::vector<std::string_view>& choices) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) {
      for (size_t i = 0; i < choices.size(); ++i)
        if (s->get() == choices[i]) return i;
    }
    std::vector<std::string> quoted;
    std::vector<std::string_view> views;
    for (auto c : choices) quoted.push_back('"' + std::string(c) + '"');
    for (const auto& q : quoted) views.push_back(q);
    error(n->source().begin, child(path, key), "expected " + join(views) + ", got " + describe(*n));
    return std::nullopt;
  }

  std::optional<IpAddress> address(const toml::table& t, std::string_view key,
                                   std::string_view path) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) {
      if (auto a = IpAddress::parse(s->get())) return a.value();
    }
    error(n->source().begin, child(path, key),
          "expected an IPv4 or IPv6 address, got " + describe(*n));
    return std::nullopt;
  }

  // A required key that is missing: reported at the table that lacks it.
  bool require(const toml::table& t, std::string_view key, std::string_view path,
               std::string_view what) {
    if (t.contains(key)) return true;
    error(t.source().begin, child(path, key), "missing; expected " + std::string(what));
    return false;
  }

  // A sub-table, or nullptr (reported when present but not a table).
  const toml::table* table(const toml::table& t, std::string_view key, std::string_view path) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (const auto* sub = n->as_table()) return sub;
    error(n->source().begin, child(path, key), "expected a table, got " + describe(*n));
    return nullptr;
  }

  void load(const toml::table& root);

  ConfigReport take() { return std::move(report_); }

 private:
  void load_flow_table(const toml::table& t, FlowTableConfig& out);
  void load_cache(const toml::table& t, CacheConfig& out);
  void load_control(const toml::table& t, ControlSocketConfig& out);
  void load_metrics(const toml::table& t, MetricsConfig& out);
  void load_xdp(const toml::table& t, XdpConfig& out);
  void load_encap(const toml::table& t, const std::string& p, std::optional<IpAddress>& v4,
                  std::optional<IpAddress>& v6, uint32_t& mtu,
                  std::optional<std::array<uint8_t, 6>>& gateway_mac);
  void load_dpdk(const toml::table& t, DpdkConfig& out);
  std::optional<std::vector<std::string>> strings(const toml::table& t, std::string_view key,
                                                  std::string_view path);
  void load_bgp(const toml::table& t, BgpConfig& out);
  void load_health_checks(const toml::table& t, std::vector<HealthCheck>& out);
  void load_vip(const toml::table& t, const std::string& path, const Config& config,
                VipConfig& out);
  void load_backend(const toml::table& t, const std::string& path, const Config& config,
                    const VipConfig& vip, BackendConfig& out);
  void check_across(const toml::table& root, const Config& config);
  // What `sluice run` / `sluice attach` need beyond a valid config.
  void check_daemon(const toml::table& root, const Config& config);

  std::string file_;
  bool daemon_;
  bool vip_port_valid_ = true;  // the VIP being loaded: its port is not in error
  ConfigReport report_;
};

void Checker::load_cache(const toml::table& t, CacheConfig& out) {
  const std::string p = "cache";
  check_keys(t, p,
             {"entries", "bytes", "ttl_ms", "hot_threshold", "period_ms", "write_settle_ms",
              "fetch_timeout_ms"});
  set_u(t, "entries", p, 1, 1 << 20, out.entries);
  set_u(t, "bytes", p, SLUICE_CACHE_KEY_MAX + SLUICE_CACHE_VALUE_MAX, int64_t{1} << 40, out.bytes);
  set_u(t, "ttl_ms", p, 1, 86400000, out.ttl_ms);
  set_u(t, "hot_threshold", p, 1, 1 << 30, out.hot_threshold);
  set_u(t, "period_ms", p, 10, 3600000, out.period_ms);
  set_u(t, "write_settle_ms", p, 0, 60000, out.write_settle_ms);
  set_u(t, "fetch_timeout_ms", p, 1, 60000, out.fetch_timeout_ms);
}

void Checker::load_flow_table(const toml::table& t, FlowTableConfig& out) {
  const std::string p = "flow_table";
  check_keys(t, p, {"flows_per_core", "probation_per_core", "tcp_idle_ms", "udp_idle_ms"});
  set_u(t, "flows_per_core", p, 1, 1 << 24, out.flows_per_core);
  set_u(t, "probation_per_core", p, 1, 1 << 24, out.probation_per_core);
  set_u(t, "tcp_idle_ms", p, 1, 86400000, out.tcp_idle_ms);
  set_u(t, "udp_idle_ms", p, 1, 86400000, out.udp_idle_ms);
}

void Checker::load_control(const toml::table& t, ControlSocketConfig& out) {
  const std::string p = "control";
  check_keys(t, p, {"socket", "mode", "group"});
  if (auto s = string(t, "socket", p)) {
    if (s->empty() || s->front() != '/' || s->size() >= 108)
      error(t.get("socket")->source().begin, child(p, "socket"),
            "expected an absolute path shorter than 108 bytes, got " + describe(*t.get("socket")));
    else
      out.path = *s;
  }
  if (const toml::node* n = t.get("mode")) {
    // TOML has no leading-zero octal, so the mode is a string ("0660") or
    // an 0o octal integer (0o660).
    std::optional<int64_t> mode;
    if (const auto* i = n->as_integer()) mode = i->get();
    if (const auto* s = n->as_string()) {
      const std::string& text = s->get();
      if (!text.empty() && text.size() <= 4 &&
          text.find_first_not_of("01234567") == std::string::npos)
        mode = std::stoll(text, nullptr, 8);
    }
    if (!mode || *mode < 0 || *mode > 0777)
      error(n->source().begin, child(p, "mode"),
            "expected file mode bits as an octal string (\"0660\") or 0o660, got " + describe(*n));
    else
      out.mode = static_cast<uint32_t>(*mode);
  }
  if (auto g = string(t, "group", p)) out.group = *g;
}

void Checker::load_metrics(const toml::table& t, MetricsConfig& out) {
  const std::string p = "metrics";
  check_keys(t, p, {"listen"});
  const auto s = string(t, "listen", p);
  if (!s) return;
  if (s->empty()) {
    out.listen.clear();
    return;
  }
  // host:port, with an IPv6 host in brackets.
  const size_t colon = s->rfind(':');
  bool ok = colon != std::string::npos && colon + 1 < s->size();
  if (ok) {
    std::string host = s->substr(0, colon);
    const std::string port = s->substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
      ok = IpAddress::parse(host).ok() && IpAddress::parse(host).value().is_v6();
    } else {
      ok = IpAddress::parse(host).ok() && !IpAddress::parse(host).value().is_v6();
    }
    ok = ok && port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5 &&
         std::stoi(port) >= 1 && std::stoi(port) <= 65535;
  }
  if (ok)
    out.listen = *s;
  else
    error(t.get("listen")->source().begin, child(p, "listen"),
          "expected \"ADDRESS:PORT\" (\"[IPv6]:PORT\"), or \"\" for off, got " +
              describe(*t.get("listen")));
}

void Checker::load_xdp(const toml::table& t, XdpConfig& out) {
  const std::string p = "xdp";
  check_keys(t, p,
             {"interfaces", "mode", "encap_source_v4", "encap_source_v6", "mtu", "gateway_mac"});
  if (require(t, "interfaces", p, "an array of interface names")) {
    const toml::node* n = t.get("interfaces");
    const auto* arr = n->as_array();
    if (arr == nullptr || arr->empty()) {
      error(n->source().begin, child(p, "interfaces"),
            "expected a non-empty array of interface names, got " + describe(*n));
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        const auto* s = e.as_string();
        if (s == nullptr || s->get().empty() || s->get().size() > 15 ||
            s->get().find_first_of("/ \t") != std::string::npos) {
          error(e.source().begin, index_path(child(p, "interfaces"), i),
                "expected an interface name (1-15 bytes, no '/' or spaces), got " + describe(e));
        } else if (std::find(out.interfaces.begin(), out.interfaces.end(), s->get()) !=
                   out.interfaces.end()) {
          error(e.source().begin, index_path(child(p, "interfaces"), i),
                "duplicate interface " + describe(e));
        } else {
          out.interfaces.push_back(s->get());
        }
      }
    }
  }
  if (auto m = choice(t, "mode", p, {"native", "generic"}))
    out.mode = static_cast<XdpAttachMode>(*m);
  load_encap(t, p, out.encap_source_v4, out.encap_source_v6, out.mtu, out.gateway_mac);
}

void Checker::load_encap(const toml::table& t, const std::string& p, std::optional<IpAddress>& v4,
                         std::optional<IpAddress>& v6, uint32_t& mtu,
                         std::optional<std::array<uint8_t, 6>>& gateway_mac) {
  if (auto a = address(t, "encap_source_v4", p)) {
    if (a->is_v6())
      error(t.get("encap_source_v4")->source().begin, child(p, "encap_source_v4"),
            "expected an IPv4 address, got " + describe(*t.get("encap_source_v4")));
    else
      v4 = *a;
  }
  if (auto a = address(t, "encap_source_v6", p)) {
    if (!a->is_v6())
      error(t.get("encap_source_v6")->source().begin, child(p, "encap_source_v6"),
            "expected an IPv6 address, got " + describe(*t.get("encap_source_v6")));
    else
      v6 = *a;
  }
  set_u(t, "mtu", p, 576, 9216, mtu);
  if (auto s = string(t, "gateway_mac", p)) {
    std::array<uint8_t, 6> mac{};
    if (parse_mac(*s, mac) && (mac[0] & 1) != 0)
      // The I/G bit (IEEE 802, first octet bit 0): broadcast and multicast
      // frames reach every station, or none that routes them back.
      error(t.get("gateway_mac")->source().begin, child(p, "gateway_mac"),
            "expected the next hop's own (unicast) MAC, got the group address " + *s +
                " (broadcast or multicast: the least significant bit of the first octet is set)");
    else if (parse_mac(*s, mac))
      gateway_mac = mac;
    else
      error(t.get("gateway_mac")->source().begin, child(p, "gateway_mac"),
            "expected a MAC address like \"02:00:5e:00:53:01\", got " +
                describe(*t.get("gateway_mac")));
  }
}

// An array of strings; nullopt when missing, not an array, or when any
// element is not a string (each reported).
std::optional<std::vector<std::string>> Checker::strings(const toml::table& t, std::string_view key,
                                                         std::string_view path) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* arr = n->as_array();
  if (arr == nullptr) {
    error(n->source().begin, child(path, key), "expected an array of strings, got " + describe(*n));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& e = (*arr)[i];
    if (const auto* s = e.as_string()) {
      out.push_back(s->get());
    } else {
      error(e.source().begin, index_path(child(path, key), i),
            "expected a string, got " + describe(e));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

namespace {

// The vdev drivers a [dpdk] port may name (MACHINE.md: those that load on
// these hosts); a kernel_port only the ones the kernel sees as an interface.
const std::vector<std::string_view> kDataDrivers = {"net_af_packet", "net_af_xdp",     "net_pcap",
                                                    "net_ring",      "net_tap",        "net_null",
                                                    "net_memif",     "net_virtio_user"};
const std::vector<std::string_view> kKernelDrivers = {"net_tap", "net_virtio_user"};

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "DDDD:BB:DD.F" or "BB:DD.F".
bool is_pci_address(std::string_view s) {
  if (s.size() == 12) {
    if (s[4] != ':') return false;
    for (size_t i = 0; i < 4; ++i)
      if (!is_hex(s[i])) return false;
    s.remove_prefix(5);
  }
  return s.size() == 7 && is_hex(s[0]) && is_hex(s[1]) && s[2] == ':' && is_hex(s[3]) &&
         is_hex(s[4]) && s[5] == '.' && s[6] >= '0' && s[6] <= '7';
}

// "" when `s` is a vdev of one of `drivers` (driver name, then an instance
// suffix of letters, digits or '_', then ",key=value" arguments), else why
// not.
std::string vdev_problem(std::string_view s, const std::vector<std::string_view>& drivers) {
  const std::string_view name = s.substr(0, s.find(','));
  for (std::string_view d : drivers) {
    if (name.substr(0, d.size()) != d) continue;
    const std::string_view suffix = name.substr(d.size());
    const bool ok = !suffix.empty() && std::all_of(suffix.begin(), suffix.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
    if (ok && s.find_first_of(" \t\n") == std::string_view::npos) return "";
    return "expected \"" + std::string(d) +
           "<N>[,key=value...]\" (an instance number after the driver name, no spaces)";
  }
  return "expected a vdev of " + join(drivers);
}

// EAL arguments sluice sets from other keys, and the key that sets each.
const std::vector<std::pair<std::string_view, std::string_view>> kOwnEalArgs = {
    {"-l", "lcores"},
    {"--lcores", "lcores"},
    {"-c", "lcores"},
    {"--main-lcore", "main_lcore"},
    {"-a", "ports"},
    {"--allow", "ports"},
    {"-b", "ports"},
    {"--block", "ports"},
    {"--vdev", "ports"},
    {"--no-pci", "ports"},
    {"--no-huge", "hugepages"},
    {"-m", "memory_mb"},
    {"--file-prefix", "file_prefix"},
    {"--in-memory", "file_prefix"},
};

}  // namespace

void Checker::load_dpdk(const toml::table& t, DpdkConfig& out) {
  const std::string p = "dpdk";
  check_keys(
      t, p,
      {"ports", "kernel_port", "main_lcore", "lcores", "worker_cpus", "distribution", "rx_desc",
       "tx_desc", "mbufs", "mbuf_cache", "hugepages", "memory_mb", "file_prefix", "eal_args",
       "link_wait_ms", "encap_source_v4", "encap_source_v6", "mtu", "gateway_mac"});
  if (require(t, "ports", p, "an array of vdev strings or PCI addresses")) {
    if (auto ports = strings(t, "ports", p)) {
      const toml::array& arr = *t.get("ports")->as_array();
      if (ports->empty())
        error(arr.source().begin, child(p, "ports"),
              "expected at least one port (a vdev such as \"net_af_packet0,iface=eth1\", or a "
              "PCI address)");
      for (size_t i = 0; i < ports->size(); ++i) {
        const std::string& s = (*ports)[i];
        const std::string problem = is_pci_address(s) ? "" : vdev_problem(s, kDataDrivers);
        const std::string name = s.substr(0, s.find(','));
        const bool dup = std::any_of(out.ports.begin(), out.ports.end(), [&](const std::string& o) {
          return o.substr(0, o.find(',')) == name;
        });
        if (!problem.empty())
          error(arr[i].source().begin, index_path(child(p, "ports"), i),
                problem + " or a PCI address (\"0000:3b:00.0\"), got " + describe(arr[i]));
        else if (dup)
          error(arr[i].source().begin, index_path(child(p, "ports"), i),
                "duplicate port \"" + name + "\"");
        else
          out.ports.push_back(s);
      }
    }
  }
  if (auto k = string(t, "kernel_port", p)) {
    const std::string problem = vdev_problem(*k, kKernelDrivers);
    const std::string name = k->substr(0, k->find(','));
    if (!problem.empty())
      error(t.get("kernel_port")->source().begin, child(p, "kernel_port"),
            problem + ", got " + describe(*t.get("kernel_port")));
    else if (std::any_of(out.ports.begin(), out.ports.end(),
                         [&](const std::string& o) { return o.substr(0, o.find(',')) == name; }))
      error(t.get("kernel_port")->source().begin, child(p, "kernel_port"),
            "\"" + name + "\" is also a data port");
    else
      out.kernel_port = *k;
  }
  set_u(t, "main_lcore", p, 0, 1023, out.main_lcore);
  if (const toml::node* n = t.get("lcores")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || arr->empty()) {
      error(n->source().begin, child(p, "lcores"),
            "expected a non-empty array of worker lcore ids, got " + describe(*n));
    } else {
      out.lcores.clear();
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = (*arr)[i];
        const auto* v = e.as_integer();
        const std::string ep = index_path(child(p, "lcores"), i);
        if (v == nullptr || v->get() < 0 || v->get() > 1023) {
          error(e.source().begin, ep, "expected an lcore id 0..1023, got " + describe(e));
          continue;
        }
        const auto id = static_cast<uint32_t>(v->get());
        if (std::find(out.lcores.begin(), out.lcores.end(), id) != out.lcores.end())
          error(e.source().begin, ep, "duplicate lcore " + std::to_string(id));
        else if (id == out.main_lcore)
          error(e.source().begin, ep,
                "lcore " + std::to_string(id) +
                    " is the main lcore (the control thread's); workers need their own");
        else
          out.lcores.push_back(id);
      }
    }
  } else if (std::find(out.lcores.begin(), out.lcores.end(), out.main_lcore) != out.lcores.end()) {
    error(t.source().begin, child(p, "lcores"),
          "missing; the default [1] is the main lcore: name the worker lcores");
  }
  if (const toml::node* n = t.get("worker_cpus")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || arr->size() != out.lcores.size()) {
      error(n->source().begin, child(p, "worker_cpus"),
            "expected an array of " + std::to_string(out.lcores.size()) +
                " CPU ids, one per worker lcore, got " + describe(*n));
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        const auto* v = (*arr)[i].as_integer();
        if (v == nullptr || v->get() < 0 || v->get() > 1023)
          error((*arr)[i].source().begin, index_path(child(p, "worker_cpus"), i),
                "expected a CPU id 0..1023, got " + describe((*arr)[i]));
        else
          out.worker_cpus.push_back(static_cast<uint32_t>(v->get()));
      }
    }
  }
  // A CPU this machine lacks fails the start (EAL); said here as a warning,
  // not an error: a config may be checked on another machine than its own.
  if (const long cpus = sysconf(_SC_NPROCESSORS_CONF); cpus > 0) {
    const auto missing = [&](uint32_t cpu) { return static_cast<long>(cpu) >= cpus; };
    const std::string have = " (this machine has " + std::to_string(cpus) + " CPUs)";
    if (missing(out.main_lcore))
      warn(t.source().begin, child(p, "main_lcore"),
           "lcore " + std::to_string(out.main_lcore) + " runs on CPU " +
               std::to_string(out.main_lcore) + ", which this machine does not have" + have);
    for (size_t i = 0; i < out.lcores.size(); ++i) {
      const uint32_t cpu = out.worker_cpus.empty() ? out.lcores[i] : out.worker_cpus[i];
      if (!missing(cpu)) continue;
      warn(t.source().begin, child(p, out.worker_cpus.empty() ? "lcores" : "worker_cpus"),
           "worker lcore " + std::to_string(out.lcores[i]) + " runs on CPU " + std::to_string(cpu) +
               ", which this machine does not have" + have +
               (out.worker_cpus.empty() ? "; worker_cpus can place lcores on CPUs it has" : ""));
    }
  }
  if (auto c = choice(t, "distribution", p, {"auto", "software"}))
    out.distribution = static_cast<DpdkDistribution>(*c);
  set_u(t, "rx_desc", p, 64, 32768, out.rx_desc);
  set_u(t, "tx_desc", p, 64, 32768, out.tx_desc);
  set_u(t, "mbufs", p, 1024, 16777215, out.mbufs);
  set_u(t, "mbuf_cache", p, 0, 512, out.mbuf_cache);
  if (auto b = boolean(t, "hugepages", p)) out.hugepages = *b;
  set_u(t, "memory_mb", p, 64, 1048576, out.memory_mb);
  if (auto f = string(t, "file_prefix", p)) {
    const bool ok = !f->empty() && f->size() <= 64 && std::all_of(f->begin(), f->end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    }) && f->front() != '.';
    if (ok)
      out.file_prefix = *f;
    else
      error(t.get("file_prefix")->source().begin, child(p, "file_prefix"),
            "expected 1-64 of letters, digits, '-', '_', '.' (not first), got " +
                describe(*t.get("file_prefix")));
  }
  if (auto args = strings(t, "eal_args", p)) {
    const toml::array& arr = *t.get("eal_args")->as_array();
    for (size_t i = 0; i < args->size(); ++i) {
      const std::string& a = (*args)[i];
      const std::string flag = a.substr(0, a.find('='));
      const auto own = std::find_if(kOwnEalArgs.begin(), kOwnEalArgs.end(),
                                    [&](const auto& o) { return o.first == flag; });
      if (own != kOwnEalArgs.end())
        error(arr[i].source().begin, index_path(child(p, "eal_args"), i),
              "sluice sets " + flag + " itself: use dpdk." + std::string(own->second));
      else
        out.eal_args.push_back(a);
    }
  }
  set_u(t, "link_wait_ms", p, 0, 600000, out.link_wait_ms);
  load_encap(t, p, out.encap_source_v4, out.encap_source_v6, out.mtu, out.gateway_mac);
  if (!out.gateway_mac && !t.contains("gateway_mac"))
    error(t.source().begin, child(p, "gateway_mac"),
          "missing; expected the next hop's MAC (\"02:00:5e:00:53:01\"): the DPDK path does "
          "not resolve neighbours");
}

void Checker::load_bgp(const toml::table& t, BgpConfig& out) {
  const std::string p = "bgp";
  check_keys(t, p, {"announce", "table", "device", "bird_socket", "announce_delay_ms"});
  set_u(t, "announce_delay_ms", p, 0, 600000, out.announce_delay_ms);
  if (auto b = boolean(t, "announce", p)) out.announce = *b;
  if (out.announce) require(t, "table", p, "a routing table id of sluice's own (1..4294967295)");
  if (auto id = integer(t, "table", p, 1, 0xFFFFFFFFll)) {
    // The kernel's own tables: routes there would take effect in this host.
    if (*id >= 253 && *id <= 255)
      error(t.get("table")->source().begin, child(p, "table"),
            "253, 254 and 255 are the kernel's default, main and local tables; expected a "
            "table of sluice's own");
    else
      out.table = static_cast<uint32_t>(*id);
  }
  if (auto d = string(t, "device", p)) {
    if (d->empty() || d->size() > 15 || d->find_first_of("/: \t") != std::string::npos ||
        *d == "." || *d == "..")
      error(t.get("device")->source().begin, child(p, "device"),
            "expected an interface name (1-15 bytes, no '/', ':' or spaces), got " +
                describe(*t.get("device")));
    else if (*d == "lo")
      error(t.get("device")->source().begin, child(p, "device"),
            "\"lo\" is the loopback interface; expected the name of a TUN device of sluice's "
            "own (default \"sluice-vips\")");
    else
      out.device = *d;
  }
  if (auto s = string(t, "bird_socket", p)) {
    if (!s->empty() && (s->front() != '/' || s->size() >= 108))
      error(t.get("bird_socket")->source().begin, child(p, "bird_socket"),
            "expected an absolute path shorter than 108 bytes, got " +
                describe(*t.get("bird_socket")));
    else
      out.bird_socket = *s;
  }
}

void Checker::load_health_checks(const toml::table& t, std::vector<HealthCheck>& out) {
  for (auto&& [k, v] : t) {
    const std::string p = child("health_checks", k.str());
    const auto* ht = v.as_table();
    if (ht == nullptr) {
      error(v.source().begin, p,
            "expected a table ([health_checks." + std::string(k.str()) + "]), got " + describe(v));
      continue;
    }
    HealthCheck h;
    h.name = std::string(k.str());
    check_keys(
        *ht, p,
        {"type", "interval_ms", "timeout_ms", "rise", "fall", "port", "path", "expect_status"});
    bool type_known = false;
    if (require(*ht, "type", p, "\"tcp\", \"http\", \"memcached\" or \"redis\"")) {
      if (auto c = choice(*ht, "type", p, {"tcp", "http", "memcached", "redis"})) {
        h.type = static_cast<CheckType>(*c);
        type_known = true;
      }
    }
    set_u(*ht, "interval_ms", p, 10, 3600000, h.interval_ms);
    set_u(*ht, "timeout_ms", p, 1, 3600000, h.timeout_ms);
    set_u(*ht, "rise", p, 1, 1000, h.rise);
    set_u(*ht, "fall", p, 1, 1000, h.fall);
    set_u(*ht, "port", p, 1, 65535, h.port);
    if (h.timeout_ms > h.interval_ms) {
      const toml::node* n = ht->get("timeout_ms");
      error(n != nullptr ? n->source().begin : ht->source().begin, child(p, "timeout_ms"),
            "expected at most interval_ms (" + std::to_string(h.interval_ms) + "), got " +
                std::to_string(h.timeout_ms));
    }
    const bool http = h.type == CheckType::kHttp;
    for (std::string_view key : {"path", "expect_status"}) {
      if (type_known && !http && ht->contains(key))
        error(ht->get(key)->source().begin, child(p, key),
              "only for type \"http\" (this check is \"" + std::string(to_string(h.type)) + "\")");
    }
    if (auto s = string(*ht, "path", p)) {
      if (s->empty() || s->front() != '/' || s->find_first_of(" \r\n") != std::string::npos)
        error(ht->get("path")->source().begin, child(p, "path"),
              "expected a path starting with '/' and without spaces, got " +
                  describe(*ht->get("path")));
      else
        h.http_path = *s;
    }
    set_u(*ht, "expect_status", p, 100, 599, h.http_expect_status);
    out.push_back(std::move(h));
  }
}

void Checker::load_backend(const toml::table& t, const std::string& p, const Config& config,
                           const VipConfig& vip, BackendConfig& out) {
  check_keys(t, p, {"address", "weight", "capacity", "health_check"});
  if (require(t, "address", p, "an IPv4 or IPv6 address")) {
    if (auto a = address(t, "address", p)) {
      out.addr = *a;
      if (const char* why = unusable_as_backend(*a))
        error(t.get("address")->source().begin, child(p, "address"),
              std::string("expected a unicast address of another host, got ") + why + " (" +
                  a->to_string() + ")");
      else if (vip.addr.is_v6() && !a->is_v6())
        error(t.get("address")->source().begin, child(p, "address"),
              "an IPv6 VIP needs IPv6 backends (there is no IPv6-in-IPv4 encapsulation), got " +
                  describe(*t.get("address")));
    }
  }
  set_u(t, "weight", p, 0, 65535, out.weight);
  if (auto c = integer(t, "capacity", p, 1, 100000000)) out.capacity = static_cast<uint32_t>(*c);
  if (vip.policy == Policy::kLeastConn && !out.capacity)
    if (!t.contains("capacity"))
      error(t.source().begin, child(p, "capacity"),
            "missing; policy \"least-conn\" needs each backend's capacity (concurrent flows)");
  if (auto h = string(t, "health_check", p)) {
    if (config.find_health_check(*h) == nullptr) {
      std::vector<std::string_view> names;
      for (const auto& hc : config.health_checks) names.push_back(hc.name);
      error(t.get("health_check")->source().begin, child(p, "health_check"),
            "no [health_checks." + *h + "]" +
                (names.empty() ? std::string(" (none is defined)") : "; defined: " + join(names)));
    } else {
      out.health_check = *h;
      const HealthCheck* hc = config.find_health_check(*h);
      if (hc->port == 0 && vip.port == 0 && vip_port_valid_)
        error(t.get("health_check")->source().begin, child(p, "health_check"),
              "the VIP has port 0 (every port), so health_checks." + *h + " needs a port");
    }
  }
  if (vip.policy == Policy::kFastest && out.health_check.empty() && !t.contains("health_check"))
    error(t.source().begin, child(p, "health_check"),
          "missing; policy \"fastest\" weighs backends by probe response time");
}

void Checker::load_vip(const toml::table& t, const std::string& p, const Config& config,
                       VipConfig& out) {
  check_keys(
      t, p,
      {"name", "address", "port", "protocol", "policy", "hash", "cache", "table_size", "backends"});
  if (auto n = string(t, "name", p)) out.name = *n;
  if (require(t, "address", p, "an IPv4 or IPv6 address")) {
    if (auto a = address(t, "address", p)) {
      out.addr = *a;
      if (const char* why = unusable_as_vip(*a))
        error(t.get("address")->source().begin, child(p, "address"),
              std::string("expected a unicast address, got ") + why + " (" + a->to_string() + ")");
    }
  }
  const size_t errors_before_port = report_.errors.size();
  if (require(t, "port", p, "an integer 0..65535 (0 = every port)"))
    set_u(t, "port", p, 0, 65535, out.port);
  // A bad port is reported once, not again by each backend's check of it.
  vip_port_valid_ = report_.errors.size() == errors_before_port;
  if (auto c = choice(t, "protocol", p, {"tcp", "udp"})) out.protocol = static_cast<Protocol>(*c);
  if (auto c = choice(t, "policy", p, {"static", "least-conn", "fastest"}))
    out.policy = static_cast<Policy>(*c);
  if (auto c = choice(t, "hash", p, {"5-tuple", "src", "key"}))
    out.hash = static_cast<HashFields>(*c);
  if (auto b = boolean(t, "cache", p)) {
    out.cache = *b;
    if (*b && out.protocol != Protocol::kUdp)
      error(t.get("cache")->source().begin, child(p, "cache"),
            "the hot-object cache answers memcached over UDP: needs protocol \"udp\"");
  }
  if (const std::string why = key_hash_refusal(out); !why.empty())
    error(t.get("hash")->source().begin, child(p, "hash"), why);
  if (out.name.empty())
    out.name = (out.addr.is_v6() ? '[' + out.addr.to_string() + ']' : out.addr.to_string()) + ':' +
               std::to_string(out.port) + '/' + to_string(out.protocol);

  if (const toml::node* n = t.get("backends")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      error(n->source().begin, child(p, "backends"),
            "expected an array of tables ([[vips.backends]]), got " + describe(*n));
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        const std::string bp = index_path(child(p, "backends"), i);
        const auto* bt = (*arr)[i].as_table();  // never null in an array of tables
        if (bt == nullptr) continue;
        BackendConfig b;
        load_backend(*bt, bp, config, out, b);
        const toml::node* addr_node = bt->get("address");
        for (size_t j = 0; j < out.backends.size(); ++j) {
          if (out.backends[j].addr == b.addr && addr_node != nullptr)
            error(addr_node->source().begin, child(bp, "address"),
                  "duplicate backend " + b.addr.to_string() + " (also backends[" +
                      std::to_string(j) + "])");
        }
        out.backends.push_back(std::move(b));
      }
    }
  }
  if (out.backends.size() > SLUICE_MAX_BACKENDS)
    error(t.source().begin, child(p, "backends"),
          "expected at most " + std::to_string(SLUICE_MAX_BACKENDS) + " backends, got " +
              std::to_string(out.backends.size()));

  if (const toml::node* n = t.get("table_size")) {
    const auto* s = n->as_string();
    const auto* i = n->as_integer();
    if (s != nullptr && s->get() == "auto") {
      out.table_size_auto = true;
      out.table_size = maglev_auto_table_size(out.backends.size());
    } else if (i != nullptr && i->get() >= kMaglevMinSize && i->get() <= kMaglevMaxSize &&
               is_prime(static_cast<uint32_t>(i->get()))) {
      out.table_size = static_cast<uint32_t>(i->get());
    } else {
      std::string msg = "expected a prime " + std::to_string(kMaglevMinSize) + ".." +
                        std::to_string(kMaglevMaxSize) + " or \"auto\", got " + describe(*n);
      if (i != nullptr && i->get() >= kMaglevMinSize && i->get() <= kMaglevMaxSize)
        msg += " (the next prime is " +
               std::to_string(next_prime(static_cast<uint32_t>(i->get()))) + ")";
      error(n->source().begin, child(p, "table_size"), std::move(msg));
    }
  }
  if (out.backends.size() > out.table_size)
    error(t.source().begin, child(p, "table_size"),
          "expected at least one entry per backend: " + std::to_string(out.backends.size()) +
              " backends, table size " + std::to_string(out.table_size));

  if (out.backends.empty()) {
    warn(t.source().begin, p, "no backends: packets to this VIP are dropped (no_backend)");
  } else if (std::all_of(out.backends.begin(), out.backends.end(),
                         [](const BackendConfig& b) { return b.weight == 0; })) {
    warn(t.source().begin, p, "every backend has weight 0: the VIP is drained (no new flows)");
  }
}

// Checks that need the whole file: duplicates, references, encap sources.
void Checker::check_across(const toml::table& root, const Config& config) {
  const toml::array* vips = root.get_as<toml::array>("vips");
  for (size_t i = 0; vips != nullptr && i < config.vips.size(); ++i) {
    const VipConfig& a = config.vips[i];
    const auto* tp = (*vips)[i].as_table();
    if (tp == nullptr) continue;
    const toml::table& ta = *tp;
    for (size_t j = 0; j < i; ++j) {
      const VipConfig& b = config.vips[j];
      if (a.addr == b.addr && a.port == b.port && a.protocol == b.protocol)
        error(ta.source().begin, index_path("vips", i),
              "duplicate VIP " + a.addr.to_string() + " port " + std::to_string(a.port) + " " +
                  to_string(a.protocol) + " (also vips[" + std::to_string(j) + "])");
      else if (a.name == b.name && ta.contains("name"))
        error(ta.get("name")->source().begin, index_path("vips", i) + ".name",
              "duplicate name \"" + a.name + "\" (also vips[" + std::to_string(j) + "])");
    }
    // A packet encapsulated toward a VIP address comes back to the
    // balancers that announce it, never to a backend.
    const toml::array* bes = ta.get_as<toml::array>("backends");
    for (size_t k = 0; bes != nullptr && k < a.backends.size() && k < bes->size(); ++k) {
      const auto* bt = (*bes)[k].as_table();
      const toml::node* addr = bt != nullptr ? bt->get("address") : nullptr;
      if (addr == nullptr) continue;
      for (const VipConfig& v : config.vips) {
        if (a.backends[k].addr != v.addr) continue;
        error(addr->source().begin,
              index_path(child(index_path("vips", i), "backends"), k) + ".address",
              a.backends[k].addr.to_string() + " is the address of VIP " + v.name +
                  "; expected a backend's own address");
        break;
      }
    }
  }
  if (const auto e = config.encap()) {
    bool v4 = false, v6 = false;
    for (const auto& v : config.vips)
      for (const auto& b : v.backends) (b.addr.is_v6() ? v6 : v4) = true;
    const std::string sec = e->section;
    const toml::table& xt = *root.get_as<toml::table>(sec);
    if (v4 && !e->source_v4 && !xt.contains("encap_source_v4"))
      error(xt.source().begin, sec + ".encap_source_v4",
            "missing; expected the IPv4 source of the outer header (there are IPv4 backends)");
    if (v6 && !e->source_v6 && !xt.contains("encap_source_v6"))
      error(xt.source().begin, sec + ".encap_source_v6",
            "missing; expected the IPv6 source of the outer header (there are IPv6 backends)");
  }
  const toml::table* hcs = root.get_as<toml::table>("health_checks");
  for (const auto& h : config.health_checks) {
    bool used = false;
    for (const auto& v : config.vips)
      for (const auto& b : v.backends) used = used || b.health_check == h.name;
    if (!used && hcs != nullptr)
      warn(hcs->get(h.name)->source().begin, "health_checks." + h.name, "not used by any backend");
  }
}

void Checker::load(const toml::table& root) {
  Config config;
  check_keys(root, "",
             {"hash_seed", "flow_table", "cache", "control", "metrics", "xdp", "dpdk", "bgp",
              "health_checks", "vips"});
  set_u(root, "hash_seed", "", 0, 0xFFFFFFFFll, config.hash_seed);
  if (const auto* t = table(root, "flow_table", "")) load_flow_table(*t, config.flow_table);
  if (const auto* t = table(root, "cache", "")) load_cache(*t, config.cache);
  if (const auto* t = table(root, "control", "")) load_control(*t, config.control);
  if (const auto* t = table(root, "metrics", "")) load_metrics(*t, config.metrics);
  if (const auto* t = table(root, "xdp", "")) {
    config.xdp.emplace();
    load_xdp(*t, *config.xdp);
  }
  if (const auto* t = table(root, "dpdk", "")) {
    config.dpdk.emplace();
    load_dpdk(*t, *config.dpdk);
    if (config.xdp)
      error(t->source().begin, "dpdk",
            "[xdp] and [dpdk] in one file: one daemon runs one fast path; keep one of them");
  }
  if (const auto* t = table(root, "bgp", "")) {
    config.bgp.emplace();
    load_bgp(*t, *config.bgp);
  }
  if (const auto* t = table(root, "health_checks", ""))
    load_health_checks(*t, config.health_checks);
  if (const toml::node* n = root.get("vips")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      error(n->source().begin, "vips",
            "expected an array of tables ([[vips]]), got " + describe(*n));
    } else {
      for (size_t i = 0; i < arr->size(); ++i) {
        VipConfig v;
        if (const auto* vt = (*arr)[i].as_table()) load_vip(*vt, index_path("vips", i), config, v);
        config.vips.push_back(std::move(v));
      }
      if (config.vips.size() > SLUICE_MAX_VIPS)
        error(n->source().begin, "vips",
              "expected at most " + std::to_string(SLUICE_MAX_VIPS) + " VIPs, got " +
                  std::to_string(config.vips.size()));
    }
  }
  check_across(root, config);
  if (daemon_) check_daemon(root, config);
  if (report_.errors.empty()) report_.config = std::move(config);
}

void Checker::check_daemon(const toml::table& root, const Config& config) {
  if (!config.xdp && !config.dpdk)
    error(root.source().begin, "xdp",
          "missing; `sluice run` and `sluice attach` need an [xdp] or a [dpdk] section (the "
          "fast path's interfaces and encap sources)");
  if (!config.bgp || !config.bgp->announce) return;
  const std::string& dev = config.bgp->device;
  const toml::table& bt = *root.get_as<toml::table>("bgp");
  const toml::node* n = bt.get("device");
  const Pos at = n != nullptr ? n->source().begin : bt.source().begin;
  if (config.xdp && std::find(config.xdp->interfaces.begin(), config.xdp->interfaces.end(), dev) !=
                        config.xdp->interfaces.end()) {
    error(at, "bgp.device",
          "\"" + dev +
              "\" is an [xdp] interface; expected the name of a TUN device of "
              "sluice's own");
    return;
  }
  // The daemon creates a TUN device of that name, or takes over a TUN
  // device that exists (ip tuntap add); the kernel refuses the name of any
  // other interface. Checked in the network namespace this runs in, as the
  // daemon would.
  const std::filesystem::path sys = std::filesystem::path("/sys/class/net") / dev;
  std::error_code ec;
  if (std::filesystem::exists(sys, ec) && !std::filesystem::exists(sys / "tun_flags", ec))
    error(at, "bgp.device",
          "an interface \"" + dev +
              "\" exists here and is not a TUN device; expected a name "
              "free for sluice's TUN device");
}

bool issue_before(const ConfigIssue& a, const ConfigIssue& b) {
  return std::tie(a.line, a.column) < std::tie(b.line, b.column);
}

}  // namespace

namespace {

ConfigReport parse(std::string_view text, std::string_view file, bool daemon) {
  Checker checker(file, daemon);
  try {
    const toml::table root = toml::parse(text, file);
    checker.load(root);
  } catch (const toml::parse_error& e) {
    checker.error(e.source().begin, "", std::string(e.description()));
  } catch (const std::exception& e) {
    // toml++ allocates; nothing else here throws.
    checker.error(Pos{}, "", e.what());
  }
  ConfigReport report = checker.take();
  std::stable_sort(report.errors.begin(), report.errors.end(), issue_before);
  std::stable_sort(report.warnings.begin(), report.warnings.end(), issue_before);
  return report;
}

Result<ConfigReport> load_file(const std::string& path, bool daemon) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Error{-EISDIR, path + ": is a directory"};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno != 0 ? errno : ENOENT;
    return Error{-err, path + ": cannot open: " + std::strerror(err)};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Error{-EIO, path + ": cannot read"};
  return parse(text.str(), path, daemon);
}

}  // namespace

ConfigReport parse_config(std::string_view text, std::string_view file) {
  return parse(text, file, false);
}

ConfigReport parse_daemon_config(std::string_view text, std::string_view file) {
  return parse(text, file, true);
}

Result<ConfigReport> load_config_file(const std::string& path) { return load_file(path, false); }

Result<ConfigReport> load_daemon_config_file(const std::string& path) {
  return load_file(path, true);
}

const char* unusable_as_vip(const IpAddress& a) {
  const uint8_t* b = a.ip.bytes;
  bool zero = true;
  for (size_t i = 0; i < a.size(); ++i) zero = zero && b[i] == 0;
  if (zero) return "the unspecified address";
  if (a.is_v6()) {
    if (b[0] == 0xff) return "a multicast address (ff00::/8)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "a link-local address (fe80::/10)";
    bool low_zero = true;  // the first 10 bytes
    for (size_t i = 0; i < 10; ++i) low_zero = low_zero && b[i] == 0;
    if (low_zero && b[10] == 0xff && b[11] == 0xff)
      return "an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)";
    for (size_t i = 0; i < 15; ++i)
      if (b[i] != 0) return nullptr;
    return b[15] == 1 ? "the loopback address" : nullptr;
  }
  if (b[0] == 0) return "a \"this network\" address (0.0.0.0/8)";
  if (b[0] == 127) return "a loopback address (127.0.0.0/8)";
  if (b[0] >= 224 && b[0] <= 239) return "a multicast address (224.0.0.0/4)";
  if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return "the broadcast address";
  return nullptr;
}

const char* unusable_as_backend(const IpAddress& a) { return unusable_as_vip(a); }

}  // namespace sluice
