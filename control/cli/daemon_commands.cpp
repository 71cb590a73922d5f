// SPDX-License-Identifier: BSD-2-Clause
// `sluice attach`, `sluice run` (the daemon in the foreground) and
// `sluice detach` (remove the program and its pinned maps, no daemon).
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>

#include "control/cli/commands.hpp"
#include "control/daemon.hpp"
#include "control/instance_lock.hpp"
#include "xdp/bpffs.hpp"
#include "xdp/loader.hpp"

namespace sluice::cli {
namespace {

constexpr const char* kDaemonFooter = R"(
The daemon runs in the foreground and logs to stderr (systemd-friendly).
SIGHUP reloads the config file: the whole file is validated first, and on
any error nothing changes and the errors are logged. Runtime changes made
over the control socket (add/remove, drain, set-weight) last until the next
reload, which re-applies the file.
SIGTERM or SIGINT stops the daemon cleanly but LEAVES the XDP program
attached and its maps pinned: traffic keeps flowing with the last published
tables, and a restarted daemon re-uses the maps, so established flows
survive. `sluice detach IFACE` is the explicit end. With a [dpdk] section
(`sluice run` only) the ports are DPDK's while the daemon runs: SIGTERM
stops the workers and closes the ports, and flows are not kept.
Exit codes: 0 clean stop, 1 start-up failed (config, attach, publish),
2 usage.)";

const std::map<std::string, XdpAttachMode> kModes{{"native", XdpAttachMode::kNative},
                                                  {"generic", XdpAttachMode::kGeneric}};

int run_daemon(const control::DaemonOptions& options) {
  auto d = control::Daemon::start(options);
  if (!d.ok()) return kExitInvalid;
  return d.value()->run();
}

}  // namespace

void add_attach(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("attach", "Run the daemon with the XDP fast path on IFACE");
  cmd->footer(kDaemonFooter);
  auto opts = std::make_shared<control::DaemonOptions>();
  auto iface = std::make_shared<std::string>();
  cmd->add_option("IFACE", *iface,
                  "Interface where VIP traffic arrives (the config's [xdp] "
                  "interfaces are ignored)")
      ->required();
  cmd->add_option("--config,-c", opts->config_path, "Config file (TOML)")->required();
  auto mode = std::make_shared<std::string>();
  cmd->add_option("--xdp-mode", *mode,
                  "native (in the driver) or generic; default: the "
                  "config's [xdp] mode")
      ->check(CLI::IsMember({"native", "generic"}));
  cmd->add_option("--pidfile", opts->pidfile, "Write the pid here once attached");
  cmd->add_option("--pin-root", opts->pin_root,
                  "Folder on bpffs for the pinned maps (default /sys/fs/bpf/sluice/IFACE)");
  cmd->callback([=] {
    *run = [=] {
      control::DaemonOptions o = *opts;
      o.interfaces = {*iface};
      if (!mode->empty()) o.mode = kModes.at(*mode);
      return run_daemon(o);
    };
  });
}

void add_run(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand(
      "run",
      "Run the daemon with the fast path the config names ([xdp] interfaces or [dpdk] ports)");
  cmd->footer(kDaemonFooter);
  auto opts = std::make_shared<control::DaemonOptions>();
  cmd->add_option("--config,-c", opts->config_path, "Config file (TOML)")->required();
  cmd->add_option("--pidfile", opts->pidfile, "Write the pid here once attached");
  cmd->callback([=] { *run = [=] { return run_daemon(*opts); }; });
}

void add_detach(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand(
      "detach", "Remove sluice's XDP program from IFACE and its pinned maps (no daemon needed)");
  cmd->footer(R"(
A running daemon holds the interface: detach refuses (exit 1) until it is
stopped. Established flows are forgotten with the maps. Exit codes: 0 nothing of
sluice's is left on IFACE, 1 something could not be removed (e.g. another
program is attached), 2 usage or no such interface.)");
  auto iface = std::make_shared<std::string>();
  auto pin_root = std::make_shared<std::string>();
  cmd->add_option("IFACE", *iface, "Interface")->required();
  cmd->add_option("--pin-root", *pin_root,
                  "Folder of the pinned maps (default /sys/fs/bpf/sluice/IFACE)");
  cmd->callback([=] {
    *run = [=] {
      const unsigned ifindex = if_nametoindex(iface->c_str());
      if (ifindex == 0) {
        spdlog::error("{}: no such interface", *iface);
        return kExitUsage;
      }
      const std::string root =
          pin_root->empty() ? xdp::default_pin_root(xdp::kBpffsRoot, *iface) : *pin_root;
      // A running daemon holds the interface: pulling its program would
      // take traffic down while it reports a live fast path.
      auto lock = control::InstanceLock::acquire(root);
      if (!lock.ok()) {
        spdlog::error("{}: {}", *iface, lock.error().message);
        return kExitInvalid;
      }
      auto iface_lock = control::InstanceLock::acquire_interface(ifindex, *iface);
      if (!iface_lock.ok()) {
        spdlog::error("{}: {}", *iface, iface_lock.error().message);
        return kExitInvalid;
      }
      int rc = kExitOk;
      auto d = xdp::detach_interface(static_cast<int>(ifindex));
      if (d.ok()) {
        spdlog::info("{}: XDP program detached", *iface);
      } else if (d.error().code == -ENOENT) {
        spdlog::info("{}: no XDP program attached", *iface);
      } else {
        spdlog::error("{}: {}", *iface, d.error().message);
        rc = kExitInvalid;
      }
      struct stat st {};
      if (stat(root.c_str(), &st) != 0) {
        spdlog::info("{}: no pinned maps there", root);
        return rc;
      }
      auto u = xdp::unpin_maps(root);
      if (u.ok()) {
        spdlog::info("{}: pinned maps removed", root);
      } else {
        spdlog::error("{}: {}", root, u.error().message);
        rc = kExitInvalid;
      }
      return rc;
    };
  });
}

}  // namespace sluice::cli
