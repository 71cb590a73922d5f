// SPDX-License-Identifier: BSD-2-Clause
// The control socket server: a Unix stream socket on the daemon's Asio
// io_context that checks each peer's credentials, frames newline-delimited
// JSON requests within the limits of control/PROTOCOL.md and writes the
// handler's responses back.
#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "control/control_request.hpp"
#include "dataplane/core/result.hpp"

namespace sluice {

struct SocketServerOptions {
  std::string path;      // where the socket file goes
  uint32_t mode = 0660;  // its file mode bits
  /// Group that owns the socket file and whose members may connect (as
  /// primary or supplementary group); empty = none (root and the daemon's
  /// own user only).
  std::string group;
  size_t max_line_bytes = kControlMaxLineBytes;
  /// A request line must be complete this long after its first byte, and a
  /// response must be taken by the client this long after it is sent.
  std::chrono::milliseconds line_timeout{5000};
  /// A client that sends no request for this long after its last answer
  /// (or after connecting) is closed, so forgotten clients do not hold
  /// places an operator needs.
  std::chrono::milliseconds idle_timeout{60000};
  /// Connections served at once. One more takes the place of the client
  /// idle the longest; only when every client is in the middle of a
  /// request (at most line_timeout each) is it turned away with `busy`.
  size_t max_clients = 32;
};

/// Whether a peer with these credentials may use the socket: uid 0, the
/// daemon's effective uid, primary gid == allowed_gid, or (by the user
/// database, getgrouplist(3)) a supplementary member of allowed_gid.
[[nodiscard]] bool control_peer_allowed(uid_t uid, gid_t gid, std::optional<gid_t> allowed_gid);

/// Serves the control socket. Runs entirely on the io_context passed to
/// open(); its methods and destructor must be called on that context's
/// thread, or while it is not running. The handler runs on that thread,
/// one request at a time; a slow handler delays other clients but never
/// the fast path.
class SocketServer {
 public:
  /// Creates the socket and starts accepting (on `io`, once it runs).
  /// The socket's directory is created (0755) when missing; a socket file
  /// nobody listens on is replaced. Errors: -EADDRINUSE when another
  /// process listens on the path, -EEXIST when the path is not a socket,
  /// -ENOENT for an unknown group, other -errno from mkdir, bind, chmod,
  /// chown, listen; the message names the path.
  [[nodiscard]] static Result<std::unique_ptr<SocketServer>> open(asio::io_context& io,
                                                                  SocketServerOptions options,
                                                                  ControlHandler handler);

  /// Closes every connection and removes the socket file.
  ~SocketServer();
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

  /// Connections open now (including one being turned away or evicted).
  [[nodiscard]] size_t client_count() const;
  [[nodiscard]] const std::string& path() const;

  struct State;  // shared with the connections, which may outlive the server object

 private:
  explicit SocketServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace sluice
