// SPDX-License-Identifier: BSD-2-Clause
// The kernel's verifier accepts every BPF program sluice builds (loaded
// through its skeleton, as the loader will).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include "tests/bpf/bpf_test_util.hpp"
#include "xdp/decap_skeleton.hpp"
#include "xdp/lb_skeleton.hpp"

namespace sluice::test {
namespace {

// Loads skeleton T (after `before_load`, which may set load-time
// constants) and reports what the verifier went through.
template <class T>
void expect_loads(const char* name, bpf_program* (*prog)(T*), void (*before_load)(T*) = nullptr) {
  auto opened = Skeleton<T>::open(name);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Skeleton<T> skel = std::move(opened.value());
  if (before_load != nullptr) before_load(skel.get());
  ASSERT_EQ(skel.load(), 0) << name << " rejected by the verifier (log above)";
  const int fd = bpf_program__fd(prog(skel.get()));
  ASSERT_GE(fd, 0);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  EXPECT_EQ(info.type, BPF_PROG_TYPE_XDP);
  EXPECT_GT(info.xlated_prog_len, 0u);
  ::testing::Test::RecordProperty("verified_insns", static_cast<int>(info.verified_insns));
  ::testing::Test::RecordProperty("xlated_bytes", static_cast<int>(info.xlated_prog_len));
}

TEST(Verifier, AcceptsTheLoadBalancer) {
  SLUICE_SKIP_WITHOUT_BPF();
  expect_loads<sluice_lb_bpf>("sluice_lb", [](sluice_lb_bpf* s) { return s->progs.sluice_lb; });
}

// The variant the loader builds for idle timeouts under a second: the
// verifier prunes the flow cache away on the constant.
TEST(Verifier, AcceptsTheLoadBalancerWithoutItsFlowCache) {
  SLUICE_SKIP_WITHOUT_BPF();
  expect_loads<sluice_lb_bpf>(
      "sluice_lb", [](sluice_lb_bpf* s) { return s->progs.sluice_lb; },
      [](sluice_lb_bpf* s) { s->rodata->sluice_flow_cache_jiffies = 0; });
}

TEST(Verifier, AcceptsTheDecapsulator) {
  SLUICE_SKIP_WITHOUT_BPF();
  expect_loads<sluice_decap_bpf>("sluice_decap",
                                 [](sluice_decap_bpf* s) { return s->progs.sluice_decap; });
}

}  // namespace
}  // namespace sluice::test
