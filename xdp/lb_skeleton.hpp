// SPDX-License-Identifier: BSD-2-Clause
// LbSkeleton: the RAII owner of the load balancer's BPF object
// (xdp/sluice_lb.bpf.c).
#pragma once

#include "sluice_lb.skel.h"
#include "xdp/skeleton.hpp"

namespace sluice {

/// The sluice_lb XDP program and its maps (see xdp/lb_maps.h).
using LbSkeleton = Skeleton<sluice_lb_bpf>;

}  // namespace sluice
