// SPDX-License-Identifier: BSD-2-Clause
// placeholder
#include <gtest/gtest.h>
TEST(Maglev, Placeholder) {}
