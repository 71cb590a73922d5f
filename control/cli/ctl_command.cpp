// SPDX-License-Identifier: BSD-2-Clause
// `sluice ctl`: talks to a running daemon over the control socket
// (control/PROTOCOL.md) and shows its answers as tables, or as JSON.
#include <toml++/toml.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "control/cli/commands.hpp"
#include "control/ctl_client.hpp"
#include "control/ctl_render.hpp"

namespace sluice::cli {

namespace {

using nlohmann::json;

constexpr int kExitNoDaemon = 3;  // cannot connect, or no answer

struct CtlArgs {
  std::string socket = "/run/sluice/sluice.sock";
  bool json = false;
  double timeout_s = 5.0;
  // Arguments of the subcommands; each uses the ones it declares.
  std::string vip;
  std::string backend;
  uint32_t weight = 0;
  std::optional<uint32_t> opt_weight;
  bool force = false;  // remove-backend, drain, set-weight: even the last backend
  std::optional<uint32_t> capacity;
  std::string health_check;
  // add-vip
  std::string from;
  std::string name;
  std::string address;
  std::optional<uint32_t> port;  // add-vip --port, when given
  std::string protocol;
  std::string policy;
  std::string hash;
  std::optional<uint32_t> table_size;
  std::vector<std::string> backends;
  // top
  uint64_t iterations = 0;
  double interval_s = 1.0;
};

void print_error(const CtlArgs& a, const json& error) {
  auto text = [&error](const char* key, const char* otherwise) {
    const auto it = error.is_object() ? error.find(key) : error.end();
    return it != error.end() && it->is_string() ? it->get<std::string>() : std::string(otherwise);
  };
  const std::string code = text("code", "internal");
  const std::string message = text("message", "(no message)");
  std::fprintf(stderr, "sluice ctl: %s: %s\n", code.c_str(), message.c_str());
  if (a.json) std::printf("%s\n", json{{"error", error}}.dump(2).c_str());
}

std::chrono::milliseconds timeout(const CtlArgs& a) {
  return std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000.0));
}

Result<CtlClient> connect(const CtlArgs& a) {
  auto client = CtlClient::connect(a.socket, timeout(a));
  if (!client) {
    std::fprintf(stderr, "sluice ctl: %s (is the daemon running? --socket names another path)\n",
                 client.error().message.c_str());
  }
  return client;
}

// One request: 0 and the result printed; 1 the daemon's error; 3 no daemon.
int exchange(const CtlArgs& a, const json& request,
             const std::function<std::string(const json&)>& render) {
  auto client = connect(a);
  if (!client) return kExitNoDaemon;
  auto response = client.value().call(request);
  if (!response) {
    std::fprintf(stderr, "sluice ctl: %s\n", response.error().message.c_str());
    return kExitNoDaemon;
  }
  const json& r = response.value();
  if (r["ok"] != true) {
    print_error(a, r.value("error", json::object()));
    return kExitInvalid;
  }
  const json result = r.value("result", json::object());
  if (a.json) {
    std::printf("%s\n", result.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  try {
    std::fputs(render(result).c_str(), stdout);
  } catch (const json::exception& e) {
    // A daemon newer or older than this client: say so instead of aborting.
    std::fprintf(stderr, "sluice ctl: unexpected result from the daemon (%s): %s\n", e.what(),
                 result.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    return kExitInvalid;
  }
  return kExitOk;
}

std::string moved_text(const std::string& what, const json& result) {
  const auto it = result.find("entries_moved");
  return what + (it != result.end() ? ": " + it->dump() + " table entries moved" : "") + "\n";
}

// A TOML value as JSON (integers stay integers).
json toml_to_json(const toml::node& n) {
  if (const auto* t = n.as_table()) {
    json o = json::object();
    for (const auto& [k, v] : *t) o[std::string(k.str())] = toml_to_json(v);
    return o;
  }
  if (const auto* arr = n.as_array()) {
    json o = json::array();
    for (const auto& v : *arr) o.push_back(toml_to_json(v));
    return o;
  }
  if (const auto* s = n.as_string()) return s->get();
  if (const auto* i = n.as_integer()) return i->get();
  if (const auto* f = n.as_floating_point()) return f->get();
  if (const auto* b = n.as_boolean()) return b->get();
  // Dates and times: no VIP key takes one; null makes the daemon name the
  // key as mistyped.
  return nullptr;
}

// The VIP of an add-vip snippet: a JSON object, or TOML holding either the
// keys of a [[vips]] table at top level or one [[vips]] table.
Result<json> read_vip_snippet(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{-ENOENT, path + ": cannot read"};
  std::ostringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  json vip;
  if (first != std::string::npos && text[first] == '{') {
    vip = json::parse(text, nullptr, false);
    if (!vip.is_object()) return Error{-EINVAL, path + ": not a JSON object"};
  } else {
    try {
      vip = toml_to_json(toml::parse(text, path));
    } catch (const toml::parse_error& e) {
      const auto& where = e.source().begin;
      return Error{-EINVAL, path + ":" + std::to_string(where.line) + ":" +
                                std::to_string(where.column) + ": " + std::string(e.description())};
    }
  }
  if (vip.contains("vips")) {
    const json& vips = vip["vips"];
    if (!vips.is_array() || vips.size() != 1) {
      return Error{-EINVAL, path + ": expected exactly one [[vips]] table"};
    }
    vip = vips[0];
  }
  return vip;
}

Result<json> add_vip_request(const CtlArgs& a) {
  json vip;
  if (!a.from.empty()) {
    auto snippet = read_vip_snippet(a.from);
    if (!snippet) return snippet.error();
    vip = std::move(snippet.value());
  } else {
    if (a.address.empty()) return Error{-EINVAL, "--address is required (or --from FILE)"};
    vip = json::object();
  }
  // Flags given beside a snippet override it.
  if (!a.name.empty()) vip["name"] = a.name;
  if (!a.address.empty()) vip["address"] = a.address;
  if (a.port) vip["port"] = *a.port;
  // An every-port VIP by accident would take all of the address's traffic.
  if (!vip.contains("port")) return Error{-EINVAL, "--port is required (0 = every port)"};
  if (!a.protocol.empty()) vip["protocol"] = a.protocol;
  if (!a.policy.empty()) vip["policy"] = a.policy;
  if (!a.hash.empty()) vip["hash"] = a.hash;
  if (a.table_size) vip["table_size"] = *a.table_size;
  for (const auto& b : a.backends) {
    if (!vip.contains("backends")) vip["backends"] = json::array();
    vip["backends"].push_back({{"address", b}});
  }
  return json{{"cmd", "add-vip"}, {"vip", vip}};
}

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

int top(const CtlArgs& a) {
  auto client = connect(a);
  if (!client) return kExitNoDaemon;
  auto ask = [&](const json& request) -> Result<json> {
    auto r = client.value().call(request);
    if (!r) return r.error();
    if (r.value()["ok"] != true) {
      print_error(a, r.value().value("error", json::object()));
      return Error{-EIO, ""};
    }
    return r.value().value("result", json::object());
  };
  auto fail = [](const Error& e) {
    if (e.message.empty()) return kExitInvalid;
    std::fprintf(stderr, "sluice ctl: %s\n", e.message.c_str());
    return kExitNoDaemon;
  };
  auto before = ask({{"cmd", "stats"}});
  if (!before) return fail(before.error());
  const bool tty = stdout_is_terminal();
  const auto interval = std::chrono::microseconds(static_cast<int64_t>(a.interval_s * 1e6));
  for (uint64_t i = 0; a.iterations == 0 || i < a.iterations; ++i) {
    std::this_thread::sleep_for(interval);
    auto after = ask({{"cmd", "stats"}});
    if (!after) return fail(after.error());
    auto backends = ask({{"cmd", "backends"}});
    if (!backends) return fail(backends.error());
    const std::string frame = a.json ? json{{"before", before.value()},
                                            {"after", after.value()},
                                            {"backends", backends.value()}}
                                               .dump() +
                                           "\n"
                                     : render_top(before.value(), after.value(), backends.value());
    // A terminal gets the screen redrawn in place; a pipe or file gets the
    // frames one after another, separated by a blank line.
    if (tty && !a.json) {
      std::fputs("\033[H\033[2J", stdout);
    } else if (i > 0 && !a.json) {
      std::fputs("\n", stdout);
    }
    std::fputs(frame.c_str(), stdout);
    std::fflush(stdout);
    before = std::move(after);
  }
  return kExitOk;
}

// --force: do it even when it leaves the VIP no backend for new
// connections (the daemon refuses with last_backend otherwise).
void add_force(CLI::App* sub, CtlArgs* a) {
  sub->add_flag("--force", a->force,
                "Even if it leaves the VIP with no backend taking new connections (refused "
                "otherwise: the VIP would drop them)");
}

json with_force(const CtlArgs& a, json request) {
  if (a.force) request["force"] = true;
  return request;
}

CLI::App* add(CLI::App* ctl, const char* name, const char* help) {
  CLI::App* sub = ctl->add_subcommand(name, help);
  sub->fallthrough();  // --socket/--json may follow the subcommand too
  return sub;
}

}  // namespace

void add_ctl(CLI::App& app, std::function<int()>* run) {
  auto a = std::make_shared<CtlArgs>();
  CLI::App* ctl = app.add_subcommand(
      "ctl",
      "Talk to a running sluice daemon over its control socket. Tables by default, --json for "
      "scripts. Exit codes: 0 ok; 1 the daemon answered an error (printed on stderr); 2 usage "
      "error; 3 cannot connect or no answer. Changes made here (add/remove, drain, set-weight) "
      "last until the next reload, which re-applies the config file.");
  ctl->require_subcommand(1);
  ctl->add_option("--socket", a->socket, "Path of the daemon's control socket")
      ->capture_default_str();
  ctl->add_flag("--json", a->json, "Print the daemon's JSON result instead of a table");
  ctl->add_option("--timeout", a->timeout_s, "Seconds to wait for each answer")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();

  // Subcommands that send a fixed request and render the result.
  auto simple = [&](const char* name, const char* help, json request,
                    std::function<std::string(const json&)> render) {
    CLI::App* sub = add(ctl, name, help);
    sub->callback([run, a, request, render] {
      *run = [a, request, render] { return exchange(*a, request, render); };
    });
    return sub;
  };
  simple("status", "Daemon version, uptime, config generation, fast paths, VIP and backend counts",
         {{"cmd", "status"}}, render_status);
  simple("drain-instance",
         "Withdraw every VIP this instance announces over BGP ([bgp] announce = true) and keep "
         "them withdrawn; the fast path goes on forwarding what still arrives. For maintenance: "
         "the router moves the flows to the other instances first",
         {{"cmd", "drain-instance"}}, render_instance_drain);
  simple("undrain-instance", "Announce this instance's servable VIPs again",
         {{"cmd", "undrain-instance"}}, render_instance_drain);
  simple("stats",
         "Counters: global, drops by reason, per VIP and per backend (cumulative; see `top` for "
         "rates), and flow-table capacity",
         {{"cmd", "stats"}}, render_stats);
  simple("vips", "The VIPs: address, port, protocol, policy, table size, backends up, panic",
         {{"cmd", "vips"}}, render_vips);
  simple("cache",
         "The hot-object cache: hits, misses, hit ratio, fills, invalidations, evictions, "
         "entries and bytes per VIP, and the hottest cached keys",
         {{"cmd", "cache"}}, render_cache);
  simple("reload",
         "Re-read the config file and apply it atomically; when it is invalid nothing changes "
         "and the errors are printed (exit 1). Drops runtime changes made with ctl.",
         {{"cmd", "reload"}}, [](const json& r) {
           return std::string(r.value("changed", false) ? "reloaded" : "reloaded (no change)") +
                  ": config generation " +
                  (r.contains("config_generation") ? r["config_generation"].dump()
                                                   : std::string("-")) +
                  "\n";
         });

  CLI::App* backends = add(ctl, "backends",
                           "The backends: state, configured and effective weight, table entries, "
                           "probe RTT, active flows, last check");
  backends->add_option("--vip", a->vip, "Only the backends of this VIP (its name)");
  backends->callback([run, a] {
    *run = [a] {
      json request{{"cmd", "backends"}};
      if (!a->vip.empty()) request["vip"] = a->vip;
      return exchange(*a, request, render_backends);
    };
  });

  CLI::App* add_vip = add(ctl, "add-vip",
                          "Add a VIP, from flags or from a file holding one [[vips]] table "
                          "(TOML) or a JSON object with the same keys; flags override the file");
  add_vip->add_option("--from", a->from, "TOML or JSON file with the VIP")
      ->check(CLI::ExistingFile);
  add_vip->add_option("--name", a->name, "Name (default ADDRESS:PORT/PROTO)");
  add_vip->add_option("--address", a->address, "IPv4 or IPv6 address");
  add_vip->add_option("--port", a->port, "Port (required unless --from gives it); 0 = every port")
      ->check(CLI::Range(0, 65535));
  add_vip->add_option("--protocol", a->protocol, "tcp or udp (default tcp)")
      ->check(CLI::IsMember({"tcp", "udp"}));
  add_vip->add_option("--policy", a->policy, "static, least-conn or fastest (default static)")
      ->check(CLI::IsMember({"static", "least-conn", "fastest"}));
  add_vip
      ->add_option("--hash", a->hash,
                   "5-tuple, src (every connection of a client to one backend) or key "
                   "(UDP memcached: each key to its owner); default 5-tuple")
      ->check(CLI::IsMember({"5-tuple", "src", "key"}));
  add_vip->add_option("--table-size", a->table_size, "Maglev table size, a prime");
  add_vip->add_option("--backend", a->backends, "A backend address (repeat for more; weight 100)");
  add_vip->callback([run, a] {
    *run = [a] {
      auto request = add_vip_request(*a);
      if (!request) {
        std::fprintf(stderr, "sluice ctl add-vip: %s\n", request.error().message.c_str());
        return kExitUsage;
      }
      return exchange(*a, request.value(), [](const json& r) {
        return "added VIP " + r.value("vip", std::string("?")) + "\n";
      });
    };
  });

  CLI::App* remove_vip = add(ctl, "remove-vip", "Remove a VIP and its backends");
  remove_vip->add_option("VIP", a->vip, "The VIP's name")->required();
  remove_vip->callback([run, a] {
    *run = [a] {
      return exchange(*a, {{"cmd", "remove-vip"}, {"vip", a->vip}},
                      [a](const json&) { return "removed VIP " + a->vip + "\n"; });
    };
  });

  CLI::App* add_backend = add(ctl, "add-backend", "Add a backend to a VIP");
  add_backend->add_option("VIP", a->vip, "The VIP's name")->required();
  add_backend->add_option("BACKEND", a->backend, "The backend's address")->required();
  add_backend->add_option("--weight", a->opt_weight, "Weight 0..65535 (default 100)")
      ->check(CLI::Range(0, 65535));
  add_backend->add_option("--health-check", a->health_check,
                          "A [health_checks.NAME] of the config");
  add_backend->add_option("--capacity", a->capacity, "Concurrent flows it takes (least-conn)");
  add_backend->callback([run, a] {
    *run = [a] {
      json backend{{"address", a->backend}};
      if (a->opt_weight) backend["weight"] = *a->opt_weight;
      if (!a->health_check.empty()) backend["health_check"] = a->health_check;
      if (a->capacity) backend["capacity"] = *a->capacity;
      return exchange(
          *a, {{"cmd", "add-backend"}, {"vip", a->vip}, {"backend", backend}},
          [a](const json& r) { return moved_text("added " + a->backend + " to " + a->vip, r); });
    };
  });

  // remove-backend and drain: VIP and BACKEND, and --force.
  auto vip_backend = [&](const char* name, const char* help, const char* done) {
    CLI::App* sub = add(ctl, name, help);
    sub->add_option("VIP", a->vip, "The VIP's name")->required();
    sub->add_option("BACKEND", a->backend, "The backend's address")->required();
    add_force(sub, a.get());
    const std::string cmd = name;
    const std::string verb = done;
    sub->callback([run, a, cmd, verb] {
      *run = [a, cmd, verb] {
        return exchange(*a,
                        with_force(*a, {{"cmd", cmd}, {"vip", a->vip}, {"backend", a->backend}}),
                        [a, verb](const json& r) {
                          return moved_text(verb + " " + a->backend + " of " + a->vip, r);
                        });
      };
    });
  };
  vip_backend("remove-backend", "Remove a backend from a VIP; its flows move", "removed");
  vip_backend("drain",
              "Drain a backend: weight 0, it keeps its existing flows and takes no new ones",
              "drained");

  CLI::App* set_weight = add(ctl, "set-weight", "Set a backend's configured weight");
  set_weight->add_option("VIP", a->vip, "The VIP's name")->required();
  set_weight->add_option("BACKEND", a->backend, "The backend's address")->required();
  set_weight->add_option("WEIGHT", a->weight, "0..65535 (0 = drain)")
      ->required()
      ->check(CLI::Range(0, 65535));
  add_force(set_weight, a.get());
  set_weight->callback([run, a] {
    *run = [a] {
      return exchange(
          *a,
          with_force(*a, {{"cmd", "set-weight"},
                          {"vip", a->vip},
                          {"backend", a->backend},
                          {"weight", a->weight}}),
          [a](const json& r) {
            return moved_text("weight of " + a->backend + " of " + a->vip + " set to " +
                                  std::to_string(a->weight),
                              r);
          });
    };
  });

  CLI::App* top_cmd = add(ctl, "top",
                          "Live view, refreshed every interval: packets/s and new flows/s per VIP "
                          "and backend, drops/s by reason, state and weight per backend. Redraws "
                          "the screen on a terminal; prints frames one after another otherwise");
  top_cmd->add_option("--iterations", a->iterations, "Stop after this many frames (0 = never)")
      ->capture_default_str();
  top_cmd->add_option("--interval", a->interval_s, "Seconds between frames")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  top_cmd->callback([run, a] { *run = [a] { return top(*a); }; });
}

}  // namespace sluice::cli
