// SPDX-License-Identifier: BSD-2-Clause
// `sluice ctl`'s tables: from the control socket's JSON results to text.
#include "control/ctl_render.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <utility>

#include "control/json_fields.hpp"

namespace sluice {

namespace {

using nlohmann::json;

using json_fields::field;
using json_fields::list;

// A value as a table cell: numbers as integers when they are, strings as
// they are, booleans yes/no, anything else "-".
std::string cell(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v.get<double>());
    return buf;
  }
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return "-";
}

std::string cell(const json& j, const char* key) { return cell(field(j, key)); }

double number(const json& v) { return v.is_number() ? v.get<double>() : 0.0; }

std::string rtt_text(const json& v) {
  if (!v.is_number()) return "-";
  const double us = v.get<double>();
  char buf[32];
  if (us >= 1000.0) {
    std::snprintf(buf, sizeof buf, "%.2fms", us / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.0fus", us);
  }
  return buf;
}

std::string rate_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, r >= 100.0 || r == 0.0 ? "%.0f" : "%.1f", r);
  return buf;
}

std::string duration_text(uint64_t s) {
  char buf[64];
  if (s >= 86400) {
    std::snprintf(buf, sizeof buf, "%llud%02lluh%02llum",
                  static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s / 3600 % 24),
                  static_cast<unsigned long long>(s / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lluh%02llum%02llus", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60),
                  static_cast<unsigned long long>(s % 60));
  }
  return buf;
}

bool numeric(const std::string& s) {
  if (s == "-") return true;
  if (s.empty()) return false;
  const size_t digits = s.find_first_not_of("0123456789.");
  if (digits == 0) return false;
  // One decimal point at most: "10.0.0.11" is an address, not a number.
  if (std::count(s.begin(), s.end(), '.') > 1) return false;
  // Allow a unit suffix such as "ms" or "us" after the number.
  return digits == std::string::npos || s.substr(digits) == "ms" || s.substr(digits) == "us";
}

}  // namespace

std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  const size_t n = header.size();
  std::vector<size_t> width(n);
  std::vector<bool> right(n, !rows.empty());
  for (size_t c = 0; c < n; ++c) width[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < n && c < row.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
      if (!numeric(row[c])) right[c] = false;
    }
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < n; ++c) {
      const std::string& s = c < row.size() ? row[c] : std::string("-");
      const std::string pad(width[c] - std::min(width[c], s.size()), ' ');
      if (c > 0) line += "  ";
      line += right[c] ? pad + s : s + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

// Status's [bgp] part: what this instance announces and BIRD's sessions.
void add_bgp_rows(const json& b, std::vector<std::vector<std::string>>& rows) {
  if (!b.is_object()) return;
  std::string head = field(b, "announce") == true
                         ? "table " + cell(b, "table") + " via " + cell(b, "device")
                         : std::string("not announcing (announce = false)");
  if (field(b, "instance_drained") == true) head += ", INSTANCE DRAINED (everything withdrawn)";
  rows.push_back({"BGP", head});
  for (const json& v : list(b, "vips"))
    rows.push_back({"  VIP", cell(v, "name") + " " + cell(v, "address") + ": " +
                                 (field(v, "announced") == true ? "announced" : "withdrawn") +
                                 (field(v, "servable") == true ? "" : " (no servable backend)")});
  // BIRD is read about once a second off the daemon's loop: how old the
  // sessions shown are.
  const json& age = field(b, "bird_age_ms");
  if (age.is_number_integer()) rows.push_back({"  BIRD", "read " + cell(age) + " ms ago"});
  if (field(b, "bird") != "running") {
    rows.push_back({"  session", "unknown (BIRD: " + cell(b, "bird_error") + ")"});
    return;
  }
  if (list(b, "sessions").empty()) rows.push_back({"  session", "none in BIRD"});
  for (const json& s : list(b, "sessions"))
    rows.push_back({"  session", cell(s, "name") + " (" + cell(s, "protocol") + "): " +
                                     cell(s, "state") +
                                     (cell(s, "info").empty() ? "" : ", " + cell(s, "info"))});
}

std::string render_status(const json& r) {
  std::string out = "sluice " + cell(r, "version") + ", pid " + cell(r, "pid");
  const json& up = field(r, "uptime_s");
  out += ", up " + (up.is_number_unsigned() ? duration_text(up.get<uint64_t>()) : cell(up)) + "\n";
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"config", cell(r, "config") + " (generation " + cell(r, "config_generation") + ")"});
  const json& fps = list(r, "fastpaths");
  if (fps.empty()) rows.push_back({"fast path", "none"});
  for (const json& fp : fps) {
    std::string text = cell(fp, "kind") + " on " + cell(fp, "interface") + " (ifindex " +
                       cell(fp, "ifindex") + ", " + cell(fp, "mode") + ", prog " +
                       cell(fp, "prog_id");
    if (field(fp, "reused_pinned_maps") == true) text += ", reused pinned maps";
    rows.push_back({"fast path", text + ")"});
    const json& problem = field(fp, "next_hop_problem");
    if (problem.is_string() && !problem.get<std::string>().empty())
      rows.push_back({"next hops", problem.get<std::string>()});
  }
  std::string panic;
  for (const json& v : list(r, "vips_in_panic")) panic += (panic.empty() ? "" : ", ") + cell(v);
  rows.push_back({"VIPs", cell(r, "vips") + (panic.empty() ? "" : " (in panic: " + panic + ")")});
  rows.push_back({"backends", cell(r, "backends") + ", " + cell(r, "backends_up") + " up"});
  add_bgp_rows(field(r, "bgp"), rows);
  for (const auto& row : rows) {
    out += row[0] + std::string(12 - row[0].size(), ' ') + row[1] + "\n";
  }
  return out;
}

std::string render_instance_drain(const json& r) {
  std::string routes;
  for (const json& a : list(r, "announced")) routes += (routes.empty() ? "" : ", ") + cell(a);
  const bool drained = field(r, "instance_drained") == true;
  // Undrained, servable VIPs come back after the hold-down, not at once.
  const std::string later = !drained && routes.empty() && field(r, "announce_delay_ms") != nullptr
                                ? " yet (servable VIPs follow after the " +
                                      cell(r, "announce_delay_ms") + " ms hold-down)"
                                : "";
  return std::string(drained ? "instance drained" : "instance undrained") +
         "; announced: " + (routes.empty() ? "nothing" : routes) + later + "\n";
}

std::string render_vips(const json& r) {
  std::vector<std::vector<std::string>> rows;
  for (const json& v : list(r, "vips")) {
    rows.push_back({cell(v, "name"), cell(v, "address"), cell(v, "port"), cell(v, "protocol"),
                    cell(v, "policy"), cell(v, "hash"), cell(v, "table_size"), cell(v, "backends"),
                    cell(v, "backends_up"), field(v, "panic") == true ? "PANIC" : "no"});
  }
  return render_table(
      {"NAME", "ADDRESS", "PORT", "PROTO", "POLICY", "HASH", "TABLE", "BACKENDS", "UP", "PANIC"},
      rows);
}

std::string render_backends(const json& r) {
  std::vector<std::vector<std::string>> rows;
  for (const json& b : list(r, "backends")) {
    rows.push_back({cell(b, "vip"), cell(b, "backend"), cell(b, "state"), cell(b, "weight"),
                    cell(b, "effective_weight"), cell(b, "table_entries"),
                    rtt_text(field(b, "rtt_us")), cell(b, "active_flows"), cell(b, "last_check")});
  }
  return render_table(
      {"VIP", "BACKEND", "STATE", "WEIGHT", "EFFECTIVE", "ENTRIES", "RTT", "FLOWS", "LAST CHECK"},
      rows);
}

std::string render_cache(const json& r) {
  std::vector<std::vector<std::string>> vips;
  for (const json& v : list(r, "vips")) {
    const json& ratio = field(v, "hit_ratio");
    char pct[16] = "-";
    if (ratio.is_number()) std::snprintf(pct, sizeof pct, "%.1f%%", ratio.get<double>() * 100);
    vips.push_back({cell(v, "name"), cell(v, "hits"), cell(v, "misses"), pct, cell(v, "fills"),
                    cell(v, "invalidations"), cell(v, "vip_invalidations"), cell(v, "evictions"),
                    cell(v, "entries"), cell(v, "bytes")});
  }
  // Keys by their VIP's name; by its id when the VIP is not listed.
  const auto vip_name = [&r](const json& id) {
    for (const json& v : list(r, "vips"))
      if (field(v, "vip_id") == id && field(v, "name").is_string()) return cell(v, "name");
    return cell(id);
  };
  std::vector<std::vector<std::string>> keys;
  for (const json& k : list(r, "hottest"))
    keys.push_back({vip_name(field(k, "vip_id")), cell(k, "key"), cell(k, "hits"),
                    cell(k, "value_bytes"), cell(k, "ttl_ms")});
  return render_table({"VIP", "HITS", "MISSES", "HIT RATIO", "FILLS", "INVALIDATED",
                       "VIP INVALIDATED", "EVICTED", "ENTRIES", "BYTES"},
                      vips) +
         "\nhottest keys:\n" + render_table({"VIP", "KEY", "HITS", "VALUE BYTES", "TTL MS"}, keys);
}

std::string render_stats(const json& r) {
  const json& g = field(r, "global");
  std::vector<std::vector<std::string>> global;
  for (const char* key : {"rx_packets", "rx_bytes", "tx_packets", "pass_packets", "flow_hits",
                          "flow_misses", "flow_insert_failed", "icmp_too_big_sent",
                          "frag_unmatched"}) {
    global.push_back({key, cell(g, key)});
  }
  std::string out = render_table({"COUNTER", "TOTAL"}, global);

  std::vector<std::vector<std::string>> drops;
  const json& d = field(g, "drops");
  if (d.is_object()) {
    for (const auto& [reason, n] : d.items()) drops.push_back({reason, cell(n)});
  }
  out += "\n";
  out += render_table({"DROP REASON", "TOTAL"}, drops);

  std::vector<std::vector<std::string>> vips;
  for (const json& v : list(r, "vips")) {
    vips.push_back({cell(v, "name"), cell(v, "packets"), cell(v, "bytes"), cell(v, "new_flows"),
                    cell(v, "drops")});
  }
  out += "\n";
  out += render_table({"VIP", "PACKETS", "BYTES", "NEW FLOWS", "DROPS"}, vips);

  std::vector<std::vector<std::string>> backends;
  for (const json& b : list(r, "backends")) {
    backends.push_back({cell(b, "vip"), cell(b, "backend"), cell(b, "packets"), cell(b, "bytes"),
                        cell(b, "new_flows")});
  }
  out += "\n";
  out += render_table({"VIP", "BACKEND", "PACKETS", "BYTES", "NEW FLOWS"}, backends);

  const json& ft = field(r, "flow_table");
  out += "\nflow table: " + cell(ft, "capacity") + " entries over all CPUs, " +
         cell(ft, "probation_capacity") + " on probation";
  if (field(ft, "active_flows").is_number())
    out += "; " + cell(ft, "active_flows") + " established flows in use (last count)";
  out += "\n";
  return out;
}

std::string render_top(const json& before, const json& after, const json& backends) {
  const double dt_s = (number(field(after, "time_ns")) - number(field(before, "time_ns"))) / 1e9;
  // Per second over the interval; "-" without an interval or with a
  // counter that went back (the fast path restarted).
  auto rate = [dt_s](const json& b, const json& a) -> std::string {
    if (dt_s <= 0.0 || !a.is_number()) return "-";
    const double d = number(a) - number(b);
    return d < 0.0 ? "-" : rate_text(d / dt_s);
  };
  auto by_key = [](const json& stats, const char* array, bool with_backend) {
    std::map<std::pair<std::string, std::string>, const json*> m;
    for (const json& e : list(stats, array)) {
      m[{cell(e, with_backend ? "vip" : "name"), with_backend ? cell(e, "backend") : ""}] = &e;
    }
    return m;
  };
  static const json kNull;

  const json& ga = field(after, "global");
  const json& gb = field(before, "global");
  double drops_total = 0.0;
  std::vector<std::vector<std::string>> drops;
  const json& da = field(ga, "drops");
  if (da.is_object()) {
    for (const auto& [reason, n] : da.items()) {
      const json& prev = field(field(gb, "drops"), reason.c_str());
      const double d = number(n) - number(prev);
      if (d > 0.0 && dt_s > 0.0) {
        drops_total += d / dt_s;
        drops.push_back({reason, rate_text(d / dt_s)});
      }
    }
  }

  std::string out = "sluice top: interval " + rate_text(dt_s) + " s, rx " +
                    rate(field(gb, "rx_packets"), field(ga, "rx_packets")) + " pkt/s, tx " +
                    rate(field(gb, "tx_packets"), field(ga, "tx_packets")) + " pkt/s, drops " +
                    (dt_s > 0.0 ? rate_text(drops_total) : "-") + "/s\n\n";

  const auto vb = by_key(before, "vips", false);
  std::vector<std::vector<std::string>> vips;
  for (const json& v : list(after, "vips")) {
    const auto it = vb.find({cell(v, "name"), ""});
    const json& p = it == vb.end() ? kNull : *it->second;
    vips.push_back({cell(v, "name"), rate(field(p, "packets"), field(v, "packets")),
                    rate(field(p, "new_flows"), field(v, "new_flows")),
                    rate(field(p, "drops"), field(v, "drops"))});
  }
  out += render_table({"VIP", "PKT/S", "NEW FLOWS/S", "DROPS/S"}, vips);

  std::map<std::pair<std::string, std::string>, const json*> health;
  for (const json& b : list(backends, "backends")) {
    health[{cell(b, "vip"), cell(b, "backend")}] = &b;
  }
  const auto bb = by_key(before, "backends", true);
  std::vector<std::vector<std::string>> rows;
  for (const json& b : list(after, "backends")) {
    const std::pair<std::string, std::string> key{cell(b, "vip"), cell(b, "backend")};
    const auto it = bb.find(key);
    const json& p = it == bb.end() ? kNull : *it->second;
    const auto h = health.find(key);
    const json& hb = h == health.end() ? kNull : *h->second;
    rows.push_back({key.first, key.second, cell(hb, "state"), cell(hb, "weight"),
                    cell(hb, "effective_weight"), rate(field(p, "packets"), field(b, "packets")),
                    rate(field(p, "new_flows"), field(b, "new_flows")), cell(hb, "active_flows"),
                    rtt_text(field(hb, "rtt_us"))});
  }
  out += "\n";
  out += render_table(
      {"VIP", "BACKEND", "STATE", "WEIGHT", "EFFECTIVE", "PKT/S", "NEW FLOWS/S", "FLOWS", "RTT"},
      rows);
  out += "\n";
  out +=
      drops.empty() ? "drops/s by reason: none\n" : render_table({"DROP REASON", "DROPS/S"}, drops);
  return out;
}

}  // namespace sluice
