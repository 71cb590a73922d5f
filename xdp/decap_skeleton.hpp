// SPDX-License-Identifier: BSD-2-Clause
// DecapSkeleton: the RAII owner of the backend-side decapsulator's BPF
// object (xdp/sluice_decap.bpf.c).
#pragma once

#include "sluice_decap.skel.h"
#include "xdp/skeleton.hpp"

namespace sluice {

/// The sluice_decap XDP program and its maps.
using DecapSkeleton = Skeleton<sluice_decap_bpf>;

}  // namespace sluice
