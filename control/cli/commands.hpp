// SPDX-License-Identifier: BSD-2-Clause
// The subcommands of the `sluice` binary: each registers its options on
// the CLI11 app and runs after parsing, returning the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::cli {

/// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;  // the input was read but is wrong (e.g. config errors)
inline constexpr int kExitUsage = 2;    // bad arguments, or a file that cannot be read

/// Adds `check-config FILE`; `*run` is set to its handler.
void add_check_config(CLI::App& app, std::function<int()>* run);
/// Adds `maglev --backends ...`; `*run` is set to its handler.
void add_maglev(CLI::App& app, std::function<int()>* run);
/// Adds `attach IFACE --config FILE` (the daemon on one interface).
void add_attach(CLI::App& app, std::function<int()>* run);
/// Adds `run --config FILE` (the daemon on the config's interfaces).
void add_run(CLI::App& app, std::function<int()>* run);
/// Adds `detach IFACE` (remove the program and its pinned maps).
void add_detach(CLI::App& app, std::function<int()>* run);
/// Adds `ctl [--socket PATH] [--json] SUBCOMMAND` (control/PROTOCOL.md);
/// exits 3 when the daemon cannot be reached.
void add_ctl(CLI::App& app, std::function<int()>* run);
/// Adds `decap attach|detach|status IFACE`; `*run` is set to its handler.
void add_decap(CLI::App& app, std::function<int()>* run);

}  // namespace sluice::cli
