// SPDX-License-Identifier: BSD-2-Clause
// SnapshotRcu: the QSBR variable's life, the reader registration and the
// writer's swap-wait-free sequence.
#include "dataplane/dpdk/snapshot_rcu.hpp"

#include <rte_common.h>
#include <rte_rcu_qsbr.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace sluice::dpdk {

Result<std::unique_ptr<SnapshotRcu>> SnapshotRcu::create(uint32_t max_readers,
                                                         std::unique_ptr<const Snapshot> initial) {
  if (max_readers == 0 || max_readers > kMaxReaders)
    return Error{-EINVAL, "snapshot rcu: max_readers " + std::to_string(max_readers) +
                              " is not in 1.." + std::to_string(kMaxReaders)};
  if (!initial) return Error{-EINVAL, "snapshot rcu: no initial snapshot"};
  const size_t bytes = rte_rcu_qsbr_get_memsize(max_readers);
  // aligned_alloc wants a multiple of the alignment.
  const size_t rounded = (bytes + RTE_CACHE_LINE_SIZE - 1) & ~size_t{RTE_CACHE_LINE_SIZE - 1};
  auto* qs = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, rounded));
  if (qs == nullptr) return Error{-ENOMEM, "snapshot rcu: cannot allocate the QSBR variable"};
  if (rte_rcu_qsbr_init(qs, max_readers) != 0) {
    std::free(qs);
    return Error{-EINVAL, "snapshot rcu: rte_rcu_qsbr_init failed"};
  }
  std::unique_ptr<SnapshotRcu> r(new SnapshotRcu());
  r->qs_ = qs;
  r->max_readers_ = max_readers;
  r->current_.store(initial.release(), std::memory_order_release);
  r->published_ = 1;
  return r;
}

SnapshotRcu::~SnapshotRcu() {
  // Every reader has stopped: nothing can hold a retired snapshot.
  for (size_t i = 0; i < retired_n_; ++i)
    delete retired_[(retired_head_ + i) % kMaxRetired].snapshot;
  delete current_.load(std::memory_order_acquire);
  std::free(qs_);
}

int SnapshotRcu::online(uint32_t id) noexcept {
  if (id >= max_readers_) return -EINVAL;
  if (rte_rcu_qsbr_thread_register(qs_, id) != 0) return -EINVAL;
  rte_rcu_qsbr_thread_online(qs_, id);
  return 0;
}

void SnapshotRcu::offline(uint32_t id) noexcept {
  if (id >= max_readers_) return;
  rte_rcu_qsbr_thread_offline(qs_, id);
  (void)rte_rcu_qsbr_thread_unregister(qs_, id);
}

void SnapshotRcu::quiescent(uint32_t id) noexcept { rte_rcu_qsbr_quiescent(qs_, id); }

uint64_t SnapshotRcu::publish(std::unique_ptr<const Snapshot> next) {
  // Room for one more retired snapshot: wait for the oldest if need be.
  if (reclaim(false) == kMaxRetired) (void)reclaim(true);
  const Snapshot* old = current_.exchange(next.release(), std::memory_order_acq_rel);
  // The token is taken after the swap (rte_rcu_qsbr_start releases it): a
  // reader that reports it has finished every burst that could have loaded
  // `old`.
  const uint64_t token = rte_rcu_qsbr_start(qs_);
  retired_[(retired_head_ + retired_n_) % kMaxRetired] = {token, old};
  ++retired_n_;
  (void)reclaim(false);
  return ++published_;
}

size_t SnapshotRcu::reclaim() noexcept { return reclaim(false); }

void SnapshotRcu::synchronize() noexcept {
  while (reclaim(true) != 0) {
  }
}

size_t SnapshotRcu::reclaim(bool wait_oldest) noexcept {
  while (retired_n_ != 0) {
    Retired& r = retired_[retired_head_];
    // Tokens grow, so the oldest is the first to be passed.
    if (rte_rcu_qsbr_check(qs_, r.token, wait_oldest) != 1) break;
    delete r.snapshot;
    r = {};
    retired_head_ = (retired_head_ + 1) % kMaxRetired;
    --retired_n_;
    wait_oldest = false;
  }
  return retired_n_;
}

}  // namespace sluice::dpdk
