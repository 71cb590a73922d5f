// SPDX-License-Identifier: BSD-2-Clause
// Rendering the Prometheus text exposition format from control-socket JSON.
#include "control/metrics.hpp"

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "control/json_fields.hpp"

namespace sluice {

namespace {

using nlohmann::json;
using Labels = std::vector<std::pair<const char*, std::string>>;

using json_fields::field;
using json_fields::list;

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

// `s` with each byte that does not begin a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF)
// replaced by U+FFFD: the exposition format's label values are UTF-8, and
// a memcached key may hold any byte but space and control characters.
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const auto byte = [&s](size_t i) { return static_cast<uint8_t>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = byte(i);
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (b < 0x80) {
      len = 1;
    } else if (b >= 0xc2 && b <= 0xdf) {
      len = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b == 0xe0) lo = 0xa0;  // overlong
      if (b == 0xed) hi = 0x9f;  // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b == 0xf0) lo = 0x90;  // overlong
      if (b == 0xf4) hi = 0x8f;  // past U+10FFFF
    }
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = k == 1 ? byte(i + 1) >= lo && byte(i + 1) <= hi : (byte(i + k) & 0xc0) == 0x80;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

// Label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline (exposition format 0.0.4).
std::string escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// A sample value; false for anything that is not a number.
bool number_text(const json& v, double scale, std::string* out) {
  char buf[40];
  if (v.is_number_unsigned() && scale == 1.0) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v.get<uint64_t>()));
  } else if (v.is_number_integer() && scale == 1.0) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v.get<int64_t>()));
  } else if (v.is_number()) {
    std::snprintf(buf, sizeof buf, "%.9g", v.get<double>() * scale);
  } else {
    return false;
  }
  *out = buf;
  return true;
}

// One metric family: its HELP/TYPE header and samples, kept together as
// the format requires.
class Family {
 public:
  Family(std::string name, const char* type, const std::string& help) : name_(std::move(name)) {
    out_ = "# HELP " + name_ + " " + escape(help, false) + "\n# TYPE " + name_ + " " + type + "\n";
  }

  void sample(const Labels& labels, const json& value, double scale = 1.0) {
    std::string v;
    if (!number_text(value, scale, &v)) return;
    out_ += name_;
    if (!labels.empty()) {
      out_ += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ",";
        out_ += std::string(labels[i].first) + "=\"" + escape(valid_utf8(labels[i].second), true) +
                "\"";
      }
      out_ += "}";
    }
    out_ += " " + v + "\n";
  }

  const std::string& text() const { return out_; }

 private:
  std::string name_;
  std::string out_;
};

void render_stats(const json& stats, std::string* out) {
  const json& g = field(stats, "global");
  static constexpr std::pair<const char*, const char*> kGlobal[] = {
      {"rx_packets", "Packets the fast path received."},
      {"rx_bytes", "Bytes the fast path received."},
      {"tx_packets", "Packets the fast path sent toward a backend (or back to a client)."},
      {"pass_packets", "Packets passed to the kernel: not for a VIP."},
      {"flow_hits", "VIP packets whose flow was in the flow table."},
      {"flow_misses", "VIP packets whose flow was not in the flow table (Maglev lookup)."},
      {"flow_insert_failed", "New flows that found no room in the flow table."},
      {"icmp_too_big_sent", "ICMP fragmentation-needed / packet-too-big messages sent."},
      {"frag_unmatched",
       "Later IP fragments passed to the kernel: no port-0 VIP at their address and no first "
       "fragment of their datagram seen (out of order, or not a VIP's)."},
  };
  for (const auto& [key, help] : kGlobal) {
    Family f(std::string("sluice_") + key + "_total", "counter", help);
    f.sample({}, field(g, key));
    *out += f.text();
  }

  Family drops("sluice_drops_total", "counter", "Packets dropped, by reason.");
  const json& d = field(g, "drops");
  if (d.is_object()) {
    for (const auto& [reason, n] : d.items()) drops.sample({{"reason", reason}}, n);
  }
  *out += drops.text();

  static constexpr std::pair<const char*, const char*> kVip[] = {
      {"packets", "Packets to the VIP."},
      {"bytes", "Bytes to the VIP."},
      {"new_flows", "New flows to the VIP."},
      {"drops", "Packets to the VIP that were dropped."},
  };
  for (const auto& [key, help] : kVip) {
    Family f(std::string("sluice_vip_") + key + "_total", "counter", help);
    for (const json& v : list(stats, "vips"))
      f.sample({{"vip", text(field(v, "name"))}}, field(v, key));
    *out += f.text();
  }

  static constexpr std::pair<const char*, const char*> kBackend[] = {
      {"packets", "Packets sent to the backend."},
      {"bytes", "Bytes sent to the backend."},
      {"new_flows", "New flows given to the backend."},
  };
  for (const auto& [key, help] : kBackend) {
    Family f(std::string("sluice_backend_") + key + "_total", "counter", help);
    for (const json& b : list(stats, "backends")) {
      f.sample({{"vip", text(field(b, "vip"))}, {"backend", text(field(b, "backend"))}},
               field(b, key));
    }
    *out += f.text();
  }

  const json& ft = field(stats, "flow_table");
  Family cap("sluice_flow_table_capacity", "gauge", "Established-flow entries over all CPUs.");
  cap.sample({}, field(ft, "capacity"));
  *out += cap.text();
  Family prob("sluice_flow_table_probation_capacity", "gauge",
              "Probation (one packet seen) flow entries over all CPUs.");
  prob.sample({}, field(ft, "probation_capacity"));
  *out += prob.text();
  Family used("sluice_flow_table_active_flows", "gauge",
              "Established flows the flow table holds (counted every few seconds), over all "
              "backends.");
  used.sample({}, field(ft, "active_flows"));
  *out += used.text();
}

void render_backends(const json& backends, std::string* out) {
  Family state("sluice_backend_state", "gauge",
               "1 for the backend's current health state, 0 for the others.");
  Family weight("sluice_backend_weight", "gauge", "Configured weight (0..65535).");
  Family effective("sluice_backend_effective_weight", "gauge",
                   "Weight the published table was built with, after health and policy.");
  Family entries("sluice_backend_table_entries", "gauge",
                 "Entries of the published Maglev table that point at the backend.");
  Family health("sluice_backend_health", "gauge",
                "1 for what the backend's probes say now (unchecked: no health check), 0 for the "
                "others; independent of draining.");
  Family probes_ok("sluice_backend_probe_successes_total", "counter",
                   "Health probes of the backend that succeeded.");
  Family probes_failed("sluice_backend_probe_failures_total", "counter",
                       "Health probes of the backend that failed.");
  Family rtt("sluice_backend_probe_rtt_seconds", "gauge",
             "Health-probe round-trip time, exponentially weighted moving average (alpha 0.2).");
  Family last_rtt("sluice_backend_probe_last_rtt_seconds", "gauge",
                  "Round-trip time of the backend's latest successful health probe.");
  Family flows("sluice_backend_active_flows", "gauge",
               "Flows the fast path holds for the backend.");
  static const json kOne = 1;
  static const json kZero = 0;
  for (const json& b : list(backends, "backends")) {
    const Labels labels{{"vip", text(field(b, "vip"))}, {"backend", text(field(b, "backend"))}};
    const std::string current = text(field(b, "state"));
    for (const char* s : {"up", "down", "draining", "unchecked"}) {
      Labels l = labels;
      l.emplace_back("state", s);
      state.sample(l, current == s ? kOne : kZero);
    }
    const std::string h = text(field(b, "health"));
    if (!h.empty()) {
      for (const char* s : {"up", "down", "unchecked"}) {
        Labels l = labels;
        l.emplace_back("state", s);
        health.sample(l, h == s ? kOne : kZero);
      }
    }
    probes_ok.sample(labels, field(b, "probes_ok"));
    probes_failed.sample(labels, field(b, "probes_failed"));
    last_rtt.sample(labels, field(b, "last_rtt_us"), 1e-6);
    weight.sample(labels, field(b, "weight"));
    effective.sample(labels, field(b, "effective_weight"));
    entries.sample(labels, field(b, "table_entries"));
    rtt.sample(labels, field(b, "rtt_us"), 1e-6);
    flows.sample(labels, field(b, "active_flows"));
  }
  for (const Family* f : {&state, &health, &weight, &effective, &entries, &probes_ok,
                          &probes_failed, &rtt, &last_rtt, &flows})
    *out += f->text();
}

void render_vips(const json& vips, std::string* out) {
  Family panic("sluice_vip_panic", "gauge",
               "1 while every backend of the VIP fails its probes and its table spreads over all "
               "non-drained backends.");
  Family total("sluice_vip_backends", "gauge", "Backends configured for the VIP.");
  Family up("sluice_vip_backends_up", "gauge", "Backends of the VIP that pass their probes.");
  for (const json& v : list(vips, "vips")) {
    const Labels labels{{"vip", text(field(v, "name"))}};
    const json& p = field(v, "panic");
    if (p.is_boolean()) panic.sample(labels, json(p.get<bool>() ? 1 : 0));
    total.sample(labels, field(v, "backends"));
    up.sample(labels, field(v, "backends_up"));
  }
  for (const Family* f : {&panic, &total, &up}) *out += f->text();
}

}  // namespace

std::string render_cache_metrics(const json& cache) {
  static constexpr struct {
    const char* field;
    const char* name;
    const char* type;
    const char* help;
  } kFamilies[] = {
      {"hits", "sluice_cache_hits_total", "counter", "Gets answered from the hot-object cache."},
      {"misses", "sluice_cache_misses_total", "counter", "Cacheable gets not answered (forwarded)."},
      {"fills", "sluice_cache_fills_total", "counter", "Values installed into the cache."},
      {"stale_fills", "sluice_cache_stale_fills_total", "counter",
       "Fills refused because a write came after their lease."},
      {"invalidations", "sluice_cache_invalidations_total", "counter",
       "Writes that invalidated their key before being forwarded."},
      {"vip_invalidations", "sluice_cache_vip_invalidations_total", "counter",
       "Requests the fast path could not follow: the VIP's whole cache invalidated."},
      {"evictions", "sluice_cache_evictions_total", "counter",
       "Entries evicted for room, on expiry, or after an invalidation."},
      {"entries", "sluice_cache_entries", "gauge", "Keys cached now."},
      {"bytes", "sluice_cache_bytes", "gauge", "Key and value bytes cached now."},
  };
  std::string out;
  for (const auto& f : kFamilies) {
    Family family(f.name, f.type, f.help);
    for (const json& v : list(cache, "vips"))
      family.sample({{"vip", text(field(v, "name"))}}, field(v, f.field));
    out += family.text();
  }

  // The hottest keys, by VIP name (a key of a VIP no longer listed is left
  // out), at most kMaxCacheKeySeries of them.
  std::map<uint64_t, std::string> vip_names;
  for (const json& v : list(cache, "vips")) {
    const json& id = field(v, "vip_id");
    if (id.is_number_unsigned()) vip_names[id.get<uint64_t>()] = text(field(v, "name"));
  }
  Family key_hits("sluice_cache_key_hits", "gauge",
                  "Gets answered from the cache for one of the " +
                      std::to_string(kMaxCacheKeySeries) +
                      " hottest cached keys, since it was cached (summed over cores and fast "
                      "paths). Keys come and go as they turn hot and cool.");
  std::set<std::pair<std::string, std::string>> seen;
  for (const json& k : list(cache, "hottest")) {
    if (seen.size() == kMaxCacheKeySeries) break;
    const json& id = field(k, "vip_id");
    const json& hits = field(k, "hits");
    if (!id.is_number_unsigned() || !field(k, "key").is_string() || !hits.is_number()) continue;
    const auto vip = vip_names.find(id.get<uint64_t>());
    if (vip == vip_names.end()) continue;
    // Two keys that differ only in bytes that are not UTF-8 read the same
    // here: the hotter (listed first) is kept, so no series repeats.
    std::string key = valid_utf8(text(field(k, "key")));
    if (!seen.insert({vip->second, key}).second) continue;
    key_hits.sample({{"vip", vip->second}, {"key", std::move(key)}}, hits);
  }
  out += key_hits.text();
  return out;
}

std::string render_metrics(const json& stats, const json& backends, const json& vips) {
  std::string out;
  render_stats(stats, &out);
  render_backends(backends, &out);
  render_vips(vips, &out);
  return out;
}

std::string render_metrics_from(const ControlHandler& handler) {
  auto result = [&handler](const char* cmd) {
    const json r = answer_request_line(json{{"cmd", cmd}}.dump(), handler);
    return r.value("ok", false) ? r.value("result", json::object()) : json::object();
  };
  return render_metrics(result("stats"), result("backends"), result("vips")) +
         render_cache_metrics(result("cache"));
}

}  // namespace sluice
