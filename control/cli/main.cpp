// SPDX-License-Identifier: BSD-2-Clause
// The `sluice` binary's entry point: the CLI11 app, logging to stderr,
// and the mapping of parse failures to exit codes.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <functional>

#include "control/cli/commands.hpp"

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION must be defined by the build"
#endif

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("sluice");
  logger->set_pattern("%n: %^%l%$: %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"sluice: a layer-4 load balancer (XDP fast path, Maglev hashing, DSR)", "sluice"};
  app.set_version_flag("--version", "sluice " SLUICE_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Least severe log level printed to stderr")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  std::function<int()> run;
  sluice::cli::add_check_config(app, &run);
  sluice::cli::add_maglev(app, &run);
  sluice::cli::add_attach(app, &run);
  sluice::cli::add_run(app, &run);
  sluice::cli::add_detach(app, &run);
  sluice::cli::add_ctl(app, &run);
  sluice::cli::add_decap(app, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return sluice::cli::kExitUsage;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  return run();
}
