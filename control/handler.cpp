// SPDX-License-Identifier: BSD-2-Clause
// The control-socket request handler: argument checking, the commands of
// PROTOCOL.md over the Balancer, and their JSON results.
#include "control/handler.hpp"

#include <cerrno>
#include <ctime>
#include <initializer_list>
#include <optional>
#include <unistd.h>

namespace sluice::control {
namespace {

using nlohmann::json;

// A request that cannot be carried out, with its error code.
struct Fail {
  std::string code;
  std::string message;
};

template <class T>
using Arg = std::variant<T, Fail>;

Fail bad_request(std::string m) { return Fail{"bad_request", std::move(m)}; }
Fail invalid(std::string m) { return Fail{"invalid", std::move(m)}; }

Fail from_error(const Error& e) {
  switch (-e.code) {
    case ENOENT: return Fail{"not_found", e.message};
    case EEXIST: return Fail{"exists", e.message};
    case EINVAL: return Fail{"invalid", e.message};
    default: return Fail{"failed", e.message};
  }
}

// sluice_drop_reason names, lower-case without SLUICE_DROP_ (index = reason).
constexpr const char* kDropNames[SLUICE_DROP_MAX] = {
    "none",     "truncated",  "bad_l2",         "bad_ipv4",        "bad_ipv6",  "bad_l4",
    "bad_icmp", "unsupported_l4", "no_backend", "encap_no_room", "too_big",   "tx_failed",
    "too_big_df_clear", "frag_of_dropped",
};

// Field readers: a missing field is nullopt (when optional) or
// bad_request; a mistyped one is bad_request naming the field.
const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<Fail> need_string(const json& obj, const char* name, std::string& out,
                                bool required = true) {
  const json* f = field(obj, name);
  if (f == nullptr)
    return required ? std::optional<Fail>(bad_request(std::string("missing field \"") + name +
                                                      "\" (a string)"))
                    : std::nullopt;
  if (!f->is_string()) return bad_request(std::string("field \"") + name + "\" must be a string");
  out = f->get<std::string>();
  return std::nullopt;
}

std::optional<Fail> need_uint(const json& obj, const char* name, uint64_t max,
                              std::optional<uint64_t>& out) {
  const json* f = field(obj, name);
  if (f == nullptr) return std::nullopt;
  if (!f->is_number_integer())
    return bad_request(std::string("field \"") + name + "\" must be an integer");
  if (f->is_number_unsigned() ? f->get<uint64_t>() > max : (f->get<int64_t>() < 0 ||
                                                            static_cast<uint64_t>(f->get<int64_t>()) > max))
    return invalid(std::string("field \"") + name + "\" must be 0.." + std::to_string(max));
  out = f->get<uint64_t>();
  return std::nullopt;
}

std::optional<Fail> check_keys(const json& obj, const char* what,
                               std::initializer_list<const char*> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) return bad_request(std::string(what) + ": unknown field \"" + it.key() + "\"");
  }
  return std::nullopt;
}

Arg<IpAddress> address_field(const json& obj, const char* name) {
  std::string text;
  if (auto f = need_string(obj, name, text)) return *f;
  auto a = IpAddress::parse(text);
  if (!a.ok())
    return invalid(std::string("field \"") + name + "\": not an IPv4 or IPv6 address: \"" +
                   text + "\"");
  return a.value();
}

template <class E>
std::optional<Fail> choice(const json& obj, const char* name,
                           std::initializer_list<std::pair<const char*, E>> options, E& out) {
  std::string text;
  if (field(obj, name) == nullptr) return std::nullopt;
  if (auto f = need_string(obj, name, text)) return f;
  std::string names;
  for (const auto& [n, v] : options) {
    if (text == n) {
      out = v;
      return std::nullopt;
    }
    names += names.empty() ? "" : ", ";
    names += std::string("\"") + n + "\"";
  }
  return invalid(std::string("field \"") + name + "\" must be one of " + names);
}

Arg<BackendConfig> parse_backend(const json& b) {
  if (!b.is_object()) return bad_request("field \"backend\" must be an object");
  if (auto f = check_keys(b, "backend", {"address", "weight", "capacity", "health_check"}))
    return *f;
  BackendConfig out;
  auto a = address_field(b, "address");
  if (auto* f = std::get_if<Fail>(&a)) return *f;
  out.addr = std::get<IpAddress>(a);
  std::optional<uint64_t> w, c;
  if (auto f = need_uint(b, "weight", 65535, w)) return *f;
  if (w) out.weight = static_cast<uint32_t>(*w);
  if (auto f = need_uint(b, "capacity", 100000000, c)) return *f;
  if (c) out.capacity = static_cast<uint32_t>(*c);
  if (auto f = need_string(b, "health_check", out.health_check, false)) return *f;
  return out;
}

Arg<VipConfig> parse_vip(const json& v) {
  if (!v.is_object()) return bad_request("field \"vip\" must be an object");
  if (auto f = check_keys(v, "vip", {"name", "address", "port", "protocol", "policy", "hash",
                                     "cache", "table_size", "backends"}))
    return *f;
  VipConfig out;
  if (auto f = need_string(v, "name", out.name, false)) return *f;
  auto a = address_field(v, "address");
  if (auto* f = std::get_if<Fail>(&a)) return *f;
  out.addr = std::get<IpAddress>(a);
  std::optional<uint64_t> port;
  if (field(v, "port") == nullptr) return bad_request("missing field \"port\" (an integer)");
  if (auto f = need_uint(v, "port", 65535, port)) return *f;
  out.port = static_cast<uint16_t>(*port);
  if (auto f = choice<Protocol>(v, "protocol", {{"tcp", Protocol::kTcp}, {"udp", Protocol::kUdp}},
                                out.protocol))
    return *f;
  if (auto f = choice<Policy>(v, "policy",
                              {{"static", Policy::kStatic},
                               {"least-conn", Policy::kLeastConn},
                               {"fastest", Policy::kFastest}},
                              out.policy))
    return *f;
  if (auto f = choice<HashFields>(v, "hash",
                                  {{"5-tuple", HashFields::kFiveTuple},
                                   {"src", HashFields::kSource},
                                   {"key", HashFields::kKey}},
                                  out.hash))
    return *f;
  if (const json* c = field(v, "cache")) {
    if (!c->is_boolean()) return bad_request("field \"cache\" must be true or false");
    out.cache = c->get<bool>();
  }
  if (const json* t = field(v, "table_size")) {
    if (t->is_string() && t->get<std::string>() == "auto") {
      out.table_size_auto = true;
    } else {
      std::optional<uint64_t> m;
      if (!t->is_number_integer())
        return bad_request("field \"table_size\" must be a prime or \"auto\"");
      if (auto f = need_uint(v, "table_size", kMaglevMaxSize, m)) return *f;
      out.table_size = static_cast<uint32_t>(*m);
    }
  }
  if (const json* bs = field(v, "backends")) {
    if (!bs->is_array()) return bad_request("field \"backends\" must be an array of objects");
    for (const json& b : *bs) {
      auto be = parse_backend(b);
      if (auto* f = std::get_if<Fail>(&be)) return *f;
      out.backends.push_back(std::get<BackendConfig>(be));
    }
  }
  if (out.table_size_auto) out.table_size = maglev_auto_table_size(out.backends.size());
  return out;
}

json moved_result(const PublishReport& r, std::string_view vip) {
  return json{{"entries_moved", r.moved(vip)}};
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Publishes a change made to the Balancer; on failure it is discarded.
Arg<PublishReport> publish(Balancer& b, const HandlerContext& ctx, std::string_view what) {
  auto r = b.publish();
  if (!r.ok()) return from_error(r.error());
  if (ctx.on_change) ctx.on_change(what, r.value());
  return r.value();
}

// A runtime change: apply, then publish; nothing stays if either fails.
Arg<json> change(Balancer& b, const HandlerContext& ctx, std::string_view what, const Status& st,
                 std::string_view vip) {
  if (!st.ok()) {
    b.discard();
    return from_error(st.error());
  }
  auto r = publish(b, ctx, what);
  if (auto* f = std::get_if<Fail>(&r)) return *f;
  return moved_result(std::get<PublishReport>(r), vip);
}

Arg<json> cmd_status(Balancer& b, const HandlerContext& ctx) {
  json fps = json::array();
  for (const auto& fp : b.fastpaths()) {
    const FastpathInfo i = fp->info();
    fps.push_back({{"kind", i.kind},
                   {"interface", i.interface},
                   {"ifindex", i.ifindex},
                   {"mode", i.mode},
                   {"prog_id", i.prog_id},
                   {"reused_pinned_maps", i.reused_pinned_maps},
                   {"next_hop_problem", i.next_hop_problem}});
  }
  size_t backends = 0, up = 0;
  json panic = json::array();
  for (const VipView& v : b.vips()) {
    backends += v.backends;
    up += v.backends_up;
    if (v.panic) panic.push_back(v.name);
  }
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - ctx.started);
  return json{{"version", ctx.version},
              {"pid", ctx.pid},
              {"uptime_s", uptime.count()},
              {"config", ctx.config_path},
              {"config_generation", b.generation()},
              {"fastpaths", fps},
              {"vips", b.vips().size()},
              {"backends", backends},
              {"backends_up", up},
              {"vips_in_panic", panic}};
}

Arg<json> cmd_vips(Balancer& b) {
  json out = json::array();
  for (const VipView& v : b.vips())
    out.push_back({{"name", v.name},
                   {"address", v.addr.to_string()},
                   {"port", v.port},
                   {"protocol", to_string(v.protocol)},
                   {"policy", to_string(v.policy)},
                   {"hash", to_string(v.hash)},
                   {"table_size", v.table_size},
                   {"backends", v.backends},
                   {"backends_up", v.backends_up},
                   {"panic", v.panic}});
  return json{{"vips", out}};
}

Arg<json> cmd_backends(Balancer& b, const json& req) {
  std::string vip;
  if (auto f = need_string(req, "vip", vip, false)) return *f;
  auto list = b.backends(vip);
  if (!list.ok()) return from_error(list.error());
  json out = json::array();
  for (const BackendView& v : list.value()) {
    const char* state = v.draining() ? "draining" : to_string(v.health);
    const auto probe_count = [&v](uint64_t ProbeCounters::*n) {
      return v.probes ? json((*v.probes).*n) : json(nullptr);
    };
    const json last_rtt = v.probes && v.probes->last_rtt_us ? json(*v.probes->last_rtt_us)
                                                            : json(nullptr);
    out.push_back({{"vip", v.vip},
                   {"backend", v.addr.to_string()},
                   {"state", state},
                   {"health", to_string(v.health)},
                   {"probes_ok", probe_count(&ProbeCounters::ok)},
                   {"probes_failed", probe_count(&ProbeCounters::failed)},
                   {"last_rtt_us", last_rtt},
                   {"weight", v.weight},
                   {"effective_weight", v.effective_weight},
                   {"table_entries", v.table_entries},
                   {"rtt_us", v.rtt_us ? json(*v.rtt_us) : json(nullptr)},
                   {"active_flows", v.active_flows ? json(*v.active_flows) : json(nullptr)},
                   {"last_check", v.last_check.empty() ? json(nullptr) : json(v.last_check)}});
  }
  return json{{"backends", out}};
}

Arg<json> cmd_stats(Balancer& b) {
  auto s = b.stats();
  if (!s.ok()) return from_error(s.error());
  const BalancerStats& st = s.value();
  const sluice_global_stats& g = st.global;
  json drops = json::object();
  for (int r = SLUICE_DROP_NONE + 1; r < SLUICE_DROP_MAX; ++r) drops[kDropNames[r]] = g.drops[r];
  json vips = json::array();
  for (const auto& v : st.vips)
    vips.push_back({{"name", v.name},
                    {"packets", v.counters.packets},
                    {"bytes", v.counters.bytes},
                    {"new_flows", v.counters.new_flows},
                    {"drops", v.counters.drops}});
  json backends = json::array();
  for (const auto& v : st.backends)
    backends.push_back({{"vip", v.vip},
                        {"backend", v.addr.to_string()},
                        {"packets", v.counters.packets},
                        {"bytes", v.counters.bytes},
                        {"new_flows", v.counters.new_flows}});
  // Occupancy: the established flows of the last count (every 5 s in the
  // daemon), over every backend; unknown until a count succeeded.
  json in_use = nullptr;
  if (auto views = b.backends(); views.ok()) {
    uint64_t sum = 0;
    bool known = !views.value().empty();
    for (const BackendView& v : views.value()) {
      known = known && v.active_flows.has_value();
      sum += v.active_flows.value_or(0);
    }
    if (known) in_use = sum;
  }
  // XDP's per-CPU tables; a fast path with workers of its own says.
  const long cpus = sysconf(_SC_NPROCESSORS_CONF);
  const uint64_t n = cpus > 0 ? static_cast<uint64_t>(cpus) : 1;
  const FlowTableConfig& ft = b.config().flow_table;
  const uint64_t capacity =
      st.flow_table ? st.flow_table->capacity : uint64_t{ft.flows_per_core} * n;
  const uint64_t probation =
      st.flow_table ? st.flow_table->probation : uint64_t{ft.probation_per_core} * n;
  json workers = json::array();
  for (const WorkerStats& w : st.workers)
    workers.push_back({{"lcore", w.lcore},
                       {"rx_packets", w.global.rx_packets},
                       {"tx_packets", w.global.tx_packets},
                       {"pass_packets", w.global.pass_packets},
                       {"flow_misses", w.global.flow_misses},
                       {"flow_capacity", w.flow_capacity}});
  return json{
      {"time_ns", monotonic_ns()},
      {"global",
       {{"rx_packets", g.rx_packets},
        {"rx_bytes", g.rx_bytes},
        {"tx_packets", g.tx_packets},
        {"pass_packets", g.pass_packets},
        {"flow_hits", g.flow_hits},
        {"flow_misses", g.flow_misses},
        {"flow_insert_failed", g.flow_insert_failed},
        {"icmp_too_big_sent", g.icmp_too_big_sent},
        {"frag_unmatched", g.frag_unmatched},
        {"drops", drops}}},
      {"vips", vips},
      {"backends", backends},
      {"flow_table",
       {{"capacity", capacity}, {"probation_capacity", probation}, {"active_flows", in_use}}},
      {"workers", workers}};
}

Arg<json> cmd_add_vip(Balancer& b, const HandlerContext& ctx, const json& req) {
  const json* v = field(req, "vip");
  if (v == nullptr) return bad_request("missing field \"vip\" (an object)");
  auto vip = parse_vip(*v);
  if (auto* f = std::get_if<Fail>(&vip)) return *f;
  VipConfig cfg = std::get<VipConfig>(std::move(vip));
  if (cfg.name.empty()) cfg.name = default_vip_name(cfg);
  const std::string name = cfg.name;
  auto r = change(b, ctx, "add-vip " + name, b.add_vip(std::move(cfg)), name);
  if (auto* f = std::get_if<Fail>(&r)) return *f;
  return json{{"vip", name}, {"entries_moved", 0}};
}

// The "vip" and "backend" (address text) fields most commands take.
struct Target {
  std::string vip;
  IpAddress addr;
};

Arg<Target> target(const json& req) {
  Target t;
  if (auto f = need_string(req, "vip", t.vip)) return *f;
  auto a = address_field(req, "backend");
  if (auto* f = std::get_if<Fail>(&a)) return *f;
  t.addr = std::get<IpAddress>(a);
  return t;
}

// The optional "force" flag (true or false).
std::optional<Fail> force_field(const json& req, bool& out) {
  const json* f = field(req, "force");
  if (f == nullptr) return std::nullopt;
  if (!f->is_boolean()) return bad_request("field \"force\" must be true or false");
  out = f->get<bool>();
  return std::nullopt;
}

// Refuses a change that would leave a VIP with no backend for new flows:
// removing (`removing`) or draining the last backend that is not draining,
// or removing its very last backend. Such a VIP drops every new
// connection (no_backend), which an operator means to do only on purpose.
// A backend that is down still counts: it may be the probes that fail, and
// panic mode spreads the table over such backends.
std::optional<Fail> refuse_blackhole(const Balancer& b, const Target& tg, bool removing,
                                     std::string_view cmd) {
  auto list = b.backends(tg.vip);
  if (!list.ok()) return std::nullopt;  // the change itself reports not_found
  const BackendView* target = nullptr;
  size_t others_taking = 0;
  for (const BackendView& v : list.value()) {
    if (v.addr == tg.addr) {
      target = &v;
    } else if (!v.draining()) {
      ++others_taking;
    }
  }
  if (target == nullptr || others_taking > 0) return std::nullopt;
  std::string why;
  if (!target->draining()) {
    why = " is the last backend of VIP \"" + tg.vip + "\" that takes new connections";
  } else if (removing && list.value().size() == 1) {
    why = " is the last backend of VIP \"" + tg.vip + "\" (it still holds its flows)";
  } else {
    return std::nullopt;
  }
  return Fail{"last_backend",
              tg.addr.to_string() + why + ": after " + std::string(cmd) +
                  " the VIP would drop every new connection (no_backend). Add a backend first, "
                  "or repeat with \"force\": true (sluice ctl " + std::string(cmd) +
                  " --force) to do it anyway"};
}

Arg<json> cmd_reload(Balancer& b, const HandlerContext& ctx) {
  if (ctx.config_path.empty()) return invalid("this daemon has no config file to reload");
  auto r = reload_config_file(b, ctx.config_path);
  // A file that cannot be read is a failure, not a missing VIP.
  if (!r.ok())
    return r.error().code == -EINVAL ? invalid(r.error().message) : Fail{"failed", r.error().message};
  if (ctx.on_change) ctx.on_change("reload", r.value());
  return json{{"config_generation", b.generation()}, {"changed", r.value().changed}};
}

Arg<json> dispatch(Balancer& b, const HandlerContext& ctx, const std::string& cmd,
                   const json& req) {
  if (cmd == "status") return cmd_status(b, ctx);
  if (cmd == "vips") return cmd_vips(b);
  if (cmd == "backends") return cmd_backends(b, req);
  if (cmd == "stats") return cmd_stats(b);
  if (cmd == "cache") {
    if (!ctx.cache)
      return Fail{"failed",
                  "no hot-object cache in this daemon (it failed to start: see the daemon's log)"};
    return ctx.cache();
  }
  if (cmd == "add-vip") return cmd_add_vip(b, ctx, req);
  if (cmd == "remove-vip") {
    std::string vip;
    if (auto f = need_string(req, "vip", vip)) return *f;
    auto r = change(b, ctx, "remove-vip " + vip, b.remove_vip(vip), vip);
    if (auto* f = std::get_if<Fail>(&r)) return *f;
    return json::object();
  }
  if (cmd == "add-backend") {
    std::string vip;
    if (auto f = need_string(req, "vip", vip)) return *f;
    const json* be = field(req, "backend");
    if (be == nullptr) return bad_request("missing field \"backend\" (an object)");
    auto cfg = parse_backend(*be);
    if (auto* f = std::get_if<Fail>(&cfg)) return *f;
    const BackendConfig bc = std::get<BackendConfig>(cfg);
    return change(b, ctx, "add-backend " + vip + " " + bc.addr.to_string(),
                  b.add_backend(vip, bc), vip);
  }
  if (cmd == "remove-backend" || cmd == "drain" || cmd == "set-weight") {
    auto t = target(req);
    if (auto* f = std::get_if<Fail>(&t)) return *f;
    const Target& tg = std::get<Target>(t);
    bool force = false;
    if (auto f = force_field(req, force)) return *f;
    const std::string what = cmd + " " + tg.vip + " " + tg.addr.to_string();
    const bool removing = cmd == "remove-backend";
    std::optional<uint64_t> w;
    if (cmd == "set-weight") {
      if (field(req, "weight") == nullptr)
        return bad_request("missing field \"weight\" (0..65535)");
      if (auto f = need_uint(req, "weight", 65535, w)) return *f;
    }
    if (!force && (cmd != "set-weight" || *w == 0)) {
      if (auto f = refuse_blackhole(b, tg, removing, cmd)) return *f;
    }
    if (removing) return change(b, ctx, what, b.remove_backend(tg.vip, tg.addr), tg.vip);
    if (cmd == "drain") return change(b, ctx, what, b.drain(tg.vip, tg.addr), tg.vip);
    return change(b, ctx, what + " " + std::to_string(*w),
                  b.set_weight(tg.vip, tg.addr, static_cast<uint32_t>(*w)), tg.vip);
  }
  if (cmd == "reload") return cmd_reload(b, ctx);
  return Fail{"unknown_command", "unknown command \"" + cmd + "\""};
}

}  // namespace

json error_response(const json& id, std::string_view code, std::string_view message) {
  json r{{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
  if (!id.is_null()) r["id"] = id;
  return r;
}

json handle_request(Balancer& balancer, const HandlerContext& ctx, const json& request) {
  json id;
  try {
    if (!request.is_object()) return error_response(id, "bad_request", "a request is a JSON object");
    if (auto it = request.find("id"); it != request.end()) id = *it;
    std::string cmd;
    if (auto f = need_string(request, "cmd", cmd)) return error_response(id, f->code, f->message);
    Arg<json> r = dispatch(balancer, ctx, cmd, request);
    if (auto* f = std::get_if<Fail>(&r)) return error_response(id, f->code, f->message);
    json out{{"ok", true}, {"result", std::get<json>(std::move(r))}};
    if (!id.is_null()) out["id"] = id;
    return out;
  } catch (const std::exception& e) {
    return error_response(id, "internal", e.what());
  }
}

std::string handle_line(Balancer& balancer, const HandlerContext& ctx, std::string_view line) {
  try {
    const json req = json::parse(line.begin(), line.end(), nullptr, false);
    if (req.is_discarded())
      return error_response(nullptr, "bad_request", "not JSON").dump();
    // Invalid UTF-8 in a string must not make dump() throw.
    return handle_request(balancer, ctx, req).dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return error_response(nullptr, "internal", e.what()).dump();
  }
}

Result<PublishReport> reload_config_file(Balancer& balancer, const std::string& path) {
  auto loaded = load_config_file(path);
  if (!loaded.ok()) return loaded.error();
  ConfigReport& report = loaded.value();
  if (!report.ok()) {
    std::string msg;
    for (const ConfigIssue& i : report.errors) {
      if (!msg.empty()) msg += '\n';
      msg += i.to_string();
    }
    return Error{-EINVAL, msg.empty() ? path + ": invalid" : msg};
  }
  return balancer.reload(std::move(*report.config));
}

}  // namespace sluice::control
