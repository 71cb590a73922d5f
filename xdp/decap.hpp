// SPDX-License-Identifier: BSD-2-Clause
// The backend-side decapsulator's life on one interface: attach it with the
// VIPs it serves and leave it there, read what it holds and counts, detach
// it. For backends without IP-in-IP tunnel devices (`sluice decap`).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dataplane/core/ip_address.hpp"
#include "xdp/loader.hpp"
#include "xdp/sluice_decap.h"
#include "xdp/status.hpp"

namespace sluice::xdp {

/// What an attached decapsulator holds and has counted.
struct DecapStatus {
  uint32_t prog_id = 0;
  XdpMode mode = XdpMode::kNative;
  /// The VIPs it strips the outer header for, sorted.
  std::vector<IpAddress> vips;
  /// Counters summed over CPUs, packets.
  sluice_decap_stats stats{};
};

/// Loads a fresh sluice_decap (xdp/sluice_decap.bpf.c) serving `vips` and
/// attaches it to interface `ifname` (in the calling thread's network
/// namespace) in `mode`. A sluice_decap already attached there in that mode
/// is replaced atomically (XDP_FLAGS_REPLACE), so re-running with another
/// VIP set never leaves the interface without one. The program stays
/// attached after the caller exits (the attachment holds it and its maps).
/// `vips`: 1..SLUICE_MAX_VIPS addresses (duplicates are fine).
/// Returns the attached program's id. Errors: -EINVAL (no VIP, too many),
/// -ENODEV (no such interface), -EBUSY (another XDP program is attached;
/// left alone), -EEXIST (sluice_decap is attached in the other mode), the
/// load's or attach's errno.
[[nodiscard]] Result<uint32_t> attach_decap(const std::string& ifname, XdpMode mode,
                                            std::span<const IpAddress> vips);

/// Detaches sluice_decap from `ifname` (whichever mode), only if the
/// program attached is still sluice_decap. Errors: -ENODEV, -ENOENT (no
/// XDP program attached), -EBUSY (the program attached is not sluice_decap;
/// left alone), the detach errno.
[[nodiscard]] Status detach_decap(const std::string& ifname);

/// Reads the attached sluice_decap's VIPs and counters through its program
/// id (nothing is pinned). Errors: -ENODEV, -ENOENT (no sluice_decap is
/// attached), the bpf() errno of a failed read.
[[nodiscard]] Result<DecapStatus> decap_status(const std::string& ifname);

}  // namespace sluice::xdp
