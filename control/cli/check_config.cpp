// SPDX-License-Identifier: BSD-2-Clause
// `sluice check-config FILE`: validates a config file whole and prints
// every problem, one per line, as file:line:col: key: message.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "control/cli/commands.hpp"
#include "control/config.hpp"

namespace sluice::cli {

namespace {

int check_config(const std::string& path) {
  // What the daemon checks when it starts, no less: a file that passes
  // here is one `sluice run` takes.
  auto loaded = load_daemon_config_file(path);
  if (!loaded) {
    spdlog::error("{}", loaded.error().message);
    return kExitUsage;
  }
  const ConfigReport& report = loaded.value();
  for (const auto& w : report.warnings) {
    ConfigIssue issue = w;
    issue.message = "warning: " + issue.message;
    std::fprintf(stderr, "%s\n", issue.to_string().c_str());
  }
  if (!report.ok()) {
    for (const auto& e : report.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "%s: %zu error%s\n", path.c_str(), report.errors.size(),
                 report.errors.size() == 1 ? "" : "s");
    return kExitInvalid;
  }
  const Config& config = *report.config;
  std::printf("%s: ok (%zu VIP%s, %zu backend%s)\n", path.c_str(), config.vips.size(),
              config.vips.size() == 1 ? "" : "s", config.backend_count(),
              config.backend_count() == 1 ? "" : "s");
  return kExitOk;
}

}  // namespace

void add_check_config(CLI::App& app, std::function<int()>* run) {
  CLI::App* sub = app.add_subcommand(
      "check-config",
      "Validate a config file without applying it. Prints 'FILE: ok (N VIPs, M backends)' and "
      "exits 0, or prints every error as file:line:col: key: message and exits 1; exits 2 "
      "when the file cannot be read.");
  auto path = std::make_shared<std::string>();
  sub->add_option("FILE", *path, "The TOML config file")->required();
  sub->callback([run, path] { *run = [path] { return check_config(*path); }; });
}

}  // namespace sluice::cli
