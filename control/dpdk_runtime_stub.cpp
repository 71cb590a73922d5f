// SPDX-License-Identifier: BSD-2-Clause
// DpdkRuntime without DPDK in the build: start() says so (see
// dpdk_runtime.hpp).
#include <cerrno>

#include "control/dpdk_runtime.hpp"

namespace sluice::control {

struct DpdkRuntime::Impl {};

Result<std::unique_ptr<DpdkRuntime>> DpdkRuntime::start(const DpdkRuntimeOptions&) {
  return Error{-ENOTSUP, "this sluice is built without DPDK (libdpdk-dev; meson -Ddpdk=enabled)"};
}

DpdkRuntime::DpdkRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DpdkRuntime::~DpdkRuntime() = default;
std::unique_ptr<Fastpath> DpdkRuntime::fastpath() { return nullptr; }
Status DpdkRuntime::launch() { return Error{-ENOTSUP, "built without DPDK"}; }
std::vector<std::string> DpdkRuntime::describe() const { return {}; }

}  // namespace sluice::control
