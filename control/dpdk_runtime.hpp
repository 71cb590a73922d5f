// SPDX-License-Identifier: BSD-2-Clause
// DpdkRuntime: the DPDK deployment of `sluice run` -- EAL, the mbuf pool,
// the ports, one Worker and LcoreLoop per worker lcore, and the Fastpath
// the Balancer publishes through -- from start to a clean stop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/dpdk_options.hpp"
#include "control/fastpath.hpp"

namespace sluice::control {

/// One process's DPDK fast path. The control thread (the daemon's, which
/// is the EAL main lcore's) owns it; the workers run on their lcores
/// between launch() and destruction. Built without DPDK, start() fails
/// with -ENOTSUP (a neutral stub, so the daemon carries no #ifdef).
class DpdkRuntime {
 public:
  /// Initialises EAL with options.eal_args (once per process), creates
  /// the mbuf pool, finds the ports by name, starts them (the {port,
  /// queue, lcore} table of dataplane/dpdk/ports.hpp: RSS or software
  /// distribution, link check) and creates the fast path and one worker
  /// per lcore (not running yet). Errors: -ENOTSUP without DPDK; EAL's
  /// -errno ("rte_eal_init: ..."), -ENODEV for a port name EAL did not
  /// create, -ENOMEM, and Ports::start's errors. Everything made so far is
  /// undone on an error.
  [[nodiscard]] static Result<std::unique_ptr<DpdkRuntime>> start(
      const DpdkRuntimeOptions& options);

  DpdkRuntime(const DpdkRuntime&) = delete;
  DpdkRuntime& operator=(const DpdkRuntime&) = delete;
  /// Stops the workers (waits for their lcores), frees the loops and the
  /// workers, stops and closes the ports, frees the pool, cleans EAL up
  /// and removes its runtime folder.
  ~DpdkRuntime();

  /// The fast path for the Balancer (shares the workers' RCU and counters
  /// with this runtime; either may be destroyed first: without the
  /// runtime its counters read zero).
  [[nodiscard]] std::unique_ptr<Fastpath> fastpath();

  /// Starts every worker's loop on its lcore. Call after the first
  /// publication. Errors: -EBUSY if an lcore is not idle (rte_eal_remote_launch).
  [[nodiscard]] Status launch();

  /// One line per port and worker, for the start-up log: the port's name,
  /// id, MAC, queues and distribution (RSS or software); the lcores.
  [[nodiscard]] std::vector<std::string> describe() const;

  struct Impl;

 private:
  explicit DpdkRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::control
