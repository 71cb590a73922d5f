// SPDX-License-Identifier: BSD-2-Clause
// FakeFastpath: a Fastpath that records what it is given (and can be told
// to fail), for unit tests of the Balancer and the request handler.
#pragma once

#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "control/fastpath.hpp"

namespace sluice::test {

/// What the fake holds: the last snapshot, with the tables copied.
struct FakeHeld {
  struct Vip {
    sluice_vip_key key{};
    sluice_vip_meta meta{};
    std::vector<uint32_t> table;
  };
  std::vector<Vip> vips;
  std::vector<sluice_backend> backends;
  int publishes = 0;       // successful publish() calls
  int fail_next = 0;       // the next N publish() calls fail with -EIO
  control::FastpathState initial;
  std::map<uint32_t, sluice_vip_stats> vip_stats;          // by vip_id
  std::map<uint32_t, sluice_backend_stats> backend_stats;  // by backend id
  sluice_global_stats global{};
  /// What active_flows() returns; nullopt: "not supported" (the default).
  std::optional<control::ActiveFlowCounts> active_flows;
  int active_flows_calls = 0;
  /// What flow_table_size() and worker_stats() return.
  std::optional<control::FlowTableSize> flow_table_size;
  std::vector<control::WorkerStats> workers;

  [[nodiscard]] const Vip* vip(uint32_t vip_id) const {
    for (const Vip& v : vips)
      if (v.meta.vip_id == vip_id) return &v;
    return nullptr;
  }
  [[nodiscard]] const sluice_backend* backend(uint32_t id) const {
    for (const sluice_backend& b : backends)
      if (b.id == id) return &b;
    return nullptr;
  }
};

/// Shares its state with the test through a shared_ptr (the Balancer owns
/// the fake itself).
class FakeFastpath final : public control::Fastpath {
 public:
  explicit FakeFastpath(std::shared_ptr<FakeHeld> held) : held_(std::move(held)) {}

  [[nodiscard]] control::FastpathInfo info() const override {
    return {"fake", "fake0", 7, "native", 42, !held_->initial.vips.empty(), ""};
  }
  [[nodiscard]] const control::FastpathState& initial_state() const override {
    return held_->initial;
  }
  [[nodiscard]] control::Status publish(const control::FastpathSnapshot& snap) override {
    if (held_->fail_next > 0) {
      --held_->fail_next;
      return Error{-EIO, "fake map update failed"};
    }
    held_->vips.clear();
    for (const auto& v : snap.vips)
      held_->vips.push_back({v.key, v.meta, {v.table.begin(), v.table.end()}});
    held_->backends = snap.backends;
    ++held_->publishes;
    return control::Ok{};
  }
  [[nodiscard]] control::Status refresh_next_hop(std::span<const IpAddress>) override {
    return control::Ok{};
  }
  [[nodiscard]] Result<sluice_global_stats> global_stats() const override { return held_->global; }
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const override {
    auto it = held_->vip_stats.find(vip_id);
    return it == held_->vip_stats.end() ? sluice_vip_stats{} : it->second;
  }
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t id) const override {
    auto it = held_->backend_stats.find(id);
    return it == held_->backend_stats.end() ? sluice_backend_stats{} : it->second;
  }

  [[nodiscard]] Result<control::ActiveFlowCounts> active_flows() const override {
    ++held_->active_flows_calls;
    if (!held_->active_flows) return Fastpath::active_flows();
    return *held_->active_flows;
  }
  [[nodiscard]] std::optional<control::FlowTableSize> flow_table_size() const override {
    return held_->flow_table_size;
  }
  [[nodiscard]] std::vector<control::WorkerStats> worker_stats() const override {
    return held_->workers;
  }

 private:
  std::shared_ptr<FakeHeld> held_;
};

}  // namespace sluice::test
