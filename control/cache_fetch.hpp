// SPDX-License-Identifier: BSD-2-Clause
// fetch_value: one memcached `gets <key>` over TCP to a backend, for the
// hot-object cache's fills (memcached doc/protocol.txt).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/core/ip_address.hpp"
#include "dataplane/core/result.hpp"

namespace sluice {

/// A value as fetched: flags, cas unique and the data bytes.
struct FetchedValue {
  uint32_t flags = 0;
  uint64_t cas = 0;
  std::vector<uint8_t> data;
};

/// Connects to addr:port (the calling thread's network namespace), sends
/// "gets <key>\r\n", reads the answer and closes. Blocks at most `timeout`
/// in all. Returns the value, nullopt for a miss. Values over `max_bytes`
/// are not read (-E2BIG): the cache would refuse them anyway.
/// Errors: -EINVAL (not a memcached key), -ETIMEDOUT, -EPROTO (an answer
/// that is not a VALUE/END for the key), the socket's errno.
[[nodiscard]] Result<std::optional<FetchedValue>> fetch_value(const IpAddress& addr, uint16_t port,
                                                              std::string_view key,
                                                              std::chrono::milliseconds timeout,
                                                              size_t max_bytes);

}  // namespace sluice
