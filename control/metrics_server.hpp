// SPDX-License-Identifier: BSD-2-Clause
// A minimal HTTP/1.1 server on the daemon's Asio io_context that answers
// `GET /metrics` with the Prometheus text and nothing else.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dataplane/core/result.hpp"

namespace sluice {

struct MetricsServerOptions {
  /// "ADDRESS:PORT" or "[IPv6]:PORT" (config `[metrics] listen`); port 0
  /// picks a free one (see MetricsServer::port()).
  std::string listen = "127.0.0.1:9650";
  size_t max_request_bytes = 8192;                  // request line and headers
  std::chrono::milliseconds request_timeout{5000};  // to receive them, and to send the answer
  size_t max_clients = 16;  // connections at once; more are closed unanswered
};

/// Serves `GET /metrics` (and HEAD) with the text `render` returns, called
/// on the io_context's thread per request; any other path is 404, any
/// other method 405, a malformed or oversize request 400. One request per
/// connection (Connection: close). Same threading rules as SocketServer:
/// use it on the io_context's thread or while it is not running.
class MetricsServer {
 public:
  /// Binds and starts accepting. Errors: -EINVAL for a listen address that
  /// does not parse, -errno of socket/bind/listen (-EADDRINUSE, ...); the
  /// message names the address.
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> open(
      asio::io_context& io, MetricsServerOptions options, std::function<std::string()> render);

  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The port bound, host order.
  [[nodiscard]] uint16_t port() const;

  struct State;

 private:
  explicit MetricsServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace sluice
