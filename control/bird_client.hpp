// SPDX-License-Identifier: BSD-2-Clause
// Reading BIRD's protocol states (`show protocols`) over its control
// socket, for `sluice ctl status`: the same text birdc prints, read on a
// thread of its own so a BIRD that does not answer delays no one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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

/// What a BirdWatcher read last.
struct BirdReading {
  /// When the last query ended (answer or error); nullopt before the first.
  std::optional<std::chrono::steady_clock::time_point> at;
  /// BIRD's protocols as of `at`; empty when `error` is set.
  std::vector<BirdProtocol> protocols;
  /// Why the last query failed (query_bird_protocols' message); empty when
  /// BIRD answered.
  std::string error;
};

/// Reads BIRD's `show protocols` every `period` on a worker thread of its
/// own and keeps the last answer, so `sluice ctl status` reads a cached
/// state (with its age) and the daemon's event loop never waits on BIRD: a
/// BIRD that accepts and never answers costs the worker `timeout` per
/// period, and the loop nothing.
///
/// Threading: reading() may be called from any thread; it takes a mutex
/// the worker holds only to store a result, never while it waits on BIRD.
class BirdWatcher {
 public:
  /// Starts the worker; its first query starts at once.
  BirdWatcher(std::string path, std::chrono::milliseconds timeout,
              std::chrono::milliseconds period);
  /// Stops the worker: waits for a query in progress to end (at most
  /// `timeout`).
  ~BirdWatcher();
  BirdWatcher(const BirdWatcher&) = delete;
  BirdWatcher& operator=(const BirdWatcher&) = delete;

  /// The last reading; never blocks on BIRD.
  [[nodiscard]] BirdReading reading() const;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  void work();

  const std::string path_;
  const std::chrono::milliseconds timeout_;
  const std::chrono::milliseconds period_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;      // guarded by mu_
  BirdReading last_;       // guarded by mu_
  std::thread worker_;     // last: starts once the rest is constructed
};

}  // namespace sluice::control
