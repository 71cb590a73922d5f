// SPDX-License-Identifier: BSD-2-Clause
// `sluice attach`, `run` and `detach` in a build without the XDP fast path
// (no libbpf, bpftool or BPF-capable clang): they say so and fail.
#include <spdlog/spdlog.h>

#include "control/cli/commands.hpp"

namespace sluice::cli {
namespace {

void add_unavailable(CLI::App& app, const char* name, std::function<int()>* run) {
  auto* cmd = app.add_subcommand(name, "(not in this build: it has no XDP fast path)");
  cmd->allow_extras();
  cmd->callback([=] {
    *run = [=] {
      spdlog::error("{}: this sluice was built without the XDP fast path (-Dxdp)", name);
      return kExitUsage;
    };
  });
}

}  // namespace

void add_attach(CLI::App& app, std::function<int()>* run) { add_unavailable(app, "attach", run); }
void add_run(CLI::App& app, std::function<int()>* run) { add_unavailable(app, "run", run); }
void add_detach(CLI::App& app, std::function<int()>* run) { add_unavailable(app, "detach", run); }

}  // namespace sluice::cli
