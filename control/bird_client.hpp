// SPDX-License-Identifier: BSD-2-Clause
// Reading BIRD's protocol states (`show protocols`) over its control
// socket, for `sluice ctl status`: the same text birdc prints.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/core/result.hpp"

namespace sluice::control {

/// One row of BIRD's `show protocols`.
struct BirdProtocol {
  std::string name;   ///< "router1"
  std::string proto;  ///< "BGP", "BFD", "Kernel", "Device", ...
  std::string state;  ///< "up", "down", "start", "stop", ...
  std::string since;  ///< when it entered that state, as BIRD prints it
  std::string info;   ///< BGP: "Established", "Active  Socket: ...", ...; may be empty
};

/// Parses BIRD's reply to `show protocols` (BIRD 2 control protocol: lines
/// "CODE-text" or "CODE text", 4-digit codes, continuation lines starting
/// with a space; 1002 rows, 2002 the header, 0000 the end). Errors:
/// -EPROTO for a reply without the table or with an error code (8xxx,
/// 9xxx), carrying BIRD's message.
[[nodiscard]] Result<std::vector<BirdProtocol>> parse_bird_protocols(std::string_view reply);

/// Connects to BIRD's control socket `path`, sends `show protocols` and
/// parses the reply, all within `timeout`. Errors: -errno of connect (e.g.
/// -ENOENT, -ECONNREFUSED: BIRD is not running), -ETIMEDOUT, -EPROTO.
[[nodiscard]] Result<std::vector<BirdProtocol>> query_bird_protocols(
    const std::string& path, std::chrono::milliseconds timeout);

}  // namespace sluice::control
