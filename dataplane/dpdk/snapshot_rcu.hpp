// SPDX-License-Identifier: BSD-2-Clause
// SnapshotRcu: publication of Snapshots from the control thread to the
// workers under DPDK's quiescent-state RCU (rte_rcu_qsbr).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/core/result.hpp"
#include "dataplane/dpdk/snapshot.hpp"

struct rte_rcu_qsbr;

namespace sluice::dpdk {

/// The current Snapshot, swapped by one writer (the control thread) and
/// read by up to `max_readers` workers without locks.
///
/// Protocol (DPDK programmer's guide, "RCU library"): each worker has a
/// reader id in [0, max_readers), calls online(id) before its first
/// current() and then reports a quiescent state (quiescent(id)) whenever it
/// holds no Snapshot pointer any more -- once per loop iteration, after the
/// burst is done. publish() swaps the pointer and retires the old Snapshot
/// with the QSBR token of the swap; a retired Snapshot is freed (by
/// publish() or reclaim()) only once every online reader has reported a
/// quiescent state after that token: no worker can still be reading it. A
/// reader that stops (offline(id)) no longer holds reclamation up.
///
/// Thread-safety: publish(), reclaim() and synchronize() from one thread at
/// a time (the control thread); current(), quiescent(), online() and
/// offline() from the reader that owns the id.
class SnapshotRcu {
 public:
  /// Largest max_readers, workers.
  static constexpr uint32_t kMaxReaders = 128;

  /// Sets up the QSBR variable for `max_readers` readers (1..kMaxReaders)
  /// and publishes `initial`. Allocates (cache-aligned); needs no EAL.
  /// Errors: -EINVAL for a reader count out of range or a null snapshot,
  /// -ENOMEM.
  [[nodiscard]] static Result<std::unique_ptr<SnapshotRcu>> create(
      uint32_t max_readers, std::unique_ptr<const Snapshot> initial);

  SnapshotRcu(const SnapshotRcu&) = delete;
  SnapshotRcu& operator=(const SnapshotRcu&) = delete;
  /// Frees the current snapshot; every reader must have stopped.
  ~SnapshotRcu();

  /// Registers reader `id` and marks it online (it may now call current()).
  /// Errors: -EINVAL for an id out of range.
  [[nodiscard]] int online(uint32_t id) noexcept;
  /// Marks reader `id` offline: publish() stops waiting for it. It must not
  /// hold a Snapshot pointer.
  void offline(uint32_t id) noexcept;

  /// The snapshot to use until the next quiescent(). Reader side, lock-free.
  [[nodiscard]] const Snapshot* current() const noexcept {
    return current_.load(std::memory_order_acquire);
  }
  /// Reader `id` holds no Snapshot pointer now. One store to its own cache
  /// line (and a load of the global token).
  void quiescent(uint32_t id) noexcept;

  /// Makes `next` current and retires the previous snapshot; frees the
  /// retired snapshots every reader has passed. Never blocks while fewer
  /// than kMaxRetired snapshots wait for readers; past that it waits for
  /// the oldest (about one worker loop iteration). Returns the number of
  /// snapshots published so far.
  uint64_t publish(std::unique_ptr<const Snapshot> next);
  /// Frees the retired snapshots every online reader has passed, without
  /// waiting. Returns how many are still waiting.
  size_t reclaim() noexcept;
  /// Waits until every retired snapshot can be freed, and frees them.
  /// Deadlocks if called by a thread that is itself an online reader.
  void synchronize() noexcept;

  /// Retired snapshots that publish() lets wait before it blocks.
  static constexpr size_t kMaxRetired = 8;

  [[nodiscard]] uint32_t max_readers() const noexcept { return max_readers_; }

 private:
  SnapshotRcu() = default;

  // A replaced snapshot and the QSBR token of its replacement.
  struct Retired {
    uint64_t token = 0;
    const Snapshot* snapshot = nullptr;
  };
  size_t reclaim(bool wait_oldest) noexcept;

  rte_rcu_qsbr* qs_ = nullptr;
  uint32_t max_readers_ = 0;
  std::atomic<const Snapshot*> current_{nullptr};
  uint64_t published_ = 0;
  // Oldest first; a fixed ring, so publish() allocates nothing itself.
  std::array<Retired, kMaxRetired> retired_{};
  size_t retired_head_ = 0;
  size_t retired_n_ = 0;
};

}  // namespace sluice::dpdk
