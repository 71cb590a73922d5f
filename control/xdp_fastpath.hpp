// SPDX-License-Identifier: BSD-2-Clause
// XdpFastpath: the Fastpath over xdp::Loader on one interface (load with
// pinned maps, attach, publish, next hops, counters), and what the pinned
// maps held when it started.
#pragma once

#include <memory>
#include <optional>

#include "control/fastpath.hpp"
#include "xdp/loader.hpp"

namespace sluice::control {

class XdpFastpath final : public Fastpath {
 public:
  /// Loads the program (re-using the maps pinned under the options' pin
  /// root, flows included), reads what those maps hold, and attaches,
  /// replacing a running sluice program atomically. Errors: those of
  /// Loader::load and Loader::attach, and map reads (-errno).
  [[nodiscard]] static Result<std::unique_ptr<XdpFastpath>> open(const xdp::LoaderOptions& options);

  [[nodiscard]] FastpathInfo info() const override;
  [[nodiscard]] const FastpathState& initial_state() const override { return initial_; }
  /// Loader::publish of the same snapshot; with a gateway MAC, the static
  /// next hop (the interface's own MAC as source).
  [[nodiscard]] Status publish(const FastpathSnapshot& snapshot) override;
  /// Loader::refresh_next_hops (each backend its own next hop) through a
  /// resolver opened on first use in the calling thread's namespace; waits
  /// up to 1 s for neighbours.
  [[nodiscard]] Status refresh_next_hop(std::span<const IpAddress> targets) override;
  /// Loader::resolve_next_hops (the waiting, through the same resolver);
  /// the function writes the result with Loader::apply_next_hops.
  [[nodiscard]] std::function<Status()> resolve_next_hop(
      std::span<const IpAddress> targets) override;
  [[nodiscard]] Result<sluice_global_stats> global_stats() const override;
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const override;
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t backend_id) const override;
  /// Loader::active_flows over the whole flow map.
  [[nodiscard]] Result<ActiveFlowCounts> active_flows() const override;
  [[nodiscard]] Result<uint64_t> forget_flows_to(const IpAddress& vip) override {
    return loader_.forget_flows_to(vip);
  }

  [[nodiscard]] xdp::Loader& loader() { return loader_; }

 private:
  explicit XdpFastpath(xdp::Loader loader) : loader_(std::move(loader)) {}
  [[nodiscard]] Status read_initial_state();
  [[nodiscard]] Result<xdp::NextHops> resolve(std::span<const IpAddress> targets);

  xdp::Loader loader_;
  FastpathState initial_;
  std::optional<xdp::NextHopResolver> resolver_;
  std::string next_hop_problem_;  // FastpathInfo::next_hop_problem
};

}  // namespace sluice::control
