// SPDX-License-Identifier: BSD-2-Clause
// `sluice decap` in a build without the XDP fast path (-Dxdp=disabled, or
// no clang/libbpf/bpftool): the subcommand exists and says why it cannot run.
#include <spdlog/spdlog.h>

#include "control/cli/commands.hpp"

namespace sluice::cli {

void add_decap(CLI::App& app, std::function<int()>* run) {
  CLI::App* decap = app.add_subcommand(
      "decap", "The backend-side decapsulator (not in this build: it was built without XDP)");
  decap->allow_extras();
  decap->callback([run] {
    *run = [] {
      spdlog::error("decap: this sluice was built without the XDP fast path (meson -Dxdp=enabled "
                    "needs clang, libbpf and bpftool)");
      return kExitUsage;
    };
  });
}

}  // namespace sluice::cli
