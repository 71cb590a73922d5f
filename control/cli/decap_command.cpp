// SPDX-License-Identifier: BSD-2-Clause
// `sluice decap attach|detach|status IFACE`: the backend-side decapsulator
// for backends without IP-in-IP tunnel devices, attached and left running.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/cli/commands.hpp"
#include "control/config.hpp"
#include "xdp/decap.hpp"

namespace sluice::cli {

namespace {

struct DecapArgs {
  std::string ifname;
  std::vector<std::string> vips;
  std::string config;
  std::string mode = "native";
  bool json = false;
};

// The VIP set: every --vip, plus every VIP address of --config. Exit code
// (usage or invalid) on failure, 0 with `out` filled on success.
int collect_vips(const DecapArgs& a, std::vector<IpAddress>* out) {
  std::set<IpAddress> vips;
  for (const std::string& text : a.vips) {
    auto addr = IpAddress::parse(text);
    if (!addr.ok()) {
      spdlog::error("--vip: {}", addr.error().message);
      return kExitUsage;
    }
    // The same rule as a VIP of the config (check-config, ctl add-vip).
    if (const char* why = unusable_as_vip(addr.value())) {
      spdlog::error("--vip {}: {} cannot be a VIP", text, why);
      return kExitUsage;
    }
    vips.insert(addr.value());
  }
  if (!a.config.empty()) {
    auto loaded = load_config_file(a.config);
    if (!loaded.ok()) {
      spdlog::error("{}", loaded.error().message);
      return kExitUsage;
    }
    if (!loaded.value().ok()) {
      for (const auto& e : loaded.value().errors)
        std::fprintf(stderr, "%s\n", e.to_string().c_str());
      return kExitInvalid;
    }
    for (const VipConfig& v : loaded.value().config->vips) vips.insert(v.addr);
  }
  if (vips.empty()) {
    spdlog::error("no VIP: give --vip ADDR (repeatable) or --config FILE with [[vips]]");
    return kExitUsage;
  }
  out->assign(vips.begin(), vips.end());
  return kExitOk;
}

int attach(const DecapArgs& a) {
  std::vector<IpAddress> vips;
  if (const int rc = collect_vips(a, &vips); rc != kExitOk) return rc;
  const xdp::XdpMode mode = a.mode == "generic" ? xdp::XdpMode::kGeneric : xdp::XdpMode::kNative;
  auto id = xdp::attach_decap(a.ifname, mode, vips);
  if (!id.ok()) {
    spdlog::error("{}", id.error().message);
    return kExitInvalid;
  }
  std::string list;
  for (const IpAddress& v : vips) list += (list.empty() ? "" : " ") + v.to_string();
  std::printf("sluice_decap attached to %s (%s mode, program id %u) for %zu VIP%s: %s\n",
              a.ifname.c_str(), xdp::to_string(mode), id.value(), vips.size(),
              vips.size() == 1 ? "" : "s", list.c_str());
  return kExitOk;
}

int detach(const DecapArgs& a) {
  if (auto st = xdp::detach_decap(a.ifname); !st.ok()) {
    spdlog::error("{}", st.error().message);
    return kExitInvalid;
  }
  std::printf("sluice_decap detached from %s\n", a.ifname.c_str());
  return kExitOk;
}

int status(const DecapArgs& a) {
  auto st = xdp::decap_status(a.ifname);
  if (!st.ok()) {
    spdlog::error("{}", st.error().message);
    return kExitInvalid;
  }
  const xdp::DecapStatus& s = st.value();
  if (a.json) {
    nlohmann::json vips = nlohmann::json::array();
    for (const IpAddress& v : s.vips) vips.push_back(v.to_string());
    const nlohmann::json out = {{"interface", a.ifname},
                                {"prog_id", s.prog_id},
                                {"mode", xdp::to_string(s.mode)},
                                {"vips", vips},
                                {"decap_packets", s.stats.decap_packets},
                                {"pass_packets", s.stats.pass_packets},
                                {"ecn_dropped", s.stats.ecn_dropped}};
    std::printf("%s\n", out.dump().c_str());
    return kExitOk;
  }
  std::printf("interface      %s\nprogram id     %u (%s mode)\n", a.ifname.c_str(), s.prog_id,
              xdp::to_string(s.mode));
  std::string list;
  for (const IpAddress& v : s.vips) list += (list.empty() ? "" : " ") + v.to_string();
  std::printf(
      "vips           %s\ndecapsulated   %llu packets\npassed         %llu packets\n"
      "ECN dropped    %llu packets (outer CE on a not-ECT packet, RFC 6040)\n",
      list.c_str(), static_cast<unsigned long long>(s.stats.decap_packets),
      static_cast<unsigned long long>(s.stats.pass_packets),
      static_cast<unsigned long long>(s.stats.ecn_dropped));
  return kExitOk;
}

}  // namespace

void add_decap(CLI::App& app, std::function<int()>* run) {
  CLI::App* decap = app.add_subcommand(
      "decap",
      "The backend-side decapsulator, for backends whose kernel has no IP-in-IP tunnel device: "
      "an XDP program that strips sluice's outer header from packets to this backend's VIPs and "
      "passes the inner packet to the stack (the VIP goes on lo, the server binds to it, replies "
      "go straight to the client). Runs on the backend; attaches and exits, leaving the program "
      "attached. Exits 0 on success, 1 when the kernel refused, 2 on usage errors.");
  decap->require_subcommand(1);
  auto args = std::make_shared<DecapArgs>();

  CLI::App* att = decap->add_subcommand(
      "attach",
      "Attach the decapsulator to IFACE for the given VIPs. A decapsulator already attached in "
      "the same mode is replaced atomically (run again to change the VIP set); any other XDP "
      "program on IFACE is left alone and this fails.");
  att->add_option("IFACE", args->ifname, "The backend's interface that tunnelled packets arrive on")
      ->required();
  att->add_option("--vip", args->vips, "A VIP address this backend serves (repeatable)");
  att->add_option("--config", args->config,
                  "Take every VIP address of this sluice config file as well");
  att->add_option("--xdp-mode", args->mode,
                  "native (in the driver) or generic (any device, slower)")
      ->check(CLI::IsMember({"native", "generic"}))
      ->capture_default_str();
  att->callback([run, args] { *run = [args] { return attach(*args); }; });

  CLI::App* det =
      decap->add_subcommand("detach", "Detach the decapsulator from IFACE (only if it is sluice's)");
  det->add_option("IFACE", args->ifname, "The interface")->required();
  det->callback([run, args] { *run = [args] { return detach(*args); }; });

  CLI::App* stat = decap->add_subcommand(
      "status", "Show the decapsulator on IFACE: its VIPs and how many packets it decapsulated");
  stat->add_option("IFACE", args->ifname, "The interface")->required();
  stat->add_flag("--json", args->json, "One JSON object instead of text");
  stat->callback([run, args] { *run = [args] { return status(*args); }; });
}

}  // namespace sluice::cli
