// SPDX-License-Identifier: BSD-2-Clause
// IpAddress: text round trips, rejection of garbage, ordering.
#include "dataplane/core/ip_address.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace sluice {
namespace {

TEST(IpAddress, ParsesAndFormatsV4) {
  auto a = IpAddress::parse("192.0.2.1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value().family, SLUICE_FAMILY_IPV4);
  EXPECT_EQ(a.value().ip.bytes[0], 192);
  EXPECT_EQ(a.value().ip.bytes[3], 1);
  for (int i = 4; i < 16; ++i) EXPECT_EQ(a.value().ip.bytes[i], 0);
  EXPECT_EQ(a.value().to_string(), "192.0.2.1");
  EXPECT_EQ(a.value(), IpAddress::v4(0xC0000201));
}

TEST(IpAddress, ParsesAndFormatsV6) {
  auto a = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a.value().is_v6());
  EXPECT_EQ(a.value().ip.bytes[0], 0x20);
  EXPECT_EQ(a.value().ip.bytes[15], 1);
  EXPECT_EQ(a.value().to_string(), "2001:db8::1");
}

TEST(IpAddress, RejectsGarbage) {
  for (const char* bad : {"", "1.2.3", "1.2.3.256", "::g", "hello", "1.2.3.4 ",
                          "0123456789012345678901234567890123456789012345678901"}) {
    auto a = IpAddress::parse(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.error().code, -EINVAL);
  }
}

TEST(IpAddress, OrdersV4BeforeV6ThenBytes) {
  std::vector<IpAddress> v = {IpAddress::parse("10.0.0.2").value(), IpAddress::parse("::1").value(),
                              IpAddress::parse("10.0.0.1").value()};
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v[0].to_string(), "10.0.0.1");
  EXPECT_EQ(v[1].to_string(), "10.0.0.2");
  EXPECT_EQ(v[2].to_string(), "::1");
}

}  // namespace
}  // namespace sluice
