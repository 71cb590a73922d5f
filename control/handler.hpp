// SPDX-License-Identifier: BSD-2-Clause
// The control-socket request handler (PROTOCOL: newline-delimited JSON, one
// request -> one response): a pure function over the Balancer, so the
// socket server, tests and fuzzers call the same code.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/balancer.hpp"

namespace sluice::control {

/// What the handler needs besides the Balancer: facts about the daemon.
struct HandlerContext {
  std::string version;      ///< "0.1.0"
  long pid = 0;             ///< the daemon's pid
  std::chrono::steady_clock::time_point started;  ///< for uptime_s
  std::string config_path;  ///< the file `reload` re-reads; empty: reload is refused
  /// Called after every request that changed the model (runtime changes
  /// and reloads), e.g. to log and to re-sync health probes; may be empty.
  std::function<void(std::string_view what, const PublishReport&)> on_change;
  /// The `cache` command's result (hot-object cache counters and hottest
  /// keys); empty: the command answers that there is no cache.
  std::function<nlohmann::json()> cache;
};

/// Answers one request (a parsed JSON value) per PROTOCOL.md. Never
/// throws; every failure is a {"ok": false, "error": {code, message}}
/// response (codes bad_request, unknown_command, not_found, exists,
/// invalid, last_backend, failed, internal). Changing commands publish at
/// once; a failed publication changes nothing. remove-backend, drain and
/// set-weight 0 of a VIP's last backend taking new flows (or removing its
/// last backend) are refused with last_backend unless "force" is true.
[[nodiscard]] nlohmann::json handle_request(Balancer& balancer, const HandlerContext& ctx,
                                            const nlohmann::json& request);

/// The same for one request line (without its "\n"): text that is not
/// JSON is a bad_request. Returns the response line without "\n".
[[nodiscard]] std::string handle_line(Balancer& balancer, const HandlerContext& ctx,
                                      std::string_view line);

/// An error response: {"ok": false, "id": id (when not null), "error":
/// {"code", "message"}} (for the socket server's own errors: too_large,
/// busy, permission_denied).
[[nodiscard]] nlohmann::json error_response(const nlohmann::json& id, std::string_view code,
                                            std::string_view message);

/// Reads and validates `path` and reloads the Balancer with it. Errors:
/// -errno when the file cannot be read; -EINVAL with one
/// "file:line:col: key: message" line per config error; the Balancer's
/// reload errors. On any error nothing changes.
[[nodiscard]] Result<PublishReport> reload_config_file(Balancer& balancer,
                                                       const std::string& path);

}  // namespace sluice::control
